"""Non-linear (B-spline) registration to MNI on top of an affine, displacement fields, and thick-slice-safe pyramids.

Conventions follow :mod:`nnunet_ataxia.preprocessing.registration`: a registration of ``moving`` onto ``fixed``
returns the transform mapping fixed-space points to moving-space points. The B-spline here lives on the MNI template
(the fixed image) and is *near identity*: the full MNI -> image map is ``affine(bspline(m))``, i.e.
``sitk.CompositeTransform([affine, bspline])`` (SimpleITK applies the last transform of the list first).

ITK's recursive Gaussian smoothing needs at least four voxels along every axis it smooths, and its shrink filters
halve a 16-slice scan to two slices quickly: :func:`axis_shrink_factors` gives per-axis shrink factors that never go
below :data:`~nnunet_ataxia.io.constants.MIN_VOXELS_PER_AXIS`, so thick-slice clinical scans (e.g. 16 slices of
8 mm) stay registrable.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk

from nnunet_ataxia.errors import InputError
from nnunet_ataxia.io.constants import MIN_VOXELS_PER_AXIS

__all__ = ["axis_shrink_factors", "bspline_register_to_mni", "displacement_field",
           "invert_displacement_field", "field_jacobian_range"]



def axis_shrink_factors(size: Sequence[int], factor: int, min_voxels: int = MIN_VOXELS_PER_AXIS) -> list[int]:
    """Per-axis shrink factors, at most ``factor``, that keep at least ``min_voxels`` voxels along every axis.

    Args:
        size: image size (x, y, z) in voxels.
        factor: the wanted shrink factor.
        min_voxels: the fewest voxels an axis may keep (ITK's smoothing needs four).

    Returns:
        One factor per axis (1 for an axis that is already short).

    Example:
        >>> axis_shrink_factors((256, 256, 16), 8)
        [8, 8, 4]
        >>> axis_shrink_factors((256, 256, 5), 8)
        [8, 8, 1]
    """
    return [max(1, min(int(factor), int(n) // int(min_voxels))) for n in size]


def _mesh_size(image: sitk.Image, spacing_mm: float) -> list[int]:
    extent = [n * s for n, s in zip(image.GetSize(), image.GetSpacing(), strict=False)]
    return [max(1, int(round(e / float(spacing_mm)))) for e in extent]


def bspline_register_to_mni(image: sitk.Image, mni_to_image: sitk.Transform, *, template: sitk.Image,
                            template_mask: sitk.Image | None = None, mesh_spacing_mm: float = 40.0,
                            shrink_factors: Sequence[int] = (4,), smoothing_sigmas_mm: Sequence[float] = (2.0,),
                            iterations: int = 20, min_samples: int = 20000, sampling_fraction: float = 0.0,
                            seed: int = 0) -> sitk.BSplineTransform:
    """B-spline refinement (Mattes MI, L-BFGS-B) of an affine MNI registration.

    A cubic B-spline with control points every ``mesh_spacing_mm`` on the template is optimized over the template
    pyramid, coarse to fine. The native image (the moving image) is only smoothed by ITK, never shrunk, so any image
    with four or more voxels per axis is fine (thick slices included); the template pyramid uses
    :func:`axis_shrink_factors`.

    Args:
        image: the native image (T1 or FLAIR; bias-corrected ideally). Thick slices are fine.
        mni_to_image: the affine registration result (MNI points -> image points), e.g. from
            :func:`nnunet_ataxia.preprocessing.registration.affine_register_to_mni`.
        template, template_mask: the MNI template (fixed image) and its brain mask (drives the metric, dilated).
        mesh_spacing_mm: control-point spacing.
        shrink_factors, smoothing_sigmas_mm: the template pyramid (coarse to fine).
        iterations: L-BFGS-B iterations per level.
        min_samples, sampling_fraction: metric samples per level (random, fixed seed): the larger of the two.
        seed: sampling seed (a fixed seed gives a reproducible result).

    Returns:
        The B-spline transform on the template domain (MNI -> MNI, near identity); the full MNI -> image map is
        ``sitk.CompositeTransform([mni_to_image, bspline])``.

    Example:
        >>> affine = affine_register_to_mni(t1, template=template)  # doctest: +SKIP
        >>> warp = bspline_register_to_mni(t1, affine, template=template)  # doctest: +SKIP
    """
    if len(shrink_factors) == 0 or len(smoothing_sigmas_mm) != len(shrink_factors):
        raise ValueError("shrink_factors and smoothing_sigmas_mm need the same, non-zero, number of levels")
    fixed = sitk.Cast(template, sitk.sitkFloat32)
    moving = sitk.Cast(image, sitk.sitkFloat32)
    if min(moving.GetSize()) < MIN_VOXELS_PER_AXIS:
        raise InputError(f"MNI B-spline registration: the image has {tuple(moving.GetSize())} voxels; every axis "
                         f"needs at least {MIN_VOXELS_PER_AXIS}")
    bspline = sitk.BSplineTransformInitializer(fixed, _mesh_size(fixed, mesh_spacing_mm), order=3)

    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    n_mask = float(np.prod(fixed.GetSize()))
    if template_mask is not None:
        mask = sitk.BinaryDilate(sitk.Cast(template_mask > 0, sitk.sitkUInt8), [4] * 3)
        reg.SetMetricFixedMask(mask)
        n_mask = float(np.count_nonzero(sitk.GetArrayViewFromImage(mask)))
    # the template is isotropic and large: one factor per level, capped so that every axis keeps 4 voxels
    shrinks = [min(axis_shrink_factors(fixed.GetSize(), s)) for s in shrink_factors]
    reg.SetMetricSamplingPercentagePerLevel(
        [min(1.0, max(sampling_fraction, min_samples * s ** 3 / max(n_mask, 1.0))) for s in shrinks], int(seed) + 1)
    reg.SetInterpolator(sitk.sitkLinear)
    # unit scales: B-spline coefficients are displacements in mm already (estimating scales costs minutes)
    reg.SetOptimizerAsLBFGSB(gradientConvergenceTolerance=1e-5, numberOfIterations=int(iterations),
                             maximumNumberOfCorrections=5, maximumNumberOfFunctionEvaluations=4 * int(iterations),
                             costFunctionConvergenceFactor=1e7)
    reg.SetShrinkFactorsPerLevel(shrinks)
    reg.SetSmoothingSigmasPerLevel([float(s) for s in smoothing_sigmas_mm])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    reg.SetMovingInitialTransform(mni_to_image)
    reg.SetInitialTransformAsBSpline(bspline, inPlace=True)
    try:
        reg.Execute(fixed, moving)
    except RuntimeError as e:
        lines = str(e).strip().splitlines()
        raise InputError(f"MNI B-spline registration failed ({lines[-1] if lines else e}); "
                         "use --registration affine or check the image") from None
    return bspline


def displacement_field(transform: sitk.Transform, grid: sitk.Image) -> sitk.Image:
    """``transform(p) - p`` at every voxel of ``grid`` (a ``sitkVectorFloat64`` image with ``grid``'s geometry).

    Example:
        >>> g = sitk.Image(4, 4, 4, sitk.sitkFloat32)
        >>> f = displacement_field(sitk.TranslationTransform(3, (1.0, 0.0, 0.0)), g)
        >>> f.GetPixel(0, 0, 0)
        (1.0, 0.0, 0.0)
    """
    return sitk.TransformToDisplacementField(transform, sitk.sitkVectorFloat64, grid.GetSize(), grid.GetOrigin(),
                                             grid.GetSpacing(), grid.GetDirection())


def invert_displacement_field(field: sitk.Image, iterations: int = 50, tolerance_mm: float = 0.01) -> sitk.Image:
    """The inverse of a near-identity displacement field on the same grid (ITK's iterative inversion).

    For ``u`` the field of a map ``W(p) = p + u(p)``, returns ``v`` with ``W(p + v(p)) = p`` (to ``tolerance_mm``
    away from the grid border).

    Example:
        >>> inv = invert_displacement_field(displacement_field(bspline, grid))  # doctest: +SKIP
    """
    field = sitk.Cast(field, sitk.sitkVectorFloat64)
    return sitk.InvertDisplacementField(field, maximumNumberOfIterations=int(iterations),
                                        maxErrorToleranceThreshold=float(tolerance_mm),
                                        meanErrorToleranceThreshold=float(tolerance_mm) / 10.0,
                                        enforceBoundaryCondition=False)


def field_jacobian_range(field: sitk.Image, mask: sitk.Image | None = None) -> tuple[float, float]:
    """(min, max) Jacobian determinant of ``p -> p + field(p)`` over the grid's interior (optionally within
    ``mask``, resampled onto the field's grid); a minimum <= 0 means the map folds.

    Example:
        >>> g = sitk.Image(8, 8, 8, sitk.sitkFloat32)
        >>> field_jacobian_range(displacement_field(sitk.ScaleTransform(3, (2.0, 1.0, 1.0)), g))
        (2.0, 2.0)
    """
    det = sitk.GetArrayFromImage(sitk.DisplacementFieldJacobianDeterminant(field))  # a copy: the image is temporary
    inside = np.zeros(det.shape, bool)
    inside[1:-1, 1:-1, 1:-1] = True  # one-sided differences on the border
    if mask is not None:
        inside &= sitk.GetArrayFromImage(sitk.Resample(mask, field, sitk.Transform(), sitk.sitkNearestNeighbor, 0,
                                                       sitk.sitkUInt8)) > 0
    if not inside.any():
        return 1.0, 1.0
    return float(det[inside].min()), float(det[inside].max())
