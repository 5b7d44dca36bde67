"""A prior as one pure JAX function of its raw inputs, the graph an export holds.

:func:`prior_function` composes the pieces :class:`~geoprior.GeoPrior` scores with (the
encoder of :mod:`geoprior.core.encoding`, :class:`~geoprior.core.model.GeoNet`'s ``embed``
and ``head``, the presence fade of :data:`~geoprior.priors.geoprior.FADE_STEPS`) into a
function of ``points (n, 3)`` — latitude, longitude, day of the year (NaN: undated) — and
raw ``covariates (n, c)`` that returns every output at once: the trunk runs once per
ensemble member for both heads. Weights are closed over as constants, so tracing the
function (jax2onnx) writes them into the graph. The parity tests check it against
``GeoPrior.predict`` output by output.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ..core.encoding import encode_inputs, xyz
from ..core.model import GeoNet, ModelConfig
from ..errors import ConfigError
from ..geo import EARTH_RADIUS_KM
from ..priors.geoprior import FADE_STEPS

__all__ = ["prior_function"]


def _members(params, k: int) -> list:
    """The weights of each of ``k`` ensemble members (a leading member axis when ``k > 1``)."""
    if k == 1:
        return [jax.tree.map(np.asarray, params)]
    return [jax.tree.map(lambda a, i=i: np.asarray(a[i]), params) for i in range(k)]


def prior_function(prior) -> Callable:
    """``fn(points, covariates=None) -> tuple`` of a :class:`~geoprior.GeoPrior`'s outputs
    (in the order of ``prior.outputs``), then ``distance_km`` and ``outside``.

    ``points`` is float32 ``(n, 3)``; its third column is read only by a prior trained with
    dates. ``covariates`` are raw values, standardised inside as ``predict`` does.
    """
    if not hasattr(prior, "params") or not hasattr(prior, "encoder"):
        raise ConfigError(
            f"only a trained GeoPrior exports to ONNX, got a {type(prior).__name__} "
            "(baselines and adapters are not networks)"
        )
    net = GeoNet(
        prior.n_species,
        ModelConfig(**prior.header["config"]["model"]),
        observation_head=prior.loss == "joint",
    )
    spec = prior.encoder
    tables = prior.anchors if spec.kind == "anchors" else spec.frequencies()
    uses_date = prior.uses_date
    outputs = prior.outputs
    members = _members(prior.params, prior.members)
    k = len(members)
    has_cov = bool(prior.covariate_names)
    cov_mean = None if not has_cov else np.asarray(prior.cov_mean, np.float32)
    cov_std = None if not has_cov else np.asarray(prior.cov_std, np.float32)
    support = None if prior.support is None else np.asarray(xyz(prior.support[:, 0], prior.support[:, 1]))
    far = None if prior.far_km is None else max(float(prior.far_km), 1e-3)
    obs_head = prior.loss == "joint"

    def distance(lat, lon):
        # as GeoPrior: the nearest place by dot product, the km from coordinate differences
        p = xyz(lat, lon)
        nearest = jnp.take(support, jnp.argmax(p @ support.T, axis=-1), axis=0)
        chord = jnp.sqrt(jnp.sum(jnp.square(p - nearest), -1))
        return 2 * EARTH_RADIUS_KM * jnp.arcsin(jnp.clip(chord / 2, 0.0, 1.0))

    def fn(points, covariates=None):
        lat, lon = points[:, 0], points[:, 1]
        doy = points[:, 2] if uses_date else None
        cov = None if not has_cov else (covariates - cov_mean) / cov_std
        x = encode_inputs(spec, tables, lat, lon, doy, cov)
        observation = presence = 0.0
        for params in members:  # each member on its own weights; probabilities averaged
            emb = net.apply({"params": params}, x, method=GeoNet.embed)
            if "observation" in outputs:
                logits = net.apply({"params": params}, emb, obs_head, method=GeoNet.head)
                observation = observation + jax.nn.softmax(logits, -1)
            if "presence" in outputs:
                logits = net.apply({"params": params}, emb, False, method=GeoNet.head)
                presence = presence + jax.nn.sigmoid(logits)
        if support is None:
            # NaN km, never outside (written from lat: the batch size is symbolic here)
            km = lat * jnp.float32(jnp.nan)
            outside = lat != lat
        else:
            km = distance(lat, lon)
            outside = km > far
        result = []
        if "observation" in outputs:
            result.append(observation / k)
        if "presence" in outputs:
            presence = presence / k
            if support is not None:  # 0 within far_km, then a Gaussian of scale far_km / 3
                beyond = jnp.maximum(km - far, 0.0) / (far / FADE_STEPS)
                presence = presence * jnp.exp(-0.5 * beyond**2)[:, None]
            result.append(presence)
        return (*result, km, outside)

    return fn
