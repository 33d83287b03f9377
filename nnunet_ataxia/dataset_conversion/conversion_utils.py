"""Shared helpers of the dataset converters: checked reading, geometry checks, parallel cases, atomic datasets.

Every converter in this package follows the same recipe, modelled on nnU-Net's ``dataset_conversion/DatasetXXX_*.py``:

1. find the cases of the source layout and check them (missing files, duplicates) before writing anything;
2. build the dataset in a temporary sibling folder (:func:`write_raw_dataset`, around
   :func:`nnunet_ataxia.io.output_folders.output_folder`: an existing folder is replaced only when it is an
   earlier output of the same converter, or with ``--overwrite``; never when it holds an input);
3. convert the cases in parallel (:func:`convert_cases`, ``-np``) with a tqdm bar, re-using the outputs of cases that
   an earlier run into the same folder already converted from the same inputs and options;
4. write ``dataset.json`` with nnU-Net's ``generate_dataset_json`` and run nnU-Net's ``verify_dataset_integrity`` on
   the temporary folder; only then is it moved into place.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from nnunet_ataxia.errors import InputError
from nnunet_ataxia.io.atomic import atomic_output_dir
from nnunet_ataxia.io.constants import CEREBELLUM_BRAINSTEM_LABELS
from nnunet_ataxia.io.fingerprints import file_fingerprint as content_fingerprint
from nnunet_ataxia.io.images import (
    Geometry,
    check_intensity_image,
    check_label_values,
    check_same_geometry,
    copy_image_as_nifti,
    read_image,
    write_image_like,
)
from nnunet_ataxia.io.nnunet_integrity import verify_raw_dataset
from nnunet_ataxia.io.output_folders import output_folder
from nnunet_ataxia.io.parallel import run_cases

MANIFEST_NAME = "conversion_manifest.json"


def file_fingerprint(path: str | os.PathLike | None) -> list | None:
    """``[absolute path, size, SHA-256 of the content]`` of a file (``None`` for ``None``).

    Example:
        >>> file_fingerprint("a01.nii.gz")  # doctest: +SKIP
        ['/data/hammers/a01.nii.gz', 5123456, '3f2a...']
    """
    if path is None:
        return None
    content = content_fingerprint(path)
    return [str(Path(path).resolve()), content["size"], content["sha256"]]


def case_fingerprint(**parts) -> str:
    """Hash of everything that determines a case's output (input file fingerprints, options)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, dst, copy_function=_link_file, dirs_exist_ok=True)
    else:
        _link_file(str(src), str(dst))


def _link_file(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def convert_cases(worker: Callable[[dict], dict], jobs: Sequence[dict], out_dir: Path, previous_dir: Path | None,
                  num_processes: int, desc: str) -> list[dict]:
    """Run ``worker`` for every job not already converted in ``previous_dir``; record a manifest in ``out_dir``.

    Each job is a dict with at least ``case_id``, ``fingerprint`` (see :func:`case_fingerprint`), ``outputs`` (paths
    relative to the dataset folder that the worker writes) and ``out_dir`` (set here). A job whose fingerprint is in
    ``previous_dir``'s manifest and whose outputs all exist there is not recomputed: its files are hard-linked (or
    copied) into ``out_dir``. The worker returns a dict (written into the manifest as ``info``).

    Returns:
        The per-case info dicts, in job order.
    """
    previous = _read_manifest(previous_dir)
    todo, infos, why = [], {}, {"new": 0, "with changed inputs or options": 0, "with outputs missing": 0}
    for job in jobs:
        job = dict(job, out_dir=str(out_dir))
        old = previous.get(job["case_id"])
        if old is None:
            why["new"] += 1
        elif old.get("fingerprint") != job["fingerprint"]:
            why["with changed inputs or options"] += 1
        elif not all((previous_dir / rel).exists() for rel in job["outputs"]):
            why["with outputs missing"] += 1
        else:
            for rel in job["outputs"]:
                _link_or_copy(previous_dir / rel, out_dir / rel)
            infos[job["case_id"]] = old.get("info", {})
            continue
        todo.append(job)
    if previous:
        reasons = ", ".join(f"{n} {reason}" for reason, n in why.items() if n)
        print(f"{desc}: {len(jobs) - len(todo)} case(s) already converted, {len(todo)} to do"
              + (f" ({reasons})" if reasons else ""))
    for job, info in zip(todo, run_cases(worker, todo, num_processes, desc), strict=False):
        infos[job["case_id"]] = info or {}
    manifest = {j["case_id"]: {"fingerprint": j["fingerprint"], "outputs": list(j["outputs"]),
                               "info": infos[j["case_id"]]} for j in jobs}
    (out_dir / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1, default=str))
    return [infos[j["case_id"]] for j in jobs]


