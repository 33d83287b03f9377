"""``nnunet-ataxia convert-data2``: Hammers (cerebellum only) + SCA2 cohort -> the paper's Data2 (503)."""
from __future__ import annotations

import argparse

from nnunet_ataxia.io.arguments import dataset_id, nonnegative_int, positive_int
from nnunet_ataxia.io.output_folders import add_overwrite_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hammers", required=True, help="unpacked Hammers_mith-n30r95 download")
    parser.add_argument("--sca2", required=True, help="SCA2 cohort root (participants.tsv, sub-XX/, derivatives/)")
    parser.add_argument("-o", "--output", default=None,
                        help="output dataset folder (default: $nnUNet_raw/DatasetXXX_Data2)")
    parser.add_argument("-d", "--dataset-id", type=dataset_id, default=503, help="nnU-Net dataset id (default 503)")
    parser.add_argument("--seed", type=nonnegative_int, default=12345, help="seed of the Table 1 split (default 12345)")
    parser.add_argument("--preprocess", action="store_true", help="run the paper's MRI preprocessing per case")
    parser.add_argument("--skull-strip", action="store_true",
                        help="with --preprocess: strip the skull (the paper did not for Data2)")
    parser.add_argument("-np", "--num-processes", type=positive_int, default=1, help="cases converted in parallel")
    add_overwrite_argument(parser)


def run(args: argparse.Namespace) -> int:
    from nnunet_ataxia.dataset_conversion.Dataset503_Data2 import convert_data2

    out = convert_data2(args.hammers, args.sca2, args.output, args.dataset_id, args.seed, args.preprocess,
                        args.skull_strip, args.num_processes, overwrite=args.overwrite)
    print(f"wrote {out}")
    return 0
