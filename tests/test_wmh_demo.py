"""`nnunet-ataxia wmh-demo --quick` end to end (generated data -> convert-wmh -> plan 2d -> location-only classifier
-> SS and SS+Loc with the paper recipe, one training seed -> alpha tuned -> nnUNetv2_predict --save_probabilities ->
wmh-threshold -> wmh-stats -> report), its re-run, and its refusal of a foreign folder. The report's numbers are
recomputed here from the written files with NumPy."""
from __future__ import annotations

import json
import subprocess
import time

import numpy as np
import pytest
import SimpleITK as sitk
from markdown_tables import markdown_tables, tables_with_header

from nnunet_ataxia.demo.wmh_demo import DATASET_NAME, METHODS, DemoSize, demo_size, seed_verdicts, verdict

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
        rows.update({cells[0]: dict(zip(table[0], cells, strict=False)) for cells in table[1:]})
    return rows


def _runs(size):
    """(method, seed, its wmh-stats name) of every trained model of a demo size."""
    return [(m, s, DemoSize.name(m, s)) for m in METHODS for s in size.seeds]


@pytest.mark.slow
@pytest.mark.e2e
def test_report_numbers_equal_numpy_recomputation(demo):
    out, log = demo
    for k in range(1, 11):
        assert f"=== {k}/10 " in log
    raw = out / "nnUNet_raw" / DATASET_NAME
    size = demo_size(True)
    summary = json.loads((out / "wmh_stats" / "wmh_summary.json").read_text())
    md = (out / "report" / "report.md").read_text()
    html = (out / "report" / "report.html").read_text()
    rows = _report_rows(md)
    assert set(rows) == {name for _, _, name in _runs(size)}, rows
    test_cases = sorted(p.name[: -len(".nii.gz")] for p in (raw / "labelsTs").glob("*.nii.gz"))
    assert len(test_cases) == size.n_test
    for method, seed, name in _runs(size):
        r = summary["methods"][name]
        fold = (out / "nnUNet_results" / f"seed{seed}" / DATASET_NAME / f"{size.trainer(method)}__nnUNetPlans__2d"
                / "fold_0")
        # the threshold is the argmax (first of ties) of the pooled validation Dice over 0, 0.01, ..., 1
        val = _cases(fold / "validation", raw, "labelsTr")
        curve = np.array([_pooled_dice(val, t) for t in THRESHOLDS])
        best = THRESHOLDS[int(np.nanargmax(curve))]
        assert r["threshold"] == pytest.approx(best, abs=1e-12)
        assert r["validation_dice"] == pytest.approx(np.nanmax(curve), abs=1e-12)
        masks = out / "masks" / DemoSize.folder(method, seed)
        assert json.loads((masks / "threshold.json").read_text())["threshold"] == pytest.approx(best, abs=1e-12)
        assert float(rows[name]["threshold"]) == pytest.approx(best, abs=5e-4)
        # test Dice and AUC from nnUNetv2_predict's probabilities
        test = _cases(out / "predictions" / DemoSize.folder(method, seed), raw, "labelsTs")
        assert len(test) == len(test_cases) == r["n_test_cases"]
        dice, auc = _pooled_dice(test, best), _auc(test)
        assert r["test_dice"] == pytest.approx(dice, abs=1e-12)
        assert r["test_auc"] == pytest.approx(auc, abs=1e-6)
        assert float(rows[name]["test Dice"]) == pytest.approx(dice, abs=5e-4)
        assert float(rows[name]["test AUC"]) == pytest.approx(auc, abs=5e-4)
        assert f"{dice:.3f}" in html and f"{auc:.3f}" in html
        # wmh-threshold's masks are the thresholded probabilities inside the brain
        for (p, _, _), case in zip(test, test_cases, strict=True):
            brain = _array(raw / "brainmasks" / f"{case}.nii.gz") > 0
            np.testing.assert_array_equal(_array(masks / f"{case}.nii.gz"), (p >= best) & brain)
    # SS+Loc's alpha: the tuned value, the best validation AUC of its sweep
    for seed in size.seeds:
        record = json.loads((out / "alpha" / f"seed{seed}.json").read_text())
        assert record["alpha"] == max(record["sweep"], key=lambda r: r["auc"])["alpha"]


