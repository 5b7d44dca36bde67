"""The pure core: functions of arrays, jit-able, with no files, data frames, CLI or plots.

Phase one of the layout holds the fusion maths (:mod:`geoprior.core.fuse`); the encoders,
the model and the losses join it later. Nothing here imports the shell (``io``, ``fusion``,
``maps``, ``cli``); inputs are validated before they get here.
"""
