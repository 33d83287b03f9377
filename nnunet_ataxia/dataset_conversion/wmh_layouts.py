"""Find and check the cases of T1 + FLAIR (or FLAIR-only) + WMH data in the plain and the MICCAI WMH 2017 layouts.

Plain (RUN DMC-style)::

    <root>/<case>/FLAIR.nii.gz, wmh.nii.gz [, T1.nii.gz, brainmask.nii.gz, ventricles.nii.gz]

MICCAI WMH 2017::

    <root>/<site>/[<scanner>/]<id>/orig/{T1,FLAIR}.nii.gz, pre/{T1,FLAIR}.nii.gz, wmh.nii.gz [, brainmask.nii.gz, ...]

``wmh.nii.gz`` holds 0 background, 1 WMH, 2 other pathology (nnU-Net's ignore label) on the FLAIR grid. The optional
``brainmask.nii.gz`` (non-zero = brain) and ``ventricles.nii.gz`` (FreeSurfer values 4 left, 43 right lateral
ventricle) must be on the FLAIR grid too. The T1 is optional, but for all cases of a dataset or for none
(:func:`select_t1_mode`): a dataset is either T1 + FLAIR or FLAIR-only. Checks here are cheap (headers, label values)
and run before any registration, so bad input fails fast with one :class:`InputError` naming the file and the problem.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from nnunet_ataxia.errors import InputError
from nnunet_ataxia.io.cases import NIFTI_ENDINGS
from nnunet_ataxia.io.constants import MIN_VOXELS_PER_AXIS
from nnunet_ataxia.preprocessing.wmh_pipeline import WMHCaseFiles

__all__ = ["WMHCaseFiles", "find_cases", "check_case_files", "select_t1_mode", "LABEL_NAME", "MASK_NAME",
           "VENTRICLES_NAME"]

LABEL_NAME, MASK_NAME, VENTRICLES_NAME = "wmh", "brainmask", "ventricles"


def _find(folder: Path, stem: str) -> str | None:
    for ending in NIFTI_ENDINGS:
        p = folder / f"{stem}{ending}"
        if p.is_file():
            return str(p)
    return None


def _case_id(parts: tuple[str, ...]) -> str:
    """Folder names joined by ``_``; other characters than letters, digits and ``-`` become ``-``."""
    return "_".join(re.sub(r"[^A-Za-z0-9-]+", "-", p).strip("-") or "x" for p in parts)


def _is_miccai_case(folder: Path) -> bool:
    return (folder / "orig").is_dir() or (folder / "pre").is_dir()


def find_cases(root: str | Path, layout: str = "auto", miccai_images: str = "pre") -> list[WMHCaseFiles]:
    """All cases under ``root`` (sorted by case id).

    Args:
        root: the input folder.
        layout: ``"plain"``, ``"miccai"`` or ``"auto"`` (MICCAI when a case folder has ``orig/`` or ``pre/``).
        miccai_images: MICCAI only: ``"pre"`` (bias-corrected, T1 already on the FLAIR grid: no registration needed)
            or ``"orig"`` (the raw images; the full pipeline runs).

    Returns:
        One :class:`WMHCaseFiles` per case; ``flair`` may be ``None`` (:func:`check_case_files` complains), ``t1``
        too (FLAIR-only, see :func:`select_t1_mode`).

    Example:
        >>> cases = find_cases("/data/wmh2017/training", layout="miccai")  # doctest: +SKIP
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: input folder not found")
    if miccai_images not in ("pre", "orig"):
        raise InputError(f"miccai_images: {miccai_images!r} is neither 'pre' nor 'orig'")
    if layout == "auto":
        layout = "miccai" if any(_is_miccai_case(p) for p in root.glob("**/") if len(p.relative_to(root).parts) <= 3
                                 and p != root) else "plain"
    cases = []
    if layout == "plain":
        for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            t1, flair, label = _find(d, "T1"), _find(d, "FLAIR"), _find(d, LABEL_NAME)
            if t1 is None and flair is None and label is None:
                continue
            cases.append(WMHCaseFiles(_case_id((d.name,)), str(d), "plain", t1, flair, label,
                                      _find(d, MASK_NAME), _find(d, VENTRICLES_NAME)))
    elif layout == "miccai":
        for d in sorted(p for p in root.glob("**/") if p != root and _is_miccai_case(p)):
            rel = d.relative_to(root).parts
            if len(rel) > 3:
                continue
            img = d / miccai_images
            cases.append(WMHCaseFiles(_case_id(rel), str(d), "miccai", _find(img, "T1"), _find(img, "FLAIR"),
                                      _find(d, LABEL_NAME), _find(d, MASK_NAME), _find(d, VENTRICLES_NAME),
                                      t1_in_flair_space=miccai_images == "pre"))
    else:
        raise InputError(f"layout: {layout!r} is not one of plain, miccai, auto")
    if not cases:
        raise InputError(f"{root}: no {layout} WMH cases found (expected <case>/FLAIR.nii.gz, T1.nii.gz, wmh.nii.gz "
                         "or <site>/<id>/pre|orig/{T1,FLAIR}.nii.gz)")
    ids = [c.case_id for c in cases]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise InputError(f"{root}: duplicate case ids {dup}")
    return cases


def _header(path: str) -> sitk.ImageFileReader:
    reader = sitk.ImageFileReader()
    reader.SetFileName(path)
    try:
        reader.ReadImageInformation()
    except RuntimeError as e:
        first = next((line.strip() for line in str(e).splitlines() if line.strip()), "")
        raise InputError(f"{path}: unreadable image ({first[:200]})") from None
    return reader


