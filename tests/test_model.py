import jax
import jax.numpy as jnp
import numpy as np
import pytest

from geoprior import ConfigError, ModelConfig
from geoprior.core.model import GeoNet


@pytest.mark.parametrize("rank", [0, 4])
def test_shapes_and_head_columns(rank):
    net = GeoNet(50, ModelConfig(width=16, depth=2, dropout=0.1, head_rank=rank))
    x = jnp.ones((3, 7))
    params = net.init(jax.random.key(0), x)["params"]
    logits = net.apply({"params": params}, x)
    assert logits.shape == (3, 50)
    cols = jnp.array([[1, 2], [3, 4], [49, 0]])
    emb = net.apply({"params": params}, x, method=GeoNet.embed)
    picked = net.apply({"params": params}, emb, cols, method=GeoNet.head_columns)
    np.testing.assert_allclose(
        np.asarray(picked),
        np.take_along_axis(np.asarray(logits), np.asarray(cols), 1),
        rtol=1e-5,
        atol=1e-6,
    )
    assert "bias" not in params["head_out"]
    if rank:
        assert params["head_low"]["kernel"].shape == (16, 4)


def test_dropout_only_in_training():
    net = GeoNet(5, ModelConfig(width=8, depth=1, dropout=0.5))
    x = jnp.ones((4, 3))
    params = net.init(jax.random.key(0), x)["params"]
    a = net.apply({"params": params}, x)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(net.apply({"params": params}, x)))
    b = net.apply({"params": params}, x, True, rngs={"dropout": jax.random.key(1)})
    assert not np.allclose(np.asarray(a), np.asarray(b))


def test_config_validation():
    with pytest.raises(ConfigError):
        ModelConfig(dropout=1.5)
    with pytest.raises(ConfigError):
        ModelConfig(width=0)
