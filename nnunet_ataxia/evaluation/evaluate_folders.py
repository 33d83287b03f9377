"""``evaluate`` on folders: every method's predictions against the references, per case and per group, written as
nnU-Net-style ``summary.json``, ``per_case.csv`` and a Table-2-style ``table.md``."""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from nnunet_ataxia.errors import InputError
from nnunet_ataxia.evaluation.segmentation_eval import (
    evaluate_case,
    extra_metrics_markdown,
    match_cases,
    paper_table_markdown,
    per_case_rows,
    summarize,
    write_json,
)
from nnunet_ataxia.io.cases import list_cases, load_dataset_labels
from nnunet_ataxia.io.files import warn
from nnunet_ataxia.io.output_folders import check_output_folder, output_folder
from nnunet_ataxia.io.participants import read_participants

__all__ = ["LEGACY_OUTPUT_FILES", "evaluate_folders"]

#: files that identify an output folder of ``evaluate`` written before the marker file existed
LEGACY_OUTPUT_FILES = ("summary.json", "table.md", "per_case.csv")


def evaluate_folders(predictions: dict[str, Sequence[Path]], ref: str | os.PathLike, dataset_json: str | os.PathLike,
                     out: str | os.PathLike, *, brain_masks_folder: str | None = None, participants: str | None = None,
                     structures_to_evaluate: Sequence[str] | None = None, subset: bool = False, hd95: bool = True,
                     lesion_metrics: bool = False, overwrite: bool = False) -> dict[str, int]:
    """Evaluate one or more methods' prediction folders against a reference folder, written atomically to ``out``.

    Args:
        predictions: method name -> its prediction folders (merged, e.g. the five ``fold_*/validation``).
        ref: the reference folder (``labelsTr``/``labelsTs``).
        dataset_json: the dataset.json (labels, regions, ignore label).
        out: the output folder (an existing one must be an earlier ``evaluate`` output, or ``overwrite``).
        brain_masks_folder: optional ``<case>.nii.gz`` masks: only voxels inside count.
        participants: optional ``participants.tsv`` (case id, group) for per-group means.
        structures_to_evaluate: dataset.json label names to evaluate (default: every foreground structure).
        subset: evaluate only the predicted cases (default: every reference case must be predicted).
        hd95: compute the 95th percentile Hausdorff distance.
        lesion_metrics: also the WMH challenge's lesion-wise recall/F1 and AVD (automatic for a label ``wmh``).
        overwrite: replace an existing folder that is not an earlier output of this command.

    Returns:
        The number of cases evaluated per method.

    Example:
        >>> evaluate_folders({"M2": [Path("results/fold_0/validation")]}, "labelsTr", "dataset.json",
        ...                  "eval/")  # doctest: +SKIP
        {'M2': 6}
    """
    inputs = [f for fs in predictions.values() for f in fs] + [ref, dataset_json, brain_masks_folder, participants]
    guard = dict(inputs=inputs, overwrite=overwrite, recognize=LEGACY_OUTPUT_FILES)
    check_output_folder(out, "evaluate", **guard)  # before reading anything
    structures, ignore, allowed = load_dataset_labels(dataset_json)
    if structures_to_evaluate:
        unknown = [s for s in structures_to_evaluate if s not in structures]
        if unknown:
            raise InputError(f"{dataset_json}: structure(s) {unknown} not among {sorted(structures)}")
        structures = {s: structures[s] for s in structures_to_evaluate}
    lesion = lesion_metrics or any(s.lower() == "wmh" for s in structures)
    groups = read_participants(participants)
    brain_masks = list_cases([brain_masks_folder]) if brain_masks_folder else None

    methods = {name: match_cases(ref, folders, require_all=not subset) for name, folders in predictions.items()}

    summaries, rows = {}, []
    for name, pairs in methods.items():
        results = []
        for case, ref_file, pred_file in tqdm(pairs, desc=f"evaluate {name}", disable=None):
            mask = None
            if brain_masks is not None:
                if case not in brain_masks:
                    raise InputError(f"{case}: no brain mask in {brain_masks_folder}")
                mask = brain_masks[case]
            results.append(evaluate_case(case, ref_file, pred_file, structures, ignore, allowed, mask,
                                         compute_hd95=hd95, lesion_metrics=lesion))
        summaries[name] = summarize(results, groups)
        rows += per_case_rows(name, results, groups)

    with output_folder(out, "evaluate", **guard) as tmp:
        pd.DataFrame(rows).to_csv(tmp / "per_case.csv", index=False)
        write_json({"methods": list(summaries), "structures": {k: list(v) for k, v in structures.items()},
                    "ignore_label": ignore, "brain_masks": brain_masks_folder, "per_method": summaries},
                   tmp / "summary.json")
        counts = ", ".join(f"{name} {s['n']}" for name, s in summaries.items())
        parts = [f"## Segmentation metrics (mean over cases: {counts}; (k/n): defined on k of n cases only)", "",
                 paper_table_markdown(summaries), "", extra_metrics_markdown(summaries), ""]
        if groups:
            present = sorted({g for s in summaries.values() for g in s.get("mean_per_group", {})})
            for g in present:
                n = next(iter(summaries.values())).get("n_per_group", {}).get(g, 0)
                parts += [f"### Group: {g} (n = {n})", "", paper_table_markdown(summaries, group=g), ""]
        without_group = sorted({c for s in summaries.values() for c in s.get("cases_without_group", [])})
        if without_group:
            parts += [f"Not in {participants} (group 'unknown'): {', '.join(without_group)}.", ""]
        (tmp / "table.md").write_text("\n".join(parts))
    if groups and without_group:
        warn(f"{participants}: {len(without_group)} evaluated case(s) not listed, so in no group's mean (group "
             f"'unknown'): {', '.join(without_group[:5])}{' ...' if len(without_group) > 5 else ''}")
    return {name: len(pairs) for name, pairs in methods.items()}
