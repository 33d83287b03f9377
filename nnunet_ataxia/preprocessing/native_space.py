"""Map masks from the preprocessed (MNI, cropped) grid back to the native image, and native-space volumes.

Spaces, so that every number says where it was measured:

* **preprocessed / MNI space**: the 1 mm grid written by :func:`~nnunet_ataxia.preprocessing.mri_pipeline.
  preprocess_t1_case` (the crop box or the full template grid); a voxel is 1 mm³ *of MNI space*, not of the subject.
* **native space**: the subject's original T1 grid; volumes in real mm³ of the subject's head.

A volume measured in MNI space becomes a native-space volume when multiplied by ``|det A|``, A the linear part of the
MNI -> native affine (``linear_determinant`` in ``preprocessing.json``). :func:`native_volumes_mm3` reports both that
estimate and the volume of the mask mapped back onto the native grid.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk
from tqdm import tqdm

from nnunet_ataxia.errors import InputError
from nnunet_ataxia.io.cases import case_id_of, subject_id_of
from nnunet_ataxia.io.files import require_folder
from nnunet_ataxia.io.images import Geometry, check_label_values, read_image
from nnunet_ataxia.io.output_folders import check_output_folder, output_folder
from nnunet_ataxia.preprocessing.mri_pipeline import META_FILE, image_from_geometry

__all__ = ["load_case_transform", "map_to_native", "native_volumes_mm3", "label_volumes_mm3",
           "predictions_to_native"]


def load_case_transform(transform_dir: str | os.PathLike) -> tuple[sitk.Transform, dict]:
    """Read ``mni_to_native.tfm`` and ``preprocessing.json`` written by ``preprocess_t1_case``.

    Returns:
        (transform mapping preprocessed/MNI points to native points, the metadata dict).

    Example:
        >>> tfm, meta = load_case_transform("Dataset501_Hammers/transforms/a01")  # doctest: +SKIP
    """
    transform_dir = Path(transform_dir)
    meta_path = transform_dir / META_FILE
    if not meta_path.is_file():
        raise InputError(f"{meta_path}: missing (not a transform folder written by preprocess-mri)")
    from nnunet_ataxia.io.files import read_json

    meta = read_json(meta_path, "preprocessing.json")
    try:
        tfm_path = transform_dir / meta["transform_file"]
        for key in ("native_geometry", "preprocessed_geometry"):
            image_from_geometry(meta[key])  # sizes, spacings, origin and direction must make an image
        if not float(meta["linear_determinant"]) > 0:
            raise ValueError("linear_determinant must be > 0")
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise InputError(f"{meta_path}: malformed ({type(e).__name__}: {e})") from None
    if not tfm_path.is_file():
        raise InputError(f"{tfm_path}: missing transform file")
    try:
        tfm = sitk.ReadTransform(str(tfm_path))
    except RuntimeError:
        raise InputError(f"{tfm_path}: cannot read ITK transform") from None
    if isinstance(tfm, sitk.CompositeTransform) and tfm.GetNumberOfTransforms() == 1:
        tfm = tfm.GetNthTransform(0)
    return tfm, meta


def _as_image(mask: sitk.Image | str | os.PathLike) -> tuple[sitk.Image, str]:
    if isinstance(mask, sitk.Image):
        return mask, "mask"
    return read_image(mask), str(mask)


def map_to_native(mask: sitk.Image | str | os.PathLike, transform_dir: str | os.PathLike, *,
                  interpolation: str = "nearest", name: str | None = None) -> sitk.Image:
    """Map a label map on the preprocessed grid back onto the native image grid.

    Args:
        mask: label map (image or file) on the grid that ``preprocess_t1_case`` wrote for this case.
        transform_dir: that case's transform folder.
        interpolation: ``"nearest"`` (nearest neighbour) or ``"linear"`` (each label's one-hot channel is
            linearly interpolated, then the argmax is taken: smoother boundaries when native voxels are smaller).
        name: the mask's file, for messages (when ``mask`` is an image).

    Returns:
        A uint8/uint16 label map with the native image's geometry.

    Example:
        >>> native = map_to_native("pred/a01.nii.gz", "transforms/a01", interpolation="linear")  # doctest: +SKIP
    """
    mask, default_name = _as_image(mask)
    name = name or default_name
    tfm, meta = load_case_transform(transform_dir)
    pre_ref = image_from_geometry(meta["preprocessed_geometry"])
    if not Geometry.of(mask).matches(Geometry.of(pre_ref)):
        hint = ""
        if Geometry.of(mask).matches(Geometry.of(image_from_geometry(meta["native_geometry"]))):
            hint = "; it is on this case's native grid already (mapped back before, or not a prediction on the " \
                   "preprocessed images?)"
        raise InputError(f"{name}: geometry differs from the preprocessed grid recorded in "
                         f"{Path(transform_dir) / META_FILE} (size {mask.GetSize()} vs {pre_ref.GetSize()}, "
                         f"spacing {tuple(round(v, 3) for v in mask.GetSpacing())} vs "
                         f"{tuple(round(v, 3) for v in pre_ref.GetSpacing())}){hint}")
    arr = sitk.GetArrayViewFromImage(mask)
    out_type = sitk.sitkUInt8 if int(arr.max(initial=0)) < 256 else sitk.sitkUInt16
    mask = sitk.Cast(mask, out_type)
    native_ref = image_from_geometry(meta["native_geometry"], out_type)
    try:
        native_to_mni = tfm.GetInverse()
    except RuntimeError:
        raise InputError(f"{transform_dir}: transform is not invertible") from None
    if interpolation == "nearest":
        return sitk.Resample(mask, native_ref, native_to_mni, sitk.sitkNearestNeighbor, 0, out_type)
    if interpolation != "linear":
        raise InputError(f"interpolation {interpolation!r}: use 'nearest' or 'linear'")
    labels = [int(v) for v in np.unique(arr)]
    best = None
    best_score = None
    for value in labels:
        onehot = sitk.Cast(mask == value, sitk.sitkFloat32)
        prob = sitk.GetArrayFromImage(sitk.Resample(onehot, native_ref, native_to_mni, sitk.sitkLinear,
                                                    1.0 if value == 0 else 0.0, sitk.sitkFloat32))
        if best is None:
            best = np.full(prob.shape, value, dtype=np.uint16)
            best_score = prob
        else:
            better = prob > best_score
            best[better] = value
            best_score = np.where(better, prob, best_score)
    if best is None:  # empty mask image: all background
        best = np.zeros(sitk.GetArrayViewFromImage(native_ref).shape, np.uint16)
    out = sitk.GetImageFromArray(best.astype(np.uint8 if out_type == sitk.sitkUInt8 else np.uint16))
    out.CopyInformation(native_ref)
    return out


def label_volumes_mm3(mask: sitk.Image, labels: Iterable[int] | None = None) -> dict[int, float]:
    """Volume in mm³ of each non-zero label of a label map, in the space of its own grid (voxel count × voxel volume).

    Example:
        >>> label_volumes_mm3(sitk.Image([4, 4, 4], sitk.sitkUInt8) + 1)
        {1: 64.0}
    """
    arr = sitk.GetArrayViewFromImage(mask)
    voxel = float(np.prod(mask.GetSpacing()))
    if labels is None:
        labels = [int(v) for v in np.unique(arr) if v != 0]
    counts = np.bincount(np.asarray(arr, dtype=np.int64).ravel())
    return {int(v): float(counts[v] if v < len(counts) else 0) * voxel for v in labels}


def native_volumes_mm3(mask: sitk.Image | str | os.PathLike, transform_dir: str | os.PathLike, *,
                       labels: Iterable[int] | None = None, interpolation: str = "nearest") -> dict[int, dict]:
    """Per label: the volume in MNI space and two native-space estimates of a preprocessed-space mask.

    Returns ``{label: {"mni_mm3": ..., "native_mm3": ..., "native_from_determinant_mm3": ...}}`` where
    ``mni_mm3`` is measured on the preprocessed grid (MNI mm³), ``native_mm3`` on the mask mapped back to the
    native grid (:func:`map_to_native`), and ``native_from_determinant_mm3 = mni_mm3 × |det A|`` with A the linear
    part of the MNI -> native affine. Both native numbers are in the subject's mm³.

    Example:
        >>> vols = native_volumes_mm3("pred/a01.nii.gz", "transforms/a01")  # doctest: +SKIP
        >>> vols[1]["native_mm3"]  # doctest: +SKIP
    """
    image, _ = _as_image(mask)
    _, meta = load_case_transform(transform_dir)
    det = float(meta["linear_determinant"])
    mni = label_volumes_mm3(image, labels)
    native = label_volumes_mm3(map_to_native(image, transform_dir, interpolation=interpolation), list(mni))
    return {v: {"mni_mm3": mni[v], "native_mm3": native[v], "native_from_determinant_mm3": mni[v] * det}
            for v in mni}


def _prediction_cases(pred_dir: Path, tr_dir: Path) -> list[tuple[str, Path, Path]]:
    """(case id, prediction file, transform folder) per prediction; ``<case>_0000`` names are read as ``<case>``."""
    require_folder(pred_dir, "prediction folder")
    require_folder(tr_dir, "transform folder")
    preds = sorted(p for p in pred_dir.iterdir() if p.is_file() and p.name.endswith((".nii.gz", ".nii")))
    if not preds:
        raise InputError(f"{pred_dir}: no .nii.gz predictions")
    cases, seen = [], {}
    for p in preds:
        case = subject_id_of(p)
        if case in seen:
            raise InputError(f"{p}: case '{case}' is predicted twice (also {seen[case].name})")
        seen[case] = p
        folder = next((tr_dir / n for n in dict.fromkeys((case, case_id_of(p), f"{case}_0000"))
                       if (tr_dir / n).is_dir()), None)
        if folder is None:
            raise InputError(f"{p}: no transform folder {tr_dir / case} (preprocess-mri writes transforms/<case>/)")
        cases.append((case, p, folder))
    others = {subject_id_of(p) for p in preds} | {f.name for f in tr_dir.iterdir() if f.is_dir()}
    for case, p, folder in cases:
        source = _recorded_source(folder)
        if source is not None and source != case and source in others - {case, folder.name}:
            raise InputError(f"{p}: its transform folder {folder} was made from case '{source}' "
                             f"({META_FILE} records the source image), not '{case}'; check the transform folders")
    return cases


def _recorded_source(folder: Path) -> str | None:
    """The case id of the source image recorded in ``folder/preprocessing.json`` (None when not recorded)."""
    import json

    try:
        source = json.loads((folder / META_FILE).read_text()).get("source_image")
    except (OSError, ValueError, AttributeError):
        return None  # load_case_transform reports a missing or malformed file
    return subject_id_of(source) if isinstance(source, str) and source else None


def predictions_to_native(predictions: str | os.PathLike, transforms: str | os.PathLike, output: str | os.PathLike,
                          *, interpolation: str = "nearest", overwrite: bool = False) -> int:
    """Map every prediction on the preprocessed grid back to native space and tabulate its volumes.

    For every ``<case>.nii.gz`` in ``predictions`` (``<case>_0000.nii.gz`` is read as ``<case>`` too), reads
    ``<transforms>/<case>/`` (written by ``preprocess-mri`` or a converter run with ``--preprocess``) and writes the
    native-space mask ``<output>/<case>.nii.gz`` and ``<output>/volumes_native.tsv`` with, per case and label, the
    volume in MNI mm³ (preprocessed grid), in native mm³ measured on the mapped-back mask, and in native mm³ estimated
    as MNI volume × |det A|. ``output`` is written atomically.

    Args:
        predictions: folder of predictions (nnU-Net's naming).
        transforms: folder of per-case transform folders.
        output: the output folder (an existing one must be an earlier ``to-native`` output, or ``overwrite``).
        interpolation: ``"nearest"`` or ``"linear"`` (label-wise linear interpolation of one-hot maps, then argmax).
        overwrite: replace an existing folder that is not an earlier output of this command.

    Returns:
        The number of cases mapped.

    Example:
        >>> predictions_to_native("pred/", "preprocessed/transforms", "native/")  # doctest: +SKIP
        12
    """
    pred_dir, tr_dir = Path(predictions), Path(transforms)
    check_output_folder(output, "to-native", inputs=[pred_dir, tr_dir], overwrite=overwrite)
    cases = _prediction_cases(pred_dir, tr_dir)
    rows = []
    with output_folder(output, "to-native", inputs=[pred_dir, tr_dir], overwrite=overwrite) as tmp:
        for case_id, p, folder in tqdm(cases, desc="to-native", unit="case", disable=None):
            pred = read_image(p)
            labels = check_label_values(sitk.GetArrayViewFromImage(pred), p, what="prediction")
            pred_int = sitk.GetImageFromArray(labels)
            pred_int.CopyInformation(pred)
            native = map_to_native(pred_int, folder, interpolation=interpolation, name=str(p))
            sitk.WriteImage(native, str(tmp / f"{case_id}.nii.gz"), useCompression=True)
            _, meta = load_case_transform(folder)
            mni = label_volumes_mm3(pred_int)
            nat = label_volumes_mm3(native, list(mni))
            for label, v in mni.items():
                rows.append({"case_id": case_id, "label": label, "volume_mni_mm3": v,
                             "volume_native_mm3": nat[label],
                             "volume_native_from_determinant_mm3": v * float(meta["linear_determinant"])})
        pd.DataFrame(rows, columns=["case_id", "label", "volume_mni_mm3", "volume_native_mm3",
                                    "volume_native_from_determinant_mm3"]).to_csv(
            tmp / "volumes_native.tsv", sep="\t", index=False)
    return len(cases)
