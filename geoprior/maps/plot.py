"""Pictures of range maps (matplotlib, an optional dependency: ``pip install geoprior[plot]``).

:func:`plot_range_map` draws a :func:`~geoprior.maps.range_map` frame over a land basemap
(Natural Earth 1:110m land, public domain, shipped as ``geoprior/data/land_110m.wkb`` and
rebuilt by ``benchmarks/make_land_outline.py``): cells coloured by probability with the
in-range area outlined, or the in-range cells filled; a legend and a title (species, month).
A frame with a ``month`` column (:func:`~geoprior.maps.monthly_range_maps`) becomes twelve
monthly panels in one figure; several species become one panel each.
"""

from __future__ import annotations

import calendar
import os
from functools import lru_cache
from importlib import resources

import numpy as np
import shapely

from ..errors import ConfigError, EmptyDataError, MissingDependencyError
from ..geo import cells_from_strings
from .grid import dissolve_cells

__all__ = [
    "check_request",
    "land_outline",
    "place_arrays",
    "plot_range_map",
    "require_pyplot",
    "save_png",
]

LAND = "#ece8dc"
LAND_EDGE = "#a39e8f"
SEA = "#dce9f2"
IN_RANGE = "#2b7a4b"
OUTLINE = "#b2182b"
CMAP = "YlGnBu"
#: Default figure sizes (inches): one panel, and per panel of a grid.
SINGLE_SIZE = (10.0, 6.0)
PANEL_SIZE = (4.5, 3.2)


