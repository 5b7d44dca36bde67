"""Pictures of range maps (matplotlib, an optional dependency: ``pip install geoprior[plot]``).

:func:`plot_range_map` draws a :func:`~geoprior.maps.range_map` frame as a map: cells
coloured by probability (a square-root scale with a colour bar that says what the number
is) with the in-range area outlined, or the in-range cells filled; over Natural Earth
land, lakes, country borders and first-level borders (USA, Canada, Brazil, Australia), all
public domain and embedded in ``geoprior/data`` (rebuilt by ``benchmarks/make_land_outline.py``
and ``benchmarks/make_basemap.py``); a labelled graticule; a title with the species (and
its common name when the prior knows it), the date and the threshold; the training places
when given. The projection follows the extent: Lambert azimuthal equal-area centred on a
regional view, Equal Earth for (nearly) the whole world, both by pyproj through
geopandas' ``to_crs``. A frame with a ``month`` column
(:func:`~geoprior.maps.monthly_range_maps`) becomes twelve monthly panels on one colour
scale; several species become one panel each.
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
    "choose_projection",
    "land_outline",
    "place_arrays",
    "plot_range_map",
    "project_points",
    "require_pyplot",
    "save_png",
    "view_extent",
]

LAND = "#efebe0"
LAND_EDGE = "#8c8576"
SEA = "#d9e6ef"
LAKE_EDGE = "#8fa9bd"
BORDER = "#6f6a60"
GRATICULE = "#5b6770"
IN_RANGE = "#2b7a4b"
OUTLINE = "#b2182b"
#: The probability colours: matplotlib's YlGnBu from its light yellow-green on, starting at
#: the land colour, so that cells near 0 read as bare land and borders stay visible.
CMAP_BASE, CMAP_FROM = "YlGnBu", 0.12
#: Default figure sizes (inches): one panel, and per panel of a grid.
SINGLE_SIZE = (10.0, 6.0)
PANEL_SIZE = (4.5, 3.2)
#: Views at least this wide (degrees of longitude) or tall (latitude) are world maps.
WORLD_WIDTH, WORLD_HEIGHT = 150.0, 100.0
_CRS = "EPSG:4326"


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
def colormap():
    """The probability colour map (see :data:`CMAP_BASE`)."""
    from matplotlib import colormaps
    from matplotlib.colors import LinearSegmentedColormap

    base = colormaps[CMAP_BASE]
    return LinearSegmentedColormap.from_list(
        "geoprior", [LAND, *base(np.linspace(CMAP_FROM, 1.0, 64))]
    )


def _embedded(name: str):
    with resources.as_file(resources.files("geoprior") / "data" / name) as path:
        return shapely.from_wkb(path.read_bytes())


@lru_cache(maxsize=1)
def land_outline() -> shapely.MultiPolygon:
    """Natural Earth 1:110m land (public domain) as one MultiPolygon, lon/lat degrees."""
    return _embedded("land_110m.wkb")


@lru_cache(maxsize=1)
def _basemap() -> dict:
    """The embedded Natural Earth layers: land, lakes, country and state borders."""
    return {
        "land": land_outline(),
        "lakes": _embedded("lakes_50m.wkb"),
        "borders": _embedded("borders_110m.wkb"),
        "states": _embedded("states_50m.wkb"),
    }


# ---------------------------------------------------------------------------- requests
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
            dates = np.asarray(dates, "datetime64[D]")
            months = dates.astype("datetime64[M]").astype(np.int64) % 12 + 1
            keep &= ~np.isnat(dates) & (months == month)
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


# ---------------------------------------------------------------------------- the view
def _lon_span(lon: np.ndarray) -> tuple[float, float]:
    """The shortest longitude interval ``(west, east)`` holding every ``lon``: the
    complement of the widest gap between them (``east`` passes 180 when the interval
    crosses the antimeridian).

    >>> _lon_span(np.array([170.0, -175.0, 178.0]))
    (170.0, 185.0)
    """
    lon = np.unique(np.asarray(lon, np.float64) % 360.0)
    gaps = np.diff(np.r_[lon, lon[0] + 360.0])
    i = int(np.argmax(gaps))
    west, east = lon[(i + 1) % lon.size], lon[i]
    width = (east - west) % 360.0
    west = (west + 180.0) % 360.0 - 180.0
    return float(west), float(west + width)


def view_extent(frame, in_range=None) -> tuple[float, float, float, float]:
    """``(west, south, east, north)`` degrees a picture of ``frame`` shows: the map's
    ``bbox``, else its in-range cells (all cells when none is) with a margin. ``east`` may
    pass 180 when the view crosses the antimeridian; a view of nearly the whole world is
    the whole world."""
    box = frame.attrs.get("bbox")
    if box is not None:
        w, s, e, n = (float(v) for v in box)
        return (w, s, e if e > w else e + 360.0, n)
    if in_range is None:
        in_range = _in_range(frame)
    shown = frame[in_range] if in_range.any() else frame
    if len(shown) == 0:
        return (-180.0, -90.0, 180.0, 90.0)
    xy = shapely.get_coordinates(shown.geometry.to_numpy())
    west, east = _lon_span(xy[:, 0])
    south, north = float(xy[:, 1].min()), float(xy[:, 1].max())
    pad_x, pad_y = max(4.0, 0.12 * (east - west)), max(3.0, 0.12 * (north - south))
    west, east = west - pad_x, east + pad_x
    south, north = max(-90.0, south - pad_y), min(90.0, north + pad_y)
    if east - west >= WORLD_WIDTH or north - south >= WORLD_HEIGHT:
        centre = ((west + east) / 2.0 + 180.0) % 360.0 - 180.0
        return (centre - 180.0, -90.0, centre + 180.0, 90.0)
    return (west, south, east, north)


def choose_projection(extent) -> str:
    """The PROJ string of the picture of ``extent``: Equal Earth (equal-area, for world
    maps) centred on the view's longitude when it spans at least 150 degrees of longitude
    or 100 of latitude, else the Lambert azimuthal equal-area projection centred on the
    view (true areas, shapes kept near its centre, at any latitude, poles included).

    >>> choose_projection((-100.0, 25.0, -60.0, 55.0))
    '+proj=laea +lat_0=40 +lon_0=-80 +datum=WGS84 +units=m +no_defs'
    >>> choose_projection((-180.0, -90.0, 180.0, 90.0))
    '+proj=eqearth +lon_0=0 +datum=WGS84 +units=m +no_defs'
    """
    w, s, e, n = extent
    lon_0 = ((w + e) / 2.0 + 180.0) % 360.0 - 180.0
    if e - w >= WORLD_WIDTH or n - s >= WORLD_HEIGHT:
        return f"+proj=eqearth +lon_0={lon_0:.6g} +datum=WGS84 +units=m +no_defs"
    return (
        f"+proj=laea +lat_0={(s + n) / 2.0:.6g} +lon_0={lon_0:.6g} +datum=WGS84 +units=m +no_defs"
    )


def _lon_0(projection: str) -> float:
    for part in projection.split():
        if part.startswith("+lon_0="):
            return float(part.split("=")[1])
    return 0.0


def _window(geoms: np.ndarray, lon_0: float) -> np.ndarray:
    """Geometries in [-180, 180] moved into the window ``lon_0 +- 180`` (those crossing its
    edge cut there), so that a projection centred on ``lon_0`` draws none across the map."""
    geoms = np.asarray(geoms, dtype=object)
    if lon_0 == 0 or geoms.size == 0:
        return geoms
    # the seam is the window's edge inside [-180, 180]; the part beyond it moves a turn
    seam = lon_0 - 180.0 if lon_0 > 0 else lon_0 + 180.0
    shift = 360.0 if lon_0 > 0 else -360.0
    beyond_box = (-180.0, -90.0, seam, 90.0) if lon_0 > 0 else (seam, -90.0, 180.0, 90.0)
    within_box = (seam, -90.0, 180.0, 90.0) if lon_0 > 0 else (-180.0, -90.0, seam, 90.0)
    bounds = shapely.bounds(geoms)
    beyond = bounds[:, 2] <= seam if lon_0 > 0 else bounds[:, 0] >= seam
    crossing = (bounds[:, 0] < seam) & (bounds[:, 2] > seam)
    out = geoms.copy()
    out[beyond] = shapely.transform(geoms[beyond], lambda xy: xy + [shift, 0.0])
    if crossing.any():
        part = geoms[crossing]
        moved = shapely.transform(
            shapely.clip_by_rect(part, *beyond_box), lambda xy: xy + [shift, 0.0]
        )
        out[crossing] = shapely.union(moved, shapely.clip_by_rect(part, *within_box))
    return out


def _project(geoms: np.ndarray, projection: str) -> np.ndarray:
    import geopandas as gpd

    if projection == "lonlat" or len(geoms) == 0:
        return np.asarray(geoms, dtype=object)
    return gpd.GeoSeries(geoms, crs=_CRS).to_crs(projection).to_numpy()


def project_points(ax, lat, lon) -> tuple[np.ndarray, np.ndarray]:
    """``x, y`` on a map :func:`plot_range_map` drew onto ``ax`` of places in degrees (to
    draw more on it: ``ax.scatter(*project_points(ax, lat, lon))``)."""
    projection = getattr(ax, "geoprior_projection", "lonlat")
    lat = np.asarray(lat, np.float64).ravel()
    lon = np.asarray(lon, np.float64).ravel()
    if projection == "lonlat":
        return lon, lat
    lon = (lon - _lon_0(projection) + 180.0) % 360.0 - 180.0 + _lon_0(projection)
    points = _project(shapely.points(lon, lat), projection)
    return shapely.get_x(points), shapely.get_y(points)


def _densified_box(w, s, e, n, step: float = 1.0) -> shapely.Polygon:
    lons = np.linspace(w, e, max(2, int(np.ceil((e - w) / step)) + 1))
    lats = np.linspace(s, n, max(2, int(np.ceil((n - s) / step)) + 1))
    ring = np.concatenate(
        [
            np.column_stack([lons, np.full(lons.size, s)]),
            np.column_stack([np.full(lats.size, e), lats]),
            np.column_stack([lons[::-1], np.full(lons.size, n)]),
            np.column_stack([np.full(lats.size, w), lats[::-1]]),
        ]
    )
    return shapely.Polygon(ring)


class _Map:
    """One view: its extent, projection, the clip box of the data and the axes limits."""

    def __init__(self, extent, projection: str):
        self.extent = w, s, e, n = extent
        self.projection = projection
        self.world = e - w >= 359.0
        if projection == "lonlat":
            self.lon_0 = 0.0 if e <= 180 else 180.0
            self.clip = (w, s, e, n)
            self.outline = shapely.box(w, s, e, n)
            self.limits = (w, e, s, n)
            return
        self.lon_0 = _lon_0(projection)
        if self.world:
            self.clip = (self.lon_0 - 180.0, -90.0, self.lon_0 + 180.0, 90.0)
        else:
            pad_x, pad_y = max(20.0, e - w), max(15.0, n - s)
            self.clip = (
                max(w - pad_x, self.lon_0 - 180.0),
                max(-90.0, s - pad_y),
                min(e + pad_x, self.lon_0 + 180.0),
                min(90.0, n + pad_y),
            )
        box = _densified_box(*(self.clip if self.world else extent), step=0.5)
        projected = _project(np.array([box]), projection)[0]
        self.outline = projected if self.world else None
        x0, y0, x1, y1 = projected.bounds
        self.limits = (x0, x1, y0, y1)

    def prepare(self, geoms) -> np.ndarray:
        """Geometries in degrees as drawn: into the window, clipped, projected."""
        geoms = _window(np.asarray(geoms, dtype=object), self.lon_0)
        geoms = shapely.clip_by_rect(geoms, *self.clip)
        keep = ~shapely.is_empty(geoms)
        out = np.empty(geoms.size, dtype=object)
        out[keep] = _project(geoms[keep], self.projection)
        out[~keep] = None
        return out


# ---------------------------------------------------------------------------- drawing
def _in_range(frame) -> np.ndarray:
    if "in_range" in frame.columns:
        return frame["in_range"].to_numpy(bool)
    return ~frame.geometry.is_empty.to_numpy()


def _species_label(name: str, common: dict) -> str:
    return f"{name} ({common[name]})" if common.get(name) else name


def _rule_text(attrs: dict) -> str:
    rule = attrs.get("threshold_rule")
    return {
        "stored": "threshold stored in the prior",
        "lpt": "lowest presence threshold",
        "f1": "F1-best threshold",
        "given": "given threshold",
    }.get(rule, "")


def _when(attrs: dict) -> str:
    month = attrs.get("month")
    if month:
        return calendar.month_name[int(month)]
    return attrs.get("date") or "year-round"


def _panels(frame) -> list[tuple[str, object, int | None]]:
    """``(title, rows, month)`` of each panel: one per month, or one per species."""
    species = list(dict.fromkeys(frame["species"]))
    attrs = frame.attrs
    common = attrs.get("common_names") or {}
    thresholds = attrs.get("thresholds") or {}
    if "month" in frame.columns:
        check_request(len(species), monthly=True)
        return [
            (calendar.month_name[int(m)], rows, int(m))
            for m, rows in frame.groupby("month", sort=True)
        ]
    when = _when(attrs)
    out = []
    for name in species:
        rows = frame if len(species) == 1 else frame[frame["species"] == name]
        title = f"{_species_label(name, common)} — {when}"
        if len(species) > 1 and name in thresholds:
            title += f"\nin range: p ≥ {thresholds[name]:.3g}"
        out.append((title, rows, attrs.get("month")))
    return out


def _suptitle(frame) -> str | None:
    """The figure's title: species (common name), date and threshold, when one panel does
    not say it all."""
    attrs = frame.attrs
    species = list(dict.fromkeys(frame["species"]))
    common = attrs.get("common_names") or {}
    thresholds = attrs.get("thresholds") or {}
    rule = _rule_text(attrs)
    if len(species) == 1:
        name = species[0]
        head = _species_label(name, common)
        if "month" not in frame.columns:
            head += f" — {_when(attrs)}"
        else:
            head += " — by month"
        if name in thresholds:
            head += f"\nin range: p ≥ {thresholds[name]:.3g}" + (f" ({rule})" if rule else "")
        return head
    return f"{_when(attrs)}" + (f" — in range at each species' {rule}" if rule else "")


def _with_threshold(panel_title: str, frame) -> str:
    """A one-species panel's title with the threshold (and its rule) under it."""
    thresholds = frame.attrs.get("thresholds") or {}
    if len(thresholds) != 1 or "\n" in panel_title:
        return panel_title
    rule = _rule_text(frame.attrs)
    value = next(iter(thresholds.values()))
    return panel_title + f"\nin range: p ≥ {value:.3g}" + (f" ({rule})" if rule else "")


