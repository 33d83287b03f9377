"""Shim for nnU-Net's trainer look-up (``nnUNet_extTrainer`` points at this folder).

nnU-Net imports every module of that folder as a top-level module and drops it from ``sys.modules`` afterwards,
so this file only re-exports the trainers with an absolute import from the installed package: the classes it finds
are the real ``nnunet_ataxia.trainers`` classes (pickling and isinstance keep working).
"""
from nnunet_ataxia.trainers import *  # noqa: F401,F403
from nnunet_ataxia.trainers import __all__  # noqa: F401
