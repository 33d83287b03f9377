"""End to end: nnUNetv2_plan_and_preprocess -c 2d, five-fold nnUNetv2_train with WMHMSWSLocTrainer_smoke, one fold
of WMHSSTrainer_smoke, nnUNetv2_predict --save_probabilities, on a toy 10-channel WMH dataset made here."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from nnunet_helpers import nnunet_env, plan_and_preprocess_2d, run_checked, run_checked_two_at_a_time
from wmh_toy_data import SHAPE, make_toy_wmh_case, write_image

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

DATASET_ID, DATASET_NAME = 987, "Dataset987_WMHToy"


def make_toy_wmh_dataset(raw_root: Path, n_train: int = 10, n_test: int = 2, seed: int = 0) -> Path:
    """Write a 10-channel nnU-Net raw dataset (WMH conventions) under ``raw_root``; returns its folder."""
    rng = np.random.default_rng(seed)
    root = raw_root / DATASET_NAME
    for sub in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n_train + n_test):
        split = "Tr" if i < n_train else "Ts"
        case = f"wmh_{i:03d}"
        channels, labels = make_toy_wmh_case(rng)
        for c, arr in enumerate(channels):
            write_image(arr, root / f"images{split}" / f"{case}_{c:04d}.nii.gz")
        write_image(labels, root / f"labels{split}" / f"{case}.nii.gz")
    names = {"0": "T1", "1": "FLAIR", **{str(c): "noNorm" for c in range(2, 10)}}
    (root / "dataset.json").write_text(json.dumps({
        "channel_names": names, "labels": {"background": 0, "wmh": 1, "ignore": 2},
        "numTraining": n_train, "file_ending": ".nii.gz"}, indent=1))
    return root


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("wmh_smoke")
    env = nnunet_env(tmp_path, OMP_NUM_THREADS="2")
    make_toy_wmh_dataset(tmp_path / "nnUNet_raw")
    plan_and_preprocess_2d(DATASET_ID, env)
    run_checked_two_at_a_time(
        [["nnUNetv2_train", DATASET_ID, "2d", fold, "-tr", "WMHMSWSLocTrainer_smoke", "-device", "cpu"]
         for fold in range(5)]
        + [["nnUNetv2_train", DATASET_ID, "2d", 0, "-tr", "WMHSSTrainer_smoke", "-device", "cpu"]], env)
    pred = tmp_path / "pred"
    run_checked(["nnUNetv2_predict", "-d", str(DATASET_ID), "-c", "2d", "-tr", "WMHMSWSLocTrainer_smoke", "-f", "0",
                 "1", "-i", str(tmp_path / "nnUNet_raw" / DATASET_NAME / "imagesTs"), "-o", str(pred),
                 "--save_probabilities", "-device", "cpu", "-npp", "1", "-nps", "1"], env)
    return tmp_path, pred


def test_five_folds_trained_and_validated(smoke_run):
    tmp_path, _ = smoke_run
    base = tmp_path / "nnUNet_results" / DATASET_NAME / "WMHMSWSLocTrainer_smoke__nnUNetPlans__2d"
    validated = set()
    for fold in range(5):
        fold_dir = base / f"fold_{fold}"
        assert (fold_dir / "checkpoint_final.pth").is_file(), f"fold {fold}: no final checkpoint"
        summary = json.loads((fold_dir / "validation" / "summary.json").read_text())
        assert "mean" in summary and "1" in summary["mean"], f"fold {fold}: no WMH metrics in summary.json"
        validated |= {p.name for p in (fold_dir / "validation").glob("*.nii.gz")}
    assert validated == {f"wmh_{i:03d}.nii.gz" for i in range(10)}, "the five folds must validate every case once"
    ss = tmp_path / "nnUNet_results" / DATASET_NAME / "WMHSSTrainer_smoke__nnUNetPlans__2d" / "fold_0"
    assert (ss / "checkpoint_final.pth").is_file()


def test_checkpoint_holds_the_location_network(smoke_run):
    import torch
    tmp_path, _ = smoke_run
    ckpt = torch.load(tmp_path / "nnUNet_results" / DATASET_NAME / "WMHMSWSLocTrainer_smoke__nnUNetPlans__2d" /
                      "fold_0" / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    assert ckpt["trainer_name"] == "WMHMSWSLocTrainer_smoke"
    weights = ckpt["network_weights"]
    assert float(weights["location_alpha"]) == 1.0
    assert weights["fc2.weight"].shape == (200, 3 * 300 + 8), "MSWS+Loc: 3 scale streams + 8 location features"
    assert ckpt["inference_allowed_mirroring_axes"] is None


def test_predict_writes_probability_maps(smoke_run):
    tmp_path, pred = smoke_run
    for case in ("wmh_010", "wmh_011"):
        seg = sitk.GetArrayFromImage(sitk.ReadImage(str(pred / f"{case}.nii.gz")))
        assert seg.shape == SHAPE and set(np.unique(seg)) <= {0, 1}
        probs = np.load(pred / f"{case}.npz")["probabilities"]
        assert probs.shape == (2, *SHAPE), f"{case}: probabilities of shape {probs.shape}"
        assert np.allclose(probs.sum(0), 1, atol=1e-4) and probs.min() >= 0
        assert np.array_equal(seg, probs.argmax(0)), "segmentation must be the argmax of the saved probabilities"