def _check_volume(reader: sitk.ImageFileReader, path: str, what: str) -> None:
    """A 3D volume with at least :data:`~nnunet_ataxia.io.constants.MIN_VOXELS_PER_AXIS` voxels along every axis (a
    thick-slice scan is fine)."""
    size = tuple(reader.GetSize())
    if reader.GetDimension() != 3:
        raise InputError(f"{path}: the {what} is {reader.GetDimension()}D (size {size}); a 3D volume is needed")
    if min(size) < MIN_VOXELS_PER_AXIS:
        raise InputError(f"{path}: the {what} has size {size}; a 3D volume with at least {MIN_VOXELS_PER_AXIS} "
                         "voxels (slices) along every axis is needed, not a single slice or a 2D image")


def select_t1_mode(case_lists: Sequence[Sequence[WMHCaseFiles]], flair_only: bool = False
                   ) -> tuple[bool, list[list[WMHCaseFiles]]]:
    """Decide whether a dataset uses the T1: for every case or for none.

    Args:
        case_lists: the training cases, then the test cases (all must agree: the network sees the same channels).
        flair_only: ignore T1 images even where they exist (FLAIR-only mode).

    Returns:
        (whether the T1 is used, the case lists with ``t1`` set to ``None`` in FLAIR-only mode)

    Raises:
        InputError: naming the first case without a T1 when other cases have one.

    Example:
        >>> a = WMHCaseFiles("a", "/d/a", "plain", None, "/d/a/FLAIR.nii.gz")
        >>> select_t1_mode([[a]])[0]
        False
    """
    lists = [list(cases) for cases in case_lists]
    every = [c for cases in lists for c in cases]
    with_t1 = [c for c in every if c.t1 is not None]
    if flair_only or not with_t1:
        return False, [[replace(c, t1=None) for c in cases] for cases in lists]
    without = [c for c in every if c.t1 is None]
    if without:
        raise InputError(f"{without[0].source_dir}: no T1 image (T1.nii.gz) while other cases have one (e.g. "
                         f"{with_t1[0].t1}); give a T1 for every case, or for none, or use --flair-only")
    return True, lists


def _same_grid(ref: sitk.ImageFileReader, other: sitk.ImageFileReader, ref_path: str, path: str, what: str) -> None:
    problems = []
    if ref.GetSize() != other.GetSize():
        problems.append(f"size {other.GetSize()} vs {ref.GetSize()}")
    else:
        for name, a, b in (("spacing", other.GetSpacing(), ref.GetSpacing()),
                           ("origin", other.GetOrigin(), ref.GetOrigin()),
                           ("direction", other.GetDirection(), ref.GetDirection())):
            if not np.allclose(a, b, atol=1e-3):
                problems.append(f"{name} differs")
    if problems:
        raise InputError(f"{path}: {what} is not on the FLAIR grid of {ref_path} ({'; '.join(problems)})")


def _read_array(path: str, what: str = "image") -> np.ndarray:
    from nnunet_ataxia.io.images import read_image

    return sitk.GetArrayFromImage(read_image(path, what=what))


def check_case_files(case: WMHCaseFiles, require_label: bool) -> None:
    """Check one case's files before any work; raise :class:`InputError` naming the file and the problem.

    Checks: FLAIR present, a 3D volume with 4+ voxels per axis (the T1 too, when given: whether a dataset needs
    one is :func:`select_t1_mode`'s business); label present when ``require_label``; label, brain mask and
    ventricle labels on the FLAIR grid (and the MICCAI ``pre`` T1 too); label values only 0, 1, 2; brain mask not
    empty.

    Example:
        >>> check_case_files(find_cases("/data/wmh")[0], require_label=True)  # doctest: +SKIP
    """
    where = case.source_dir
    if case.flair is None:
        raise InputError(f"{where}: no FLAIR image (FLAIR.nii.gz)")
    if require_label and case.label is None:
        raise InputError(f"{where}: no WMH label ({LABEL_NAME}.nii.gz) for a training case")
    from nnunet_ataxia.io.images import check_intensity_image, check_label_values

    flair = _header(case.flair)
    _check_volume(flair, case.flair, "FLAIR image")
    if case.t1 is not None:
        t1 = _header(case.t1)
        _check_volume(t1, case.t1, "T1 image")
        if case.t1_in_flair_space:
            _same_grid(flair, t1, case.flair, case.t1, "the pre-registered T1")
    if case.label is not None:
        _same_grid(flair, _header(case.label), case.flair, case.label, "the WMH label")
        check_label_values(_read_array(case.label, "WMH label"), case.label, (0, 1, 2),
                           "WMH label (0 background, 1 WMH, 2 other pathology)")
    if case.brain_mask is not None:
        _same_grid(flair, _header(case.brain_mask), case.flair, case.brain_mask, "the brain mask")
        if not (_read_array(case.brain_mask) > 0).any():
            raise InputError(f"{case.brain_mask}: the brain mask is empty")
    if case.ventricles is not None:
        _same_grid(flair, _header(case.ventricles), case.flair, case.ventricles, "the ventricle label map")
    for path, what in ((case.flair, "FLAIR image"), (case.t1, "T1 image")):  # finite, not constant
        if path is not None:
            check_intensity_image(_read_array(path, what), path, what)
