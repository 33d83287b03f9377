"""One subject: native T1 -> the paper's preprocessing -> nnU-Net prediction -> native masks, volumes, QC picture.

Native masks come from the class probabilities, not from the label map: each class probability on the 1 mm MNI
crop is interpolated linearly onto the native grid and the argmax taken there (``native_mapping="probabilities"``,
the default). ``"labels"`` maps the crop's label map with nearest neighbour (as ``to-native`` does by default);
``tests/test_segment.py`` checks that the probabilities give the higher native Dice on a generated subject.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from nnunet_ataxia.errors import InputError
from nnunet_ataxia.inference.qc import qc_picture
from nnunet_ataxia.inference.qc_flags import large_pieces, mask_confidence, qc_flags, qc_text
from nnunet_ataxia.io.images import label_map_like, read_image
from nnunet_ataxia.preprocessing.mri_pipeline import preprocess_t1_case
from nnunet_ataxia.preprocessing.native_space import label_volumes_mm3, map_to_native
from nnunet_ataxia.preprocessing.registration_check import check_case_registration

__all__ = ["SubjectOptions", "load_native_t1", "predict_probabilities", "probabilities_to_native", "segment_subject",
           "RECORD_FILE"]

RECORD_FILE = "segment.json"  # written last in a subject folder: the subject is done


@dataclass
class SubjectOptions:
    """Per-subject settings of ``segment`` (the defaults are the documented behaviour).

    Attributes:
        native_mapping: ``"probabilities"`` (linear interpolation of each class probability, then argmax) or
            ``"labels"`` (nearest-neighbour mapping of the crop's label map).
        n4_shrink_factor: N4 fits its field on the image shrunk by this factor (6: twice as fast as
            ``preprocess-mri``'s 4; the log field differs by < 2 % inside cerebellum and brainstem, sd 0.4 %).
        registration_template_spacing_mm: register against the template down-sampled to this spacing (tests).
        moving_spacing_mm: the registration aligns a copy of the T1 down-sampled to this spacing (the pyramid's
            finest level is 2 mm; about twice as fast as full resolution on a 1 mm T1, ~0.2 mm apart; None: full
            resolution, as ``preprocess-mri``).
        seed: seed of the registration's metric sampling.
        qc: write the QC picture.
    """
    native_mapping: str = "probabilities"
    n4_shrink_factor: int = 6
    registration_template_spacing_mm: float = 1.0
    moving_spacing_mm: float | None = 2.0
    seed: int = 0
    qc: bool = True


def load_native_t1(path: str | os.PathLike) -> sitk.Image:
    """Read a native T1 (any format :func:`read_image` reads, ``.mgz`` included) and check that it is a 3D volume.

    Refused: not 3D, not scalar, fewer than 16 slices, NaN/Inf, constant, or a label map (at most
    :data:`~nnunet_ataxia.io.images.MAX_LABEL_MAP_VALUES` distinct whole-number values).

    Example:
        >>> t1 = load_native_t1("sub-01_T1w.mgz")  # doctest: +SKIP
    """
    path = Path(path)
    image = read_image(path)
    dim, size = image.GetDimension(), image.GetSize()
    if dim != 3:
        raise InputError(f"{path}: expected a 3D T1 image, got a {dim}D image (size {size})")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"{path}: expected a scalar 3D T1 image, got {image.GetNumberOfComponentsPerPixel()} "
                         f"components per voxel (RGB or vector image)")
    if min(size) < 16:
        raise InputError(f"{path}: expected a 3D T1 volume, got size {size} (a single slice or a few slices)")
    image = sitk.Cast(image, sitk.sitkFloat32)
    arr = sitk.GetArrayViewFromImage(image)
    if not np.isfinite(arr).all():
        raise InputError(f"{path}: image holds NaN or infinite values")
    if float(arr.max()) <= float(arr.min()):
        raise InputError(f"{path}: image is constant")
    n_values = label_map_like(arr)
    if n_values is not None:
        raise InputError(f"{path}: looks like a label map, not a T1 image (only {n_values} distinct whole-number "
                         f"values); give the T1 image")
    return image


def predict_probabilities(predictor, image_path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """nnU-Net prediction of one preprocessed image: (label map, class probabilities), arrays in (z, y, x) order.

    Uses the model's own image reader (``plans.json``'s ``image_reader_writer``) and
    ``nnUNetPredictor.predict_single_npy_array``, so nnU-Net's normalization, sliding window and export apply.

    Example:
        >>> seg, probs = predict_probabilities(predictor, "out/sub-01/mni/sub-01_t1_mni.nii.gz")  # doctest: +SKIP
    """
    reader = predictor.plans_manager.image_reader_writer_class()
    data, props = reader.read_images([str(image_path)])
    seg, probs = predictor.predict_single_npy_array(data, props, None, None, True)
    return np.asarray(seg), np.asarray(probs, dtype=np.float32)


def probabilities_to_native(probabilities: np.ndarray, crop_ref: sitk.Image, mni_to_native: sitk.Transform,
                            native_ref: sitk.Image, *, min_probability: float = 1e-3) -> sitk.Image:
    """Native label map: each class probability linearly interpolated onto the native grid, then the argmax.

    Only the native region that the crop's non-background voxels map to is resampled (the rest is background).

    Args:
        probabilities: (classes, z, y, x) on ``crop_ref``'s grid; channel i is label value i.
        crop_ref: the preprocessed (MNI crop) grid.
        mni_to_native: the case's transform (MNI points -> native points).
        native_ref: the native grid.
        min_probability: crop voxels whose foreground probabilities all stay below this are treated as background.

    Example:
        >>> native = probabilities_to_native(probs, crop_reference(), tfm, t1)  # doctest: +SKIP
    """
    n_classes = probabilities.shape[0]
    out_dtype = np.uint8 if n_classes < 256 else np.uint16
    full = np.zeros(sitk.GetArrayViewFromImage(native_ref).shape if native_ref.GetNumberOfPixels() else (0,),
                    out_dtype)
    foreground = probabilities[1:].max(0) >= min_probability if n_classes > 1 else np.zeros(probabilities.shape[1:],
                                                                                             bool)
    if foreground.any():
        idx = np.argwhere(foreground)
        lo, hi = idx.min(0)[::-1] - 2.0, idx.max(0)[::-1] + 2.0  # (x, y, z), two voxels of margin
        corners = [crop_ref.TransformContinuousIndexToPhysicalPoint([float(c[i]) for i in range(3)])
                   for c in np.array(np.meshgrid(*zip(lo, hi, strict=False), indexing="ij")).reshape(3, -1).T]
        native_idx = np.array([native_ref.TransformPhysicalPointToContinuousIndex(mni_to_native.TransformPoint(p))
                               for p in corners])
        size = np.array(native_ref.GetSize())
        start = np.clip(np.floor(native_idx.min(0)).astype(int) - 1, 0, size)
        stop = np.clip(np.ceil(native_idx.max(0)).astype(int) + 2, 0, size)
        if np.all(stop > start):
            sub = sitk.Image([int(n) for n in stop - start], sitk.sitkFloat32)
            sub.SetSpacing(native_ref.GetSpacing())
            sub.SetDirection(native_ref.GetDirection())
            sub.SetOrigin(native_ref.TransformIndexToPhysicalPoint([int(s) for s in start]))
            native_to_mni = mni_to_native.GetInverse()
            best = best_p = None
            for c in range(n_classes):
                channel = sitk.GetImageFromArray(np.ascontiguousarray(probabilities[c], dtype=np.float32))
                channel.CopyInformation(crop_ref)
                p = sitk.GetArrayFromImage(sitk.Resample(channel, sub, native_to_mni, sitk.sitkLinear,
                                                         1.0 if c == 0 else 0.0, sitk.sitkFloat32))
                if best is None:
                    best, best_p = np.zeros(p.shape, out_dtype), p
                else:
                    better = p > best_p
                    best[better] = c
                    best_p = np.where(better, p, best_p)
            full[start[2]:stop[2], start[1]:stop[1], start[0]:stop[0]] = best
    out = sitk.GetImageFromArray(full)
    out.CopyInformation(native_ref)
    return out


def _label_image(seg: np.ndarray, ref: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(seg.astype(np.uint8 if seg.max(initial=0) < 256 else np.uint16))
    image.CopyInformation(ref)
    return image


def segment_subject(image_path: str | os.PathLike, case_id: str, case_dir: str | os.PathLike, predictor,
                    labels: dict[str, int], options: SubjectOptions | None = None,
                    qc_png: str | os.PathLike | None = None, model_folder: str | os.PathLike | None = None) -> dict:
    """Segment one native T1 and write its folder (``case_dir``, normally a temporary folder renamed afterwards).

    Writes ``<case>_seg.nii.gz`` (native label map), one ``<case>_<label>.nii.gz`` mask per foreground label (uint8
    0/1, native grid), ``mni/<case>_t1_mni.nii.gz`` and ``mni/<case>_seg_mni.nii.gz`` (preprocessed image and
    prediction on the 1 mm MNI crop), ``transform/`` (``mni_to_native.tfm``, ``preprocessing.json``), the QC
    picture ``qc_png`` and, last, ``segment.json`` (volumes, scale factor, timings).

    Args:
        image_path: the native T1.
        case_id: the case name used in file names.
        case_dir: the subject's output folder (created).
        predictor: a loaded ``nnUNetPredictor`` (:func:`nnunet_ataxia.inference.model.load_predictor`).
        labels: the model's labels ``{name: value}`` (background included).
        options: :class:`SubjectOptions` (default: the documented defaults).
        qc_png: where to write the QC picture (default ``case_dir/<case>_qc.png``).
        model_folder: the model's folder, recorded in ``segment.json``.

    Returns:
        The subject's record (also written to ``segment.json``).

    Example:
        >>> rec = segment_subject("sub-01.nii.gz", "sub-01", "out/sub-01", predictor,  # doctest: +SKIP
        ...                       {"background": 0, "cerebellum": 1, "brainstem": 2})
    """
    options = options or SubjectOptions()
    image_path, case_dir = Path(image_path), Path(case_dir)
    case_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    native = load_native_t1(image_path)
    timings["read"] = time.perf_counter() - t

    mni_image = case_dir / "mni" / f"{case_id}_t1_mni.nii.gz"
    transform_dir = case_dir / "transform"
    info = preprocess_t1_case(image_path, mni_image, transform_dir=transform_dir, skull_strip=True, crop=True,
                              seed=options.seed, n4_shrink_factor=options.n4_shrink_factor,
                              registration_template_spacing_mm=options.registration_template_spacing_mm,
                              registration_options={"moving_spacing_mm": options.moving_spacing_mm})
    timings.update({k: float(v) for k, v in info["timings_s"].items()})
    similarity, preprocessed, tfm, meta = check_case_registration(image_path, mni_image, transform_dir)

    t = time.perf_counter()
    seg_mni, probs = predict_probabilities(predictor, mni_image)
    timings["prediction"] = time.perf_counter() - t
    seg_mni_image = _label_image(seg_mni, preprocessed)
    sitk.WriteImage(seg_mni_image, str(case_dir / "mni" / f"{case_id}_seg_mni.nii.gz"), useCompression=True)

    t = time.perf_counter()
    if options.native_mapping == "probabilities":
        seg_native = probabilities_to_native(probs, preprocessed, tfm, native)
    elif options.native_mapping == "labels":
        seg_native = map_to_native(seg_mni_image, transform_dir, interpolation="nearest")
    else:
        raise InputError(f"native mapping {options.native_mapping!r}: use 'probabilities' or 'labels'")
    foreground = {n: v for n, v in labels.items() if v != 0}
    sitk.WriteImage(seg_native, str(case_dir / f"{case_id}_seg.nii.gz"), useCompression=True)
    for name, value in foreground.items():
        sitk.WriteImage(sitk.Cast(seg_native == value, sitk.sitkUInt8), str(case_dir / f"{case_id}_{name}.nii.gz"),
                        useCompression=True)
    timings["mapping"] = time.perf_counter() - t

    native_mm3 = label_volumes_mm3(seg_native, list(foreground.values()))
    mni_mm3 = label_volumes_mm3(seg_mni_image, list(foreground.values()))
    confidence = mask_confidence(probs, seg_mni, foreground)
    pieces = {n: large_pieces(seg_native == v) for n, v in foreground.items()}
    flags = qc_flags(similarity=similarity, volumes_mni_mm3={n: mni_mm3[v] for n, v in foreground.items()},
                     confidence=confidence, pieces=pieces)
    record = {"case": case_id, "input": str(image_path), "status": "ok",
              "scale_factor": float(meta["linear_determinant"]), "registration_similarity": similarity,
              "volumes_native_mm3": {n: native_mm3[v] for n, v in foreground.items()},
              "volumes_mni_mm3": {n: mni_mm3[v] for n, v in foreground.items()},
              "qc": qc_text(flags), "qc_flags": flags, "mask_confidence": confidence, "large_pieces": pieces,
              "labels": labels, "model_folder": str(model_folder) if model_folder else None,
              "options": asdict(options), "native_geometry": meta["native_geometry"]}
    if options.qc:
        t = time.perf_counter()
        vols = ", ".join(f"{n} {native_mm3[v] / 1000:.1f} cm³" for n, v in foreground.items())
        qc_picture(native, seg_native, foreground, qc_png or case_dir / f"{case_id}_qc.png", title=case_id,
                   subtitle=f"{vols} (native)  |  scale factor {record['scale_factor']:.3f}"
                            + (f"\nQC: {record['qc']}" if flags else ""))
        timings["qc"] = time.perf_counter() - t
    record["timings_s"] = timings
    (case_dir / RECORD_FILE).write_text(json.dumps(record, indent=2))
    return record
