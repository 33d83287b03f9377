"""End to end: nnUNetv2_plan_and_preprocess -c 2d, five-fold nnUNetv2_train with WMHMSWSLocTrainer_smoke, one fold
of WMHSSTrainer_smoke, nnUNetv2_predict --save_probabilities, on a toy 10-channel WMH dataset made here."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

import nnunet_ataxia

DATASET_ID, DATASET_NAME = 987, "Dataset987_WMHToy"
SHAPE = (3, 24, 24)          # (z, y, x): thick axial slices, 2d configuration works on y, x
SPACING_XYZ = (1.0, 1.0, 5.0)
FINGERPRINT_SCRIPT = """
import sys
from nnunetv2.experiment_planning.dataset_fingerprint.fingerprint_extractor import DatasetFingerprintExtractor
if __name__ == "__main__":
    fe = DatasetFingerprintExtractor(int(sys.argv[1]), num_processes=1)
    fe.num_foreground_voxels_for_intensitystats = 10e4
    fe.run()
"""


def _write(arr: np.ndarray, path: Path) -> None:
    img = sitk.GetImageFromArray(arr.astype(np.float32 if arr.dtype.kind == "f" else np.uint8))
    img.SetSpacing(SPACING_XYZ)
    sitk.WriteImage(img, str(path))


def _normalize_in_mask(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-case [0, 1] inside the brain mask, exactly 0 outside (WMH location-channel convention)."""
    inside = values[mask]
    out = np.zeros(values.shape, np.float32)
    out[mask] = (inside - inside.min()) / max(float(inside.max() - inside.min()), 1e-6)
    return out


def make_toy_wmh_case(rng: np.random.Generator) -> tuple[list[np.ndarray], np.ndarray]:
    """T1, FLAIR, 8 location channels and labels {0, 1, 2} of one toy case: lesions next to fake ventricles."""
    z, y, x = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in SHAPE], indexing="ij")
    cy, cx = (SHAPE[1] - 1) / 2 + rng.uniform(-1, 1), (SHAPE[2] - 1) / 2 + rng.uniform(-1, 1)
    brain = ((y - cy) / 10.5) ** 2 + ((x - cx) / 9.5) ** 2 <= 1
    left_v = ((y - cy) / 3) ** 2 + ((x - (cx - 3)) / 1.5) ** 2 <= 1
    right_v = ((y - cy) / 3) ** 2 + ((x - (cx + 3)) / 1.5) ** 2 <= 1
    labels = np.zeros(SHAPE, np.uint8)
    for side in (-1, 1):
        ly, lx = cy + rng.uniform(-4, -3), cx + side * rng.uniform(4, 5.5)
        labels[((y - ly) ** 2 + (x - lx) ** 2 <= rng.uniform(1.5, 3.5)) & brain] = 1
    labels[((y - (cy + 6)) ** 2 + (x - cx) ** 2 <= 1.5) & brain & (z == 1)] = 2   # "other pathology"
    flair = np.where(brain, 0.5, 0.0) - 0.35 * (left_v | right_v) + 0.45 * (labels == 1) + 0.2 * (labels == 2)
    t1 = np.where(brain, 0.7, 0.0) - 0.5 * (left_v | right_v) - 0.2 * (labels == 1)
    flair = (flair + rng.normal(0, 0.03, SHAPE) * brain).astype(np.float32)
    t1 = (t1 + rng.normal(0, 0.03, SHAPE) * brain).astype(np.float32)
    ventricle_dist = [np.sqrt((y - cy) ** 2 + (x - (cx + s * 3)) ** 2) for s in (-1, 1)]
    cortex_dist = 1 - np.sqrt(((y - cy) / 10.5) ** 2 + ((x - cx) / 9.5) ** 2)
    features = [x, y, z, *ventricle_dist, cortex_dist, np.abs(x - cx), np.exp(-np.minimum(*ventricle_dist) / 4)]
    location = [_normalize_in_mask(f, brain) for f in features]
    return [t1, flair, *location], labels


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
            _write(arr, root / f"images{split}" / f"{case}_{c:04d}.nii.gz")
        _write(labels, root / f"labels{split}" / f"{case}.nii.gz")
    names = {"0": "T1", "1": "FLAIR", **{str(c): "noNorm" for c in range(2, 10)}}
    (root / "dataset.json").write_text(json.dumps({
        "channel_names": names, "labels": {"background": 0, "wmh": 1, "ignore": 2},
        "numTraining": n_train, "file_ending": ".nii.gz"}, indent=1))
    return root


