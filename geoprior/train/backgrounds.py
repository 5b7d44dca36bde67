"""Background places, where the assume-negative losses assume absences: the sampler the
jitted step calls, the places drawn where covariate rasters have values
(:func:`raster_background`), and the training places a prior keeps to tell how far a
query is from its data."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import ConfigError, EmptyDataError
from ..geo import EARTH_RADIUS_KM, unit_xyz
from ..maps.land import land_cells
from ..observations import Observations

__all__ = ["Background", "raster_background", "support_places"]

#: Places kept to tell how far a query is from the training data.
SUPPORT_PLACES = 8000
#: At most this many background places are drawn from covariate rasters.
RASTER_PLACES = 2_000_000


class Background:
    """Where uniform background places are drawn: tables (numpy, passed to the jitted step
    as replicated arrays) and a pure sampler. Target-group places come with the batch."""

    def __init__(self, kind: str, bbox, place_lat, place_lon, far_km=None):
        parts = kind.split("+")
        self.use_target = "target" in parts
        self.uniform = next((p for p in parts if p != "target"), None)
        self.bbox, self.res = bbox, 0.0
        self.tables: dict[str, np.ndarray] = {}
        if self.uniform in ("land", "extent", "far"):
            box = bbox if self.uniform == "extent" else (-180.0, -90.0, 180.0, 90.0)
            south, west, res, w = land_cells(box[0], box[1], box[2], box[3])
            if self.uniform == "far":
                far = _far_from(south + res / 2, west + res / 2, place_lat, place_lon, far_km)
                south, west, w = south[far], west[far], w[far] / max(w[far].sum(), 1e-30)
            if len(w):
                self.res = float(res)
                self.tables = {
                    "south": south.astype(np.float32),
                    "west": west.astype(np.float32),
                    "cdf": np.cumsum(w).astype(np.float32),
                }

    def sample(self, tables, key, n: int, target=None):
        """``(lat, lon, from_target)`` of n background places; ``target`` holds the batch's
        target-group places (``bg_lat``, ``bg_lon``), used for about half of them."""
        k1, k2 = jax.random.split(key)
        if self.uniform is None:
            return target["bg_lat"], target["bg_lon"], jnp.ones((n,), bool)
        lat_u, lon_u = self._uniform(tables, k2, n)
        if not self.use_target:
            return lat_u, lon_u, jnp.zeros((n,), bool)
        take = jax.random.bernoulli(k1, 0.5, (n,))
        return (
            jnp.where(take, target["bg_lat"], lat_u),
            jnp.where(take, target["bg_lon"], lon_u),
            take,
        )

    def _uniform(self, tables, key, n):
        k1, k2, k3 = jax.random.split(key, 3)
        if self.uniform == "uniform" or (not tables and self.uniform == "land"):
            z = jax.random.uniform(k1, (n,), minval=-1.0, maxval=1.0)
            return jnp.degrees(jnp.arcsin(z)), jax.random.uniform(
                k2, (n,), minval=-180.0, maxval=180.0
            )
        if not tables:  # extent without land cells (e.g. small islands): the box
            w, s, e, nn = self.bbox
            span = (e - w) % 360 if w > e else e - w
            zs, zn = math.sin(math.radians(s)), math.sin(math.radians(nn))
            z = jax.random.uniform(k1, (n,), minval=zs, maxval=zn)
            lon = w + jax.random.uniform(k2, (n,), minval=0.0, maxval=span)
            return jnp.degrees(jnp.arcsin(z)), (lon + 180.0) % 360.0 - 180.0
        cdf = tables["cdf"]
        i = jnp.clip(
            jnp.searchsorted(cdf, jax.random.uniform(k1, (n,)) * cdf[-1]), 0, cdf.shape[0] - 1
        )
        jitter = jax.random.uniform(k3, (n, 2)) * self.res
        return tables["south"][i] + jitter[:, 0], tables["west"][i] + jitter[:, 1]


def raster_background(
    rasters, kind: str, data: Observations, bbox, far_km: float, seed: int = 0
) -> tuple[Observations | None, dict]:
    """Background places for a prior whose covariates are sampled from ``rasters`` (a
    :class:`~geoprior.io.rasters.RasterCovariates`), as extra background rows with their
    covariates, and a summary for the prior's header.

    The network needs covariates at every background place, so places are drawn only
    where every raster has a value (uniform over the sphere's area there: rejection
    sampling), following the ``background`` rule as it reads without rasters:

    - ``"target"``: no extra places; the target group (the observations' own places,
      already sampled) is the whole background.
    - ``"target+far"`` (the ``"auto"`` default): raster places farther than ``far_km``
      from every observed place; when there are none (rasters clipped to the study
      area), places within the data's padded extent ``bbox``, as the land background
      falls back to its extent.
    - ``"target+extent"``: raster places within ``bbox``.

    As many places are drawn as there are observations (at most :data:`RASTER_PLACES`),
    so about half the background draws of a step come from each half, as ``+`` says;
    the places are undated (year-round), as extra background places are. Pure
    ``"uniform"``, ``"land"``, ``"extent"`` and ``"far"`` are refused with covariates:
    the observations' places are always part of the background pool.
    """
    parts = kind.split("+")
    uniform = next((p for p in parts if p != "target"), None)
    if "target" not in parts or uniform not in (None, "extent", "far"):
        raise ConfigError(
            f"background {kind!r} cannot be used with covariate rasters; use 'target', "
            "'target+extent' or 'target+far' (the default)"
        )
    if uniform is None:
        return None, {"kind": "target", "places": 0}
    n = min(len(data), RASTER_PLACES)
    keep = None
    if uniform == "far":

        def keep(lat, lon):
            return _far_from(lat, lon, data.lat, data.lon, far_km)

    box = tuple(bbox) if uniform == "extent" else None
    lat, lon, values, drawn = rasters.random_places(n, seed, box=box, keep=keep)
    about = {"kind": uniform, "places": n}
    if uniform == "far" and lat.size == 0:
        lat, lon, values, more = rasters.random_places(n, seed, box=tuple(bbox))
        drawn += more
        about.update(
            kind="extent",
            fallback=f"no place farther than {far_km:g} km from the data has raster values",
        )
    if lat.size == 0:
        raise EmptyDataError(
            f"no background place with a value in every covariate raster after {drawn:,} "
            f"draws ({about['kind']} background); the rasters are nodata almost everywhere"
        )
    about.update(distinct=int(lat.size), drawn=int(drawn))
    if lat.size < n:  # the half that + promises: the places found, drawn again
        pick = np.random.default_rng([int(seed), 8]).integers(0, lat.size, n)
        lat, lon, values = lat[pick], lon[pick], values[pick]
    return (
        Observations(
            lat=lat.astype(np.float64),
            lon=lon.astype(np.float64),
            date=np.full(n, np.datetime64("NaT"), dtype="datetime64[D]"),
            species_index=np.zeros(n, np.int32),
            species=data.species,
            covariates=values.astype(np.float32),
            covariate_names=data.covariate_names,
        ),
        about,
    )


def support_places(place_lat, place_lon, km: float, max_places: int = SUPPORT_PLACES) -> np.ndarray:
    """``(m, 2)`` lat/lon standing for the training places: places merged on a grid of
    ``km / 20`` (none moves by more than 4% of ``km``), the grid doubled until at most
    ``max_places`` remain, so every training place stays near a kept one. Used to tell how
    far a place is from the data."""
    cell = max(km / 20.0 / 111.0, 1e-3)  # degrees
    pts = np.stack([place_lat, place_lon], 1)
    while True:
        places = np.unique(np.round(pts / cell), axis=0) * cell
        if len(places) <= max_places:
            return places.astype(np.float32)
        cell *= 2.0


def _far_from(
    lat, lon, place_lat, place_lon, km: float, max_places: int = SUPPORT_PLACES
) -> np.ndarray:
    """Mask of points farther than ``km`` from every place (the places merged by
    :func:`support_places`, so the cost is bounded for millions of them); chunked dot
    products of unit vectors."""
    places = support_places(place_lat, place_lon, km, max_places)
    p = unit_xyz(places[:, 0], places[:, 1]).astype(np.float32)
    cos_limit = np.cos(km / EARTH_RADIUS_KM)
    out = np.empty(len(lat), bool)
    step = max(1, (1 << 25) // len(p))  # (step, places) products of at most 128 MB
    for start in range(0, len(lat), step):
        q = unit_xyz(lat[start : start + step], lon[start : start + step]).astype(np.float32)
        out[start : start + step] = (q @ p.T).max(1) < cos_limit
    return out
