"""Range maps: from a prior to H3 cells, thresholds, GeoDataFrames, files and pictures.

The pipeline in files: :mod:`~geoprior.maps.grid` (which H3 cells, their centres and
polygons), :mod:`~geoprior.maps.land` (the embedded land mask),
:mod:`~geoprior.maps.thresholds` (per-species in/out-of-range thresholds),
:mod:`~geoprior.maps.range_map` (the maps as GeoDataFrames), :mod:`~geoprior.maps.writers`
(GeoJSON, GeoPackage, GeoParquet, CSV, PNG, HTML), :mod:`~geoprior.maps.plot` (pictures) and
:mod:`~geoprior.maps.html` (interactive maps).
"""

from .land import is_land, land_cells
from .plot import plot_range_map
from .range_map import (
    CELLS,
    CRS,
    MONTH_YEAR,
    monthly_range_maps,
    range_map,
    resolve_thresholds,
    uses_dates,
    within_extent,
)
from .thresholds import RULES, compute_thresholds
from .writers import FORMATS, write_all_species, write_range_map

__all__ = [
    "CELLS",
    "CRS",
    "FORMATS",
    "MONTH_YEAR",
    "RULES",
    "compute_thresholds",
    "is_land",
    "land_cells",
    "monthly_range_maps",
    "plot_range_map",
    "range_map",
    "resolve_thresholds",
    "uses_dates",
    "within_extent",
    "write_all_species",
    "write_range_map",
]
