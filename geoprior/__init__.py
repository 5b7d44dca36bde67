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
from .observations import Observations

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "errors",
    "Observations",
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
