"""The real nnU-Net commands, end to end, on a small generated dataset (CPU).

plan (fixed 128 planner) → nnUNetv2_train, five folds of M2InceptionTrainer_smoke + one fold of M1Trainer_smoke →
nnUNetv2_find_best_configuration → nnUNetv2_predict → nnUNetv2_evaluate_folder; plus nnU-Net's default plans and
the clear errors for bad input.
"""
import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
from nnunet_helpers import nnunet_env, run_checked_two_at_a_time
from nnunet_helpers import run_checked as _run
from synthetic_data import write_toy_cerebellum_dataset

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

DATASET_ID = 990
PLANS = "nnUNetFixed128Plans"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("nnunet")
    env = nnunet_env(root)
    raw = write_toy_cerebellum_dataset(root / "nnUNet_raw", DATASET_ID, n_cases=6, seed=1)
    # hold one case out as the test set
    (raw / "imagesTs").mkdir()
    (raw / "labelsTs").mkdir()
    shutil.move(raw / "imagesTr" / "toy_005_0000.nii.gz", raw / "imagesTs" / "toy_005_0000.nii.gz")
    shutil.move(raw / "labelsTr" / "toy_005.nii.gz", raw / "labelsTs" / "toy_005.nii.gz")
    dataset_json = json.loads((raw / "dataset.json").read_text())
    dataset_json["numTraining"] = 5
    (raw / "dataset.json").write_text(json.dumps(dataset_json))
    return root, raw, env


@pytest.fixture(scope="module")
def planned(workspace):
    root, raw, env = workspace
    _run(["nnunet-ataxia", "plan", "-d", DATASET_ID, "-np", "1"], env)
    return workspace


def test_fixed_planner_writes_spacing_patch_and_axis_order(planned):
    root, raw, env = planned
    plans = json.loads((root / "nnUNet_preprocessed" / raw.name / f"{PLANS}.json").read_text())
    config = plans["configurations"]["3d_fullres"]
    assert plans["plans_name"] == PLANS
    assert config["spacing"] == [1.0, 1.0, 1.0]
    assert config["patch_size"] == [96, 128, 128]  # 128 x 128 x 96 in (x, y, z)
    assert config["batch_size"] == 2
    assert plans["transpose_forward"] == [0, 1, 2] and plans["transpose_backward"] == [0, 1, 2]
    assert "3d_lowres" not in plans["configurations"]
    # the default U-Net entry is consistent with the fixed patch (so nnUNetTrainer can train these plans too)
    strides = np.array(config["architecture"]["arch_kwargs"]["strides"])
    assert np.all(np.array(config["patch_size"]) % strides.prod(axis=0) == 0)
    assert (root / "nnUNet_preprocessed" / raw.name / f"{PLANS}_3d_fullres").is_dir()


def test_five_fold_cross_validation_predict_and_evaluate(planned):
    root, raw, env = planned
    trainer = "M2InceptionTrainer_smoke"
    run_checked_two_at_a_time(
        [["nnUNetv2_train", DATASET_ID, "3d_fullres", fold, "-p", PLANS, "-tr", trainer, "-device", "cpu"]
         for fold in range(5)]
        + [["nnUNetv2_train", DATASET_ID, "3d_fullres", 0, "-p", PLANS, "-tr", "M1Trainer_smoke", "-device", "cpu"]],
        env)
    results = root / "nnUNet_results" / raw.name
    for fold in range(5):
        assert (results / f"{trainer}__{PLANS}__3d_fullres" / f"fold_{fold}" / "checkpoint_final.pth").is_file()
    assert (results / f"M1Trainer_smoke__{PLANS}__3d_fullres" / "fold_0" / "checkpoint_final.pth").is_file()

    _run(["nnUNetv2_find_best_configuration", DATASET_ID, "-c", "3d_fullres", "-p", PLANS, "-tr", trainer,
          "-f", 0, 1, 2, 3, 4], env)
    assert (results / "inference_information.json").is_file()

    pred = root / "pred"
    _run(["nnUNetv2_predict", "-i", raw / "imagesTs", "-o", pred, "-d", DATASET_ID, "-c", "3d_fullres", "-p", PLANS,
          "-tr", trainer, "-f", 0, 1, 2, 3, 4, "-device", "cpu", "-npp", 1, "-nps", 1], env)
    reference = sitk.ReadImage(str(raw / "imagesTs" / "toy_005_0000.nii.gz"))
    prediction = sitk.ReadImage(str(pred / "toy_005.nii.gz"))
    assert prediction.GetSize() == reference.GetSize()
    assert np.allclose(prediction.GetSpacing(), reference.GetSpacing())
    assert np.allclose(prediction.GetOrigin(), reference.GetOrigin())
    assert set(np.unique(sitk.GetArrayFromImage(prediction))) <= {0, 1, 2}

    _run(["nnUNetv2_evaluate_folder", raw / "labelsTs", pred, "-djfile", pred / "dataset.json",
          "-pfile", pred / "plans.json"], env)
    summary = json.loads((pred / "summary.json").read_text())
    assert set(summary["mean"]) == {"1", "2"}
    assert 0.0 <= summary["foreground_mean"]["Dice"] <= 1.0
    assert len(summary["metric_per_case"]) == 1


