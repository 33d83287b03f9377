"""``nnunet-ataxia wmh-stats``: threshold sweep, ROC/AUC and patient-level bootstrap comparison of WMH methods."""
from __future__ import annotations

import argparse

from nnunet_ataxia.io.output_folders import add_overwrite_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--test", action="append", required=True, metavar="NAME=DIR",
                        help="test probability folder (.npz) of one method; repeat per method")
    parser.add_argument("--val", action="append", default=[], metavar="NAME=DIR[,DIR...]",
                        help="validation probability folders of a method (globs merged, e.g. fold_*/validation); "
                             "its Dice-maximizing threshold is applied to the test set (default threshold 0.5)")
    parser.add_argument("--ref", nargs="+", required=True, help="reference label folders (2 = ignore)")
    parser.add_argument("--out", "-o", required=True,
                        help="output folder (written atomically; an existing folder must be an earlier wmh-stats "
                             "output)")
    parser.add_argument("--brain-masks", nargs="*", default=[], help="brain-mask folder(s) <case>.nii.gz")
    parser.add_argument("--images", nargs="*", default=[],
                        help="nnU-Net image folder(s): brain mask = location channels _0002.._0009 > 0")
    parser.add_argument("--n-bootstrap", type=int, default=1000, help="bootstrap resamples (>= 100)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-thresholds", type=int, default=101)
    parser.add_argument("--criterion", choices=("pooled", "mean"), default="pooled",
                        help="Dice of a set of cases: overall (pooled voxels, the paper) or mean per case")
    parser.add_argument("--max-roc-voxels", type=int, default=5_000_000,
                        help="seeded subsample of the pooled voxels used for ROC curves")
    add_overwrite_argument(parser)


def _named(specs, default, option):
    """``NAME=DIR`` options -> {name: folders}; a name given twice is refused (it would silently drop one)."""
    from nnunet_ataxia.errors import InputError
    from nnunet_ataxia.io.cases import expand_folders, parse_named

    out: dict = {}
    for i, spec in enumerate(specs):
        name, folder = parse_named(spec, default.format(i=i + 1))
        if name in out:
            raise InputError(f"{folder}: {option} method name '{name}' given twice; give each method its own name")
        out[name] = expand_folders([folder])
    return out


def run(args: argparse.Namespace) -> int:
    from nnunet_ataxia.evaluation.wmh_comparison import compare_wmh_methods

    result = compare_wmh_methods(_named(args.test, "method{i}", "--test"), args.out, ref=args.ref,
                                 vals=_named(args.val, "", "--val"), brain_masks=args.brain_masks,
                                 images=args.images, n_bootstrap=args.n_bootstrap, seed=args.seed,
                                 n_thresholds=args.n_thresholds, criterion=args.criterion,
                                 max_roc_voxels=args.max_roc_voxels, overwrite=args.overwrite)
    import sys

    for caveat in result.get("caveats", []):
        print(f"wmh-stats: caveat: {caveat}", file=sys.stderr)
    print(f"WMH statistics of {len(result['methods'])} method(s) -> {args.out}")
    return 0
