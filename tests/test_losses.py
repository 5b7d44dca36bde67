import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from geoprior.core.losses import an_full, an_ssdl, maxent


def brute_an_full(lo, lb, y, w):
    p, pb = jax.nn.sigmoid(lo), jax.nn.sigmoid(lb)
    b, s = lo.shape
    total = 0.0
    for i in range(b):
        for j in range(s):
            total += -w * np.log(p[i, j]) if j == y[i] else -np.log(1 - p[i, j])
    return total / (b * s) + float(-np.log(1 - pb).mean())


@given(st.integers(0, 10_000))
@settings(max_examples=20, deadline=None)
def test_an_full_matches_definition(seed):
    rng = np.random.default_rng(seed)
    lo, lb = rng.normal(size=(4, 5)), rng.normal(size=(3, 5))
    y = rng.integers(0, 5, 4)
    got = float(an_full(jnp.asarray(lo), jnp.asarray(lb), jnp.asarray(y), 7.0))
    np.testing.assert_allclose(got, brute_an_full(lo, lb, y, 7.0), rtol=1e-4)


def test_losses_finite_for_extreme_logits():
    lo = jnp.array([[1e4, -1e4], [-1e4, 1e4]])
    y = jnp.array([0, 1])
    assert np.isfinite(float(an_full(lo, lo, y, 2048.0)))
    assert np.isfinite(float(an_ssdl(lo[:, 0], lo[:, 1], lo[:, 1], 2048.0)))
    assert np.isfinite(float(maxent(lo, y)))


def test_losses_decrease_toward_the_truth():
    y = jnp.array([0])
    right, wrong = jnp.array([[3.0, -3.0]]), jnp.array([[-3.0, 3.0]])
    bg = jnp.array([[-3.0, -3.0]])
    assert an_full(right, bg, y, 1.0) < an_full(wrong, bg, y, 1.0)
    assert maxent(right, y) < maxent(wrong, y)
    assert an_ssdl(right[:, 0], right[:, 1], bg[:, 0], 1.0) < an_ssdl(
        wrong[:, 0], wrong[:, 1], bg[:, 0], 1.0
    )


def test_maxent_invariant_to_row_constant():
    lo = jnp.array([[0.5, 1.0, -2.0]])
    np.testing.assert_allclose(
        float(maxent(lo, jnp.array([1]))), float(maxent(lo + 100, jnp.array([1]))), rtol=1e-5
    )


def test_padding_columns_change_nothing():
    """A head padded for an even split over devices gives the unpadded losses."""
    rng = np.random.default_rng(0)
    obs, bg = rng.normal(size=(6, 5)), rng.normal(size=(6, 5))
    labels = jnp.asarray(rng.integers(0, 5, 6))
    pad = lambda x: jnp.concatenate([jnp.asarray(x), jnp.asarray(rng.normal(size=(6, 3)))], 1)  # noqa: E731
    np.testing.assert_allclose(
        an_full(pad(obs), pad(bg), labels, 4.0, n_species=5),
        an_full(obs, bg, labels, 4.0),
        rtol=1e-6,
    )
    np.testing.assert_allclose(
        maxent(pad(obs), labels, n_species=5), maxent(obs, labels), rtol=1e-6
    )
