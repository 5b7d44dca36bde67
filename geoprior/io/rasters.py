"""Environmental rasters as covariates: GeoTIFFs (any raster GDAL reads) sampled at places.

A :class:`RasterCovariates` is a list of raster bands, one covariate each, and the rule
that samples them; :func:`open_rasters` builds one from paths. ``sample(lat, lon)``
returns ``(n, c)`` float32 values and raises :class:`~geoprior.errors.CoverageError`
(how many places, which raster, its bounds, the first place) where a raster has no
value; :meth:`RasterCovariates.lookup` gives the values with masks instead.

What the sampling does, and why:

- **CRS**: places (degrees, EPSG:4326) are reprojected to each raster's CRS with pyproj,
  so a UTM or Web Mercator raster is sampled where the place really is; a raster without
  a CRS is refused (its numbers could be anything). Geographic rasters whose longitudes
  run 0..360 are sampled at ``lon % 360``.
- **Method**: ``"nearest"`` (default) is the value of the pixel the place falls in, what
  ``rasterio``'s ``sample`` and a GIS's point query give, and the only right answer for
  categorical rasters (land cover). ``"bilinear"`` interpolates the four pixel centres
  around the place (for smooth fields: temperature, rainfall), leaving out neighbours that
  are nodata; a place is valid under either method exactly when its own pixel is.
- **Nodata**: a pixel is missing when it equals the band's nodata value, is masked by the
  file's mask band, or is NaN or infinite. Values are scaled by the band's ``scale`` and
  ``offset`` (CHELSA stores Kelvin / 10 this way), so the numbers are physical ones.
- **Bands**: ``path`` uses every band of the file (one covariate each, named by the file
  stem, or ``stem_<band>`` / the band's description for several); ``path:2`` or
  ``path:1,3`` chooses bands.
- **Speed**: rasters up to :data:`WHOLE_PIXELS` pixels are read once; larger ones by
  windows of :data:`TILE` x :data:`TILE` pixels, only those that hold a place, so memory
  stays bounded for 30-arc-second global layers. Measured in docs/covariates.md.

A prior trained on rasters records them (:meth:`RasterCovariates.record`: each raster's
absolute path, grid and file size, and the values at a few training places) in its
header; :func:`covariates_for` reopens them for maps and point queries and refuses a
raster that moved or whose grid or values changed.

Reading rasters needs the ``rasters`` extra (``pip install 'geoprior[rasters]'``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..errors import (
    ClassMismatchError,
    ConfigError,
    CoverageError,
    EmptyDataError,
    GeopriorWarning,
    MissingDependencyError,
    MissingFileError,
    PriorFileError,
    RasterError,
)
from ..observations import Observations
from ..validation import check_lat_lon, check_on_invalid

__all__ = [
    "METHODS",
    "RasterLayer",
    "RasterCovariates",
    "Lookup",
    "open_rasters",
    "attach_covariates",
    "covariates_for",
    "cell_covariates",
]

METHODS = ("nearest", "bilinear")
#: Rasters of at most this many pixels are read whole; larger ones by windows.
WHOLE_PIXELS = 1 << 24
#: Side of the windows a large raster is read by, in pixels.
TILE = 2048
#: Training places whose values a prior records, to tell a changed raster.
PROBES = 32
_KIND = "rasters"
_HINT = "pip install 'geoprior[rasters]'"


def _rasterio():
    try:
        import rasterio
    except ImportError:
        raise MissingDependencyError(
            f"reading covariate rasters needs rasterio: {_HINT}"
        ) from None
    return rasterio


@functools.lru_cache(maxsize=32)
def _transformer(crs: str):
    """lon/lat (EPSG:4326) -> ``crs``; ``None`` when ``crs`` is EPSG:4326 itself."""
    from pyproj import CRS, Transformer

    target = CRS.from_user_input(crs)
    if target.equals(CRS.from_epsg(4326), ignore_axis_order=True):
        return None
    return Transformer.from_crs(CRS.from_epsg(4326), target, always_xy=True)


@functools.lru_cache(maxsize=32)
def _is_geographic(crs: str) -> bool:
    from pyproj import CRS

    return bool(CRS.from_user_input(crs).is_geographic)


def _fmt(v: float) -> str:
    return f"{v:.6g}"


@dataclass(frozen=True)
class RasterLayer:
    """One covariate: one band of one raster file, with the grid it was opened with.

    ``path`` is absolute; ``band`` counts from 1; ``bounds`` are the raster's
    ``(west, south, east, north)`` in degrees (west > east: it crosses the antimeridian).
    The other fields describe the grid and the file (its size in ``bytes``) so a raster
    that changed can be told from the one a prior was trained on.
    """

    name: str
    path: str
    band: int
    crs: str
    transform: tuple[float, ...]
    width: int
    height: int
    dtype: str
    nodata: float | None
    scale: float
    offset: float
    bytes: int
    bounds: tuple[float, float, float, float]

    @property
    def file(self) -> str:
        """The file name, for messages."""
        return Path(self.path).name

    def describe(self) -> str:
        """``bio1 (bio1.tif band 1, EPSG:4326, 30 x 20 pixels)``."""
        crs = self.crs if len(self.crs) < 40 else self.crs[:37] + "..."
        return (
            f"{self.name} ({self.file} band {self.band}, {crs}, "
            f"{self.width} x {self.height} pixels)"
        )

    def where(self) -> str:
        """``bio1.tif (covering lon -10..30, lat 35..60)``."""
        w, s, e, n = self.bounds
        return f"{self.file} (covering lon {_fmt(w)}..{_fmt(e)}, lat {_fmt(s)}..{_fmt(n)})"

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["transform"] = list(self.transform)
        d["bounds"] = list(self.bounds)
        if self.nodata is not None and not math.isfinite(self.nodata):
            d["nodata"] = repr(self.nodata)  # JSON has no NaN: "nan", "inf"
        return d

    @classmethod
    def from_dict(cls, d: dict) -> RasterLayer:
        d = dict(d)
        nodata = d.get("nodata")
        if isinstance(nodata, str):
            d["nodata"] = float(nodata)
        d["transform"] = tuple(float(v) for v in d["transform"])
        d["bounds"] = tuple(float(v) for v in d["bounds"])
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def grid(self) -> dict:
        """What must match for two layers to sample alike (everything but the path, the
        name and the file size)."""
        d = self.to_dict()
        for key in ("name", "path", "bytes", "bounds"):
            d.pop(key)
        return d


class Lookup(NamedTuple):
    """Raster values at places: ``values`` ``(n, c)`` float32 (NaN where missing) and
    per-layer masks ``outside`` (beyond the raster's bounds) and ``nodata`` (inside, on
    a pixel without a value), both ``(n, c)``."""

    values: np.ndarray
    outside: np.ndarray
    nodata: np.ndarray

    @property
    def valid(self) -> np.ndarray:
        """``(n,)``: every raster has a value there."""
        return ~(self.outside | self.nodata).any(axis=1)


_BANDS = re.compile(r"^(?P<path>.+):(?P<bands>\d+(?:,\d+)*)$")


def _parse_spec(spec) -> tuple[Path, list[int] | None]:
    """``path`` (every band) or ``path:1,3`` (those bands); a file whose own name ends in
    ``:2`` is taken as it is."""
    text = os.fspath(spec)
    path = Path(text)
    if path.exists():
        return path, None
    m = _BANDS.match(text)
    if m and Path(m["path"]).exists():
        return Path(m["path"]), [int(b) for b in m["bands"].split(",")]
    raise MissingFileError(f"covariate raster {text} does not exist")


def _open_layers(spec) -> list[RasterLayer]:
    rasterio = _rasterio()
    from rasterio.warp import transform_bounds

    path, bands = _parse_spec(spec)
    if path.is_dir():
        raise RasterError(f"covariate raster {path} is a folder; give the raster file")
    try:
        with warnings.catch_warnings():  # a raster without a CRS is refused below, clearly
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            ds = rasterio.open(path)
    except rasterio.errors.RasterioIOError as e:
        raise RasterError(f"{path} is not a raster GDAL can read: {e}") from None
    with ds:
        if ds.crs is None:
            raise RasterError(
                f"{path} has no coordinate reference system, so its pixels cannot be placed; "
                "set one (e.g. gdal_edit.py -a_srs EPSG:4326 FILE)"
            )
        count = ds.count
        chosen = list(range(1, count + 1)) if bands is None else bands
        bad = [b for b in chosen if not 1 <= b <= count]
        if bad:
            raise RasterError(
                f"{path} has {count} band(s) (1..{count}); band {bad[0]} was asked for"
            )
        if len(set(chosen)) != len(chosen):
            raise RasterError(f"{spec}: a band is chosen twice")
        crs = ds.crs.to_string()
        w, s, e, n = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds, densify_pts=21)
        if e - w >= 360 - 1e-9:
            w, e = -180.0, 180.0
        else:
            w, e = ((w + 180) % 360) - 180, ((e + 180) % 360) - 180
            if e == -180.0:
                e = 180.0
        bounds = (float(w), float(max(s, -90.0)), float(e), float(min(n, 90.0)))
        descriptions = ds.descriptions
        names = _band_names(path, chosen, count, descriptions)
        return [
            RasterLayer(
                name=name,
                path=str(path.resolve()),
                band=b,
                crs=crs,
                transform=tuple(float(v) for v in tuple(ds.transform)[:6]),
                width=int(ds.width),
                height=int(ds.height),
                dtype=str(ds.dtypes[b - 1]),
                nodata=None if ds.nodatavals[b - 1] is None else float(ds.nodatavals[b - 1]),
                scale=float(ds.scales[b - 1]),
                offset=float(ds.offsets[b - 1]),
                bytes=int(path.stat().st_size),
                bounds=bounds,
            )
            for name, b in zip(names, chosen)
        ]


def _band_names(path: Path, bands: list[int], count: int, descriptions) -> list[str]:
    if count == 1:
        return [path.stem]
    own = [descriptions[b - 1] for b in bands]
    if all(own) and len(set(own)) == len(own):
        return list(own)
    return [f"{path.stem}_{b}" for b in bands]


def open_rasters(paths: Sequence[str | os.PathLike] | str, method: str = "nearest"):
    """Open covariate rasters: a :class:`RasterCovariates` of every band asked for, in
    order (``"path"``: all its bands; ``"path:2"``, ``"path:1,3"``: those bands).

    Raises :class:`~geoprior.errors.MissingFileError` for a missing file and
    :class:`~geoprior.errors.RasterError` for a file without a CRS, a band it lacks, or
    two covariates of one name.

    Example:
        >>> rasters = open_rasters(["bio1.tif", "bio12.tif"])  # doctest: +SKIP
        >>> rasters.sample([47.5], [8.2])  # doctest: +SKIP
        array([[ 9.1, 1120. ]], dtype=float32)
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if not paths:
        raise ConfigError("no covariate rasters given")
    layers = [layer for p in paths for layer in _open_layers(p)]
    return RasterCovariates(layers, method)


