"""``nnunet-ataxia convert-hammers``: the Hammers n30r95 atlas -> nnU-Net raw dataset (default Dataset501)."""
from __future__ import annotations

import argparse

from nnunet_ataxia.io.arguments import dataset_id, nonnegative_int, positive_int
from nnunet_ataxia.io.output_folders import add_overwrite_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", "--input", required=True,
                        help="unpacked Hammers_mith-n30r95 download (aNN.nii.gz + aNN-seg.nii.gz)")
    parser.add_argument("-o", "--output", default=None,
                        help="output dataset folder (default: $nnUNet_raw/DatasetXXX_HammersN30R95)")
    parser.add_argument("-d", "--dataset-id", type=dataset_id, default=501, help="nnU-Net dataset id (default 501)")
    parser.add_argument("--split", choices=("paper", "cv5", "none"), default="paper",
                        help="paper: 18/6/6 train/val/test (test -> imagesTs, val = fold 0 of splits_final.json); "
                             "cv5: same test cases, five-fold CV over the other 24; none: all in imagesTr")
    parser.add_argument("--seed", type=nonnegative_int, default=12345, help="seed of the split (default 12345)")
    parser.add_argument("--split-hemispheres", action="store_true",
                        help="labels cerebellum_left 1, cerebellum_right 2, brainstem 3")
    parser.add_argument("--preprocess", action="store_true",
                        help="run the paper's MRI preprocessing per case (N4, MNI, skull strip, equalize, crop)")
    parser.add_argument("--no-skull-strip", action="store_true", help="with --preprocess: keep the skull")
    parser.add_argument("-np", "--num-processes", type=positive_int, default=1, help="cases converted in parallel")
    add_overwrite_argument(parser)


def run(args: argparse.Namespace) -> int:
    from nnunet_ataxia.dataset_conversion.Dataset501_HammersN30R95 import convert_hammers

    out = convert_hammers(args.input, args.output, args.dataset_id, args.split, args.seed, args.split_hemispheres,
                          args.preprocess, not args.no_skull_strip, args.num_processes, overwrite=args.overwrite)
    print(f"wrote {out}")
    return 0
