"""Learning the projectors from unpaired memories: semantic enhancement (`enhance`), the losses
(`losses`) and the trainer with its typed config (`trainer`)."""
