import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geoprior import ConfigError, EncoderSpec
from geoprior.core.encoding import (
    encode_date,
    encode_inputs,
    encode_location,
    encoder_spec_for,
    fourier,
    fourier_frequencies,
    sinusoidal,
    spherical_harmonics,
    wrap,
    xyz,
)

POLES_AND_SEAMS = (
    np.array([90.0, 90.0, -90.0, -90.0, 0.0, 0.0, 89.9999, -89.9999]),
    np.array([0.0, 137.0, -180.0, 180.0, -180.0, 180.0, 12.0, -12.0]),
)
KINDS = [
    EncoderSpec(kind=k, degree=12, n_features=16, min_km=5, max_km=20000)
    for k in ("wrap", "xyz", "spherical_harmonics", "sinusoidal", "fourier")
]


@pytest.mark.parametrize("spec", KINDS, ids=lambda s: s.kind)
def test_finite_and_continuous_at_poles_and_antimeridian(spec):
    f = np.asarray(encode_location(spec, *POLES_AND_SEAMS))
    assert f.shape == (8, spec.dim())
    assert np.isfinite(f).all()
    if spec.kind != "wrap":  # wrap (Mac Aodha et al.) keeps longitude at the poles, by design
        # the north pole is one point whatever its longitude; so is the south pole
        np.testing.assert_allclose(f[0], f[1], atol=1e-3)
        np.testing.assert_allclose(f[2], f[3], atol=1e-3)
    # -180 and 180 are the same meridian (float32 phase error grows with frequency: ~1e-3
    # rad at the 5 km scale)
    np.testing.assert_allclose(f[4], f[5], atol=5e-3)


def test_spherical_harmonics_degree_40_finite_and_orthonormal():
    rng = np.random.default_rng(0)
    lat = np.concatenate([POLES_AND_SEAMS[0], rng.uniform(-90, 90, 200)])
    lon = np.concatenate([POLES_AND_SEAMS[1], rng.uniform(-180, 180, 200)])
    y = np.asarray(spherical_harmonics(lat, lon, 40))
    assert y.shape == (208, 41**2) and np.isfinite(y).all()
    # orthonormality on a fine grid for low degree (mean square 1, cross terms 0)
    la, lo = np.meshgrid(
        np.linspace(-89.75, 89.75, 360), np.linspace(-179.5, 179.5, 360), indexing="ij"
    )
    y = np.asarray(spherical_harmonics(la.ravel(), lo.ravel(), 6))
    w = np.cos(np.radians(la.ravel()))
    gram = (y * (w / w.sum())[:, None]).T @ y
    np.testing.assert_allclose(gram, np.eye(49), atol=2e-3)


def test_spherical_harmonics_known_values():
    # Y_1^0 = sqrt(3) sin(lat) with mean-square-1 normalisation
    y = np.asarray(spherical_harmonics(np.array([30.0]), np.array([0.0]), 1))
    np.testing.assert_allclose(y[0, 1], np.sqrt(3) * 0.5, rtol=1e-5)
    assert y[0, 0] == pytest.approx(1.0)


def test_wrap_and_xyz_values():
    np.testing.assert_allclose(
        np.asarray(wrap(jnp.array([45.0]), jnp.array([-90.0]))), [[-1, 0, 1, 0]], atol=1e-6
    )
    p = np.asarray(xyz(np.array([10.0, -70.0]), np.array([20.0, 100.0])))
    np.testing.assert_allclose(np.linalg.norm(p, axis=1), 1.0, rtol=1e-6)


def test_fourier_frequencies_span_requested_wavelengths():
    b = fourier_frequencies(10, 1000, 512, seed=1)
    wavelength = 2 * np.pi * 6371.0088 / np.linalg.norm(b, axis=1)
    assert wavelength.min() >= 10 * 0.999 and wavelength.max() <= 1000 * 1.001
    np.testing.assert_array_equal(b, fourier_frequencies(10, 1000, 512, seed=1))
    f = np.asarray(fourier(np.array([1.0]), np.array([2.0]), b))
    assert f.shape == (1, 2 * 512 + 3)


def test_nearby_points_have_similar_features_at_coarse_scales_only():
    # 1 km apart: nearly identical when the finest wavelength is 1000 km; distinct at 2 km
    coarse = sinusoidal(
        np.array([45.0, 45.009]), np.array([7.0, 7.0]), min_km=1000, max_km=20000, n_scales=8
    )
    fine = sinusoidal(
        np.array([45.0, 45.009]), np.array([7.0, 7.0]), min_km=2, max_km=20000, n_scales=16
    )
    assert np.abs(np.asarray(coarse[0] - coarse[1])).max() < 0.02
    assert np.abs(np.asarray(fine[0] - fine[1])).max() > 0.5


@given(st.floats(-90, 90), st.floats(-180, 180), st.one_of(st.none(), st.floats(1, 366)))
@settings(max_examples=60, deadline=None)
def test_inputs_always_finite(lat, lon, doy):
    spec = EncoderSpec(kind="fourier", n_features=8, min_km=1, max_km=20000)
    d = np.array([np.nan if doy is None else doy], np.float32)
    x = np.asarray(encode_inputs(spec, spec.frequencies(), np.array([lat]), np.array([lon]), d))
    assert np.isfinite(x).all()


