"""The dense scoring core of a :class:`~geoprior.GeoPrior`: every species at a block of places,
the network, then the activation, then any reduction, each a compiled call on what the
last one left on the device, blocks sized to the machine.

These things decide how fast a prior scores ``n`` places x ``S`` species, and each has a rule
here:

- **What the calls compute.** :func:`dense_kernel` gives the network (the encoder, then each
  member's trunk and head: members unrolled, each a plain 2-D matrix product, which XLA
  runs at full speed where a batched product over members does not, on weights split per
  member once, :func:`split_members`) and the activation: the members' mean probability
  (or its log), with one exponential per member and value (``sigmoid``; a softmax shifted
  by its row maximum), not the log-space chain of a generic mean. A reduction
  (:func:`reducer`: the ``k`` best, or which values reach per-species thresholds) runs on
  the device on the block the activation left there, so only its result leaves the
  device. Kept apart, XLA's CPU backend ran each faster than fused (:func:`reduced`).
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
    "elementwise_options",
    "host_array",
    "member_logits",
    "reduced",
    "reducer",
    "rows_per_call",
    "split_members",
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


def split_members(params, members: int) -> tuple:
    """An ensemble's weights (every array with a leading member axis) as one tree per
    member, for :func:`member_logits`. Sliced inside the compiled call instead, every
    member's weights were copied on every call (10 MB of species matrix a member at 10,000
    species, measured: 2 ms of a 15 ms block); sliced once here, each call reads them in
    place. One member: ``(params,)``."""
    if members == 1:
        return (params,)
    return tuple(jax.tree.map(lambda a, m=m: a[m], params) for m in range(members))


def dense_kernel(logits: Callable, members: int, softmax: bool, log_fade: Callable | None):
    """``(network, activation)`` for :func:`reduced`, from ``logits(params, lat, lon, doy,
    cov) -> ((rows, S),) * members`` (:func:`member_logits`):

    - ``network(params, lat, lon, doy, cov) -> (logits, fade)``: every member's logits,
      and ``log_fade(lat, lon)`` (``(rows, 1)``; ``None`` when not given);
    - ``activation(logits, fade, log) -> (rows, S)``: the members' mean probability of
      every species (its log with ``log=True``).

    ``softmax``: each member's softmax over species (rows sum to 1); otherwise each
    member's sigmoid, times ``exp(fade)``. The mean of probabilities is taken with one
    exponential per value and member (a sigmoid, or a softmax shifted by its row maximum
    and scaled by ``1 / (members x row sum)``), not the log-space chain of a generic mean;
    the log output takes a log-sum-exp over the members' log probabilities (stable where
    the probabilities underflow).
    """

    def network(params, lat, lon, doy, cov):
        fade = None if log_fade is None else log_fade(lat, lon)
        return logits(params, lat, lon, doy, cov), fade

    def probs(each, fade):
        total = None
        for v in each:
            if softmax:
                e = jnp.exp(v - jnp.max(v, -1, keepdims=True))
                q = e * (1.0 / (members * jnp.sum(e, -1, keepdims=True)))
            else:
                q = jax.nn.sigmoid(v)
            total = q if total is None else total + q
        if softmax:
            return total
        scale = 1.0 / members
        if fade is not None:
            scale = scale * jnp.exp(fade)
        return total * scale

    def log_probs(each, fade):
        act = (lambda v: jax.nn.log_softmax(v, -1)) if softmax else jax.nn.log_sigmoid
        each = [act(v) for v in each]
        out = each[0] if members == 1 else jax.nn.logsumexp(jnp.stack(each), 0) - np.log(members)
        return out if softmax or fade is None else out + fade

    def activation(each, fade, log: bool = False):
        return (log_probs if log else probs)(each, fade)

    return network, activation


def member_logits(encode: Callable, embed: Callable, kernel: Callable, members: int) -> Callable:
    """``logits(params, lat, lon, doy, cov)`` for :func:`dense_kernel`, ``params`` one tree
    per member (:func:`split_members`): the inputs encoded once by ``encode(lat, lon, doy,
    cov)``; for each member (unrolled: each a plain 2-D product, which XLA runs at full
    speed where a product batched over members does not, and on a CPU the members'
    products run side by side on the cores), its features ``embed(member_params, x) ->
    (rows, w)`` times its species matrix ``kernel(member_params) -> (w, S)``. (Cutting the
    product into column chunks reduced while in cache measured no faster on a CPU.)"""

    def logits(params, lat, lon, doy, cov):
        if len(params) != members:
            raise ValueError(f"expected {members} member trees, got {len(params)}")
        x = encode(lat, lon, doy, cov)
        return tuple(embed(pm, x) @ kernel(pm) for pm in params)

    return logits


def reduced(kernel: tuple[Callable, Callable]) -> Callable:
    """The ``(network, activation)`` of :func:`dense_kernel` followed by a :func:`reducer`,
    on the device: ``f(params, lat, lon, doy, cov, value, *, log, reduce)`` with ``reduce``
    a static ``(kind,)`` or ``(kind, k)`` and ``value`` the reducer's array argument
    (per-species thresholds for ``"above"`` and ``"listed"``, else ``None``).

    Three compiled calls, each on what the last left on the device: the network, the
    activation, the reducer. Fused, XLA's CPU backend ran them slower, measured on blocks
    of 256 rows x 10,000 species: the network with the softmax 13.0 ms against 12.1 for
    the two calls (it fused each member's softmax into its matrix product), the activation
    with a top-k 13.9 against 13.0 and with the threshold mask 13.2 against 12.6 (and a
    top-k in the network's call ran 1.6x slower). Only the reducer's result leaves the
    device either way. The activation and reducers are compiled with
    :func:`elementwise_options`."""
    network, activation = kernel
    network = jax.jit(network)
    activation = _jit_elementwise(activation, static_argnames="log")
    reducers = {}

    def call(params, lat, lon, doy, cov, value, *, log, reduce):
        each, fade = network(params, lat, lon, doy, cov)
        p = activation(each, fade, log=log)
        if reduce[0] == "dense":
            return p
        if reduce not in reducers:
            reducers[reduce] = _jitted_reducer(reduce[0], reduce[1] if len(reduce) > 1 else None)
        return reducers[reduce](p, value)

    return call


def _jitted_reducer(kind: str, k):
    """The :func:`reducer` ``kind`` with ``k`` fixed, compiled: ``f(probs, thresholds)``."""
    reduce = reducer(kind)
    return _jit_elementwise(lambda p, t: reduce(p, k, t))


def _jit_elementwise(fn: Callable, **kwargs) -> Callable:
    """``jax.jit(fn)`` for a call of elementwise work and reductions (no matrix products),
    compiled with :func:`elementwise_options`."""
    options = elementwise_options()
    return jax.jit(fn, compiler_options=options, **kwargs) if options else jax.jit(fn, **kwargs)


@functools.cache
def elementwise_options() -> dict:
    """XLA options for the elementwise calls of scoring: on a CPU with 512-bit vectors
    (AVX-512), 512-bit vectors where XLA's default is 256, which ran the activation's
    sigmoids 1.7x faster (0.62 ms against 1.06 for 2 x 256 x 10,000 values, measured), the
    same values bit for bit. Empty elsewhere, or where this JAX does not take the option
    (checked once, by compiling a trivial call)."""
    if jax.default_backend() != "cpu" or not _cpu_has("avx512f"):
        return {}
    options = {"xla_cpu_prefer_vector_width": 512}
    try:
        jax.jit(lambda x: x + 1, compiler_options=options).lower(np.float32(0)).compile()
    except (TypeError, ValueError, RuntimeError):  # an older JAX or XLA without the option
        return {}
    return options


def _cpu_has(flag: str) -> bool:
    """Whether Linux lists ``flag`` among the CPU's features (``False`` where unknown)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return flag in line.split()
    except OSError:
        pass
    return False


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
