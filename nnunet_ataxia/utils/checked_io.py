"""The one place where nnunet-ataxia reads and checks what users give it.

Every reader of user input goes through these functions, so every command applies the same rules and reports a
broken input the same way: one :class:`~nnunet_ataxia.errors.InputError` whose message starts with the file (or case):

* images (:func:`read_image`): exist, readable, every voxel finite; intensity images not constant;
* label maps (:func:`check_label_values`): whole numbers within :data:`LABEL_TOLERANCE`, not negative, from the
  declared label set (a float prediction or a linearly resampled label map is refused, never truncated);
* geometry (:class:`Geometry`, :func:`check_same_geometry`): shape, spacing, origin and direction agree; the 1 mm MNI
  grid of ``preprocess-mri`` mixed with a native grid is named as such, with the command that fixes it;
* case sets (:func:`check_case_sets`), tables (:func:`read_table`: columns, numbers, positive values, unique ids,
  known groups), JSON / NPZ / text files (:func:`read_json`, :func:`read_npz_array`, :func:`read_text`).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from nnunet_ataxia.errors import InputError

__all__ = ["LABEL_TOLERANCE", "KNOWN_GROUPS", "Geometry", "read_image", "read_array", "check_finite",
           "check_intensity_image", "check_label_values", "check_same_geometry", "is_mni_grid", "check_case_sets",
           "read_table", "read_json", "read_npz_array", "read_text", "require_file", "require_folder"]

#: how far a label value may be from a whole number (float-saved label maps carry rounding noise)
LABEL_TOLERANCE = 1e-3
#: participant groups the cohort tables may hold (case-insensitive; empty = unknown)
KNOWN_GROUPS = ("control", "presymptomatic", "sca2", "atlas")
#: (x, y, z) sizes of the 1 mm MNI grids written by ``preprocess-mri`` (cropped box, full template)
MNI_GRID_SIZES = ((128, 128, 96), (182, 218, 182))


def _first_line(error: BaseException) -> str:  # the informative (last) line of a library's message
    return ([line.strip()[:200] for line in str(error).splitlines() if line.strip()] or [type(error).__name__])[-1]


def require_file(path: str | os.PathLike, what: str = "file") -> Path:
    """``path`` as a Path when it is an existing file; else :class:`InputError` naming it."""
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{p}: is a folder, expected a {what}")
    if not p.is_file():
        raise InputError(f"{p}: {what} not found")
    return p


def require_folder(path: str | os.PathLike, what: str = "folder") -> Path:
    """``path`` as a Path when it is an existing folder; else :class:`InputError` naming it."""
    p = Path(path)
    if p.is_file():
        raise InputError(f"{p}: is a file, expected a {what}")
    if not p.is_dir():
        raise InputError(f"{p}: {what} not found")
    return p


# ------------------------------------------------------------------------------------------------------ geometry
@dataclass(frozen=True)
class Geometry:
    """Image geometry in SimpleITK terms (x, y, z order); ``array_spacing`` is in numpy (z, y, x) order."""
    size: tuple[int, ...]
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[float, ...]

    @classmethod
    def of(cls, image) -> "Geometry":
        """The geometry of a SimpleITK image (or image file reader)."""
        return cls(tuple(int(s) for s in image.GetSize()), tuple(image.GetSpacing()), tuple(image.GetOrigin()),
                   tuple(image.GetDirection()))

    @property
    def array_spacing(self) -> tuple[float, ...]:
        return tuple(self.spacing[::-1])

    def differences(self, other: "Geometry", tol: float = 1e-3) -> list[str]:
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

    def matches(self, other: "Geometry", tol: float = 1e-3) -> bool:
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


# -------------------------------------------------------------------------------------------------------- images
def read_image(path: str | os.PathLike, pixel_type: int | None = None, what: str = "image"):
    """Read an image with SimpleITK and check that every voxel is finite.

    Args:
        path: the file (any format SimpleITK reads).
        pixel_type: SimpleITK pixel type to read as (default: as stored).
        what: what the file is, for messages (``"T1 image"``, ``"label map"``...).

    Returns:
        The ``SimpleITK.Image``.

    Raises:
        InputError: missing, unreadable (corrupt, truncated, not an image), or NaN/Inf voxels.

    Example:
        >>> img = read_image("sub-01_T1w.nii.gz", what="T1 image")  # doctest: +SKIP
    """
    import SimpleITK as sitk

    p = require_file(path, what)
    if p.stat().st_size == 0:
        raise InputError(f"{p}: empty file, expected a {what}")
    try:
        image = sitk.ReadImage(str(p), sitk.sitkUnknown if pixel_type is None else pixel_type)
    except RuntimeError as e:
        raise InputError(f"{p}: unreadable {what} (corrupt, truncated or not an image format SimpleITK reads: "
                         f"{_first_line(e)})") from None
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"{p}: {what} is a colour/vector image; expected one value per voxel")
    check_finite(sitk.GetArrayViewFromImage(image), p, what)
    return image


def read_array(path: str | os.PathLike, what: str = "image") -> tuple[np.ndarray, Geometry]:
    """:func:`read_image` as a (z, y, x) numpy array and its :class:`Geometry`."""
    from SimpleITK import GetArrayFromImage

    image = read_image(path, what=what)
    return GetArrayFromImage(image), Geometry.of(image)


def check_finite(array: np.ndarray, path, what: str = "image") -> None:
    """Raise :class:`InputError` naming ``path`` when ``array`` holds NaN or infinite values.

    SimpleITK's NIfTI reader turns NaN/Inf voxels into 0 without a word, so for a floating-point NIfTI file the
    stored values are checked too (with nibabel): a NaN image is refused instead of becoming a zero image.
    """
    a = np.asarray(array)
    bad = int(a.size - np.count_nonzero(np.isfinite(a))) if a.dtype.kind in "fc" else 0
    if not bad:
        bad = _nonfinite_in_nifti(path)
    if bad:
        raise InputError(f"{path}: {what} has {bad} NaN or infinite voxel(s); only finite values are accepted")


def _nonfinite_in_nifti(path) -> int:
    """NaN/Inf values stored in a floating-point NIfTI file (0 for other files or when nibabel cannot tell)."""
    if not str(path).lower().endswith((".nii", ".nii.gz")):
        return 0
    try:
        import nibabel as nib

        img = nib.load(str(path))
        if np.dtype(img.get_data_dtype()).kind not in "fc":
            return 0
        data = np.asanyarray(img.dataobj)
        return int(data.size - np.count_nonzero(np.isfinite(data)))
    except Exception:  # nibabel missing or unable to read what SimpleITK read: nothing more to check
        return 0


def check_intensity_image(array: np.ndarray, path, what: str = "image") -> None:
    """An intensity image (T1, FLAIR) must be finite and not constant (all-zero, all-NaN, a blank export...)."""
    check_finite(a := np.asarray(array), path, what)
    if a.size == 0 or float(a.max()) <= float(a.min()):
        raise InputError(f"{path}: {what} is constant (every voxel {a.flat[0] if a.size else 'missing'}); "
                         f"expected an MRI with contrast")


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


# ------------------------------------------------------------------------------------------------------ case sets
def _names(cases: Sequence[str], n: int = 5) -> str:
    return ", ".join(cases[:n]) + (f" and {len(cases) - n} more" if len(cases) > n else "")


def check_case_sets(expected: Iterable[str], found: Iterable[str], expected_where, found_where, *,
                    allow_missing: bool = False, allow_extra: bool = False, what: str = "case") -> None:
    """Raise :class:`InputError` when two case sets differ (e.g. predictions vs references), naming the cases.

    Example:
        >>> check_case_sets(["a", "b"], ["a"], "labelsTs", "pred")
        Traceback (most recent call last):
        ...
        nnunet_ataxia.errors.InputError: pred: missing case(s) b that labelsTs has (1 of 2)
    """
    expected, found = set(expected), set(found)
    extra = sorted(found - expected)
    if extra and not allow_extra:
        raise InputError(f"{found_where}: {what}(s) {_names(extra)} have no counterpart in {expected_where}")
    missing = sorted(expected - found)
    if missing and not allow_missing:
        raise InputError(f"{found_where}: missing {what}(s) {_names(missing)} that {expected_where} has "
                         f"({len(missing)} of {len(expected)})")


# ------------------------------------------------------------------------------------------------- tables, files
def read_text(path: str | os.PathLike, what: str = "text file") -> str:
    """A UTF-8 text file; missing, binary or undecodable files raise :class:`InputError`."""
    p = require_file(path, what)
    try:
        text = p.read_bytes().decode("utf-8-sig")  # a byte-order mark (Excel's "CSV UTF-8") is dropped
    except UnicodeDecodeError:
        raise InputError(f"{p}: {what} is not UTF-8 text (corrupt or binary file?)") from None
    if "\x00" in text:
        raise InputError(f"{p}: {what} holds binary data (corrupt file?)")
    return text


def read_json(path: str | os.PathLike, what: str = "JSON file", expect: type | None = dict) -> Any:
    """Parse a JSON file; missing, truncated or malformed files (or another top-level type) raise InputError."""
    p = Path(path)
    try:
        data = json.loads(read_text(p, what))
    except json.JSONDecodeError as e:
        raise InputError(f"{p}: {what} is not valid JSON ({e.msg} at line {e.lineno}; truncated or edited "
                         f"by hand?)") from None
    if expect is not None and not isinstance(data, expect):
        raise InputError(f"{p}: {what} should hold a JSON {expect.__name__}, found {type(data).__name__}")
    return data


def read_npz_array(path: str | os.PathLike, key: str, what: str = "probability file") -> np.ndarray:
    """One array of a ``.npz`` file; truncated or corrupt archives, a missing key or NaN/Inf raise InputError."""
    import zipfile
    import zlib

    p = require_file(path, what)
    try:
        with np.load(p, allow_pickle=False) as f:
            array = f[key] if key in f.files else None
            found = f.files[:5]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise InputError(f"{p}: cannot read {what} (corrupt or truncated .npz: {_first_line(e)})") from None
    if array is None:
        raise InputError(f"{p}: {what} has no array '{key}' (found {found})")
    check_finite(array, p, what)
    return array


def read_table(path: str | os.PathLike, *, what: str = "table", sep: str | None = None,
               required: Sequence[str] = (), numeric: Sequence[str] = (), positive: Sequence[str] = (),
               id_column: str | None = None, group_column: str | None = None,
               known_groups: Sequence[str] | None = KNOWN_GROUPS, lower_case_columns: bool = False,
               aliases: dict[str, str] | None = None):
    """Read a CSV/TSV and check it; every problem raises :class:`InputError` naming the file (and row).

    Args:
        path: the file; ``.tsv`` is tab-separated, anything else comma-separated unless ``sep`` is given.
        what: what the table is, for messages.
        required: columns that must be present.
        numeric, positive: columns whose non-empty values must be numbers / whose values must be numbers > 0
            (both converted to float).
        id_column: column whose values must be present and unique.
        group_column, known_groups: column of participant groups (lower-cased; empty allowed) and the allowed ones.
        lower_case_columns: lower-case the column names first.
        aliases: ``{other name: column}``: ``other name`` is renamed to ``column`` when ``column`` is absent.

    Returns:
        The ``pandas.DataFrame`` (values stripped, numeric columns as float).

    Example:
        >>> df = read_table("volumes.csv", required=["case_id", "model"], positive=["model"],  # doctest: +SKIP
        ...                 id_column="case_id")
    """
    import io

    import pandas as pd

    p = Path(path)
    text = read_text(p, what)
    try:
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False,
                         sep=sep or ("\t" if p.name.lower().endswith(".tsv") else ","))
    except (ValueError, pd.errors.ParserError) as e:  # EmptyDataError is a ValueError
        raise InputError(f"{p}: cannot parse {what} ({_first_line(e)})") from None
    df.columns = [str(c).strip().lower() if lower_case_columns else str(c).strip() for c in df.columns]
    df = df.rename(columns={o: c for o, c in (aliases or {}).items() if c not in df.columns})
    missing = [c for c in required if c not in df.columns]
    if missing or df.columns.duplicated().any():
        raise InputError(f"{p}: {what} lacks column(s) {missing} or repeats one (found {list(df.columns)})")
    if df.empty:
        raise InputError(f"{p}: {what} has no rows")
    df = df.apply(lambda col: col.astype(str).str.strip())
    has_id = id_column is not None and id_column in df.columns

    def row(i) -> str:
        return f"{id_column} '{df.at[i, id_column]}'" if has_id else f"row {i + 2}"

    if has_id and ((df[id_column] == "").any() or df[id_column].duplicated().any()):
        i = df.index[(df[id_column] == "") | df[id_column].duplicated()][0]
        raise InputError(f"{p}: {what} lists {id_column} '{df.at[i, id_column]}' twice or empty (row {i + 2}; "
                         f"duplicated subject?)")
    for c in [c for c in dict.fromkeys([*numeric, *positive]) if c in df.columns]:
        values = pd.to_numeric(df[c].where(df[c] != "", None), errors="coerce").astype(float)
        bad = df.index[(df[c] != "") & values.isna()]
        if len(bad):
            raise InputError(f"{p}: {what} column '{c}' holds a non-numeric value '{df.at[bad[0], c]}' "
                             f"({row(bad[0])})")
        bad = df.index[~(np.isfinite(values) & (values > 0))] if c in positive else []
        if len(bad):
            raise InputError(f"{p}: {what} column '{c}' must hold positive values, found "
                             f"{df.at[bad[0], c] or 'an empty cell'} ({row(bad[0])})")
        df[c] = values
    if group_column is not None and group_column in df.columns:
        df[group_column] = df[group_column].str.lower()
        bad = df.index[~df[group_column].isin([*known_groups, ""])] if known_groups is not None else []
        if len(bad):
            raise InputError(f"{p}: {what} has an unknown group '{df.at[bad[0], group_column]}' ({row(bad[0])}); "
                             f"known groups: {', '.join(known_groups)}")
    return df
