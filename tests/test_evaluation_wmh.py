"""WMH statistics: threshold search, ROC/AUC, patient-level bootstrap, wmh-threshold and wmh-stats commands."""
import json

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_ataxia.cli import main
from nnunet_ataxia.evaluation.wmh_statistics import (
    best_threshold,
    bootstrap_compare,
    roc,
    threshold_counts,
    threshold_grid,
)

FLAIR_SPACING = (1.2, 1.0, 5.0)  # x, y, z: thick-sliced FLAIR
SHAPE = (4, 10, 10)               # z, y, x


def constructed_case(rng=None):
    """Probabilities with a known optimum: 50 WMH voxels at 0.8, 50 at 0.4; 30 normal voxels at 0.6, the rest
    at 0.05. Outside the brain (row y=0) and on ignore voxels (label 2) probabilities are 0.95."""
    ref = np.zeros(SHAPE, np.uint8)
    prob = np.full(SHAPE, 0.05, np.float32)
    brain = np.ones(SHAPE, np.uint8)
    brain[:, 0, :] = 0
    flat_idx = np.flatnonzero(brain.ravel())
    pos, hi_neg = flat_idx[:100], flat_idx[100:130]
    ref.ravel()[pos] = 1
    prob.ravel()[pos[:50]] = 0.8
    prob.ravel()[pos[50:]] = 0.4
    prob.ravel()[hi_neg] = 0.6
    prob[:, 0, :] = 0.95                   # outside the brain mask
    ref.ravel()[flat_idx[-10:]] = 2        # ignore label
    prob.ravel()[flat_idx[-10:]] = 0.95
    return prob, ref, brain


def test_threshold_search_finds_known_optimum():
    prob, ref, brain = constructed_case()
    valid = (brain > 0) & (ref != 2)
    t = threshold_grid(101)
    counts = threshold_counts(prob, ref == 1, t, valid)[None]
    thr, dice = best_threshold(counts, t)
    # t in (0.05, 0.4]: TP 100, FP 30, FN 0 -> 200/230, better than (0.6, 0.8]: 100/150 and (0.4, 0.6]: 100/180
    assert 0.05 < thr <= 0.4
    assert dice == pytest.approx(200 / 230)
    i = int(np.argmin(np.abs(t - 0.7)))
    assert counts[0, i].tolist() == [50, 0, 50]
    # without the brain mask and ignore label the 0.95 voxels become false positives at every threshold
    no_mask = threshold_counts(prob, ref == 1, t)
    assert no_mask[i, 1] == 40 + 10


def test_roc_auc_closed_form():
    prob, ref, brain = constructed_case()
    valid = (brain > 0) & (ref != 2)
    n_neg = int(valid.sum()) - 100
    r = roc([prob], [ref == 1], [valid])
    # P(pos > neg) + 0.5 P(tie): 0.8-positives beat every negative, 0.4-positives beat all but the 30 at 0.6
    assert r["auc"] == pytest.approx((50 * n_neg + 50 * (n_neg - 30)) / (100 * n_neg))