def _ticks(span: float) -> float:
    for step in (1, 2, 5, 10, 15, 20, 30, 45, 60):
        if span / step <= 6:
            return float(step)
    return 90.0


def _graticule(ax, view: _Map, fontsize: float) -> None:
    """Meridians and parallels, labelled where they leave the map at its bottom and left."""
    from matplotlib.collections import LineCollection

    w, s, e, n = view.clip if view.world else view.extent
    step = _ticks(max(e - w, (n - s) * 1.5))
    lat_step = _ticks(n - s) if not view.world else 30.0
    lons = np.arange(np.ceil(w / step) * step, e + 1e-9, step)
    lats = np.arange(np.ceil(max(s, -89.0) / lat_step) * lat_step, min(n, 89.0) + 1e-9, lat_step)
    if view.world:
        lons = lons[(lons > w + 1e-6) & (lons < e - 1e-6)]
    s_clip, n_clip = view.clip[1], view.clip[3]
    lines, kinds, values = [], [], []
    for x in lons:
        ys = np.linspace(s_clip, n_clip, 181)
        lines.append(shapely.LineString(np.column_stack([np.full(ys.size, x), ys])))
        kinds.append("lon")
        values.append(x)
    for y in lats:
        xs = np.linspace(view.clip[0], view.clip[2], 361)
        lines.append(shapely.LineString(np.column_stack([xs, np.full(xs.size, y)])))
        kinds.append("lat")
        values.append(y)
    if not lines:
        return
    projected = _project(np.array(lines, dtype=object), view.projection)
    x0, x1, y0, y1 = ax.get_xlim() + ax.get_ylim()
    frame_box = shapely.box(x0, y0, x1, y1)
    visible = frame_box if view.outline is None else shapely.intersection(frame_box, view.outline)
    segments = []
    for line, kind, value in zip(projected, kinds, values):
        inside = shapely.intersection(line, visible)
        if inside.is_empty:
            continue
        for part in getattr(inside, "geoms", [inside]):
            if part.geom_type == "LineString":
                segments.append(np.asarray(part.coords))
        ends = shapely.get_coordinates(shapely.intersection(line, visible.boundary))
        if view.outline is None and ends.size:  # a regional map: labels on its frame's edges
            tol = 1e-6 * max(x1 - x0, y1 - y0)
            edge = np.abs(ends[:, 1] - y0) < tol if kind == "lon" else np.abs(ends[:, 0] - x0) < tol
            ends = ends[edge]
        if ends.size == 0:
            continue
        if kind == "lon":
            x, y = ends[np.argmin(ends[:, 1])]
            label = _degrees(value, "EW")
            offset, ha, va = (0, -3), "center", "top"
        else:
            x, y = ends[np.argmin(ends[:, 0])]
            label = _degrees(value, "NS")
            offset, ha, va = (-3, 0), "right", "center"
        ax.annotate(
            label,
            (x, y),
            xytext=offset,
            textcoords="offset points",
            ha=ha,
            va=va,
            fontsize=fontsize,
            color=GRATICULE,
            annotation_clip=False,
        )
    ax.add_collection(
        LineCollection(segments, colors=GRATICULE, linewidths=0.35, alpha=0.45, zorder=6)
    )