def _env(tmp_path: Path) -> dict:
    ext = os.path.join(os.path.dirname(nnunet_ataxia.__file__), "nnunet_ext_trainers")
    env = dict(os.environ, nnUNet_raw=str(tmp_path / "raw"), nnUNet_preprocessed=str(tmp_path / "pre"),
               nnUNet_results=str(tmp_path / "res"), nnUNet_extTrainer=ext, nnUNet_n_proc_DA="0",
               nnUNet_def_n_proc="1", OMP_NUM_THREADS="2", nnUNet_compile="false")
    for k in ("raw", "pre", "res"):
        (tmp_path / k).mkdir(exist_ok=True)
    return env


def _run(cmd: list[str], env: dict) -> None:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("wmh_smoke")
    env = _env(tmp_path)
    make_toy_wmh_dataset(tmp_path / "raw")
    plan_env = {k: v for k, v in env.items() if k != "nnUNet_n_proc_DA"}  # the planner needs >= 1 thread
    # nnU-Net samples 10e7 foreground intensities per channel for the fingerprint (10 channels: ~12 GB RAM here);
    # write the fingerprint first with 10e4 samples; plan_and_preprocess then reuses it (no --clean)
    _run([sys.executable, "-c", FINGERPRINT_SCRIPT, str(DATASET_ID)], plan_env)
    _run(["nnUNetv2_plan_and_preprocess", "-d", str(DATASET_ID), "-c", "2d", "-np", "1", "-npfp", "1"], plan_env)
    for fold in range(5):
        _run(["nnUNetv2_train", str(DATASET_ID), "2d", str(fold), "-tr", "WMHMSWSLocTrainer_smoke",
              "-device", "cpu"], env)
    _run(["nnUNetv2_train", str(DATASET_ID), "2d", "0", "-tr", "WMHSSTrainer_smoke", "-device", "cpu"], env)
    pred = tmp_path / "pred"
    _run(["nnUNetv2_predict", "-d", str(DATASET_ID), "-c", "2d", "-tr", "WMHMSWSLocTrainer_smoke", "-f", "0", "1",
          "-i", str(tmp_path / "raw" / DATASET_NAME / "imagesTs"), "-o", str(pred), "--save_probabilities",
          "-device", "cpu", "-npp", "1", "-nps", "1"], env)
    return tmp_path, pred


def test_five_folds_trained_and_validated(smoke_run):
    tmp_path, _ = smoke_run
    base = tmp_path / "res" / DATASET_NAME / "WMHMSWSLocTrainer_smoke__nnUNetPlans__2d"
    validated = set()
    for fold in range(5):
        fold_dir = base / f"fold_{fold}"
        assert (fold_dir / "checkpoint_final.pth").is_file(), f"fold {fold}: no final checkpoint"
        summary = json.loads((fold_dir / "validation" / "summary.json").read_text())
        assert "mean" in summary and "1" in summary["mean"], f"fold {fold}: no WMH metrics in summary.json"
        validated |= {p.name for p in (fold_dir / "validation").glob("*.nii.gz")}
    assert validated == {f"wmh_{i:03d}.nii.gz" for i in range(10)}, "the five folds must validate every case once"
    ss = tmp_path / "res" / DATASET_NAME / "WMHSSTrainer_smoke__nnUNetPlans__2d" / "fold_0"
    assert (ss / "checkpoint_final.pth").is_file()


def test_checkpoint_holds_the_location_network(smoke_run):
    import torch
    tmp_path, _ = smoke_run
    ckpt = torch.load(tmp_path / "res" / DATASET_NAME / "WMHMSWSLocTrainer_smoke__nnUNetPlans__2d" / "fold_0" /
                      "checkpoint_final.pth", map_location="cpu", weights_only=False)
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
