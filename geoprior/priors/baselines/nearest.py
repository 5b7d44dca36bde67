"""A Gaussian kernel on great-circle distance: :class:`NearestNeighborPrior`."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from ...errors import ClassMismatchError, ConfigError
from ...geo import EARTH_RADIUS_KM, unit_xyz
from ...observations import Observations
from ...persistence import ArraySpec, Schema, field, register_kind, save_folder
from ...query import Query, prepare_query
from .common import (
    NON_NEGATIVE,
    check_observations,
    check_positive,
    check_species,
    frequencies,
    header_species,
    rows_per_chunk,
    saved_array,
    species_header,
)
from .counts import Counts, counts_arrays, counts_from, counts_load, counts_specs, gather

__all__ = ["NearestNeighborPrior", "AUTO_BANDWIDTHS_KM", "KERNEL_CUTOFF"]

#: Bandwidths (km) tried by ``NearestNeighborPrior.fit(bandwidth="auto")``.
AUTO_BANDWIDTHS_KM = np.geomspace(0.1, 10_000.0, 21)
#: Kernel weights beyond this many bandwidths (below 1.5e-8) are taken as 0.
KERNEL_CUTOFF = 6.0
#: Held-out locations scored for each bandwidth tried: at most ``AUTO_HELD_OUT``, fewer
#: (down to a fifth) when ``held-out x training locations`` would exceed ``AUTO_WORK``.
AUTO_HELD_OUT = 500
AUTO_WORK = 20_000_000
#: The nearest-neighbour prior keeps a dense ``locations x species`` table up to this size.
_DENSE_TABLE_VALUES = 1 << 22


def _chord2(a_xyz: np.ndarray, b_xyz_t: np.ndarray) -> np.ndarray:
    """``(len(a), L)`` squared chord lengths between unit vectors (``b`` given as ``(3, L)``)."""
    dot = a_xyz[:, :1] * b_xyz_t[0] + a_xyz[:, 1:2] * b_xyz_t[1] + a_xyz[:, 2:3] * b_xyz_t[2]
    return np.clip(2.0 - 2.0 * dot, 0.0, 4.0)


def _chord2_to_km(chord2: np.ndarray) -> np.ndarray:
    """Great-circle km from squared chord lengths on the unit sphere."""
    return 2.0 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(chord2) / 2.0)


class NearestNeighborPrior:
    """Kernel-weighted species frequencies of nearby observations; build it with :meth:`fit`.

    For a query place ``x``, each training location ``j`` (observations at identical
    coordinates are pooled) gets a Gaussian weight on great-circle distance,
    ``w_j = exp(-d(x, j)^2 / (2 h^2))`` (``h``: ``bandwidth_km``; with ``k`` set, only the
    ``k`` nearest locations count). With ``K_s = sum_j w_j n_js`` the weighted count of
    species ``s`` and ``K = sum_s K_s``::

        p(s | x) = (K_s + smoothing * g_s) / (K + smoothing)

    where ``g`` is the global frequency: a place far from every observation falls back to
    ``g``. Rows sum to 1. Dates are validated but not used (this is ``p(species | place)``).

    Example:
        >>> obs = Observations.from_arrays([44.0, 44.01, -33.9, -33.91], [-71.3, -71.3, 18.4, 18.4],
        ...                                ["a", "a", "b", "b"])
        >>> prior = NearestNeighborPrior.fit(obs, bandwidth=50.0)
        >>> prior.predict([44.0, -33.9], [-71.3, 18.4]).argmax(axis=1)
        array([0, 1])
    """

    #: the same answer at every date
    uses_date = False

    def __init__(
        self,
        species: Sequence[str],
        location_lat,
        location_lon,
        counts: Counts,
        global_counts,
        *,
        bandwidth_km: float,
        k: int | None = None,
        smoothing: float = 1.0,
    ):
        self._species = check_species(species)
        self.location_lat = np.asarray(location_lat, dtype=np.float64)
        self.location_lon = np.asarray(location_lon, dtype=np.float64)
        self.bandwidth_km = check_positive("bandwidth", bandwidth_km)
        self.k = _check_k(k)
        self.smoothing = check_positive("smoothing", smoothing)
        self.global_counts = np.asarray(global_counts, dtype=np.float64)
        n_loc, s = self.location_lat.size, len(self._species)
        if (
            self.location_lon.size != n_loc
            or not np.array_equal(counts.keys, np.arange(n_loc))
            or self.global_counts.shape != (s,)
        ):
            raise ClassMismatchError(
                f"{n_loc} location latitudes, {self.location_lon.size} longitudes, "
                f"{counts.keys.size} count rows and {self.global_counts.size} global counts "
                f"for {s} species"
            )
        self._counts = counts
        self._global = frequencies(self.global_counts, self.smoothing)
        self._xyz = unit_xyz(self.location_lat, self.location_lon)
        self._xyz_t = np.ascontiguousarray(self._xyz.T)
        self._dense = None
        if n_loc * s <= _DENSE_TABLE_VALUES:
            self._dense = gather(counts, counts.keys, counts.keys, n_loc, s)

    @property
    def species(self) -> tuple[str, ...]:
        return self._species

    @property
    def n_locations(self) -> int:
        return int(self.location_lat.size)

    def __repr__(self) -> str:
        k = f", k {self.k}" if self.k else ""
        return (
            f"NearestNeighborPrior({len(self.species)} species, {self.n_locations} locations, "
            f"bandwidth {self.bandwidth_km:.3g} km{k})"
        )

    @classmethod
    def fit(
        cls,
        observations: Observations,
        *,
        bandwidth: str | float = "auto",
        k: int | None = None,
        smoothing: float = 1.0,
        seed: int = 0,
    ) -> NearestNeighborPrior:
        """Pool the observations by location and choose the bandwidth.

        Args:
            observations: the training data.
            bandwidth: kernel scale in km, or ``"auto"``: the bandwidth of
                ``AUTO_BANDWIDTHS_KM`` (0.1 to 10,000 km, log-spaced) with the highest
                leave-one-location-out log-likelihood, scored on up to 500 random
                locations (all of a held-out location's observations are removed, so
                the score is that of predicting a new place, not a revisit).
            k: use only the ``k`` nearest locations per query (``None``: all).
            smoothing: pseudo-observations of the global frequency in every prediction,
                and the additive smoothing of that frequency.
            seed: which locations are held out for ``"auto"``.

        Example:
            >>> from geoprior.io.samples import load_sample
            >>> NearestNeighborPrior.fit(load_sample("neon_bird")).bandwidth_km > 0
            True
        """
        obs = check_observations(observations, "NearestNeighborPrior.fit")
        coords, loc = np.unique(np.stack([obs.lat, obs.lon], axis=1), axis=0, return_inverse=True)
        counts = counts_from(loc.ravel(), obs.species_index, np.ones(len(obs)), obs.n_species)
        auto = isinstance(bandwidth, str)
        if auto and bandwidth != "auto":
            raise ConfigError(f"bandwidth must be 'auto' or a number of km, got {bandwidth!r}")
        prior = cls(
            obs.species,
            coords[:, 0],
            coords[:, 1],
            counts,
            obs.species_counts(),
            bandwidth_km=AUTO_BANDWIDTHS_KM[0] if auto else bandwidth,
            k=k,
            smoothing=smoothing,
        )
        if auto:
            prior.bandwidth_km = prior._cross_validate(AUTO_BANDWIDTHS_KM, seed)
        return prior

    def predict(self, lat, lon, date=None) -> np.ndarray:
        """``(n, S)`` float32 ``p(species | place)``; rows sum to 1."""
        return self.predict_query(prepare_query(lat, lon, date))

    def predict_query(self, query: Query) -> np.ndarray:
        """:meth:`predict` of an already valid :class:`~geoprior.query.Query`."""
        lat, lon, _ = query
        out = np.empty((lat.size, len(self.species)), dtype=np.float32)
        step = self._chunk_rows()
        for a in range(0, lat.size, step):
            b = min(lat.size, a + step)
            out[a:b] = self._smooth(
                self._kernel_sums(self._chord2(unit_xyz(lat[a:b], lon[a:b])), self.bandwidth_km)
            )
        return out

    def _smooth(self, sums: np.ndarray) -> np.ndarray:
        return (sums + self.smoothing * self._global) / (
            sums.sum(axis=1, keepdims=True) + self.smoothing
        )

    def _chord2(self, xyz: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
        """``(q, L)`` squared chords to the training locations; ``inf`` for location
        ``exclude[i]`` in row ``i`` and, with ``k``, for all but the ``k`` nearest."""
        c2 = _chord2(xyz, self._xyz_t)
        q = xyz.shape[0]
        if exclude is not None:
            c2[np.arange(q), exclude] = np.inf
        if self.k is not None and self.k < self.n_locations:
            near = np.argpartition(c2, self.k - 1, axis=1)[:, : self.k]
            far = np.ones_like(c2, dtype=bool)
            np.put_along_axis(far, near, False, axis=1)
            c2[far] = np.inf
        return c2

    def _kernel_sums(self, c2: np.ndarray, bandwidth: float) -> np.ndarray:
        """``(q, S)`` kernel-weighted species counts ``K_s`` from squared chords ``c2``."""
        half_angle = min(KERNEL_CUTOFF * bandwidth / (2.0 * EARTH_RADIUS_KM), np.pi / 2)
        near = c2 <= (2.0 * np.sin(half_angle)) ** 2
        if self._dense is not None:
            w = np.exp(-0.5 * (_chord2_to_km(np.where(near, c2, 0.0)) / bandwidth) ** 2)
            return np.where(near, w, 0.0) @ self._dense
        row, loc = np.nonzero(near)
        w = np.exp(-0.5 * (_chord2_to_km(c2[row, loc]) / bandwidth) ** 2)
        return gather(self._counts, loc.astype(np.int64), row, c2.shape[0], len(self.species), w)

    def _chunk_rows(self) -> int:
        return rows_per_chunk(max(self.n_locations, self._counts.species.size, len(self.species)))

    def _cross_validate(self, bandwidths: np.ndarray, seed: int) -> float:
        """The bandwidth with the best leave-one-location-out log-likelihood."""
        if self.n_locations < 2:
            raise ConfigError(
                "bandwidth='auto' needs observations at 2 or more distinct places, got 1; "
                "pass bandwidth=<km>"
            )
        rng = np.random.default_rng(seed)
        n_held = min(self.n_locations, max(AUTO_HELD_OUT // 5, AUTO_WORK // self.n_locations))
        held = np.sort(rng.choice(self.n_locations, min(AUTO_HELD_OUT, n_held), replace=False))
        step = self._chunk_rows()
        scores = np.zeros(len(bandwidths))
        for a in range(0, held.size, step):
            rows = held[a : a + step]
            n = gather(self._counts, rows, np.arange(rows.size), rows.size, len(self.species))
            seen = n > 0
            c2 = self._chord2(self._xyz[rows], exclude=rows)
            for i, h in enumerate(bandwidths):
                p = self._smooth(self._kernel_sums(c2, float(h)))
                scores[i] += float((n[seen] * np.log(p[seen])).sum())
        return float(bandwidths[int(np.argmax(scores))])

    def save(self, path: str | os.PathLike, *, overwrite: bool = True):
        """Save to folder ``path``; load with :func:`geoprior.persistence.load_prior`."""
        header = {
            **species_header(self.species),
            "bandwidth_km": self.bandwidth_km,
            "k": self.k,
            "smoothing": self.smoothing,
        }
        arrays = {
            "location_lat": self.location_lat,
            "location_lon": self.location_lon,
            "global_counts": self.global_counts,
            **counts_arrays("locations", self._counts),
        }
        return save_folder(path, "NearestNeighborPrior", header, arrays, overwrite=overwrite)


def _check_k(k) -> int | None:
    if k is None:
        return None
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ConfigError(f"k must be a positive integer or None (all locations), got {k!r}")
    return int(k)


@register_kind(
    "NearestNeighborPrior",
    Schema(
        {"bandwidth_km": NON_NEGATIVE, "k": field(int, type(None), min=1),
         "smoothing": NON_NEGATIVE},
        lambda header: {
            "location_lat": ArraySpec(("locations",)),
            "location_lon": ArraySpec(("locations",)),
            "global_counts": ArraySpec((len(header["species"]),), min=0),
            **counts_specs("locations"),
        },
    ),
)
def _load_nearest_neighbor(header: dict, arrays: dict) -> NearestNeighborPrior:
    species = header_species(header)
    s = len(species)
    return NearestNeighborPrior(
        species,
        arrays["location_lat"],
        arrays["location_lon"],
        counts_load("locations", arrays, s),
        saved_array(arrays, "global_counts", s),
        bandwidth_km=header["bandwidth_km"],
        k=header["k"],
        smoothing=header["smoothing"],
    )
