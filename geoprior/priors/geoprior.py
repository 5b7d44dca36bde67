"""GeoPrior: a trained prior — predict, top-k, save and load.

A prior trained with the default ``joint`` loss has two outputs (``GeoPrior.outputs``):

- ``"observation"``: p(species | an observation is made here, then) — rows sum to 1. What
  ranking, species lists, ``top_k`` and fusion use (Bayes' rule multiplies a classifier's
  output by it), and what ``predict`` returns by default, like every other prior.
- ``"presence"``: one probability per species that it occurs here (rows do not sum to 1).
  What range maps and thresholds use. It fades to 0 beyond the training extent
  (``header["resolved"]["far_km"]`` from every training place; see :meth:`GeoPrior.outside`).

``GeoPrior.predict(lat, lon, date=None)`` returns an ``(n, S)`` array of probabilities. The
network, then its sigmoid (or softmax), run as compiled calls on the device, a block of
rows at a time (:mod:`geoprior.priors.scoring`), so the host holds only the output, and
``top_k``, ``select`` and ``iter_above`` only what they keep; ``species_chunk`` also
bounds the device to ``batch x chunk`` values, and ``species=`` scores chosen columns (the
same for every row, or each row's own) without the ``(n, S)`` product. A prior trained
with dates answers undated queries with its year-round prior. Saved priors are a JSON
header plus ``.npz`` arrays (see :mod:`geoprior.persistence`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from flax import traverse_util
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ..core.encoding import AnchorTable, EncoderSpec, encode_inputs, xyz
from ..core.losses import LOSSES
from ..core.model import GeoNet, ModelConfig
from ..errors import ConfigError
from ..geo import EARTH_RADIUS_KM
from ..observations import day_of_year
from ..persistence import ArraySpec, Schema, field, register_kind, save_folder
from ..query import Query, prepare_query, species_columns, species_indices
from ..validation import check_covariates, check_positive_int
from . import scoring
from .protocol import ranking_frame

__all__ = ["GeoPrior"]

_KIND = "GeoPrior"
#: Rows per device call.
_BATCH = 8192
#: The last batch of a long query is padded to a multiple of this many rows.
_ROW_STEP = 256
OUTPUTS = ("observation", "presence")


class _Scorers(NamedTuple):
    """A prior's jitted core: ``every`` species from places (network, activation and any
    reduction: :func:`~geoprior.priors.scoring.reduced`);
    ``embed`` places; a chunk of the ``normaliser`` (maxent's log-sum-exp); chosen
    ``columns`` of an embedding."""

    every: Callable
    embed: Callable
    normaliser: Callable
    columns: Callable
    log_fade: Callable | None  # presence beyond the extent (None: nothing fades)
    distance: Callable | None  # km to the nearest training place


class _RowSplit:
    """Places arrays with their rows split over ``n`` local devices (``n == 1``: as is)."""

    def __init__(self, sharding=None, n: int = 1):
        self.sharding, self.n = sharding, n

    def __call__(self, a: np.ndarray):
        # one device: the host array as it is (a compiled call takes it in its own
        # dispatch; a separate jnp.asarray cost 0.6 ms a block, measured)
        return a if self.sharding is None else jax.device_put(a, self.sharding)


def _on_local_devices(params):
    """Parameters replicated on this process's devices and the split of query rows over
    them: scoring uses every local accelerator (one device: nothing moves)."""
    devices = jax.local_devices()
    if len(devices) == 1:
        return params, _RowSplit()
    mesh = Mesh(np.array(devices), ("rows",))
    params = jax.device_put(params, NamedSharding(mesh, PartitionSpec()))
    return params, _RowSplit(NamedSharding(mesh, PartitionSpec("rows")), len(devices))


def _pad(a: np.ndarray, axis: int, n: int) -> np.ndarray:
    """``a`` with its last entry along ``axis`` repeated ``n`` more times (fixed shapes)."""
    if n == 0:
        return a
    widths = [(0, 0)] * a.ndim
    widths[axis] = (0, n)
    return np.pad(a, widths, mode="edge")


def _padding(m: int, n: int, batch_size: int) -> int:
    """Rows to add to a batch of ``m`` of a query of ``n`` rows. A query that fits in one
    batch runs as it is; a longer one runs full batches and a last batch padded to a
    multiple of ``_ROW_STEP`` rows: few shapes to compile, little padded work."""
    if n <= batch_size:
        return 0
    return min(batch_size, -(-m // _ROW_STEP) * _ROW_STEP) - m


class GeoPrior:
    """A trained location (and date) prior over species.

    Build one with :func:`geoprior.train_prior` or :func:`geoprior.load_prior`.

    Example:
        >>> import geoprior
        >>> prior = geoprior.load_prior("birds.prior")  # doctest: +SKIP
        >>> prior.top_k(44.06, -71.31, "2021-06-14", k=3)  # doctest: +SKIP
    """

    #: ``predict(..., species=columns)`` computes only those columns (see
    #: :class:`~geoprior.priors.protocol.ColumnScoring`).
    scores_columns = True

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
        anchors: AnchorTable | None = None,
        support=None,
    ):
        self._species = tuple(species)
        self.anchors = anchors
        self.support = None if support is None else np.asarray(support, np.float32)
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

    @property
    def outputs(self) -> tuple[str, ...]:
        """What :meth:`predict` can return: ``"observation"`` (rows sum to 1) and/or
        ``"presence"``; the first is the default."""
        return {"joint": OUTPUTS, "maxent": OUTPUTS[:1]}.get(self.loss, OUTPUTS[1:])

    @property
    def members(self) -> int:
        """Networks whose probabilities the prior averages (a leading axis of that size on
        every weight when more than one)."""
        return int(self.header["config"].get("members", 1))

    @property
    def far_km(self) -> float | None:
        """Beyond this distance from every training place a query is outside the extent."""
        return self.header["resolved"].get("far_km") if self.support is not None else None

    def _output(self, output: str | None) -> str:
        if output is None:
            return self.outputs[0]
        if output not in self.outputs:
            raise ConfigError(
                f"output must be one of {self.outputs} for this prior (loss {self.loss!r}), "
                f"got {output!r}"
            )
        return output

    def distance_km(self, lat, lon) -> np.ndarray:
        """Great-circle km from each place to the nearest training place (as kept in
        :attr:`support`: merged on a grid of at least ``far_km / 20``); NaN when the prior
        keeps none."""
        lat, lon, _ = prepare_query(lat, lon, None)
        if self.support is None:
            return np.full(lat.size, np.nan, np.float32)
        out = np.empty(lat.size, np.float32)
        for a in range(0, lat.size, _BATCH):
            out[a : a + _BATCH] = np.asarray(
                self._scorers(OUTPUTS[1]).distance(lat[a : a + _BATCH], lon[a : a + _BATCH])
            )
        return out

    def outside(self, lat, lon) -> np.ndarray:
        """``True`` where a place is farther than :attr:`far_km` from every training place:
        there the presence output has faded toward 0 and the observation output is the
        network's extrapolation, not data."""
        far = None if self.far_km is None else max(float(self.far_km), 1e-3)
        if far is None:
            return np.zeros(np.size(lat), bool)
        return self.distance_km(lat, lon) > far

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
    def _scorers(self, output: str) -> _Scorers:
        """The jitted core of one output, built once per prior and output (each compiles
        once per input shape)."""
        if output not in self._built:
            self._built[output] = self._build(output)
        return self._built[output]

    @cached_property
    def _member_params(self) -> tuple:
        """The weights as one tree per member, what the dense scoring core takes
        (:func:`~geoprior.priors.scoring.split_members`)."""
        return scoring.split_members(self.params, self.members)

    @cached_property
    def _built(self) -> dict:
        return {}

    def _build(self, output: str) -> _Scorers:
        model = GeoNet(
            self.n_species,
            ModelConfig(**self.header["config"]["model"]),
            observation_head=self.loss == "joint",
        )
        spec = self.encoder
        tables = self.anchors if spec.kind == "anchors" else spec.frequencies()
        uses_date = self.uses_date
        softmax = output == "observation"
        obs_head = softmax and self.loss == "joint"
        support = None if self.support is None else np.asarray(xyz(self.support[:, 0], self.support[:, 1]))
        far = None if self.far_km is None else max(float(self.far_km), 1e-3)

        def distance(lat, lon):
            # the shortest chord, from coordinate differences (a float32 arccos of a dot
            # product is off by km near 0), one (n, places) plane per coordinate: 13x
            # faster on a CPU than an argmax of dot products and a gather
            p = xyz(lat, lon)
            chord2 = (
                jnp.square(p[:, 0:1] - support[None, :, 0])
                + jnp.square(p[:, 1:2] - support[None, :, 1])
                + jnp.square(p[:, 2:3] - support[None, :, 2])
            )
            chord = jnp.sqrt(jnp.min(chord2, -1))
            return 2 * EARTH_RADIUS_KM * jnp.arcsin(jnp.clip(chord / 2, 0.0, 1.0))

        def log_fade(lat, lon):
            """0 within ``far_km`` of the data, then a Gaussian fall-off of scale
            ``far_km / 3``: presence is multiplied by 0.61 at 4/3 ``far_km`` and by 0.011
            at twice ``far_km`` (absent, as a prior that knows nothing there should say)."""
            if support is None or softmax:
                return 0.0
            beyond = jnp.maximum(distance(lat, lon) - far, 0.0) / (far / FADE_STEPS)
            return (-0.5 * beyond**2)[:, None]

        def activate(logits, fade, log):
            if softmax:
                return logits if log else jnp.exp(logits)
            out = jax.nn.log_sigmoid(logits) + fade
            return out if log else jnp.exp(out)

        def embed1(params, lat, lon, doy, cov):
            x = encode_inputs(spec, tables, lat, lon, doy if uses_date else None, cov)
            return model.apply({"params": params}, x, method=GeoNet.embed)

        def encode(lat, lon, doy, cov):
            return encode_inputs(spec, tables, lat, lon, doy if uses_date else None, cov)

        def member_features(params, x):
            """A member's input to its species matrix (through the low-rank layer)."""
            emb = model.apply({"params": params}, x, method=GeoNet.embed)
            return model.apply({"params": params}, emb, method=GeoNet.head_input)

        def member_matrix(params):
            return params["head_obs" if obs_head else "head_out"]["kernel"]

        def normaliser(params, emb, cols, valid, lse):
            logits = model.apply(
                {"params": params}, emb, cols, obs_head, method=GeoNet.fixed_columns
            )
            logits = jnp.where(jnp.arange(cols.size) < valid, logits, -jnp.inf)
            return jnp.logaddexp(lse, jax.nn.logsumexp(logits, -1))

        def columns(params, emb, cols, lse, fade, log):
            method = GeoNet.fixed_columns if cols.ndim == 1 else GeoNet.head_columns
            logits = model.apply({"params": params}, emb, cols, obs_head, method=method)
            if softmax:
                logits = logits - lse[:, None]
            return activate(logits, fade, log)

        embed, k = embed1, self.members
        fade = None if support is None or softmax else log_fade
        logits = scoring.member_logits(encode, member_features, member_matrix, k)
        every = scoring.dense_kernel(logits, k, softmax, fade)
        if k > 1:  # each member on its own weights (and embedding), probabilities averaged
            columns = _averaged(columns, (0, 0, None, 0, None), k)
            embed = jax.vmap(embed1, in_axes=(0, None, None, None, None))
            normaliser = jax.vmap(normaliser, in_axes=(0, 0, None, None, 0))

        return _Scorers(
            scoring.reduced(every),
            jax.jit(embed),
            jax.jit(normaliser),
            jax.jit(columns, static_argnames="log"),
            jax.jit(log_fade) if support is not None and not softmax else None,
            jax.jit(distance) if support is not None else None,
        )

    def predict(
        self,
        lat,
        lon,
        date=None,
        *,
        species=None,
        covariates=None,
        batch_size: int | None = None,
        species_chunk: int | None = None,
        output: str | None = None,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """Probabilities ``(n, S)`` of ``output`` (one of :attr:`outputs`; default the first):
        ``"observation"``, the species an observation here would be of (full rows sum to
        1), or ``"presence"``, each species' own probability of occurring here (fading to
        0 beyond the training extent, see :meth:`outside`).

        The sigmoid (or softmax) is taken on the device, in its own compiled call on the
        logits the network left there; the float32 result is the only array of its size on
        the host.

        Args:
            lat, lon: degrees (scalars or arrays).
            date: ``None`` (year-round), one date, or one per row (``None``/``NaT`` rows
                year-round).
            species: only these columns. ``None``: all ``S`` species. Names or integer
                column indices, 1-D ``(k,)``: the same ``k`` species for every row, returns
                ``(n, k)``. 2-D ``(n, k)``: each row its own ``k`` species (e.g. the species
                a record is of), returns ``(n, k)``. Unknown names raise
                :class:`~geoprior.UnknownSpeciesError` with close matches.
            covariates: ``(n, c)`` when the prior was trained with ``c`` covariates. A 1-D
                array is one column when ``c == 1`` and one row (one place) when ``n == 1``;
                anything else must be 2-D.
            batch_size: rows per device call. ``None``: chosen from the machine (on a CPU,
                the rows whose logits stay in the last-level cache; see
                :func:`~geoprior.priors.scoring.rows_per_call`).
            species_chunk: species per device call. ``None``: all of them at once, device
                memory ``batch_size x S`` floats (``batch_size x k`` with ``species``; the
                observation output still needs every logit for its normaliser). A number
                bounds it to ``batch_size x species_chunk``; the embedding of a batch is
                computed once and reused for every chunk (the observation output computes
                the logits twice: once for the normaliser, once for the output).
            output: ``"observation"`` or ``"presence"`` (see :attr:`outputs`); the
                presence output includes the fade beyond the extent (so does
                :meth:`log_prob`).
            out: a writable float32 array of the result's shape to write into, returned.
                Scoring the same shape again and again (a server, a loop over dates) so
                skips fresh memory, whose pages the kernel zeroes on first touch: for 4 GB
                that measured 0.2 s where huge pages were free and several seconds where
                memory was fragmented.

        >>> prior.predict([44.06], [-71.31], "2021-06-14").shape  # doctest: +SKIP
        (1, 531)
        >>> prior.predict([44.06], [-71.31], species=["Setophaga virens"])  # doctest: +SKIP
        array([[0.06]], dtype=float32)
        >>> prior.predict([44.06], [-71.31], species=["Setophaga virens"], output="presence")  # doctest: +SKIP
        array([[0.95]], dtype=float32)
        """
        return self.predict_query(
            prepare_query(lat, lon, date),
            species=species,
            covariates=covariates,
            batch_size=batch_size,
            species_chunk=species_chunk,
            output=output,
            out=out,
        )

    def predict_query(
        self,
        query: Query,
        *,
        species=None,
        covariates=None,
        batch_size: int | None = None,
        species_chunk: int | None = None,
        output: str | None = None,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """:meth:`predict` of a :class:`~geoprior.query.Query` that is already valid (made
        by :func:`~geoprior.query.prepare_query` or of places the caller made), taken as it
        is; the other arguments as :meth:`predict` takes them."""
        return self._score(
            query, species, covariates, batch_size, species_chunk, False, output, out
        )

    def log_prob(
        self,
        lat,
        lon,
        date=None,
        *,
        species=None,
        covariates=None,
        batch_size: int | None = None,
        species_chunk: int | None = None,
        output: str | None = None,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """Log of :meth:`predict` (log-sigmoid or log-softmax on the device, computed stably);
        same arguments.

        >>> prior.log_prob([44.06], [-71.31]).max() <= 0  # doctest: +SKIP
        True
        """
        query = prepare_query(lat, lon, date)
        return self._score(
            query, species, covariates, batch_size, species_chunk, True, output, out
        )

    def _score(self, query, species, covariates, batch_size, species_chunk, log, output, out):
        n, k, blocks = self._blocks(
            query, species, covariates, batch_size, species_chunk, log, output
        )
        if out is None:
            out = scoring.host_array((n, k), np.float32)
        else:
            _check_out(out, (n, k))
        for rows, m, a, w, block in scoring.ahead(blocks):
            out[rows, a : a + w] = np.asarray(block)[:m, :w]
        return out

    def _in_dim(self) -> int:
        return self.encoder.dim() + 3 * self.uses_date + len(self.covariate_names)

    def _blocks(
        self, query, species, covariates, batch_size, species_chunk, log, output=None,
        reduce=("dense",), value=None,
    ):
        """Check the options of a valid ``query`` and return ``(n, k, blocks)``: ``n``
        places, ``k`` columns, and an iterator of the result on the device, a block at a
        time, as ``(rows, m, a, w, block)``: the first ``m`` rows and ``w`` columns of
        ``block`` are rows ``rows`` and columns ``a:a + w`` of the ``(n, k)`` result (with
        ``species_chunk=None`` each block holds every column).

        ``reduce`` (a :func:`~geoprior.priors.scoring.reducer` as ``(kind,)`` or ``(kind,
        k)``, with its array ``value``) is applied on the device, to the block the network
        left there, when every species is scored in order; a block is then that reducer's result. Only
        ``("dense",)`` applies to chosen columns (``species`` or ``species_chunk``)."""
        output = self._output(output)
        lat, lon, dates = query
        n = lat.size
        cov = self._check_covariates(covariates, n)
        cols = self._species_columns(species, n)
        k = self.n_species if cols is None else cols.shape[-1]
        chunk = k if species_chunk is None else min(k, check_positive_int("species_chunk", species_chunk))
        if batch_size is None:
            bs = scoring.rows_per_call(chunk, self.members, self._in_dim())
        else:
            bs = check_positive_int("batch_size", batch_size)
        if n == 0 or k == 0:
            return n, k, iter(())
        every = np.arange(self.n_species, dtype=np.int32)
        if cols is not None and chunk == k and np.array_equal(cols, every):
            cols = None  # all species in order: the fused path
        if cols is None and chunk < k:
            cols = every
        if cols is not None and reduce[0] != "dense":
            raise ValueError(f"reduce={reduce} needs every species in order")
        doy = day_of_year(dates).astype(np.float32)
        fns = self._scorers(output)
        softmax = output == "observation"
        # the dense path takes the weights one tree per member; the column path stacked
        params, split = _on_local_devices(self._member_params if cols is None else self.params)

        def blocks():
            for start in range(0, n, bs):
                sl = slice(start, start + bs)
                m = lat[sl].size
                pad = _padding(m, n, bs)
                pad += -(m + pad) % split.n  # rows split evenly over the local devices
                rows = [split(_pad(a[sl], 0, pad).astype(np.float32)) for a in (lat, lon, doy)]
                c = None if cov is None else split(_pad(cov[sl], 0, pad).astype(np.float32))
                if cols is None:
                    yield sl, m, 0, k, fns.every(params, *rows, c, value, log=log, reduce=reduce)
                    continue
                emb = fns.embed(params, *rows, c)
                lse = self._normaliser(fns, emb, species_chunk, params) if softmax else None
                fade = 0.0 if fns.log_fade is None else fns.log_fade(rows[0], rows[1])
                own = cols if cols.ndim == 1 else split(_pad(cols[sl], 0, pad))
                for a in range(0, k, chunk):
                    block = own[..., a : a + chunk]
                    w = block.shape[-1]
                    res = fns.columns(params, emb, _pad(block, -1, chunk - w), lse, fade, log=log)
                    yield sl, m, a, w, res

        return n, k, blocks()

    def _normaliser(self, fns, emb, species_chunk, params):
        """log-sum-exp of every species' logit per row, ``species_chunk`` columns a call."""
        s = self.n_species
        chunk = s if species_chunk is None else min(s, int(species_chunk))
        every = np.arange(s, dtype=np.int32)
        lse = jnp.full(emb.shape[:-1], -jnp.inf, jnp.float32)  # (n,), or (members, n)
        for a in range(0, s, chunk):
            block = every[a : a + chunk]
            lse = fns.normaliser(params, emb, _pad(block, 0, chunk - block.size), block.size, lse)
        return lse

    def _species_columns(self, species, n: int) -> np.ndarray | None:
        """``species=`` as int32 column indices: ``None``, ``(k,)`` or ``(n, k)``."""
        return species_columns(species, self.species, n)

    def _check_covariates(self, covariates, n: int):
        cov = check_covariates(covariates, self.covariate_names, n)
        return None if cov is None else ((cov - self.cov_mean) / self.cov_std).astype(np.float32)

    def top_k(
        self,
        lat,
        lon,
        date=None,
        k: int = 10,
        *,
        species: Sequence[str] | None = None,
        covariates=None,
        batch_size: int | None = None,
        output: str | None = None,
    ) -> pd.DataFrame:
        """The ``k`` most likely species at each place: a DataFrame with columns
        ``row, rank, species, prob`` (``rank`` 1 is the most likely; ties keep the species
        order). ``prob`` is ``output`` (default the first of :attr:`outputs`: for a
        two-output prior, the observation probability, whose full rows sum to 1).

        ``species`` restricts the ranking to those names (unknown names raise
        :class:`~geoprior.UnknownSpeciesError` with close matches). The ranking is taken on
        the device, on the block the network left there, ``batch_size`` places a call
        (``None``: chosen from the machine), so memory holds one block of ``batch_size x
        S`` probabilities on the device and only ``n x k`` on the host, however many
        places.

        >>> prior.top_k([44.06], [-71.31], "2021-06-14", k=2)  # doctest: +SKIP
           row  rank          species      prob
        0    0     1  Setophaga virens  0.83...
        """
        k = check_positive_int("k", k)
        names = self.species
        if species is not None:
            cols = species_indices(species, names)
            names = tuple(names[i] for i in cols)
            species = cols
        query = prepare_query(lat, lon, date)
        k = min(k, self.n_species if species is None else len(species))
        every = species is None or np.array_equal(species, np.arange(self.n_species))
        reduce = ("top_k", k) if every else ("dense",)
        n, _, blocks = self._blocks(
            query, species, covariates, batch_size, None, False, output, reduce=reduce
        )
        probs, top = np.empty((n, k), np.float32), np.empty((n, k), np.int32)
        for rows, m, _, _, block in scoring.ahead(blocks):
            p, i = block if every else _device_top_k(block, k)
            probs[rows], top[rows] = np.asarray(p)[:m], np.asarray(i)[:m]
        return ranking_frame(probs, top, names)

    def select(
        self,
        lat,
        lon,
        date=None,
        *,
        thresholds,
        k: int | None = None,
        covariates=None,
        batch_size: int | None = None,
        output: str | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The species whose probability reaches a threshold at each place, as sparse
        ``(rows, columns, probs)`` arrays: ordered by row, then by probability (highest
        first; ties lower column first), at most ``k`` per row when given.

        The thresholds are compared, and each row's list ranked, on the device, on the
        block the network left there, so a call returns ``batch_size x K`` values,
        never the ``(n, S)`` matrix: ``K`` is ``k``, or without ``k`` the smallest power of
        two (from 64) that holds every row's list, grown when a block needs more. On a CPU
        without ``k`` the device's memory is the host's: the mask is read in place
        (:meth:`iter_above`) and each row's few entries sorted there, which is faster
        than a wide top-k.

        Args:
            thresholds: one probability for every species, or ``(S,)`` aligned with
                :attr:`species` (NaN: never listed).
            k, covariates, batch_size, output: as for :meth:`top_k` (``output`` default
                the first of :attr:`outputs`).

        >>> rows, cols, probs = prior.select([44.06], [-71.31], thresholds=0.5,
        ...                                  output="presence")  # doctest: +SKIP
        """
        s = self.n_species
        t = self._thresholds(thresholds)
        k = None if k is None else min(check_positive_int("k", k), s)
        width = k or min(s, 64)
        if k is None and jax.default_backend() == "cpu":
            rows_, cols_, probs_ = [], [], []
            for start, _, r, c, v in self.iter_above(
                lat, lon, date, thresholds=thresholds, covariates=covariates,
                batch_size=batch_size, output=output,
            ):
                order = np.lexsort((c, -v, r))  # by row, highest first, ties lower column
                rows_.append(start + r[order])
                cols_.append(c[order])
                probs_.append(v[order])
            return _sparse(rows_, cols_, probs_)
        query = prepare_query(lat, lon, date)
        cov = None if covariates is None else np.asarray(covariates)
        out_rows, out_cols, out_probs = [], [], []

        def run(q, c, width):
            _, _, blocks = self._blocks(
                q, None, c, batch_size, None, False, output, reduce=("listed", width), value=t
            )
            return scoring.ahead(blocks)

        pending = [(query, cov, 0)]
        while pending:
            q, c, offset = pending.pop(0)
            for rows, m, _, _, (counts, probs, cols) in run(q, c, width):
                counts = np.asarray(counts)[:m]
                need = int(counts.max(initial=0))
                if k is None and need > width:  # this block's longest list does not fit
                    width = min(s, 1 << (need - 1).bit_length())
                    # this block again at the new width, then the rest of the query
                    for at, part in enumerate((rows, slice(rows.stop, q[0].size))):
                        if part.start < part.stop:
                            sub = Query(*(a[part] for a in q))
                            pending.insert(at, (sub, None if c is None else c[part], offset + part.start))
                    break
                keep = np.arange(width)[None, :] < np.minimum(counts, width)[:, None]
                r, j = np.nonzero(keep)
                out_rows.append(offset + rows.start + r)
                out_cols.append(np.asarray(cols)[:m][r, j])
                out_probs.append(np.asarray(probs)[:m][r, j])
        return _sparse(out_rows, out_cols, out_probs)

    def iter_above(
        self,
        lat,
        lon,
        date=None,
        *,
        thresholds,
        covariates=None,
        batch_size: int | None = None,
        output: str | None = None,
    ):
        """Yield, a block of places at a time, the ``(place, species)`` pairs whose
        probability reaches the species' threshold: ``(start, m, rows, columns, probs)``,
        ``rows`` counted from ``start`` within the block's ``m`` places, pairs in row then
        column order.

        The comparison runs on the device, on the block the network left there; the
        block's probabilities are read only where the mask holds (on a CPU, in place). So
        memory is one block, however many places: what streams a map of every species
        (:func:`~geoprior.maps.write_all_species`). Arguments as for :meth:`select`.
        """
        t = self._thresholds(thresholds)
        on_host = jax.default_backend() == "cpu"  # device memory is host memory: read in place
        _, _, blocks = self._blocks(
            prepare_query(lat, lon, date), None, covariates, batch_size, None, False, output,
            reduce=("above",), value=t,
        )
        for rows, m, _, _, (probs, mask) in scoring.ahead(blocks):
            # flat positions, then rows and columns: np.flatnonzero of the block is 2-4x
            # faster than a 2-D np.nonzero, and a flat take than a 2-D gather (measured)
            flat = np.flatnonzero(np.asarray(mask)[:m])
            r, c = np.divmod(flat, self.n_species)
            v = np.asarray(probs)[:m].reshape(-1).take(flat) if on_host else np.asarray(probs[r, c])
            yield rows.start, m, r, c.astype(np.int32), v

    def _thresholds(self, thresholds):
        """One threshold per species on the device (NaN: never reached)."""
        s = self.n_species
        t = np.asarray(thresholds, np.float32)
        t = np.broadcast_to(t, (s,)) if t.ndim == 0 else t
        if t.shape != (s,):
            raise ConfigError(
                f"thresholds must be one value or {s} (one per species), got shape {t.shape}"
            )
        return jnp.asarray(np.where(np.isnan(t), np.inf, t))

    # --------------------------------------------------------------- save / load
    def save(self, path: str | os.PathLike, *, overwrite: bool = True):
        """Save as ``path/prior.json`` + ``path/arrays.npz`` (atomic)."""
        arrays = {
            f"params/{k}": np.asarray(v)
            for k, v in traverse_util.flatten_dict(jax.device_get(self.params), sep="/").items()
        }
        for name in ("cov_mean", "cov_std", "loss_curve", "thresholds", "support"):
            value = getattr(self, name)
            if value is not None:
                arrays[name] = value
        if self.anchors is not None:
            arrays.update({f"anchors/{k}": v for k, v in self.anchors._asdict().items()})
        header = dict(self.header, species=list(self.species))
        return save_folder(path, _KIND, header, arrays, overwrite=overwrite)


def _check_out(out, shape: tuple[int, int]) -> None:
    """``out=`` must be a writable float32 numpy array of the result's ``shape``."""
    if not isinstance(out, np.ndarray):
        raise ConfigError(f"out must be a numpy array, got {type(out).__name__}")
    if out.shape != shape or out.dtype != np.float32 or not out.flags.writeable:
        got = f"{'read-only ' if not out.flags.writeable else ''}{out.dtype} {out.shape}"
        raise ConfigError(
            f"out must be a writable float32 array of the result's shape {shape}, got {got}"
        )


def _sparse(rows: list, cols: list, probs: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lists of per-block ``(rows, columns, probs)`` as three arrays (empty when none)."""
    if not rows:
        return np.empty(0, np.int64), np.empty(0, np.int32), np.empty(0, np.float32)
    return (
        np.concatenate(rows).astype(np.int64),
        np.concatenate(cols).astype(np.int32),
        np.concatenate(probs).astype(np.float32),
    )


#: the presence fade beyond the extent: Gaussian of scale ``far_km / FADE_STEPS``
FADE_STEPS = 3.0


def _averaged(fn, in_axes, k: int):
    """``fn(..., log)`` run for each of ``k`` members (``in_axes`` as for ``jax.vmap``) and
    combined as the members' mean probability (its log stably, with ``log=True``)."""

    def combined(*args, log):
        each = jax.vmap(lambda *a: fn(*a, log=True), in_axes=in_axes)(*args)
        mean = jax.nn.logsumexp(each, axis=0) - jnp.log(k)
        return mean if log else jnp.exp(mean)

    return combined


#: The ``k`` largest values of each row and their columns, on the device (ties: lower
#: column first, as a stable sort).
_device_top_k = jax.jit(jax.lax.top_k, static_argnums=1)


def _saved_arrays(header: dict) -> dict[str, ArraySpec]:
    """Every array a saved GeoPrior with this header holds: the weights of the network its
    model config, encoder, date input and covariates describe (exact shapes), the
    covariate statistics, and optional loss curve and per-species thresholds."""
    n_species = len(header["species"])
    n_cov = len(header.get("covariates", []))
    resolved = header["resolved"]
    date_dim = 3 if resolved["use_date"] else 0
    in_dim = EncoderSpec(**resolved["encoder"]).dim() + date_dim + n_cov
    shapes = jax.eval_shape(
        GeoNet(
            n_species,
            ModelConfig(**header["config"]["model"]),
            observation_head=header["config"]["loss"] == "joint",
        ).init,
        jax.random.key(0),
        jax.ShapeDtypeStruct((1, in_dim), jnp.float32),
    )["params"]
    members = header["config"].get("members", 1)
    lead = (members,) if members > 1 else ()  # an ensemble's leading member axis
    specs = {
        f"params/{k}": ArraySpec(lead + v.shape)
        for k, v in traverse_util.flatten_dict(shapes, sep="/").items()
    }
    for name in ("cov_mean", "cov_std"):
        specs[name] = ArraySpec((n_cov,), optional=not n_cov)
    specs["loss_curve"] = ArraySpec((None,), optional=True)
    specs["thresholds"] = ArraySpec((n_species,), finite=False, optional=True)  # NaN: no data
    specs["support"] = ArraySpec((None, 2), optional=True)
    if resolved["encoder"].get("kind") == "anchors":
        a = resolved["encoder"]["n_features"]
        specs["anchors/xyz"] = ArraySpec((a, 3))
        specs["anchors/sigma_km"] = ArraySpec((a,), min=1e-9)
        specs["anchors/res"] = ArraySpec((a,), kind="i", min=0)
    return specs


_SCHEMA = Schema(
    fields={
        "config.loss": field(str, choices=LOSSES),
        "config.model.width": field(int, min=1),
        "config.model.depth": field(int, min=0),
        "config.model.head_rank": field(int, min=0),
        "config.model.dropout": field(float, min=0),
        "config.members": field(int, min=1, optional=True),
        "resolved.use_date": field(bool),
        "resolved.encoder": field(dict),
        "covariates": field(list, optional=True),
        "extent": field(dict),
    },
    arrays=_saved_arrays,
)


@register_kind(_KIND, _SCHEMA)
def _load(header: dict, arrays: dict[str, np.ndarray]) -> GeoPrior:
    flat = {
        k[len("params/") :]: jnp.asarray(v) for k, v in arrays.items() if k.startswith("params/")
    }
    params = traverse_util.unflatten_dict(flat, sep="/")
    species = header.pop("species")
    anchors = None
    if "anchors/xyz" in arrays:
        anchors = AnchorTable(*(arrays[f"anchors/{k}"] for k in AnchorTable._fields))
    return GeoPrior(
        species,
        params,
        header,
        cov_mean=arrays.get("cov_mean"),
        cov_std=arrays.get("cov_std"),
        loss_curve=arrays.get("loss_curve"),
        thresholds=arrays.get("thresholds"),
        anchors=anchors,
        support=arrays.get("support"),
    )
