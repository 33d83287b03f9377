"""Case ids from file names, case lists over folders, and the labels of an nnU-Net dataset.json.
"""
from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from pathlib import Path

from nnunet_ataxia.errors import InputError
from nnunet_ataxia.io.files import read_json, require_folder

__all__ = ["IMAGE_ENDINGS", "NIFTI_ENDINGS", "strip_ending", "case_id_of", "subject_id_of", "find_images",
           "expand_folders", "list_cases", "parse_named", "load_dataset_labels"]

#: image file endings the commands accept (FreeSurfer .mgz/.mgh are read with nibabel)
IMAGE_ENDINGS = (".nii.gz", ".nii", ".mgz", ".mgh", ".nrrd", ".mha", ".mhd")


NIFTI_ENDINGS = (".nii.gz", ".nii")


def strip_ending(name: str, endings: Sequence[str] = IMAGE_ENDINGS) -> str | None:
    """File name without its image ending (matched case-insensitively), or None if it has none of ``endings``.

    Example:
        >>> strip_ending("a01-seg.nii.gz"), strip_ending("T1.MGZ"), strip_ending("notes.txt")
        ('a01-seg', 'T1', None)
    """
    for e in endings:
        if name.lower().endswith(e):
            return name[: -len(e)]
    return None


def case_id_of(path: str | os.PathLike) -> str:
    """File name without its image ending (``a01.nii.gz`` -> ``a01``; other files lose their last suffix).

    Example:
        >>> case_id_of("t1/sub-01_0000.nii.gz")
        'sub-01_0000'
    """
    stem = strip_ending(Path(path).name)
    return Path(path).stem if stem is None else stem


def subject_id_of(path: str | os.PathLike) -> str:
    """Case id without nnU-Net's ``_0000`` channel suffix (``sub01_0000.nii.gz`` and ``sub01.nii.gz`` -> ``sub01``).

    Example:
        >>> subject_id_of("t1/sub-01_0000.nii.gz"), subject_id_of("sub-02_T1w.mgz"), subject_id_of("x_0000")
        ('sub-01', 'sub-02_T1w', 'x')
    """
    case = case_id_of(path)
    return case[:-5] if case.endswith("_0000") and len(case) > 5 else case


def find_images(source: str | os.PathLike) -> list[tuple[str, Path]]:
    """``(case id, path)`` for one image file, or for every image file of a folder (hidden files ignored, sorted).

    The case id is :func:`subject_id_of` the file name; two files giving the same id (``sub01.nii.gz`` and
    ``sub01_0000.nii.gz``) raise :class:`InputError` naming them.

    Example:
        >>> find_images("t1_folder")  # doctest: +SKIP
        [('sub-01', PosixPath('t1_folder/sub-01_T1w.mgz')), ...]
    """
    source = Path(source)
    if source.is_dir():
        images = sorted(p for p in source.iterdir() if p.is_file() and not p.name.startswith(".")
                        and strip_ending(p.name) is not None)
        if not images:
            raise InputError(f"{source}: no images ({', '.join(IMAGE_ENDINGS)}) in this folder")
    elif source.is_file():
        images = [source]
    else:
        raise InputError(f"{source}: no such file or folder")
    seen: dict[str, Path] = {}
    for path in images:
        case = subject_id_of(path)
        if case in seen:
            raise InputError(f"{path}: same case id '{case}' as {seen[case].name} (several images of one case? "
                             f"rename or remove one)")
        seen[case] = path
    return [(case, path) for case, path in seen.items()]


def expand_folders(specs: Sequence[str]) -> list[Path]:
    """Expand folder arguments that may be globs (``.../fold_*/validation``) or comma-separated lists."""
    out: list[Path] = []
    for spec in specs:
        for part in str(spec).split(","):
            part = part.strip()
            if not part:
                continue
            matches = sorted(glob.glob(part)) if glob.has_magic(part) else [part]
            if not matches:
                raise InputError(f"{part}: no folder matches this pattern")
            for m in matches:
                if not os.path.isdir(m):
                    raise InputError(f"{m}: not a folder")
                out.append(Path(m))
    if not out:
        raise InputError(f"{', '.join(map(str, specs)) or '(empty)'}: no folder given")
    return out


def list_cases(folders: Sequence[str | os.PathLike], suffix: str = "",
               endings: Sequence[str] = IMAGE_ENDINGS) -> dict[str, Path]:
    """Map case id -> file over one or more folders (e.g. the merged ``fold_*/validation`` folders).

    ``suffix`` is a part of the name between the case id and the ending (``"_0000"`` for images). A case found
    in two folders is an error (cross-validation folds must not overlap).
    """
    cases: dict[str, Path] = {}
    for folder in folders:
        for f in sorted(require_folder(folder).iterdir()):
            stem = strip_ending(f.name, endings)
            if stem is None or not f.is_file() or (suffix and not stem.endswith(suffix)):
                continue
            case = stem[: len(stem) - len(suffix)] if suffix else stem
            if case in cases:
                raise InputError(f"{case}: found twice ({cases[case]} and {f}); folds must not overlap")
            cases[case] = f
    return cases


def parse_named(spec: str, default_name: str) -> tuple[str, str]:
    """``NAME=PATH`` -> (NAME, PATH); a plain PATH gets ``default_name``."""
    if "=" in spec and not os.path.exists(spec):
        name, path = spec.split("=", 1)
        if name.strip():
            return name.strip(), path
    return default_name, spec


def load_dataset_labels(dataset_json: str | os.PathLike) -> tuple[dict[str, tuple[int, ...]], int | None, set[int]]:
    """Structures to evaluate from an nnU-Net dataset.json, read the way nnU-Net reads it (its ``LabelManager``:
    background 0, the ignore label above every other label, regions need ``regions_class_order``).

    Returns:
        (structure name -> label values (a region is the union of several), ignore label or None,
         the set of all label values the dataset allows).

    Example:
        >>> import json, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "dataset.json")
        >>> _ = open(path, "w").write(json.dumps({"labels": {"background": 0, "wmh": 1, "ignore": 2}}))
        >>> load_dataset_labels(path)
        ({'wmh': (1,)}, 2, {0, 1, 2})
    """
    from nnunetv2.utilities.label_handling.label_handling import LabelManager

    path = Path(dataset_json)
    dj = read_json(path, "dataset.json")
    labels = dj.get("labels")
    if not isinstance(labels, dict) or not labels:
        raise InputError(f"{path}: not an nnU-Net dataset.json: no 'labels' mapping of names to values")
    structures: dict[str, tuple[int, ...]] = {}
    for name, value in labels.items():
        try:
            values = tuple(int(v) for v in (value if isinstance(value, (list, tuple)) else [value]))
        except (TypeError, ValueError):
            raise InputError(f"{path}: label '{name}' has a non-integer value {value!r}") from None
        if not values or any(v < 0 for v in values):
            raise InputError(f"{path}: label '{name}' has an invalid value {value!r} (whole numbers >= 0)")
        if name not in ("background", "ignore") and values != (0,):
            structures[name] = values
    try:
        manager = LabelManager(labels, dj.get("regions_class_order"))
    except (AssertionError, RuntimeError) as e:
        raise InputError(f"{path}: nnU-Net refuses these labels: {e}") from None
    if not structures:
        raise InputError(f"{path}: no foreground label in 'labels'")
    ignore = manager.ignore_label
    return structures, ignore, {int(v) for v in manager.all_labels} | ({ignore} if ignore is not None else set())
