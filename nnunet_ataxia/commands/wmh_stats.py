"""``nnunet-ataxia wmh-stats``: threshold sweep, ROC/AUC and patient-level bootstrap comparison of WMH methods."""
from __future__ import annotations

import argparse

from nnunet_ataxia.utils.output_folders import add_overwrite_argument

#: files that identify an output folder of this command written before the marker file existed
LEGACY_OUTPUT_FILES = ("wmh_summary.json", "wmh_table.md")


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
    from nnunet_ataxia.evaluation.io import expand_folders, parse_named

    out: dict = {}
    for i, spec in enumerate(specs):
        name, folder = parse_named(spec, default.format(i=i + 1))
        if name in out:
            raise InputError(f"{folder}: {option} method name '{name}' given twice; give each method its own name")
        out[name] = expand_folders([folder])
    return out


def _collect(files, args, thresholds):
    """Counts (N, T, 3), case ids and pooled (probability, label) voxels of a folder set."""
    import numpy as np
    from tqdm import tqdm

    from nnunet_ataxia.evaluation.wmh_statistics import load_case, threshold_counts
    counts, probs, refs = [], [], []
    for case, f in tqdm(sorted(files.items()), desc="wmh cases", disable=None):
        p, g, v = load_case(case, f, args.ref, args.brain_masks, args.images)
        counts.append(threshold_counts(p, g, thresholds, v))
        probs.append(p[v])
        refs.append(g[v])
    return np.stack(counts), sorted(files), probs, refs


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    from nnunet_ataxia.errors import InputError
    from nnunet_ataxia.evaluation.io import dataframe_markdown
    from nnunet_ataxia.evaluation.plots import dice_threshold_plot, roc_plot
    from nnunet_ataxia.evaluation.segmentation_eval import write_json
    from nnunet_ataxia.evaluation.wmh_statistics import best_threshold, bootstrap_compare, bootstrap_dice_band, \
        dice_curve, dice_from_counts, list_probability_files, roc, threshold_grid
    from nnunet_ataxia.utils.checked_io import check_case_sets
    from nnunet_ataxia.utils.output_folders import check_output_folder, output_folder

    if args.n_bootstrap < 100:
        raise InputError(f"--n-bootstrap {args.n_bootstrap}: use at least 100 resamples")
    if args.n_thresholds < 2:
        raise InputError(f"--n-thresholds {args.n_thresholds}: use at least 2 thresholds")
    thresholds = threshold_grid(args.n_thresholds)
    tests = _named(args.test, "method{i}", "--test")
    vals = _named(args.val, "", "--val")
    for name in vals:
        if name not in tests:
            raise InputError(f"--val {name}=...: no --test folder for method '{name}'")
    inputs = [f for fs in (*tests.values(), *vals.values()) for f in fs] + [*args.ref, *args.brain_masks,
                                                                              *args.images]
    guard = dict(inputs=inputs, overwrite=args.overwrite, recognize=LEGACY_OUTPUT_FILES)
    check_output_folder(args.out, "wmh-stats", **guard)
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
    for name, folder in tests.items():
        r: dict = {}
        if name in vals:
            v_counts, v_cases, v_probs, v_refs = _collect(list_probability_files(vals[name]), args, thresholds)
            if not v_cases:
                raise InputError(f"{', '.join(map(str, vals[name]))}: no .npz validation probabilities for "
                                 f"'{name}'")
            t, d = best_threshold(v_counts, thresholds, args.criterion)
            r.update({"threshold": t, "threshold_source": "validation", "validation_dice": d,
                      "validation_auc": roc(v_probs, v_refs, max_voxels=args.max_roc_voxels, seed=args.seed)["auc"],
                      "n_validation_cases": len(v_cases)})
            lo, hi = bootstrap_dice_band(v_counts, args.n_bootstrap, args.seed, criterion=args.criterion)
            curves_val[name] = {"dice": dice_curve(v_counts, args.criterion), "low": lo, "high": hi,
                                "best_threshold": t}
            del v_probs, v_refs
        else:
            r.update({"threshold": 0.5, "threshold_source": "default (no validation folder given)"})
        counts, cases, probs, refs = _collect(test_files[name], args, thresholds)
        ti = int(np.argmin(np.abs(thresholds - r["threshold"])))
        curve = roc(probs, refs, max_voxels=args.max_roc_voxels, seed=args.seed)
        del probs, refs
        case_dice = dice_from_counts(counts[:, ti])
        r.update({"test_dice": float(dice_curve(counts[:, ti:ti + 1], args.criterion)[0]),
                  "test_mean_case_dice": float(np.nanmean(case_dice)), "test_auc": curve["auc"],
                  "n_test_cases": len(cases), "test_cases": cases})
        rocs[name] = curve
        lo, hi = bootstrap_dice_band(counts, args.n_bootstrap, args.seed, criterion=args.criterion)
        curves_test[name] = {"dice": dice_curve(counts, args.criterion), "low": lo, "high": hi,
                             "best_threshold": r["threshold"]}
        test_counts[name] = dict(zip(cases, counts[:, ti]))
        for c, d, k in zip(cases, case_dice, counts[:, ti]):
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
                    pvalues.setdefault(a, {})[b] = bootstrap_compare(ca, cb, args.n_bootstrap, args.seed,
                                                                     args.criterion)

    with output_folder(args.out, "wmh-stats", **guard) as tmp:
        write_json({"methods": results, "bootstrap": pvalues, "criterion": args.criterion,
                    "n_bootstrap": args.n_bootstrap, "seed": args.seed, "thresholds": thresholds,
                    "dice_curves_test": curves_test, "dice_curves_validation": curves_val,
                    "roc_test": {n: {"fpr": c["fpr"], "tpr": c["tpr"], "auc": c["auc"]} for n, c in rocs.items()}},
                   tmp / "wmh_summary.json")
        pd.DataFrame(per_case_rows).to_csv(tmp / "wmh_per_case.csv", index=False)
        table = pd.DataFrame([{"method": n, "threshold": r["threshold"],
                               "validation AUC": r.get("validation_auc", float("nan")),
                               "validation Dice": r.get("validation_dice", float("nan")),
                               "test Dice": r["test_dice"], "test AUC": r["test_auc"], "n test": r["n_test_cases"]}
                              for n, r in results.items()])
        md = ["## WMH segmentation", "", dataframe_markdown(table, digits=3), ""]
        if pvalues:
            pv = pd.DataFrame([{"H0: row no better than column": a,
                                **{b: (f"<{1 / args.n_bootstrap:.3g}" if pvalues[a][b]["p_value"] == 0
                                       else f"{pvalues[a][b]['p_value']:.3f}") if b in pvalues[a] else "-"
                                   for b in names}} for a in names])
            pv.to_csv(tmp / "wmh_pvalues.csv", index=False)
            md += [f"### Patient-level bootstrap p-values ({args.n_bootstrap} resamples, seed {args.seed})", "",
                   dataframe_markdown(pv), ""]
        (tmp / "wmh_table.md").write_text("\n".join(md))
        dice_threshold_plot(thresholds, curves_test, tmp / "dice_vs_threshold_test.png",
                            "Test Dice vs threshold (95 % bootstrap band)")
        if curves_val:
            dice_threshold_plot(thresholds, curves_val, tmp / "dice_vs_threshold_validation.png",
                                "Validation Dice vs threshold (95 % bootstrap band)")
        roc_plot(rocs, tmp / "roc_test.png")
    print(f"WMH statistics of {len(results)} method(s) -> {args.out}")
    return 0
