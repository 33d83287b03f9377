"""Synthetic T1 + thick-slice FLAIR + WMH cases made from the real MNI152 template (for tests and demos).

Each case has a known subject->MNI affine (``subject_to_mni``: FLAIR physical point -> MNI point), a known rigid
offset between the T1 and the FLAIR (``t1_to_flair``: T1 physical point -> FLAIR physical point of the same anatomy),
and WMH blobs in the periventricular white matter next to the atlas lateral ventricles (label 1), plus one
"other pathology" blob (label 2). FLAIR contrast: CSF dark, grey matter brighter than white matter, lesions bright.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from nnunet_ataxia.preprocessing.affine_matrices import grid_points, transform_from_matrix

__all__ = ["rigid_matrix", "make_synthetic_case", "smooth_deformation", "write_plain_case", "write_miccai_case"]


def rigid_matrix(angle_z_deg: float = 0.0, translation: Sequence[float] = (0.0, 0.0, 0.0),
                 scale: float = 1.0) -> np.ndarray:
    """4x4 matrix: rotation about z by ``angle_z_deg``, isotropic ``scale``, then ``translation`` (mm).

    Example:
        >>> rigid_matrix(0.0, (1, 2, 3))[:3, 3].tolist()
        [1.0, 2.0, 3.0]
    """
    a = math.radians(angle_z_deg)
    m = np.eye(4)
    m[:3, :3] = scale * np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    m[:3, 3] = translation
    return m


def _grid(size_xyz, spacing_xyz, center) -> sitk.Image:
    img = sitk.Image([int(s) for s in size_xyz], sitk.sitkFloat32)
    img.SetSpacing([float(s) for s in spacing_xyz])
    img.SetOrigin([float(c - (n - 1) * s / 2.0) for c, n, s in zip(center, size_xyz, spacing_xyz, strict=False)])
    return img


def _flair_contrast(t1: np.ndarray) -> np.ndarray:
    # template T1 intensities: CSF ~1600, grey matter ~5500, white matter ~7100 (docs/explanation/design.md, data facts)
    return np.interp(t1, [0, 1000, 2600, 4500, 5600, 6800, 9000], [0, 80, 110, 450, 600, 420, 400])


@functools.lru_cache(maxsize=2)
def _anatomy(radius: int) -> tuple[sitk.Image, np.ndarray, sitk.Image]:
    """Smoothed template, candidate lesion voxels (atlas index, z y x) and the atlas (cached per process)."""
    from nnunet_ataxia.io.templates import desikan_killiany_atlas
    from nnunet_ataxia.preprocessing.registration import load_mni_template
    from nnunet_ataxia.preprocessing.wmh_ventricles import LEFT_LATERAL_VENTRICLE, RIGHT_LATERAL_VENTRICLE

    template = sitk.SmoothingRecursiveGaussian(load_mni_template(with_brain_mask=False)[0], 1.0)
    # lesion centres: periventricular white matter next to the atlas lateral ventricles
    atlas = desikan_killiany_atlas()
    vent = np.isin(sitk.GetArrayFromImage(atlas), (LEFT_LATERAL_VENTRICLE, RIGHT_LATERAL_VENTRICLE))
    ring = ndimage.binary_dilation(vent, iterations=radius + 2) & ~ndimage.binary_dilation(vent, iterations=radius)
    t_on_atlas = sitk.GetArrayFromImage(sitk.Resample(template, atlas, sitk.Transform(), sitk.sitkLinear, 0.0))
    return template, np.argwhere(ring & (t_on_atlas > 6500)), atlas


def make_synthetic_case(seed: int = 0, flair_spacing: Sequence[float] = (2.4, 2.4, 5.0),
                        t1_spacing: float = 2.0, subject_to_mni: np.ndarray | None = None,
                        t1_to_flair: np.ndarray | None = None, n_lesions: int = 3,
                        lesion_radius_mm: float = 5.0, warp_mm: float = 0.0,
                        flair_extent_mm: Sequence[float] = (150.0, 185.0, 135.0), skull_mm: float = 0.0) -> dict:
    """One synthetic case (images, label, ground-truth transforms).

    Args:
        seed: random seed (lesion positions, noise, default transforms).
        flair_spacing: FLAIR voxel size (x, y, z) in mm; thick slices along z.
        t1_spacing: isotropic T1 voxel size in mm.
        subject_to_mni: FLAIR physical point -> MNI point (default: a small random rotation + shift).
        t1_to_flair: T1 physical point -> FLAIR physical point (default: a random rigid offset of a few mm/degrees).
        n_lesions: number of periventricular WMH blobs.
        lesion_radius_mm: blob radius.
        warp_mm: size of a smooth non-linear deformation on top of ``subject_to_mni`` (standard deviation of the
            random coefficients of a cubic B-spline with ~45 mm control spacing; 0 = purely affine case).
        flair_extent_mm: field of view of the FLAIR (x, y, z) in mm (e.g. 16 slices of 8 mm: ``z = 128``).
        skull_mm: thickness of a bright scalp/skull shell around the brain, with background noise (0: the FLAIR is
            skull-stripped, zero outside the brain).

    Returns:
        ``{"t1", "flair", "label": sitk.Image, "subject_to_mni", "t1_to_flair": 4x4, "lesion_centers_mni",
        "mni_warp": the deformation (MNI -> MNI, ``None`` when ``warp_mm == 0``), "flair_to_mni": the full map as a
        SimpleITK transform (FLAIR points -> MNI points)}``.

    Example:
        >>> case = make_synthetic_case(seed=1)  # doctest: +SKIP
    """
    rng = np.random.default_rng(seed)
    if subject_to_mni is None:
        subject_to_mni = rigid_matrix(rng.uniform(-4, 4), rng.uniform(-6, 6, 3), rng.uniform(0.97, 1.03))
    if t1_to_flair is None:
        t1_to_flair = rigid_matrix(rng.uniform(-3, 3), rng.uniform(-5, 5, 3))
    template, candidates, atlas = _anatomy(int(lesion_radius_mm))
    center_mni = np.array([0.0, 18.0, 10.0])  # LPS, roughly the brain centre of the FSL template
    center_subject = np.linalg.solve(subject_to_mni, np.append(center_mni, 1.0))[:3]
    picks = candidates[rng.choice(len(candidates), size=n_lesions + 1, replace=False)]
    centers = np.array([atlas.TransformIndexToPhysicalPoint([int(i) for i in p[::-1]]) for p in picks])

    flair_size = [int(math.ceil(ext / s)) for ext, s in zip(flair_extent_mm, flair_spacing, strict=False)]
    flair_grid = _grid(flair_size, flair_spacing, center_subject)
    warp = smooth_deformation(template, warp_mm, seed) if warp_mm > 0 else None
    flair_to_mni = _with_warp(transform_from_matrix(subject_to_mni), warp)
    if warp is None:
        mni_pts = grid_points(flair_grid, subject_to_mni)  # (3, z, y, x) LPS
    else:
        field = sitk.TransformToDisplacementField(flair_to_mni, sitk.sitkVectorFloat64, flair_grid.GetSize(),
                                                  flair_grid.GetOrigin(), flair_grid.GetSpacing(),
                                                  flair_grid.GetDirection())
        mni_pts = grid_points(flair_grid) + np.moveaxis(sitk.GetArrayFromImage(field), -1, 0)
    sq = [((mni_pts - c.reshape(3, 1, 1, 1)) ** 2).sum(0) for c in centers]
    label = np.zeros(mni_pts.shape[1:], np.uint8)
    for d2 in sq[:-1]:
        label[d2 <= lesion_radius_mm ** 2] = 1
    label[sq[-1] <= (0.8 * lesion_radius_mm) ** 2] = 2

    t_flair = sitk.GetArrayFromImage(sitk.Resample(template, flair_grid, flair_to_mni, sitk.sitkLinear, 0.0,
                                                   sitk.sitkFloat32))
    flair_arr = _flair_contrast(t_flair)
    flair_arr[label == 1] = 900.0
    flair_arr[label == 2] = 150.0
    flair_arr = flair_arr + rng.normal(0, 8, flair_arr.shape) * (t_flair > 0)
    if skull_mm > 0:  # a bright scalp/skull shell 3 mm outside the brain, noisy background: not skull-stripped
        outside_mm = ndimage.distance_transform_edt(t_flair <= 0, sampling=list(reversed(flair_spacing)))
        shell = (outside_mm > 3.0) & (outside_mm <= 3.0 + skull_mm)
        flair_arr = np.where(shell, 700.0, flair_arr) + np.abs(rng.normal(0, 15, flair_arr.shape)) * (t_flair <= 0)
    flair = sitk.GetImageFromArray(flair_arr.astype(np.float32))
    flair.CopyInformation(flair_grid)
    lab = sitk.GetImageFromArray(label)
    lab.CopyInformation(flair_grid)

    # T1: same anatomy, seen through the rigid offset (T1 point q shows the anatomy of FLAIR point t1_to_flair(q))
    center_t1 = np.linalg.solve(t1_to_flair, np.append(center_subject, 1.0))[:3]
    t1_grid = _grid([int(math.ceil(e / t1_spacing)) for e in (160.0, 195.0, 160.0)], [t1_spacing] * 3, center_t1)
    t1 = sitk.Resample(template, t1_grid, _with_warp(transform_from_matrix(subject_to_mni @ t1_to_flair), warp),
                       sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    t1_arr = sitk.GetArrayFromImage(t1)
    t1_arr = t1_arr + rng.normal(0, 40, t1_arr.shape) * (t1_arr > 0)
    t1n = sitk.GetImageFromArray(t1_arr.astype(np.float32))
    t1n.CopyInformation(t1_grid)
    return {"t1": t1n, "flair": flair, "label": lab, "subject_to_mni": subject_to_mni, "t1_to_flair": t1_to_flair,
            "lesion_centers_mni": centers[:-1], "mni_warp": warp, "flair_to_mni": flair_to_mni}


def smooth_deformation(template: sitk.Image, size_mm: float, seed: int = 0,
                       control_spacing_mm: float = 45.0) -> sitk.BSplineTransform:
    """A known smooth, invertible deformation of MNI space (MNI -> MNI): a cubic B-spline with random coefficients.

    Args:
        template: the MNI image whose box the control mesh covers.
        size_mm: standard deviation of the coefficients (mm); displacements reach about twice this.
        seed: random seed.
        control_spacing_mm: control-point spacing.

    Example:
        >>> warp = smooth_deformation(load_mni_template()[0], 3.0)  # doctest: +SKIP
    """
    mesh = [max(1, int(round(n * s / control_spacing_mm)))
            for n, s in zip(template.GetSize(), template.GetSpacing(), strict=True)]
    warp = sitk.BSplineTransformInitializer(template, mesh, order=3)
    rng = np.random.default_rng(10_000 + int(seed))
    warp.SetParameters(rng.normal(0.0, float(size_mm), warp.GetNumberOfParameters()).tolist())
    return warp


def _with_warp(affine: sitk.Transform, warp: sitk.Transform | None) -> sitk.Transform:
    """Points -> affine -> warp (SimpleITK's composite applies its last transform first)."""
    return affine if warp is None else sitk.CompositeTransform([warp, affine])


def write_plain_case(folder: str | Path, case: dict) -> Path:
    """Write ``<folder>/{T1,FLAIR,wmh}.nii.gz`` (the plain layout)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, key in (("T1", "t1"), ("FLAIR", "flair"), ("wmh", "label")):
        sitk.WriteImage(case[key], str(folder / f"{name}.nii.gz"), useCompression=True)
    return folder


def write_miccai_case(folder: str | Path, case: dict, with_label: bool = True) -> Path:
    """Write ``<folder>/orig/{T1,FLAIR}``, ``pre/{T1,FLAIR}`` (T1 resampled onto the FLAIR grid) and ``wmh``."""
    folder = Path(folder)
    for sub in ("orig", "pre"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(case["t1"], str(folder / "orig" / "T1.nii.gz"), useCompression=True)
    sitk.WriteImage(case["flair"], str(folder / "orig" / "FLAIR.nii.gz"), useCompression=True)
    t1_pre = sitk.Resample(case["t1"], case["flair"], transform_from_matrix(np.linalg.inv(case["t1_to_flair"])),
                           sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    sitk.WriteImage(t1_pre, str(folder / "pre" / "T1.nii.gz"), useCompression=True)
    sitk.WriteImage(case["flair"], str(folder / "pre" / "FLAIR.nii.gz"), useCompression=True)
    if with_label:
        sitk.WriteImage(case["label"], str(folder / "wmh.nii.gz"), useCompression=True)
    return folder
