"""``nnunet-ataxia select-structure``: a one-structure (cerebellum or brainstem) dataset from a converted 3-class
dataset, trained with one sigmoid output as in the paper (``*_oneStructure`` trainers)."""
from __future__ import annotations

import argparse

from nnunet_ataxia.io.output_folders import add_overwrite_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", "--input", required=True, help="a converted cerebellum/brainstem dataset folder")
    parser.add_argument("--structure", required=True, choices=("cerebellum", "brainstem"))
    parser.add_argument("-o", "--output", required=True,
                        help="the new dataset folder, e.g. $nnUNet_raw/Dataset511_HammersCerebellum")
    add_overwrite_argument(parser)


def run(args: argparse.Namespace) -> int:
    from nnunet_ataxia.dataset_conversion.structure_subset import select_structure

    print(select_structure(args.input, args.structure, args.output, overwrite=args.overwrite))
    return 0
