"""Evaluate nnU-Net prediction folders against references: per-case metrics, summary.json, paper-style tables."""
from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from nnunet_ataxia.errors import InputError
from nnunet_ataxia.evaluation.metrics import structure_metrics, valid_voxels
from nnunet_ataxia.io.cases import IMAGE_ENDINGS, list_cases
from nnunet_ataxia.io.files import check_case_sets, dataframe_markdown
from nnunet_ataxia.io.images import check_same_geometry, read_label_map

# the columns of Table 2 of Cabeza-Ruiz et al. and the metric keys behind them
PAPER_COLUMNS: tuple[tuple[str, str], ...] = (("DSC", "Dice"), ("JI", "Jaccard"), ("SP", "Specificity"),
                                              ("SN", "Sensitivity"))


def evaluate_case(case_id: str, reference_file: str | os.PathLike, prediction_file: str | os.PathLike,
                  structures: Mapping[str, Sequence[int]], ignore_label: int | None = None,
                  allowed_labels: set[int] | None = None, brain_mask_file: str | os.PathLike | None = None,
                  compute_hd95: bool = True, lesion_metrics: bool = False) -> dict:
    """Metrics of every structure of one case.

    Args:
        case_id: the case (named in error messages).
        reference_file, prediction_file: label maps on the same grid.
        structures: structure name -> label values (union for a region).
        ignore_label: reference voxels with this value are left out.
        allowed_labels: label values that may occur (from dataset.json); others raise InputError.
        brain_mask_file: optional mask; only voxels inside count.
        compute_hd95, lesion_metrics: see :func:`structure_metrics`.

    Returns:
        ``{"case_id", "reference_file", "prediction_file", "metrics": {structure: {metric: value}}}``.

    Raises:
        InputError: geometry mismatch or unknown label value, naming the case.
    """
    allowed = None if allowed_labels is None else set(allowed_labels)
    ref, ref_geom = read_label_map(reference_file, allowed, "reference label map")
    pred, pred_geom = read_label_map(prediction_file, allowed, "prediction")
    check_same_geometry(ref_geom, pred_geom, reference_file, prediction_file, "prediction")
    brain = None
    if brain_mask_file is not None:
        brain, brain_geom = read_label_map(brain_mask_file, None, "brain mask")
        check_same_geometry(ref_geom, brain_geom, reference_file, brain_mask_file, "brain mask")
    valid = valid_voxels(ref, brain, ignore_label)
    metrics = {}
    for name, values in structures.items():
        metrics[name] = structure_metrics(np.isin(ref, values), np.isin(pred, values), ref_geom.array_spacing,
                                          valid=valid, compute_hd95=compute_hd95, lesion_metrics=lesion_metrics)
    return {"case_id": case_id, "reference_file": str(reference_file), "prediction_file": str(prediction_file),
            "metrics": metrics}


def match_cases(reference_folder: str | os.PathLike, prediction_folders: Sequence[str | os.PathLike],
                require_all: bool = True) -> list[tuple[str, Path, Path]]:
    """Pair prediction files (over merged folders) with reference files by case id.

    A prediction without a reference is always an error; a reference without a prediction is an error when
    ``require_all`` (nnU-Net's ``chill=False``).
    """
    refs = list_cases([reference_folder])
    preds = list_cases(prediction_folders)
    where = ", ".join(map(str, prediction_folders))
    if not refs:
        raise InputError(f"{reference_folder}: no reference label maps ({', '.join(IMAGE_ENDINGS)}) in this folder")
    if not preds:
        raise InputError(f"{where}: no prediction images found")
    check_case_sets(refs, preds, f"the references in {reference_folder}", where, allow_missing=True)
    missing = sorted(set(refs) - set(preds))
    if missing and require_all:
        raise InputError(f"{where}: no prediction for reference case(s) {', '.join(missing[:5])} of "
                         f"{reference_folder} ({len(missing)} of {len(refs)} missing; use --subset to evaluate only "
                         f"the predicted cases)")
    return [(c, refs[c], preds[c]) for c in sorted(preds)]


def _nanmean(values: Sequence[float]) -> float:
    arr = np.asarray([v for v in values if v is not None], dtype=np.float64)
    return float(np.nanmean(arr)) if arr.size and not np.all(np.isnan(arr)) else float("nan")


