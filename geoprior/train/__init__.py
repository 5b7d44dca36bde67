"""Training: :class:`TrainConfig` in, a :class:`~geoprior.GeoPrior` out (:func:`train_prior`).

The pieces, in the order a run uses them: the config and its data-resolved values
(:mod:`.config`), the batches (:mod:`.batches`) on the devices (:mod:`.distributed`), the
background places (:mod:`.backgrounds`), the loss and the jitted step (:mod:`.step`), the
checkpoints (:mod:`.checkpoint`), the held-out choice of the length (:mod:`.validate`) and
the loop over them (:mod:`.loop`).
"""

from .loop import TrainConfig, held_out_rows, resolve_config, support_places, train_prior

__all__ = ["TrainConfig", "train_prior", "resolve_config", "held_out_rows", "support_places"]
