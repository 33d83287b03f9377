"""``nnunet-ataxia convert-sca2``: a BIDS-like SCA2 cohort with ACAPULCO outputs -> nnU-Net raw dataset (502)."""
from __future__ import annotations

import argparse

from nnunet_ataxia.io.arguments import dataset_id, nonnegative_int, positive_int
from nnunet_ataxia.io.output_folders import add_overwrite_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", "--input", required=True,
                        help="cohort root: participants.tsv, sub-XX/anat/sub-XX_T1w.nii.gz, derivatives/acapulco/"
                             "sub-XX/..., optional derivatives/manual/sub-XX/anat/sub-XX_desc-cerebellum_mask.nii.gz")
    parser.add_argument("-o", "--output", default=None,
                        help="output dataset folder (default: $nnUNet_raw/DatasetXXX_SCA2Cohort)")
    parser.add_argument("-d", "--dataset-id", type=dataset_id, default=502, help="nnU-Net dataset id (default 502)")
    parser.add_argument("--split", choices=("none", "cv5"), default="none",
                        help="none: nnU-Net's own folds; cv5: five folds stratified by group (splits_final.json)")
    parser.add_argument("--seed", type=nonnegative_int, default=12345, help="seed of the split (default 12345)")
    parser.add_argument("--preprocess", action="store_true",
                        help="run the paper's MRI preprocessing per case (N4, MNI, equalize, crop)")
    parser.add_argument("--skull-strip", action="store_true",
                        help="with --preprocess: strip the skull (the paper did not for Data2)")
    parser.add_argument("-np", "--num-processes", type=positive_int, default=1, help="cases converted in parallel")
    add_overwrite_argument(parser)


def run(args: argparse.Namespace) -> int:
    from nnunet_ataxia.dataset_conversion.Dataset502_SCA2Cohort import convert_sca2

    out = convert_sca2(args.input, args.output, args.dataset_id, args.split, args.seed, args.preprocess,
                       args.skull_strip, args.num_processes, overwrite=args.overwrite)
    print(f"wrote {out}")
    return 0