def summarize(results: Sequence[dict], groups: Mapping[str, str] | None = None) -> dict:
    """nnU-Net-style summary: ``metric_per_case``, ``mean`` (per structure), ``foreground_mean`` and, with
    ``groups`` (case id -> group), ``mean_per_group`` (group -> structure -> metric -> mean). nan-aware means.

    Every mean says how many cases it covers: ``n`` (cases), ``n_defined`` (structure -> metric -> cases where the
    metric is defined, e.g. HD95 needs both masks non-empty) and, with groups, ``n_per_group``,
    ``n_defined_per_group`` and ``cases_without_group`` (in group ``unknown``).

    Example:
        >>> r = [{"case_id": "a", "metrics": {"s": {"HD95_mm": 1.0}}},
        ...      {"case_id": "b", "metrics": {"s": {"HD95_mm": float("nan")}}}]
        >>> s = summarize(r, {"a": "control"})
        >>> s["mean"]["s"]["HD95_mm"], s["n"], s["n_defined"]["s"]["HD95_mm"], s["cases_without_group"]
        (1.0, 2, 1, ['b'])
    """
    if not results:
        raise InputError("no case to summarize")
    structures = list(results[0]["metrics"].keys())
    metric_names = list(results[0]["metrics"][structures[0]].keys())

    def means(rs: Sequence[dict]) -> dict:
        return {s: {m: _nanmean([r["metrics"][s][m] for r in rs]) for m in metric_names} for s in structures}

    def defined(rs: Sequence[dict]) -> dict:
        return {s: {m: sum(1 for r in rs if _finite(r["metrics"][s][m])) for m in metric_names} for s in structures}

    mean = means(results)
    foreground_mean = {m: _nanmean([mean[s][m] for s in structures]) for m in metric_names}
    summary = {"metric_per_case": list(results), "mean": mean, "foreground_mean": foreground_mean,
               "n": len(results), "n_defined": defined(results)}
    if groups:
        by_group: dict[str, list[dict]] = {}
        for r in results:
            by_group.setdefault(groups.get(r["case_id"], "unknown"), []).append(r)
        summary["mean_per_group"] = {g: means(rs) for g, rs in sorted(by_group.items())}
        summary["n_per_group"] = {g: len(rs) for g, rs in sorted(by_group.items())}
        summary["n_defined_per_group"] = {g: defined(rs) for g, rs in sorted(by_group.items())}
        summary["cases_without_group"] = sorted(r["case_id"] for r in results if r["case_id"] not in groups)
    return summary


def _finite(value) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def json_safe(obj):
    """Replace nan/inf by None and numpy scalars by Python ones, recursively (strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return None if not math.isfinite(float(obj)) else float(obj)
    return obj


def write_json(obj, path: str | os.PathLike) -> None:
    Path(path).write_text(json.dumps(json_safe(obj), indent=2, sort_keys=True))


def per_case_rows(method: str, results: Sequence[dict], groups: Mapping[str, str] | None = None) -> list[dict]:
    """Long-format rows (method, case_id, group, structure, metrics...) for the per-case CSV."""
    rows = []
    for r in results:
        for s, m in r["metrics"].items():
            rows.append({"method": method, "case_id": r["case_id"],
                         "group": (groups or {}).get(r["case_id"], ""), "structure": s, **m})
    return rows


def _fmt(v: float, digits: int = 3) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def paper_table_markdown(summaries: Mapping[str, dict], structures: Sequence[str] | None = None,
                         group: str | None = None, digits: int = 3) -> str:
    """Markdown table laid out like Table 2 of Cabeza-Ruiz et al.: one row per method, one column group per
    structure with DSC, JI, SP, SN (means over cases; ``group`` restricts to ``mean_per_group[group]``).

    Example:
        >>> s = {"M1": {"mean": {"brainstem": {"Dice": .926, "Jaccard": .861, "Specificity": .988,
        ...                                    "Sensitivity": .982}}}}
        >>> print(paper_table_markdown(s))
        | Method   | Brainstem   |       |       |       |
        |----------|-------------|-------|-------|-------|
        |          | DSC         | JI    | SP    | SN    |
        | M1       | 0.926       | 0.861 | 0.988 | 0.982 |
    """
    first = next(iter(summaries.values()))
    structures = list(structures or first["mean"].keys())
    header = ["Method"]
    sub = [""]
    for s in structures:
        header += [s.replace("_", " ").capitalize()] + [""] * (len(PAPER_COLUMNS) - 1)
        sub += [c for c, _ in PAPER_COLUMNS]
    rows = [sub]
    for method, summary in summaries.items():
        mean = summary["mean"] if group is None else summary.get("mean_per_group", {}).get(group)
        if mean is None:
            continue
        rows.append([method] + [_fmt_mean(summary, group, s, k, digits) for s in structures for _, k in PAPER_COLUMNS])
    return dataframe_markdown(pd.DataFrame(rows, columns=header))


def _fmt_mean(summary: Mapping, group: str | None, structure: str, metric: str, digits: int) -> str:
    """A mean as text, with ``(k/n)`` when it covers only k of the n cases (the metric is undefined on the others)."""
    mean = summary["mean"] if group is None else summary.get("mean_per_group", {}).get(group, {})
    text = _fmt(mean.get(structure, {}).get(metric), digits)
    n = summary.get("n") if group is None else summary.get("n_per_group", {}).get(group)
    k = (summary.get("n_defined") if group is None else summary.get("n_defined_per_group", {}).get(group, {}))
    k = (k or {}).get(structure, {}).get(metric)
    return text if n is None or k is None or k == n else f"{text} ({k}/{n})"


def extra_metrics_markdown(summaries: Mapping[str, dict], digits: int = 2) -> str:
    """Second table: HD95, volumes and (WMH) lesion metrics per method and structure, mean over cases."""
    keys = [("HD95 (mm)", "HD95_mm"), ("V ref (mm³)", "volume_ref_mm3"), ("V pred (mm³)", "volume_pred_mm3"),
            ("|ΔV| (mm³)", "abs_volume_difference_mm3"), ("ΔV (%)", "rel_volume_difference_pct"),
            ("lesion recall", "lesion_recall"), ("lesion F1", "lesion_f1"), ("AVD (%)", "AVD_pct")]
    first = next(iter(summaries.values()))
    some_struct = next(iter(first["mean"].values()))
    keys = [(c, k) for c, k in keys if k in some_struct]
    rows = [[method, s] + [_fmt_mean(summary, None, s, k, digits) for _, k in keys]
            for method, summary in summaries.items() for s in summary["mean"]]
    return dataframe_markdown(pd.DataFrame(rows, columns=["Method", "Structure"] + [c for c, _ in keys]))
