"""Training: :class:`TrainConfig` in, a :class:`~geoprior.GeoPrior` out (:func:`train_prior`).

The pieces, in the order a run uses them: the config and its data-resolved values
(:mod:`.config`), the batches (:mod:`.batches`) on the devices (:mod:`.distributed`), the
background places (:mod:`.backgrounds`), the loss and the jitted step (:mod:`.step`), the
checkpoints (:mod:`.checkpoint`), the held-out choice of the length (:mod:`.validate`) and
the loop over them (:mod:`.loop`).
"""

from .backgrounds import support_places
from .config import Resolved, TrainConfig, resolve_config
from .loop import fit_thresholds, train_prior
from .step import TrainState, init_state, make_loss_fn, make_train_step
from .validate import held_out_rows

__all__ = [
    "TrainConfig",
    "Resolved",
    "resolve_config",
    "train_prior",
    "fit_thresholds",
    "TrainState",
    "init_state",
    "make_loss_fn",
    "make_train_step",
    "held_out_rows",
    "support_places",
]
