"""Table 4 of Cabeza-Ruiz et al.: whole-cerebellum volumes, ground truth vs model vs ACAPULCO, by group, with paired
statistics, a Bland-Altman plot and a scatter plot (``volumes.csv``, ``volumes_by_group.csv``, ``volumes_summary.json``,
``volumes_table.md``)."""
from __future__ import annotations

import os
from collections.abc import Sequence

import pandas as pd

from nnunet_ataxia.errors import InputError
from nnunet_ataxia.evaluation.plots import bland_altman_plot, scatter_plot
from nnunet_ataxia.evaluation.segmentation_eval import write_json
from nnunet_ataxia.evaluation.volumes import (
    acapulco_case_volume,
    case_volumes,
    compare_volumes,
    group_summaries,
    paired_statistics,
    read_volumes_csv,
    volumes_table_markdown,
)
from nnunet_ataxia.io.cases import list_cases, load_dataset_labels
from nnunet_ataxia.io.files import check_case_sets, dataframe_markdown, read_table, warn
from nnunet_ataxia.io.output_folders import check_output_folder, output_folder

__all__ = ["LEGACY_OUTPUT_FILES", "volume_comparison"]

#: files that identify an output folder of ``compare-volumes`` written before the marker file existed
LEGACY_OUTPUT_FILES = ("volumes.csv", "volumes_summary.json")


def _groups_and_subjects(path):
    if not path:
        return {}, {}
    df = read_table(path, what="participants table", sep="\t", required=("case_id", "group"), id_column="case_id",
                    group_column="group")
    subjects = dict(zip(df["case_id"], df["subject"], strict=False)) if "subject" in df.columns else {}
    return dict(zip(df["case_id"], df["group"], strict=False)), subjects


def _mask_rows(ref, pred, labels, dataset_json, acapulco, acapulco_transform, transform_direction, groups,
               subjects, sources) -> list[dict]:
    if labels is None and dataset_json:
        structures, _, _ = load_dataset_labels(dataset_json)
        if "cerebellum" not in structures:
            raise InputError(f"{dataset_json}: no label named 'cerebellum'; pass --labels")
        labels = list(structures["cerebellum"])
    refs = list_cases([ref])
    preds = list_cases([pred])
    if not refs:
        raise InputError(f"{ref}: no ground-truth masks (.nii.gz) in this folder")
    if not preds:
        raise InputError(f"{pred}: no prediction images found")
    check_case_sets(refs, preds, f"the ground truth in {ref}", pred, what="subject")
    rows = []
    for case in sorted(preds):
        gt, model = case_volumes(refs[case], preds[case], labels)
        row = {"case_id": case, "group": groups.get(case, ""), "ground_truth": gt, "model": model}
        if acapulco:
            row["acapulco"], sources[case] = acapulco_case_volume(
                acapulco, case, subjects.get(case), acapulco_transform, transform_direction)
        rows.append(row)
    return rows


