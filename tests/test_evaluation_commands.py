"""`nnunet-ataxia evaluate` and `report` end to end on tiny hand-built label maps."""
import json

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from markdown_tables import tables_with_header

from nnunet_ataxia.cli import main

SPACING = (1.0, 1.0, 2.0)  # x, y, z (SimpleITK order)


def write(arr, path, spacing=SPACING, origin=(0.0, 0.0, 0.0)):
    img = sitk.GetImageFromArray(np.asarray(arr, np.uint8))
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(img, str(path))


def reference(shape=(10, 16, 16)):
    """brainstem = 1 (4x4x4 block), cerebellum = 2 (6x6x6 block); arrays are (z, y, x)."""
    a = np.zeros(shape, np.uint8)
    a[1:5, 2:6, 2:6] = 1
    a[2:8, 8:14, 8:14] = 2
    return a


@pytest.fixture()
def dataset(tmp_path):
    cases = ["case_000", "case_001", "case_002"]
    dj = {"labels": {"background": 0, "brainstem": 1, "cerebellum": 2}, "file_ending": ".nii.gz",
          "channel_names": {"0": "T1"}, "numTraining": 3}
    (tmp_path / "dataset.json").write_text(json.dumps(dj))
    for c in cases:
        write(reference(), tmp_path / "labelsTr" / f"{c}.nii.gz")
    # method "exact": perfect, split over two fold folders; method "shifted": cerebellum moved 2 voxels along x
    for i, c in enumerate(cases):
        write(reference(), tmp_path / "exact" / f"fold_{i % 2}" / "validation" / f"{c}.nii.gz")
        s = reference()
        s[s == 2] = 0
        s[2:8, 8:14, 10:16] = 2
        write(s, tmp_path / "shifted" / f"{c}.nii.gz")
    pd.DataFrame({"case_id": cases, "group": ["control", "control", "sca2"], "source": "sca2",
                  "subject": ["s1", "s2", "s3"]}).to_csv(tmp_path / "participants.tsv", sep="\t", index=False)
    return tmp_path


def run_eval(d, out, *preds, extra=()):
    argv = ["evaluate", "--ref", str(d / "labelsTr"), "--dataset-json", str(d / "dataset.json"), "--out", str(out)]
    for p in preds:
        argv += ["--pred", p]
    return main(argv + list(extra))


def test_evaluate_two_methods_merged_folds_and_groups(dataset):
    out = dataset / "eval"
    rc = run_eval(dataset, out, f"exact={dataset}/exact/fold_*/validation", f"shifted={dataset}/shifted",
                  extra=["--participants", str(dataset / "participants.tsv")])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["methods"] == ["exact", "shifted"]
    ex, sh = summary["per_method"]["exact"], summary["per_method"]["shifted"]
    assert len(ex["metric_per_case"]) == 3
    assert ex["mean"]["cerebellum"]["Dice"] == 1.0 and ex["foreground_mean"]["Dice"] == 1.0
    # 6x6x6 cube shifted by 2 along x: overlap 6*6*4 -> Dice 4/6, JI 4/8, SN 4/6; HD95 2 voxels * 1 mm
    assert sh["mean"]["cerebellum"]["Dice"] == pytest.approx(4 / 6)
    assert sh["mean"]["cerebellum"]["Jaccard"] == pytest.approx(4 / 8)
    assert sh["mean"]["cerebellum"]["Sensitivity"] == pytest.approx(4 / 6)
    n_bg = 10 * 16 * 16 - 216
    assert sh["mean"]["cerebellum"]["Specificity"] == pytest.approx((n_bg - 72) / n_bg)
    assert sh["mean"]["cerebellum"]["HD95_mm"] == pytest.approx(2.0)
    assert sh["mean"]["brainstem"]["Dice"] == 1.0
    # volumes use the 2 mm slice spacing: 216 voxels * 2 mm^3
    assert ex["mean"]["cerebellum"]["volume_ref_mm3"] == pytest.approx(432.0)
    assert sh["n_per_group"] == {"control": 2, "sca2": 1}
    assert sh["mean_per_group"]["sca2"]["cerebellum"]["Dice"] == pytest.approx(4 / 6)
    per_case = pd.read_csv(out / "per_case.csv")
    assert len(per_case) == 2 * 3 * 2 and set(per_case["group"]) == {"control", "sca2"}
    table = (out / "table.md").read_text()
    overall = tables_with_header(table, "Method", "Brainstem")[0]
    assert overall[0] == ["Method", "Brainstem", "", "", "", "Cerebellum", "", "", ""]
    assert overall[1] == ["", "DSC", "JI", "SP", "SN", "DSC", "JI", "SP", "SN"]
    row = next(cells for cells in overall if cells[0] == "shifted")
    assert row[5] == "0.667"  # cerebellum DSC
    assert "### Group: sca2 (n = 1)" in table


