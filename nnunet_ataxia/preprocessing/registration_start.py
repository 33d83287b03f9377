"""Where an MNI registration starts: the template's brain centre placed on the native image's centre of mass
(image moments) or below the top of the head.

The moments start is right for skull-stripped images and most heads. A field of view with much neck, face or a
bright scalp pulls the centre of mass down and forward, sometimes beyond what the coarse exhaustive search around
the start recovers. The top of the head is not moved by what lies below it, so the head-top start aligns the top of
the template brain with the top of the head (and their left-right and anterior-posterior centres, taken from the
upper part only).
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from nnunet_ataxia.errors import InputError
from nnunet_ataxia.preprocessing.deformable_registration import axis_shrink_factors

__all__ = ["REGISTRATION_STARTS", "moments_start", "head_top_landmark", "head_top_start", "physical_points"]

#: the registration starts :func:`~nnunet_ataxia.preprocessing.registration.affine_register_to_mni` knows
REGISTRATION_STARTS = ("moments", "head-top")
#: the head's left-right / anterior-posterior centre is taken from this much below the top of the head (mm)
UPPER_HEAD_MM = 100.0


def physical_points(image: sitk.Image, mask: np.ndarray) -> np.ndarray:
    """Physical (LPS, mm) coordinates of the voxels of a numpy ``mask`` (z, y, x) on ``image``'s grid, one per row.

    Example:
        >>> image = sitk.Image([4, 4, 4], sitk.sitkUInt8)
        >>> physical_points(image, np.ones((4, 4, 4), bool)).max(0).tolist()
        [3.0, 3.0, 3.0]
    """
    index = np.argwhere(mask)[:, ::-1].astype(float)
    direction = np.array(image.GetDirection()).reshape(3, 3)
    return np.array(image.GetOrigin()) + (index * np.array(image.GetSpacing())) @ direction.T


def moments_start(template: sitk.Image, image: sitk.Image) -> sitk.Euler3DTransform:
    """The rigid start that aligns the centres of mass of ``template`` and ``image`` (no rotation).

    Example:
        >>> start = moments_start(template, t1)  # doctest: +SKIP
    """
    try:
        initial = sitk.CenteredTransformInitializer(template, image, sitk.Euler3DTransform(),
                                                    sitk.CenteredTransformInitializerFilter.MOMENTS)
    except RuntimeError as e:
        raise InputError(f"MNI registration: cannot initialize ({str(e).strip().splitlines()[-1]}); "
                         "is the image empty?") from None
    return sitk.Euler3DTransform(initial)


def _largest_foreground(image: sitk.Image, spacing_mm: float = 4.0) -> tuple[sitk.Image, np.ndarray]:
    """The image shrunk to about ``spacing_mm`` voxels and its largest foreground component (the head)."""
    shrink = [max(1, int(round(spacing_mm / s))) for s in image.GetSpacing()]
    small = sitk.Shrink(sitk.Cast(image, sitk.sitkFloat32), axis_shrink_factors(image.GetSize(), max(shrink)))
    # three Otsu classes, the darkest one background: a very bright neck or scalp cannot take the brain's class
    foreground = sitk.OtsuMultipleThresholds(small, numberOfThresholds=2, numberOfHistogramBins=128) > 0
    components = sitk.RelabelComponent(sitk.ConnectedComponent(foreground), sortByObjectSize=True)
    return small, sitk.GetArrayFromImage(components) == 1


def head_top_landmark(image: sitk.Image) -> np.ndarray:
    """The top of the head and the left-right / anterior-posterior centre of its upper :data:`UPPER_HEAD_MM`
    (physical LPS, mm), from the image's largest foreground component.

    Example:
        >>> head_top_landmark(t1)  # doctest: +SKIP
        array([ -1.2,  25.3,  93.8])
    """
    small, head = _largest_foreground(image)
    if not head.any():
        raise InputError("MNI registration: cannot initialize (no foreground); is the image empty?")
    points = physical_points(small, head)
    top = float(np.percentile(points[:, 2], 99.5))
    upper = points[points[:, 2] >= top - UPPER_HEAD_MM]
    return np.array([upper[:, 0].mean(), upper[:, 1].mean(), top])


def head_top_start(template: sitk.Image, template_mask: sitk.Image, image: sitk.Image) -> sitk.Euler3DTransform:
    """The rigid start that puts the template brain where the top of the head says the brain is (no rotation).

    The same landmark is measured on the template and on the image (:func:`head_top_landmark`: the highest point,
    superior from the orientation header, and the centre of the part below it) and the start translates the one
    onto the other. With a scalp the start is a scalp's thickness too high, which the exhaustive search around the
    start covers.

    Args:
        template: the MNI brain template.
        template_mask: its brain mask (the rotation centre is the brain's centre).
        image: the native image (any orientation; skull, neck and face may be in the field of view).

    Returns:
        An ``sitk.Euler3DTransform`` (MNI points -> native points), centred on the template brain's centre.

    Example:
        >>> start = head_top_start(template, mask, t1)  # doctest: +SKIP
    """
    brain = physical_points(template_mask, sitk.GetArrayViewFromImage(template_mask) > 0)
    if not len(brain):
        raise InputError("MNI registration: the template brain mask is empty")
    start = sitk.Euler3DTransform()
    start.SetCenter(brain.mean(0).tolist())
    start.SetTranslation((head_top_landmark(image) - head_top_landmark(template)).tolist())
    return start
