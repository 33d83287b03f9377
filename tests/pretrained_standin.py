"""A stand-in for the pretrained M2 while the package ships no zip (shared by tests/conftest.py's fixtures).

A tiny Dataset510-like dataset (generated subjects already on the MNI crop, labels 0/1/2: background, cerebellum,
brainstem) is planned with ``nnunet-ataxia plan`` and trained for one smoke epoch of
``M2InceptionTrainer_pretrained_smoke``, the pretrained trainer with a short schedule: the same network, labels and
nnU-Net model layout as the real model, so every command that uses the real one can run with it.
"""
from __future__ import annotations

from pathlib import Path

from nnunet_helpers import nnunet_env, run_checked

from nnunet_ataxia.dataset_conversion.Dataset510_SynthCerebellumBrainstem import build_synthetic_dataset
from nnunet_ataxia.pretrained import release

SMOKE = "M2InceptionTrainer_pretrained_smoke"


def build_workspace(root: Path) -> tuple[Path, dict]:
    """``root/nnUNet_{raw,preprocessed,results}`` with a raw Dataset510-like dataset: 2 training + 1 validation
    subjects; returns the dataset folder and the nnU-Net environment (one thread)."""
    env = nnunet_env(root, OMP_NUM_THREADS="1")
    raw = build_synthetic_dataset(2, 1, output=root / "nnUNet_raw" / release.DATASET_NAME)
    return raw, env


def train_standin(root: Path, env: dict) -> Path:
    """Plan the workspace's dataset and train one smoke epoch; returns the nnU-Net model folder."""
    run_checked(["nnunet-ataxia", "plan", "-d", release.DATASET_ID, "-np", 1], env)
    run_checked(["nnUNetv2_train", release.DATASET_ID, release.CONFIGURATION, release.FOLD, "-p", release.PLANS,
                 "-tr", SMOKE, "-device", "cpu"], env)
    folder = root / "nnUNet_results" / release.DATASET_NAME / release.model_dir_name(SMOKE)
    assert (folder / f"fold_{release.FOLD}" / "checkpoint_final.pth").is_file()
    return folder
