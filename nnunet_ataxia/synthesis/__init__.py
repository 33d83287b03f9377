"""Domain-randomized pseudo-subjects (SynthSeg-style) for the pretrained cerebellum/brainstem model."""