def _degrees(value: float, hemispheres: str) -> str:
    value = (value + 180.0) % 360.0 - 180.0 if hemispheres == "EW" else value
    if abs(value) < 1e-9 or (hemispheres == "EW" and abs(abs(value) - 180.0) < 1e-9):
        return f"{abs(value):g}°"
    side = hemispheres[0] if value > 0 else hemispheres[1]
    return f"{abs(value):g}°{side}"


def _paths(geoms: np.ndarray) -> tuple[list, list]:
    """matplotlib Paths of polygons (holes kept) and the index of the geometry of each."""
    from matplotlib.path import Path as MplPath

    paths, owners = [], []
    for i, geom in enumerate(geoms):
        if geom is None:
            continue
        for poly in getattr(geom, "geoms", [geom]):
            if poly.geom_type != "Polygon" or poly.is_empty:
                continue
            rings = [poly.exterior, *poly.interiors]
            verts = np.concatenate([np.asarray(r.coords)[:, :2] for r in rings])
            codes = np.concatenate(
                [
                    [MplPath.MOVETO] + [MplPath.LINETO] * (len(r.coords) - 2) + [MplPath.CLOSEPOLY]
                    for r in rings
                ]
            )
            paths.append(MplPath(verts, codes))
            owners.append(i)
    return paths, owners


