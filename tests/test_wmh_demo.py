"""`nnunet-ataxia wmh-demo --quick` end to end (generated data -> convert-wmh -> plan 2d -> SS and SS+Loc with the
paper recipe -> nnUNetv2_predict --save_probabilities -> wmh-threshold -> wmh-stats -> report), its re-run, and its
refusal of a foreign folder. The report's numbers are recomputed here from the written files with NumPy."""
from __future__ import annotations

import json
import subprocess
import time

import numpy as np
import pytest
import SimpleITK as sitk

from markdown_tables import markdown_tables, tables_with_header
from nnunet_ataxia.demo.wmh_demo import DATASET_NAME, METHODS, demo_size, verdict

THRESHOLDS = np.linspace(0.0, 1.0, 101)


def _array(path):
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def _demo(out, *extra):
    return subprocess.run(["nnunet-ataxia", "wmh-demo", "--out", str(out), "--quick", "-np", "2", *extra],
                          capture_output=True, text=True)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("wmh_demo") / "demo"
    result = _demo(out)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return out, result.stdout


def _cases(folder, raw, labels):
    """(probability, reference WMH, valid voxels) per case of a folder of nnU-Net .npz files."""
    out = []
    for npz in sorted(folder.glob("*.npz")):
        case = npz.name[: -len(".npz")]
        p = np.load(npz)["probabilities"][1].astype(np.float64)
        ref = _array(raw / labels / f"{case}.nii.gz")
        brain = _array(raw / "brainmasks" / f"{case}.nii.gz") > 0
        out.append((p, ref == 1, brain & (ref != 2)))
    assert out, f"no probabilities in {folder}"
    return out


def _pooled_dice(cases, t):
    tp = sum(int(((p >= t) & g & v).sum()) for p, g, v in cases)
    fp = sum(int(((p >= t) & ~g & v).sum()) for p, g, v in cases)
    fn = sum(int(((p < t) & g & v).sum()) for p, g, v in cases)
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")


