"""The README's main job (`nnunet-ataxia demo`) end to end in its --quick form, and its re-run."""
import json
import subprocess

import pandas as pd


def test_quick_demo_runs_every_step_and_rerun_skips_finished_steps(tmp_path):
    out = tmp_path / "demo"
    result = subprocess.run(["nnunet-ataxia", "demo", "--out", str(out), "--quick", "-np", "2"],
                            capture_output=True, text=True)
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

    rerun = subprocess.run(["nnunet-ataxia", "demo", "--out", str(out), "--quick", "-np", "2"],
                           capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert rerun.stdout.count("already done") == 4
