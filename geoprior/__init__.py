"""geoprior: learned where-and-when species priors, and their fusion with classifiers."""

from . import errors
from ._version import __version__
from .columnstore import ColumnStore, convert_to_columns
from .core.encoding import AnchorTable, EncoderSpec
from .core.model import ModelConfig
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
from .evaluate import (
    average_precision,
    error_reduction,
    event_average_precision,
    per_species_auc_ap,
    recall_at_k,
    roc_auc,
    top_k_accuracy,
)
from .fusion import (
    Alignment,
    FusionParams,
    FusionResult,
    RerankResult,
    align_classes,
    fit_fusion,
    fuse,
    fuse_with_flags,
    rerank,
)
from .io import detect_format, read_observations
from .io.logits import read_logits
from .io.samples import load_sample
from .io.taxonomy import Taxonomy, read_taxonomy
from .maps import (
    compute_thresholds,
    is_land,
    monthly_range_maps,
    plot_range_map,
    range_map,
    write_all_species,
    write_range_map,
)
from .observations import Observations
from .persistence import load_prior
from .priors import BirdNETPrior, CountGridPrior, FrequencyPrior, NearestNeighborPrior, UniformPrior
from .priors.geoprior import GeoPrior
from .priors.protocol import Prior, top_k
from .train import TrainConfig, train_prior

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
