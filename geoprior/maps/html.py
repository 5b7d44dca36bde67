"""Interactive range maps: a Leaflet page by folium (an optional dependency: ``pip install
'geoprior[html]'``).

:func:`range_map_html` turns a :func:`~geoprior.maps.range_map` frame into a
``folium.Map``: for each species (and month) a layer of cells coloured by probability (the
square-root scale of the PNGs, with a colour bar) with the cell's values on hover, and a
layer of the in-range outline (h3's dissolved cells); optionally the training places; a
layer switch; the map's metadata as a JSON block in the page. :func:`save_html` writes it.
The page loads Leaflet and the base map tiles in the browser, like every folium map.
"""

from __future__ import annotations

import calendar
import html
import json
import os

import numpy as np

from ..errors import EmptyDataError, MissingDependencyError
from ..geo import cells_from_strings
from .grid import dissolve_cells

__all__ = ["range_map_html", "require_folium", "save_html"]

#: Colours of the probability scale (matplotlib's YlGnBu, as in the PNGs).
COLOURS = ("#ffffd9", "#edf8b1", "#c7e9b4", "#7fcdbb", "#41b6c4", "#1d91c0", "#225ea8", "#0c2c84")
OUTLINE = "#b2182b"
PLACES = "#222222"


def require_folium():
    """folium, or MissingDependencyError saying how to install it."""
    try:
        import folium
    except ImportError:
        raise MissingDependencyError(
            "interactive (.html) range maps need folium: pip install 'geoprior[html]'"
        ) from None
    return folium


def _layers(frame) -> list[tuple[str, object]]:
    """``(name, rows)`` of each layer: one per species, and per month of a monthly frame."""
    names = list(dict.fromkeys(frame["species"]))
    groups = ["species", "month"] if "month" in frame.columns else ["species"]
    out = []
    for key, rows in frame.groupby(groups, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        label = str(key[0]) if len(names) > 1 or len(key) == 1 else ""
        if len(key) == 2:
            label = (label + " — " if label else "") + calendar.month_name[int(key[1])]
        out.append((label, rows))
    return out


def range_map_html(
    frame,
    *,
    places=None,
    tiles: str | None = "OpenStreetMap",
    metadata: dict | None = None,
    colorbar_label: str | None = None,
):
    """A ``folium.Map`` of a range map.

    Args:
        frame: a frame of :func:`~geoprior.maps.range_map` or
            :func:`~geoprior.maps.monthly_range_maps` (cells; a dissolved frame shows its
            outlines only).
        places: training places to show: ``(lat, lon)`` arrays, or an
            :class:`~geoprior.Observations` (the presences of the species mapped).
        tiles: folium's base map (``"OpenStreetMap"`` (default), other names folium knows, or
            ``None``).
        metadata: what the map is (:func:`~geoprior.maps.writers.map_metadata`), embedded as
            ``<script type="application/json" id="geoprior-metadata">``.
        colorbar_label: what the colours are (default: the prior's output, e.g. "presence
            probability").

    Example:
        >>> m = range_map_html(geoprior.range_map(prior, "Setophaga virens"))  # doctest: +SKIP
        >>> m.save("virens.html")  # doctest: +SKIP
    """
    folium = require_folium()
    import branca.colormap as cm

    from .plot import place_arrays, view_extent
    from .writers import geojson_dict, map_metadata

    if len(frame) == 0:
        raise EmptyDataError("the range map has no rows to show")
    meta = metadata if metadata is not None else map_metadata(frame)
    cells = "prob" in frame.columns
    m = folium.Map(tiles=tiles, control_scale=True)
    w, s, e, n = view_extent(frame)  # the pictures' view (east past 180 across the antimeridian)
    m.fit_bounds([[s, w], [n, e]])
    top = float(frame["prob"].max()) if cells else 1.0
    top = top if top > 0 else 1.0
    # the square-root scale of the pictures: colours evenly spaced in sqrt(prob)
    colormap = cm.LinearColormap(
        COLOURS, index=(top * np.linspace(0.0, 1.0, len(COLOURS)) ** 2).tolist(), vmin=0, vmax=top
    )
    colormap.caption = (
        colorbar_label
        or ("presence probability" if meta.get("output") == "presence" else "prior probability")
    ) + " (square-root scale)"
    thresholds = meta.get("thresholds") or {}
    for i, (label, rows) in enumerate(_layers(frame)):
        if cells:
            data = geojson_dict(rows, meta)

            def style(feature, colormap=colormap):
                return {
                    "fillColor": colormap(feature["properties"]["prob"]),
                    "fillOpacity": 0.75,
                    "weight": 0,
                }

            fields = [c for c in ("species", "month", "h3_cell", "prob", "in_range") if c in rows]
            folium.GeoJson(
                data,
                name=f"{label + ': ' if label else ''}probability",
                style_function=style,
                tooltip=folium.GeoJsonTooltip(fields=fields),
                show=i == 0,
            ).add_to(m)
            inside = rows["h3_cell"][rows["in_range"].to_numpy(bool)]
            outline = dissolve_cells(cells_from_strings(inside))
        else:
            outline = rows.geometry.iloc[0]
        species = str(rows["species"].iloc[0])
        if not outline.is_empty:
            threshold = thresholds.get(species)
            caption = "in range" + (f" (p ≥ {threshold:.3g})" if threshold is not None else "")
            folium.GeoJson(
                outline.__geo_interface__,
                name=f"{label + ': ' if label else ''}{caption}",
                style_function=lambda _: {"color": OUTLINE, "weight": 2, "fill": False},
                show=i == 0,
            ).add_to(m)
    if places is not None:
        lat, lon = place_arrays(places, list(dict.fromkeys(frame["species"])))
        group = folium.FeatureGroup(name=f"training places ({lat.size:,})")
        for a, b in zip(lat.tolist(), lon.tolist()):
            folium.CircleMarker([a, b], radius=2, color=PLACES, weight=1, fill=True).add_to(group)
        group.add_to(m)
    if cells:
        colormap.add_to(m)
    folium.LayerControl(collapsed=False).add_to(m)
    title = _title(meta)
    m.get_root().header.add_child(folium.Element(f"<title>{html.escape(title)}</title>"))
    block = json.dumps(meta).replace("</", "<\\/")
    m.get_root().header.add_child(
        folium.Element(f'<script type="application/json" id="geoprior-metadata">{block}</script>')
    )
    return m


def _title(meta: dict) -> str:
    species = ", ".join(meta.get("species") or []) or "range map"
    when = (
        calendar.month_name[meta["month"]]
        if meta.get("month")
        else meta.get("date") or ("by month" if meta.get("months") else "year-round")
    )
    return f"{species} — {when} (geoprior range map)"


def save_html(frame, path: str | os.PathLike, **options) -> None:
    """:func:`range_map_html` saved as one HTML page."""
    range_map_html(frame, **options).save(os.fspath(path))
