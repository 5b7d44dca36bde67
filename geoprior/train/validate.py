"""The held-out choice of a run's length: which rows are held out, the monitor that scores
them (the one-standard-error rule), and the number of steps it chooses for the full data."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import jax
import numpy as np
from h3.api import basic_int as h3

from ..errors import ConfigError
from ..observations import Observations
from .config import Resolved, TrainConfig, resolve_config

__all__ = [
    "validates",
    "held_out_rows",
    "Monitor",
    "choose_steps",
    "ranking_losses",
    "validation_network",
]

#: Spatial-block validation holds out this share of the occupied cells...
VALIDATION_FRACTION = 0.2
#: ...of the coarsest H3 resolution at which the data occupy at least this many cells.
VALIDATION_MIN_BLOCKS = 20
#: Ranking validation scores a running (exponential) average of the weights over about
#: this share of the run's steps: a snapshot of the weights in mid-run, at a high learning
#: rate, scores worse than a run annealed to that length would; the average stands in for
#: the annealed run.
AVERAGED_SHARE = 0.1
#: The validation run is at most this share of the step rule's length (one network, so it
#: costs under half the final run): it shortens the run where the held-out score turns
#: worse within it, and leaves the rule's length where it does not.
VALIDATION_BUDGET = 0.6
#: Held-out rows scored at each validation (a fixed random sample).
VALIDATION_ROWS = 4096


def validates(config: TrainConfig, data) -> bool:
    """Whether the training length is chosen on held-out places (see ``validation``)."""
    if config.validation == "none":
        return False
    if config.steps != "auto":
        if config.validation != "auto":
            raise ConfigError(
                f"validation={config.validation!r} chooses the number of steps; it needs "
                f"steps='auto', got steps={config.steps}"
            )
        return False
    if isinstance(data, Observations) and jax.process_count() == 1:
        return True
    if config.validation != "auto":
        raise ConfigError(
            f"validation={config.validation!r} needs in-memory observations on one process; a column "
            "store or a multi-process run trains for fixed steps (validation='none')"
        )
    return False


def validation_network(config: TrainConfig, data) -> TrainConfig:
    """The validation run's configuration. For the ranking score, one network at the
    members' middle learning rate (the geometric mean of their rates), so choosing the
    length costs about three quarters of an ensemble's run instead of a whole one; the
    final run trains every member. The log-loss rule (covariates) trains the ensemble
    itself: it was measured so, and one network at the middle rate overfits sooner (disdat
    NZ with covariates: 63 steps, AP 0.177, against the ensemble's 0.191)."""
    if config.members == 1 or validation_score(config, data) != "ranking":
        return config
    middle = config.learning_rate * config.lr_spread**0.5
    return dataclasses.replace(config, members=1, lr_spread=1.0, learning_rate=middle)


def validation_score(config: TrainConfig, data) -> str:
    """What the held-out places are scored on (see ``TrainConfig.validation_score``)."""
    if config.validation_score != "auto":
        return config.validation_score
    if config.loss == "maxent" or (config.use_covariates and data.covariate_names):
        return "loss"
    return "ranking"


def held_out_rows(obs: Observations, how: str, seed: int = 0) -> tuple[np.ndarray, dict]:
    """Held-out mask for ``validation=how`` and a description of it.

    ``"places"``: :data:`VALIDATION_FRACTION` of the distinct places with all their records
    (the question a prior answers at a place nobody has recorded: a new plot beside old
    ones, a new survey site, a test site of a presence-absence survey). ``"blocks"``: that
    share of the occupied H3 cells of the coarsest resolution at which the data occupy at
    least :data:`VALIDATION_MIN_BLOCKS` cells (new regions: a far stricter question).
    """
    places, inverse = np.unique(np.stack([obs.lat, obs.lon], 1), axis=0, return_inverse=True)
    inverse = inverse.ravel()
    about: dict = {"how": how, "places": len(places), "held_out": VALIDATION_FRACTION}
    groups = np.arange(len(places))
    if how == "blocks":
        for r in range(16):
            cells = np.array([h3.latlng_to_cell(a, b, r) for a, b in places], dtype=np.uint64)
            uniq, groups = np.unique(cells, return_inverse=True)
            if uniq.size >= VALIDATION_MIN_BLOCKS:
                break
        about.update(h3_res=r, blocks=int(uniq.size))
    n_groups = int(groups.max()) + 1
    held = np.random.default_rng(seed).random(n_groups) < VALIDATION_FRACTION
    if n_groups < 2:
        held[:] = False
    elif not held.any() or held.all():
        held[:] = np.arange(n_groups) == 0
    return held[groups.ravel()][inverse], about


def ranking_losses(log_presence: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """One minus each species' ROC AUC over held-out rows: the rows of the species
    (positives) against the held-out rows of every other species (target-group negatives:
    places where somebody recorded something else), ranked by ``log_presence (n, k)`` whose
    column ``j`` is the ``j``-th species present in ``labels`` (``np.unique`` order).
    Species whose rows are all or none of the held-out rows have no AUC and are left out.

    >>> ranking_losses(np.array([[2.0, 0.0], [1.0, 1.0], [0.0, 2.0]]), np.array([0, 0, 1]))
    array([0., 0.])
    """
    species = np.unique(labels)
    ranks = np.empty(log_presence.shape, np.float64)
    order = np.argsort(log_presence, axis=0, kind="stable")
    np.put_along_axis(ranks, order, np.arange(1, len(labels) + 1, dtype=np.float64)[:, None], 0)
    column = np.searchsorted(species, labels)  # each row's own species' column
    n_pos = np.bincount(column, minlength=species.size)
    n_neg = len(labels) - n_pos
    ok = (n_pos > 0) & (n_neg > 0)
    rank_sum = np.bincount(
        column, weights=ranks[np.arange(len(labels)), column], minlength=species.size
    )
    u = rank_sum - n_pos * (n_pos + 1) / 2.0
    return 1.0 - u[ok] / (n_pos[ok] * n_neg[ok])


class Monitor:
    """The held-out score of a run every ``every`` steps; chooses the length and says when
    to stop.

    ``score="loss"``: each held-out row's loss, by the one-standard-error rule (Breiman et
    al. 1984; glmnet's ``lambda.1se``): the shortest run whose mean held-out loss is within
    one standard error of the best one's, so a long plateau of gains smaller than their
    noise does not buy more steps; it stops ``patience`` scores after the chosen step.

    ``score="ranking"``: each species' :func:`ranking_losses` (1 − AUC of the presence
    output over the held-out rows). A ranking does not turn over-confident the way a
    log-loss does, so the rule does not pull the length short: the best score is the
    lowest of the curve smoothed over three neighbouring scores (one score's noise does not
    choose), the run stops ``patience`` scores after it, and the chosen length is the
    *longest* run since the best whose score is within one standard error of the best's —
    the error of their paired difference (the same species and rows at every score). Held-
    out places say how long a run still generalises to new places; among lengths they
    cannot tell apart, the longer fits the surveyed places better, which they do not test.
    """

    def __init__(
        self, obs: Observations, every: int, patience: int, seed: int, score: str = "loss"
    ):
        rows = np.random.default_rng(seed).permutation(len(obs))[:VALIDATION_ROWS]
        self.obs = obs[np.sort(rows)]
        self.every, self.patience, self.score = every, patience, score
        self.curve: list[tuple[int, float, float]] = []  # step, mean, standard error
        self._values: list[np.ndarray] = []
        self.stopped = False  # whether the score turned worse for `patience` scores

    def _lowest(self) -> int:
        """Index of the lowest score (of the smoothed curve, for ranking)."""
        means = np.array([c[1] for c in self.curve])
        if self.score != "ranking":
            return int(np.argmin(means))
        padded = np.concatenate([means[:1], means, means[-1:]])
        return int(np.argmin((padded[:-2] + padded[1:-1] + padded[2:]) / 3.0))

    @property
    def best_step(self) -> int:
        """The chosen length (see the class)."""
        if not self.curve:
            return self.every
        low = self._lowest()
        if self.score == "ranking":
            chosen = low
            for i in range(low + 1, len(self.curve)):
                d = self._values[i] - self._values[low]
                if d.mean() <= (d.std() / np.sqrt(d.size) if d.size > 1 else 0.0):
                    chosen = i
            return self.curve[chosen][0]
        _, best, se = self.curve[low]
        return next(t for t, mean, _ in self.curve if mean <= best + se)

    def record(self, step: int, losses: np.ndarray) -> bool:
        """Add the held-out losses (per row or per species, or one mean); ``True`` once
        ``patience`` scores have passed since the chosen step."""
        losses = np.asarray(losses, np.float64).ravel()
        se = float(losses.std() / np.sqrt(losses.size)) if losses.size > 1 else 0.0
        self.curve.append((step, float(losses.mean()), se))
        self._values.append(losses)
        since = self.curve[self._lowest()][0] if self.score == "ranking" else self.best_step
        self.stopped = step - since >= self.patience * self.every
        return self.stopped


def choose_steps(
    data: Observations,
    config: TrainConfig,
    batch: int,
    data_parallel: int,
    fit: Callable[[Observations, Resolved, Monitor], object],
) -> dict:
    """Train on the data less the held-out rows, score them every ``eval_every`` steps,
    and return the best length for the full data (scaled to its size), with the curve.

    ``fit(part, resolved, monitor)`` runs the training on ``part`` for at most
    ``resolved.steps`` steps, recording the held-out scores in ``monitor`` and stopping
    when it says so.
    """
    t0 = time.perf_counter()
    how = "places" if config.validation == "auto" else config.validation
    held, about = held_out_rows(data, how, config.seed)
    if not held.any():
        return {**about, "steps": None, "skipped": "one place only: nothing to hold out"}
    part, val = data[np.flatnonzero(~held)], data[np.flatnonzero(held)]
    # the final run's batch size, so a step of either run moves the weights alike
    res = resolve_config(config, part, data_parallel=data_parallel)
    budget = max(config.eval_every * (config.patience + 1), round(VALIDATION_BUDGET * res.steps))
    res = dataclasses.replace(res, batch_size=batch, steps=int(budget))
    score = validation_score(config, data)
    monitor = Monitor(val, config.eval_every, config.patience, config.seed, score)
    fit(part, res, monitor)
    best = monitor.best_step
    # the same batch size and passes over the data as the best run on the part; a score
    # that never turned worse within the budget leaves the step rule's length
    steps = int(max(config.eval_every, round(best * len(data) / len(part))))
    return {
        **about,
        "score": score,
        "budget_steps": int(budget),
        "stopped": monitor.stopped,
        "steps": steps if monitor.stopped else None,
        "held_out_rows": len(val),
        "best_step": int(best),
        "curve": [[int(t), round(v, 5), round(se, 5)] for t, v, se in monitor.curve],
        "seconds": round(time.perf_counter() - t0, 3),
    }