def test_bootstrap_p_values():
    rng = np.random.default_rng(1)
    n = 30
    tp = rng.integers(50, 150, n)
    good = np.stack([tp, tp // 10, tp // 10], 1)          # Dice ~ 0.91
    bad = np.stack([tp // 2, tp // 2, tp - tp // 2], 1)   # Dice ~ 0.5
    assert bootstrap_compare(good, bad, 200, seed=0)["p_value"] == 0.0
    assert bootstrap_compare(bad, good, 200, seed=0)["p_value"] == 1.0
    same = bootstrap_compare(good, good.copy(), 200, seed=0)
    assert same["p_value"] == 0.5 and same["n_ties"] == 200
    # two different methods of equal quality (per-case results drawn from one distribution): p near 0.5
    def draw():
        t = rng.integers(50, 150, n)
        e = rng.integers(5, 40, n)
        return np.stack([t, e, e], 1)
    p = bootstrap_compare(draw(), draw(), 500, seed=0)["p_value"]
    assert 0.1 < p < 0.9
    with pytest.raises(ValueError):
        bootstrap_compare(good, bad, 50)


def write(arr, path, spacing=FLAIR_SPACING):
    img = sitk.GetImageFromArray(np.asarray(arr))
    img.SetSpacing(spacing)
    img.SetOrigin((10.0, -5.0, 3.0))
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(img, str(path))


def make_wmh_folders(root, n_val=3, n_test=4):
    """nnU-Net-like folders: fold_*/validation/<case>.npz for validation, a test folder with <case>.npz and
    nnU-Net's own <case>.nii.gz prediction (geometry source), labels with 2 = ignore, brain masks."""
    prob, ref, brain = constructed_case()
    cases = []
    for i in range(n_val + n_test):
        case = f"WMH_{i:03d}"
        cases.append(case)
        write(ref, root / "labelsTr" / f"{case}.nii.gz")
        write(brain, root / "brainmasks" / f"{case}.nii.gz")
        probs = np.stack([1 - prob, prob])
        if i < n_val:
            folder = root / "results" / f"fold_{i % 2}" / "validation"
        else:
            folder = root / "test"
            write((prob > 0.5).astype(np.uint8), folder / f"{case}.nii.gz")
            # a second, worse method: the WMH probabilities damped
            worse = prob.copy()
            worse[ref == 1] *= 0.3
            (root / "test_worse").mkdir(parents=True, exist_ok=True)
            np.savez_compressed(root / "test_worse" / f"{case}.npz", probabilities=np.stack([1 - worse, worse]))
        folder.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(folder / f"{case}.npz", probabilities=probs)
    return prob, ref, brain, cases


def test_wmh_threshold_command_writes_masks_with_nnunet_geometry(tmp_path):
    prob, ref, brain, cases = make_wmh_folders(tmp_path)
    out = tmp_path / "binary"
    rc = main(["wmh-threshold", "--val", str(tmp_path / "results" / "fold_*" / "validation"),
               "--ref", str(tmp_path / "labelsTr"), "--brain-masks", str(tmp_path / "brainmasks"),
               "--test", str(tmp_path / "test"), "--out", str(out)])
    assert rc == 0
    info = json.loads((out / "threshold.json").read_text())
    assert 0.05 < info["threshold"] <= 0.4 and info["validation_dice"] == pytest.approx(200 / 230)
    assert len(info["validation_cases"]) == 3 and len(info["test_cases"]) == 4
    img = sitk.ReadImage(str(out / f"{cases[-1]}.nii.gz"))
    assert img.GetSpacing() == pytest.approx(FLAIR_SPACING) and img.GetOrigin() == pytest.approx((10.0, -5.0, 3.0))
    mask = sitk.GetArrayFromImage(img)
    expected = (prob >= info["threshold"]) & (brain > 0)
    assert np.array_equal(mask.astype(bool), expected)
    # probabilities that do not fit their reference: one error naming the case, nothing written
    np.savez_compressed(tmp_path / "results" / "fold_0" / "validation" / f"{cases[0]}.npz",
                        probabilities=np.zeros((2, 3, 10, 10), np.float32))
    rc = main(["wmh-threshold", "--val", str(tmp_path / "results" / "fold_*" / "validation"),
               "--ref", str(tmp_path / "labelsTr"), "--test", str(tmp_path / "test"), "--out", str(tmp_path / "b2")])
    assert rc == 1 and not (tmp_path / "b2").exists()


def test_wmh_stats_command(tmp_path, capsys):
    make_wmh_folders(tmp_path)
    out = tmp_path / "stats"
    rc = main(["wmh-stats", "--val", f"good={tmp_path}/results/fold_*/validation", "--test", f"good={tmp_path}/test",
               "--test", f"worse={tmp_path}/test_worse", "--ref", str(tmp_path / "labelsTr"),
               "--brain-masks", str(tmp_path / "brainmasks"), "--n-bootstrap", "100", "--n-thresholds", "51",
               "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    s = json.loads((out / "wmh_summary.json").read_text())
    good, worse = s["methods"]["good"], s["methods"]["worse"]
    assert good["threshold_source"] == "validation" and worse["threshold"] == 0.5
    assert good["test_dice"] == pytest.approx(200 / 230)
    assert worse["test_dice"] < good["test_dice"]
    assert s["bootstrap"]["good"]["worse"]["p_value"] == 0.0       # all 4 cases better
    assert s["bootstrap"]["worse"]["good"]["p_value"] == 1.0
    for f in ("dice_vs_threshold_test.png", "dice_vs_threshold_validation.png", "roc_test.png", "wmh_table.md",
              "wmh_per_case.csv"):
        assert (out / f).is_file()
    band = s["dice_curves_test"]["good"]
    # identical test cases: every bootstrap resample gives the same curve, so the band collapses onto it
    assert np.allclose(band["low"], band["dice"], equal_nan=True)
    assert main(["report", "--out", str(tmp_path / "rep"), "--wmh", str(out)]) == 0
    assert (tmp_path / "rep" / "report.html").read_text().count("data:image/png;base64,") == 3
