"""The dense scoring core of a :class:`~geoprior.GeoPrior`: every species at a block of places,
network and activation in one compiled call, any reduction on the device after it, blocks
sized to the machine.

These things decide how fast a prior scores ``n`` places x ``S`` species, and each has a rule
here:

- **What one compiled call computes.** :func:`dense_kernel` returns the members' mean
  probability (or its log) for a block of rows: the encoder, each member's trunk and head
  (members unrolled: each is a plain 2-D matrix product, which XLA runs at full speed where
  a batched product over members does not) and the activation, with one exponential per
  member and value (``sigmoid``; a softmax shifted by its row maximum), not the log-space
  chain of a generic mean. A reduction (:func:`reducer`: the ``k`` best, or which values
  reach per-species thresholds) runs on the device on the block the call left there, so
  only its result leaves the device.
- **How many rows a call takes** (:func:`rows_per_call`). On a CPU the logits of a block,
  one ``rows x S`` array per member, should stay in the last-level cache, and every array
  below glibc's largest ``mmap`` threshold (32 MiB), past which each call would map fresh
  pages and fault them in: measured on a 2-core AVX-512 machine, 256 rows x 10,000
  species ran the head at 434 GFLOP/s and 8,192 rows at 218. An accelerator wants large
  blocks instead.
- **Overlap** (:func:`ahead`): the next block is dispatched before the last one is copied
  out, so an accelerator computes while the host copies.
- **The host output** (:func:`host_array`): a large result is written into memory mapped
  with huge pages and populated in one system call. Page faults on a fresh ``np.empty``
  of 4 GB took 3.7 s of copying, measured, against 0.2 s for the same copies into
  populated huge pages.
"""

from __future__ import annotations

import functools
import mmap
import os
import sys
from collections.abc import Callable, Iterable, Iterator

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "ahead",
    "cache_bytes",
    "dense_kernel",
    "host_array",
    "member_logits",
    "nonzero_2d",
    "reduced",
    "reducer",
    "rows_per_call",
    "top_k",
]

#: Fallback last-level cache size when the system does not say.
DEFAULT_CACHE = 32 << 20
#: glibc's largest dynamic ``mmap`` threshold: larger arrays are fresh pages every call.
MMAP_THRESHOLD = 32 << 20
#: Bytes of intermediate results one call may hold on an accelerator.
ACCELERATOR_BYTES = 1 << 30
#: Rows a call takes at most, and the step its row count is rounded to.
MAX_ROWS, ROW_STEP = 8192, 64
#: Arrays at least this large are allocated by :func:`host_array` as populated huge pages.
HUGE_ARRAY = 64 << 20
_MADV_POPULATE_WRITE = 23  # Linux >= 5.14


def cache_bytes(level: int = 3) -> int:
    """The size in bytes of this machine's CPU cache of ``level`` (3: the last level, shared;
    2: one core's), from ``/sys/devices/system/cpu/cpu0/cache`` (Linux) or ``sysconf``;
    ``DEFAULT_CACHE`` (32 MiB for level 3, 1 MiB for level 2) when neither says."""
    found = _sysfs_caches().get(level)
    if found:
        return found
    try:
        size = os.sysconf(f"SC_LEVEL{level}_CACHE_SIZE")
    except (ValueError, OSError):
        size = 0
    return int(size) if size and size > 0 else (DEFAULT_CACHE if level >= 3 else 1 << 20)


@functools.cache
def _sysfs_caches() -> dict[int, int]:
    """``{level: bytes}`` of cpu0's data and unified caches as Linux lists them."""
    sizes: dict[int, int] = {}
    root = "/sys/devices/system/cpu/cpu0/cache"
    try:
        entries = sorted(os.listdir(root))
    except OSError:
        return sizes
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    for entry in entries:
        try:
            with open(f"{root}/{entry}/level") as f:
                level = int(f.read())
            with open(f"{root}/{entry}/type") as f:
                kind = f.read().strip()
            with open(f"{root}/{entry}/size") as f:
                text = f.read().strip()
        except (OSError, ValueError):
            continue
        if kind == "Instruction" or not text:
            continue
        scale = units.get(text[-1].upper(), 1)
        try:
            sizes[level] = int(text.rstrip("KMGkmg")) * scale
        except ValueError:
            continue
    return sizes


def rows_per_call(n_columns: int, members: int, in_dim: int, backend: str | None = None) -> int:
    """Rows of one scoring call for ``n_columns`` output columns, ``members`` networks and
    ``in_dim`` input features.

    On a CPU: the multiple of ``ROW_STEP`` nearest the rows whose working set (one ``rows x
    n_columns`` float32 array per member plus the output, and the ``rows x in_dim`` input)
    fills the last-level cache, no more than keep the largest array under
    ``MMAP_THRESHOLD``. On
    an accelerator: as many rows as ``ACCELERATOR_BYTES`` of the same arrays hold. Between
    ``ROW_STEP`` and ``MAX_ROWS`` either way.

    >>> rows_per_call(10_000, 2, 3429, backend="cpu") <= 512
    True
    >>> rows_per_call(10, 1, 64, backend="cpu")
    8192
    """
    backend = jax.default_backend() if backend is None else backend
    per_row = 4 * ((members + 1) * max(1, n_columns) + max(1, in_dim))
    if backend == "cpu":
        fits = round(cache_bytes() / per_row / ROW_STEP) * ROW_STEP
        below = MMAP_THRESHOLD // (4 * max(n_columns, in_dim, 1)) // ROW_STEP * ROW_STEP
        rows = min(fits, below)
    else:
        rows = round(ACCELERATOR_BYTES / per_row / ROW_STEP) * ROW_STEP
    return int(min(MAX_ROWS, max(ROW_STEP, rows)))


