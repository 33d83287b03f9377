"""``nnunet-ataxia to-native``: map predictions on the preprocessed (MNI, cropped) grid back to native space.

What it writes: :func:`nnunet_ataxia.preprocessing.native_space.predictions_to_native`.
"""
from __future__ import annotations

import argparse

from nnunet_ataxia.io.output_folders import add_overwrite_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", "--input", required=True, help="folder of predictions (<case>.nii.gz)")
    parser.add_argument("-t", "--transforms", required=True,
                        help="folder holding one transform folder per case (<dataset>/transforms)")
    parser.add_argument("-o", "--output", required=True,
                        help="output folder (written atomically; an existing folder must be an earlier to-native "
                             "output)")
    parser.add_argument("--interpolation", choices=("nearest", "linear"), default="nearest",
                        help="nearest neighbour, or label-wise linear interpolation of one-hot maps then argmax")
    add_overwrite_argument(parser)


def run(args: argparse.Namespace) -> int:
    from nnunet_ataxia.preprocessing.native_space import predictions_to_native

    n = predictions_to_native(args.input, args.transforms, args.output, interpolation=args.interpolation,
                              overwrite=args.overwrite)
    print(f"wrote {n} native-space mask(s) and volumes_native.tsv to {args.output}")
    return 0
