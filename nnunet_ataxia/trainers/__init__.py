"""nnU-Net trainer subclasses of this plugin.

nnU-Net finds them through ``nnUNet_extTrainer`` (see ``nnunet-ataxia trainer-path``), whose shim module re-exports
this package. Every public ``nnUNetTrainer`` subclass defined in a module of this package is exported here, found by
walking the package: a new trainer needs no list to be kept up to date (``tests/test_plugin_trainers_unit.py``
checks that nnU-Net's own look-up finds each one).
"""
import importlib as _importlib
import inspect as _inspect
import pkgutil as _pkgutil
from types import ModuleType as _ModuleType

from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer as _nnUNetTrainer


def trainer_names(module: _ModuleType) -> list[str]:
    """The public ``nnUNetTrainer`` subclasses defined in ``module`` (not imported into it), in definition order.

    Example:
        >>> from nnunet_ataxia.trainers import cerebellum_trainers
        >>> trainer_names(cerebellum_trainers)[:3]
        ['CerebellumNetworkTrainer', 'M1Trainer', 'M2InceptionTrainer']
    """
    return [name for name, obj in vars(module).items()
            if _inspect.isclass(obj) and issubclass(obj, _nnUNetTrainer) and obj.__module__ == module.__name__
            and not name.startswith("_")]


__all__: list[str] = []
for _info in sorted(_pkgutil.iter_modules(__path__), key=lambda m: m.name):
    _module = _importlib.import_module(f"{__name__}.{_info.name}")
    for _name in trainer_names(_module):
        globals()[_name] = getattr(_module, _name)
        __all__.append(_name)