def test_default_nnunet_plans_patch_is_adapted_and_predicts(workspace, tmp_path):
    root, raw, env = workspace
    # nnU-Net's planner calls torch.set_num_threads(nnUNet_n_proc_DA), which fails for 0
    _run(["nnUNetv2_plan_and_preprocess", "-d", DATASET_ID, "-c", "3d_fullres", "-np", 1],
         dict(env, nnUNet_n_proc_DA="1"))
    default_patch = json.loads((root / "nnUNet_preprocessed" / raw.name / "nnUNetPlans.json").read_text())[
        "configurations"]["3d_fullres"]["patch_size"]
    _run(["nnUNetv2_train", DATASET_ID, "3d_fullres", 1, "-tr", "M2InceptionTrainer_smoke", "-device", "cpu"], env)
    out = root / "nnUNet_results" / raw.name / "M2InceptionTrainer_smoke__nnUNetPlans__3d_fullres"
    adapted = json.loads((out / "plans.json").read_text())["configurations"]["3d_fullres"]["patch_size"]
    assert all(a % 16 == 0 and a >= d for a, d in zip(adapted, default_patch, strict=False))
    assert (out / "fold_1" / "checkpoint_final.pth").is_file()
    pred = tmp_path / "pred_default"
    _run(["nnUNetv2_predict", "-i", raw / "imagesTs", "-o", pred, "-d", DATASET_ID, "-c", "3d_fullres",
          "-tr", "M2InceptionTrainer_smoke", "-f", 1, "-device", "cpu", "-npp", 1, "-nps", 1], env)
    assert (pred / "toy_005.nii.gz").is_file()


def test_trainer_refuses_a_2d_patch_with_one_clear_message(planned):
    root, raw, env = planned
    result = _run(["nnUNetv2_train", DATASET_ID, "2d", 0, "-p", PLANS, "-tr", "M2InceptionTrainer", "-device",
                   "cpu"], env, expect_ok=False)
    assert result.returncode != 0
    assert "M2InceptionUNet" in result.stderr and "3D configuration" in result.stderr
    assert "Traceback" not in result.stderr


def test_plan_bad_input_gives_one_clear_message(workspace, tmp_path):
    root, raw, env = workspace
    result = _run(["nnunet-ataxia", "plan", "-d", 987], env, expect_ok=False)
    assert result.returncode == 1
    assert "no such dataset" in result.stderr and "Traceback" not in result.stderr
    broken = root / "nnUNet_raw" / "Dataset986_NoJson"
    (broken / "imagesTr").mkdir(parents=True)
    result = _run(["nnunet-ataxia", "plan", "-d", 986], env, expect_ok=False)
    assert result.returncode == 1
    assert "dataset.json" in result.stderr and "missing" in result.stderr and "Traceback" not in result.stderr
    shutil.rmtree(broken)
