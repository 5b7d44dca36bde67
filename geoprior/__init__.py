"""geoprior: learned where-and-when species priors, and their fusion with classifiers.

The public names below are imported on first use (PEP 562), so ``import geoprior.runtime``
(an exported prior on numpy + onnxruntime), ``geoprior.errors`` or ``geoprior.validation``
never loads JAX; ``geoprior.GeoPrior`` and the rest load what they need when touched.
"""

from __future__ import annotations

import importlib

from . import errors
from ._version import __version__
from .errors import (
    ClassMismatchError,
    ConfigError,
    CoordinateError,
    DateError,
    EmptyDataError,
    FileEncodingError,
    FormatError,
    GeopriorError,
    GeopriorWarning,
    MissingDependencyError,
    MissingFileError,
    NonFiniteError,
    OutputExistsError,
    OutsideExtentWarning,
    PathError,
    PriorFileError,
    ProbabilitiesAsLogitsWarning,
    RowIndexError,
    SpeciesNameError,
    SwappedCoordinatesWarning,
    TrainingDivergedError,
    UnknownSpeciesError,
)

#: Where each lazily imported public name lives (module relative to this package).
_LAZY = {
    ".columnstore": ("ColumnStore", "convert_to_columns"),
    ".core.encoding": ("AnchorTable", "EncoderSpec"),
    ".core.model": ("ModelConfig",),
    ".evaluate": (
        "average_precision",
        "error_reduction",
        "event_average_precision",
        "per_species_auc_ap",
        "recall_at_k",
        "roc_auc",
        "top_k_accuracy",
    ),
    ".fusion": (
        "Alignment",
        "FusionParams",
        "FusionResult",
        "RerankResult",
        "align_classes",
        "fit_fusion",
        "fuse",
        "fuse_with_flags",
        "rerank",
        "species_list",
    ),
    ".io": ("detect_format", "read_observations"),
    ".io.logits": ("read_logits",),
    ".io.samples": ("load_sample",),
    ".io.taxonomy": ("Taxonomy", "read_taxonomy"),
    ".maps": (
        "compute_thresholds",
        "is_land",
        "monthly_range_maps",
        "plot_range_map",
        "range_map",
        "write_all_species",
        "write_range_map",
    ),
    ".observations": ("Observations",),
    ".persistence": ("load_prior",),
    ".priors": (
        "BirdNETPrior",
        "CountGridPrior",
        "FrequencyPrior",
        "NearestNeighborPrior",
        "UniformPrior",
    ),
    ".priors.geoprior": ("GeoPrior",),
    ".priors.protocol": ("Prior", "top_k"),
    ".train": ("TrainConfig", "train_prior"),
}
_WHERE = {name: module for module, names in _LAZY.items() for name in names}


def __getattr__(name: str):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'geoprior' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # the next access is a plain lookup
    return value


def __dir__():
    return sorted(set(globals()) | set(_WHERE))


__all__ = [
    "__version__",
    "errors",
    "Observations",
    "read_observations",
    "detect_format",
    "ColumnStore",
    "convert_to_columns",
    "load_sample",
    "AnchorTable",
    "EncoderSpec",
    "ModelConfig",
    "TrainConfig",
    "train_prior",
    "GeoPrior",
    "Prior",
    "top_k",
    "load_prior",
    "is_land",
    "range_map",
    "monthly_range_maps",
    "write_range_map",
    "write_all_species",
    "plot_range_map",
    "compute_thresholds",
    "UniformPrior",
    "FrequencyPrior",
    "CountGridPrior",
    "NearestNeighborPrior",
    "BirdNETPrior",
    "fuse",
    "fuse_with_flags",
    "align_classes",
    "rerank",
    "species_list",
    "fit_fusion",
    "read_logits",
    "read_taxonomy",
    "Taxonomy",
    "average_precision",
    "error_reduction",
    "event_average_precision",
    "per_species_auc_ap",
    "recall_at_k",
    "roc_auc",
    "top_k_accuracy",
    "Alignment",
    "FusionParams",
    "FusionResult",
    "RerankResult",
    "GeopriorError",
    "ClassMismatchError",
    "ConfigError",
    "CoordinateError",
    "DateError",
    "EmptyDataError",
    "FileEncodingError",
    "FormatError",
    "MissingFileError",
    "MissingDependencyError",
    "NonFiniteError",
    "OutputExistsError",
    "PathError",
    "PriorFileError",
    "RowIndexError",
    "SpeciesNameError",
    "TrainingDivergedError",
    "UnknownSpeciesError",
    "GeopriorWarning",
    "ProbabilitiesAsLogitsWarning",
    "SwappedCoordinatesWarning",
    "OutsideExtentWarning",
]
