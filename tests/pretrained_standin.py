"""A stand-in for the pretrained M2 while the package ships no zip (shared by tests/conftest.py's fixtures).

A tiny Dataset510-like dataset (generated subjects already on the MNI crop, labels 0/1/2: background, cerebellum,
brainstem) is planned with ``nnunet-ataxia plan`` and trained for one smoke epoch of
``M2InceptionTrainer_pretrained_smoke``, the pretrained trainer with a short schedule: the same network, labels and
nnU-Net model layout as the real model, so every command that uses the real one can run with it.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

from nnunet_ataxia.dataset_conversion.Dataset510_SynthCerebellumBrainstem import build_synthetic_dataset
from nnunet_ataxia.pretrained import release

SMOKE = "M2InceptionTrainer_pretrained_smoke"


def nnunet_env(root: Path, results: bool = True) -> dict:
    """nnU-Net's folders under ``root`` (raw, preprocessed, results), this plugin's trainers, one thread."""
    env = dict(os.environ, nnUNet_raw=str(root / "raw"), nnUNet_preprocessed=str(root / "preprocessed"),
               nnUNet_results=str(root / "results"), nnUNet_extTrainer=str(
                   Path(release.__file__).resolve().parent.parent / "nnunet_ext_trainers"),
               nnUNet_n_proc_DA="0", nnUNet_def_n_proc="1", nnUNet_compile="false", OMP_NUM_THREADS="1")
    if not results:
        env.pop("nnUNet_results")
    return env


def run_checked(cmd: list, env: dict) -> subprocess.CompletedProcess:
    """Run a command; fail the test with its output's tail when it fails."""
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env)
    assert result.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{result.stdout[-3000:]}\n" \
                                   f"{result.stderr[-3000:]}"
    return result


def build_workspace(root: Path) -> tuple[Path, dict]:
    """``root/{raw,preprocessed,results}`` with a raw Dataset510-like dataset: 2 training + 1 validation subjects."""
    for sub in ("raw", "preprocessed", "results"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    raw = build_synthetic_dataset(2, 1, output=root / "raw" / release.DATASET_NAME)
    return raw, nnunet_env(root)


def train_standin(root: Path, env: dict) -> Path:
    """Plan the workspace's dataset and train one smoke epoch; returns the nnU-Net model folder."""
    run_checked(["nnunet-ataxia", "plan", "-d", release.DATASET_ID, "-np", 1], env)
    run_checked(["nnUNetv2_train", release.DATASET_ID, release.CONFIGURATION, release.FOLD, "-p", release.PLANS,
                 "-tr", SMOKE, "-device", "cpu"], env)
    folder = root / "results" / release.DATASET_NAME / release.model_dir_name(SMOKE)
    assert (folder / f"fold_{release.FOLD}" / "checkpoint_final.pth").is_file()
    return folder
