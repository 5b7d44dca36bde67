"""The Flax network: a residual MLP from encoded place (and date, covariates) to species logits.

The architecture of Mac Aodha et al. (2019) and SINR (Cole et al. 2023): an input layer,
``depth`` residual blocks of ``width`` units with dropout, and a bias-free linear species
head (optionally low-rank, for tens of thousands of species). The network is split into
:meth:`GeoNet.embed` (place → ``width`` features) and :meth:`GeoNet.head` so losses that
touch only a few species per row can avoid the dense ``(batch, species)`` product.

With ``observation_head`` the trunk feeds two heads: ``head_out``, presence logits (one
sigmoid per species: is it there?), and ``head_obs``, observation logits (one softmax over
species: which species is an observation made here of?). Every head method takes
``obs=True`` to use the second.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import flax.linen as nn
import jax.numpy as jnp

from ..errors import ConfigError

__all__ = ["ModelConfig", "GeoNet"]


@dataclass(frozen=True)
class ModelConfig:
    """Network shape. ``head_rank`` > 0 factorises the species head through a rank-r layer."""

    width: int = 256
    depth: int = 2
    dropout: float = 0.2
    head_rank: int = 0

    def __post_init__(self):
        if self.width < 1 or self.depth < 0:
            raise ConfigError(f"width must be >= 1 and depth >= 0, got {self.width}, {self.depth}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.head_rank < 0:
            raise ConfigError(f"head_rank must be >= 0, got {self.head_rank}")

    def to_dict(self) -> dict:
        return asdict(self)


class _ResidualBlock(nn.Module):
    width: int
    dropout: float

    @nn.compact
    def __call__(self, x, train: bool):
        h = nn.relu(nn.Dense(self.width)(x))
        h = nn.Dropout(self.dropout, deterministic=not train)(h)
        h = nn.relu(nn.Dense(self.width)(h))
        return x + h


class GeoNet(nn.Module):
    """Residual MLP. Call with features ``(n, d)``; returns logits ``(n, n_species)``."""

    n_species: int
    config: ModelConfig = ModelConfig()
    observation_head: bool = False

    def setup(self):
        c = self.config
        self.inp = nn.Dense(c.width)
        self.blocks = [_ResidualBlock(c.width, c.dropout) for _ in range(c.depth)]
        if c.head_rank:
            self.head_low = nn.Dense(c.head_rank, use_bias=False)
        self.head_out = nn.Dense(self.n_species, use_bias=False)
        if self.observation_head:
            self.head_obs = nn.Dense(self.n_species, use_bias=False)

    def embed(self, features, train: bool = False):
        """Place features → ``(n, width)`` embedding."""
        x = nn.relu(self.inp(features))
        for block in self.blocks:
            x = block(x, train)
        return x

    def _head(self, obs: bool):
        if obs and not self.observation_head:
            raise ValueError("this GeoNet has no observation head (observation_head=False)")
        return self.head_obs if obs else self.head_out

    def head_input(self, emb):
        """What the species heads multiply: the embedding, through the rank-r layer when the
        head is low-rank (``head(emb) == head_input(emb) @ kernel``)."""
        return self.head_low(emb) if self.config.head_rank else emb

    def head(self, emb, obs: bool = False):
        """Embedding → all species logits ``(n, S)`` (``obs``: of the observation head)."""
        return self._head(obs)(self.head_input(emb))

    def head_columns(self, emb, species, obs: bool = False):
        """Logits of chosen species: ``emb (n, w)``, ``species (n, k)`` int → ``(n, k)``,
        without forming the ``(n, S)`` product."""
        if self.config.head_rank:
            emb = self.head_low(emb)
        kernel = self._head(obs).variables["params"]["kernel"]  # (w, S)
        cols = jnp.take(kernel, species, axis=1)  # (w, n, k)
        return jnp.einsum("nw,wnk->nk", emb, cols)

    def fixed_columns(self, emb, species, obs: bool = False):
        """Logits of the same species ``species (k,)`` for every row: ``emb (n, w)`` →
        ``(n, k)``, as ``emb @ kernel[:, species]`` (the fixed-set twin of
        :meth:`head_columns`)."""
        if self.config.head_rank:
            emb = self.head_low(emb)
        return emb @ jnp.take(self._head(obs).variables["params"]["kernel"], species, axis=1)

    def __call__(self, features, train: bool = False):
        emb = self.embed(features, train)
        if self.observation_head:
            return self.head(emb), self.head(emb, obs=True)
        return self.head(emb)
