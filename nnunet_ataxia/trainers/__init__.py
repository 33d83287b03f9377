"""nnU-Net trainer subclasses of this plugin.

nnU-Net finds them through ``nnUNet_extTrainer`` (see ``nnunet-ataxia trainer-path``), whose shim modules
re-export everything listed here.
"""
from nnunet_ataxia.trainers.cerebellum_trainers import *  # noqa: F401,F403
from nnunet_ataxia.trainers.cerebellum_trainers import __all__ as _cerebellum_all
from nnunet_ataxia.trainers.wmh_trainers import *  # noqa: F401,F403
from nnunet_ataxia.trainers.wmh_trainers import __all__ as _wmh_all
from nnunet_ataxia.trainers.wmh_paper_recipe import *  # noqa: F401,F403
from nnunet_ataxia.trainers.wmh_paper_recipe import __all__ as _wmh_paper_all

__all__ = list(_cerebellum_all) + list(_wmh_all) + list(_wmh_paper_all)
