"""The pure core: functions of arrays that jit — the encoders, the model, the losses and the
fusion maths — with no files, data frames, CLI or plots. Nothing here imports the shell
(``io``, ``fusion``, ``maps``, ``cli``, ``train``, ``priors``); inputs are validated before
they get here."""
