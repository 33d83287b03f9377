"""Stand-ins for ``segment``'s network and preprocessing, to test its run-level behaviour (BIDS, parts, merging,
the process pool) in seconds (used by test_segment_parts.py and test_bids_segment.py).

:func:`fake_segment_subject` replaces :func:`nnunet_ataxia.inference.subject.segment_subject`: its "cerebellum" is
every voxel above the image's mean and its "brainstem" (when the model has one) the voxels above half the maximum,
so the volumes follow the input; an image whose voxels are all equal fails as a real scan would (one-line
``InputError``).
"""
from __future__ import annotations

import json
import os

import numpy as np
import SimpleITK as sitk

from nnunet_ataxia.errors import InputError
from nnunet_ataxia.inference.subject import RECORD_FILE

LABELS = {"background": 0, "cerebellum": 1, "brainstem": 2}


def write_t1(path, n_bright: int, size: int = 8):
    """A small float image with ``n_bright`` bright voxels (0: a constant image, refused by the fake)."""
    a = np.zeros((size, size, size), np.float32)
    a.reshape(-1)[:n_bright] = 100.0
    a.reshape(-1)[:n_bright // 3] = 300.0
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(sitk.GetImageFromArray(a), str(path))
    return path


def fake_model(root, labels: dict | None = None):
    """A model folder that ``resolve_model`` accepts (the predictor itself is replaced); ``labels`` as in its
    ``dataset.json`` (default :data:`LABELS`)."""
    folder = root / "model"
    (folder / "fold_0").mkdir(parents=True)
    (folder / "plans.json").write_text("{}")
    (folder / "dataset.json").write_text(json.dumps({"labels": labels or LABELS, "channel_names": {"0": "T1"},
                                                     "file_ending": ".nii.gz", "numTraining": 1}))
    (folder / "fold_0" / "checkpoint_final.pth").write_bytes(b"weights v1")
    return folder


def fake_segment_subject(image_path, case_id, case_dir, predictor, labels, options, qc_png=None,
                         model_folder=None):
    image = sitk.ReadImage(str(image_path))
    values = sitk.GetArrayViewFromImage(image)
    if float(values.max()) <= float(values.min()):
        raise InputError(f"{image_path}: image is constant (every voxel {float(values.min()):g})")
    mean = float(values.mean())
    seg = sitk.Cast(image > mean, sitk.sitkUInt8)
    if "brainstem" in labels:
        seg = seg + sitk.Cast(image > float(values.max()) / 2, sitk.sitkUInt8)
    seg.CopyInformation(image)
    sitk.WriteImage(seg, str(case_dir / f"{case_id}_seg.nii.gz"))
    volumes = {}
    for name, value in labels.items():
        if value:
            sitk.WriteImage(sitk.Cast(seg == value, sitk.sitkUInt8), str(case_dir / f"{case_id}_{name}.nii.gz"))
            volumes[name] = float((sitk.GetArrayViewFromImage(seg) == value).sum())
    if options.qc:
        qc_png.write_bytes(b"\x89PNG fake " + case_id.encode())
    record = {"case": case_id, "input": str(image_path), "status": "ok", "scale_factor": 1.0 + mean / 1000,
              "volumes_native_mm3": volumes, "volumes_mni_mm3": {n: v / 2 for n, v in volumes.items()},
              "qc": "ok", "labels": labels, "options": {"native_mapping": options.native_mapping}}
    (case_dir / RECORD_FILE).write_text(json.dumps(record))
    return record


def install_fakes(monkeypatch):
    """Replace the predictor and ``segment_subject`` inside ``nnunet_ataxia.inference.segment`` (one process)."""
    from nnunet_ataxia.inference import segment as library

    monkeypatch.setattr(library, "load_predictor", lambda spec, mirror=False, device=None: object())
    monkeypatch.setattr(library, "segment_subject", fake_segment_subject)


# ---- worker functions for the process-pool tests (module level: spawned workers import them by name)
_STATE: dict = {}


def remember(value) -> None:
    """A worker initializer: keep ``value`` in this process."""
    _STATE["value"] = value


def with_state(case):
    """``(case, what the initializer kept)``; the case ``"die"`` kills its worker process, ``"bad"`` raises."""
    if case == "die":
        os._exit(3)
    if case == "bad":
        raise ValueError("bad case")
    return case, _STATE.get("value")
