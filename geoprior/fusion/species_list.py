"""Species lists, BirdNET-style: the species to expect at a place (and date or week).

BirdNET-Analyzer filters its sound classifier with such a list: the species its range
model scores at least 0.03 at the recording's place and week. :func:`species_list` makes
one from any :class:`~geoprior.priors.protocol.Prior`, for one place or many, and says
what its numbers mean.

Which output of a two-output prior (a :class:`~geoprior.GeoPrior` trained with the
``joint`` loss) each selection uses:

* ``k`` (a ranking): the **observation** output, p(species | an observation is made here,
  then). It is the factor fusion multiplies a classifier by, and its rows sum to 1, so
  the top ``k`` are the likeliest identities of a record made here.
* ``min_prob`` and ``in_range`` (a threshold): the **presence** output, the probability
  that the species occurs here at all. A fixed cut means the same for every place on
  presence; on the observation output it would depend on how many species share the
  place (its values are shares of one total). ``in_range`` uses each species' own
  threshold (``prior.thresholds``, as range maps do), so the list is the species whose
  range map holds the place. Listed species are ranked by presence.

A prior with one output (a baseline's normalised frequencies, BirdNET's range model, a
presence-only GeoPrior) is ranked and thresholded on it.

Weeks follow BirdNET's 48-week calendar: four per month, days 1-7, 8-14, 15-21 and 22 to
the month's end (:func:`geoprior.priors.adapters.birdnet.birdnet_weeks`). A week is
queried at its middle day (the 4th, 11th, 18th, or the middle of the 22nd to the end) in
:data:`REFERENCE_YEAR`, a year that is not a leap year; ``-1`` means year-round.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..errors import (
    ClassMismatchError,
    ConfigError,
    CoordinateError,
    DateError,
    OutsideExtentWarning,
    describe_bad,
    warn,
)
from ..priors.protocol import predict_known
from ..query import prepare_query
from ..validation import check_positive_int
from .checks import swap_hint, warn_if_swapped

__all__ = ["REFERENCE_YEAR", "WEEKS", "species_list", "week_dates"]

#: weeks in BirdNET's year: four per month
WEEKS = 48
#: the year a week is a date of (not a leap year; BirdNET's weeks ignore the year)
REFERENCE_YEAR = 2021
#: rows of places scored at a time
_BATCH = 1024


def week_dates(weeks, year: int = REFERENCE_YEAR) -> np.ndarray:
    """The middle day of each BirdNET week (1-48, four per month) in ``year``; ``-1`` (or
    missing) is ``NaT``, year-round.

    Raises:
        DateError: a week that is not a whole number in 1-48 or -1 (how many, the first).

    Example:
        >>> week_dates([1, 4, 8, 48, -1])
        array(['2021-01-04', '2021-01-26', '2021-02-25', '2021-12-26', 'NaT'],
              dtype='datetime64[D]')
    """
    raw = np.atleast_1d(np.asarray(weeks, dtype=object)).ravel()
    values = pd.to_numeric(pd.Series(raw), errors="coerce").to_numpy(np.float64)
    missing = pd.isna(pd.Series(raw)).to_numpy() | (values == -1)
    bad = ~missing & ~(np.isin(values, np.arange(1, WEEKS + 1)))
    if bad.any():
        raise DateError(describe_bad(
            "weeks", raw, bad, f"are not whole weeks 1-{WEEKS} (BirdNET's calendar: four per "
            "month) or -1 (year-round)"))  # fmt: skip
    w = np.where(missing, 1, values).astype(np.int64)
    month = np.datetime64(f"{year}-01", "M") + (w - 1) // 4
    start = month.astype("datetime64[D]")
    length = ((month + 1).astype("datetime64[D]") - start).astype(np.int64)
    quarter = (w - 1) % 4
    day = np.where(quarter < 3, 3 + 7 * quarter, 21 + (length - 22) // 2)  # 0-based
    out = start + day
    out[missing] = np.datetime64("NaT")
    return out


def species_list(
    prior,
    lat,
    lon,
    date=None,
    *,
    week=None,
    k: int | None = None,
    min_prob: float | None = None,
    in_range: bool = False,
    common_names: Sequence[str | None] | None = None,
    taxonomy=None,
    batch_size: int = _BATCH,
) -> pd.DataFrame:
    """The species to expect at each place (and date or week), as BirdNET lists them.

    Select with ``k`` (the ``k`` likeliest by the ranking output, default 10 when nothing
    else is asked), ``min_prob`` (presence at least this; BirdNET uses 0.03 with its
    range model) or ``in_range`` (presence at least each species' own threshold); ``k``
    with a threshold caps the list. See the module docstring for which output each uses.

    Args:
        prior: any :class:`~geoprior.priors.protocol.Prior`.
        lat, lon: degrees, one place or one per row.
        date: ``None`` (year-round), one date, or one per row.
        week: instead of ``date``: BirdNET weeks 1-48 (``-1`` year-round), one or per row.
        k: list at most this many species per place.
        min_prob: list the species whose presence is at least this.
        in_range: list the species whose presence reaches ``prior.thresholds``.
        common_names: names aligned with ``prior.species``; default: from ``taxonomy``,
            else the prior's ``common_names`` (a BirdNET prior) or its header's
            ``common_names``.
        taxonomy: a taxonomy table or :class:`~geoprior.io.taxonomy.Taxonomy` to look the
            common names up in.
        batch_size: places scored at a time.

    Returns:
        A DataFrame, one row per listed species: ``row`` (the place), ``rank``,
        ``species``, ``common_name`` (when any is known), ``prob`` (the ranking output),
        ``presence`` (a two-output prior) and ``outside_extent`` (a prior with a training
        extent). ``frame.attrs["meaning"]`` says what the numbers are and how the list
        was chosen.

    Warns:
        OutsideExtentWarning: places beyond the prior's training extent.
        SwappedCoordinatesWarning: most places make sense only swapped.

    Raises:
        ConfigError: ``date`` with ``week``, ``min_prob`` with ``in_range``, a bad ``k`` or
            ``min_prob``, ``in_range`` for a prior without thresholds.
        CoordinateError, DateError: invalid places, dates or weeks (naming the first).

    Example:
        >>> import geoprior
        >>> obs = geoprior.Observations.from_arrays(
        ...     [44.0, 44.1, 30.0], [-71.3, -71.2, -90.0],
        ...     ["Setophaga virens", "Setophaga virens", "Zenaida macroura"])
        >>> prior = geoprior.FrequencyPrior.fit(obs)
        >>> species_list(prior, 44.06, -71.31, k=1, common_names=["Black-throated Green "
        ...              "Warbler", "Mourning Dove"])[["rank", "species", "common_name"]]
           rank           species                   common_name
        0     1  Setophaga virens  Black-throated Green Warbler
    """
    if date is not None and week is not None:
        raise ConfigError("give date or week, not both")
    if min_prob is not None and in_range:
        raise ConfigError("give min_prob or in_range, not both")
    k = None if k is None else check_positive_int("k", k)
    batch_size = check_positive_int("batch_size", batch_size)
    if min_prob is not None:
        try:
            min_prob = float(min_prob)
        except (TypeError, ValueError):
            raise ConfigError(f"min_prob must be a probability in [0, 1], got {min_prob!r}") from None
        if not 0.0 <= min_prob <= 1.0:
            raise ConfigError(f"min_prob must be a probability in [0, 1], got {min_prob!r}")
    species = tuple(prior.species)
    cut = None
    if in_range:
        stored = getattr(prior, "thresholds", None)
        if stored is None:
            raise ConfigError(
                f"{type(prior).__name__} has no stored thresholds for in_range; pass "
                "min_prob=<probability> (or fit thresholds: geoprior.compute_thresholds)"
            )
        cut = np.asarray(stored, np.float64).reshape(-1)
        if cut.size != len(species):
            raise ClassMismatchError(
                f"the prior stores {cut.size} thresholds for {len(species)} species"
            )
        cut = np.where(np.isnan(cut), np.inf, cut)  # no threshold: never listed
    elif min_prob is not None:
        cut = np.full(len(species), min_prob)
    if cut is None and k is None:
        k = 10
    if week is not None:
        date = week_dates(week)
    try:
        lat, lon, dates = prepare_query(lat, lon, date)
    except CoordinateError as e:
        raise CoordinateError(str(e) + _hint(lat, lon)) from None
    warn_if_swapped(lat, lon, prior)
    names = _common_names(prior, species, common_names, taxonomy)

    outputs = tuple(getattr(prior, "outputs", ()) or ())
    two = "observation" in outputs and "presence" in outputs
    ranking = {"output": "observation"} if two else {}
    frames = []
    if callable(getattr(prior, "select", None)):  # a GeoPrior: lists ranked on the device
        frames.append(_listed_on_device(prior, lat, lon, dates, cut, k, two, species, names))
    for a in range(0, lat.size if not frames else 0, batch_size):
        rows = slice(a, a + batch_size)
        probs = np.asarray(predict_known(prior, lat[rows], lon[rows], dates[rows], **ranking))
        if probs.shape != (len(lat[rows]), len(species)):
            raise ClassMismatchError(
                f"prior.predict returned shape {probs.shape} for {len(lat[rows])} places; "
                f"expected ({len(lat[rows])}, {len(species)}), one column per species"
            )
        presence = (np.asarray(predict_known(prior, lat[rows], lon[rows], dates[rows],
                                             output="presence")) if two else probs)
        if cut is None:
            order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
            listed = np.ones(order.shape, bool)
        else:
            passed = presence >= cut[None, :]
            order = np.argsort(-np.where(passed, presence, -np.inf), axis=1, kind="stable")
            listed = np.take_along_axis(passed, order, 1)
            if k is not None:
                order, listed = order[:, :k], listed[:, :k]
        r, j = np.nonzero(listed)
        col = order[r, j]
        part = {"row": a + r, "rank": j + 1, "species": np.asarray(species, object)[col]}
        if names is not None:
            part["common_name"] = names[col]
        part["prob"] = probs[r, col]
        if two:
            part["presence"] = presence[r, col]
        frames.append(pd.DataFrame(part))
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    outside = _outside(prior, lat, lon)
    if outside is not None:
        frame["outside_extent"] = outside[frame["row"].to_numpy(np.int64)]
    frame.attrs["meaning"] = _meaning(prior, outputs, two, k, min_prob, in_range)
    frame.attrs["empty_places"] = int(lat.size - frame["row"].nunique()) if len(frame) else lat.size
    return frame


def _listed_on_device(prior, lat, lon, dates, cut, k, two, species, names) -> pd.DataFrame:
    """The list of a prior with ``select`` (a :class:`~geoprior.GeoPrior`): the top ``k``
    by the ranking output, or the species whose presence reaches ``cut`` ranked by
    presence, chosen on the device; the other output at the listed species only."""
    ranking = {"output": "observation"} if two else {}
    if cut is None:
        r, col, prob = prior.select(lat, lon, dates, thresholds=-np.inf, k=k, **ranking)
        other = "presence"
    else:
        chosen = {"output": "presence"} if two else {}
        r, col, prob = prior.select(lat, lon, dates, thresholds=cut, k=k, **chosen)
        other = "observation"
    start = np.searchsorted(r, r, side="left")
    rank = np.arange(r.size) - start
    part = {"row": r, "rank": rank + 1, "species": np.asarray(species, object)[col]}
    if names is not None:
        part["common_name"] = names[col]
    part["prob"] = prob
    if two:
        # the other output at each place's listed species: one (places, longest list)
        # request, each place's list padded with its first species
        first = np.flatnonzero(rank == 0)
        places, at = r[first], np.cumsum(rank == 0) - 1
        cols = np.repeat(col[first][:, None], int(rank.max(initial=0)) + 1, 1)
        cols[at, rank] = col
        values = predict_known(
            prior, lat[places], lon[places], dates[places], species=cols, output=other
        )[at, rank] if r.size else prob
        part["prob"], part["presence"] = (prob, values) if other == "presence" else (values, prob)
    return pd.DataFrame(part)


def _hint(lat, lon) -> str:
    try:
        return swap_hint(lat, lon)
    except (TypeError, ValueError):  # text, which the error already names
        return ""


def _common_names(prior, species, given, taxonomy) -> np.ndarray | None:
    """Common names aligned with ``species``, or ``None`` when none is known."""
    if given is None and taxonomy is not None:
        from ..io.taxonomy import Taxonomy, read_taxonomy

        tax = taxonomy if isinstance(taxonomy, Taxonomy) else read_taxonomy(taxonomy, names=species)
        given = [tax.common_name(s) for s in species]
    if given is None:
        given = getattr(prior, "common_names", None)
    if given is None:
        given = (getattr(prior, "header", None) or {}).get("common_names")
    if given is None:
        return None
    names = np.asarray([None if n is None or n == "" else str(n) for n in given], dtype=object)
    if names.size != len(species):
        raise ClassMismatchError(f"{names.size} common names for {len(species)} species")
    return names if any(n is not None for n in names) else None


def _outside(prior, lat, lon) -> np.ndarray | None:
    """Which places are beyond the prior's training extent (``None``: it has none), with
    a warning naming how many."""
    far = getattr(prior, "far_km", None)
    outside = getattr(prior, "outside", None)
    if far is None or not callable(outside):
        return None
    flags = np.asarray(outside(lat, lon), bool).reshape(-1)
    if flags.any():
        i = int(np.flatnonzero(flags)[0])
        km = float(np.asarray(prior.distance_km(lat[i : i + 1], lon[i : i + 1]))[0])
        warn(
            f"{int(flags.sum())} of {flags.size} places are outside the prior's training extent "
            f"(first: row {i}, ({lat[i]:g}, {lon[i]:g}), {km:,.0f} km from the nearest training "
            f"place; the extent is {float(far):,.0f} km): presence fades toward 0 there and the "
            "ranking is extrapolation",
            OutsideExtentWarning,
        )
    return flags


def _meaning(prior, outputs, two: bool, k, min_prob, in_range) -> str:
    if two or outputs == ("observation",):
        prob = "prob: the probability that an observation made here (then) is of the species"
    elif outputs == ("presence",):
        prob = "prob: the probability that the species occurs here (then)"
    else:
        prob = f"prob: {type(prior).__name__}'s score of the species here (then)"
    parts = [prob]
    if two:
        parts.append("presence: the probability that the species occurs here at all")
    by = "presence" if two else "prob"
    if in_range:
        chosen = f"species whose {by} reaches the prior's own threshold (in its range map)"
    elif min_prob is not None:
        chosen = f"species with {by} >= {min_prob:g}"
    else:
        chosen = f"the {k} species with the highest prob"
    if k is not None and (in_range or min_prob is not None):
        chosen += f", at most {k}"
    if in_range or min_prob is not None:
        chosen += f", ranked by {by}"
    return "; ".join(parts) + f". Listed: {chosen}"
