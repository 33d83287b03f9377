"""``nnunet-ataxia wmh-threshold``: Dice-maximizing threshold on validation probabilities, applied to a test set."""
from __future__ import annotations

import argparse

from nnunet_ataxia.io.output_folders import add_overwrite_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--val", nargs="+",
                        help="validation probability folders (.npz from --npz / --save_probabilities); globs "
                             "such as 'nnUNet_results/.../fold_*/validation' are merged")
    parser.add_argument("--ref", nargs="+", help="reference label folders (labelsTr, labelsTs); 2 = ignore")
    parser.add_argument("--threshold", type=float, help="use this threshold instead of searching one on --val")
    parser.add_argument("--test", required=True, help="test probability folder (nnUNetv2_predict "
                                                      "--save_probabilities output)")
    parser.add_argument("--out", "-o", required=True,
                        help="output folder for <case>.nii.gz masks (written atomically; an existing folder must be "
                             "an earlier wmh-threshold output)")
    parser.add_argument("--brain-masks", nargs="*", default=[], help="brain-mask folder(s) <case>.nii.gz; only "
                                                                     "voxels inside count and are labelled")
    parser.add_argument("--images", nargs="*", default=[],
                        help="nnU-Net image folder(s): brain mask = location channels _0002.._0009 > 0")
    parser.add_argument("--reference-images", help="folder with <case>.nii.gz or <case>_0000.nii.gz giving the "
                                                   "output geometry when the test folder holds no .nii.gz/.pkl")
    parser.add_argument("--n-thresholds", type=int, default=101, help="thresholds 0..1 searched (default 101)")
    parser.add_argument("--criterion", choices=("pooled", "mean"), default="pooled",
                        help="maximize the overall (pooled) Dice, as the paper, or the mean per-case Dice")
    add_overwrite_argument(parser)


def run(args: argparse.Namespace) -> int:
    from nnunet_ataxia.evaluation.wmh_threshold import apply_wmh_threshold

    info = apply_wmh_threshold(args.test, args.out, threshold=args.threshold, val=args.val or (), ref=args.ref or (),
                               brain_masks=args.brain_masks, images=args.images,
                               reference_images=args.reference_images, n_thresholds=args.n_thresholds,
                               criterion=args.criterion, overwrite=args.overwrite)
    print(f"threshold {info['threshold']:.3f} applied to {len(info['test_cases'])} test case(s) -> {args.out}")
    return 0