def _draw(ax, geoms: np.ndarray, **style) -> None:
    """Polygons (with holes) as one PathCollection."""
    from matplotlib.collections import PathCollection

    values = style.pop("array", None)
    paths, owners = _paths(geoms)
    if not paths:
        return
    collection = PathCollection(paths, **style)
    if values is not None:
        collection.set_array(np.asarray(values)[owners])
    ax.add_collection(collection)


def _draw_lines(ax, geoms: np.ndarray, **style) -> None:
    from matplotlib.collections import LineCollection

    segments = []
    for geom in geoms:
        if geom is None:
            continue
        for line in getattr(geom, "geoms", [geom]):
            if line.geom_type == "LineString" and not line.is_empty:
                segments.append(np.asarray(line.coords)[:, :2])
    if segments:
        ax.add_collection(LineCollection(segments, **style))


def _lines_of(geom) -> np.ndarray:
    """A (Multi)LineString as an array of its lines (so each is clipped on its own)."""
    return np.array(list(getattr(geom, "geoms", [geom])), dtype=object)


def _basemap_layers(view: _Map, basemap: bool) -> dict:
    layers = _basemap()
    out = {"land": view.prepare(np.array(list(layers["land"].geoms), dtype=object))}
    if basemap:
        out["lakes"] = view.prepare(np.array(list(layers["lakes"].geoms), dtype=object))
        out["borders"] = view.prepare(_lines_of(layers["borders"]))
        out["states"] = view.prepare(_lines_of(layers["states"]))
    return out


