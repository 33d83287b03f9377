"""The map between one case's FLAIR space and MNI space: an affine, optionally refined by a non-linear warp.

With ``A`` the FLAIR->MNI affine (``flair_to_mni.txt``, a 4x4 matrix) and, after non-linear registration, ``u`` the
warp and ``v`` its inverse (displacement fields on an MNI grid, LPS mm)::

    FLAIR -> MNI:  p -> q + v(q),  q = A p
    MNI -> FLAIR:  m -> A^-1 (m + u(m))

Without the warp both are the affine (the ``--registration affine`` opt-out). The fields are stored next to the
matrix as ``mni_warp.nii.gz`` (``u``) and ``mni_warp_inverse.nii.gz`` (``v``), 3-component float32 NIfTI images; the
location features, the template brain mask, the atlas ventricles and the WMH prior all go through this map.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from nnunet_ataxia.errors import InputError
from nnunet_ataxia.preprocessing.affine_matrices import grid_points, transform_from_matrix

__all__ = ["MNIMap", "as_mni_map", "MATRIX_NAME", "WARP_NAME", "INVERSE_WARP_NAME"]

MATRIX_NAME, WARP_NAME, INVERSE_WARP_NAME = "flair_to_mni.txt", "mni_warp.nii.gz", "mni_warp_inverse.nii.gz"


def _field_transform(field: sitk.Image) -> sitk.DisplacementFieldTransform:
    # the transform takes the image over (empties it): hand it a float64 copy; zero displacement outside the grid
    return sitk.DisplacementFieldTransform(sitk.Cast(field, sitk.sitkVectorFloat64))


@dataclass
class MNIMap:
    """FLAIR <-> MNI map of one case.

    Attributes:
        affine: 4x4 matrix, FLAIR points -> MNI points (LPS), the whole map when there is no warp.
        warp: ``u`` (MNI grid), or ``None``.
        inverse_warp: ``v`` (same grid), or ``None``.

    Example:
        >>> m = MNIMap(np.eye(4))
        >>> m.to_mni().TransformPoint((1.0, 2.0, 3.0))
        (1.0, 2.0, 3.0)
    """
    affine: np.ndarray
    warp: sitk.Image | None = None
    inverse_warp: sitk.Image | None = None

    def __post_init__(self) -> None:
        self.affine = np.asarray(self.affine, dtype=float)
        if (self.warp is None) != (self.inverse_warp is None):
            raise ValueError("MNIMap: give both the warp and its inverse, or neither")

    @property
    def nonlinear(self) -> bool:
        """Whether a warp refines the affine."""
        return self.warp is not None

    def to_mni(self) -> sitk.Transform:
        """FLAIR points -> MNI points, for ``sitk.Resample(mni_image, flair, map.to_mni(), ...)``."""
        affine = transform_from_matrix(self.affine)
        if self.inverse_warp is None:
            return affine
        return sitk.CompositeTransform([_field_transform(self.inverse_warp), affine])  # the last one acts first

    def from_mni(self) -> sitk.Transform:
        """MNI points -> FLAIR points, for ``sitk.Resample(flair_image, mni_grid, map.from_mni(), ...)``."""
        inverse = transform_from_matrix(np.linalg.inv(self.affine))
        if self.warp is None:
            return inverse
        return sitk.CompositeTransform([inverse, _field_transform(self.warp)])

    def mni_points(self, reference: sitk.Image) -> np.ndarray:
        """MNI points (LPS mm) of every voxel of ``reference``, shape (3, z, y, x).

        Example:
            >>> img = sitk.Image(3, 2, 1, sitk.sitkUInt8)
            >>> MNIMap(np.eye(4)).mni_points(img).shape
            (3, 1, 2, 3)
        """
        points = grid_points(reference, self.affine)
        if self.inverse_warp is not None:
            v = sitk.Resample(self.inverse_warp, reference, transform_from_matrix(self.affine), sitk.sitkLinear,
                              0.0, sitk.sitkVectorFloat64)
            points += np.moveaxis(sitk.GetArrayFromImage(v), -1, 0)
        return points

    def save(self, folder: str | Path) -> list[Path]:
        """Write ``flair_to_mni.txt`` (and the two fields when non-linear) into ``folder``; return the files."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        files = [folder / MATRIX_NAME]
        np.savetxt(str(files[0]), self.affine, fmt="%.10g")
        if self.warp is not None:
            for name, field in ((WARP_NAME, self.warp), (INVERSE_WARP_NAME, self.inverse_warp)):
                files.append(folder / name)
                sitk.WriteImage(sitk.Cast(field, sitk.sitkVectorFloat32), str(files[-1]), useCompression=True)
        return files

    @classmethod
    def load(cls, folder: str | Path) -> MNIMap:
        """Read what :meth:`save` wrote (the fields only when both files are there)."""
        folder = Path(folder)
        try:
            affine = np.loadtxt(str(folder / MATRIX_NAME), dtype=float)
        except (OSError, ValueError) as e:
            raise InputError(f"{folder / MATRIX_NAME}: cannot read the FLAIR->MNI matrix ({e})") from None
        if affine.shape != (4, 4):
            raise InputError(f"{folder / MATRIX_NAME}: not a 4x4 matrix")
        warp_file, inverse_file = folder / WARP_NAME, folder / INVERSE_WARP_NAME
        if not (warp_file.is_file() and inverse_file.is_file()):
            return cls(affine)
        fields = []
        for f in (warp_file, inverse_file):
            img = sitk.ReadImage(str(f))
            if img.GetNumberOfComponentsPerPixel() != 3 or img.GetDimension() != 3:
                raise InputError(f"{f}: not a 3D displacement field (3 components per voxel)")
            fields.append(sitk.Cast(img, sitk.sitkVectorFloat64))
        return cls(affine, fields[0], fields[1])


def as_mni_map(flair_to_mni: MNIMap | np.ndarray) -> MNIMap:
    """An :class:`MNIMap` from a map or a plain 4x4 FLAIR->MNI matrix (the affine-only case).

    Example:
        >>> as_mni_map(np.eye(4)).nonlinear
        False
    """
    return flair_to_mni if isinstance(flair_to_mni, MNIMap) else MNIMap(np.asarray(flair_to_mni, dtype=float))
