"""Observations: columnar arrays of where and when each species was seen.

An :class:`Observations` holds validated, aligned numpy arrays — latitude, longitude, date
(``NaT`` where unknown), an index into a species vocabulary, optional covariates and an
optional site/observer id — and knows how to select, count and split itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from .errors import (
    ClassMismatchError,
    ConfigError,
    EmptyDataError,
    FormatError,
    NonFiniteError,
    unknown_species,
)
from .geo import cell_strings, check_res, latlng_to_cells
from .names import case_variants, normalize_names
from .validation import (
    ERROR_FOR_REASON,
    InvalidRows,
    check_on_invalid,
    check_species_names,
    coordinate_problems,
    parse_dates,
    resolve,
    warn_dropped,
)

__all__ = ["Observations"]


@dataclass(frozen=True, eq=False)
class Observations:
    """Validated presence records.

    Build one with :meth:`from_arrays` or
    :func:`geoprior.read_observations`; the constructor itself trusts its arrays.

    Attributes:
        lat, lon: float64 degrees, ``lat`` in [-90, 90], ``lon`` in [-180, 180].
        date: ``datetime64[D]``, ``NaT`` where the date is unknown.
        species_index: int32 index into ``species``.
        species: the vocabulary, a tuple of names.
        covariates: float32 ``(n, c)`` or ``None``; ``covariate_names`` name the columns.
        site: site / observer / checklist id per row (object array) or ``None``.
        report: what the reader dropped and why.

    Example:
        >>> obs = Observations.from_arrays([44.0, 35.1], [-71.3, -111.6],
        ...                                ["Setophaga virens", "Junco hyemalis"],
        ...                                date=["2021-06-14", None])
        >>> len(obs), obs.species
        (2, ('Junco hyemalis', 'Setophaga virens'))
    """

    lat: np.ndarray
    lon: np.ndarray
    date: np.ndarray
    species_index: np.ndarray
    species: tuple[str, ...]
    covariates: np.ndarray | None = None
    covariate_names: tuple[str, ...] = ()
    site: np.ndarray | None = None
    report: InvalidRows = field(default_factory=InvalidRows)

    # ------------------------------------------------------------------ building
    @classmethod
    def from_arrays(
        cls,
        lat,
        lon,
        species,
        date=None,
        *,
        covariates=None,
        covariate_names: Sequence[str] | None = None,
        site=None,
        vocabulary: Sequence[str] | None = None,
        on_invalid: str = "raise",
        lon_360: bool = False,
        where: str = "observations",
        report: InvalidRows | None = None,
        row_offset: int = 0,
        problems: Mapping[str, tuple[np.ndarray, str]] | None = None,
    ) -> Observations:
        """Validate arrays and build :class:`Observations`.

        Args:
            lat, lon: degrees.
            species: names (strings) or, with ``vocabulary``, integer indices. Names are
                normalised (:func:`geoprior.names.normalize_name`: Unicode NFC, whitespace
                trimmed and collapsed), so spellings that print alike are one species.
            date: anything :func:`geoprior.validation.parse_dates` accepts, or ``None``;
                dates that give only a year are kept undated and counted in
                ``report.counted``.
            covariates: ``(n, c)`` numbers; rows with non-finite covariates are invalid.
            vocabulary: species names in a fixed order (names not in it raise
                :class:`~geoprior.errors.UnknownSpeciesError`). Default: sorted names seen.
            on_invalid: ``"raise"`` or ``"drop"`` (drops are counted in ``.report``).
            lon_360: longitudes are in [0, 360].
            where: what to call the source in messages.
            problems: rows a reader found invalid, ``{reason: (mask, message)}``; they are
                raised (as :class:`~geoprior.errors.FormatError`) or dropped like the rest.

        With ``on_invalid="raise"`` the problem raised is the one of the first invalid row.
        """
        check_on_invalid(on_invalid)
        report = report if report is not None else InvalidRows()
        lat_a, lon_a, masks, messages = coordinate_problems(
            lat, lon, lon_360=lon_360, offset=row_offset
        )
        n = lat_a.size
        sp = np.asarray(species).ravel()
        if sp.size != n:
            raise ClassMismatchError(f"{where}: got {n} coordinates but {sp.size} species values")
        if date is None:
            dates = np.full(n, np.datetime64("NaT"), dtype="datetime64[D]")
        else:
            dates, m2, msg2, counted = parse_dates(date, offset=row_offset)
            if dates.size != n:
                raise ClassMismatchError(f"{where}: got {n} coordinates but {dates.size} dates")
            masks.update(m2)
            messages.update(msg2)
            for what, count in counted.items():
                report.count(what, count)
        integer_species = np.issubdtype(sp.dtype, np.integer)
        if not integer_species:
            sp, m3, msg3 = check_species_names(normalize_names(sp), offset=row_offset)
            masks.update(m3)
            messages.update(msg3)
        cov = None
        if covariates is not None:
            cov = np.asarray(covariates, dtype=np.float64)
            if cov.ndim == 1:
                cov = cov[:, None]
            if cov.shape[0] != n:
                raise ClassMismatchError(
                    f"{where}: got {n} coordinates but {cov.shape[0]} covariate rows"
                )
            bad = ~np.isfinite(cov).all(axis=1)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                masks["non-finite covariate"] = bad
                messages["non-finite covariate"] = (
                    f"{int(bad.sum())} of {n} rows have missing or non-finite covariates; "
                    f"first: row {i + row_offset} = {cov[i].tolist()!r}"
                )
            names = (
                tuple(covariate_names)
                if covariate_names is not None
                else tuple(f"cov{i}" for i in range(cov.shape[1]))
            )
            if len(names) != cov.shape[1]:
                raise ClassMismatchError(
                    f"{where}: {cov.shape[1]} covariate columns but {len(names)} covariate names"
                )
        site_a = None if site is None else np.asarray(site, dtype=object).ravel()
        if site_a is not None and site_a.size != n:
            raise ClassMismatchError(f"{where}: got {n} coordinates but {site_a.size} site ids")
        errors = dict(ERROR_FOR_REASON, **{"non-finite covariate": NonFiniteError})
        found: dict[str, np.ndarray] = {}  # the reader's problems first: they are the cause
        for reason, (mask, message) in (problems or {}).items():
            if mask.size != n:
                raise ClassMismatchError(f"{where}: got {n} coordinates but {mask.size} rows")
            if mask.any():
                found[reason], messages[reason] = mask, message
                errors[reason] = FormatError
        masks = {**found, **masks}
        report.rows_read += n
        if on_invalid == "raise":  # resolve raises the first reason: the first row's
            masks = dict(sorted(masks.items(), key=lambda item: int(np.argmax(item[1]))))
        keep = resolve(masks, messages, on_invalid, report, errors, where=where)
        if keep is not None:
            lat_a, lon_a, dates, sp = lat_a[keep], lon_a[keep], dates[keep], sp[keep]
            cov = None if cov is None else cov[keep]
            site_a = None if site_a is None else site_a[keep]
        if integer_species:
            if vocabulary is None:
                raise ClassMismatchError(f"{where}: integer species need a vocabulary")
            vocab = tuple(vocabulary)
            bad = (sp < 0) | (sp >= len(vocab))
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise ClassMismatchError(
                    f"{where}: {int(bad.sum())} species indices outside [0, {len(vocab)}); "
                    f"first: row {i + row_offset} = {sp[i]}"
                )
            index = sp.astype(np.int32)
        else:
            vocab = tuple(vocabulary) if vocabulary is not None else tuple(sorted(set(sp.tolist())))
            lookup = {name: i for i, name in enumerate(vocab)}
            index = np.fromiter((lookup.get(s, -1) for s in sp), dtype=np.int32, count=sp.size)
            if (index < 0).any():
                missing = sorted(set(sp[index < 0].tolist()))
                raise unknown_species(missing, vocab)
        report.rows_kept += int(index.size)
        warn_dropped(report if keep is not None else InvalidRows(), where)
        return cls(
            lat=lat_a,
            lon=lon_a,
            date=dates,
            species_index=index,
            species=vocab,
            covariates=None if cov is None else cov.astype(np.float32),
            covariate_names=tuple(names) if cov is not None else (),
            site=site_a,
            report=report,
        )

    @classmethod
    def concat(cls, parts: Sequence[Observations]) -> Observations:
        """Join observations; vocabularies are merged (sorted union)."""
        if not parts:
            raise EmptyDataError("concat needs at least one Observations")
        vocab = tuple(sorted(set().union(*(p.species for p in parts))))
        parts = [p.with_vocabulary(vocab) for p in parts]
        cov_names = {p.covariate_names for p in parts}
        if len(cov_names) > 1:
            raise ClassMismatchError(
                f"cannot concat observations with different covariates: {cov_names}"
            )
        report = InvalidRows()
        for p in parts:
            report.merge(p.report)
        has_site = [p.site is not None for p in parts]
        return cls(
            lat=np.concatenate([p.lat for p in parts]),
            lon=np.concatenate([p.lon for p in parts]),
            date=np.concatenate([p.date for p in parts]),
            species_index=np.concatenate([p.species_index for p in parts]).astype(np.int32),
            species=vocab,
            covariates=None
            if parts[0].covariates is None
            else np.concatenate([p.covariates for p in parts]),
            covariate_names=parts[0].covariate_names,
            site=np.concatenate([p.site for p in parts]) if all(has_site) else None,
            report=report,
        )

    # ------------------------------------------------------------------ basics
    def __len__(self) -> int:
        return int(self.lat.size)

    def __getitem__(self, key) -> Observations:
        """Select rows by boolean mask, integer indices or slice; the vocabulary is kept."""
        if isinstance(key, (int, np.integer)):
            key = [key]
        key = np.asarray(key) if not isinstance(key, slice) else key
        if isinstance(key, np.ndarray) and key.dtype == bool and key.shape != (len(self),):
            raise ClassMismatchError(f"boolean mask has shape {key.shape}, expected ({len(self)},)")
        return replace(
            self,
            lat=self.lat[key],
            lon=self.lon[key],
            date=self.date[key],
            species_index=self.species_index[key],
            covariates=None if self.covariates is None else self.covariates[key],
            site=None if self.site is None else self.site[key],
        )

    def __repr__(self) -> str:
        dated = int(self.has_date.sum())
        cov = f", {len(self.covariate_names)} covariates" if self.covariate_names else ""
        return f"Observations({len(self)} rows, {self.n_species} species, {dated} dated{cov})"

    @property
    def n_species(self) -> int:
        return len(self.species)

    @property
    def has_date(self) -> np.ndarray:
        return ~np.isnat(self.date)

    @property
    def species_names(self) -> np.ndarray:
        """Name of each row's species."""
        return np.asarray(self.species, dtype=object)[self.species_index]

    def day_of_year(self) -> np.ndarray:
        """Day of the year, 1..366 as float; NaN where undated."""
        return day_of_year(self.date)

    def year(self) -> np.ndarray:
        """Calendar year as float; NaN where undated."""
        out = np.full(len(self), np.nan)
        ok = self.has_date
        out[ok] = self.date[ok].astype("datetime64[Y]").astype(int) + 1970
        return out

    def species_counts(self) -> np.ndarray:
        """Number of rows of each species, aligned with ``species``."""
        return np.bincount(self.species_index, minlength=self.n_species)

    def extent(self) -> dict[str, float]:
        """Bounding box (``west, south, east, north``) in degrees; handles the antimeridian."""
        if not len(self):
            raise EmptyDataError("0 observations have no extent")
        lon = self.lon
        west, east = float(lon.min()), float(lon.max())
        shifted = np.mod(lon, 360.0)
        if shifted.max() - shifted.min() < east - west - 1e-9:  # narrower across the antimeridian
            west, east = float(shifted.min()), float(shifted.max())
            west = west - 360 if west > 180 else west
            east = east - 360 if east > 180 else east
        return {
            "west": west,
            "south": float(self.lat.min()),
            "east": east,
            "north": float(self.lat.max()),
        }

    def to_frame(self) -> pd.DataFrame:
        """A pandas DataFrame with one row per observation."""
        df = pd.DataFrame(
            {
                "latitude": self.lat,
                "longitude": self.lon,
                "date": self.date.astype("datetime64[s]"),
                "species": self.species_names,
            }
        )
        if self.site is not None:
            df["site"] = self.site
        if self.covariates is not None:
            for i, name in enumerate(self.covariate_names):
                df[name] = self.covariates[:, i]
        return df

    def merge_case_variants(self) -> Observations:
        """Species whose names differ only by case made one, named by the commonest of its
        spellings (on a tie, the first in sorted order); the vocabulary stays sorted.

        Example:
            >>> obs = Observations.from_arrays([1.0, 2.0, 3.0], [1.0, 2.0, 3.0],
            ...                                ["Pica pica", "pica pica", "Pica pica"])
            >>> obs.merge_case_variants().species
            ('Pica pica',)
        """
        groups = case_variants(self.species)
        if not groups:
            return self
        counts = dict(zip(self.species, self.species_counts().tolist()))
        to = {name: max(g, key=counts.__getitem__) for g in groups for name in g}
        vocab = tuple(sorted({to.get(s, s) for s in self.species}))
        lookup = {name: i for i, name in enumerate(vocab)}
        remap = np.array([lookup[to.get(s, s)] for s in self.species], dtype=np.int32)
        return replace(self, species_index=remap[self.species_index], species=vocab)

    def with_vocabulary(self, species: Sequence[str], *, unknown: str = "raise") -> Observations:
        """Re-index onto another species list (e.g. a prior's).

        ``unknown="drop"`` drops rows of species not in ``species`` (counted in ``report``).
        """
        species = tuple(species)
        if species == self.species:
            return self
        lookup = {s: i for i, s in enumerate(species)}
        remap = np.array([lookup.get(s, -1) for s in self.species], dtype=np.int32)
        index = remap[self.species_index] if len(self) else self.species_index
        missing = index < 0
        if missing.any():
            if unknown != "drop":
                names = sorted({self.species[i] for i in self.species_index[missing]})
                raise unknown_species(names, species)
            n_missing = int(missing.sum())
            report = self.report.copy()
            report.rows_kept -= n_missing
            report.add("species not in vocabulary", n_missing)
            kept = self[~missing]
            return replace(kept, species_index=index[~missing], species=species, report=report)
        return replace(self, species_index=index, species=species)

    # ------------------------------------------------------------------ splits
    def split_random(
        self, test_fraction: float = 0.2, *, seed: int = 0
    ) -> tuple[Observations, Observations]:
        """Random rows to test. Returns ``(train, test)``."""
        _check_fraction(test_fraction)
        test = np.random.default_rng(seed).random(len(self)) < test_fraction
        return self._split(test, "random")

    def split_by_year(
        self, test_years: Sequence[int] | int, *, undated: str = "train"
    ) -> tuple[Observations, Observations]:
        """Rows of ``test_years`` to test. Undated rows go to train (``undated="train"``)
        or are dropped from both (``undated="drop"``)."""
        years = np.atleast_1d(np.asarray(test_years, dtype=float))
        y = self.year()
        test = np.isin(y, years)
        if undated not in ("train", "drop"):
            raise ConfigError(f"undated must be 'train' or 'drop', got {undated!r}")
        if undated == "drop":
            dated = self.has_date
            train, test_obs = self[dated]._split(test[dated], f"years {years.astype(int).tolist()}")
            return train, test_obs
        return self._split(test, f"years {years.astype(int).tolist()}")

    def split_spatial_blocks(
        self, test_fraction: float = 0.2, *, res: int = 3, seed: int = 0
    ) -> tuple[Observations, Observations]:
        """Hold out whole H3 cells of resolution ``res``: no test place is near a train place
        of the same cell. A fraction ``test_fraction`` of occupied cells goes to test."""
        _check_fraction(test_fraction)
        cells = self.h3_cells(res)
        uniq, inverse = np.unique(cells, return_inverse=True)
        rng = np.random.default_rng(seed)
        test_cells = rng.random(uniq.size) < test_fraction
        return self._split(test_cells[inverse], f"spatial blocks at H3 res {res}")

    def split_by_site(
        self, test_fraction: float = 0.2, *, seed: int = 0
    ) -> tuple[Observations, Observations]:
        """Hold out whole sites (the ``site`` column)."""
        _check_fraction(test_fraction)
        if self.site is None:
            raise ConfigError("split_by_site needs a site column")
        uniq, inverse = np.unique(self.site.astype(str), return_inverse=True)
        test_sites = np.random.default_rng(seed).random(uniq.size) < test_fraction
        return self._split(test_sites[inverse], "sites")

    def h3_cells(self, res: int) -> np.ndarray:
        """H3 cell id (string) of every row at resolution ``res``."""
        return cell_strings(latlng_to_cells(self.lat, self.lon, check_res(res)))

    def _split(self, test: np.ndarray, how: str) -> tuple[Observations, Observations]:
        train, test_obs = self[~test], self[test]
        if len(train) == 0 or len(test_obs) == 0:
            raise EmptyDataError(
                f"split by {how} left {len(train)} train and {len(test_obs)} test rows "
                f"out of {len(self)}; choose another fraction, year or seed"
            )
        return train, test_obs


def day_of_year(dates: np.ndarray) -> np.ndarray:
    """Day of year (1..366, float) of ``datetime64`` dates; NaN for ``NaT``."""
    d = np.asarray(dates, dtype="datetime64[D]")
    out = np.full(d.shape, np.nan)
    ok = ~np.isnat(d)
    out[ok] = (d[ok] - d[ok].astype("datetime64[Y]")).astype(int) + 1
    return out


def _check_fraction(f: float) -> None:
    if not 0.0 < f < 1.0:
        raise ConfigError(f"test_fraction must be in (0, 1), got {f}")
