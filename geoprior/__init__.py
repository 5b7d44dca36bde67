"""geoprior: learned where-and-when species priors, and their fusion with classifiers."""

from . import errors
from .errors import (
    ClassMismatchError,
    ConfigError,
    CoordinateError,
    DateError,
    EmptyDataError,
    FileEncodingError,
    FormatError,
    GeopriorError,
    MissingDependencyError,
    NonFiniteError,
    OutputExistsError,
    PriorFileError,
    SpeciesNameError,
    UnknownSpeciesError,
)
from .datasets import load_sample
from .encoding import EncoderSpec
from .land import is_land
from .model import ModelConfig
from .observations import Observations
from .prior import GeoPrior
from .query import Prior
from .store import load_prior
from .train import TrainConfig, train_prior

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "errors",
    "Observations",
    "load_sample",
    "EncoderSpec",
    "ModelConfig",
    "TrainConfig",
    "train_prior",
    "GeoPrior",
    "Prior",
    "load_prior",
    "is_land",
    "GeopriorError",
    "ClassMismatchError",
    "ConfigError",
    "CoordinateError",
    "DateError",
    "EmptyDataError",
    "FileEncodingError",
    "FormatError",
    "MissingDependencyError",
    "NonFiniteError",
    "OutputExistsError",
    "PriorFileError",
    "SpeciesNameError",
    "UnknownSpeciesError",
]
