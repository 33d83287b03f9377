"""The pretrained M2 model: export, installation, and the run that reproduces it."""
