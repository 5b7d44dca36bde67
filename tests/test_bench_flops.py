"""The speed benchmark's FLOP counts against XLA's own count of the compiled products: a
fraction of peak is only as honest as the FLOPs it divides."""

import jax
import jax.numpy as jnp
import pytest

from benchmarks.bench_speed import dense_flops, train_flops
from geoprior.core.model import GeoNet, ModelConfig


def xla_flops(fn, *args) -> float:
    cost = jax.jit(fn).lower(*args).compile().cost_analysis()
    return float((cost[0] if isinstance(cost, list) else cost)["flops"])


@pytest.mark.parametrize("depth, species", [(0, 300), (2, 300), (1, 40)])
def test_counts_match_xla(depth, species):
    rows, in_dim = 128, 400
    model = ModelConfig(width=64, depth=depth, dropout=0.0)
    net = GeoNet(species, model)
    x = jax.random.uniform(jax.random.key(0), (rows, in_dim))
    params = net.init(jax.random.key(1), x)["params"]

    def forward(p, x):
        return net.apply({"params": p}, x)

    def step(p, x):  # the features are data: only the weights are differentiated
        return jax.grad(lambda p: jnp.sum(jax.nn.softplus(forward(p, x))))(p)

    fwd, train = dense_flops(rows, in_dim, model, species), train_flops(rows, in_dim, model, species)
    # XLA also counts the elementwise work (biases, relus, the loss): a few percent here
    assert fwd <= xla_flops(forward, params, x) <= 1.05 * fwd
    assert train <= xla_flops(step, params, x) <= 1.05 * train
    # the naive three forwards would overcount by the input layer's input gradient
    assert 3 * fwd > 1.05 * xla_flops(step, params, x)
