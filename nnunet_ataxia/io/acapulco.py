"""Reading ACAPULCO outputs (Han et al. 2020, container ``cerebellum_v1.0.0``): parcellations and volume tables.

ACAPULCO writes, for an input ``<img>.nii.gz``::

    out/mni/<img>_n4_mni.nii.gz                      N4-corrected image in MNI space
    out/parc/<img>_n4_mni_seg.nii.gz                 raw parcellation (MNI space)
    out/parc/<img>_n4_mni_seg_post.nii.gz            post-processed parcellation (MNI space)
    out/parc/<img>_n4_mni_seg_post_inverse.nii.gz    post-processed parcellation mapped back to native space
    out/parc/<img>_n4_mni_seg_post_volumes.csv       newer releases: long format, columns name, volume (mm^3),
                                                     with a Background row

The parcellation has 28 lobule labels (below). Label *names* in the real CSV contain typos (``"Rigt IV"``), so labels
are always matched by value; names are only mapped to values through a typo-tolerant normalization.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from nnunet_ataxia.errors import InputError

#: value -> name of ACAPULCO's 28 cerebellar labels (corpus medullare + 27 lobules).
ACAPULCO_LABEL_NAMES: dict[int, str] = {
    12: "Corpus Medullare",
    33: "Left I-III", 36: "Right I-III",
    43: "Left IV", 46: "Right IV",
    53: "Left V", 56: "Right V",
    60: "Vermis VI", 63: "Left VI", 66: "Right VI",
    70: "Vermis VII",
    73: "Left Crus I", 74: "Left Crus II", 75: "Left VIIB",
    76: "Right Crus I", 77: "Right Crus II", 78: "Right VIIB",
    80: "Vermis VIII",
    83: "Left VIIIA", 84: "Left VIIIB", 86: "Right VIIIA", 87: "Right VIIIB",
    90: "Vermis IX", 93: "Left IX", 96: "Right IX",
    100: "Vermis X", 103: "Left X", 106: "Right X",
}
#: the 28 label values whose union is the whole cerebellum.
ACAPULCO_LOBULE_LABELS: tuple[int, ...] = tuple(sorted(ACAPULCO_LABEL_NAMES))
assert len(ACAPULCO_LOBULE_LABELS) == 28

#: file-name endings of ACAPULCO's outputs, in order of preference for a native-space whole-cerebellum mask.
ACAPULCO_NATIVE_SUFFIX = "_n4_mni_seg_post_inverse"
ACAPULCO_MNI_SUFFIX = "_n4_mni_seg_post"
ACAPULCO_VOLUMES_SUFFIX = "_n4_mni_seg_post_volumes.csv"

_TYPOS = {"rigt": "right", "rght": "right", "rihgt": "right", "lef": "left", "vermi": "vermis",
          "medulare": "medullare", "medullar": "medullare"}


def _normalize_name(name: str) -> str:
    words = re.findall(r"[a-z0-9]+", str(name).lower())
    return " ".join(_TYPOS.get(w, w) for w in words)


_NAME_TO_VALUE = {_normalize_name(n): v for v, n in ACAPULCO_LABEL_NAMES.items()}


def acapulco_label_value(name: str) -> int | None:
    """The label value of an ACAPULCO region name (typo tolerant), ``None`` for Background or unknown names.

    Example:
        >>> acapulco_label_value("Rigt IV")
        46
    """
    return _NAME_TO_VALUE.get(_normalize_name(name))


def acapulco_whole_cerebellum_mask(parcellation: np.ndarray) -> np.ndarray:
    """Whole-cerebellum mask = union of ACAPULCO's 28 labels, matched by value (other values are ignored).

    Args:
        parcellation: integer label array (any shape).

    Returns:
        Boolean array of the same shape.

    Example:
        >>> acapulco_whole_cerebellum_mask(np.array([0, 12, 5, 106])).tolist()
        [False, True, False, True]
    """
    return np.isin(np.asarray(parcellation), ACAPULCO_LOBULE_LABELS)


def read_acapulco_volumes_csv(path: str | os.PathLike) -> pd.DataFrame:
    """Read ACAPULCO's volumes CSV (long format, columns ``name`` and ``volume`` in mm^3, a Background row).

    A ``label`` column, when present, is used as is; otherwise labels are derived from the names (typo tolerant).

    Args:
        path: ``<img>_n4_mni_seg_post_volumes.csv``.

    Returns:
        DataFrame with columns ``label`` (Int64; 0 for Background, <NA> for unknown names), ``name``, ``volume``
        (float, mm^3), one row per region, in file order.

    Example:
        >>> df = read_acapulco_volumes_csv("sub-01_T1w_n4_mni_seg_post_volumes.csv")  # doctest: +SKIP
        >>> df.loc[df.label.isin(ACAPULCO_LOBULE_LABELS), "volume"].sum()  # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        df = pd.read_csv(path, sep=None, engine="python")
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: unreadable volumes table ({e})") from None
    df.columns = [str(c).strip().lower() for c in df.columns]
    if "name" not in df.columns or "volume" not in df.columns:
        raise InputError(f"{path}: expected columns 'name' and 'volume', found {list(df.columns)}")
    volume = pd.to_numeric(df["volume"], errors="coerce")
    if volume.isna().any():
        raise InputError(f"{path}: non-numeric volume in row(s) {list(np.flatnonzero(volume.isna()))}")
    if (volume < 0).any() or not np.isfinite(volume.to_numpy(float)).all():
        raise InputError(f"{path}: negative or infinite volume in row(s) "
                         f"{list(np.flatnonzero((volume < 0) | ~np.isfinite(volume.to_numpy(float))))}")
    if "label" in df.columns:
        label = pd.to_numeric(df["label"], errors="coerce").astype("Int64")
    else:
        label = pd.array([0 if _normalize_name(n) == "background" else acapulco_label_value(n)
                          for n in df["name"]], dtype="Int64")
    return pd.DataFrame({"label": label, "name": df["name"].astype(str), "volume": volume.astype(float)})


