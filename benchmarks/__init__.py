"""geoprior's benchmark suite: ``python -m benchmarks [--data DIR] [--quick]``.

Four benchmarks, each comparing geoprior (trained with its default settings) side by side
with the alternatives on real data, in the same run:

* :mod:`benchmarks.disdat` — range accuracy against real absences (disdat, Elith et al. 2020);
* :mod:`benchmarks.neon` — date-aware priors on NEON survey events;
* :mod:`benchmarks.birdclef` — prior-only accuracy at held-out BirdCLEF 2022 recordings;
* :mod:`benchmarks.fusion_error` — error reduction when fusing with a (simulated) classifier.

Results go to ``benchmarks.json`` and ``benchmarks.md`` (with plots under ``img/``) in the
output folder: ``docs/`` for the full suite, ``build/benchmarks-quick/`` for ``--quick``.
"""
