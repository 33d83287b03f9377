"""``nnunet-ataxia plan``: fingerprint, plan with :class:`FixedPatch128Planner` and preprocess
(:func:`nnunet_ataxia.planners.plan_and_preprocess.plan_and_preprocess_fixed`)."""
from __future__ import annotations

import argparse

from nnunet_ataxia.io.arguments import positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-d", "--dataset", required=True, nargs="+",
                        help="dataset id(s) or name(s) in $nnUNet_raw, e.g. 501")
    parser.add_argument("-c", "--configurations", nargs="+", default=["3d_fullres"],
                        help="configurations to preprocess (default: 3d_fullres; the fixed patch applies to it)")
    parser.add_argument("-np", "--num-processes", type=positive_int, default=2,
                        help="processes for fingerprint/preprocessing")
    parser.add_argument("--no-preprocess", action="store_true", help="only fingerprint and plan")
    parser.add_argument("--no-integrity-check", action="store_true",
                        help="skip nnU-Net's dataset integrity check and the image checks (finite, not constant; "
                             "both on by default)")
    parser.add_argument("--clean", action="store_true", help="recompute the fingerprint even if it exists")


def run(args: argparse.Namespace) -> int:
    from nnunet_ataxia.planners.plan_and_preprocess import plan_and_preprocess_fixed

    for dataset in args.dataset:
        plans = plan_and_preprocess_fixed(dataset, args.configurations, args.num_processes,
                                          preprocess=not args.no_preprocess,
                                          check_integrity=not args.no_integrity_check, clean=args.clean)
        print(f"planned {dataset} with {plans}; train with: "
              f"nnUNetv2_train {dataset} 3d_fullres FOLD -p {plans} -tr M2InceptionTrainer")
    return 0