def test_evaluate_brain_mask_and_ignore_label(tmp_path):
    dj = {"labels": {"background": 0, "wmh": 1, "ignore": 2}, "file_ending": ".nii.gz"}
    (tmp_path / "dataset.json").write_text(json.dumps(dj))
    ref = np.zeros((4, 10, 10), np.uint8)
    ref[1:3, 2:5, 2:5] = 1
    ref[1:3, 7:9, 7:9] = 2            # ignore: predicted WMH here must not count
    pred = (ref > 0).astype(np.uint8)
    pred[:, 0, :] = 1                 # false positives outside the brain mask
    brain = np.ones_like(ref)
    brain[:, 0, :] = 0
    write(ref, tmp_path / "ref" / "c1.nii.gz")
    write(pred, tmp_path / "pred" / "c1.nii.gz")
    write(brain, tmp_path / "brain" / "c1.nii.gz")
    rc = main(["evaluate", "--ref", str(tmp_path / "ref"), "--pred", str(tmp_path / "pred"), "--dataset-json",
               str(tmp_path / "dataset.json"), "--out", str(tmp_path / "o"), "--brain-masks", str(tmp_path / "brain")])
    assert rc == 0
    m = json.loads((tmp_path / "o" / "summary.json").read_text())["per_method"]["nnU-Net"]["mean"]["wmh"]
    assert m["Dice"] == 1.0 and m["FP"] == 0 and m["lesion_f1"] == 1.0 and m["AVD_pct"] == 0.0
    rc = main(["evaluate", "--ref", str(tmp_path / "ref"), "--pred", str(tmp_path / "pred"), "--dataset-json",
               str(tmp_path / "dataset.json"), "--out", str(tmp_path / "o2")])
    m2 = json.loads((tmp_path / "o2" / "summary.json").read_text())["per_method"]["nnU-Net"]["mean"]["wmh"]
    assert rc == 0 and m2["FP"] == 4 * 10 and m2["lesion_recall"] == 1.0


@pytest.mark.parametrize("problem", ["geometry", "missing", "label"])
def test_bad_input_names_the_case_and_writes_nothing(dataset, capsys, problem):
    pred = dataset / "bad"
    for c in ["case_000", "case_001", "case_002"]:
        write(reference(), pred / f"{c}.nii.gz")
    if problem == "geometry":
        write(reference(), pred / "case_001.nii.gz", spacing=(1.0, 1.0, 3.0))
    elif problem == "missing":
        (pred / "case_002.nii.gz").unlink()
    else:
        a = reference()
        a[0, 0, 0] = 7
        write(a, pred / "case_001.nii.gz")
    out = dataset / "eval_bad"
    rc = run_eval(dataset, out, str(pred))
    err = capsys.readouterr().err
    assert rc == 1
    assert err.startswith("error: ") and err.count("\n") == 1
    assert ("case_002" if problem == "missing" else "case_001") in err
    assert {"geometry": "geometry", "missing": "no prediction", "label": "[7]"}[problem] in err
    assert not out.exists()
    assert not [p for p in dataset.iterdir() if p.name.startswith(".eval_bad")]


def test_report_gathers_evaluation_and_volumes(dataset, tmp_path):
    from pathlib import Path
    assert run_eval(dataset, dataset / "eval", f"M2={dataset}/shifted") == 0
    fixture = Path(__file__).parent / "fixtures" / "cabeza_ruiz_table4.csv"
    assert main(["compare-volumes", "--volumes-csv", str(fixture), "--model-name", "WDA",
                 "--out", str(dataset / "vol")]) == 0
    out = tmp_path / "report"
    assert main(["report", "--out", str(out), "--title", "Demo experiment", "--evaluation", str(dataset / "eval"),
                 "--volumes", str(dataset / "vol")]) == 0
    md = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    assert md.startswith("# Demo experiment")
    assert "## Segmentation accuracy" in md and "## Cerebellar volumes" in md
    assert "(figures/volumes_bland_altman.png)" in md and (out / "figures" / "volumes_bland_altman.png").is_file()
    assert html.count("data:image/png;base64,") == 2
    assert "<th>Method</th>" in html and "<td>M2</td>" in html
    assert main(["report", "--out", str(tmp_path / "r2"), "--evaluation", str(tmp_path / "nowhere")]) == 1
    assert not (tmp_path / "r2").exists()