def volume_comparison(out: str | os.PathLike, *, volumes_csv: str | None = None, ref: str | None = None,
                      pred: str | None = None, labels: Sequence[int] | None = None, dataset_json: str | None = None,
                      acapulco: str | None = None, acapulco_transform: str | None = None,
                      transform_direction: str = "mni_to_native", participants: str | None = None,
                      model_name: str = "model", overwrite: bool = False) -> pd.DataFrame:
    """Compare whole-cerebellum volumes (native mm³) of a model, the ground truth and ACAPULCO, written atomically.

    Args:
        out: the output folder (an existing one must be an earlier ``compare-volumes`` output, or ``overwrite``).
        volumes_csv: already-computed volumes (``case_id, group, ground_truth, model[, acapulco]``), or
        ref, pred: native-space ground-truth and model masks ``<case>.nii.gz``;
        labels: label values forming the cerebellum (default: ``cerebellum`` of ``dataset_json``, else non-zero).
        dataset_json: an nnU-Net dataset.json naming the ``cerebellum`` label.
        acapulco: folder of ACAPULCO outputs (``<case>/`` subfolders or files named ``<case>_...``).
        acapulco_transform, transform_direction: the MNI<->native transform for MNI-space parcellations.
        participants: ``participants.tsv`` (``case_id``, ``group``, ``subject``).
        model_name: the model's column name in the table (e.g. ``WDA``).
        overwrite: replace an existing folder that is not an earlier output of this command.

    Returns:
        The per-subject table written as ``volumes.csv``.

    Example:
        >>> volume_comparison("table4/", ref="native_gt/", pred="native_pred/",
        ...                   participants="participants.tsv")  # doctest: +SKIP
    """
    transform_folder = None if not acapulco_transform or "{case}" in acapulco_transform \
        else acapulco_transform
    guard = dict(inputs=[volumes_csv, ref, pred, dataset_json, acapulco, transform_folder,
                         participants], overwrite=overwrite, recognize=LEGACY_OUTPUT_FILES)
    check_output_folder(out, "compare-volumes", **guard)
    groups, subjects = _groups_and_subjects(participants)
    sources: dict[str, str] = {}
    if volumes_csv:
        df = read_volumes_csv(volumes_csv)
        if groups:
            df["group"] = [groups.get(c, g) for c, g in zip(df["case_id"], df["group"], strict=False)]
    else:
        if not (ref and pred):
            raise InputError("compare-volumes: give --volumes-csv, or --ref and --pred (native-space masks)")
        df = pd.DataFrame(_mask_rows(ref, pred, labels, dataset_json, acapulco, acapulco_transform,
                                     transform_direction, groups, subjects, sources))
    if df.empty:
        raise InputError("compare-volumes: no subject to compare")

    table = compare_volumes(df)
    summary = group_summaries(table)
    stats = paired_statistics(table)
    stats["acapulco_source"] = sources
    stats["model_name"] = model_name
    flagged = table[table["implausible"] != ""]
    stats["implausible"] = dict(zip(flagged["case_id"], flagged["implausible"], strict=False))
    without_group = sorted(c for c, g in zip(table["case_id"], table["group"], strict=False)
                           if c not in groups and not g) if participants else []
    stats["cases_without_group"] = without_group
    methods = {model_name: table["model"].to_numpy()}
    if "acapulco" in table.columns:
        methods["ACAPULCO"] = table["acapulco"].to_numpy()

    with output_folder(out, "compare-volumes", **guard) as tmp:
        table.to_csv(tmp / "volumes.csv", index=False)
        summary.to_csv(tmp / "volumes_by_group.csv", index=False)
        write_json({"statistics": stats, "by_group": summary.to_dict(orient="records")}, tmp / "volumes_summary.json")
        md = ["## Whole-cerebellum volumes (native space, mm³)", "",
              volumes_table_markdown(table, model_name), "", "### By group", "",
              dataframe_markdown(summary.rename(columns=lambda c: c.replace("model", model_name).replace(
                  "acapulco", "ACAPULCO").replace("ground_truth", "GT"))), ""]
        if "closer" in table.columns:
            c = stats["closer_counts"]
            md += [f"{model_name} is closer to the ground truth on {c['model']} of {len(table)} subjects, "
                   f"ACAPULCO on {c['acapulco']} (ties: {c['tie']}).", ""]
        if without_group:
            md += [f"Not in {participants} (group 'unknown': only in the means over all): "
                   f"{', '.join(without_group)}.", ""]
        (tmp / "volumes_table.md").write_text("\n".join(md))
        bland_altman_plot(table["ground_truth"], methods, tmp / "bland_altman.png", labels=list(table["case_id"]))
        scatter_plot(table["ground_truth"], methods, tmp / "scatter.png", groups=list(table["group"]))
    if len(flagged):
        warn(f"{out}/volumes.csv: {len(flagged)} of {len(table)} subject(s) with a volume outside the plausible "
             f"whole-cerebellum range (column 'implausible'): " +
             "; ".join(f"{c} ({r})" for c, r in list(stats["implausible"].items())[:5]))
    if without_group:
        warn(f"{participants}: {len(without_group)} subject(s) not listed, so in no group's mean (group 'unknown'): "
             f"{', '.join(without_group[:5])}{' ...' if len(without_group) > 5 else ''}")
    return table

