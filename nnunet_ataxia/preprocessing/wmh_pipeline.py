"""Preprocessing of one WMH case in FLAIR space (Ghafoorian et al. §2.2) and its location-feature input channels.

Steps with a T1: N4 on the T1 -> rigid T1->FLAIR registration (Mattes MI) -> affine T1->MNI registration ->
B-spline refinement (the paper registers non-linearly; ``registration="affine"`` opts out) -> the FLAIR<->MNI map
(:class:`nnunet_ataxia.preprocessing.wmh_mni_map.MNIMap`) -> brain mask (the user's, or the MNI template's brain mask
carried to
FLAIR, cut to the image's non-zero region for skull-stripped scans) -> N4 on the FLAIR (inside the brain) -> T1
resampled onto the FLAIR grid -> both normalized per case to [0, 1] inside the brain, 0 outside -> lateral ventricles
(user labels, or the atlas's refined on the subject's CSF-dark FLAIR (and T1) voxels) -> the location features.
FLAIR-only cases (no T1): the FLAIR itself is registered to MNI and gives the brain mask; thick slices are fine
(registration pyramids keep four voxels per axis; features are in mm, in-plane in the acquisition plane).
The registration functions come from :mod:`nnunet_ataxia.preprocessing.registration` and
:mod:`nnunet_ataxia.preprocessing.deformable_registration`.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from nnunet_ataxia.errors import InputError
from nnunet_ataxia.preprocessing.affine_matrices import lps_to_ras, matrix_from_transform
from nnunet_ataxia.preprocessing.wmh_location_features import compute_location_features, normalize_features
from nnunet_ataxia.preprocessing.wmh_mni_map import MNIMap
from nnunet_ataxia.preprocessing.wmh_ventricles import (
    refine_ventricles,
    ventricles_from_labels,
    warp_atlas_other_csf,
    warp_atlas_ventricles,
)

__all__ = ["WMHCaseFiles", "WMHOptions", "PreprocessedCase", "mni_template", "preprocess_case",
           "normalize_intensity", "register_to_mni", "REGISTRATIONS"]

REGISTRATIONS = ("bspline", "affine")


@dataclass
class WMHCaseFiles:
    """Input files of one case (paths as strings so that the record pickles and hashes simply)."""
    case_id: str
    source_dir: str
    layout: str
    t1: str | None
    flair: str | None
    label: str | None = None
    brain_mask: str | None = None
    ventricles: str | None = None
    t1_in_flair_space: bool = False


@dataclass(frozen=True)
class WMHOptions:
    """Settings of the WMH preprocessing (defaults: the real pipeline; tests shrink iterations and grids).

    Attributes:
        n4: run N4 (always skipped for MICCAI ``pre`` images, which are bias-corrected already).
        n4_iterations, n4_shrink: N4 iterations per level and shrink factor.
        rigid_iterations, rigid_sampling: T1->FLAIR rigid registration effort.
        mni_spacing_mm: the MNI template is resampled to this spacing for the affine registration (1 = as shipped).
        mni_iterations, mni_exhaustive_init: MNI affine registration effort.
        ventricle_margin_mm: how far (mm) from the warped atlas ventricle the ventricles refined on the subject's
            CSF-dark voxels may extend (:func:`nnunet_ataxia.preprocessing.wmh_ventricles.refine_ventricles`).
        intensity_percentiles: robust min/max (percentiles inside the brain) mapped to 0 and 1.
        prior_grid_mm, prior_sigma_mm: grid and smoothing of the WMH prior in MNI space.
        seed: random seed of the registration metric sampling.
        registration: ``"bspline"`` (affine + B-spline, the default, as the paper's non-linear registration) or
            ``"affine"``.
        bspline_mesh_mm, bspline_levels_mm, bspline_iterations, bspline_samples: the B-spline's control spacing,
            its pyramid (template resolution per level, mm), optimizer iterations and metric samples per level.
        warp_grid_mm: spacing of the MNI grid the warp and its inverse are stored on.
    """
    n4: bool = True
    n4_iterations: tuple[int, ...] = (50, 50, 30)
    n4_shrink: int = 4
    rigid_iterations: int = 200
    rigid_sampling: float = 0.1
    mni_spacing_mm: float = 1.0
    mni_iterations: int = 200
    mni_exhaustive_init: bool = True
    ventricle_margin_mm: float = 10.0
    intensity_percentiles: tuple[float, float] = (0.1, 99.9)
    prior_grid_mm: float = 2.0
    prior_sigma_mm: float = 3.0
    seed: int = 0
    registration: str = "bspline"
    bspline_mesh_mm: float = 40.0
    bspline_levels_mm: tuple[float, ...] = (4.0,)
    bspline_iterations: int = 20
    bspline_samples: int = 20000
    warp_grid_mm: float = 3.0


@dataclass
class PreprocessedCase:
    """Outputs of :func:`preprocess_case` (arrays in (z, y, x) order on the FLAIR grid)."""
    reference: sitk.Image           # the FLAIR grid (geometry only is used)
    t1: np.ndarray | None           # T1 on the FLAIR grid, [0, 1] in the brain, 0 outside (None: FLAIR-only)
    flair: np.ndarray               # FLAIR, [0, 1] in the brain, 0 outside
    brain: np.ndarray               # bool
    features: dict                  # normalized location features without the prior
    mni_map: MNIMap                 # FLAIR <-> MNI (affine, + warp after non-linear registration)
    flair_to_t1: sitk.Transform | None  # rigid, FLAIR points -> T1 points (None: FLAIR-only)
    ventricle_source: str
    registration: str = "affine"    # what the map holds ("bspline", "affine", or why the warp was dropped)

    @property
    def flair_to_mni(self) -> np.ndarray:
        """The affine part of the map (4x4, FLAIR points -> MNI points, LPS)."""
        return self.mni_map.affine


@functools.lru_cache(maxsize=4)
def _template_at(spacing_mm: float) -> tuple[sitk.Image, sitk.Image]:
    from nnunet_ataxia.preprocessing.registration import load_mni_template

    template, mask = load_mni_template(with_brain_mask=True)
    if abs(spacing_mm - 1.0) < 1e-6:
        return template, mask
    from nnunet_ataxia.preprocessing.wmh_prior import mni_grid

    grid = mni_grid(template, spacing_mm)
    smooth = sitk.SmoothingRecursiveGaussian(template, 0.5 * spacing_mm)
    t = sitk.Resample(smooth, grid, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    m = sitk.Resample(sitk.Cast(mask, sitk.sitkFloat32), grid, sitk.Transform(), sitk.sitkLinear, 0.0,
                      sitk.sitkFloat32)
    return t, sitk.Cast(m >= 0.5, sitk.sitkUInt8)


def mni_template(spacing_mm: float = 1.0) -> tuple[sitk.Image, sitk.Image]:
    """The MNI152 template and its brain mask, resampled to ``spacing_mm`` (copies; cached per process).

    Example:
        >>> template, mask = mni_template(2.0)  # doctest: +SKIP
    """
    t, m = _template_at(float(spacing_mm))
    return sitk.Image(t), sitk.Image(m)


def normalize_intensity(image: np.ndarray, brain: np.ndarray, percentiles: tuple[float, float] = (0.1, 99.9)
                        ) -> np.ndarray:
    """Per-case intensity normalization to [0, 1] inside the brain (robust percentiles), 0 outside.

    Example:
        >>> normalize_intensity(np.array([0.0, 2.0, 4.0]), np.array([False, True, True]), (0, 100)).tolist()
        [0.0, 0.0, 1.0]
    """
    out = np.zeros(image.shape, dtype=np.float32)
    values = np.asarray(image, dtype=np.float64)[brain]
    if values.size == 0:
        return out
    lo, hi = np.percentile(values, percentiles)
    if hi <= lo:
        return out
    out[brain] = np.clip((values - lo) / (hi - lo), 0.0, 1.0)
    return out


def _read(path: str) -> sitk.Image:
    from nnunet_ataxia.io.images import read_image

    return read_image(path, sitk.sitkFloat32)


def register_to_mni(image: sitk.Image, options: WMHOptions, flair_to_image: np.ndarray | None = None,
                    source: str | os.PathLike = "image") -> tuple[MNIMap, str]:
    """Register a native image (T1 or FLAIR) to MNI: affine, then (``options.registration == "bspline"``) B-spline.

    The affine result is checked first
    (:func:`~nnunet_ataxia.preprocessing.registration_check.check_brain_registration`): an image with no brain anatomy
    where the template has it (not a head, a wrong header, a failed registration) is refused before the B-spline.

    Args:
        image: the image registered (bias-corrected T1, or the FLAIR in FLAIR-only mode).
        options: pipeline settings (template spacing, efforts, registration kind).
        flair_to_image: 4x4 matrix, FLAIR points -> ``image`` points (the rigid T1 offset); identity when ``None``.
        source: the file ``image`` was read from (named in the error).

    Raises:
        InputError: unknown registration kind, or the registration check fails.

    Returns:
        (the FLAIR <-> MNI map, what it holds: ``"bspline"``, ``"affine"`` or ``"affine (...)"`` when the B-spline
        had to be dropped because it folds).

    Example:
        >>> mni_map, kind = register_to_mni(flair, WMHOptions())  # doctest: +SKIP
    """
    from nnunet_ataxia.preprocessing.registration import affine_register_to_mni
    from nnunet_ataxia.preprocessing.registration_check import check_brain_registration

    if options.registration not in REGISTRATIONS:
        raise InputError(f"registration: {options.registration!r} is not one of {', '.join(REGISTRATIONS)}")
    template, template_mask = mni_template(options.mni_spacing_mm)
    mni_to_image = affine_register_to_mni(image, template=template, template_mask=template_mask, seed=options.seed,
                                          iterations=options.mni_iterations,
                                          exhaustive_init=options.mni_exhaustive_init)
    check_brain_registration(source, image, mni_to_image, template, template_mask)
    to_image = np.eye(4) if flair_to_image is None else np.asarray(flair_to_image, dtype=float)
    affine = np.linalg.inv(matrix_from_transform(mni_to_image)) @ to_image
    if options.registration == "affine":
        return MNIMap(affine), "affine"
    return _add_bspline(image, mni_to_image, affine, template, template_mask, options)


def _add_bspline(image: sitk.Image, mni_to_image: sitk.Transform, affine: np.ndarray, template: sitk.Image,
                 template_mask: sitk.Image, options: WMHOptions) -> tuple[MNIMap, str]:
    from nnunet_ataxia.preprocessing.deformable_registration import (
        bspline_register_to_mni,
        displacement_field,
        field_jacobian_range,
        invert_displacement_field,
    )
    from nnunet_ataxia.preprocessing.wmh_prior import mni_grid

    spacing = float(min(template.GetSpacing()))
    levels = [float(mm) for mm in options.bspline_levels_mm]
    bspline = bspline_register_to_mni(
        image, mni_to_image, template=template, template_mask=template_mask, mesh_spacing_mm=options.bspline_mesh_mm,
        shrink_factors=[max(1, int(round(mm / spacing))) for mm in levels],
        smoothing_sigmas_mm=[mm / 2 for mm in levels], iterations=options.bspline_iterations,
        min_samples=options.bspline_samples, seed=options.seed)
    grid = mni_grid(template, options.warp_grid_mm)
    warp = displacement_field(bspline, grid)
    smallest = field_jacobian_range(warp, template_mask)[0]
    if smallest <= 0.1:  # (nearly) folding inside the brain: not a usable map
        return MNIMap(affine), f"affine (the B-spline folds: Jacobian {smallest:.2f})"
    return MNIMap(affine, warp, invert_displacement_field(warp)), "bspline"


def _foreground(image: np.ndarray) -> np.ndarray:
    """Voxels above the image minimum, holes filled: the brain of a skull-stripped scan, the head (or all) else."""
    from scipy import ndimage

    return ndimage.binary_fill_holes(image > image.min())


def preprocess_case(case: WMHCaseFiles, options: WMHOptions) -> PreprocessedCase:
    """Run the FLAIR-space preprocessing of one case and compute its location features (without the prior).

    Args:
        case: the case's files (checked with :func:`nnunet_ataxia.dataset_conversion.wmh_layouts.check_case_files`);
            ``case.t1`` may
            be ``None`` (FLAIR-only: the FLAIR is registered to MNI and gives the brain mask).
        options: pipeline settings.

    Returns:
        A :class:`PreprocessedCase`.

    Example:
        >>> pre = preprocess_case(find_cases("/data/wmh")[0], WMHOptions())  # doctest: +SKIP
    """
    from nnunet_ataxia.preprocessing.registration import n4_bias_correction, resample_to, rigid_register

    flair = _read(case.flair)
    run_n4 = options.n4 and not case.t1_in_flair_space
    n4_kw = dict(shrink_factor=options.n4_shrink, iterations=options.n4_iterations)
    t1n, flair_to_t1 = None, None
    if case.t1 is not None:
        t1 = _read(case.t1)
        t1n = n4_bias_correction(t1, **n4_kw) if run_n4 else t1
        if case.t1_in_flair_space:
            flair_to_t1 = sitk.Euler3DTransform()
        else:
            flair_to_t1 = rigid_register(flair, t1n, sampling_fraction=options.rigid_sampling, seed=options.seed,
                                         iterations=options.rigid_iterations)
        mni_map, registration = register_to_mni(t1n, options, matrix_from_transform(flair_to_t1),
                                                 source=case.t1)
    else:
        mni_map, registration = register_to_mni(flair, options, source=case.flair)

    flair_raw = sitk.GetArrayFromImage(flair)
    if case.brain_mask is not None:
        brain = sitk.GetArrayFromImage(_read(case.brain_mask)) > 0
    else:
        template_mask = sitk.Cast(mni_template(options.mni_spacing_mm)[1], sitk.sitkFloat32)
        warped = sitk.Resample(template_mask, flair, mni_map.to_mni(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
        brain = (sitk.GetArrayFromImage(warped) >= 0.5) & _foreground(flair_raw)
    if not brain.any():
        raise InputError(f"{case.brain_mask or case.t1 or case.flair}: the brain mask in FLAIR space is empty "
                         "(registration to MNI failed or the images do not overlap)")
    brain_img = sitk.GetImageFromArray(brain.astype(np.uint8))
    brain_img.CopyInformation(flair)

    flair_n = n4_bias_correction(flair, mask=brain_img, **n4_kw) if run_n4 else flair
    flair_arr = sitk.GetArrayFromImage(flair_n).astype(np.float32)
    spacing_zyx = tuple(reversed(flair.GetSpacing()))

    t1_channel = None
    if t1n is not None:
        t1_on_flair = resample_to(flair, t1n, flair_to_t1, is_label=False)
        t1_channel = normalize_intensity(sitk.GetArrayFromImage(t1_on_flair), brain, options.intensity_percentiles)
    if case.ventricles is not None:
        left, right = ventricles_from_labels(sitk.GetArrayFromImage(sitk.ReadImage(case.ventricles)), case.ventricles)
        source = "labels"
    else:
        atlas_left, atlas_right = warp_atlas_ventricles(flair, mni_map.to_mni())
        if not atlas_left.any() or not atlas_right.any():
            raise InputError(f"{case.flair}: the atlas lateral ventricles do not fall into the FLAIR field of view "
                             "(check the MNI registration or give ventricles.nii.gz)")
        left, right = refine_ventricles(flair_arr, brain, atlas_left, atlas_right, spacing_zyx,
                                        options.ventricle_margin_mm, t1=t1_channel,
                                        other_csf=warp_atlas_other_csf(flair, mni_map.to_mni()))
        source = "atlas+image"
    mni_ras = lps_to_ras(mni_map.mni_points(flair))
    try:
        raw = compute_location_features(mni_ras, brain, left, right, None, spacing_zyx)
    except ValueError as e:
        raise InputError(f"{case.flair}: {e}") from None
    features = normalize_features(raw, brain)
    return PreprocessedCase(
        reference=flair, t1=t1_channel,
        flair=normalize_intensity(flair_arr, brain, options.intensity_percentiles),
        brain=brain, features=features, mni_map=mni_map, flair_to_t1=flair_to_t1, ventricle_source=source,
        registration=registration)


def save_matrix(path: str | Path, matrix: np.ndarray) -> None:
    """Write a 4x4 matrix as text (``numpy.savetxt``)."""
    np.savetxt(str(path), np.asarray(matrix, dtype=float), fmt="%.10g")


def load_matrix(path: str | Path) -> np.ndarray:
    """Read a 4x4 matrix written by :func:`save_matrix`."""
    m = np.loadtxt(str(path), dtype=float)
    if m.shape != (4, 4):
        raise InputError(f"{path}: not a 4x4 matrix")
    return m
