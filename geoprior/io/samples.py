"""The sample data embedded in the package: NEON organismal surveys (CC0).

Species-level detections from NEON's bird point counts, ground-beetle pitfall traps and
mosquito traps at 47 US sites (Puerto Rico to Alaska and Hawaii), 2013-2021, one row per
(plot, day, species). Source: the neonDivData R package; licence CC0. Rebuilt by
``benchmarks/make_sample_data.py``.
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

from ..errors import ConfigError, suggest
from ..observations import Observations

__all__ = ["SAMPLES", "load_sample", "sample_path"]

SAMPLES = {
    "neon_bird": "NEON breeding-season bird point counts (531 species, 67k plot-day records)",
    "neon_beetle": "NEON ground-beetle pitfall traps, through the season (665 species)",
    "neon_mosquito": "NEON mosquito traps, through the season (119 species)",
}


def sample_path(name: str = "neon_bird"):
    """Path of an embedded sample file (a gzipped CSV with columns
    ``site, plot, date, species, latitude, longitude``)."""
    if name not in SAMPLES:
        raise ConfigError(
            f"no sample named {name!r}; samples: {', '.join(SAMPLES)}." + suggest(name, SAMPLES)
        )
    return resources.files("geoprior") / "data" / f"{name}.csv.gz"


def load_sample(name: str = "neon_bird") -> Observations:
    """Load an embedded sample as :class:`~geoprior.Observations` (``site`` = NEON plot).

    Example:
        >>> obs = load_sample("neon_bird")
        >>> obs.n_species > 500
        True
    """
    with resources.as_file(sample_path(name)) as path:
        df = pd.read_csv(path, dtype={"site": str, "plot": str, "date": str, "species": str})
    return Observations.from_arrays(
        df["latitude"].to_numpy(),
        df["longitude"].to_numpy(),
        df["species"].to_numpy(),
        date=df["date"].to_numpy(),
        site=df["plot"].to_numpy(),
        where=f"sample {name!r}",
    )
