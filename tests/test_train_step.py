"""The training step's pieces alone: the loss of a batch and one optimiser update."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geoprior import EncoderSpec, ModelConfig
from geoprior.core.model import GeoNet
from geoprior.train import TrainState, init_state, make_loss_fn, make_train_step
from geoprior.train.backgrounds import Background
from geoprior.train.step import make_features

N_SPECIES = 3
PADDED = 4  # one zero column of padding, as with model_parallel=2
ENCODER = EncoderSpec(kind="xyz")
KEY = jax.random.key(0)


def _problem(loss: str = "joint", members: int = 2, dropout: float = 0.0):
    """A tiny network, its first state and loss, and a fixed batch of 16 rows."""
    model = GeoNet(
        PADDED, ModelConfig(width=8, depth=1, dropout=dropout), observation_head=loss == "joint"
    )
    bbox = (-10.0, 40.0, 10.0, 50.0)
    background = Background("uniform", bbox, np.array([45.0]), np.array([0.0]))
    loss_fn = make_loss_fn(
        model,
        make_features(ENCODER, None),
        background,
        loss=loss,
        n_species=N_SPECIES,
        pos_weight=2.0,
        date_dropout=0.25,
        members=members,
    )
    optimizer = optax.adamw(1e-2)
    state = init_state(jax.random.key(1), model, N_SPECIES, ENCODER.dim(), members, optimizer)
    rng = np.random.default_rng(0)
    batch = {
        "lat": jnp.asarray(rng.uniform(40, 50, 16), jnp.float32),
        "lon": jnp.asarray(rng.uniform(-10, 10, 16), jnp.float32),
        "species": jnp.asarray(rng.integers(0, N_SPECIES, 16), jnp.int32),
    }
    return loss_fn, optimizer, state, batch, background.tables


def _member(params, m: int):
    return jax.tree_util.tree_map(lambda x: x[m], params)


@pytest.mark.parametrize("loss", ["joint", "an_full", "an_ssdl", "maxent"])
def test_loss_of_a_batch_is_finite_and_the_sum_of_the_members(loss):
    loss_fn, _, state, batch, tables = _problem(loss)
    total = loss_fn(state.params, batch, tables, KEY)
    assert total.shape == () and np.isfinite(total)
    # without dropout the members differ only in their weights: each one's loss is the
    # one-network loss of its weights under the same shared draws
    single, *_ = _problem(loss, members=1)
    each = [single(_member(state.params, m), batch, tables, KEY) for m in range(2)]
    np.testing.assert_allclose(total, sum(each), rtol=1e-5)


def test_validation_loss_is_per_row_of_the_averaged_members():
    loss_fn, _, state, batch, tables = _problem("joint")
    rows = loss_fn(state.params, batch, tables, KEY, train=False)
    assert rows.shape == (16,) and np.isfinite(rows).all()
    single, *_ = _problem("joint", members=1)
    p = np.mean(
        [np.exp(-single(_member(state.params, m), batch, tables, KEY, False)) for m in range(2)],
        axis=0,
    )
    np.testing.assert_allclose(rows, -np.log(p), rtol=1e-5)


def test_one_member_has_no_member_axis_and_the_head_is_padded():
    _, _, one, *_ = _problem(members=1)
    _, _, two, *_ = _problem(members=2)
    assert one.params["inp"]["kernel"].shape == (ENCODER.dim(), 8)
    assert two.params["inp"]["kernel"].shape == (2, ENCODER.dim(), 8)
    assert one.params["head_out"]["kernel"].shape == (8, PADDED)
    assert two.params["head_obs"]["kernel"].shape == (2, 8, PADDED)
    np.testing.assert_array_equal(two.params["head_out"]["kernel"][..., N_SPECIES:], 0.0)
    assert int(one.step) == 0


def test_one_step_moves_the_weights_and_keeps_their_shapes():
    loss_fn, optimizer, state, batch, tables = _problem(dropout=0.1)
    step = jax.jit(make_train_step(loss_fn, optimizer, KEY, members=2))
    new, loss = step(state, batch, tables)
    assert isinstance(new, TrainState) and int(new.step) == 1
    # the reported loss is the members' mean of the loss the step descended
    expected = loss_fn(state.params, batch, tables, jax.random.fold_in(KEY, 0)) / 2
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    old, moved = jax.tree_util.tree_leaves(state.params), jax.tree_util.tree_leaves(new.params)
    assert [a.shape for a in old] == [b.shape for b in moved]
    assert all(not np.array_equal(a, b) for a, b in zip(old, moved) if a.ndim == 3)
    # the same state and batch give the same step (the key is the step's)
    again, _ = step(state, batch, tables)
    for a, b in zip(moved, jax.tree_util.tree_leaves(again.params)):
        np.testing.assert_array_equal(a, b)


_GRAD = {}


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), scale=st.floats(0.1, 10.0))
def test_member_gradients_do_not_depend_on_the_other_members_weights(seed, scale):
    if not _GRAD:  # one problem, one compilation, for every example
        loss_fn, _, state, batch, tables = _problem("joint", dropout=0.1)
        _GRAD.update(
            grad=jax.jit(jax.grad(lambda p: loss_fn(p, batch, tables, KEY))), params=state.params
        )
    grad, params = _GRAD["grad"], _GRAD["params"]
    noise = jax.random.key(seed)

    def redraw_member_1(x):
        return x.at[1].set(scale * jax.random.normal(noise, x.shape[1:], x.dtype))

    other = jax.tree_util.tree_map(redraw_member_1, params)
    for a, b in zip(
        jax.tree_util.tree_leaves(_member(grad(params), 0)),
        jax.tree_util.tree_leaves(_member(grad(other), 0)),
    ):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@settings(max_examples=8, deadline=None)
@given(
    spread=st.floats(0.25, 8.0),
    members=st.integers(2, 4),
    step=st.integers(0, 40),
    seed=st.integers(0, 2**16),
)
def test_each_member_learns_at_its_own_rate(spread, members, step, seed):
    """With ``lr_spread`` member k's AdamW update is ``spread ** (k / (members - 1))``
    times what it would be at the base rate (weight decay included), at every step of the
    schedule; with one member, or spread 1, the optimiser is plain AdamW."""
    from geoprior.train.step import make_optimizer

    rng = np.random.default_rng(seed)
    one = {"w": jnp.asarray(rng.normal(size=(3, 2)), jnp.float32)}
    grad = {"w": jnp.asarray(rng.normal(size=(3, 2)), jnp.float32)}
    stack = lambda t: jax.tree_util.tree_map(lambda x: jnp.stack([x] * members), t)  # noqa: E731
    base = make_optimizer(1e-3, 1e-4, 0.05, 50)
    spread_tx = make_optimizer(1e-3, 1e-4, 0.05, 50, members, spread)
    s_base, s_spread = base.init(one), spread_tx.init(stack(one))
    for _ in range(step + 1):  # reach the same point of the schedule
        u_base, s_base = base.update(grad, s_base, one)
        u_spread, s_spread = spread_tx.update(stack(grad), s_spread, stack(one))
    for k in range(members):
        np.testing.assert_allclose(
            u_spread["w"][k], u_base["w"] * spread ** (k / (members - 1)), rtol=2e-5, atol=1e-9
        )
    structure = jax.tree_util.tree_structure
    for plain in (
        make_optimizer(1e-3, 1e-4, 0.05, 50, 1, spread),
        make_optimizer(1e-3, 1e-4, 0.05, 50, members, 1.0),
    ):
        assert structure(plain.init(one)) == structure(base.init(one))
