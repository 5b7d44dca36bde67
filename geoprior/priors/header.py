"""The header of a saved GeoPrior: what it was trained with, on what, and how it went.

:class:`PriorHeader` is the one place its layout is written down; training builds one and
:meth:`PriorHeader.to_dict` gives the JSON object ``prior.json`` holds (beside the format
stamps and the species list that :func:`~geoprior.persistence.save_folder` adds).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields

__all__ = ["PriorHeader"]


@dataclass(frozen=True)
class PriorHeader:
    """A GeoPrior's header.

    Attributes:
        config: the training config (:meth:`TrainConfig.to_dict`; ``loss``, ``model`` and
            ``members`` are what scoring reads).
        resolved: what the config resolved to on the data (``use_date``, ``encoder``,
            ``far_km``, ``bbox``, ...).
        extent: where the data lie (``bbox``, and ``spacing_km``, ``extent_km`` after
            training).
        covariates: the covariate columns the prior needs, in order.
        covariate_source: where the covariates come from, when training sampled them
            from rasters (:meth:`geoprior.io.rasters.RasterCovariates.record`: the rasters'
            paths, grids and values at a few training places, so a moved or changed
            raster is detected); ``None`` otherwise, and in files written before it.
        n_species, n_observations: the size of the training data (``None``: not recorded).
        validation: the held-out scores, when training validated.
        training: steps, seconds and devices of the run.
        extra: any other fields of a loaded header, kept as read (after the others).

    Example:
        >>> h = PriorHeader(config={"loss": "an_full"}, resolved={"use_date": False},
        ...                 extent={"bbox": [-180.0, -90.0, 180.0, 90.0]})
        >>> PriorHeader.from_dict(h.to_dict()) == h
        True
    """

    config: dict
    resolved: dict
    extent: dict
    covariates: list[str] = field(default_factory=list)
    covariate_source: dict | None = None
    n_species: int | None = None
    n_observations: int | None = None
    validation: dict | None = None
    training: dict | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The JSON object, in the order ``prior.json`` has always held it; fields that are
        ``None`` are left out."""
        out = {"config": self.config, "resolved": self.resolved}
        for name in ("n_species", "n_observations"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        out.update(covariates=list(self.covariates), extent=self.extent)
        if self.covariate_source is not None:
            out["covariate_source"] = self.covariate_source
        for name in ("validation", "training"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return {**out, **self.extra}

    @classmethod
    def from_dict(cls, header: Mapping) -> PriorHeader:
        """A header read from JSON, without the file's envelope (the format stamps and the
        species list :func:`~geoprior.persistence.save_folder` adds): fields it does not
        name go to ``extra``."""
        names = {f.name for f in fields(cls)} - {"extra"}
        known = {k: v for k, v in header.items() if k in names}
        known.setdefault("covariates", [])
        return cls(**known, extra={k: v for k, v in header.items() if k not in names})