def _auc(cases):
    """Mann-Whitney AUC (ties count one half), NumPy only."""
    p = np.concatenate([c[0][c[2]] for c in cases]).astype(np.float32)
    g = np.concatenate([c[1][c[2]] for c in cases])
    values, inverse, counts = np.unique(p, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    ranks = (ends - (counts - 1) / 2.0)[inverse]          # average rank of tied values
    n_pos, n_neg = int(g.sum()), int((~g).sum())
    return (ranks[g].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def _report_rows(md):
    rows = {}
    for table in tables_with_header(md, "method", "threshold"):
        rows.update({cells[0]: dict(zip(table[0], cells)) for cells in table[1:]})
    return rows


@pytest.mark.slow
@pytest.mark.e2e
def test_report_numbers_equal_numpy_recomputation(demo):
    out, log = demo
    for k in range(1, 9):
        assert f"=== {k}/8 " in log
    raw = out / "nnUNet_raw" / DATASET_NAME
    size = demo_size(True)
    summary = json.loads((out / "wmh_stats" / "wmh_summary.json").read_text())
    md = (out / "report" / "report.md").read_text()
    html = (out / "report" / "report.html").read_text()
    rows = _report_rows(md)
    assert set(rows) == set(METHODS), rows
    test_cases = sorted(p.name[: -len(".nii.gz")] for p in (raw / "labelsTs").glob("*.nii.gz"))
    assert len(test_cases) == size.n_test
    for method in METHODS:
        r = summary["methods"][method]
        fold = (out / "nnUNet_results" / DATASET_NAME / f"{size.trainer(method)}__nnUNetPlans__2d" / "fold_0")
        # the threshold is the argmax (first of ties) of the pooled validation Dice over 0, 0.01, ..., 1
        val = _cases(fold / "validation", raw, "labelsTr")
        curve = np.array([_pooled_dice(val, t) for t in THRESHOLDS])
        best = THRESHOLDS[int(np.nanargmax(curve))]
        assert r["threshold"] == pytest.approx(best, abs=1e-12)
        assert r["validation_dice"] == pytest.approx(np.nanmax(curve), abs=1e-12)
        masks = out / "masks" / method.replace("+", "_")
        assert json.loads((masks / "threshold.json").read_text())["threshold"] == pytest.approx(best, abs=1e-12)
        assert float(rows[method]["threshold"]) == pytest.approx(best, abs=5e-4)
        # test Dice and AUC from nnUNetv2_predict's probabilities
        test = _cases(out / "predictions" / method.replace("+", "_"), raw, "labelsTs")
        assert len(test) == len(test_cases) == r["n_test_cases"]
        dice, auc = _pooled_dice(test, best), _auc(test)
        assert r["test_dice"] == pytest.approx(dice, abs=1e-12)
        assert r["test_auc"] == pytest.approx(auc, abs=1e-6)
        assert float(rows[method]["test Dice"]) == pytest.approx(dice, abs=5e-4)
        assert float(rows[method]["test AUC"]) == pytest.approx(auc, abs=5e-4)
        assert f"{dice:.3f}" in html and f"{auc:.3f}" in html
        # wmh-threshold's masks are the thresholded probabilities inside the brain
        for (p, _, _), case in zip(test, test_cases):
            brain = _array(raw / "brainmasks" / f"{case}.nii.gz") > 0
            np.testing.assert_array_equal(_array(masks / f"{case}.nii.gz"), (p >= best) & brain)


@pytest.mark.slow
@pytest.mark.e2e
def test_report_states_the_bootstrap_p_value_written_by_wmh_stats(demo):
    out, log = demo
    summary = json.loads((out / "wmh_stats" / "wmh_summary.json").read_text())
    boot = summary["bootstrap"]["SS+Loc"]["SS"]
    p = boot["p_value"]
    assert 0.0 <= p <= 1.0 and boot["n_bootstrap"] == summary["n_bootstrap"] == 100
    assert boot["p_value"] + summary["bootstrap"]["SS"]["SS+Loc"]["p_value"] == pytest.approx(1.0)
    md = (out / "report" / "report.md").read_text()
    p_text = "p < 0.01" if p == 0 else f"p = {p:.3f}"
    claim = "**SS+Loc beats SS**" if p < 0.05 else "**SS+Loc does not beat SS**"
    assert claim in md and p_text in md, md[:2000]
    (table,) = [t for t in markdown_tables(md) if t[0][0].startswith("H0: row no better than column")]
    row = next(cells for cells in table[1:] if cells[0] == "SS+Loc")
    assert dict(zip(table[0], row))["SS"] == ("<0.01" if p == 0 else f"{p:.3f}")
    ss_loc, ss = summary["methods"]["SS+Loc"]["test_dice"], summary["methods"]["SS"]["test_dice"]
    assert f"test Dice {ss_loc:.3f} (SS+Loc) vs {ss:.3f} (SS)" in md
    assert verdict(summary).replace("**", "") in log


@pytest.mark.slow
@pytest.mark.e2e
def test_rerun_skips_finished_steps(demo):
    out, _ = demo
    report = out / "report" / "report.html"
    watched = [report, out / "wmh_stats" / "wmh_summary.json", *(out / "predictions").glob("*/*.npz"),
               *(out / "nnUNet_results").rglob("checkpoint_best.pth")]
    before = {p: p.stat().st_mtime_ns for p in watched}
    t0 = time.time()
    result = _demo(out)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # steps 1-5, two predictions, two threshold folders, wmh-stats, report
    assert result.stdout.count("already done") == 11, result.stdout
    assert not [line for line in result.stdout.splitlines() if line.startswith("$ ")], "a command ran again"
    assert {p: p.stat().st_mtime_ns for p in watched} == before
    assert time.time() - t0 < 120


def test_a_foreign_folder_is_refused(tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    result = _demo(foreign)
    assert result.returncode == 1
    err = result.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "refusing" in err and str(foreign) in err
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_wmh_lie_closer_to_the_ventricles_than_mimics():
    from nnunet_ataxia.demo.wmh_data import _mni_maps, make_location_case

    grid, _, d_vent, d_cortex = _mni_maps()
    where = {"wmh": [], "mimic": []}
    for seed in range(2):
        case = make_location_case(seed, flair_spacing=(3.0, 3.0, 6.0))
        flair, label = _array_img(case["flair"]), _array_img(case["label"])
        to_flair = np.linalg.inv(case["subject_to_mni"])
        for kind, value in (("wmh", 1), ("mimic", 0)):
            centres = case[f"{kind}_centers_mni"]
            assert len(centres) >= 4
            hits = 0
            for c in centres:
                idx = grid.TransformPhysicalPointToIndex([float(x) for x in c])[::-1]
                where[kind].append((d_vent[idx], d_cortex[idx]))
                q = case["flair"].TransformPhysicalPointToIndex([float(x) for x in (to_flair @ np.append(c, 1))[:3]])
                hits += bool(flair[q[::-1]] > 600 and label[q[::-1]] == value)
            assert hits >= len(centres) - 1, f"{kind}: bright blobs labelled {value} at the drawn centres"
    wmh, mimic = np.array(where["wmh"]), np.array(where["mimic"])
    assert np.median(wmh[:, 0]) < np.median(mimic[:, 0])      # WMH nearer the ventricles
    assert np.median(mimic[:, 1]) < np.median(wmh[:, 1])      # mimics nearer the cortex


def _array_img(img):
    return sitk.GetArrayFromImage(img)