def require_pyplot():
    """matplotlib's pyplot (Agg), or MissingDependencyError saying how to install it."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingDependencyError(
            "PNG range maps need matplotlib: pip install 'geoprior[plot]'"
        ) from None
    return plt


@lru_cache(maxsize=1)
def land_outline() -> shapely.MultiPolygon:
    """Natural Earth 1:110m land (public domain) as one MultiPolygon, lon/lat degrees."""
    with resources.as_file(resources.files("geoprior") / "data" / "land_110m.wkb") as path:
        return shapely.from_wkb(path.read_bytes())


def check_request(
    n_species: int, *, monthly: bool, dissolved: bool = False, color: str | None = None
) -> None:
    """Refuse a picture that cannot be drawn, before the map is computed: a monthly picture
    of more than one species, an unknown ``color``, probabilities of a dissolved map."""
    if monthly and n_species > 1:
        raise ConfigError(
            f"a monthly picture shows one species; got {n_species}: draw them one by one "
            "(or give --month/--date for one panel per species)"
        )
    if color is not None and color not in ("prob", "in_range"):
        raise ConfigError(f"color must be 'prob' or 'in_range', got {color!r}")
    if color == "prob" and dissolved:
        raise ConfigError("a dissolved map has no probabilities: use color='in_range'")


def place_arrays(places, species=None, month: int | None = None):
    """Latitudes and longitudes of training places to draw: ``(lat, lon)`` arrays, or an
    :class:`~geoprior.Observations` (then the presences of ``species``, and of ``month``
    when given and the records have dates).

    >>> place_arrays(([40.0, 41.0], [-75.0, -74.0]))
    (array([40., 41.]), array([-75., -74.]))
    """
    if all(hasattr(places, a) for a in ("lat", "lon", "species_index", "species")):
        keep = np.ones(len(places.lat), bool)
        if species is not None:
            names = list(places.species)
            wanted = [names.index(s) for s in species if s in names]
            keep &= np.isin(np.asarray(places.species_index), wanted)
        dates = getattr(places, "date", None)
        if month is not None and dates is not None:
            months = np.asarray(dates, "datetime64[M]").astype(np.int64) % 12 + 1
            keep &= ~np.isnat(np.asarray(dates)) & (months == month)
        return np.asarray(places.lat, np.float64)[keep], np.asarray(places.lon, np.float64)[keep]
    try:
        lat, lon = (np.asarray(v, np.float64).ravel() for v in places)
    except (TypeError, ValueError):
        raise ConfigError(
            f"places must be (lat, lon) arrays or an Observations, got {type(places).__name__}"
        ) from None
    if lat.shape != lon.shape:
        raise ConfigError(f"places: {lat.size} latitudes but {lon.size} longitudes")
    return lat, lon


def _panels(frame) -> list[tuple[str, object]]:
    """``(title, rows)`` of each panel: one per month, or one per species."""
    species = list(dict.fromkeys(frame["species"]))
    if "month" in frame.columns:
        check_request(len(species), monthly=True)
        return [(calendar.month_name[int(m)], rows) for m, rows in frame.groupby("month")]
    when = frame.attrs.get("month")
    when = calendar.month_name[when] if when else frame.attrs.get("date") or "year-round"
    if len(species) == 1:
        return [(f"{species[0]} — {when}", frame)]
    return [(f"{name} — {when}", frame[frame["species"] == name]) for name in species]


def _extent(frame, in_range) -> tuple[float, float, float, float]:
    box = frame.attrs.get("bbox")
    if box is not None and box[0] < box[2]:
        return tuple(box)
    shown = frame[in_range] if in_range.any() else frame
    w, s, e, n = shown.total_bounds
    pad_x, pad_y = max(5.0, 0.15 * (e - w)), max(4.0, 0.15 * (n - s))
    return (
        max(-180.0, w - pad_x),
        max(-90.0, s - pad_y),
        min(180.0, e + pad_x),
        min(90.0, n + pad_y),
    )


def plot_range_map(
    frame,
    *,
    color: str | None = None,
    title: str | None = None,
    extent: tuple[float, float, float, float] | None = None,
    figsize: tuple[float, float] | None = None,
    dpi: int = 120,
    ax=None,
    colorbar_label: str = "prior probability",
):
    """Draw a range map; returns the matplotlib Figure.

    Args:
        frame: a frame from :func:`~geoprior.maps.range_map` or
            :func:`~geoprior.maps.monthly_range_maps` (cells or dissolved).
        color: ``"prob"`` (cells coloured by probability on a square-root scale, so low
            values stay visible; the in-range area outlined; a colour bar) or ``"in_range"`` (in-range cells filled); default ``"prob"`` for
            cells, ``"in_range"`` for dissolved maps.
        title: the figure title (default: the species, for monthly pictures); with ``ax``,
            the panel's title (default: the species and month).
        extent: ``(west, south, east, north)`` shown; default the in-range cells with a
            margin (all cells when none is in range), or the map's bbox.
        figsize: inches; default 10 x 6 for one panel, 4.5 x 3.2 per panel of a grid.
        dpi: dots per inch (the PNG is ``figsize * dpi`` pixels).
        ax: a matplotlib Axes to draw one panel onto (one species, one date), e.g. to put
            several priors side by side; its colour bar takes room from that Axes alone and
            the size and dpi are the figure's own (``figsize`` is then an error).
        colorbar_label: what the colours are, e.g. the name of the prior's score.

    >>> import geoprior
    >>> import matplotlib.pyplot as plt  # doctest: +SKIP
    >>> fig = plot_range_map(geoprior.range_map(prior, "Setophaga virens"))  # doctest: +SKIP
    >>> fig, axes = plt.subplots(1, 2)  # doctest: +SKIP
    >>> plot_range_map(geoprior.range_map(prior, "Setophaga virens", month=6), ax=axes[0])  # doctest: +SKIP
    """
    plt = require_pyplot()
    from matplotlib.colors import PowerNorm
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    if len(frame) == 0:
        raise EmptyDataError("the range map has no rows to draw")
    cells = "prob" in frame.columns
    color = color or ("prob" if cells else "in_range")
    check_request(1, monthly=False, dissolved=not cells, color=color)
    panels = _panels(frame)
    in_range = frame["in_range"].to_numpy(bool) if cells else ~frame.geometry.is_empty.to_numpy()
    extent = extent or _extent(frame, in_range)
    n = len(panels)
    if ax is not None:
        if n != 1:
            raise ConfigError(
                f"ax= takes a map of one panel; this frame has {n} (one per month or species):"
                " draw them one by one"
            )
        if figsize is not None:
            raise ConfigError("figsize is the figure's own when drawing onto ax=")
        fig, axes = ax.figure, np.array([[ax]])
        if title is not None:
            panels = [(title, panels[0][1])]
    else:
        ncols = 1 if n == 1 else (4 if n > 6 else min(3, n))
        nrows = int(np.ceil(n / ncols))
        if figsize is None:
            figsize = (
                SINGLE_SIZE if n == 1 else (PANEL_SIZE[0] * ncols, PANEL_SIZE[1] * nrows + 0.8)
            )
        fig, axes = plt.subplots(nrows, ncols, figsize=figsize, dpi=dpi, squeeze=False)
    top = float(frame["prob"].max()) if cells else 0.0
    norm = PowerNorm(0.5, 0.0, top or 1.0) if color == "prob" else None
    land = _clip(np.array([land_outline()]), extent)
    w, s, e, n_ = extent
    for panel_ax, (panel_title, rows) in zip(axes.flat, panels):
        panel_ax.set_facecolor(SEA)
        _draw(panel_ax, land, facecolor=LAND, edgecolor=LAND_EDGE, linewidth=0.4)
        shown = rows.cx[w:e, s:n_]
        if color == "prob":
            _draw(
                panel_ax,
                shown.geometry.to_numpy(),
                array=shown["prob"].to_numpy(),
                cmap=CMAP,
                norm=norm,
                linewidth=0,
            )
            inside = shown["h3_cell"][shown["in_range"].to_numpy(bool)]
            if inside.size:
                _draw(
                    panel_ax,
                    np.array([dissolve_cells(cells_from_strings(inside))]),
                    facecolor="none",
                    edgecolor=OUTLINE,
                    linewidth=0.9,
                )
        else:
            keep = shown["in_range"].to_numpy(bool) if cells else ~shown.geometry.is_empty
            _draw(
                panel_ax,
                shown.geometry[keep].to_numpy(),
                facecolor=IN_RANGE,
                edgecolor="none",
                alpha=0.85,
            )
        panel_ax.set_xlim(w, e)
        panel_ax.set_ylim(s, n_)
        panel_ax.set_aspect(1.0 / max(0.2, np.cos(np.radians((s + n_) / 2))))
        panel_ax.set_title(panel_title, fontsize=11 if n == 1 else 9)
        panel_ax.tick_params(labelsize=7)
    for panel_ax in axes.flat[n:]:
        panel_ax.set_visible(False)
    thresholds = frame.attrs.get("thresholds", {})
    label = "in range"
    if len(thresholds) == 1:
        label += f" (p ≥ {next(iter(thresholds.values())):.3g})"
    if color == "prob":
        mappable = plt.cm.ScalarMappable(norm=norm, cmap=CMAP)
        fig.colorbar(mappable, ax=list(axes.flat[:n]), shrink=0.7, label=colorbar_label)
        handles = [Line2D([], [], color=OUTLINE, linewidth=1.2, label=label)]
    else:
        handles = [Patch(facecolor=IN_RANGE, label=label)]
    axes.flat[0].legend(handles=handles, loc="lower left", fontsize=8, framealpha=0.8)
    if ax is None and title is None and "month" in frame.columns:
        title = str(frame["species"].iloc[0])
    if ax is None and title:
        fig.suptitle(title, fontsize=13)
    return fig


def _clip(geoms: np.ndarray, extent) -> np.ndarray:
    clipped = shapely.clip_by_rect(geoms, *extent)
    return clipped[~shapely.is_empty(clipped)]


def _draw(ax, geoms: np.ndarray, **style) -> None:
    """Polygons (with holes) as one PathCollection."""
    from matplotlib.collections import PathCollection
    from matplotlib.path import Path as MplPath

    values = style.pop("array", None)
    paths, owners = [], []
    for i, geom in enumerate(geoms):
        for poly in getattr(geom, "geoms", [geom]):
            if poly.geom_type != "Polygon" or poly.is_empty:
                continue
            rings = [poly.exterior, *poly.interiors]
            verts = np.concatenate([np.asarray(r.coords) for r in rings])
            codes = np.concatenate(
                [
                    [MplPath.MOVETO] + [MplPath.LINETO] * (len(r.coords) - 2) + [MplPath.CLOSEPOLY]
                    for r in rings
                ]
            )
            paths.append(MplPath(verts, codes))
            owners.append(i)
    if not paths:
        return
    collection = PathCollection(paths, **style)
    if values is not None:
        collection.set_array(np.asarray(values)[owners])
    ax.add_collection(collection)


def save_png(frame, path: str | os.PathLike, *, metadata: dict | None = None, **options) -> None:
    """:func:`plot_range_map` saved as a PNG of ``figsize * dpi`` pixels; ``metadata``
    (``{"Title": ..., "Description": ...}``) goes into its text chunks."""
    plt = require_pyplot()
    fig = plot_range_map(frame, **options)
    try:
        fig.savefig(path, format="png", dpi=fig.dpi, metadata=metadata)
    finally:
        plt.close(fig)
