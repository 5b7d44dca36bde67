"""The training step, in pieces each testable alone: the optimiser, the input features, the
loss of a batch (:func:`make_loss_fn`) and one optimiser update (:func:`make_train_step`).

Determinism: the step's random key is ``fold_in(key, state.step)``, so the step at ``t``
draws the same background places, dropout and negatives however the run got there (a run
resumed from a checkpoint continues exactly as if it had never stopped).

With several ensemble members every weight has a leading member axis; the members share
the batch, the background places and the date, scale and negative draws of a step, and
differ in their initialisation and their dropout.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from ..core.encoding import EncoderSpec, encode_inputs
from ..core.losses import an_full, an_ssdl, joint, maxent
from ..core.model import GeoNet
from .backgrounds import Background

__all__ = [
    "TrainState",
    "make_optimizer",
    "make_features",
    "init_state",
    "make_loss_fn",
    "make_train_step",
    "is_head",
    "state_shardings",
]


class TrainState(NamedTuple):
    params: Any
    opt_state: Any
    step: jnp.ndarray


def make_optimizer(
    learning_rate: float,
    weight_decay: float,
    warmup_fraction: float,
    steps: int,
    members: int = 1,
    lr_spread: float = 1.0,
) -> optax.GradientTransformation:
    """AdamW with a linear warm-up over ``warmup_fraction`` of the steps, then a cosine
    decay to 1% of ``learning_rate`` at ``steps``. With ``members`` > 1 (weights with a
    leading member axis) member ``k`` learns at ``learning_rate * lr_spread ** (k / (members
    - 1))``: AdamW's update (weight decay included) is proportional to the learning rate,
    so scaling a member's update is exactly its own learning rate."""
    schedule = optax.warmup_cosine_decay_schedule(
        0.0,
        learning_rate,
        max(1, int(warmup_fraction * steps)),
        steps,
        end_value=learning_rate * 0.01,
    )
    adamw = optax.adamw(schedule, weight_decay=weight_decay)
    if members == 1 or lr_spread == 1.0:
        return adamw
    scale = jnp.asarray(lr_spread, jnp.float32) ** (jnp.arange(members) / (members - 1))

    def per_member(updates, params=None):
        return jax.tree_util.tree_map(
            lambda u: u * scale.reshape((members,) + (1,) * (u.ndim - 1)).astype(u.dtype),
            updates,
        )

    return optax.chain(adamw, optax.stateless(per_member))


def make_features(encoder: EncoderSpec, tables, scale_dropout: float = 0.0) -> Callable:
    """``features(lat, lon, doy, cov, key=None)``: the network's inputs. With a ``key``
    (in training) and an anchors encoder, a share ``scale_dropout`` of the rows keeps only
    the anchors of resolutions below a random cutoff (the others keep all of them)."""
    anchored = encoder.kind == "anchors" and tables.res.size
    top = int(tables.res.max()) + 1 if anchored else 0
    scale_dropout = scale_dropout if top else 0.0

    def features(lat, lon, doy, c, key=None):
        cutoff = None
        if key is not None and scale_dropout:
            k1, k2 = jax.random.split(key)
            cut = jax.random.randint(k1, lat.shape, 0, top)
            cutoff = jnp.where(jax.random.bernoulli(k2, scale_dropout, lat.shape), cut, top)
        return encode_inputs(encoder, tables, lat, lon, doy, c, cutoff)

    return features


def init_state(
    key, model: GeoNet, n_species: int, in_dim: int, members: int, optimizer
) -> TrainState:
    """The first state: ``members`` networks (a leading member axis on every weight when
    there are several) for ``in_dim`` inputs, their species heads padded with zero columns
    from ``n_species`` to ``model.n_species``."""

    # initialise the real head, then pad it with zero columns (which the losses
    # ignore), so the weights do not depend on how the head is split
    def init_one(k):
        net = GeoNet(n_species, model.config, observation_head=model.observation_head)
        return net.init(k, jnp.zeros((1, in_dim)))["params"]

    if members == 1:
        params = init_one(key)
    else:  # a leading member axis on every weight
        params = jax.vmap(init_one)(jax.random.split(key, members))
    params = jax.tree_util.tree_map_with_path(
        lambda path, x: (
            jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, model.n_species - n_species)])
            if is_head(path)
            else x
        ),
        params,
    )
    return TrainState(params, optimizer.init(params), jnp.asarray(0, jnp.int32))