def test_date_encoding_cyclic_and_undated():
    e = np.asarray(encode_date(jnp.array([1.0, 366.25, np.nan, 183.0])))
    np.testing.assert_allclose(e[0], e[1], atol=1e-5)
    np.testing.assert_array_equal(e[2], [0, 0, 0])
    assert e[3, 1] < -0.99 and e[0, 2] == 1


def test_spec_for_adapts_to_spacing_and_extent():
    rng = np.random.default_rng(0)
    glob = encoder_spec_for(rng.uniform(-60, 70, 3000), rng.uniform(-180, 180, 3000))
    local = encoder_spec_for(46 + rng.uniform(0, 0.3, 300), 7 + rng.uniform(0, 0.3, 300))
    assert glob.max_km > 10000 and local.max_km < 100
    assert local.min_km < glob.min_km
    assert encoder_spec_for(np.array([1.0]), np.array([1.0])).max_km >= 2


def test_spec_validation():
    with pytest.raises(ConfigError, match="kind"):
        EncoderSpec(kind="hex")
    with pytest.raises(ConfigError, match="min_km"):
        EncoderSpec(min_km=100, max_km=10)
    with pytest.raises(ConfigError, match="degree"):
        spherical_harmonics(np.array([0.0]), np.array([0.0]), -1)


def test_jittable():
    spec = KINDS[3]
    f = jax.jit(lambda a, b: encode_location(spec, a, b))
    np.testing.assert_allclose(
        np.asarray(f(*POLES_AND_SEAMS)),
        np.asarray(encode_location(spec, *POLES_AND_SEAMS)),
        atol=1e-5,
    )


# ------------------------------------------------------------------- anchors
def _anchor_places(seed=0):
    rng = np.random.default_rng(seed)
    dense = np.stack([44.0 + rng.normal(0, 0.01, 300), -71.3 + rng.normal(0, 0.01, 300)], 1)
    sparse = np.stack([rng.uniform(-60, 70, 40), rng.uniform(-180, 180, 40)], 1)
    pts = np.concatenate([dense, sparse])
    return pts[:, 0], pts[:, 1]


def test_anchor_table_puts_fine_anchors_only_where_data_are_dense():
    from geoprior.core.encoding import H3_EDGE_KM, anchor_table

    lat, lon = _anchor_places()
    t = anchor_table(lat, lon, min_count=10, max_res=8)
    assert (np.diff(t.res) >= 0).all()  # coarse first
    np.testing.assert_allclose(t.sigma_km, np.array(H3_EDGE_KM)[t.res], rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(t.xyz, axis=1), 1.0, rtol=1e-6)
    # the scattered places support no fine anchor: every anchor finer than res 2 is in
    # the dense cluster
    fine = t.res >= 3
    assert fine.any()
    centre = np.asarray(xyz(jnp.array([44.0]), jnp.array([-71.3])))[0]
    assert (t.xyz[fine] @ centre > np.cos(np.radians(1.0))).all()
    assert anchor_table(lat[:3], lon[:3], min_count=10).res.size == 0  # too few: none


@given(st.integers(1, 30), st.integers(0, 6))
@settings(max_examples=20, deadline=None)
def test_every_anchor_cell_holds_min_count_records(min_count, max_res):
    from h3.api import basic_int as h3

    from geoprior.core.encoding import anchor_table, unit_xyz

    lat, lon = _anchor_places(min_count)
    t = anchor_table(lat, lon, min_count=min_count, max_res=max_res)
    for a, r in zip(t.xyz, t.res):
        la, lo = np.degrees(np.arcsin(a[2])), np.degrees(np.arctan2(a[1], a[0]))
        cell = h3.latlng_to_cell(float(la), float(lo), int(r))
        inside = [h3.latlng_to_cell(p, q, int(r)) == cell for p, q in zip(lat, lon)]
        # the centre is the mean of the cell's records, so it lies in (or beside) the cell
        near = (unit_xyz(lat, lon) @ a) > np.cos(3 * t.sigma_km[0] / 6371.0)
        assert sum(inside) >= min_count or near.sum() >= min_count


def test_anchor_features_are_local_and_cut_by_resolution():
    from geoprior.core.encoding import anchor_features, anchor_table

    lat, lon = _anchor_places()
    t = anchor_table(lat, lon, min_count=10, max_res=8)
    at = np.asarray(anchor_features(jnp.array([44.0]), jnp.array([-71.3]), t))[0]
    far = np.asarray(anchor_features(jnp.array([-44.0]), jnp.array([108.7]), t))[0]
    assert at.shape == (3 + t.res.size,)
    assert at[3:][t.res >= 5].max() > 0.5  # the dense cluster's fine anchors speak there
    assert far[3:][t.res >= 2].max() < 1e-3  # nothing fine speaks on the far side
    cut = np.asarray(
        anchor_features(jnp.array([44.0]), jnp.array([-71.3]), t, cutoff=jnp.array([3]))
    )[0]
    np.testing.assert_array_equal(cut[3:][t.res >= 3], 0.0)
    np.testing.assert_array_equal(cut[3:][t.res < 3], at[3:][t.res < 3])
    # continuous across the antimeridian like every encoder
    t2 = anchor_table(np.full(20, 10.0), np.full(20, 179.99), min_count=5, max_res=3)
    a, b = (
        np.asarray(anchor_features(jnp.array([10.0]), jnp.array([v]), t2))[0]
        for v in (180.0, -180.0)
    )
    np.testing.assert_allclose(a, b, atol=1e-5)
