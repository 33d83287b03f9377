"""``nnunet-ataxia trainer-path``: the value for ``nnUNet_extTrainer``."""
from __future__ import annotations

import argparse
from pathlib import Path


def shim_folder() -> Path:
    """The folder of re-export shims that ``nnUNet_extTrainer`` must point at.

    Example:
        >>> shim_folder().name
        'nnunet_ext_trainers'
    """
    import nnunet_ataxia

    return Path(nnunet_ataxia.__file__).resolve().parent / "nnunet_ext_trainers"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--export", action="store_true",
                        help="print a shell line 'export nnUNet_extTrainer=...' instead of the bare folder")


def run(args: argparse.Namespace) -> int:
    folder = shim_folder()
    print(f"export nnUNet_extTrainer={folder}" if args.export else folder)
    return 0
