"""``nnunet-ataxia convert-wmh``: T1 + FLAIR (or FLAIR-only) + WMH data -> nnU-Net raw dataset with the eight
location channels."""
from __future__ import annotations

import argparse

from nnunet_ataxia.io.arguments import at_least, nonnegative_float, nonnegative_int, positive_float
from nnunet_ataxia.io.output_folders import add_overwrite_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``convert-wmh``."""
    parser.add_argument("-i", "--input", required=True,
                        help="training cases: <case>/{T1,FLAIR,wmh}.nii.gz (plain; T1 optional) or "
                             "<site>/[<scanner>/]<id>/{orig,pre}/{T1,FLAIR}.nii.gz + wmh.nii.gz (MICCAI WMH 2017)")
    parser.add_argument("-t", "--test-input", default=None,
                        help="test cases in the same layout -> imagesTs/labelsTs (never used for the WMH prior)")
    parser.add_argument("-o", "--output", default=None,
                        help="dataset folder (default: $nnUNet_raw/Dataset<ID>_<NAME>)")
    parser.add_argument("-d", "--dataset-id", type=int, default=504, help="nnU-Net dataset id (default 504)")
    parser.add_argument("--name", default="WMH", help="dataset name (default WMH)")
    parser.add_argument("--layout", choices=("auto", "plain", "miccai"), default="auto")
    parser.add_argument("--miccai-images", choices=("pre", "orig"), default="pre",
                        help="MICCAI layout: use pre/ (bias-corrected, T1 already on the FLAIR grid) or orig/ "
                             "(full pipeline: N4 and rigid T1->FLAIR registration)")
    parser.add_argument("--prior-fold", type=nonnegative_int, default=None,
                        help="build the WMH prior without this fold's validation cases (nnU-Net's default split, "
                             "written to splits_final.json); default: all training cases")
    parser.add_argument("--num-folds", type=at_least(2), default=5,
                        help="folds of the cross-validation split and of the prior's cross-fitting (default 5)")
    parser.add_argument("--prior", choices=("crossfit", "pooled"), default="crossfit",
                        help="crossfit (default): each training case's WMH prior is built from the other folds' "
                             "cases, never from its own labels; validation and test cases get the prior of all "
                             "training cases. pooled: every case gets the prior of all training cases (a training "
                             "case's own lesions are then in its input)")
    parser.add_argument("--prior-file", default=None,
                        help="a fixed WMH prior in MNI space (probabilities in [0, 1]) for every case instead; no "
                             "label of this dataset enters it")
    parser.add_argument("--split", choices=("cv", "paper"), default="cv",
                        help="cv (default): nnU-Net's cross-validation. paper: a fixed seeded training/validation/"
                             "test split of the input cases in the paper's 378/42/46 proportions (test cases -> "
                             "imagesTs/labelsTs; training/validation -> fold 0 of splits_final.json: train with "
                             "nnUNetv2_train ... 0)")
    parser.add_argument("--split-seed", type=int, default=12345, help="seed of --split paper (default 12345)")
    parser.add_argument("--no-n4", action="store_true", help="skip N4 bias-field correction")
    parser.add_argument("--mni-spacing", type=positive_float, default=1.0,
                        help="resample the MNI template to this spacing (mm) for the MNI registration "
                             "(2 is about 8x faster)")
    parser.add_argument("--registration", choices=("bspline", "affine"), default="bspline",
                        help="MNI registration for the location features and the WMH prior: affine + B-spline "
                             "(default; non-linear, as in the paper) or affine only")
    parser.add_argument("--flair-only", action="store_true",
                        help="ignore T1 images: FLAIR + location channels only (automatic when no case has a T1)")
    parser.add_argument("--qc", action="store_true",
                        help="also write qc/<case>.png: the FLAIR and its eight location channels in three planes")
    parser.add_argument("--prior-sigma", type=nonnegative_float, default=3.0,
                        help="smoothing of the WMH prior (mm, >= 0; 0 = none)")
    parser.add_argument("-np", "--num-processes", type=at_least(1), default=1, help="cases converted in parallel")
    parser.add_argument("--no-verify", action="store_true", help="skip nnU-Net's verify_dataset_integrity")
    add_overwrite_argument(parser)


def run(args: argparse.Namespace) -> int:
    """Run the conversion; print the dataset folder."""
    from nnunet_ataxia.dataset_conversion.Dataset504_WMH import convert_wmh_dataset
    from nnunet_ataxia.preprocessing.wmh_pipeline import WMHOptions

    options = WMHOptions(n4=not args.no_n4, mni_spacing_mm=args.mni_spacing, prior_sigma_mm=args.prior_sigma,
                         registration=args.registration)
    out = convert_wmh_dataset(args.input, args.output, test_dir=args.test_input, dataset_id=args.dataset_id,
                              dataset_name=args.name, layout=args.layout, miccai_images=args.miccai_images,
                              prior_fold=args.prior_fold, num_folds=args.num_folds,
                              num_processes=args.num_processes, options=options, verify=not args.no_verify,
                              overwrite=args.overwrite, flair_only=args.flair_only, qc=args.qc, prior=args.prior,
                              prior_file=args.prior_file, split=args.split, split_seed=args.split_seed)
    print(out)
    return 0
