"""Validating fusion inputs where they enter: logits, prior probabilities and parameters.

The public functions of :mod:`geoprior.fusion` check their arguments once with these and
pass the validated arrays on to the core (:mod:`geoprior.core.fuse`).
"""

from __future__ import annotations

import jax
import numpy as np

from ..core.fuse import DEFAULT_FLOOR, DEFAULT_THRESHOLD, MODES
from ..errors import (
    ClassMismatchError,
    ConfigError,
    EmptyDataError,
    FormatError,
    NonFiniteError,
    show,
    suggest,
)

__all__ = ["check_logits", "check_params", "check_prior_probs", "is_traced"]

_PROB_TOLERANCE = 1e-6  # float round-off allowed above 1 / below 0 in prior probabilities


def is_traced(x) -> bool:
    return isinstance(x, jax.core.Tracer)


def check_logits(logits, what: str = "logits"):
    """Check that ``logits`` is a numeric ``(S,)`` or ``(n, S)`` array of finite numbers.

    Returns the array (numpy input as a float numpy array, JAX arrays unchanged). Traced
    values (inside ``jax.jit``) only have their shape checked.

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
    if not is_traced(logits):
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


def check_prior_probs(prior, shape: tuple[int, ...]):
    if not isinstance(prior, jax.Array):
        prior = np.asarray(prior)
        if prior.dtype == object or not np.issubdtype(prior.dtype, np.number):
            raise FormatError(f"prior_probs must be numbers, got an array of dtype {prior.dtype}")
    if tuple(prior.shape) != tuple(shape) and tuple(prior.shape) != tuple(shape[-1:]):
        raise ClassMismatchError(
            f"prior_probs has shape {tuple(prior.shape)} but logits have shape {tuple(shape)}; "
            f"expected {tuple(shape)} or ({shape[-1]},) (align columns with align_classes)"
        )
    if not is_traced(prior):
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
