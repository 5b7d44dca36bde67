"""GeoPrior: a trained prior — predict, top-k, save and load.

``GeoPrior.predict(lat, lon, date=None)`` returns an ``(n, S)`` array of probabilities,
batched internally so millions of points run in bounded memory. A prior trained with dates
answers undated queries with its year-round prior. Saved priors are a JSON header plus
``.npz`` arrays (see :mod:`geoprior.store`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import cached_property

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from flax import traverse_util
from flax.errors import FlaxError

from .encoding import EncoderSpec, encode_inputs
from .errors import ClassMismatchError, ConfigError, NonFiniteError
from .model import GeoNet, ModelConfig
from .observations import day_of_year
from .query import Prior, prepare_query, species_indices
from .store import register_kind, save_folder

__all__ = ["GeoPrior", "Prior", "top_k_frame"]

_KIND = "GeoPrior"


class GeoPrior:
    """A trained location (and date) prior over species.

    Build one with :func:`geoprior.train_prior` or :func:`geoprior.load_prior`.

    Example:
        >>> prior = geoprior.load_prior("birds.prior")  # doctest: +SKIP
        >>> prior.top_k(44.06, -71.31, "2021-06-14", k=3)  # doctest: +SKIP
    """

    def __init__(
        self,
        species: Sequence[str],
        params,
        header: dict,
        *,
        cov_mean=None,
        cov_std=None,
        loss_curve=None,
        thresholds=None,
    ):
        self._species = tuple(species)
        self.params = params
        self.header = header
        self.cov_mean = None if cov_mean is None else np.asarray(cov_mean, np.float32)
        self.cov_std = None if cov_std is None else np.asarray(cov_std, np.float32)
        self.loss_curve = None if loss_curve is None else np.asarray(loss_curve, np.float32)
        self.thresholds = None if thresholds is None else np.asarray(thresholds, np.float32)

    # --------------------------------------------------------------- describe
    @property
    def species(self) -> tuple[str, ...]:
        return self._species

    @property
    def n_species(self) -> int:
        return len(self._species)

    @property
    def uses_date(self) -> bool:
        return bool(self.header["resolved"]["use_date"])

    @property
    def covariate_names(self) -> tuple[str, ...]:
        return tuple(self.header.get("covariates", []))

    @property
    def loss(self) -> str:
        return self.header["config"]["loss"]

    @cached_property
    def encoder(self) -> EncoderSpec:
        return EncoderSpec(**self.header["resolved"]["encoder"])

    @property
    def extent(self) -> dict:
        return self.header["extent"]

    def __repr__(self) -> str:
        return (
            f"GeoPrior({self.n_species} species, loss={self.loss}, encoder={self.encoder.kind}, "
            f"date={'yes' if self.uses_date else 'no'}, covariates={len(self.covariate_names)})"
        )

    # --------------------------------------------------------------- predict
    @cached_property
    def _logits_fn(self):
        model = GeoNet(self.n_species, ModelConfig(**self.header["config"]["model"]))
        spec, freqs = self.encoder, self.encoder.frequencies()
        uses_date = self.uses_date

        @jax.jit
        def logits(params, lat, lon, doy, cov):
            x = encode_inputs(spec, freqs, lat, lon, doy if uses_date else None, cov)
            return model.apply({"params": params}, x)

        return logits

    def _output(self, logits):
        if self.loss == "maxent":
            return jax.nn.log_softmax(logits, -1)
        return jax.nn.log_sigmoid(logits)

    def log_prob(
        self, lat, lon, date=None, *, covariates=None, batch_size: int = 8192
    ) -> np.ndarray:
        """Log of :meth:`predict` (computed stably)."""
        lat, lon, dates = prepare_query(lat, lon, date)
        cov = self._check_covariates(covariates, lat.size)
        doy = day_of_year(dates).astype(np.float32)
        out = np.empty((lat.size, self.n_species), np.float32)
        fn = self._logits_fn
        bs = max(1, int(batch_size))
        for start in range(0, lat.size, bs):
            sl = slice(start, start + bs)
            n = lat[sl].size
            pad = bs - n if lat.size > bs else 0  # fixed shapes: one compilation
            args = [np.pad(a[sl], (0, pad), mode="edge") for a in (lat, lon, doy)]
            c = None if cov is None else np.pad(cov[sl], ((0, pad), (0, 0)), mode="edge")
            res = self._output(fn(self.params, *[jnp.asarray(a, jnp.float32) for a in args], c))
            out[sl] = np.asarray(res)[:n]
        return out

    def predict(
        self, lat, lon, date=None, *, covariates=None, batch_size: int = 8192
    ) -> np.ndarray:
        """Probabilities ``(n, S)``: of presence (assume-negative losses) or of being the
        species observed (``maxent``: rows sum to 1).

        Args:
            lat, lon: degrees (scalars or arrays).
            date: ``None`` (year-round), one date, or one per row (``None``/``NaT`` rows
                year-round).
            covariates: ``(n, c)`` when the prior was trained with covariates.
            batch_size: rows per device call (memory is ``batch_size * S`` floats).

        >>> prior.predict([44.06], [-71.31], "2021-06-14").shape  # doctest: +SKIP
        (1, 531)
        """
        return np.exp(self.log_prob(lat, lon, date, covariates=covariates, batch_size=batch_size))

    def _check_covariates(self, covariates, n: int):
        names = self.covariate_names
        if not names:
            if covariates is not None:
                raise ClassMismatchError(
                    "this prior was trained without covariates; do not pass any"
                )
            return None
        if covariates is None:
            raise ClassMismatchError(f"this prior needs covariates {list(names)} for every query")
        cov = np.asarray(covariates, np.float64)
        if cov.ndim == 1:
            cov = cov[:, None]
        if cov.shape != (n, len(names)):
            raise ClassMismatchError(
                f"covariates have shape {cov.shape}, expected ({n}, {len(names)}) "
                f"for columns {list(names)}"
            )
        bad = ~np.isfinite(cov).all(1)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise NonFiniteError(
                f"{int(bad.sum())} of {n} covariate rows are not finite; first: row {i}"
            )
        return ((cov - self.cov_mean) / self.cov_std).astype(np.float32)

    def top_k(
        self,
        lat,
        lon,
        date=None,
        k: int = 10,
        *,
        species: Sequence[str] | None = None,
        covariates=None,
    ) -> pd.DataFrame:
        """The ``k`` most likely species at each place: a DataFrame with columns
        ``row, rank, species, prob`` (``rank`` 1 is the most likely).

        ``species`` restricts the ranking to those names (unknown names raise
        :class:`~geoprior.UnknownSpeciesError` with close matches).
        """
        probs = self.predict(lat, lon, date, covariates=covariates)
        names = self.species
        if species is not None:
            cols = species_indices(species, names)
            probs, names = probs[:, cols], tuple(names[i] for i in cols)
        return top_k_frame(probs, names, k)

    # --------------------------------------------------------------- save / load
    def save(self, path: str | os.PathLike, *, overwrite: bool = True):
        """Save as ``path/prior.json`` + ``path/arrays.npz`` (atomic)."""
        arrays = {
            f"params/{k}": np.asarray(v)
            for k, v in traverse_util.flatten_dict(jax.device_get(self.params), sep="/").items()
        }
        for name in ("cov_mean", "cov_std", "loss_curve", "thresholds"):
            value = getattr(self, name)
            if value is not None:
                arrays[name] = value
        header = dict(self.header, species=list(self.species))
        return save_folder(path, _KIND, header, arrays, overwrite=overwrite)


def top_k_frame(probs: np.ndarray, names: Sequence[str], k: int) -> pd.DataFrame:
    """Long DataFrame ``row, rank, species, prob`` of the top ``k`` columns of each row."""
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}")
    k = min(k, probs.shape[1])
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    n = probs.shape[0]
    return pd.DataFrame(
        {
            "row": np.repeat(np.arange(n), k),
            "rank": np.tile(np.arange(1, k + 1), n),
            "species": np.asarray(names, dtype=object)[top.ravel()],
            "prob": np.take_along_axis(probs, top, 1).ravel(),
        }
    )


@register_kind(_KIND)
def _load(header: dict, arrays: dict[str, np.ndarray]) -> GeoPrior:
    flat = {
        k[len("params/") :]: jnp.asarray(v) for k, v in arrays.items() if k.startswith("params/")
    }
    params = traverse_util.unflatten_dict(flat, sep="/")
    species = header.pop("species")
    prior = GeoPrior(
        species,
        params,
        header,
        cov_mean=arrays.get("cov_mean"),
        cov_std=arrays.get("cov_std"),
        loss_curve=arrays.get("loss_curve"),
        thresholds=arrays.get("thresholds"),
    )
    _check_params(prior)
    return prior


def _check_params(prior: GeoPrior) -> None:
    """Trace one query, so that missing or misshapen weights (or a species list of another
    length than the output layer) fail at load, not at predict."""
    one = jax.ShapeDtypeStruct((1,), jnp.float32)
    n_cov = len(prior.covariate_names)
    cov = jax.ShapeDtypeStruct((1, n_cov), jnp.float32) if n_cov else None
    try:
        jax.eval_shape(prior._logits_fn, prior.params, one, one, one, cov)
    except FlaxError as e:
        raise ValueError(f"the weights do not fit the saved model config: {e}") from None