@pytest.mark.slow
@pytest.mark.e2e
def test_report_states_location_auc_and_the_bootstrap_p_values(demo):
    out, log = demo
    size = demo_size(True)
    summary = json.loads((out / "wmh_stats" / "wmh_summary.json").read_text())
    md = (out / "report" / "report.md").read_text()
    location = json.loads((out / "location_only.json").read_text())
    auc = location["wmh_vs_hard_negatives"]
    assert 0.0 <= auc <= 1.0 and location["n_test_cases"] == size.n_test
    assert f"with AUC {auc:.3f}" in md and md.index(f"with AUC {auc:.3f}") < md.index("Seed ")
    for seed in size.seeds:
        better, baseline = DemoSize.name("SS+Loc", seed), DemoSize.name("SS", seed)
        boot = summary["bootstrap"][better][baseline]
        p = boot["p_value"]
        assert 0.0 <= p <= 1.0 and boot["n_bootstrap"] == summary["n_bootstrap"] == 100
        assert p + summary["bootstrap"][baseline][better]["p_value"] == pytest.approx(1.0)
        p_text = "p < 0.01" if p == 0 else f"p = {p:.3f}"
        claim = f"**{better} beats {baseline}**" if p < 0.05 else f"**{better} does not beat {baseline}**"
        assert claim in md and p_text in md, md[:2000]
        (table,) = [t for t in markdown_tables(md) if t[0][0].startswith("H0: row no better than column")]
        row = next(cells for cells in table[1:] if cells[0] == better)
        assert dict(zip(table[0], row, strict=True))[baseline] == ("<0.01" if p == 0 else f"{p:.3f}")
        assert verdict(summary, better, baseline).replace("**", "") in log
    assert seed_verdicts(summary, size.seeds).splitlines()[-1] in md


@pytest.mark.slow
@pytest.mark.e2e
def test_rerun_skips_finished_steps(demo):
    out, _ = demo
    report = out / "report" / "report.html"
    watched = [report, out / "wmh_stats" / "wmh_summary.json", *(out / "predictions").rglob("*.npz"),
               *(out / "nnUNet_results").rglob("checkpoint_best.pth")]
    before = {p: p.stat().st_mtime_ns for p in watched}
    t0 = time.time()
    result = _demo(out)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # steps 1-4, two trainings, alpha, two predictions, two threshold folders, wmh-stats, report (one seed)
    assert result.stdout.count("already done") == 13, result.stdout
    assert not [line for line in result.stdout.splitlines() if line.startswith("$ ")], "a command ran again"
    assert {p: p.stat().st_mtime_ns for p in watched} == before
    assert time.time() - t0 < 120


@pytest.mark.slow
@pytest.mark.e2e
def test_a_deleted_output_redoes_its_step_and_those_after_it(demo):
    out, _ = demo
    (out / "masks" / DemoSize.folder("SS", 0) / "threshold.json").unlink()
    kept = [out / "masks" / DemoSize.folder("SS+Loc", 0), out / "predictions"]
    before = {p: p.stat().st_mtime_ns for folder in kept for p in folder.rglob("*")}
    result = _demo(out)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "redoing threshold SS s0: threshold.json missing" in result.stdout
    for key in ("wmh-stats", "report"):   # they use the redone step's results
        assert f"redoing {key}: an earlier step was redone" in result.stdout, result.stdout
    assert "3 redone: threshold.json missing: threshold SS s0; an earlier step was redone: wmh-stats, report" \
        in result.stdout
    assert result.stdout.count("already done") == 13 - 3
    assert {p: p.stat().st_mtime_ns for folder in kept for p in folder.rglob("*")} == before
    assert (out / "masks" / DemoSize.folder("SS", 0) / "threshold.json").is_file()


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
