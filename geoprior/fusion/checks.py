"""Validating fusion inputs where they enter: logits, prior probabilities and parameters.

The public functions of :mod:`geoprior.fusion` check their arguments once with these and
pass the validated arrays on to the core (:mod:`geoprior.core.fuse`).

Two mistakes pass every check and quietly give wrong answers, so they are warned about
(each a :class:`~geoprior.errors.GeopriorWarning`):

* **Probabilities passed as logits** (:func:`warn_if_probabilities`): fusion applies a
  softmax, so a softmax output given as "logits" is flattened toward uniform and the prior
  decides alone. Warned when every row is in [0, 1] and sums to 1 (within
  :data:`ROW_SUM_TOLERANCE`) and some value is strictly between 0 and 1, or when all of at least :data:`MIN_SCORES` values are in
  [0, 1] and not all equal (sigmoid scores; real logits are negative for most classes).
* **Latitude and longitude swapped** (:func:`warn_if_swapped`): a place is *explained*
  by the swap when it is outside a reference as given and inside it swapped. The
  reference is the prior's training extent when the prior has one (``prior.outside``,
  a :class:`~geoprior.GeoPrior` trained with support places), else land (the embedded
  0.1-degree Natural Earth mask; observations are mostly made on land). Warned when the
  swap explains more than half of the places with a location (at most
  :data:`SWAP_SAMPLE` of them, evenly spaced, are tested). A latitude beyond ±90 is an
  error already; :func:`swap_hint` adds the likely cause to its message.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..core.fuse import DEFAULT_FLOOR, DEFAULT_THRESHOLD, MODES
from ..errors import (
    ClassMismatchError,
    ConfigError,
    EmptyDataError,
    FormatError,
    NonFiniteError,
    ProbabilitiesAsLogitsWarning,
    SwappedCoordinatesWarning,
    show,
    suggest,
    warn,
)
from ..maps.land import land_at

__all__ = [
    "check_logits",
    "check_params",
    "check_prior_probs",
    "is_traced",
    "swap_hint",
    "warn_if_probabilities",
    "warn_if_swapped",
]

_PROB_TOLERANCE = 1e-6  # float round-off allowed above 1 / below 0 in prior probabilities
#: how far from 1 a row of probabilities may sum (float32 softmax outputs, rounded CSVs)
ROW_SUM_TOLERANCE = 1e-3
#: logits values needed before "all in [0, 1]" is taken for sigmoid scores
MIN_SCORES = 100
#: places tested for a latitude / longitude swap
SWAP_SAMPLE = 10_000


def is_traced(x) -> bool:
    return isinstance(x, jax.core.Tracer)


def check_logits(logits, what: str = "logits", *, values: bool = True):
    """Check that ``logits`` is a numeric ``(S,)`` or ``(n, S)`` array of finite numbers.

    Returns the array (numpy input as a float numpy array, JAX arrays unchanged). Traced
    values (inside ``jax.jit``), and any with ``values=False`` (a caller that checks them
    on the device, :func:`value_summary`), only have their type and shape checked.

    Raises:
        FormatError: not numbers, or not 1-d / 2-d.
        NonFiniteError: NaN or infinite values, naming how many rows and the first one.
        EmptyDataError: no classes.

    Example:
        >>> check_logits([[1.0, 2.0]]).shape
        (1, 2)
    """
    if not isinstance(logits, jax.Array):
        logits = np.asarray(logits)
        if logits.dtype == object or not np.issubdtype(logits.dtype, np.number):
            raise FormatError(f"{what} must be numbers, got an array of dtype {logits.dtype}")
        if not np.issubdtype(logits.dtype, np.floating):
            logits = logits.astype(np.float64)
    if logits.ndim not in (1, 2):
        raise FormatError(f"{what} must have shape (S,) or (n, S), got shape {tuple(logits.shape)}")
    if logits.shape[-1] == 0:
        raise EmptyDataError(f"{what} have no classes (shape {tuple(logits.shape)})")
    if values and not is_traced(logits):
        values = np.asarray(logits)
        bad_rows = ~np.isfinite(values).all(axis=-1).reshape(-1)
        if bad_rows.any():
            rows = values.reshape(-1, values.shape[-1])
            row = int(np.flatnonzero(bad_rows)[0])
            col = int(np.flatnonzero(~np.isfinite(rows[row]))[0])
            raise NonFiniteError(
                f"{int(bad_rows.sum())} of {bad_rows.size} rows of {what} contain NaN or infinite "
                f"values; first: row {row}, column {col} = {show(rows[row, col])}"
            )
    return logits


def check_prior_probs(prior, shape: tuple[int, ...], *, values: bool = True):
    """Check that ``prior`` has ``shape`` (or ``(S,)``) and holds probabilities; values as
    for :func:`check_logits`."""
    if not isinstance(prior, jax.Array):
        prior = np.asarray(prior)
        if prior.dtype == object or not np.issubdtype(prior.dtype, np.number):
            raise FormatError(f"prior_probs must be numbers, got an array of dtype {prior.dtype}")
    if tuple(prior.shape) != tuple(shape) and tuple(prior.shape) != tuple(shape[-1:]):
        raise ClassMismatchError(
            f"prior_probs has shape {tuple(prior.shape)} but logits have shape {tuple(shape)}; "
            f"expected {tuple(shape)} or ({shape[-1]},) (align columns with align_classes)"
        )
    if values and not is_traced(prior):
        values = np.asarray(prior, dtype=np.float64).reshape(-1, shape[-1])
        nonfinite = ~np.isfinite(values)
        if nonfinite.any():
            rows = nonfinite.any(axis=1)
            row = int(np.flatnonzero(rows)[0])
            raise NonFiniteError(
                f"{int(rows.sum())} of {rows.size} rows of prior_probs contain NaN or infinite "
                f"values; first: row {row} = {show(values[row][nonfinite[row]][0])}"
            )
        outside = (values < -_PROB_TOLERANCE) | (values > 1 + _PROB_TOLERANCE)
        if outside.any():
            rows = outside.any(axis=1)
            row = int(np.flatnonzero(rows)[0])
            value = show(values[row][outside[row]][0])
            raise ConfigError(
                f"prior_probs must be probabilities in [0, 1]: {int(rows.sum())} of {rows.size} "
                f"rows have values outside; first: row {row} = {value} "
                "(are these logits? apply a sigmoid or softmax first)"
            )
    return prior


@jax.jit
def value_summary(logits, prior):
    """What the value checks need, in one pass on the device: whether ``logits`` and
    ``prior`` are all finite, and the least and greatest of each. When they are finite,
    the prior is within [0, 1] and the logits reach outside it, the host checks pass (and
    :func:`warn_if_probabilities` has nothing to say) without reading the arrays again."""
    return (
        jnp.all(jnp.isfinite(logits)),
        jnp.min(logits),
        jnp.max(logits),
        jnp.all(jnp.isfinite(prior)),
        jnp.min(prior),
        jnp.max(prior),
    )


def values_pass(summary) -> tuple[bool, bool]:
    """``(checks pass, warning impossible)`` from a :func:`value_summary`."""
    finite, low, high, prior_finite, prior_low, prior_high = (np.asarray(v) for v in summary)
    ok = bool(finite) and bool(prior_finite)
    ok = ok and float(prior_low) >= -_PROB_TOLERANCE and float(prior_high) <= 1 + _PROB_TOLERANCE
    quiet = float(low) < -_PROB_TOLERANCE or float(high) > 1 + _PROB_TOLERANCE
    return ok, quiet


def check_params(mode, weight, floor, threshold, temperature) -> tuple[float, float]:
    """Validate fusion parameters; return ``floor, threshold`` with defaults filled in."""
    if mode not in MODES:
        raise ConfigError(
            f"mode must be one of {', '.join(MODES)}, got {mode!r}." + suggest(str(mode), MODES)
        )
    floor = DEFAULT_FLOOR if floor is None else floor
    threshold = DEFAULT_THRESHOLD if threshold is None else threshold
    checks = (
        ("weight", weight, lambda v: v >= 0, "a finite number >= 0"),
        ("temperature", temperature, lambda v: v > 0, "a finite number > 0"),
        ("floor", floor, lambda v: 0 < v <= 1, "in (0, 1]"),
        ("threshold", threshold, lambda v: 0 <= v <= 1, "in [0, 1]"),
    )
    for name, value, ok, expected in checks:
        if is_traced(value):
            continue
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be {expected}, got {value!r}") from None
        if not (np.isfinite(v) and ok(v)):
            raise ConfigError(f"{name} must be {expected}, got {value!r}")
    return floor, threshold


def warn_if_probabilities(logits, what: str = "logits") -> None:
    """Warn (:class:`~geoprior.errors.ProbabilitiesAsLogitsWarning`) when ``logits`` look
    like probabilities: every row in [0, 1] summing to 1, or (at least
    :data:`MIN_SCORES` values) every value in [0, 1], not all equal. Traced values are
    not looked at.

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     warn_if_probabilities([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
        >>> caught[0].category.__name__
        'ProbabilitiesAsLogitsWarning'
    """
    if is_traced(logits):
        return
    values = np.asarray(logits, dtype=np.float64)
    values = values.reshape(-1, values.shape[-1]) if values.ndim else values.reshape(1, 1)
    n, S = values.shape
    if S < 2 or values.size == 0:
        return
    low, high = float(values.min()), float(values.max())
    if low < -_PROB_TOLERANCE or high > 1 + _PROB_TOLERANCE:
        return
    sums = values.sum(axis=1)
    fix = ("pass their logarithms (np.log(p): log-probabilities are valid logits), or "
           "silence this with warnings.simplefilter('ignore', ProbabilitiesAsLogitsWarning)")
    strictly_inside = bool(((values > 0) & (values < 1)).any())  # one-hot rows are not
    if strictly_inside and np.all(np.abs(sums - 1.0) <= ROW_SUM_TOLERANCE):
        warn(
            f"{what} look like probabilities: all {n} rows are in [0, 1] and sum to 1 "
            f"(first row sums to {sums[0]:.6g}). Fusion applies a softmax to logits, which "
            f"would flatten probabilities toward uniform and let the prior decide alone; "
            + fix,
            ProbabilitiesAsLogitsWarning,
        )
    elif values.size >= MIN_SCORES and high > low:
        warn(
            f"{what} look like per-class scores, not logits: all {values.size} values are in "
            f"[{low:.3g}, {high:.3g}] (logits of most classes are negative). For sigmoid "
            "scores pass log(p / (1 - p)), for probabilities log(p); "
            + fix.split(", or ")[1],
            ProbabilitiesAsLogitsWarning,
        )


def swap_hint(lat, lon) -> str:
    """A clause for a coordinate error when exchanging latitude and longitude would make
    the places valid (some latitude beyond ±90, every longitude within ±90); else ``""``.

    Example:
        >>> swap_hint([-71.3, -93.1], [44.1, 44.9])  # New Hampshire, Minnesota: lon first
        ' (every longitude is within [-90, 90] and every latitude within [-180, 180]: are latitude and longitude swapped?)'
    """
    lat = np.asarray(lat, dtype=np.float64).ravel()
    lon = np.asarray(lon, dtype=np.float64).ravel()
    ok = np.isfinite(lat) & np.isfinite(lon)
    if not ok.any():
        return ""
    lat, lon = lat[ok], lon[ok]
    if (np.abs(lat) > 90).any() and (np.abs(lon) <= 90).all() and (np.abs(lat) <= 180).all():
        return (" (every longitude is within [-90, 90] and every latitude within [-180, 180]: "
                "are latitude and longitude swapped?)")
    return ""


def warn_if_swapped(lat, lon, prior=None) -> bool:
    """Warn (:class:`~geoprior.errors.SwappedCoordinatesWarning`) when more than half of
    the places with a location are explained by exchanging latitude and longitude: outside
    the reference as given, inside it swapped. The reference is ``prior``'s training
    extent when it has one (``prior.outside`` and a ``far_km``), else land. ``lat`` and
    ``lon`` are valid degrees (NaN: no location). Returns whether it warned.

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     warn_if_swapped([0.1, -0.1, -2.2], [52.2, 51.5, 53.4])  # England, lon first
        True
        >>> str(caught[0].message)[:60]
        '3 of 3 places are at sea as given but on land with latitude '
    """
    lat = np.asarray(lat, dtype=np.float64).ravel()
    lon = np.asarray(lon, dtype=np.float64).ravel()
    located = np.flatnonzero(np.isfinite(lat) & np.isfinite(lon))
    if located.size == 0:
        return False
    if located.size > SWAP_SAMPLE:
        located = located[np.linspace(0, located.size - 1, SWAP_SAMPLE).astype(np.int64)]
    lat, lon = lat[located], lon[located]
    swappable = np.abs(lon) <= 90
    if not swappable.any():
        return False
    a, o = lat[swappable], lon[swappable]
    outside = getattr(prior, "outside", None)
    if callable(outside) and getattr(prior, "far_km", None) is not None:
        given, swapped = np.asarray(outside(a, o), bool), np.asarray(outside(o, a), bool)
        where, inside = "outside the prior's training extent", "inside it"
    else:
        given, swapped = ~land_at(a, o), ~land_at(o, a)
        where, inside = "at sea", "on land"
    explained = int((given & ~swapped).sum())
    if explained * 2 <= located.size:
        return False
    warn(
        f"{explained} of {located.size} places are {where} as given but {inside} with "
        f"latitude and longitude exchanged (first: lat={show(lat[swappable][0])}, "
        f"lon={show(lon[swappable][0])}): are the columns swapped? Latitude comes first "
        "(lat, lon)",
        SwappedCoordinatesWarning,
    )
    return True