def plot_range_map(
    frame,
    *,
    color: str | None = None,
    title: str | None = None,
    extent: tuple[float, float, float, float] | None = None,
    figsize: tuple[float, float] | None = None,
    dpi: int = 120,
    ax=None,
    colorbar_label: str | None = None,
    places=None,
    projection: str = "auto",
    basemap: bool = True,
):
    """Draw a range map; returns the matplotlib Figure.

    Args:
        frame: a frame from :func:`~geoprior.maps.range_map` or
            :func:`~geoprior.maps.monthly_range_maps` (cells or dissolved).
        color: ``"prob"`` (cells coloured by probability on a square-root scale, so low
            values stay visible; the in-range area outlined; a colour bar) or
            ``"in_range"`` (in-range cells filled); default ``"prob"`` for cells,
            ``"in_range"`` for dissolved maps.
        title: the figure title (default: species, common name, date and threshold); with
            ``ax``, the panel's title.
        extent: ``(west, south, east, north)`` degrees shown (``east`` past 180 or below
            ``west`` crosses the antimeridian); default the map's bbox, else its in-range
            cells with a margin (all cells when none is in range); nearly the whole world
            becomes the whole world.
        figsize: inches; default 10 x 6 for one panel, 4.5 x 3.2 per panel of a grid.
        dpi: dots per inch (the PNG is ``figsize * dpi`` pixels).
        ax: a matplotlib Axes to draw one panel onto (one species, one date), e.g. to put
            several priors side by side; its colour bar takes room from that Axes alone and
            the size and dpi are the figure's own (``figsize`` is then an error). Draw more
            on it with :func:`project_points`.
        colorbar_label: what the colours are (default: "presence probability" for a prior
            with a presence output, else "prior probability").
        places: training places drawn as dots: ``(lat, lon)`` arrays or an
            :class:`~geoprior.Observations` (the presences of the species drawn, of each
            panel's month in a monthly picture).
        projection: ``"auto"`` (:func:`choose_projection` of the extent), ``"lonlat"``
            (plain longitude and latitude) or a PROJ string.
        basemap: draw lakes and borders (land and sea always).

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
    in_range = _in_range(frame)
    if extent is not None:
        w, s, e, n = (float(v) for v in extent)
        extent = (w, s, e if e > w else e + 360.0, n)
    extent = extent or view_extent(frame, in_range)
    projection = choose_projection(extent) if projection == "auto" else projection
    view = _Map(extent, projection)
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
            panels = [(title, panels[0][1], panels[0][2])]
        else:
            panels = [(_with_threshold(panels[0][0], frame), panels[0][1], panels[0][2])]
    else:
        ncols = 1 if n == 1 else (4 if n > 6 else min(3, n))
        nrows = int(np.ceil(n / ncols))
        if figsize is None:
            figsize = (
                SINGLE_SIZE if n == 1 else (PANEL_SIZE[0] * ncols, PANEL_SIZE[1] * nrows + 0.8)
            )
        fig, axes = plt.subplots(
            nrows, ncols, figsize=figsize, dpi=dpi, squeeze=False, layout="constrained"
        )
        if n == 1:
            first = title if title is not None else _with_threshold(panels[0][0], frame)
            panels = [(first, panels[0][1], panels[0][2])]
    top = float(frame["prob"].max()) if cells else 0.0
    norm = PowerNorm(0.5, 0.0, top or 1.0) if color == "prob" else None
    layers = _basemap_layers(view, basemap)
    # every panel draws the same cells: their projected shapes once
    codes = frame["h3_cell"].to_numpy() if cells else None
    shapes = {}
    if cells:
        unique, first = np.unique(codes, return_index=True)
        prepared = view.prepare(frame.geometry.to_numpy()[first])
        shapes = dict(zip(unique.tolist(), prepared))
    fontsize = 7 if n == 1 else 6
    places_drawn = 0
    for panel_ax, (panel_title, rows, month) in zip(axes.flat, panels):
        panel_ax.geoprior_projection = projection
        x0, x1, y0, y1 = view.limits
        panel_ax.set_xlim(x0, x1)
        panel_ax.set_ylim(y0, y1)
        if projection == "lonlat":
            panel_ax.set_aspect(1.0 / max(0.2, np.cos(np.radians((extent[1] + extent[3]) / 2))))
        else:
            panel_ax.set_aspect("equal")
        if view.outline is not None:
            panel_ax.set_facecolor("white")
            _draw(panel_ax, np.array([view.outline]), facecolor=SEA, edgecolor="none", zorder=0)
        else:
            panel_ax.set_facecolor(SEA)
        _draw(panel_ax, layers["land"], facecolor=LAND, edgecolor="none", zorder=1)
        if cells:
            geoms = np.array([shapes[c] for c in rows["h3_cell"].tolist()], dtype=object)
        else:
            geoms = view.prepare(rows.geometry.to_numpy())
        inside = _in_range(rows)
        if color == "prob":
            _draw(  # edges in the cell's own colour: no seams between cells
                panel_ax,
                geoms,
                array=rows["prob"].to_numpy(),
                cmap=colormap(),
                norm=norm,
                edgecolors="face",
                linewidth=0.3,
                zorder=2,
            )
        else:
            _draw(
                panel_ax, geoms[inside], facecolor=IN_RANGE, edgecolor="none", alpha=0.85, zorder=2
            )
        if "lakes" in layers:
            _draw(
                panel_ax,
                layers["lakes"],
                facecolor=SEA,
                edgecolor=LAKE_EDGE,
                linewidth=0.3,
                zorder=3,
            )
            # borders with a light halo: readable over dark cells and pale land alike
            for name, width in (("states", 0.3), ("borders", 0.55)):
                _draw_lines(
                    panel_ax,
                    layers[name],
                    colors="white",
                    linewidths=width + 0.6,
                    alpha=0.35,
                    zorder=4,
                )
                _draw_lines(panel_ax, layers[name], colors=BORDER, linewidths=width, zorder=4)
        _draw(
            panel_ax,
            layers["land"],
            facecolor="none",
            edgecolor=LAND_EDGE,
            linewidth=0.4,
            zorder=4,
        )
        if color == "prob" and cells and inside.any():
            outline = dissolve_cells(cells_from_strings(rows["h3_cell"][inside]))
            _draw(
                panel_ax,
                view.prepare(np.array([outline])),
                facecolor="none",
                edgecolor=OUTLINE,
                linewidth=1.0,
                zorder=5,
            )
        if places is not None:
            species = list(dict.fromkeys(rows["species"]))
            lat, lon = place_arrays(places, species, month if "month" in frame.columns else None)
            if lat.size:
                x, y = project_points(panel_ax, lat, lon)
                panel_ax.scatter(
                    x,
                    y,
                    s=6 if n == 1 else 3,
                    c="black",
                    edgecolors="white",
                    linewidths=0.3,
                    zorder=7,
                    gid="training places",
                )
            places_drawn += lat.size
        panel_ax.set_xticks([])
        panel_ax.set_yticks([])
        for spine in panel_ax.spines.values():
            spine.set_visible(view.outline is None)
            spine.set_linewidth(0.6)
        _graticule(panel_ax, view, fontsize)
        panel_ax.set_title(panel_title, fontsize=10 if n == 1 else 9)
    for panel_ax in axes.flat[n:]:
        panel_ax.set_visible(False)
    thresholds = frame.attrs.get("thresholds") or {}
    label = "in range"
    if len(thresholds) == 1:
        label += f" (p ≥ {next(iter(thresholds.values())):.3g})"
    if color == "prob":
        mappable = plt.cm.ScalarMappable(norm=norm, cmap=colormap())
        if colorbar_label is None:
            output = frame.attrs.get("output")
            colorbar_label = "presence probability" if output == "presence" else "prior probability"
            colorbar_label += " (square-root scale)"
        bar = fig.colorbar(mappable, ax=list(axes.flat[:n]), shrink=0.75, label=colorbar_label)
        bar.ax.tick_params(labelsize=7)
        handles = [Line2D([], [], color=OUTLINE, linewidth=1.2, label=label)]
    else:
        handles = [Patch(facecolor=IN_RANGE, label=label)]
    if places is not None:
        handles.append(
            Line2D(
                [],
                [],
                marker="o",
                linestyle="none",
                markersize=3.5,
                markerfacecolor="black",
                markeredgecolor="white",
                label=f"training places ({places_drawn:,})",
            )
        )
    axes.flat[0].legend(handles=handles, loc="lower left", fontsize=7, framealpha=0.85)
    if ax is None and (n > 1 and "month" in frame.columns or title is not None and n > 1):
        fig.suptitle(title if title is not None else _suptitle(frame), fontsize=12)
    return fig


def save_png(frame, path: str | os.PathLike, *, metadata: dict | None = None, **options) -> None:
    """:func:`plot_range_map` saved as a PNG of ``figsize * dpi`` pixels; ``metadata``
    (``{"Title": ..., "Description": ...}``) goes into its text chunks."""
    plt = require_pyplot()
    fig = plot_range_map(frame, **options)
    try:
        fig.savefig(path, format="png", dpi=fig.dpi, metadata=metadata)
    finally:
        plt.close(fig)
