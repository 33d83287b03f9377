"""Reading, checking and writing images and label maps: the one place where images enter and leave nnunet-ataxia.

* images (:func:`read_image`): exist, readable (NIfTI and what SimpleITK reads; FreeSurfer ``.mgz`` via nibabel), one
  finite value per voxel; intensity images not constant (:func:`check_intensity_image`);
* label maps (:func:`check_label_values`, :func:`read_label_map`): whole numbers within :data:`LABEL_TOLERANCE`, not
  negative, from the declared label set (a float prediction or a linearly resampled label map is refused, never
  truncated);
* geometry (:class:`Geometry`, :func:`check_same_geometry`): shape, spacing, origin and direction agree; the 1 mm MNI
  grid of ``preprocess-mri`` mixed with a native grid is named as such, with the command that fixes it.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from nnunet_ataxia.errors import InputError
from nnunet_ataxia.io.files import _first_line, check_finite, require_file

__all__ = ["LABEL_TOLERANCE", "MNI_CROP_SIZE_XYZ", "MNI_TEMPLATE_SIZE_XYZ", "MNI_GRID_SIZES", "Geometry",
           "is_mni_grid", "check_same_geometry", "read_image", "check_image_header", "read_array", "read_label_map",
           "check_intensity_image", "check_label_values", "write_image", "write_image_like", "copy_image_as_nifti"]

#: how far a label value may be from a whole number (float-saved label maps carry rounding noise)
LABEL_TOLERANCE = 1e-3


#: (x, y, z) size of the papers' 1 mm crop around cerebellum and brainstem (the preprocessing's box and the
#: planner's patch)
MNI_CROP_SIZE_XYZ: tuple[int, int, int] = (128, 128, 96)
#: (x, y, z) size of the 1 mm FSL MNI152 template grid
MNI_TEMPLATE_SIZE_XYZ: tuple[int, int, int] = (182, 218, 182)
#: (x, y, z) sizes of the 1 mm MNI grids written by ``preprocess-mri`` (cropped box, full template)
MNI_GRID_SIZES = (MNI_CROP_SIZE_XYZ, MNI_TEMPLATE_SIZE_XYZ)


@dataclass(frozen=True)
class Geometry:
    """Image geometry in SimpleITK terms (x, y, z order); ``array_spacing`` is in numpy (z, y, x) order."""
    size: tuple[int, ...]
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[float, ...]

    @classmethod
    def of(cls, image) -> Geometry:
        """The geometry of a SimpleITK image (or image file reader)."""
        return cls(tuple(int(s) for s in image.GetSize()), tuple(image.GetSpacing()), tuple(image.GetOrigin()),
                   tuple(image.GetDirection()))

    @property
    def array_spacing(self) -> tuple[float, ...]:
        return tuple(self.spacing[::-1])

    def differences(self, other: Geometry, tol: float = 1e-3) -> list[str]:
        """What differs from ``other`` (empty when the grids match within ``tol``)."""
        if self.size != other.size:
            return [f"size {self.size} vs {other.size}"]
        out = []
        if not np.allclose(self.spacing, other.spacing, rtol=tol, atol=0):
            out.append(f"spacing {_fmt(self.spacing)} vs {_fmt(other.spacing)}")
        if not np.allclose(self.origin, other.origin, atol=max(tol, tol * max(self.spacing))):
            out.append(f"origin {_fmt(self.origin)} vs {_fmt(other.origin)}")
        if not np.allclose(self.direction, other.direction, atol=tol):
            out.append("direction cosines differ")
        return out

    def matches(self, other: Geometry, tol: float = 1e-3) -> bool:
        """Same grid within ``tol`` (relative for spacing, absolute mm for the origin, absolute for direction)."""
        return not self.differences(other, tol)


def _fmt(values) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"


def is_mni_grid(geometry: Geometry) -> bool:
    """True for the 1 mm MNI grids that ``preprocess-mri`` writes (128x128x96 crop or the 182x218x182 template)."""
    return tuple(geometry.size) in MNI_GRID_SIZES and np.allclose(geometry.spacing, 1.0, atol=1e-3)


def check_same_geometry(reference: Geometry, other: Geometry, reference_path, other_path, what: str = "image",
                        tol: float = 1e-3) -> None:
    """Raise :class:`InputError` naming ``other_path`` when it is not on ``reference``'s voxel grid.

    When exactly one of the two is on the MNI grid of ``preprocess-mri``, the message says so and names the command
    that maps predictions back to native space.

    Example:
        >>> g = Geometry((8, 8, 8), (1.0,) * 3, (0.0,) * 3, (1, 0, 0, 0, 1, 0, 0, 0, 1))
        >>> check_same_geometry(g, g, "ref.nii.gz", "pred.nii.gz")
    """
    problems = other.differences(reference, tol)
    if not problems:
        return
    hint = ""
    if is_mni_grid(other) != is_mni_grid(reference):
        mni, native = (other_path, reference_path) if is_mni_grid(other) else (reference_path, other_path)
        hint = (f"; space mix-up: {Path(mni).name} is on the MNI grid of preprocess-mri, {Path(native).name} is "
                f"not (map predictions to native space with 'nnunet-ataxia to-native', or compare files of the "
                f"same space)")
    raise InputError(f"{other_path}: {what} geometry differs from {reference_path} ({'; '.join(problems)}){hint}")


def _load_mgh(path: Path):
    import nibabel as nib

    try:
        return nib.load(str(path))
    except Exception as e:  # nibabel raises several types for corrupt or truncated files
        raise InputError(f"{path}: cannot read FreeSurfer image ({type(e).__name__}: {e})") from None


def _read_mgh(path: Path) -> sitk.Image:
    """A FreeSurfer ``.mgz``/``.mgh`` read with nibabel, as a SimpleITK image with the same physical geometry.

    nibabel's affine maps voxel indices to RAS mm; ITK uses LPS, so x and y flip. A 4D file with one frame is
    returned as 3D; more frames raise :class:`InputError` (this project works on 3D images).
    """
    img = _load_mgh(path)
    try:
        data = np.asanyarray(img.dataobj)
    except Exception as e:
        raise InputError(f"{path}: cannot read FreeSurfer image data ({type(e).__name__}: {e})") from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise InputError(f"{path}: expected a 3D image, got {data.ndim}D (shape {tuple(data.shape)})")
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ np.asarray(img.affine, dtype=float)  # RAS -> LPS
    linear = affine[:3, :3]
    spacing = np.linalg.norm(linear, axis=0)
    if np.any(spacing <= 0):
        raise InputError(f"{path}: degenerate voxel-to-world matrix in the header")
    data = data.astype(data.dtype.newbyteorder("="), copy=False)  # MGH files are big-endian
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(data, (2, 1, 0))))  # (i, j, k) -> (k, j, i)
    image.SetSpacing(spacing.tolist())
    image.SetDirection((linear / spacing).ravel().tolist())
    image.SetOrigin(affine[:3, 3].tolist())
    return image


def read_image(path: str | os.PathLike, pixel_type: int | None = None, what: str = "image"):
    """Read an image with SimpleITK (FreeSurfer ``.mgz``/``.mgh`` with nibabel, same physical geometry) and check
    that it holds one finite value per voxel.

    Args:
        path: the file (any format SimpleITK reads, or ``.mgz``/``.mgh``).
        pixel_type: SimpleITK pixel type to read as (default: as stored).
        what: what the file is, for messages (``"T1 image"``, ``"label map"``...).

    Returns:
        The ``SimpleITK.Image``.

    Raises:
        InputError: missing, empty, unreadable (corrupt, truncated, not an image), a colour/vector image, or NaN/Inf
            voxels.

    Example:
        >>> img = read_image("sub-01_T1w.mgz", sitk.sitkFloat32, what="T1 image")  # doctest: +SKIP
    """
    p = require_file(path, what)
    if p.stat().st_size == 0:
        raise InputError(f"{p}: empty file, expected a {what}")
    unknown = pixel_type is None or pixel_type == sitk.sitkUnknown
    if p.name.lower().endswith((".mgz", ".mgh")):
        image = _read_mgh(p)
        image = image if unknown else sitk.Cast(image, pixel_type)
    else:
        try:
            image = sitk.ReadImage(str(p), sitk.sitkUnknown if unknown else pixel_type)
        except RuntimeError as e:
            raise InputError(f"{p}: unreadable {what} (corrupt, truncated or not an image format SimpleITK reads: "
                             f"{_first_line(e)})") from None
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"{p}: {what} is a colour/vector image; expected one value per voxel")
    check_finite(sitk.GetArrayViewFromImage(image), p, what)
    return image


def check_image_header(path: str | os.PathLike) -> tuple[int, ...]:
    """Read only the header of an image (fast); raise :class:`InputError` naming the file if it is unreadable.

    Returns:
        The image size.

    Example:
        >>> check_image_header("sub-01_T1w.nii.gz")  # doctest: +SKIP
        (176, 256, 256)
    """
    path = require_file(path, "image")
    if path.name.lower().endswith((".mgz", ".mgh")):
        return tuple(int(n) for n in _load_mgh(path).shape)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        raise InputError(f"{path}: unreadable image (corrupt, truncated or not an image format SimpleITK "
                         "reads)") from None
    return tuple(reader.GetSize())


def read_array(path: str | os.PathLike, what: str = "image") -> tuple[np.ndarray, Geometry]:
    """:func:`read_image` as a (z, y, x) numpy array and its :class:`Geometry`."""
    from SimpleITK import GetArrayFromImage

    image = read_image(path, what=what)
    return GetArrayFromImage(image), Geometry.of(image)


def read_label_map(path: str | os.PathLike, allowed: Iterable[int] | None = None,
                   what: str = "label map") -> tuple[np.ndarray, Geometry]:
    """Read a label map and check its values (whole numbers, not negative, within ``allowed`` when given).

    Example:
        >>> seg, geom = read_label_map("labelsTs/a01.nii.gz", allowed={0, 1, 2})  # doctest: +SKIP
    """
    array, geom = read_array(path, what)
    return check_label_values(array, path, allowed, what), geom


def check_intensity_image(array: np.ndarray, path, what: str = "image") -> None:
    """An intensity image (T1, FLAIR) must be finite and not constant (all-zero, all-NaN, a blank export...)."""
    check_finite(a := np.asarray(array), path, what)
    if a.size == 0 or float(a.max()) <= float(a.min()):
        raise InputError(f"{path}: {what} is constant (every voxel {a.flat[0] if a.size else 'missing'}); "
                         f"expected an MRI with contrast")


#: an intensity image with at most this many distinct whole-number values is taken for a label map
MAX_LABEL_MAP_VALUES = 100


def label_map_like(array: np.ndarray, max_values: int = MAX_LABEL_MAP_VALUES) -> int | None:
    """The number of distinct values when ``array`` looks like a label map (only whole numbers, at most
    ``max_values`` of them), else None. A T1 holds thousands of intensities; an aseg or atlas label map tens.

    Example:
        >>> label_map_like(np.array([0, 2, 2, 41, 0], np.float32)), label_map_like(np.linspace(0, 1, 500))
        (3, None)
    """
    a = np.asarray(array).ravel()
    sample = a[:: max(1, a.size // 200_000)]  # a quick look first: most T1s are told apart here
    if sample.size == 0 or np.unique(sample).size > max_values:
        return None
    if a.dtype.kind == "f" and not np.all(np.rint(a) == a):
        return None
    n = int(np.unique(a).size)
    return n if n <= max_values else None


def check_label_values(array: np.ndarray, path, allowed: Iterable[int] | None = None,
                       what: str = "label map", tol: float = LABEL_TOLERANCE) -> np.ndarray:
    """Check a label map's values and return them as whole numbers.

    Args:
        array: the voxel values.
        path: the file (named in messages).
        allowed: the declared label values (e.g. from dataset.json); ``None`` accepts any non-negative integer.
        what: what the file is (``"prediction"``, ``"reference"``...).
        tol: accepted distance to the nearest whole number.

    Returns:
        ``array`` with integer dtype (rounded when it was stored as float).

    Raises:
        InputError: NaN/Inf, values that are not whole numbers within ``tol`` (a probability map or a linearly
            resampled label), negative values, or values outside ``allowed``.

    Example:
        >>> check_label_values(np.array([0.0, 1.0, 2.0004]), "pred.nii.gz", allowed=[0, 1, 2]).tolist()
        [0, 1, 2]
    """
    a = np.asarray(array)
    check_finite(a, path, what)
    if a.dtype.kind == "b":
        a = a.astype(np.uint8)
    if a.dtype.kind in "fc":
        a = a.real
        rounded = np.rint(a)
        off = np.abs(a - rounded) > tol
        if off.any():
            example = float(a[off].flat[0])
            raise InputError(f"{path}: {what} holds non-integer values ({int(off.sum())} voxel(s), e.g. "
                             f"{example:.4g}); a label map must hold whole numbers (a probability map, a float "
                             f"prediction or a label map resampled with linear interpolation?)")
        lo, hi = (float(rounded.min()), float(rounded.max())) if rounded.size else (0.0, 0.0)
        dtype = np.uint8 if lo >= 0 and hi < 256 else np.int32
        a = rounded.astype(dtype)
    values = np.unique(a)
    if values.size and values[0] < 0:
        raise InputError(f"{path}: {what} holds negative label value(s) {values[values < 0][:5].tolist()}")
    if allowed is not None:
        unknown = sorted(set(values.tolist()) - {int(v) for v in allowed})
        if unknown:
            raise InputError(f"{path}: {what} holds label values {unknown[:10]} outside the declared labels "
                             f"{sorted(int(v) for v in allowed)}")
    return a


def write_image(array: np.ndarray, geometry: Geometry, path: str | os.PathLike) -> None:
    """Write a (z, y, x) array with the given geometry (SimpleITK)."""
    import SimpleITK as sitk
    img = sitk.GetImageFromArray(array)
    if tuple(img.GetSize()) != tuple(geometry.size):
        raise InputError(f"{path}: array of size {img.GetSize()} does not fit geometry of size {geometry.size}")
    img.SetSpacing(geometry.spacing)
    img.SetOrigin(geometry.origin)
    img.SetDirection(geometry.direction)
    sitk.WriteImage(img, str(path), useCompression=True)


def write_image_like(array: np.ndarray, reference: sitk.Image, path: str | os.PathLike, dtype=np.uint8) -> None:
    """Write a (z, y, x) array with ``reference``'s geometry (compressed NIfTI)."""
    img = sitk.GetImageFromArray(np.asarray(array).astype(dtype, copy=False))
    img.CopyInformation(reference)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(img, str(path), useCompression=True)


def copy_image_as_nifti(src: str | os.PathLike, image: sitk.Image, dst: str | os.PathLike) -> None:
    """Copy a ``.nii.gz`` image file as is (hard link / copy); anything else is re-written as ``.nii.gz``."""
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    if str(src).endswith(".nii.gz"):
        shutil.copyfile(src, dst)
    else:
        sitk.WriteImage(image, str(dst), useCompression=True)
