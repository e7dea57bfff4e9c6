"""Learning the projectors from unpaired memories: the run's typed config (`config`), semantic
enhancement (`enhance`), the memories and their pseudo-partner views (`memories`), the losses
(`losses`), the training loop (`trainer`), spaces from trained connections (`spaces`) and the
training curves (`curves`)."""
