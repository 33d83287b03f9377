"""Affine transforms as 4x4 matrices in ITK physical space (LPS, mm), and voxel-grid coordinates.

The WMH pipeline chains a rigid T1->FLAIR registration with an affine T1->MNI registration. Both are affine, so the
map from FLAIR points to MNI points is one 4x4 matrix (``flair_to_mni``); keeping it as a matrix makes composition,
inversion and evaluation on a whole voxel grid exact and cheap.
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

__all__ = ["matrix_from_transform", "transform_from_matrix", "index_to_physical_matrix", "grid_points",
           "lps_to_ras"]


def matrix_from_transform(transform: sitk.Transform, tol_mm: float = 1e-3) -> np.ndarray:
    """The 4x4 matrix of an affine SimpleITK transform (any of Euler, Versor, Affine, Composite of those).

    Found by mapping the origin and three axis points, then checked on a fourth point.

    Args:
        transform: an affine-like transform mapping points p to T(p).
        tol_mm: maximal allowed deviation on the check point (a non-affine transform raises ``ValueError``).

    Returns:
        ``M`` with ``M @ [p, 1] == [T(p), 1]``.

    Example:
        >>> M = matrix_from_transform(sitk.TranslationTransform(3, (1.0, 2.0, 3.0)))
        >>> M[:3, 3].tolist()
        [1.0, 2.0, 3.0]
    """
    origin = np.array(transform.TransformPoint((0.0, 0.0, 0.0)))
    m = np.eye(4)
    m[:3, 3] = origin
    for axis in range(3):
        point = [0.0, 0.0, 0.0]
        point[axis] = 100.0
        m[:3, axis] = (np.array(transform.TransformPoint(point)) - origin) / 100.0
    check = np.array([37.0, -53.0, 71.0])
    if np.abs(m[:3, :3] @ check + m[:3, 3] - np.array(transform.TransformPoint(check.tolist()))).max() > tol_mm:
        raise ValueError(f"transform {transform.GetName()} is not affine")
    return m


def transform_from_matrix(matrix: np.ndarray) -> sitk.AffineTransform:
    """A ``sitk.AffineTransform`` doing ``p -> M @ [p, 1]``.

    Example:
        >>> t = transform_from_matrix(np.diag([2.0, 2.0, 2.0, 1.0]))
        >>> t.TransformPoint((1.0, 1.0, 1.0))
        (2.0, 2.0, 2.0)
    """
    matrix = np.asarray(matrix, dtype=float)
    t = sitk.AffineTransform(3)
    t.SetMatrix(matrix[:3, :3].ravel().tolist())
    t.SetTranslation(matrix[:3, 3].tolist())
    return t


def index_to_physical_matrix(image: sitk.Image) -> np.ndarray:
    """4x4 matrix mapping a continuous (x, y, z) voxel index of ``image`` to its physical point.

    Example:
        >>> img = sitk.Image(4, 4, 4, sitk.sitkUInt8); img.SetSpacing((2.0, 2.0, 2.0))
        >>> float(index_to_physical_matrix(img)[0, 0])
        2.0
    """
    m = np.eye(4)
    direction = np.array(image.GetDirection(), dtype=float).reshape(3, 3)
    m[:3, :3] = direction @ np.diag(image.GetSpacing())
    m[:3, 3] = image.GetOrigin()
    return m


def grid_points(image: sitk.Image, matrix: np.ndarray | None = None) -> np.ndarray:
    """Physical points of every voxel of ``image`` (optionally mapped by ``matrix``), shape (3, z, y, x).

    Args:
        image: the voxel grid.
        matrix: a 4x4 affine applied to the points (e.g. FLAIR -> MNI); identity when ``None``.

    Example:
        >>> img = sitk.Image(3, 2, 1, sitk.sitkUInt8)
        >>> grid_points(img).shape
        (3, 1, 2, 3)
    """
    m = index_to_physical_matrix(image)
    if matrix is not None:
        m = np.asarray(matrix, dtype=float) @ m
    size_x, size_y, size_z = image.GetSize()
    kk, jj, ii = np.meshgrid(np.arange(size_z), np.arange(size_y), np.arange(size_x), indexing="ij")
    pts = np.empty((3, size_z, size_y, size_x), dtype=np.float64)
    for row in range(3):
        pts[row] = m[row, 0] * ii + m[row, 1] * jj + m[row, 2] * kk + m[row, 3]
    return pts


def lps_to_ras(points: np.ndarray) -> np.ndarray:
    """ITK's LPS physical coordinates (first axis of size 3) to the RAS convention of MNI coordinates.

    Example:
        >>> lps_to_ras(np.array([1.0, 2.0, 3.0])).tolist()
        [-1.0, -2.0, 3.0]
    """
    out = np.array(points, dtype=np.float64, copy=True)
    out[0] *= -1.0
    out[1] *= -1.0
    return out