def host_array(shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
    """An uninitialised array for a large result: on Linux, anonymous memory advised to use
    huge pages and populated in one ``madvise`` call (where the kernel offers it), so
    filling it costs no page faults; elsewhere, and below ``HUGE_ARRAY`` bytes,
    ``np.empty``. The array owns its mapping (freed with it)."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if nbytes < HUGE_ARRAY or not sys.platform.startswith("linux"):
        return np.empty(shape, dtype)
    try:
        region = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    except OSError:  # no address space for it: let numpy say so
        return np.empty(shape, dtype)
    for advice in (getattr(mmap, "MADV_HUGEPAGE", None), _MADV_POPULATE_WRITE):
        if advice is not None:
            try:
                region.madvise(advice)
            except OSError:  # an older kernel: the pages fault in as they are written
                pass
    return np.frombuffer(region, dtype).reshape(shape)


def _member(params, m: int, members: int):
    """Member ``m``'s weights (an ensemble's weights carry a leading member axis)."""
    return params if members == 1 else jax.tree.map(lambda a: a[m], params)


def dense_kernel(
    logits: Callable, members: int, softmax: bool, log_fade: Callable | None
) -> Callable:
    """``f(params, lat, lon, doy, cov, log) -> (rows, S)``: the members' mean probability of
    every species (its log with ``log=True``), from ``logits(params, lat, lon, doy, cov) ->
    [(rows, S)] * members`` (the inputs encoded once: :func:`member_logits`).

    ``softmax``: each member's softmax over species (rows sum to 1); otherwise each
    member's sigmoid, times ``exp(log_fade(lat, lon))`` (``(rows, 1)``) when given. The
    mean of probabilities is taken with one exponential per value and member (a sigmoid,
    or a softmax shifted by its row maximum and scaled by ``1 / (members x row sum)``), not
    the log-space chain of a generic mean; the log output takes a log-sum-exp over the
    members' log probabilities (stable where the probabilities underflow).
    """

    def probs(params, lat, lon, doy, cov):
        total = None
        for each in logits(params, lat, lon, doy, cov):
            if softmax:
                e = jnp.exp(each - jnp.max(each, -1, keepdims=True))
                q = e * (1.0 / (members * jnp.sum(e, -1, keepdims=True)))
            else:
                q = jax.nn.sigmoid(each)
            total = q if total is None else total + q
        if softmax:
            return total
        scale = 1.0 / members
        if log_fade is not None:
            scale = scale * jnp.exp(log_fade(lat, lon))
        return total * scale

    def log_probs(params, lat, lon, doy, cov):
        act = (lambda v: jax.nn.log_softmax(v, -1)) if softmax else jax.nn.log_sigmoid
        each = [act(v) for v in logits(params, lat, lon, doy, cov)]
        out = each[0] if members == 1 else jax.nn.logsumexp(jnp.stack(each), 0) - np.log(members)
        return out if softmax or log_fade is None else out + log_fade(lat, lon)

    def kernel(params, lat, lon, doy, cov, log: bool = False):
        return (log_probs if log else probs)(params, lat, lon, doy, cov)

    return kernel


def member_logits(encode: Callable, embed: Callable, kernel: Callable, members: int) -> Callable:
    """``logits(params, lat, lon, doy, cov)`` for :func:`dense_kernel`: the inputs encoded
    once by ``encode(lat, lon, doy, cov)``; for each member (unrolled: each a plain 2-D
    product, which XLA runs at full speed where a product batched over members does not),
    its features ``embed(member_params, x) -> (rows, w)`` times its species matrix
    ``kernel(member_params) -> (w, S)``. (Cutting the product into column chunks reduced
    while in cache measured no faster on a CPU.)"""

    def logits(params, lat, lon, doy, cov):
        x = encode(lat, lon, doy, cov)
        out = []
        for m in range(members):
            pm = _member(params, m, members)
            # the product on its own: left to fuse with the softmax's reductions, XLA ran
            # the observation output 20% slower, measured
            out.append(jax.lax.optimization_barrier(embed(pm, x) @ kernel(pm)))
        return out

    return logits


def reduced(kernel: Callable) -> Callable:
    """``kernel`` followed by a :func:`reducer`, both on the device:
    ``f(params, lat, lon, doy, cov, value, *, log, reduce)`` with ``reduce`` a static
    ``(kind,)`` or ``(kind, k)`` and ``value`` the reducer's array argument (per-species
    thresholds for ``"above"`` and ``"listed"``, else ``None``).

    The reducer is its own compiled call on the block the kernel left on the device: in
    one call with the network, XLA's CPU backend ran the kernel and a top-k 1.6x slower
    than the two calls (27.8 ms against 16.9 ms a block of 256 rows x 10,000 species,
    measured), and only the reducer's result leaves the device either way."""
    network = jax.jit(kernel, static_argnames="log")
    reducers = {}

    def call(params, lat, lon, doy, cov, value, *, log, reduce):
        p = network(params, lat, lon, doy, cov, log=log)
        kind = reduce[0]
        if kind == "dense":
            return p
        if reduce not in reducers:
            reducers[reduce] = _jitted_reducer(kind, reduce[1] if len(reduce) > 1 else None)
        return reducers[reduce](p, value)

    return call


