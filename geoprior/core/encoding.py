"""Location and date encoders: pure JAX functions of degrees.

Every location encoder maps ``lat, lon`` (degrees, shape ``(n,)``) to features ``(n, d)``
that are continuous across the antimeridian and (all but ``wrap``) at the poles.

- :func:`wrap`: sin/cos of ``lon/180`` and ``lat/90`` (Mac Aodha et al. 2019); the one
  encoder here that is not a single point at the poles (kept for comparison).
- :func:`xyz`: the point on the unit sphere.
- :func:`spherical_harmonics`: real spherical harmonics up to degree ``L`` (stable
  normalised recurrences; finite at the poles for ``L`` in the hundreds).
- :func:`sinusoidal`: multi-scale sinusoids of latitude and longitude (Sphere2Vec /
  Space2Vec family), longitude terms damped by ``cos(lat)`` so the poles are single points.
- :func:`fourier`: multi-scale random Fourier features of the unit-sphere point; isotropic,
  continuous everywhere, with wavelengths between ``min_km`` and ``max_km`` on the ground.
- :func:`anchor_features` (kind ``"anchors"``, the default): localised multi-resolution
  features — a Gaussian bump on every H3 cell, at every resolution, that holds enough
  observations (:func:`anchor_table`), as wide as the cell. A fine feature exists only
  where the data can support it and is zero away from it, so detail learned at one survey
  site does not ripple across the map as global sinusoids do, and far from all data only
  the coarse features (and the unit-sphere point) speak.

:class:`EncoderSpec` names an encoder and its scales; :func:`encoder_spec_for` chooses the
scales from the extent and spacing of the training places, so the same defaults serve a
continent of scattered records and one country's survey plots a few km apart.

Dates enter as :func:`encode_date`: ``(sin, cos)`` of the day of the year and a flag that
is 1 for dated rows, 0 (all three features) for undated ones.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from h3.api import basic_int as h3

from ..errors import ConfigError
from ..geo import EARTH_RADIUS_KM, haversine_km, unit_xyz

__all__ = [
    "EARTH_RADIUS_KM",
    "AnchorTable",
    "EncoderSpec",
    "anchor_features",
    "anchor_table",
    "encode_date",
    "encode_inputs",
    "encode_location",
    "encoder_spec_for",
    "fourier",
    "fourier_frequencies",
    "sinusoidal",
    "spherical_harmonics",
    "wrap",
    "xyz",
]

_DEG = math.pi / 180.0
KINDS = ("wrap", "xyz", "spherical_harmonics", "sinusoidal", "fourier", "anchors")
#: Mean H3 hexagon edge (km) per resolution: the width of an anchor's bump.
H3_EDGE_KM = tuple(h3.average_hexagon_edge_length(r, unit="km") for r in range(16))


def wrap(lat, lon):
    """``[sin(pi lon/180), cos(pi lon/180), sin(pi lat/90), cos(pi lat/90)]`` (n, 4).

    >>> (wrap(jnp.array([0.0]), jnp.array([90.0])).round(3) + 0.0).tolist()  # + 0.0: no -0.0
    [[1.0, 0.0, 0.0, 1.0]]
    """
    lat, lon = jnp.asarray(lat, jnp.float32), jnp.asarray(lon, jnp.float32)
    return jnp.stack(
        [
            jnp.sin(lon * _DEG),
            jnp.cos(lon * _DEG),
            jnp.sin(2 * lat * _DEG),
            jnp.cos(2 * lat * _DEG),
        ],
        -1,
    )


def xyz(lat, lon):
    """The unit-sphere point ``(x, y, z)`` (n, 3).

    >>> (xyz(jnp.array([90.0]), jnp.array([0.0])).round(3) + 0.0).tolist()
    [[0.0, 0.0, 1.0]]
    """
    phi, lam = jnp.asarray(lat, jnp.float32) * _DEG, jnp.asarray(lon, jnp.float32) * _DEG
    return jnp.stack([jnp.cos(phi) * jnp.cos(lam), jnp.cos(phi) * jnp.sin(lam), jnp.sin(phi)], -1)


def spherical_harmonics(lat, lon, degree: int):
    """Real spherical harmonics ``Y_l^m`` for ``0 <= l <= degree`` ((degree+1)^2 features).

    Uses the fully normalised associated Legendre functions (mean square 1 over the
    sphere) with the standard stable recurrences in ``l``, vectorised over ``m``: no
    factorials, no division by ``sin(colatitude)``, so values stay finite at the poles.
    Order of features: ``l`` ascending; within ``l``: ``m = 0, 1..l (cos), 1..l (sin)``.

    >>> spherical_harmonics(jnp.array([90.0]), jnp.array([0.0]), 4).shape
    (1, 25)

    (Degree 40, finite at the poles and seams, is tested in ``tests/test_encoding.py``.)
    """
    if degree < 0:
        raise ConfigError(f"spherical harmonics degree must be >= 0, got {degree}")
    L = int(degree)
    phi, lam = jnp.asarray(lat, jnp.float32) * _DEG, jnp.asarray(lon, jnp.float32) * _DEG
    x, u = jnp.sin(phi), jnp.cos(phi)  # cos(colatitude), sin(colatitude)
    m = np.arange(L + 1)
    # sectoral P_mm = u^m * c_m, with c_0 = 1, c_1 = sqrt(3), c_m = c_{m-1} sqrt((2m+1)/(2m))
    c = np.ones(L + 1)
    if L >= 1:
        c[1] = math.sqrt(3.0)
        for k in range(2, L + 1):
            c[k] = c[k - 1] * math.sqrt((2 * k + 1) / (2 * k))
    p_mm = jnp.power(u[:, None], m[None, :]) * jnp.asarray(c, jnp.float32)  # (n, L+1)
    rows = [p_mm[:, :1]]  # l = 0
    prev2 = jnp.zeros_like(p_mm)
    prev1 = jnp.where(m[None, :] == 0, p_mm, 0.0)  # P_0^m
    for l in range(1, L + 1):
        with np.errstate(divide="ignore", invalid="ignore"):
            a = np.sqrt((2 * l - 1) * (2 * l + 1) / ((l - m) * (l + m)))
            b = np.sqrt((2 * l + 1) * (l + m - 1) * (l - m - 1) / ((l - m) * (l + m) * (2 * l - 3)))
        a = np.where(m < l - 1, a, 0.0)
        b = np.where(m < l - 1, b, 0.0)
        general = (
            jnp.asarray(a, jnp.float32) * x[:, None] * prev1 - jnp.asarray(b, jnp.float32) * prev2
        )
        first_off = (
            jnp.asarray(np.sqrt(2 * m + 3), jnp.float32)[None, :] * x[:, None] * p_mm
        )  # P_{m+1}^m
        cur = jnp.where(m[None, :] == l, p_mm, jnp.where(m[None, :] == l - 1, first_off, general))
        cur = jnp.where(m[None, :] > l, 0.0, cur)
        rows.append(cur[:, : l + 1])
        prev2, prev1 = prev1, cur
    feats = []
    for l, p in enumerate(rows):
        ml = np.arange(l + 1)
        feats.append(p[:, :1])
        if l:
            feats.append(p[:, 1:] * jnp.cos(ml[1:][None, :] * lam[:, None]))
            feats.append(p[:, 1:] * jnp.sin(ml[1:][None, :] * lam[:, None]))
    return jnp.concatenate(feats, axis=-1)


def _scales(min_km: float, max_km: float, n: int) -> np.ndarray:
    """Wavelengths in km, geometric from ``max_km`` down to ``min_km``."""
    if n == 1:
        return np.array([max_km])
    return max_km * (min_km / max_km) ** (np.arange(n) / (n - 1))


def sinusoidal(lat, lon, *, min_km: float, max_km: float, n_scales: int):
    """Multi-scale sinusoids (Sphere2Vec "sphereC+" style), ``4 * n_scales + 3`` features.

    For each wavelength ``w`` (km, geometric between ``max_km`` and ``min_km``) with angular
    frequency ``k = 2 pi R / w``: ``sin(k lat), cos(k lat), cos(lat) sin(k' lon),
    cos(lat) cos(k' lon)`` where ``k'`` is ``k`` rounded to a whole number of cycles around
    the globe, so features are continuous across the antimeridian; the ``cos(lat)`` factor
    makes each pole a single point. The unit-sphere point is appended.
    """
    phi, lam = jnp.asarray(lat, jnp.float32) * _DEG, jnp.asarray(lon, jnp.float32) * _DEG
    k = 2 * math.pi * EARTH_RADIUS_KM / _scales(min_km, max_km, n_scales)
    k_lon = np.maximum(np.round(k), 1.0)
    kp = phi[:, None] * jnp.asarray(k, jnp.float32)
    kl = lam[:, None] * jnp.asarray(k_lon, jnp.float32)
    cphi = jnp.cos(phi)[:, None]
    return jnp.concatenate(
        [jnp.sin(kp), jnp.cos(kp), cphi * jnp.sin(kl), cphi * jnp.cos(kl), xyz(lat, lon)], -1
    )


def fourier_frequencies(min_km: float, max_km: float, n_features: int, seed: int = 0) -> np.ndarray:
    """Random frequency vectors ``(n_features, 3)`` for :func:`fourier`: isotropic
    directions, lengths log-uniform so wavelengths on the ground span ``[min_km, max_km]``."""
    rng = np.random.default_rng(seed)
    d = rng.normal(size=(n_features, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    wavelength = np.exp(rng.uniform(np.log(min_km), np.log(max_km), n_features))
    return (d * (2 * math.pi * EARTH_RADIUS_KM / wavelength)[:, None]).astype(np.float32)


def fourier(lat, lon, frequencies):
    """Multi-scale random Fourier features of the unit-sphere point:
    ``[sin(B p), cos(B p), p]`` with ``p = xyz(lat, lon)`` and ``B = frequencies`` (m, 3)."""
    p = xyz(lat, lon)
    proj = p @ jnp.asarray(frequencies, jnp.float32).T
    return jnp.concatenate([jnp.sin(proj), jnp.cos(proj), p], -1)


class AnchorTable(NamedTuple):
    """Anchors of the ``"anchors"`` encoder: unit-sphere centres ``xyz (A, 3)``, bump widths
    ``sigma_km (A,)`` and the H3 resolution ``res (A,)`` each was made at (coarse first)."""

    xyz: np.ndarray
    sigma_km: np.ndarray
    res: np.ndarray


def anchor_table(
    lat, lon, *, min_count: int = 10, max_res: int = 10, per_res: int = 4096
) -> AnchorTable:
    """Anchors from training places: for every H3 resolution ``0..max_res``, one anchor per
    cell holding at least ``min_count`` observations (at most ``per_res`` per resolution:
    the fullest cells), centred on the mean of the cell's observations, with a bump as
    wide as the cell's edge. The rule is the one a count grid uses to trust a cell: a
    feature at a resolution exists only where that many records support it (none
    anywhere: an empty table, and the encoder is the unit-sphere point alone).

    >>> t = anchor_table(np.full(20, 44.0), np.full(20, -71.3), max_res=3)
    >>> t.res.tolist(), t.sigma_km.round().tolist()
    ([0, 1, 2, 3], [1281.0, 483.0, 183.0, 69.0])
    """
    lat, lon = np.asarray(lat, np.float64), np.asarray(lon, np.float64)
    if not 0 <= max_res <= 15:
        raise ConfigError(f"anchor max_res must be in 0..15, got {max_res}")
    if min_count < 1 or per_res < 1:
        raise ConfigError(
            f"anchors need min_count >= 1 and per_res >= 1, got {min_count}, {per_res}"
        )
    places, inverse = np.unique(np.stack([lat, lon], 1), axis=0, return_inverse=True)
    inverse = inverse.ravel()
    weight = np.bincount(inverse, minlength=len(places)).astype(np.float64)
    place_xyz = unit_xyz(places[:, 0], places[:, 1])
    cells = np.array([h3.latlng_to_cell(a, b, max_res) for a, b in places], dtype=np.uint64)
    found = []
    for r in range(max_res, -1, -1):
        if r < max_res:
            uniq, inv = np.unique(cells, return_inverse=True)
            parents = np.array([h3.cell_to_parent(int(c), r) for c in uniq], dtype=np.uint64)
            cells = parents[inv.ravel()]
        uniq, inv = np.unique(cells, return_inverse=True)
        inv = inv.ravel()
        count = np.bincount(inv, weights=weight, minlength=len(uniq))
        keep = np.flatnonzero(count >= min_count)
        keep = keep[np.argsort(-count[keep], kind="stable")[:per_res]]
        if not len(keep):
            continue
        sums = np.zeros((len(uniq), 3))
        np.add.at(sums, inv, place_xyz * weight[:, None])
        centre = sums[np.sort(keep)]
        centre /= np.maximum(np.linalg.norm(centre, axis=1, keepdims=True), 1e-300)
        found.append((r, centre))
    found.reverse()  # coarse first
    if not found:  # too few records anywhere for a local feature: the sphere point alone
        return AnchorTable(
            np.zeros((0, 3), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32)
        )
    return AnchorTable(
        np.concatenate([c for _, c in found]).astype(np.float32),
        np.concatenate([np.full(len(c), H3_EDGE_KM[r]) for r, c in found]).astype(np.float32),
        np.concatenate([np.full(len(c), r) for r, c in found]).astype(np.int32),
    )


def anchor_features(lat, lon, table: AnchorTable, cutoff=None):
    """``[xyz, exp(-d^2 / (2 sigma^2))]`` for every anchor (``(n, 3 + A)``), ``d`` the chord
    to the anchor in km, computed from coordinate differences (exact in float32 down to
    metres, where a dot product of unit vectors is not).

    ``cutoff`` (training only, ``(n,)`` int): a row keeps only the anchors of resolutions
    below its cutoff, so the network also learns to answer from coarse features alone, as
    it must at a place no fine anchor covers.
    """
    p = xyz(lat, lon)
    centres = np.asarray(table.xyz, np.float32)
    # one (n, A) plane per coordinate: XLA vectorises these 6x faster than an (n, A, 3)
    # difference summed over its short last axis (the same sums, in the same order)
    d2 = (
        jnp.square(p[:, 0:1] - centres[None, :, 0])
        + jnp.square(p[:, 1:2] - centres[None, :, 1])
        + jnp.square(p[:, 2:3] - centres[None, :, 2])
    )
    scale = jnp.asarray(
        0.5 * (EARTH_RADIUS_KM / np.asarray(table.sigma_km, np.float64)) ** 2, jnp.float32
    )
    bumps = jnp.exp(-d2 * scale)
    if cutoff is not None:
        bumps = jnp.where(jnp.asarray(table.res)[None, :] < cutoff[:, None], bumps, 0.0)
    return jnp.concatenate([p, bumps], -1)


def encode_date(day_of_year):
    """``[sin, cos, 1]`` of the day of the year (1..366), ``[0, 0, 0]`` where NaN (undated).

    >>> encode_date(jnp.array([jnp.nan])).tolist()
    [[0.0, 0.0, 0.0]]
    """
    d = jnp.asarray(day_of_year, jnp.float32)
    dated = ~jnp.isnan(d)
    angle = 2 * math.pi * (jnp.where(dated, d, 1.0) - 1.0) / 365.25
    f = dated.astype(jnp.float32)
    return jnp.stack([jnp.sin(angle) * f, jnp.cos(angle) * f, f], -1)


@dataclass(frozen=True)
class EncoderSpec:
    """Which location encoder, with its scales. Saved in the prior's header.

    ``min_km``/``max_km`` bound the wavelengths of ``sinusoidal`` and ``fourier``;
    ``n_features`` is the number of scales (``sinusoidal``), random frequencies
    (``fourier``) or anchors (``anchors``: known once the table is built from the data);
    ``degree`` is the spherical-harmonics degree; ``seed`` draws ``fourier``'s frequencies;
    ``min_count``, ``max_res`` and ``per_res`` are the rules of :func:`anchor_table`.
    """

    kind: str = "fourier"
    min_km: float = 10.0
    max_km: float = 20000.0
    n_features: int = 256
    degree: int = 20
    seed: int = 0
    min_count: int = 10
    max_res: int = 10
    per_res: int = 4096

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ConfigError(f"encoder kind must be one of {KINDS}, got {self.kind!r}")
        if not 0 < self.min_km <= self.max_km:
            raise ConfigError(
                f"encoder needs 0 < min_km <= max_km, got {self.min_km}, {self.max_km}"
            )
        if self.n_features < (0 if self.kind == "anchors" else 1) or self.degree < 0:
            raise ConfigError(
                f"encoder needs n_features >= 1 and degree >= 0, got {self.n_features}, {self.degree}"
            )

    def to_dict(self) -> dict:
        return asdict(self)

    def frequencies(self) -> np.ndarray | None:
        if self.kind != "fourier":
            return None
        return fourier_frequencies(self.min_km, self.max_km, self.n_features, self.seed)

    def dim(self) -> int:
        return {
            "wrap": 4,
            "xyz": 3,
            "spherical_harmonics": (self.degree + 1) ** 2,
            "sinusoidal": 4 * self.n_features + 3,
            "fourier": 2 * self.n_features + 3,
            "anchors": self.n_features + 3,
        }[self.kind]


def encode_location(spec: EncoderSpec, lat, lon, tables=None, cutoff=None):
    """Encode with ``spec``; ``tables`` is ``spec.frequencies()`` (``fourier``: passed in so
    jitted callers compute it once) or the :class:`AnchorTable` (``anchors``: built from the
    training data, saved with the prior); ``cutoff`` see :func:`anchor_features`."""
    if spec.kind == "anchors":
        if tables is None:
            raise ConfigError("the anchors encoder needs its AnchorTable")
        return anchor_features(lat, lon, tables, cutoff)
    if spec.kind == "wrap":
        return wrap(lat, lon)
    if spec.kind == "xyz":
        return xyz(lat, lon)
    if spec.kind == "spherical_harmonics":
        return spherical_harmonics(lat, lon, spec.degree)
    if spec.kind == "sinusoidal":
        return sinusoidal(
            lat, lon, min_km=spec.min_km, max_km=spec.max_km, n_scales=spec.n_features
        )
    return fourier(lat, lon, spec.frequencies() if tables is None else tables)


def place_scales_km(
    lat: np.ndarray, lon: np.ndarray, *, max_places: int = 4000, seed: int = 0
) -> tuple[float, float]:
    """``(spacing, extent)`` of a set of places, in km.

    ``spacing`` is the median distance from each distinct place to its nearest other
    distinct place; ``extent`` the 95th percentile of distances between places. Both on a
    random subsample of at most ``max_places`` distinct places.
    """
    pts = np.unique(np.round(np.stack([lat, lon], 1), 4), axis=0)
    if len(pts) > max_places:
        pts = pts[np.random.default_rng(seed).choice(len(pts), max_places, replace=False)]
    if len(pts) < 2:
        return 1.0, 1.0
    nearest = np.full(len(pts), np.inf)
    pair_q = []
    for start in range(0, len(pts), 512):
        block = pts[start : start + 512]
        d = haversine_km(block[:, :1], block[:, 1:2], pts[None, :, 0], pts[None, :, 1])
        d[np.arange(len(block)), np.arange(start, start + len(block))] = np.inf
        nearest[start : start + len(block)] = d.min(1)
        finite = d[np.isfinite(d)]
        pair_q.append(np.quantile(finite, 0.95))
    return float(np.median(nearest)), float(np.max(pair_q))


def encoder_spec_for(
    lat: np.ndarray, lon: np.ndarray, kind: str = "fourier", n_features: int = 256
) -> EncoderSpec:
    """Choose encoder scales from the training places.

    The finest wavelength is twice the median spacing between neighbouring distinct places
    (finer detail cannot be learned from those places: the Nyquist rule), floored at 1 km
    and at 1/1000 of the extent; the coarsest is twice the extent of the places (so the
    whole study area is one smooth half-wave at the coarsest scale), capped at half the
    Earth's circumference. ``sinusoidal`` uses one scale per octave between them.
    """
    spacing, extent = place_scales_km(np.asarray(lat), np.asarray(lon))
    max_km = float(min(2 * extent, math.pi * EARTH_RADIUS_KM))
    max_km = max(max_km, 2.0)
    min_km = float(np.clip(2 * spacing, max(1.0, max_km / 1000), max_km / 2))
    if kind == "sinusoidal":
        n_features = int(np.clip(math.ceil(math.log2(max_km / min_km)) + 1, 2, 32))
    return EncoderSpec(
        kind=kind, min_km=round(min_km, 3), max_km=round(max_km, 3), n_features=n_features
    )


def encode_inputs(
    spec: EncoderSpec, tables, lat, lon, day_of_year=None, covariates=None, cutoff=None
):
    """The network's input: location features, then date features (when ``day_of_year``
    is given: NaN rows are undated), then covariates (already standardised)."""
    parts = [encode_location(spec, lat, lon, tables, cutoff)]
    if day_of_year is not None:
        parts.append(encode_date(day_of_year))
    if covariates is not None:
        parts.append(jnp.asarray(covariates, jnp.float32))
    return jnp.concatenate(parts, -1) if len(parts) > 1 else parts[0]
