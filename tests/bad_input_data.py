"""Tiny valid inputs for every sub-command (8-16 voxels a side), which tests/test_bad_inputs.py then breaks."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk


@dataclass
class Bad:
    argv: list
    file: str                 # must appear in the error line (a file, folder or case name)
    keywords: tuple           # at least one must appear (case-insensitive)
    code: int = 1


CASES = []


def case(fn):
    CASES.append(pytest.param(fn, id=fn.__name__))
    return fn


def foreign_folder(path: Path) -> Path:
    """A folder holding a user's own files (no nnunet-ataxia marker)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "thesis.tex").write_text("years of work")
    return path


OVERWRITE = ("overwrite",)
OVERLAP = ("input",)
INTEGER = ("integer", "whole number")
GEOMETRY = ("geometry", "grid")


LABELS = {"background": 0, "cerebellum": 1, "brainstem": 2}
SHAPE = (8, 10, 12)  # (z, y, x)


def write(array, path: Path, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0), direction=None) -> Path:
    """Write a (z, y, x) array as NIfTI with the given geometry."""
    img = sitk.GetImageFromArray(np.asarray(array))
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    if direction is not None:
        img.SetDirection(direction)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(img, str(path))
    return path


def label_map(seed: int = 0, shape=SHAPE) -> np.ndarray:
    """Cerebellum (1) and brainstem (2) blocks, slightly different per seed."""
    a = np.zeros(shape, np.uint8)
    s = seed % 2
    a[1:5, 2 + s:7, 2:7] = 1
    a[4:7, 6:9, 7 + s:11] = 2
    return a


def t1_like(seed: int = 0, shape=SHAPE) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (100 + 50 * label_map(seed, shape) + rng.normal(0, 5, shape)).astype(np.float32)


def snapshot(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file and 'dir' for every folder under ``root`` (hidden ones included)."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        out[rel] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


# ------------------------------------------------------------------------------------------------- evaluation
def evaluation_inputs(root: Path, cases=("c1", "c2")) -> dict[str, Path]:
    """dataset.json, labelsTr/<case>, pred/<case> (perfect predictions), participants.tsv."""
    (root / "dataset.json").parent.mkdir(parents=True, exist_ok=True)
    (root / "dataset.json").write_text(json.dumps({"labels": LABELS, "channel_names": {"0": "T1"},
                                                   "file_ending": ".nii.gz", "numTraining": len(cases)}))
    for i, c in enumerate(cases):
        write(label_map(i), root / "labelsTr" / f"{c}.nii.gz")
        write(label_map(i), root / "pred" / f"{c}.nii.gz")
    pd.DataFrame({"case_id": list(cases), "group": ["control", "sca2"][: len(cases)]}).to_csv(
        root / "participants.tsv", sep="\t", index=False)
    return {"dj": root / "dataset.json", "ref": root / "labelsTr", "pred": root / "pred",
            "participants": root / "participants.tsv"}


def evaluate_argv(d: dict, out: Path, *extra) -> list[str]:
    return ["evaluate", "--pred", str(d["pred"]), "--ref", str(d["ref"]), "--dataset-json", str(d["dj"]),
            "--out", str(out), "--no-hd95", *map(str, extra)]


def volume_inputs(root: Path, cases=("s1", "s2")) -> dict[str, Path]:
    """Native-space ground truth and prediction masks (value 1) and a volumes CSV."""
    for i, c in enumerate(cases):
        gt = (label_map(i) == 1).astype(np.uint8)
        pred = gt.copy()
        pred[5, 2:5, 2:5] = 1
        write(gt, root / "gt" / f"{c}.nii.gz", spacing=(0.9, 0.9, 1.2))
        write(pred, root / "native_pred" / f"{c}.nii.gz", spacing=(0.9, 0.9, 1.2))
    csv = root / "volumes.csv"
    pd.DataFrame({"case_id": ["1", "2", "3"], "group": ["control", "presymptomatic", "sca2"],
                  "ground_truth": [140000.0, 150000.0, 120000.0], "model": [141000.0, 149000.0, 125000.0]}
                 ).to_csv(csv, index=False)
    return {"gt": root / "gt", "pred": root / "native_pred", "csv": csv}


def volumes_argv(d: dict, out: Path, *extra) -> list[str]:
    return ["compare-volumes", "--ref", str(d["gt"]), "--pred", str(d["pred"]), "--labels", "1", "--out", str(out),
            *map(str, extra)]


# ------------------------------------------------------------------------------------------------------- WMH
def wmh_inputs(root: Path, cases=("w1", "w2"), methods=("A",)) -> dict[str, Path]:
    """References (0/1/2) and nnU-Net-style probability .npz files per method."""
    rng = np.random.default_rng(1)
    shape = (4, 10, 10)
    folders = {}
    for _i, c in enumerate(cases):
        ref = np.zeros(shape, np.uint8)
        ref[1:3, 2:6, 2:6] = 1
        ref[0, 0, 0] = 2
        write(ref, root / "ref" / f"{c}.nii.gz")
        for m in methods:
            p = np.clip(ref.astype(np.float32) * 0.8 + rng.uniform(0, 0.3, shape), 0, 1).astype(np.float32)
            save_probabilities(root / f"prob_{m}" / f"{c}.npz", p)
            write((p >= 0.5).astype(np.uint8), root / f"prob_{m}" / f"{c}.nii.gz")
            folders[m] = root / f"prob_{m}"
    return {"ref": root / "ref", **{f"prob_{m}": f for m, f in folders.items()}}


def save_probabilities(path: Path, foreground: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, probabilities=np.stack([1 - foreground, foreground]).astype(np.float32))
    return path


# ---------------------------------------------------------------------------------------------- converters
def hammers_inputs(root: Path, n: int = 2) -> Path:
    """Hammers layout: aNN.nii.gz + aNN-seg.nii.gz (17/18 cerebellum, 19 brainstem)."""
    for i in range(1, n + 1):
        seg = np.zeros(SHAPE, np.uint8)
        seg[1:5, 2:7, 2:6] = 17
        seg[1:5, 2:7, 6:10] = 18
        seg[5:7, 6:9, 5:8] = 19
        write(t1_like(i), root / f"a{i:02d}.nii.gz")
        write(seg, root / f"a{i:02d}-seg.nii.gz")
    return root


def sca2_inputs(root: Path, n: int = 2) -> Path:
    """BIDS-like SCA2 layout with manual cerebellum masks."""
    subs = [f"sub-{i:02d}" for i in range(1, n + 1)]
    root.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"participant_id": subs, "group": ["control", "sca2"][:n]}).to_csv(
        root / "participants.tsv", sep="\t", index=False)
    for i, s in enumerate(subs):
        write(t1_like(i), root / s / "anat" / f"{s}_T1w.nii.gz")
        write((label_map(i) == 1).astype(np.uint8),
              root / "derivatives" / "manual" / s / "anat" / f"{s}_desc-cerebellum_mask.nii.gz")
    return root