def _jitted_reducer(kind: str, k):
    """The :func:`reducer` ``kind`` with ``k`` fixed, compiled: ``f(probs, thresholds)``."""
    reduce = reducer(kind)
    return jax.jit(lambda p, t: reduce(p, k, t))


def reducer(kind: str) -> Callable:
    """A reduction ``f(probs, k, thresholds)`` of a ``(rows, S)`` probability block, run on
    the device where the network left it (:func:`reduced`):

    - ``"dense"``: the block itself;
    - ``"top_k"``: ``(probs, columns)`` of the ``k`` largest per row (ties: lower column
      first; :func:`top_k`);
    - ``"above"``: ``(probs, mask)``, the mask ``probs >= thresholds`` (``(S,)``; NaN
      thresholds: never);
    - ``"listed"``: ``(counts, probs, columns)``: per row, how many species reach their
      thresholds, and the ``k`` largest of those (the rest ``-inf``), for lists of the
      species above a threshold that leave the call as ``rows x k``, not ``rows x S``.
    """
    if kind == "dense":
        return lambda p, k, t: p
    if kind == "top_k":
        return lambda p, k, t: top_k(p, k)
    if kind == "above":
        return lambda p, k, t: (p, p >= t[None, :])
    if kind == "listed":

        def listed(p, k, t):
            passed = p >= t[None, :]
            return (jnp.sum(passed, -1, dtype=jnp.int32),) + top_k(jnp.where(passed, p, -jnp.inf), k)

        return listed
    raise ValueError(f"unknown reducer {kind!r}")


def top_k(p, k: int):
    """``jax.lax.top_k(p, k)`` of a ``(rows, S)`` block, exactly (values, columns, and ties
    taken lower column first), a few times faster when ``k`` is small beside ``S``.

    The block is cut into groups of ``g`` columns. The ``k`` largest values lie in the ``k``
    groups with the largest maxima (ties: lower group first): any value outside them is
    outranked by those ``k`` maxima, each larger or equal and, when equal, in a lower
    column. So the exact top ``k`` is taken over those groups' ``k x g`` values, gathered
    in column order. One pass takes the group maxima; the sorts touch ``S / g + k x g``
    values a row instead of ``S``.
    """
    rows, s = p.shape
    g = max(1, int(round(np.sqrt(s / max(k, 1)) / 2)))  # fastest measured: S 10,000, k 10: 16
    if k * g * 4 > s:
        return tuple(jax.lax.top_k(p, k))
    groups = -(-s // g)
    padded = jnp.pad(p, ((0, 0), (0, groups * g - s)), constant_values=-jnp.inf)
    blocks = padded.reshape(rows, groups, g)
    _, chosen = jax.lax.top_k(jnp.max(blocks, -1), k)
    chosen = jnp.sort(chosen, -1)  # column order, so ties go to the lower column
    candidates = jnp.take_along_axis(blocks, chosen[:, :, None], 1).reshape(rows, k * g)
    values, at = jax.lax.top_k(candidates, k)
    columns = jnp.take_along_axis(chosen, at // g, 1) * g + at % g
    return values, columns.astype(jnp.int32)


def nonzero_2d(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.nonzero`` of a C-contiguous 2-D boolean array, in the same (row-major) order,
    several times faster when few entries are set: the bytes are scanned eight at a time
    as 64-bit words and only the words that hold a set entry are looked into.

    >>> nonzero_2d(np.array([[False, True], [True, False]]))
    (array([0, 1]), array([1, 0]))
    """
    mask = np.ascontiguousarray(mask, dtype=bool)
    if mask.ndim != 2 or mask.size % 8:
        return np.nonzero(mask)
    flat = mask.reshape(-1)
    words = np.flatnonzero(flat.view(np.uint64))
    k = np.flatnonzero(flat.reshape(-1, 8)[words].reshape(-1))
    return np.divmod(words[k >> 3] * 8 + (k & 7), mask.shape[1])


def ahead(blocks: Iterable) -> Iterator:
    """``blocks`` one step ahead: the next block is dispatched (JAX runs it asynchronously)
    before the current one is handed on, so the device computes while the host copies."""
    it = iter(blocks)
    try:
        pending = next(it)
    except StopIteration:
        return
    for block in it:
        yield pending
        pending = block
    yield pending
