"""The eight location features of Ghafoorian et al. (x, y, z in MNI; in-plane distances; WMH prior).

Arrays are in SimpleITK/nnU-Net order (z, y, x) with ``spacing_zyx`` in mm. "In-plane" means within one 2D slice
perpendicular to the coarsest-spacing axis (the thick-slice axis of a RUN DMC FLAIR; for isotropic data the image z
axis), which is also the axis nnU-Net's ``2d`` configuration slices along (its ``transpose_forward`` puts the
coarsest axis first).

The raw features (mm, MNI mm) are computed by :func:`inplane_distance_mm`, :func:`distance_to_boundary_mm`,
:func:`midline_mask` and :func:`compute_location_features`; :func:`normalize_features` then maps each one per case to
[0, 1] inside the brain mask and to exactly 0 outside it.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from nnunet_ataxia.io.constants import WMH_LOCATION_CHANNEL_NAMES

__all__ = ["slice_axis_for_spacing", "inplane_distance_mm", "distance_to_boundary_mm",
           "midline_mask", "compute_location_features", "normalize_features"]

_COORDINATES = WMH_LOCATION_CHANNEL_NAMES[:3]  # x_mni, y_mni, z_mni


def slice_axis_for_spacing(spacing_zyx: Sequence[float]) -> int:
    """Array axis the 2D slices are perpendicular to: the coarsest spacing (ties: the first, i.e. image z).

    Example:
        >>> slice_axis_for_spacing((5.0, 1.0, 1.2))
        0
        >>> slice_axis_for_spacing((1.0, 1.0, 1.0))
        0
    """
    return int(np.argmax(np.asarray(spacing_zyx, dtype=float)))


def _inplane(spacing_zyx: Sequence[float], slice_axis: int) -> list[float]:
    return [float(s) for a, s in enumerate(spacing_zyx) if a != slice_axis]


def inplane_distance_mm(target: np.ndarray, spacing_zyx: Sequence[float], slice_axis: int | None = None) -> np.ndarray:
    """Distance in mm from every voxel to the nearest ``target`` voxel of the same 2D slice.

    Per slice, ``scipy.ndimage.distance_transform_edt`` with the in-plane spacing. A slice without any target voxel
    (e.g. above the ventricles) gets the 3D Euclidean distance to the target instead, so the feature stays defined
    and keeps growing away from the structure.

    Args:
        target: boolean (z, y, x) mask of the structure; must not be empty.
        spacing_zyx: voxel spacing in mm, array order.
        slice_axis: axis perpendicular to the slices (default :func:`slice_axis_for_spacing`).

    Returns:
        float32 distances in mm; 0 on target voxels.

    Example:
        >>> t = np.zeros((1, 1, 5), bool); t[0, 0, 0] = True
        >>> inplane_distance_mm(t, (5.0, 1.0, 2.0))[0, 0].tolist()
        [0.0, 2.0, 4.0, 6.0, 8.0]
    """
    target = np.asarray(target, dtype=bool)
    if not target.any():
        raise ValueError("inplane_distance_mm: the target mask is empty")
    if slice_axis is None:
        slice_axis = slice_axis_for_spacing(spacing_zyx)
    sampling = _inplane(spacing_zyx, slice_axis)
    out = np.empty(target.shape, dtype=np.float32)
    t_slices, o_slices = np.moveaxis(target, slice_axis, 0), np.moveaxis(out, slice_axis, 0)
    missing = []
    for k in range(t_slices.shape[0]):
        if t_slices[k].any():
            o_slices[k] = ndimage.distance_transform_edt(~t_slices[k], sampling=sampling)
        else:
            missing.append(k)
    if missing:
        full = np.moveaxis(ndimage.distance_transform_edt(~target, sampling=[float(s) for s in spacing_zyx]),
                           slice_axis, 0)
        for k in missing:
            o_slices[k] = full[k]
    return out


def distance_to_boundary_mm(mask: np.ndarray, spacing_zyx: Sequence[float],
                            slice_axis: int | None = None) -> np.ndarray:
    """In-plane distance in mm from every mask voxel to the nearest voxel outside the mask (the brain "cortex").

    The image border counts as outside, so the value is at least one in-plane voxel spacing on every mask voxel
    (strictly positive inside, 0 outside).

    Args:
        mask: boolean (z, y, x) brain mask.
        spacing_zyx: voxel spacing in mm, array order.
        slice_axis: axis perpendicular to the slices (default :func:`slice_axis_for_spacing`).

    Example:
        >>> m = np.zeros((1, 5, 7), bool); m[0, :, 1:6] = True
        >>> distance_to_boundary_mm(m, (5.0, 1.0, 1.0))[0, 2].tolist()
        [0.0, 1.0, 2.0, 3.0, 2.0, 1.0, 0.0]
    """
    mask = np.asarray(mask, dtype=bool)
    if slice_axis is None:
        slice_axis = slice_axis_for_spacing(spacing_zyx)
    sampling = _inplane(spacing_zyx, slice_axis)
    out = np.zeros(mask.shape, dtype=np.float32)
    m_slices, o_slices = np.moveaxis(mask, slice_axis, 0), np.moveaxis(out, slice_axis, 0)
    for k in range(m_slices.shape[0]):
        if m_slices[k].any():
            padded = np.pad(m_slices[k], 1, constant_values=False)
            o_slices[k] = ndimage.distance_transform_edt(padded, sampling=sampling)[1:-1, 1:-1]
    return out


def midline_mask(x_mni: np.ndarray, spacing_zyx: Sequence[float], slice_axis: int | None = None) -> np.ndarray:
    """Voxels on the midsagittal plane (x_mni = 0): where x_mni changes sign in-plane, the neighbour closer to 0.

    Args:
        x_mni: (z, y, x) MNI x coordinate (RAS mm) of every voxel.
        spacing_zyx: voxel spacing (only to find the slice axis).
        slice_axis: axis perpendicular to the slices (default :func:`slice_axis_for_spacing`).

    Example:
        >>> x = np.array([[[-1.5, -0.5, 0.5, 1.5]]])
        >>> midline_mask(x, (5.0, 1.0, 1.0)).astype(int).tolist()
        [[[0, 1, 0, 0]]]
    """
    x = np.asarray(x_mni, dtype=np.float64)
    if slice_axis is None:
        slice_axis = slice_axis_for_spacing(spacing_zyx)
    mid = x == 0
    for axis in (a for a in range(x.ndim) if a != slice_axis):
        lo = [slice(None)] * x.ndim
        hi = [slice(None)] * x.ndim
        lo[axis], hi[axis] = slice(0, -1), slice(1, None)
        x0, x1 = x[tuple(lo)], x[tuple(hi)]
        cross = np.sign(x0) * np.sign(x1) < 0
        mid[tuple(lo)] |= cross & (np.abs(x0) <= np.abs(x1))
        mid[tuple(hi)] |= cross & (np.abs(x1) < np.abs(x0))
    return mid


def compute_location_features(mni_ras: np.ndarray, brain: np.ndarray, left_ventricle: np.ndarray,
                              right_ventricle: np.ndarray, prior: np.ndarray | None,
                              spacing_zyx: Sequence[float]) -> dict[str, np.ndarray]:
    """The raw (un-normalized) location features of one case.

    Args:
        mni_ras: (3, z, y, x) MNI coordinates (RAS mm) of every voxel.
        brain: boolean brain mask.
        left_ventricle, right_ventricle: boolean masks of the lateral ventricles.
        prior: WMH prior probability sampled on the case grid, or ``None`` (left out of the result).
        spacing_zyx: voxel spacing in mm.

    Returns:
        ``{name: float32 array}`` in :data:`~nnunet_ataxia.io.constants.WMH_LOCATION_CHANNEL_NAMES` order
        (coordinates in mm, distances in mm).

    Example:
        >>> feats = compute_location_features(mni, brain, lv, rv, None, (5.0, 1.0, 1.2))  # doctest: +SKIP
    """
    brain = np.asarray(brain, dtype=bool)
    feats = {name: np.asarray(mni_ras[i], dtype=np.float32) for i, name in enumerate(_COORDINATES)}
    feats["dist_left_ventricle"] = inplane_distance_mm(left_ventricle, spacing_zyx)
    feats["dist_right_ventricle"] = inplane_distance_mm(right_ventricle, spacing_zyx)
    feats["dist_cortex"] = distance_to_boundary_mm(brain, spacing_zyx)
    mid = midline_mask(mni_ras[0], spacing_zyx)
    if not mid.any():
        raise ValueError("the midsagittal plane (MNI x = 0) does not cross the image")
    feats["dist_midsagittal"] = inplane_distance_mm(mid, spacing_zyx)
    if prior is not None:
        feats["wmh_prior"] = np.clip(np.asarray(prior, dtype=np.float32), 0.0, 1.0)
    return feats


def normalize_features(features: dict[str, np.ndarray], brain: np.ndarray) -> dict[str, np.ndarray]:
    """Per-case [0, 1] normalization inside the brain mask, exactly 0 outside.

    Coordinates are min-max scaled over the brain; distances and the prior (non-negative, 0 meaning "on the
    structure" / "never WMH") are divided by their maximum over the brain, so 0 stays 0 (e.g. inside a
    ventricle). Since the cortex distance is strictly positive on every brain voxel, the brain mask equals
    ``(location channels > 0).any(axis=0)`` (the convention trainers and evaluation rely on).

    Example:
        >>> b = np.array([True, True, False]); f = {"dist_cortex": np.array([1.0, 2.0, 5.0])}
        >>> normalize_features(f, b)["dist_cortex"].tolist()
        [0.5, 1.0, 0.0]
    """
    brain = np.asarray(brain, dtype=bool)
    out = {}
    for name, values in features.items():
        values = np.asarray(values, dtype=np.float64)
        norm = np.zeros(values.shape, dtype=np.float32)
        if brain.any():
            inside = values[brain]
            if name in _COORDINATES:
                lo, hi = float(inside.min()), float(inside.max())
                scaled = (inside - lo) / (hi - lo) if hi > lo else np.zeros_like(inside)
            else:
                hi = float(inside.max())
                scaled = inside / hi if hi > 0 else np.zeros_like(inside)
            norm[brain] = np.clip(scaled, 0.0, 1.0)
        out[name] = norm
    return out