def _read_manifest(folder: Path | None) -> dict:
    if folder is None or not (folder / MANIFEST_NAME).is_file():
        return {}
    try:
        return json.loads((folder / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return {}


def write_raw_dataset(final_dir: str | os.PathLike, fill: Callable[[Path, Path | None], None],
                      num_processes: int = 1, verify: bool = True, *, command: str | None = None,
                      inputs: Sequence[str | os.PathLike | None] = (), overwrite: bool = False) -> Path:
    """Build an nnU-Net raw dataset atomically: ``fill`` writes into a temporary folder, nnU-Net checks it, then it
    is moved to ``final_dir``.

    With ``command`` (the converter's sub-command name) the output folder is guarded first
    (:func:`nnunet_ataxia.io.output_folders.check_output_folder`): it must be new, empty, or an earlier output of
    the same converter (its marker, or the ``conversion_manifest.json`` of older versions), unless ``overwrite``; it
    may never be, contain or lie inside one of ``inputs``. The marker ``.nnunet-ataxia-output.json`` is written into
    the dataset. Without ``command`` the folder is replaced unchecked (kept for older callers).

    Args:
        final_dir: ``$nnUNet_raw/DatasetXXX_Name``.
        fill: called as ``fill(tmp_dir, previous_dir)``; ``previous_dir`` is the existing ``final_dir`` (to re-use
            converted cases) or ``None``. It must write ``dataset.json`` (nnU-Net's ``generate_dataset_json``).
        num_processes: processes for nnU-Net's integrity check.
        verify: run ``verify_dataset_integrity`` (on the temporary folder, before the move).
        command: the sub-command writing the dataset (enables the output-folder guard and the marker).
        inputs: the converter's input files/folders (guard only).
        overwrite: the user's ``--overwrite`` (guard only).

    Returns:
        ``final_dir`` as a Path.

    Example:
        >>> write_raw_dataset("/raw/Dataset501_HammersN30R95", lambda tmp, prev: ...,  # doctest: +SKIP
        ...                   command="convert-hammers", inputs=["~/Hammers_mith-n30r95"])
    """
    final_dir = Path(final_dir)
    previous = final_dir if (final_dir / MANIFEST_NAME).is_file() else None
    if command is None:
        context = atomic_output_dir(final_dir)
    else:
        context = output_folder(final_dir, command, inputs=inputs, overwrite=overwrite, recognize=(MANIFEST_NAME,))
    with context as tmp:
        fill(tmp, previous)
        if verify:
            verify_raw_dataset(tmp, num_processes, shown_as=final_dir)
    return final_dir


def dataset_folder(dataset_id: int, name: str, output: str | os.PathLike | None = None) -> Path:
    """``output`` if given, else ``$nnUNet_raw/Dataset{id:03d}_{name}`` (InputError when nnUNet_raw is unset).

    A dataset id must name one dataset: another ``Dataset{id:03d}_*`` folder next to the output (another
    converter's dataset with the same id) is refused, as nnU-Net could not tell them apart.

    Example:
        >>> dataset_folder(501, "HammersN30R95", "/data/raw/Dataset501_HammersN30R95")
        PosixPath('/data/raw/Dataset501_HammersN30R95')
    """
    if output:
        final = Path(output)
        match = re.match(r"^Dataset(\d{3})_", final.name)
        number = int(match.group(1)) if match else None
    else:
        raw = os.environ.get("nnUNet_raw")
        if not raw:
            raise InputError("nnUNet_raw: environment variable not set (set it or pass -o OUTPUT_FOLDER)")
        final, number = Path(raw) / f"Dataset{int(dataset_id):03d}_{name}", int(dataset_id)
    if number is not None and final.parent.is_dir():
        clash = sorted(p for p in final.parent.glob(f"Dataset{number:03d}_*") if p.is_dir() and p.name != final.name)
        if clash:
            raise InputError(f"{final}: dataset id {number} is already used by {clash[0]}; nnU-Net finds datasets "
                             f"by id: choose another id (-d) or remove the other dataset")
    return final


def make_label_array(kind: str, source: np.ndarray, mapping: dict | None = None) -> np.ndarray:
    """The nnU-Net label map (uint8) from a source label array.

    Args:
        kind: ``"remap"`` (source value -> output value via ``mapping``, everything else 0), ``"mask"`` (non-zero ->
            1) or ``"acapulco"`` (union of ACAPULCO's 28 lobule labels, by value -> 1).
        source: the source label array.
        mapping: ``{source value: output value}`` for ``"remap"``.
    """
    if kind == "remap":
        out = np.zeros(source.shape, np.uint8)
        for src, dst in (mapping or {}).items():
            out[source == int(src)] = int(dst)
        return out
    if kind == "mask":
        return (source != 0).astype(np.uint8)
    if kind == "acapulco":
        from nnunet_ataxia.io.acapulco import acapulco_whole_cerebellum_mask
        return acapulco_whole_cerebellum_mask(source).astype(np.uint8)
    raise ValueError(f"unknown label kind {kind!r}")


def convert_labelled_case(job: dict) -> dict:
    """Worker shared by the converters: one T1 + one label source -> ``images{Tr,Ts}`` / ``labels{Tr,Ts}``.

    ``job`` keys: ``case_id``, ``image`` (T1 path), ``label`` (label path), ``label_kind`` and ``mapping`` (see
    :func:`make_label_array`), optional ``allowed_values`` (the source values the label map may hold),
    ``subset`` (``"Tr"`` or ``"Ts"``), ``out_dir``, optional ``require_labels`` (output
    values that must be present), optional ``preprocess`` (``None`` or a dict of keyword arguments for
    ``nnunet_ataxia.preprocessing.mri_pipeline.preprocess_t1_case``, e.g. ``{"skull_strip": True}``).

    Returns:
        ``{"voxels": {output label: count}, "voxel_volume_mm3": float}`` measured in the source (native) space.
    """
    out_dir = Path(job["out_dir"])
    case_id, subset = job["case_id"], job["subset"]
    image = read_image(job["image"])
    if image.GetDimension() != 3:
        raise InputError(f"{job['image']}: expected a 3D image, got {image.GetDimension()}D")
    check_intensity_image(sitk.GetArrayViewFromImage(image), job["image"], "T1 image")
    label_img = read_image(job["label"])
    check_same_geometry(Geometry.of(image), Geometry.of(label_img), job["image"], job["label"], "label map")
    source = check_label_values(sitk.GetArrayViewFromImage(label_img), job["label"], job.get("allowed_values"),
                                what="label map")
    labels = make_label_array(job["label_kind"], source, job.get("mapping"))
    values, counts = np.unique(labels, return_counts=True)
    voxels = {int(v): int(c) for v, c in zip(values, counts, strict=False) if v != 0}
    missing = [v for v in job.get("require_labels", ()) if v not in voxels]
    if missing:
        raise InputError(f"{job['label']}: no voxels of the expected region(s) {job.get('require_names', missing)}")
    out_image = out_dir / f"images{subset}" / f"{case_id}_0000.nii.gz"
    out_label = out_dir / f"labels{subset}" / f"{case_id}.nii.gz"
    if job.get("preprocess") is None:
        copy_image_as_nifti(job["image"], image, out_image)
        write_image_like(labels, image, out_label)
    else:
        try:
            from nnunet_ataxia.preprocessing.mri_pipeline import preprocess_t1_case
        except ImportError as e:
            raise InputError(f"--preprocess: the MRI preprocessing pipeline is not available ({e})") from None
        work = out_dir / ".work" / f"{case_id}.nii.gz"
        write_image_like(labels, image, work)
        out_label.parent.mkdir(parents=True, exist_ok=True)
        out_image.parent.mkdir(parents=True, exist_ok=True)
        preprocess_t1_case(job["image"], out_image, label_paths=(work,), out_label_paths=(out_label,),
                           transform_dir=out_dir / "transforms" / case_id, **job["preprocess"])
        work.unlink()
    return {"voxels": voxels, "voxel_volume_mm3": float(np.prod(image.GetSpacing()))}


def case_outputs(case_id: str, subset: str, preprocess: bool) -> list[str]:
    """Relative paths that :func:`convert_labelled_case` writes for a case."""
    outs = [f"images{subset}/{case_id}_0000.nii.gz", f"labels{subset}/{case_id}.nii.gz"]
    return outs + ([f"transforms/{case_id}"] if preprocess else [])


def finish_dataset(out_dir: Path, jobs: Sequence[dict], infos: Sequence[dict], labels: dict, name: str,
                   description: str, reference: str) -> None:
    """Write ``dataset.json`` (nnU-Net's ``generate_dataset_json``) and a per-case voxel-count table."""
    from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json

    shutil.rmtree(out_dir / ".work", ignore_errors=True)
    for sub in ("imagesTr", "labelsTr"):
        (out_dir / sub).mkdir(exist_ok=True)
    n_train = sum(1 for j in jobs if j["subset"] == "Tr")
    generate_dataset_json(str(out_dir), channel_names={0: "T1"}, labels=dict(labels), num_training_cases=n_train,
                          file_ending=".nii.gz", dataset_name=name, description=description, reference=reference,
                          license="see the source dataset's licence; converted data must not be redistributed",
                          converted_by="nnunet-ataxia")
    inv = {v: k for k, v in labels.items()}
    rows = [{"case_id": j["case_id"], "subset": j["subset"],
             **{f"{inv[v]}_voxels": i.get("voxels", {}).get(str(v), i.get("voxels", {}).get(v, 0))
                for v in sorted(inv) if v != 0},
             "voxel_volume_mm3": i.get("voxel_volume_mm3")} for j, i in zip(jobs, infos, strict=False)]
    pd.DataFrame(rows).to_csv(out_dir / "label_voxel_counts.tsv", sep="\t", index=False)


def write_generated_case(job: dict, image: sitk.Image, labels: sitk.Image, parameters: dict) -> dict:
    """Write a generated case (image and labels, 1 mm) to the job's two outputs; return its manifest info.

    Args:
        job: a :func:`convert_cases` job (``out_dir``, ``outputs`` = [image, labels] relative paths).
        image, labels: the case on the preprocessed grid.
        parameters: what the generator drew (kept in the manifest).

    Example:
        >>> write_generated_case(job, image, labels, {"seed": 0})["voxel_volume_mm3"]  # doctest: +SKIP
        1.0
    """
    out = Path(job["out_dir"])
    for rel, img in zip(job["outputs"], (image, labels), strict=True):
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(img, str(out / rel), useCompression=True)
    counts = np.bincount(sitk.GetArrayViewFromImage(labels).ravel(), minlength=3)
    return {"voxels": {str(v): int(counts[v]) for v in CEREBELLUM_BRAINSTEM_LABELS.values()},
            "voxel_volume_mm3": 1.0, "parameters": parameters}