def wmh_case_inputs(root: Path, case: str = "c01") -> Path:
    """Plain WMH layout: <case>/{T1,FLAIR,wmh}.nii.gz on one 16x16x4 grid."""
    rng = np.random.default_rng(3)
    shape = (4, 16, 16)
    lab = np.zeros(shape, np.uint8)
    lab[1:3, 6:9, 6:9] = 1
    for name, arr in (("T1", rng.normal(100, 10, shape).astype(np.float32)),
                      ("FLAIR", rng.normal(80, 10, shape).astype(np.float32)), ("wmh", lab)):
        write(arr, root / case / f"{name}.nii.gz", spacing=(1.0, 1.0, 3.0))
    return root


# --------------------------------------------------------------------------------------- preprocessing
def transform_folder(folder: Path, pre_size=(8, 8, 8), native_size=(10, 10, 10), native_spacing=1.2) -> Path:
    """A transform folder as preprocess-mri writes it (identity affine; the two grids in preprocessing.json)."""
    folder.mkdir(parents=True, exist_ok=True)
    sitk.WriteTransform(sitk.AffineTransform(3), str(folder / "mni_to_native.tfm"))

    def geometry(size, spacing):
        return {"size": list(size), "spacing": [spacing] * 3, "origin": [0.0] * 3,
                "direction": [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]}

    (folder / "preprocessing.json").write_text(json.dumps({
        "transform_file": "mni_to_native.tfm", "linear_determinant": 1.0,
        "native_geometry": geometry(native_size, native_spacing), "preprocessed_geometry": geometry(pre_size, 1.0)}))
    return folder


def prediction_on_preprocessed_grid(path: Path, size=(8, 8, 8), value_dtype=np.uint8) -> Path:
    a = np.zeros(size[::-1], value_dtype)
    a[2:6, 2:6, 2:6] = 1
    return write(a, path)
