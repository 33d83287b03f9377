"""The paper's comparison of WMH methods: threshold sweep, ROC/AUC and the patient-level bootstrap (Ghafoorian et al.
§3.3), written as ``wmh_summary.json``, ``wmh_per_case.csv``, ``wmh_pvalues.csv``, ``wmh_table.md`` and figures."""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from nnunet_ataxia.errors import InputError
from nnunet_ataxia.evaluation.plots import dice_threshold_plot, roc_plot
from nnunet_ataxia.evaluation.segmentation_eval import write_json
from nnunet_ataxia.evaluation.wmh_statistics import (
    best_threshold,
    bootstrap_compare,
    bootstrap_dice_band,
    dice_curve,
    dice_from_counts,
    list_probability_files,
    load_case,
    roc,
    threshold_counts,
    threshold_grid,
)
from nnunet_ataxia.io.files import check_case_sets, dataframe_markdown
from nnunet_ataxia.io.output_folders import check_output_folder, output_folder

__all__ = ["LEGACY_OUTPUT_FILES", "MIN_CASES_FOR_STATISTICS", "compare_wmh_methods"]

#: fewer test cases than this: the patient-level bootstrap has too few distinct resamples for its p-values and bands
#: to mean much (with n cases there are at most C(2n-1, n) of them: 126 for 5, 92,378 for 10); results carry a caveat
MIN_CASES_FOR_STATISTICS = 10

#: files that identify an output folder of ``wmh-stats`` written before the marker file existed
LEGACY_OUTPUT_FILES = ("wmh_summary.json", "wmh_table.md")


def _collect(files: dict, ref, brain_masks, images, thresholds):
    """Counts (N, T, 3), case ids and pooled (probability, label) voxels of a folder set."""
    counts, probs, refs = [], [], []
    for case, f in tqdm(sorted(files.items()), desc="wmh cases", disable=None):
        p, g, v = load_case(case, f, ref, brain_masks, images)
        counts.append(threshold_counts(p, g, thresholds, v))
        probs.append(p[v])
        refs.append(g[v])
    return np.stack(counts), sorted(files), probs, refs


