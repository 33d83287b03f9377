"""The README's main job (`nnunet-ataxia demo`) end to end in its --quick form, and its re-run.

The pretrained M2 is the shipped one when the package has it, otherwise the test suite's stand-in (tests/conftest.py:
one smoke epoch of the pretrained trainer, exported like the shipped zip).
"""
import json
import re
import subprocess

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from markdown_tables import tables_with_header

from nnunet_ataxia.pretrained import release

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

SHIPPED_ZIP = release.PACKAGE_DATA / release.ZIP_NAME


def _array(path):
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def _table_rows(md: str, *header_start: str) -> dict[str, list[str]]:
    """``{first cell: cells}`` of the rows of the Markdown tables whose header starts with ``header_start`` (the
    first row of that name wins: the overall tables come before the per-group ones)."""
    rows: dict[str, list[str]] = {}
    for table in tables_with_header(md, *header_start):
        for cells in table[1:]:
            rows.setdefault(cells[0], cells)
    return rows


def test_quick_demo_runs_every_step_and_rerun_skips_finished_steps(tmp_path, request):
    out = tmp_path / "demo"
    model = [] if SHIPPED_ZIP.is_file() else ["--pretrained-zip", str(request.getfixturevalue("standin_zip"))]
    demo = ["nnunet-ataxia", "demo", "--out", str(out), "--quick", "-np", "2", *model]
    result = subprocess.run(demo, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    raw = out / "nnUNet_raw" / "Dataset503_Data2"
    # the real converters and the paper's preprocessing produced the raw dataset and its transforms
    assert (raw / "dataset.json").is_file() and (raw / "splits_final.json").is_file()
    participants = pd.read_csv(raw / "participants.tsv", sep="\t")
    assert set(participants.source) == {"hammers", "sca2"}
    test_cases = sorted(p.name[: -len(".nii.gz")] for p in (raw / "labelsTs").glob("*.nii.gz"))
    assert test_cases and all((raw / "transforms" / c / "mni_to_native.tfm").is_file() for c in test_cases)
    # predictions for every test case, mapped back to native space
    assert all((out / "predictions" / f"{c}.nii.gz").is_file() for c in test_cases)
    assert all((out / "predictions_native" / f"{c}.nii.gz").is_file() for c in test_cases)
    summary = json.loads((out / "evaluation" / "summary.json").read_text())
    assert len(summary["per_method"]["M2"]["metric_per_case"]) == len(test_cases)
    # Table 4: every SCA2 test subject has ground truth, model and ACAPULCO volumes
    sca2_test = set(participants[participants.source == "sca2"].case_id) & set(test_cases)
    if sca2_test:
        volumes = pd.read_csv(out / "volumes" / "volumes.csv")
        assert set(volumes.case_id) == sca2_test
        assert (volumes[["ground_truth", "acapulco"]] > 0).all().all()
    report = (out / "report" / "report.html").read_text()
    assert "Segmentation" in report and "<img" in report

    # step 2: the pretrained model segmented exactly the test split's subjects from their native T1 scans
    segmented = pd.read_csv(out / "pretrained" / "segment" / "volumes.csv")
    assert sorted(segmented["case"]) == test_cases and (segmented["status"] == "ok").all()
    for case in test_cases:  # reduced to the cerebellum (label 1) for the comparison, on the native grid
        seg = _array(out / "pretrained" / "segment" / case / f"{case}_seg.nii.gz")
        np.testing.assert_array_equal(_array(out / "pretrained" / "cerebellum_native" / f"{case}.nii.gz"), seg == 1)
    # side by side in the report: native-space Dice and volumes of both models, recomputed from the written masks
    # against the ground truth read from the demo's own sources
    md = (out / "report" / "report.md").read_text()
    subjects = participants.set_index("case_id")
    truth = {}
    for case in test_cases:
        subject = subjects.loc[case, "subject"]
        if subjects.loc[case, "source"] == "sca2":
            truth[case] = _array(out / "demo_data" / "sca2" / "derivatives" / "manual" / subject / "anat" /
                                 f"{subject}_desc-cerebellum_mask.nii.gz") > 0
        else:
            truth[case] = np.isin(_array(out / "demo_data" / "hammers" / f"{subject}-seg.nii.gz"), (17, 18))
    dice_rows = _table_rows(md, "Method", "Cerebellum")
    volume_rows = _table_rows(md, "Method", "Structure")
    for name, folder in (("pretrained M2", out / "pretrained" / "cerebellum_native"),
                         ("trained M2", out / "predictions_native")):
        dice, volume = [], []
        for case in test_cases:
            image = sitk.ReadImage(str(folder / f"{case}.nii.gz"))
            pred = sitk.GetArrayFromImage(image) == 1
            dice.append(2 * np.count_nonzero(pred & truth[case]) / (pred.sum() + truth[case].sum()))
            volume.append(pred.sum() * np.prod(image.GetSpacing()))
        assert float(dice_rows[name][1]) == pytest.approx(np.mean(dice), abs=6e-4)
        assert float(volume_rows[name][4]) == pytest.approx(np.mean(volume), rel=1e-6, abs=6e-3)  # V pred (mm³)
        if name == "pretrained M2" and sca2_test:  # the per-subject volume table (Table 4 layout)
            table = _table_rows(md, "Subject", "Ground truth", "pretrained M2")
            rows = {re.sub(r"\s*\*+$", "", k): r for k, r in table.items()}
            assert sorted(rows) == sorted(sca2_test)
            for case, r in rows.items():
                assert abs(int(r[2]) - volume[test_cases.index(case)]) <= 1
    for case in test_cases:  # both models' QC pictures, each case's pair side by side
        pair = [f"![{case}: pretrained M2](figures/qc_pretrained_M2_{case}.png)",
                f"![{case}: trained M2](figures/qc_trained_M2_{case}.png)"]
        assert "\n\n".join(pair) in md
        assert all((out / "report" / "figures" / f"qc_{m}_{case}.png").stat().st_size > 10_000
                   for m in ("pretrained_M2", "trained_M2"))
    assert report.count("data:image/png;base64,") >= 2 * len(test_cases) + 2

    rerun = subprocess.run(demo, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert rerun.stdout.count("already done") == 6  # data, pretrained, convert, plan, train, predict
    assert "6 step(s) done before with the same options, skipped" in rerun.stdout