def acapulco_whole_cerebellum_volume(volumes: pd.DataFrame) -> float:
    """Sum of the 28 cerebellar labels' volumes (mm^3) of a table from :func:`read_acapulco_volumes_csv`."""
    return float(volumes.loc[volumes["label"].isin(ACAPULCO_LOBULE_LABELS).fillna(False), "volume"].sum())


def find_acapulco_outputs(folder: str | os.PathLike) -> dict[str, Path | None]:
    """Find ACAPULCO's files below ``folder`` (any depth, e.g. ``out/parc/``).

    Returns:
        ``{"native": ..._seg_post_inverse.nii.gz, "mni": ..._seg_post.nii.gz, "volumes": ..._volumes.csv,
        "mni_image": ..._n4_mni.nii.gz}``, each a Path or ``None``.
    """
    folder = Path(folder)
    found: dict[str, Path | None] = {"native": None, "mni": None, "volumes": None, "mni_image": None}
    if not folder.is_dir():
        return found
    for p in sorted(folder.rglob("*")):
        n = p.name
        if n.endswith(ACAPULCO_NATIVE_SUFFIX + ".nii.gz") or n.endswith(ACAPULCO_NATIVE_SUFFIX + ".nii"):
            found["native"] = found["native"] or p
        elif n.endswith(ACAPULCO_MNI_SUFFIX + ".nii.gz") or n.endswith(ACAPULCO_MNI_SUFFIX + ".nii"):
            found["mni"] = found["mni"] or p
        elif n.endswith(ACAPULCO_VOLUMES_SUFFIX):
            found["volumes"] = found["volumes"] or p
        elif n.endswith("_n4_mni.nii.gz"):
            found["mni_image"] = found["mni_image"] or p
    return found


def write_acapulco_volumes_csv(parcellation: np.ndarray, voxel_volume_mm3: float, path: str | os.PathLike) -> None:
    """Write a volumes table in ACAPULCO's long format (``name``, ``volume``; Background first) for a parcellation.

    Used by the demo generator; a real ACAPULCO run writes this file itself.
    """
    parcellation = np.asarray(parcellation)
    rows = [{"name": "Background", "volume": float((~np.isin(parcellation, ACAPULCO_LOBULE_LABELS)).sum())
             * voxel_volume_mm3}]
    rows += [{"name": n, "volume": float((parcellation == v).sum()) * voxel_volume_mm3}
             for v, n in ACAPULCO_LABEL_NAMES.items()]
    pd.DataFrame(rows).to_csv(path, index=False)
