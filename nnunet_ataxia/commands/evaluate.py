"""``nnunet-ataxia evaluate``: per-case metrics, summary.json and a Table-2-style Markdown table."""
from __future__ import annotations

import argparse

from nnunet_ataxia.io.output_folders import add_overwrite_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pred", "-p", action="append", required=True, metavar="[NAME=]DIR[,DIR...]",
                        help="prediction folder(s) of one method; globs and comma lists are merged (e.g. "
                             "'M2=nnUNet_results/.../fold_*/validation'). Repeat for several methods side by side.")
    parser.add_argument("--ref", "-r", required=True, help="reference folder (e.g. labelsTr or labelsTs)")
    parser.add_argument("--dataset-json", "-d", required=True, help="the dataset.json (labels, regions, ignore)")
    parser.add_argument("--out", "-o", required=True,
                        help="output folder (written atomically; an existing folder must be an earlier evaluate "
                             "output; never a prediction or reference folder)")
    parser.add_argument("--brain-masks", help="optional folder <case>.nii.gz: only voxels inside count")
    parser.add_argument("--participants", help="optional participants.tsv (case_id, group) for per-group means")
    parser.add_argument("--structures", nargs="+", help="structures (dataset.json label names) to evaluate")
    parser.add_argument("--subset", action="store_true",
                        help="evaluate only the predicted cases (default: every reference case must be predicted)")
    parser.add_argument("--no-hd95", action="store_true", help="skip the 95th percentile Hausdorff distance")
    parser.add_argument("--lesion-metrics", action="store_true",
                        help="also the WMH challenge lesion-wise recall/F1 and AVD (automatic for a label 'wmh')")
    add_overwrite_argument(parser)


def run(args: argparse.Namespace) -> int:
    from nnunet_ataxia.errors import InputError
    from nnunet_ataxia.evaluation.evaluate_folders import evaluate_folders
    from nnunet_ataxia.io.cases import expand_folders, parse_named

    predictions: dict = {}
    for i, spec in enumerate(args.pred):
        name, folders = parse_named(spec, f"method{i + 1}" if len(args.pred) > 1 else "nnU-Net")
        if name in predictions:
            raise InputError(f"{spec}: method name '{name}' given twice")
        predictions[name] = expand_folders([folders])
    counts = evaluate_folders(predictions, args.ref, args.dataset_json, args.out, brain_masks_folder=args.brain_masks,
                              participants=args.participants, structures_to_evaluate=args.structures,
                              subset=args.subset, hd95=not args.no_hd95, lesion_metrics=args.lesion_metrics,
                              overwrite=args.overwrite)
    print(f"evaluated {', '.join(f'{n} ({c} cases)' for n, c in counts.items())} -> {args.out}")
    return 0
