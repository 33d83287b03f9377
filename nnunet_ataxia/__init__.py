"""nnunet-ataxia: an nnU-Net v2 plugin for the M1/M2 cerebellum networks and the WMH location networks."""
__version__ = "0.1.0"  # the one version source: pyproject.toml reads it ([tool.setuptools.dynamic])