def make_loss_fn(
    model: GeoNet,
    features: Callable,
    background: Background,
    *,
    loss: str,
    n_species: int,
    pos_weight: float,
    date_dropout: float,
    members: int = 1,
) -> Callable:
    """``loss_fn(params, batch, tables, key, train=True)``: the loss of a batch.

    ``batch`` holds the rows (``lat``, ``lon``, ``species``, optional ``doy`` and ``cov``)
    and their target-group background places (``bg_lat``, ``bg_lon``, ...); ``tables`` are
    the ``background``'s tables on the devices. In training the loss is a scalar: with
    several members, the sum of theirs (so each member's gradient is its own). With
    ``train=False`` (validation) the observation head's log-loss of each row (under the
    members' averaged probabilities) for ``"maxent"`` and ``"joint"``, the members' mean
    loss otherwise; no dropout.
    """
    padded = model.n_species

    def member_loss(params, b, tables, key, member_key=None, train: bool = True):
        """One network's loss; ``key`` draws what every member shares (background places,
        date and scale dropout, negatives), ``member_key`` the network's own dropout."""
        k_bg, k_drop, k_drop_bg, k_neg, k_do1, k_do2, k_bgd, k_sc1, k_sc2 = jax.random.split(key, 9)
        if member_key is not None:
            k_do1, k_do2 = jax.random.split(member_key)
        labels = b["species"]
        doy = b.get("doy")
        if doy is not None and train:
            doy = jnp.where(jax.random.bernoulli(k_drop, date_dropout, doy.shape), jnp.nan, doy)
        x = features(b["lat"], b["lon"], doy, b.get("cov"), k_sc1 if train else None)
        variables = {"params": params}
        emb = model.apply(variables, x, train, method=GeoNet.embed, rngs={"dropout": k_do1})
        if not train and loss in ("maxent", "joint"):
            # validation scores the observation head: each held-out row's log-loss
            logits = model.apply(variables, emb, loss == "joint", method=GeoNet.head)
            logp = jax.nn.log_softmax(jnp.where(jnp.arange(padded) < n_species, logits, -jnp.inf))
            return -jnp.take_along_axis(logp, labels[:, None], 1)[:, 0]
        if loss == "maxent":
            return maxent(model.apply(variables, emb, method=GeoNet.head), labels, n_species)
        b_lat, b_lon, from_target = background.sample(tables, k_bg, b["lat"].shape[0], b)
        b_doy = None
        if doy is not None:
            rand_doy = jax.random.uniform(k_bgd, b_lat.shape, minval=1.0, maxval=366.0)
            b_doy = jnp.where(from_target, b["bg_doy"], rand_doy) if "bg_doy" in b else rand_doy
            if train:
                b_doy = jnp.where(
                    jax.random.bernoulli(k_drop_bg, date_dropout, b_doy.shape), jnp.nan, b_doy
                )
        emb_bg = model.apply(
            variables,
            features(b_lat, b_lon, b_doy, b.get("bg_cov"), k_sc2 if train else None),
            train,
            method=GeoNet.embed,
            rngs={"dropout": k_do2},
        )
        if loss in ("an_full", "joint"):
            presence = (
                model.apply(variables, emb, method=GeoNet.head),
                model.apply(variables, emb_bg, method=GeoNet.head),
            )
            if loss == "an_full":
                return an_full(*presence, labels, pos_weight, n_species)
            observation = model.apply(variables, emb, True, method=GeoNet.head)
            return joint(*presence, observation, labels, pos_weight, n_species)
        neg = (labels + jax.random.randint(k_neg, labels.shape, 1, n_species)) % n_species
        cols = jnp.stack([labels, neg], 1)
        obs_logits = model.apply(variables, emb, cols, method=GeoNet.head_columns)
        bg_logit = model.apply(variables, emb_bg, labels[:, None], method=GeoNet.head_columns)[:, 0]
        return an_ssdl(obs_logits[:, 0], obs_logits[:, 1], bg_logit, pos_weight)

    def loss_fn(params, b, tables, key, train: bool = True):
        if members == 1:
            return member_loss(params, b, tables, key, None, train)
        member_keys = jax.random.split(jax.random.fold_in(key, 1), members)
        # members unrolled, each on its own weights: plain 2-D products, which XLA runs
        # faster than the same products batched over a member axis
        each = jnp.stack(
            [
                member_loss(
                    jax.tree_util.tree_map(lambda a, m=m: a[m], params), b, tables, key,
                    member_keys[m], train,
                )
                for m in range(members)
            ]
        )
        if not train and each.ndim == 2:  # per-row -log p: of the mean probability
            return -(jax.nn.logsumexp(-each, axis=0) - jnp.log(members))
        return jnp.sum(each) if train else jnp.mean(each)

    return loss_fn


def make_log_presence(model: GeoNet, features: Callable, members: int = 1) -> Callable:
    """``log_presence(params, batch, cols) -> (n, k)``: the log of the members' mean presence
    probability of species ``cols (k,)`` at the batch's rows (no dropout, no fade: held-out
    rows lie among the training places). What ranking validation scores."""

    def one(params, b, cols):
        x = features(b["lat"], b["lon"], b.get("doy"), b.get("cov"))
        variables = {"params": params}
        emb = model.apply(variables, x, False, method=GeoNet.embed)
        return jax.nn.log_sigmoid(model.apply(variables, emb, cols, method=GeoNet.fixed_columns))

    def log_presence(params, b, cols):
        if members == 1:
            return one(params, b, cols)
        each = jax.vmap(one, in_axes=(0, None, None))(params, b, cols)
        return jax.nn.logsumexp(each, axis=0) - jnp.log(members)

    return log_presence


def make_train_step(loss_fn: Callable, optimizer, key, members: int = 1) -> Callable:
    """``train_step(state, batch, tables) -> (state, loss)``: one optimiser update of
    ``loss_fn`` (see :func:`make_loss_fn`) with the step's key ``fold_in(key, state.step)``;
    the loss returned is the members' mean. Pure: jit it (the loop does, with shardings)."""

    def train_step(state: TrainState, b, tables):
        step_key = jax.random.fold_in(key, state.step)
        loss, grads = jax.value_and_grad(loss_fn)(state.params, b, tables, step_key)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        return TrainState(
            optax.apply_updates(state.params, updates), opt_state, state.step + 1
        ), loss / members  # the members' mean

    return train_step


def is_head(path) -> bool:
    """A species head's kernel (presence or observation), in the parameters and in the
    optimiser's moments."""
    return any(getattr(k, "key", None) in ("head_out", "head_obs") for k in path)


def state_shardings(state_shapes, mesh, model_parallel: int):
    """Replicated, except the species head's columns split over ``"model"``."""

    def one(path, x):
        if model_parallel > 1 and is_head(path):
            return NamedSharding(mesh, P(*([None] * (x.ndim - 1)), "model"))
        return NamedSharding(mesh, P())

    return jax.tree_util.tree_map_with_path(one, state_shapes)
