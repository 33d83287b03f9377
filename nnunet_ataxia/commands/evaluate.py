"""``nnunet-ataxia evaluate``: per-case metrics, summary.json and a Table-2-style Markdown table."""
from __future__ import annotations

import argparse

from nnunet_ataxia.utils.output_folders import add_overwrite_argument

#: files that identify an output folder of this command written before the marker file existed
LEGACY_OUTPUT_FILES = ("summary.json", "table.md", "per_case.csv")


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
    from pathlib import Path

    import pandas as pd
    from tqdm import tqdm

    from nnunet_ataxia.errors import InputError
    from nnunet_ataxia.evaluation.io import expand_folders, list_cases, load_dataset_labels, parse_named, \
        read_participants
    from nnunet_ataxia.evaluation.segmentation_eval import evaluate_case, extra_metrics_markdown, match_cases, \
        paper_table_markdown, per_case_rows, summarize, write_json
    from nnunet_ataxia.utils.output_folders import check_output_folder, output_folder

    specs = [parse_named(spec, f"method{i + 1}" if len(args.pred) > 1 else "nnU-Net")
             for i, spec in enumerate(args.pred)]
    pred_folders = {name: expand_folders([folders]) for name, folders in specs}
    inputs = [f for fs in pred_folders.values() for f in fs] + [args.ref, args.dataset_json, args.brain_masks,
                                                                args.participants]
    guard = dict(inputs=inputs, overwrite=args.overwrite, recognize=LEGACY_OUTPUT_FILES)
    check_output_folder(args.out, "evaluate", **guard)  # before reading anything
    structures, ignore, allowed = load_dataset_labels(args.dataset_json)
    if args.structures:
        unknown = [s for s in args.structures if s not in structures]
        if unknown:
            raise InputError(f"{args.dataset_json}: structure(s) {unknown} not among {sorted(structures)}")
        structures = {s: structures[s] for s in args.structures}
    lesion = args.lesion_metrics or any(s.lower() == "wmh" for s in structures)
    groups = read_participants(args.participants)
    brain_masks = list_cases([args.brain_masks]) if args.brain_masks else None

    methods: dict[str, list] = {}
    for (name, folders), spec in zip(specs, args.pred):
        if name in methods:
            raise InputError(f"{spec}: method name '{name}' given twice")
        methods[name] = match_cases(args.ref, pred_folders[name], require_all=not args.subset)

    summaries, rows = {}, []
    for name, pairs in methods.items():
        results = []
        for case, ref, pred in tqdm(pairs, desc=f"evaluate {name}", disable=None):
            mask = None
            if brain_masks is not None:
                if case not in brain_masks:
                    raise InputError(f"{case}: no brain mask in {args.brain_masks}")
                mask = brain_masks[case]
            results.append(evaluate_case(case, ref, pred, structures, ignore, allowed, mask,
                                         compute_hd95=not args.no_hd95, lesion_metrics=lesion))
        summaries[name] = summarize(results, groups)
        rows += per_case_rows(name, results, groups)

    with output_folder(args.out, "evaluate", **guard) as tmp:
        pd.DataFrame(rows).to_csv(tmp / "per_case.csv", index=False)
        write_json({"methods": list(summaries), "structures": {k: list(v) for k, v in structures.items()},
                    "ignore_label": ignore, "brain_masks": args.brain_masks, "per_method": summaries},
                   tmp / "summary.json")
        parts = ["## Segmentation metrics (mean over cases)", "", paper_table_markdown(summaries), "",
                 extra_metrics_markdown(summaries), ""]
        if groups:
            present = sorted({g for s in summaries.values() for g in s.get("mean_per_group", {})})
            for g in present:
                n = next(iter(summaries.values())).get("n_per_group", {}).get(g, 0)
                parts += [f"### Group: {g} (n = {n})", "", paper_table_markdown(summaries, group=g), ""]
        (tmp / "table.md").write_text("\n".join(parts))
    print(f"evaluated {', '.join(f'{n} ({len(p)} cases)' for n, p in methods.items())} -> {Path(args.out)}")
    return 0
