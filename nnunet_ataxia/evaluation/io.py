"""Reading images, case lists, dataset.json labels and participants.tsv for the evaluation commands."""
from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from nnunet_ataxia.errors import InputError

IMAGE_ENDINGS = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")


@dataclass(frozen=True)
class Geometry:
    """Image geometry in SimpleITK terms (x, y, z order); ``array_spacing`` is in numpy (z, y, x) order."""
    size: tuple[int, ...]
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[float, ...]

    @property
    def array_spacing(self) -> tuple[float, ...]:
        return tuple(self.spacing[::-1])

    def matches(self, other: "Geometry", tol: float = 1e-3) -> bool:
        """Same grid within ``tol`` (relative for spacing, absolute mm for the origin, absolute for direction)."""
        return (self.size == other.size
                and np.allclose(self.spacing, other.spacing, rtol=tol, atol=0)
                and np.allclose(self.origin, other.origin, atol=max(tol, tol * max(self.spacing)))
                and np.allclose(self.direction, other.direction, atol=tol))


def read_image(path: str | os.PathLike) -> tuple[np.ndarray, Geometry]:
    """Read an image with SimpleITK; returns the (z, y, x) array and its :class:`Geometry`.

    Raises:
        InputError: the file is missing or unreadable.
    """
    import SimpleITK as sitk
    path = str(path)
    if not os.path.isfile(path):
        raise InputError(f"{path}: file not found")
    try:
        img = sitk.ReadImage(path)
    except RuntimeError as e:
        raise InputError(f"{path}: cannot read image ({str(e).strip().splitlines()[-1]})") from None
    geom = Geometry(tuple(img.GetSize()), tuple(img.GetSpacing()), tuple(img.GetOrigin()),
                    tuple(img.GetDirection()))
    return sitk.GetArrayFromImage(img), geom


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
    return out


def list_cases(folders: Sequence[str | os.PathLike], suffix: str = "",
               endings: Sequence[str] = IMAGE_ENDINGS) -> dict[str, Path]:
    """Map case id -> file over one or more folders (e.g. the merged ``fold_*/validation`` folders).

    ``suffix`` is a part of the name between the case id and the ending (``"_0000"`` for images). A case found
    in two folders is an error (cross-validation folds must not overlap).
    """
    cases: dict[str, Path] = {}
    for folder in folders:
        for f in sorted(Path(folder).iterdir()):
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
    try:
        dj = json.loads(path.read_text())
        labels = dj["labels"]
    except (OSError, ValueError, KeyError) as e:
        raise InputError(f"{path}: not a readable nnU-Net dataset.json with 'labels' ({e})") from None
    structures: dict[str, tuple[int, ...]] = {}
    ignore = None
    allowed: set[int] = set()
    for name, value in labels.items():
        values = tuple(int(v) for v in (value if isinstance(value, (list, tuple)) else [value]))
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
    import pandas as pd
    try:
        df = pd.read_csv(path, sep="\t", dtype=str)
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: cannot read participants table ({e})") from None
    if "case_id" not in df.columns or "group" not in df.columns:
        raise InputError(f"{path}: participants.tsv needs the columns 'case_id' and 'group'")
    return dict(zip(df["case_id"].str.strip(), df["group"].str.strip()))


def dataframe_markdown(df, digits: int = 1) -> str:
    """A DataFrame as a Markdown table (no tabulate dependency)."""
    def fmt(v):
        if isinstance(v, float):
            return "n/a" if v != v else f"{v:.{digits}f}"
        return str(v)
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "| " + " | ".join("---" for _ in df.columns) + " |"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)
