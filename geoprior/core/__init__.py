"""The pure core: the encoders, the model and the losses, functions of arrays that jit, with
no files, data frames, CLI or plots; nothing here imports the shell."""
