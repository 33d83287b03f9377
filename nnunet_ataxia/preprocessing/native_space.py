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
from pathlib import Path
from typing import Iterable

import numpy as np
import SimpleITK as sitk

from nnunet_ataxia.errors import InputError
from nnunet_ataxia.preprocessing.mri_pipeline import META_FILE, image_from_geometry, same_geometry
from nnunet_ataxia.preprocessing.registration import read_image

__all__ = ["load_case_transform", "map_to_native", "native_volumes_mm3", "label_volumes_mm3"]


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
    from nnunet_ataxia.utils.checked_io import read_json

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
    if not same_geometry(mask, pre_ref):
        hint = ""
        if same_geometry(mask, image_from_geometry(meta["native_geometry"])):
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
