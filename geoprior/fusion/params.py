"""Fusion parameter files: :class:`FusionParams`, saved as versioned JSON beside a prior."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from ..errors import ConfigError, FormatError, MissingFileError, OutputExistsError, PriorFileError
from ..persistence import atomic_file, format_version_problem, header_problems, json_header
from ..persistence import field as json_field
from .checks import check_params

__all__ = ["FusionParams"]

_FORMAT = "geoprior-fusion"
_FORMAT_VERSION = 1


@dataclass(frozen=True)
class FusionParams:
    """Fusion parameters, usually fitted by :func:`fit_fusion`, with their validation scores.

    ``fuse(logits, prior, **params.as_kwargs())`` and ``rerank(..., params=params)`` use
    them. Save beside a prior with :meth:`save`; read back with :meth:`load`.

    Attributes:
        mode, weight, floor, threshold, temperature: as in :func:`fuse`.
        objective: what was optimised (``"top1"`` or ``"nll"``), or ``None`` if set by hand.
        top1, nll: validation top-1 accuracy and mean negative log-likelihood with these
            parameters (``nll`` is ``inf`` when a filter removed some true labels).
        classifier_top1, classifier_nll: the same for the classifier alone (T = 1).
        n_val: number of validation rows.

    Example:
        >>> p = FusionParams(mode="floor", floor=0.005)
        >>> FusionParams.from_json(p.to_json()) == p
        True
    """

    mode: str = "product"
    weight: float = 1.0
    floor: float | None = None
    threshold: float | None = None
    temperature: float = 1.0
    objective: str | None = None
    top1: float | None = None
    nll: float | None = None
    classifier_top1: float | None = None
    classifier_nll: float | None = None
    n_val: int | None = None

    def __post_init__(self):
        check_params(self.mode, self.weight, self.floor, self.threshold, self.temperature)

    def as_kwargs(self) -> dict:
        """The keyword arguments of :func:`fuse`."""
        return {"mode": self.mode, "weight": self.weight, "floor": self.floor,
                "threshold": self.threshold, "temperature": self.temperature}

    def to_json(self) -> str:
        """JSON text (non-finite scores are written as ``null`` and read back as ``inf``)."""
        body = {k: (None if isinstance(v, float) and not np.isfinite(v) else v)
                for k, v in asdict(self).items()}
        header = json_header(_FORMAT, _FORMAT_VERSION, body, geoprior_version=False)
        return json.dumps(header, indent=2, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> FusionParams:
        """Parse :meth:`to_json` output; raises FormatError / ConfigError on bad content, and
        PriorFileError naming the field for a value of the wrong JSON type (``true`` for a
        number, checked with the saved-prior schema checks, :func:`geoprior.persistence.field`)."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise FormatError(f"fusion parameters are not valid JSON: {e}") from None
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise FormatError(f'not a fusion parameter file (expected "format": "{_FORMAT}")')
        problem = format_version_problem(data, _FORMAT_VERSION)
        if problem:
            raise FormatError(f"the fusion parameter file {problem}")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names - {"format", "format_version"})
        if unknown:
            raise FormatError(f"fusion parameters have unknown field(s) {unknown}")
        if "mode" not in data:
            raise FormatError("fusion parameters have no 'mode'")
        problems = header_problems(data, _PARAM_FIELDS)
        if problems:
            raise PriorFileError(f"fusion parameters are corrupt: {'; '.join(problems)}")
        values = {k: v for k, v in data.items() if k in names}
        for key in ("nll", "classifier_nll"):
            if key in values and values[key] is None and values.get("objective") is not None:
                values[key] = float("inf")
        return cls(**values)

    def save(self, path: str | os.PathLike, *, overwrite: bool = True) -> Path:
        """Write :meth:`to_json` to ``path`` atomically (temporary file, then rename)."""
        path = Path(path)
        if path.exists() and not overwrite:
            raise OutputExistsError(
                f"{path} exists; pass overwrite=True (CLI: --overwrite) to replace it"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path, "w") as f:
            f.write(self.to_json() + "\n")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> FusionParams:
        """Read parameters written by :meth:`save`."""
        if not Path(path).is_file():
            raise MissingFileError(f"{path}: no such file (expected fusion parameters as JSON)")
        try:
            text = Path(path).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise FormatError(f"{path} is not a UTF-8 JSON file") from None
        try:
            return cls.from_json(text)
        except (FormatError, ConfigError, PriorFileError) as e:
            raise type(e)(f"{path}: {e}") from None


_NUMBER = json_field(float, optional=True)
_MAYBE_NUMBER = json_field(float, type(None), optional=True)
# the JSON type of each field of a parameter file (bool is never a number)
_PARAM_FIELDS = {
    "mode": json_field(str),
    "weight": _NUMBER,
    "floor": _MAYBE_NUMBER,
    "threshold": _MAYBE_NUMBER,
    "temperature": _NUMBER,
    "objective": json_field(str, type(None), optional=True),
    "top1": _MAYBE_NUMBER,
    "nll": _MAYBE_NUMBER,
    "classifier_top1": _MAYBE_NUMBER,
    "classifier_nll": _MAYBE_NUMBER,
    "n_val": json_field(int, type(None), optional=True),
}