def compare_wmh_methods(tests: dict[str, Sequence[Path]], out: str | os.PathLike, *, ref: Sequence[str],
                        vals: dict[str, Sequence[Path]] | None = None, brain_masks: Sequence[str] = (),
                        images: Sequence[str] = (), n_bootstrap: int = 1000, seed: int = 0, n_thresholds: int = 101,
                        criterion: str = "pooled", max_roc_voxels: int = 5_000_000, overwrite: bool = False) -> dict:
    """Compare WMH methods on their test probabilities, each at the threshold its validation cases choose.

    Args:
        tests: method name -> folders of test probabilities (``.npz``); every method must have the same cases.
        out: the output folder (written atomically; an existing one must be an earlier ``wmh-stats`` output).
        ref: reference label folders (2 = ignore).
        vals: method name -> validation probability folders (its Dice-maximizing threshold is used; else 0.5).
        brain_masks, images: where the brain masks come from (only voxels inside count).
        n_bootstrap: patient-level bootstrap resamples (>= 100; the paper uses 100).
        seed: seed of the bootstrap and of the ROC voxel subsample.
        n_thresholds: thresholds 0..1 swept.
        criterion: Dice of a set of cases: ``"pooled"`` (the paper) or ``"mean"`` per case.
        max_roc_voxels: seeded subsample of the pooled voxels used for the ROC curves.
        overwrite: replace an existing folder that is not an earlier output of this command.

    Returns:
        ``{"methods": {name: Dice, AUC, threshold...}, "bootstrap": {a: {b: p-value record}}}``.

    Example:
        >>> compare_wmh_methods({"SS": [Path("ss/test")], "SS+Loc": [Path("loc/test")]}, "stats/",
        ...                     ref=["labelsTs"])  # doctest: +SKIP
    """
    vals = dict(vals or {})
    if n_bootstrap < 100:
        raise InputError(f"--n-bootstrap {n_bootstrap}: use at least 100 resamples")
    if n_thresholds < 2:
        raise InputError(f"--n-thresholds {n_thresholds}: use at least 2 thresholds")
    thresholds = threshold_grid(n_thresholds)
    for name in vals:
        if name not in tests:
            raise InputError(f"--val {name}=...: no --test folder for method '{name}'")
    inputs = [f for fs in (*tests.values(), *vals.values()) for f in fs] + [*ref, *brain_masks,
                                                                              *images]
    guard = dict(inputs=inputs, overwrite=overwrite, recognize=LEGACY_OUTPUT_FILES)
    check_output_folder(out, "wmh-stats", **guard)
    test_files = {}
    for name, folders in tests.items():
        test_files[name] = list_probability_files(folders)
        if not test_files[name]:
            raise InputError(f"{', '.join(map(str, folders))}: no .npz test probabilities for '{name}'")
    first = next(iter(test_files))
    for name in list(test_files)[1:]:  # the paired bootstrap needs the same test cases for every method
        check_case_sets(test_files[first], test_files[name], f"the test cases of '{first}'",
                        f"{', '.join(map(str, tests[name]))} ('{name}')")
    results: dict = {}
    per_case_rows, curves_test, curves_val, rocs = [], {}, {}, {}
    test_counts = {}
    for name, _folder in tests.items():
        r: dict = {}
        if name in vals:
            v_counts, v_cases, v_probs, v_refs = _collect(list_probability_files(vals[name]), ref, brain_masks, images,
                                                          thresholds)
            if not v_cases:
                raise InputError(f"{', '.join(map(str, vals[name]))}: no .npz validation probabilities for "
                                 f"'{name}'")
            t, d = best_threshold(v_counts, thresholds, criterion)
            r.update({"threshold": t, "threshold_source": "validation", "validation_dice": d,
                      "validation_auc": roc(v_probs, v_refs, max_voxels=max_roc_voxels, seed=seed)["auc"],
                      "n_validation_cases": len(v_cases)})
            lo, hi = bootstrap_dice_band(v_counts, n_bootstrap, seed, criterion=criterion)
            curves_val[name] = {"dice": dice_curve(v_counts, criterion), "low": lo, "high": hi,
                                "best_threshold": t}
            del v_probs, v_refs
        else:
            r.update({"threshold": 0.5, "threshold_source": "default (no validation folder given)"})
        counts, cases, probs, refs = _collect(test_files[name], ref, brain_masks, images, thresholds)
        ti = int(np.argmin(np.abs(thresholds - r["threshold"])))
        curve = roc(probs, refs, max_voxels=max_roc_voxels, seed=seed)
        del probs, refs
        case_dice = dice_from_counts(counts[:, ti])
        r.update({"test_dice": float(dice_curve(counts[:, ti:ti + 1], criterion)[0]),
                  "test_mean_case_dice": float(np.nanmean(case_dice)), "test_auc": curve["auc"],
                  "n_test_cases": len(cases), "test_cases": cases})
        rocs[name] = curve
        lo, hi = bootstrap_dice_band(counts, n_bootstrap, seed, criterion=criterion)
        curves_test[name] = {"dice": dice_curve(counts, criterion), "low": lo, "high": hi,
                             "best_threshold": r["threshold"]}
        test_counts[name] = dict(zip(cases, counts[:, ti], strict=False))
        for c, d, k in zip(cases, case_dice, counts[:, ti], strict=False):
            per_case_rows.append({"method": name, "case_id": c, "threshold": r["threshold"], "dice": d,
                                  "TP": int(k[0]), "FP": int(k[1]), "FN": int(k[2])})
        results[name] = r

    # pairwise bootstrap on the common test cases: p[i][j] = p-value of H0 "method i is no better than j"
    names = list(tests)
    pvalues: dict = {}
    if len(names) > 1:
        common = sorted(set.intersection(*(set(test_counts[n]) for n in names)))
        if not common:
            raise InputError("wmh-stats: the methods share no test case")
        for a in names:
            for b in names:
                if a != b:
                    ca = np.stack([test_counts[a][c] for c in common])
                    cb = np.stack([test_counts[b][c] for c in common])
                    pvalues.setdefault(a, {})[b] = bootstrap_compare(ca, cb, n_bootstrap, seed,
                                                                     criterion)

    n_test = min(r["n_test_cases"] for r in results.values())
    caveats = [] if n_test >= MIN_CASES_FOR_STATISTICS else [
        f"only {n_test} test case(s) (fewer than {MIN_CASES_FOR_STATISTICS}): the patient-level bootstrap p-values "
        f"and Dice bands rest on too few patients to be relied on"]
    with output_folder(out, "wmh-stats", **guard) as tmp:
        write_json({"methods": results, "bootstrap": pvalues, "caveats": caveats, "criterion": criterion,
                    "n_bootstrap": n_bootstrap, "seed": seed, "thresholds": thresholds,
                    "dice_curves_test": curves_test, "dice_curves_validation": curves_val,
                    "roc_test": {n: {"fpr": c["fpr"], "tpr": c["tpr"], "auc": c["auc"]} for n, c in rocs.items()}},
                   tmp / "wmh_summary.json")
        pd.DataFrame(per_case_rows).to_csv(tmp / "wmh_per_case.csv", index=False)
        table = pd.DataFrame([{"method": n, "threshold": r["threshold"],
                               "validation AUC": r.get("validation_auc", float("nan")),
                               "validation Dice": r.get("validation_dice", float("nan")),
                               "test Dice": r["test_dice"], "test AUC": r["test_auc"], "n test": r["n_test_cases"]}
                              for n, r in results.items()])
        md = ["## WMH segmentation", "", *[f"**Caveat:** {c}." for c in caveats], "",
              dataframe_markdown(table, digits=3), ""]
        if pvalues:
            pv = pd.DataFrame([{"H0: row no better than column": a,
                                **{b: (f"<{1 / n_bootstrap:.3g}" if pvalues[a][b]["p_value"] == 0
                                       else f"{pvalues[a][b]['p_value']:.3f}") if b in pvalues[a] else "-"
                                   for b in names}} for a in names])
            pv.to_csv(tmp / "wmh_pvalues.csv", index=False)
            md += [f"### Patient-level bootstrap p-values ({n_bootstrap} resamples, seed {seed})", "",
                   dataframe_markdown(pv), ""]
        (tmp / "wmh_table.md").write_text("\n".join(md))
        dice_threshold_plot(thresholds, curves_test, tmp / "dice_vs_threshold_test.png",
                            "Test Dice vs threshold (95 % bootstrap band)")
        if curves_val:
            dice_threshold_plot(thresholds, curves_val, tmp / "dice_vs_threshold_validation.png",
                                "Validation Dice vs threshold (95 % bootstrap band)")
        roc_plot(rocs, tmp / "roc_test.png")
    return {"methods": results, "bootstrap": pvalues, "caveats": caveats}
