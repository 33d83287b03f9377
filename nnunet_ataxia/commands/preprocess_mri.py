"""``nnunet-ataxia preprocess-mri``: the paper's MRI preprocessing on one T1 file or a folder of T1 files.

Outputs and case ids: :mod:`nnunet_ataxia.preprocessing.mri_batch`.
"""
from __future__ import annotations

import argparse

from nnunet_ataxia.io.arguments import nonnegative_int, positive_float, positive_int
from nnunet_ataxia.io.output_folders import add_overwrite_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", "--input", required=True, help="a T1 image or a folder of T1 images (.nii.gz, ...)")
    parser.add_argument("-o", "--output", required=True,
                        help="output folder: <case>_0000.nii.gz, labels/<case>.nii.gz, transforms/<case>/ (written "
                             "atomically; an existing folder must be an earlier preprocess-mri output)")
    parser.add_argument("--labels", default=None,
                        help="optional folder of label maps named like the images (a '_0000' channel suffix of the "
                             "image is dropped when looking for its label); resampled with nearest neighbour")
    parser.add_argument("--no-skull-strip", action="store_true", help="keep the skull (the paper's Data2 setting)")
    parser.add_argument("--no-crop", action="store_true", help="keep the full 1 mm MNI grid instead of 128x128x96")
    parser.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the registration's metric sampling")
    parser.add_argument("--registration-template-mm", type=positive_float, default=1.0,
                        help="register against the template down-sampled to this spacing (default 1 = full "
                             "resolution; 2-3 is faster and coarser; the output grid stays 1 mm)")
    parser.add_argument("-np", "--num-processes", type=positive_int, default=1, help="cases processed in parallel")
    add_overwrite_argument(parser)


def run(args: argparse.Namespace) -> int:
    from nnunet_ataxia.preprocessing.mri_batch import preprocess_t1_images

    n = preprocess_t1_images(args.input, args.output, labels_dir=args.labels, skull_strip=not args.no_skull_strip,
                             crop=not args.no_crop, seed=args.seed,
                             registration_template_mm=args.registration_template_mm,
                             num_processes=args.num_processes, overwrite=args.overwrite)
    print(f"wrote {n} case(s) to {args.output}")
    return 0
