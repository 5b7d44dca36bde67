"""The package version, in one place: ``geoprior.__version__`` and saved files' headers read it."""

__version__ = "0.1.0"