class RasterCovariates:
    """Covariates sampled from raster bands: the source a raster-trained prior records
    and maps and point queries sample (see the module docstring for the rules).

    Build one with :func:`open_rasters`, or from a prior's record with
    :meth:`from_record`.
    """

    def __init__(self, layers: Sequence[RasterLayer], method: str = "nearest"):
        if method not in METHODS:
            raise ConfigError(f"covariate sampling must be one of {METHODS}, got {method!r}")
        self.layers = tuple(layers)
        self.method = method
        names = [layer.name for layer in self.layers]
        dupe = next((n for n in names if names.count(n) > 1), None)
        if dupe is not None:
            paths = [layer.path for layer in self.layers if layer.name == dupe]
            raise RasterError(
                f"two covariates are named {dupe!r} ({', '.join(paths)}); rename one file"
            )

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(layer.name for layer in self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __repr__(self) -> str:
        return f"RasterCovariates({list(self.names)}, method={self.method!r})"

    def describe(self) -> str:
        """One line per covariate, for logs."""
        return "\n".join(f"  {layer.describe()}" for layer in self.layers)

    # ------------------------------------------------------------------ sampling
    def lookup(self, lat, lon) -> Lookup:
        """Values of every covariate at places the caller already checked (degrees), with
        the masks of where each raster has none; nothing raises for missing values."""
        _rasterio()
        lat = np.asarray(lat, np.float64).reshape(-1)
        lon = np.asarray(lon, np.float64).reshape(-1)
        n, c = lat.size, len(self.layers)
        values = np.full((n, c), np.nan, np.float32)
        outside = np.zeros((n, c), bool)
        nodata = np.zeros((n, c), bool)
        for j, layer in enumerate(self.layers):
            values[:, j], outside[:, j], nodata[:, j] = _sample_layer(layer, lat, lon, self.method)
        return Lookup(values, outside, nodata)

    def sample(self, lat, lon, *, what: str = "places") -> np.ndarray:
        """``(n, c)`` float32 values at ``lat, lon`` (degrees, validated here); raises
        :class:`~geoprior.errors.CoverageError` naming the raster, how many of the
        ``what`` have no value there, the raster's bounds and the first such place."""
        lat, lon = check_lat_lon(lat, lon)
        found = self.lookup(lat, lon)
        problem = self.problem(found, lat, lon, what)
        if problem:
            raise CoverageError(problem)
        return found.values

    def problem(self, found: Lookup, lat, lon, what: str = "places") -> str | None:
        """The message for the first raster without a value at some of the places (or
        ``None``): places outside its bounds first, then places on nodata."""
        lat, lon = np.asarray(lat).reshape(-1), np.asarray(lon).reshape(-1)
        n = lat.size
        for j, layer in enumerate(self.layers):
            for mask, how in (
                (found.outside[:, j], f"lie outside {layer.where()}"),
                (found.nodata[:, j], f"fall on nodata in {layer.file} (band {layer.band})"),
            ):
                if mask.any():
                    i = int(np.flatnonzero(mask)[0])
                    return (
                        f"{int(mask.sum())} of {n} {what} {how}; first: row {i} = "
                        f"({_fmt(lat[i])}, {_fmt(lon[i])})"
                    )
        return None

    def bounds(self) -> tuple[float, float, float, float]:
        """``(west, south, east, north)`` degrees where every raster may have values (a
        box that holds their common area; ``west > east`` crosses the antimeridian)."""
        south = max(layer.bounds[1] for layer in self.layers)
        north = min(layer.bounds[3] for layer in self.layers)
        plain = [layer.bounds for layer in self.layers if layer.bounds[0] <= layer.bounds[2]]
        if len(plain) == len(self.layers):
            west, east = max(b[0] for b in plain), min(b[2] for b in plain)
        else:  # some cross the antimeridian: the narrowest one's box (the rest by rejection)
            narrowest = min(self.layers, key=lambda la: (la.bounds[2] - la.bounds[0]) % 360)
            west, east = narrowest.bounds[0], narrowest.bounds[2]
        if south >= north or (west >= east and len(plain) == len(self.layers)):
            raise RasterError(
                "the covariate rasters do not overlap: "
                + "; ".join(layer.where() for layer in self.layers)
            )
        return west, south, east, north

    def random_places(
        self,
        n: int,
        seed: int = 0,
        *,
        box: tuple[float, float, float, float] | None = None,
        keep: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
        max_draws: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """Up to ``n`` places uniform over the sphere's area where every raster has a
        value (rejection sampling in :meth:`bounds`, narrowed to ``box`` and to where
        ``keep(lat, lon)`` is true): ``(lat, lon, values, drawn)``, ``drawn`` the places
        tried. Fewer than ``n`` come back when ``max_draws`` (default ``200 n``, at least
        a million) are tried first."""
        w, s, e, nn = self.bounds()
        if box is not None:
            w, s, e, nn = _narrow((w, s, e, nn), box)
        rng = np.random.default_rng([int(seed), 7])
        limit = max_draws if max_draws is not None else max(200 * n, 1_000_000)
        lat_out, lon_out, val_out, got, drawn, rate = [], [], [], 0, 0, 1.0
        span = (e - w) % 360 if w > e else e - w
        zs, zn = math.sin(math.radians(s)), math.sin(math.radians(nn))
        while got < n and drawn < limit and span > 0 and zn > zs:
            k = int(min(max((n - got) / max(rate, 1e-3) * 1.2, 1024), 1 << 20, limit - drawn))
            lat = np.degrees(np.arcsin(rng.uniform(zs, zn, k)))
            lon = (w + rng.uniform(0.0, span, k) + 180.0) % 360.0 - 180.0
            ok = np.ones(k, bool) if box is None else _in_box(lat, lon, box)
            if keep is not None and ok.any():
                ok[ok] = keep(lat[ok], lon[ok])
            found = self.lookup(lat[ok], lon[ok])
            ok[ok] = found.valid
            values = found.values[found.valid]
            drawn += k
            rate = max((got + ok.sum()) / drawn, 1e-6)
            take = min(int(ok.sum()), n - got)
            lat_out.append(lat[ok][:take])
            lon_out.append(lon[ok][:take])
            val_out.append(values[:take])
            got += take
        if not lat_out:
            return np.empty(0), np.empty(0), np.empty((0, len(self)), np.float32), drawn
        return np.concatenate(lat_out), np.concatenate(lon_out), np.concatenate(val_out), drawn

    # ------------------------------------------------------------------ records
    def record(self, probe_lat, probe_lon, **extra) -> dict:
        """What a prior keeps of its rasters (JSON): the method, each layer
        (:class:`RasterLayer`), and the values at up to :data:`PROBES` of the given places
        (training places where every raster has a value), so :meth:`changes` can tell a
        raster that changed from the one trained on. ``extra`` fields are added as given."""
        lat = np.asarray(probe_lat, np.float64).reshape(-1)
        lon = np.asarray(probe_lon, np.float64).reshape(-1)
        rng = np.random.default_rng(0)
        if lat.size > 64 * PROBES:  # a random share is enough to find PROBES places
            rows = np.sort(rng.choice(lat.size, 64 * PROBES, replace=False))
            lat, lon = lat[rows], lon[rows]
        places = np.unique(np.stack([lat, lon], 1), axis=0)
        if len(places) > PROBES:
            pick = rng.choice(len(places), PROBES, replace=False)
            places = places[np.sort(pick)]
        found = self.lookup(places[:, 0], places[:, 1])
        places = places[found.valid]
        return {
            "kind": _KIND,
            "method": self.method,
            "layers": [layer.to_dict() for layer in self.layers],
            "probes": {
                "lat": places[:, 0].tolist(),
                "lon": places[:, 1].tolist(),
                "values": found.values[found.valid].astype(float).tolist(),
            },
            **extra,
        }

    @classmethod
    def from_record(
        cls, record: dict, *, check: bool = True, owner: str = "the prior", made: str = "trained on"
    ) -> RasterCovariates:
        """Reopen the rasters a prior recorded, at their recorded paths. With ``check``
        (default) a raster that is gone raises :class:`~geoprior.errors.MissingFileError`
        and one whose grid or values at the recorded training places differ raises
        :class:`~geoprior.errors.RasterError`, both saying how to pass the rasters
        explicitly. ``owner`` and ``made`` name the record's holder in messages (a column
        store: ``"the store S"``, ``"converted from"``)."""
        if not isinstance(record, dict) or record.get("kind") != _KIND:
            raise PriorFileError(f"{owner}'s covariate_source is not a raster record: {str(record)[:80]}")
        try:
            recorded = [RasterLayer.from_dict(d) for d in record["layers"]]
        except (KeyError, TypeError, ValueError) as e:
            raise PriorFileError(
                f"{owner}'s covariate_source is malformed ({type(e).__name__}: {e}); "
                "pass the rasters explicitly (CLI: --covariates)"
            ) from None
        missing = [la for la in recorded if not Path(la.path).is_file()]
        if missing:
            raise MissingFileError(
                f"{owner} was {made} covariate raster {missing[0].path}, which is no "
                f"longer there ({len(missing)} of {len(recorded)} rasters missing); pass the "
                "rasters in its order: "
                + " ".join(la.file for la in recorded)
                + " (CLI: --covariates; Python: covariates=[...])"
            )
        current = []
        for path in dict.fromkeys(la.path for la in recorded):
            bands = [la.band for la in recorded if la.path == path]
            try:
                opened = _open_layers(f"{path}:{','.join(map(str, bands))}")
            except RasterError as e:
                raise RasterError(f"{e} (recorded by {owner})") from None
            current += opened
        by_key = {(la.path, la.band): la for la in current}
        layers = [
            dataclasses.replace(by_key[(la.path, la.band)], name=la.name) for la in recorded
        ]
        out = cls(layers, record.get("method", "nearest"))
        if check:
            changed = out.changes(record)
            if changed:
                raise RasterError(
                    f"a covariate raster changed since {owner} was {made.split()[0]}: "
                    + "; ".join(changed)
                    + ". Pass the rasters explicitly (CLI: --covariates) to map with them anyway"
                )
        return out

    def changes(self, record: dict) -> list[str]:
        """How these rasters differ from a prior's ``record``, position by position: a
        grid (CRS, transform, size, type, nodata, scale) or values at the recorded
        training places; ``[]`` when they sample alike. A file size that differs while
        both match is only a re-encoding and is not listed."""
        recorded = [RasterLayer.from_dict(d) for d in record["layers"]]
        out = []
        for mine, theirs in zip(self.layers, recorded):
            a, b = mine.grid(), theirs.grid()
            a.pop("band"), b.pop("band")
            diff = [k for k in a if a[k] != b[k] and not _same_crs(k, a[k], b[k])]
            if diff:
                shown = ", ".join(f"{k} {b[k]} -> {a[k]}" for k in diff[:3])
                out.append(f"{mine.file} band {mine.band}: {shown}")
        if out:
            return out
        probes = record.get("probes") or {}
        lat = np.asarray(probes.get("lat", []), np.float64)
        if lat.size:
            lon = np.asarray(probes["lon"], np.float64)
            want = np.asarray(probes["values"], np.float32).reshape(lat.size, -1)
            got = RasterCovariates(self.layers, record.get("method", self.method)).lookup(lat, lon)
            for j, layer in enumerate(self.layers):
                same = np.isclose(got.values[:, j], want[:, j], rtol=1e-6, atol=0.0)
                if not same.all():
                    i = int(np.flatnonzero(~same)[0])
                    out.append(
                        f"{layer.file} band {layer.band}: {int((~same).sum())} of {lat.size} "
                        f"training places have other values (first: ({_fmt(lat[i])}, "
                        f"{_fmt(lon[i])}) was {_fmt(float(want[i, j]))}, now "
                        f"{_fmt(float(got.values[i, j]))})"
                    )
        return out


def _same_crs(key: str, a, b) -> bool:
    if key != "crs":
        return False
    from pyproj import CRS

    return CRS.from_user_input(a) == CRS.from_user_input(b)


def _in_box(lat, lon, box) -> np.ndarray:
    w, s, e, n = box
    inside_lon = (lon >= w) & (lon <= e) if w <= e else (lon >= w) | (lon <= e)
    return (lat >= s) & (lat <= n) & inside_lon


def _narrow(a, b):
    """The intersection of two boxes when neither crosses the antimeridian (else ``a``:
    the caller rejects places outside ``b``)."""
    if a[0] > a[2] or b[0] > b[2]:
        return a
    w, s, e, n = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    if w >= e or s >= n:
        return (w, s, w, s)  # empty: nothing is drawn
    return (w, s, e, n)


# ---------------------------------------------------------------------- one layer
def _pixels(layer: RasterLayer, lat: np.ndarray, lon: np.ndarray):
    """Fractional pixel ``(col, row)`` of each place (NaN where it cannot be projected)."""
    from affine import Affine

    transformer = _transformer(layer.crs)
    if transformer is None:
        x, y = lon.copy(), lat.copy()
    else:
        with np.errstate(all="ignore"):
            x, y = transformer.transform(lon, lat, errcheck=False)
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    fwd = Affine(*layer.transform)
    if _is_geographic(layer.crs) and fwd.b == 0 and fwd.d == 0:
        left = min(fwd.c, fwd.c + fwd.a * layer.width)
        x = left + (x - left) % 360.0  # a 0..360 raster is sampled at lon % 360
    inv = ~fwd
    return inv.a * x + inv.b * y + inv.c, inv.d * x + inv.e * y + inv.f


def _sample_layer(layer: RasterLayer, lat, lon, method: str):
    """``(values float32, outside, nodata)`` of one layer at places."""
    n = lat.size
    values = np.full(n, np.nan, np.float32)
    nodata = np.zeros(n, bool)
    if n == 0:
        return values, np.zeros(0, bool), nodata
    col, row = _pixels(layer, lat, lon)
    w, h = layer.width, layer.height
    with np.errstate(invalid="ignore"):
        outside = ~((col >= 0) & (col < w) & (row >= 0) & (row < h))
    idx = np.flatnonzero(~outside)
    if idx.size == 0:
        return values, outside, nodata
    c, r = col[idx], row[idx]
    ci = np.minimum(np.floor(c).astype(np.int64), w - 1)
    ri = np.minimum(np.floor(r).astype(np.int64), h - 1)
    if method == "nearest":
        v, ok = _gather(layer, ri, ci)
    else:
        fx, fy = c - 0.5, r - 0.5
        x0, y0 = np.floor(fx).astype(np.int64), np.floor(fy).astype(np.int64)
        wx, wy = fx - x0, fy - y0
        xs = (np.clip(x0, 0, w - 1), np.clip(x0 + 1, 0, w - 1))
        ys = (np.clip(y0, 0, h - 1), np.clip(y0 + 1, 0, h - 1))
        rows = np.concatenate([ri, ys[0], ys[0], ys[1], ys[1]])
        cols = np.concatenate([ci, xs[0], xs[1], xs[0], xs[1]])
        got, valid = _gather(layer, rows, cols)
        got, valid = got.reshape(5, -1), valid.reshape(5, -1)
        weights = np.stack([(1 - wx) * (1 - wy), wx * (1 - wy), (1 - wx) * wy, wx * wy])
        weights = np.where(valid[1:], weights, 0.0)
        total = weights.sum(0)
        ok = valid[0]
        with np.errstate(invalid="ignore", divide="ignore"):
            v = (weights * np.where(valid[1:], got[1:], 0.0)).sum(0) / total
    values[idx[ok]] = v[ok].astype(np.float32)
    nodata[idx[~ok]] = True
    return values, outside, nodata


def _gather(layer: RasterLayer, rows: np.ndarray, cols: np.ndarray):
    """Band values (float64, scaled) at integer pixels inside the raster, and whether each
    has one; a whole small raster read once, a large one by the windows that hold pixels."""
    rasterio = _rasterio()
    from rasterio.windows import Window

    out = np.full(rows.size, np.nan, np.float64)
    ok = np.zeros(rows.size, bool)
    w, h = layer.width, layer.height
    with rasterio.open(layer.path) as ds:
        if w * h <= WHOLE_PIXELS:
            _pick(ds.read(layer.band, masked=True), rows, cols, out, ok, slice(None))
        else:
            per_row = -(-w // TILE)
            key = (rows // TILE) * per_row + cols // TILE
            order = np.argsort(key, kind="stable")
            ks = key[order]
            starts = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
            for a, b in zip(starts, np.r_[starts[1:], ks.size]):
                sel = order[a:b]
                r0, c0 = int(ks[a] // per_row) * TILE, int(ks[a] % per_row) * TILE
                win = Window(c0, r0, min(TILE, w - c0), min(TILE, h - r0))
                band = ds.read(layer.band, window=win, masked=True)
                _pick(band, rows[sel] - r0, cols[sel] - c0, out, ok, sel)
    out = out * layer.scale + layer.offset
    return out, ok


def _pick(band, rows, cols, out, ok, where) -> None:
    data = np.asarray(band.data)[rows, cols].astype(np.float64)
    masked = np.ma.getmaskarray(band)[rows, cols]
    out[where] = data
    ok[where] = ~masked & np.isfinite(data)


# ---------------------------------------------------------------------- observations
def attach_covariates(
    obs: Observations,
    rasters: RasterCovariates,
    *,
    on_invalid: str = "raise",
    names: Sequence[str] | None = None,
    what: str = "observations",
) -> Observations:
    """``obs`` with the rasters' values at its places as its covariates (named ``names``,
    default the rasters' names).

    Observations where a raster has no value (outside its bounds, on nodata) raise
    :class:`~geoprior.errors.CoverageError` with ``on_invalid="raise"``; with ``"drop"``
    they are left out and counted in ``report.dropped`` (``"outside the covariate
    rasters"``, ``"on raster nodata"``). Observations that already carry covariates
    raise :class:`~geoprior.errors.ConfigError`: a prior takes its covariates from one
    source.

    >>> obs = attach_covariates(obs, open_rasters(["bio1.tif"]), on_invalid="drop")  # doctest: +SKIP
    """
    check_on_invalid(on_invalid)
    if obs.covariate_names:
        raise ConfigError(
            f"the {what} already carry covariates {list(obs.covariate_names)}; a prior takes "
            "its covariates from the table or from rasters, not both"
        )
    names = tuple(rasters.names if names is None else names)
    if len(names) != len(rasters):
        raise ClassMismatchError(f"{len(names)} names for {len(rasters)} rasters")
    found = rasters.lookup(obs.lat, obs.lon)
    keep = found.valid
    if on_invalid == "raise" or not keep.any():
        problem = rasters.problem(found, obs.lat, obs.lon, what)
        if problem:
            if on_invalid == "raise":
                raise CoverageError(f"{problem} (on_invalid='drop' leaves them out; CLI: --on-invalid drop)")
            raise EmptyDataError(f"no {what} left: {problem}")
    report = obs.report.copy()
    outside = found.outside.any(1)
    nodata = found.nodata.any(1) & ~outside
    for reason, mask in (("outside the covariate rasters", outside), ("on raster nodata", nodata)):
        if mask.any():
            report.dropped[reason] = report.dropped.get(reason, 0) + int(mask.sum())
    if obs.report.rows_kept:
        report.rows_kept = obs.report.rows_kept - int((~keep).sum())
    kept = obs[np.flatnonzero(keep)] if not keep.all() else obs
    return dataclasses.replace(
        kept, covariates=found.values[keep], covariate_names=names, report=report
    )


def dropped_note(before: Observations, after: Observations) -> str | None:
    """``"left out 3 of 120 observations: 2 outside the covariate rasters, 1 on raster
    nodata"`` when :func:`attach_covariates` dropped rows, else ``None``."""
    lost = len(before) - len(after)
    if not lost:
        return None
    parts = [
        f"{after.report.dropped[k] - before.report.dropped.get(k, 0)} {k}"
        for k in ("outside the covariate rasters", "on raster nodata")
        if after.report.dropped.get(k, 0) > before.report.dropped.get(k, 0)
    ]
    return f"left out {lost} of {len(before)} observations: {', '.join(parts)}"


# ---------------------------------------------------------------------- priors
def covariates_for(prior, given=None) -> RasterCovariates | None:
    """The rasters to sample for ``prior``'s covariates: ``None`` for a prior without
    covariates; ``given`` (paths or a :class:`RasterCovariates`) when passed; else the
    rasters its header records, reopened and checked (:meth:`RasterCovariates.from_record`).

    Given rasters must be as many as the prior's covariates, in its order: the names of
    the recorded ones in another order raise :class:`~geoprior.errors.ConfigError`;
    rasters that differ from the recorded ones (a climate scenario on the same grid, say)
    are used with a :class:`~geoprior.errors.GeopriorWarning` saying how. They are
    sampled with the method the prior was trained with.
    """
    names = tuple(getattr(prior, "covariate_names", ()) or ())
    header = getattr(prior, "header", None)
    record = header.get("covariate_source") if isinstance(header, dict) else None
    if given is not None and not isinstance(given, RasterCovariates):
        given = list([given] if isinstance(given, (str, os.PathLike)) else given) or None
    if not names:
        if given is not None:
            raise ConfigError("this prior was trained without covariates; it takes no rasters")
        return None
    if given is None:
        if record is None:
            raise ConfigError(
                f"this prior needs covariates {list(names)} at every place and records no "
                "rasters for them: pass rasters in that order (CLI: --covariates A.tif B.tif; "
                "Python: covariates=[...])"
            )
        return RasterCovariates.from_record(record)
    method = record.get("method", "nearest") if record else None
    if isinstance(given, RasterCovariates):
        rasters = given if method in (None, given.method) else RasterCovariates(given.layers, method)
    else:
        rasters = open_rasters(given, method=method or "nearest")
    if len(rasters) != len(names):
        raise ClassMismatchError(
            f"this prior takes {len(names)} covariates {list(names)}; got {len(rasters)} "
            f"raster bands {list(rasters.names)}"
        )
    if rasters.names != names and sorted(rasters.names) == sorted(names):
        raise ConfigError(
            f"the rasters are given in another order than the prior's covariates: got "
            f"{list(rasters.names)}, the prior takes {list(names)}"
        )
    if record is not None:
        changed = rasters.changes(record)
        if changed:
            warnings.warn(
                "sampling rasters other than those the prior was trained on: "
                + "; ".join(changed),
                GeopriorWarning,
                stacklevel=2,
            )
    elif rasters.names != names:
        warnings.warn(
            f"the prior's covariates are {list(names)}; sampling rasters "
            f"{list(rasters.names)} in their place, by position",
            GeopriorWarning,
            stacklevel=2,
        )
    return rasters


def cell_covariates(rasters: RasterCovariates | None, lat, lon, *, strict: bool):
    """Covariates at map cell centres: ``(keep, values, about)``. ``keep`` (``None``: every
    cell) are the cells where every raster has a value, ``values`` their ``(kept, c)``
    covariates, ``about`` what was left out (``{"cells", "outside", "nodata"}``, also
    kept in a map's ``attrs["covariates"]``). With ``strict`` (a region the caller asked
    for) cells outside a raster's bounds raise :class:`~geoprior.errors.CoverageError`;
    otherwise the map is cut to the rasters. Cells on nodata (sea, lakes, ice) are left
    out either way, and counted; none left raises
    :class:`~geoprior.errors.EmptyDataError`."""
    if rasters is None:
        return None, None, None
    found = rasters.lookup(lat, lon)
    outside = found.outside.any(1)
    if strict and outside.any():
        problem = rasters.problem(
            Lookup(found.values, found.outside, np.zeros_like(found.nodata)), lat, lon, "cells"
        )
        raise CoverageError(f"{problem}: choose a region the rasters cover")
    keep = found.valid
    about = {
        "rasters": [layer.path for layer in rasters.layers],
        "cells": int(np.size(lat)),
        "outside": int(outside.sum()),
        "nodata": int((~keep & ~outside).sum()),
    }
    if not keep.any():
        bounds = ", ".join(_fmt(v) for v in rasters.bounds())
        raise EmptyDataError(
            f"none of the {about['cells']} map cells has a value in every covariate raster "
            f"({about['outside']} outside them, {about['nodata']} on nodata; the rasters "
            f"cover W,S,E,N = {bounds})"
        )
    return (None if keep.all() else keep), found.values[keep], about
