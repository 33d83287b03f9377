"""``nnunet-ataxia trainer-path``: the value for ``nnUNet_extTrainer``."""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--export", action="store_true",
                        help="print a shell line 'export nnUNet_extTrainer=...' instead of the bare folder")


def run(args: argparse.Namespace) -> int:
    from nnunet_ataxia.io.nnunet_env import trainer_shim_folder

    folder = trainer_shim_folder()
    print(f"export nnUNet_extTrainer={folder}" if args.export else folder)
    return 0
