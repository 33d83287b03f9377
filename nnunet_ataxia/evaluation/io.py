"""Reading images, case lists, dataset.json labels and participants.tsv for the evaluation commands."""
from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from nnunet_ataxia.errors import InputError
from nnunet_ataxia.utils.checked_io import Geometry, check_label_values, read_array, read_json, read_table, \
    require_folder

__all__ = ["IMAGE_ENDINGS", "Geometry", "read_image", "read_label_map", "write_image", "strip_ending",
           "expand_folders", "list_cases", "parse_named", "load_dataset_labels", "read_participants",
           "dataframe_markdown"]

IMAGE_ENDINGS = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")


def read_image(path: str | os.PathLike, what: str = "image") -> tuple[np.ndarray, Geometry]:
    """Read an image with SimpleITK; returns the (z, y, x) array and its :class:`Geometry`.

    Raises:
        InputError: the file is missing, unreadable or holds NaN/Inf (see
            :func:`nnunet_ataxia.utils.checked_io.read_image`).
    """
    return read_array(path, what)


def read_label_map(path: str | os.PathLike, allowed: Iterable[int] | None = None,
                   what: str = "label map") -> tuple[np.ndarray, Geometry]:
    """Read a label map and check its values (whole numbers, not negative, within ``allowed`` when given).

    Example:
        >>> seg, geom = read_label_map("labelsTs/a01.nii.gz", allowed={0, 1, 2})  # doctest: +SKIP
    """
    array, geom = read_array(path, what)
    return check_label_values(array, path, allowed, what), geom


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


def strip_ending(name: str, endings: Sequence[str] = IMAGE_ENDINGS) -> str | None:
    """File name without its image ending, or None if it has none of ``endings``."""
    for e in endings:
        if name.endswith(e):
            return name[: -len(e)]
    return None


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
    """Structures to evaluate from an nnU-Net dataset.json.

    Returns:
        (structure name -> label values (a region is the union of several), ignore label or None,
         the set of all label values the dataset allows).
    """
    path = Path(dataset_json)
    dj = read_json(path, "dataset.json")
    labels = dj.get("labels")
    if not isinstance(labels, dict) or not labels:
        raise InputError(f"{path}: not an nnU-Net dataset.json: no 'labels' mapping of names to values")
    structures: dict[str, tuple[int, ...]] = {}
    ignore = None
    allowed: set[int] = set()
    for name, value in labels.items():
        try:
            values = tuple(int(v) for v in (value if isinstance(value, (list, tuple)) else [value]))
        except (TypeError, ValueError):
            raise InputError(f"{path}: label '{name}' has a non-integer value {value!r}") from None
        if not values or any(v < 0 for v in values):
            raise InputError(f"{path}: label '{name}' has an invalid value {value!r} (whole numbers >= 0)")
        allowed.update(values)
        if name == "ignore":
            ignore = values[0]
        elif values != (0,) and name != "background":
            structures[name] = values
    if not structures:
        raise InputError(f"{path}: no foreground label in 'labels'")
    return structures, ignore, allowed


def read_participants(path: str | os.PathLike | None) -> dict[str, str]:
    """``case_id -> group`` from ``<raw dataset>/participants.tsv`` (empty dict when ``path`` is None)."""
    if path is None:
        return {}
    df = read_table(path, what="participants table", sep="\t", required=("case_id", "group"),
                    id_column="case_id", group_column="group")
    return dict(zip(df["case_id"], df["group"]))


def dataframe_markdown(df, digits: int = 1) -> str:
    """A DataFrame as a Markdown table (no tabulate dependency)."""
    def fmt(v):
        if isinstance(v, float):
            return "n/a" if v != v else f"{v:.{digits}f}"
        return str(v)
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "| " + " | ".join("---" for _ in df.columns) + " |"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)
