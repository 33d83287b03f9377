"""Whole-cerebellum volumes: ground truth vs model vs ACAPULCO (Table 4 of Cabeza-Ruiz et al.).

Volumes are in native-space mm^3. Model masks are expected in native space (run ``nnunet-ataxia to-native``
first). ACAPULCO is read from its native-space ``_seg_post_inverse`` parcellation (preferred), from its volumes
CSV, or from its MNI-space ``_seg_post`` parcellation whose volume is scaled by |det| of the linear part of the
stored MNI -> native transform (a volume-preserving approximation valid for affine registrations).
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from nnunet_ataxia.errors import InputError
from nnunet_ataxia.evaluation.metrics import volume_mm3
from nnunet_ataxia.io.files import dataframe_markdown, read_table
from nnunet_ataxia.io.images import check_same_geometry, read_label_map
from nnunet_ataxia.io.plausibility import implausible_volume

GROUP_ORDER = ("control", "presymptomatic", "sca2")
GROUP_MARKERS = {"presymptomatic": "*", "sca2": "**"}


def mask_volume_mm3(path: str | os.PathLike, labels: Sequence[int] | None = None) -> float:
    """Volume (mm^3) of the union of ``labels`` (default: every non-zero voxel) of a label image.

    Example:
        >>> mask_volume_mm3("sub-01_cerebellum.nii.gz", labels=[1])  # doctest: +SKIP
        141234.0
    """
    arr, geom = read_label_map(path)
    mask = np.isin(arr, labels) if labels else arr != 0
    return volume_mm3(mask, geom.array_spacing)


def case_volumes(reference_file: str | os.PathLike, prediction_file: str | os.PathLike,
                 labels: Sequence[int] | None = None) -> tuple[float, float]:
    """Ground-truth and model volume (mm^3) of one case, after checking both masks.

    Both must be label maps (whole numbers) on the same grid (a prediction still on the MNI grid of
    ``preprocess-mri`` is named as such); the ground truth must hold at least one voxel of ``labels`` (default: any
    non-zero), else relative errors are undefined. An empty prediction is a measured volume of 0 (a failed model).

    Example:
        >>> case_volumes("gt/sub-01.nii.gz", "native_pred/sub-01.nii.gz", labels=[1])  # doctest: +SKIP
        (141234.0, 143001.0)
    """
    ref, ref_geom = read_label_map(reference_file, what="ground-truth mask")
    pred, pred_geom = read_label_map(prediction_file, what="prediction")
    check_same_geometry(ref_geom, pred_geom, reference_file, prediction_file, "prediction")
    gt, model = (np.isin(arr, list(labels)) if labels else arr != 0 for arr in (ref, pred))
    if not gt.any():
        raise InputError(f"{reference_file}: ground-truth mask holds no voxel of label(s) "
                         f"{list(labels) if labels else 'non-zero'}: an empty volume (wrong file, or wrong --labels?)")
    return volume_mm3(gt, ref_geom.array_spacing), volume_mm3(model, ref_geom.array_spacing)


def acapulco_volume_from_csv(path: str | os.PathLike) -> float:
    """Whole-cerebellum volume from ACAPULCO's volumes CSV (long format ``name``, ``volume``).

    Rows are matched to the 28 lobule labels by value; if some non-Background row cannot be matched (unknown
    name, no value), the sum of all non-Background rows is used instead.
    """
    from nnunet_ataxia.io.acapulco import ACAPULCO_LOBULE_LABELS, read_acapulco_volumes_csv
    df = read_acapulco_volumes_csv(path)
    non_bg = df[df["label"].fillna(-1) != 0]
    non_bg = non_bg[non_bg["name"].str.strip().str.lower() != "background"]
    if non_bg.empty:
        raise InputError(f"{path}: no cerebellar row besides Background")
    if non_bg["label"].isna().any():
        return float(non_bg["volume"].sum())
    return float(non_bg.loc[non_bg["label"].isin(list(ACAPULCO_LOBULE_LABELS)).astype(bool), "volume"].sum())


def transform_volume_scale(transform_file: str | os.PathLike, direction: str = "mni_to_native") -> float:
    """Volume factor MNI -> native of a stored linear transform.

    Args:
        transform_file: an ITK transform file (``.tfm``/``.txt``/``.mat``/``.h5``) readable by SimpleITK, or a
            4x4 (or 3x3) matrix as ``.npy`` / whitespace text.
        direction: ``"mni_to_native"`` when the transform maps MNI points to native points (ITK registration
            convention with MNI as the fixed image, what nnunet-ataxia's preprocessing stores): factor = |det|;
            ``"native_to_mni"``: factor = 1/|det|.
    """
    path = Path(transform_file)
    if not path.is_file():
        raise InputError(f"{path}: transform file not found")
    det = None
    if path.suffix == ".npy" or path.suffix == ".txt" and _looks_like_matrix(path):
        m = np.load(path) if path.suffix == ".npy" else np.loadtxt(path)
        if m.shape not in ((4, 4), (3, 3), (3, 4)):
            raise InputError(f"{path}: expected a 3x3 or 4x4 matrix, got shape {m.shape}")
        det = abs(float(np.linalg.det(np.asarray(m, float)[:3, :3])))
    else:
        import SimpleITK as sitk
        try:
            tr = sitk.ReadTransform(str(path))
        except RuntimeError as e:
            raise InputError(f"{path}: cannot read transform ({str(e).strip().splitlines()[-1]})") from None
        while isinstance(tr, sitk.CompositeTransform) and tr.GetNumberOfTransforms() == 1:
            tr = tr.GetNthTransform(0)
        if not hasattr(tr, "GetMatrix"):  # ReadTransform returns the base class: downcast when possible
            try:
                tr = tr.Downcast()
            except (AttributeError, RuntimeError):
                pass
        if not hasattr(tr, "GetMatrix"):
            raise InputError(f"{path}: transform {tr.GetName()} is not linear; give the native-space "
                             f"_seg_post_inverse file (or its volumes CSV) instead")
        det = abs(float(np.linalg.det(np.asarray(tr.GetMatrix(), float).reshape(3, 3))))
    if not det > 0:
        raise InputError(f"{path}: singular transform")
    if direction == "mni_to_native":
        return det
    if direction == "native_to_mni":
        return 1.0 / det
    raise ValueError(f"direction must be 'mni_to_native' or 'native_to_mni', got {direction!r}")


def _looks_like_matrix(path: Path) -> bool:
    try:
        np.loadtxt(path)
        return True
    except ValueError:
        return False


def acapulco_volume_from_parcellation(path: str | os.PathLike, transform_file: str | os.PathLike | None = None,
                                      direction: str = "mni_to_native") -> float:
    """Whole-cerebellum volume (mm^3) = union of the 28 lobule labels of an ACAPULCO parcellation; with a
    transform (MNI-space ``_seg_post`` input) scaled to native space by :func:`transform_volume_scale`."""
    from nnunet_ataxia.io.acapulco import acapulco_whole_cerebellum_mask
    arr, geom = read_label_map(path, what="ACAPULCO parcellation")
    vol = volume_mm3(acapulco_whole_cerebellum_mask(arr), geom.array_spacing)
    if transform_file is not None:
        vol *= transform_volume_scale(transform_file, direction)
    return vol


def find_case_transform(spec: str, case_id: str) -> Path:
    """The MNI<->native transform of a case: ``spec`` is a pattern with ``{case}`` or a folder holding
    ``<case>/`` with exactly one transform file."""
    if "{case}" in spec:
        return Path(spec.format(case=case_id))
    folder = Path(spec) / case_id
    if (folder / "mni_to_native.tfm").is_file():  # what nnunet-ataxia's preprocessing writes
        return folder / "mni_to_native.tfm"
    cands = [p for p in sorted(folder.glob("*")) if p.suffix in (".tfm", ".txt", ".mat", ".h5", ".npy")]
    if len(cands) != 1:
        raise InputError(f"{case_id}: expected one transform file in {folder}, found "
                         f"{[p.name for p in cands] or 'none'}; pass --acapulco-transform with a {{case}} pattern")
    return cands[0]


def acapulco_case_volume(acapulco_dir: str | os.PathLike, case_id: str, subject: str | None = None,
                         transform_spec: str | None = None, direction: str = "mni_to_native") -> tuple[float, str]:
    """ACAPULCO whole-cerebellum volume of one case and the source used (``native``, ``csv`` or ``mni``).

    The case's files are looked up in ``<acapulco_dir>/<case_id>/`` (or ``/<subject>/``), else among the files
    of ``acapulco_dir`` whose names start with ``<case_id>_`` (or ``<subject>_``).
    """
    from nnunet_ataxia.io.acapulco import (
        ACAPULCO_MNI_SUFFIX,
        ACAPULCO_NATIVE_SUFFIX,
        ACAPULCO_VOLUMES_SUFFIX,
        find_acapulco_outputs,
    )
    root = Path(acapulco_dir)
    found = None
    for key in [k for k in (case_id, subject) if k]:
        if (root / key).is_dir():
            found = find_acapulco_outputs(root / key)
            break
    if found is None:
        found = {"native": None, "mni": None, "volumes": None}
        for key in [k for k in (case_id, subject) if k]:
            for p in sorted(root.rglob(f"{key}_*")):
                n = p.name
                if n.endswith(ACAPULCO_NATIVE_SUFFIX + ".nii.gz"):
                    found["native"] = found["native"] or p
                elif n.endswith(ACAPULCO_MNI_SUFFIX + ".nii.gz"):
                    found["mni"] = found["mni"] or p
                elif n.endswith(ACAPULCO_VOLUMES_SUFFIX):
                    found["volumes"] = found["volumes"] or p
    if found.get("native"):
        return acapulco_volume_from_parcellation(found["native"]), "native"
    if found.get("volumes"):
        return acapulco_volume_from_csv(found["volumes"]), "csv"
    if found.get("mni"):
        if transform_spec is None:
            raise InputError(f"{case_id}: only the MNI-space ACAPULCO parcellation {found['mni']} was found; "
                             f"give --acapulco-transform to convert its volume to native space")
        return acapulco_volume_from_parcellation(found["mni"], find_case_transform(transform_spec, case_id),
                                                 direction), "mni"
    raise InputError(f"{case_id}: no ACAPULCO output (_seg_post_inverse, _seg_post_volumes.csv or _seg_post) "
                     f"found in {root}")


def read_volumes_csv(path: str | os.PathLike) -> pd.DataFrame:
    """Already-computed volumes (e.g. the paper's Table 4): columns ``case_id`` (or ``subject``), ``group``
    (optional: control, presymptomatic, sca2, atlas), ``ground_truth``, ``model`` and optionally ``acapulco``
    (mm^3, each > 0); case-insensitive names; every case once.

    Raises:
        InputError: unreadable file, missing column, non-numeric or non-positive volume, duplicated case, unknown
            group (see :func:`nnunet_ataxia.io.files.read_table`).
    """
    volumes = ["ground_truth", "model", "acapulco"]
    df = read_table(path, what="volumes CSV", required=("case_id", "ground_truth", "model"), positive=volumes,
                    id_column="case_id", group_column="group", lower_case_columns=True,
                    aliases={"subject": "case_id"})
    if "group" not in df.columns:
        df["group"] = ""
    cols = ["case_id", "group", "ground_truth", "model"] + (["acapulco"] if "acapulco" in df.columns else [])
    return df[cols]


def compare_volumes(df: pd.DataFrame) -> pd.DataFrame:
    """Per-subject errors of the model (and ACAPULCO) against ground truth, and which method is closer.

    Adds ``model_error`` (model - gt), ``model_abs_error``, ``model_rel_error_pct`` and the same for
    ``acapulco``; ``closer`` is ``model``, ``acapulco`` or ``tie`` (equal absolute error); ``implausible`` lists
    the volumes outside the plausible whole-cerebellum range
    (:data:`~nnunet_ataxia.io.plausibility.PLAUSIBLE_VOLUME_MM3`), ``""`` when none.

    Example:
        >>> t = compare_volumes(pd.DataFrame({"case_id": ["s1"], "group": [""], "ground_truth": [140000.0],
        ...                                   "model": [141000.0], "acapulco": [125.0]}))
        >>> t.loc[0, "implausible"]
        'acapulco: cerebellum 125 mm³ < 50,000'
    """
    out = df.copy()
    methods = ["model"] + (["acapulco"] if "acapulco" in out.columns else [])
    for m in methods:
        out[f"{m}_error"] = out[m] - out["ground_truth"]
        out[f"{m}_abs_error"] = out[f"{m}_error"].abs()
        out[f"{m}_rel_error_pct"] = 100.0 * out[f"{m}_error"] / out["ground_truth"]
    if "acapulco" in out.columns:
        out["closer"] = np.where(out["model_abs_error"] < out["acapulco_abs_error"], "model",
                                 np.where(out["model_abs_error"] > out["acapulco_abs_error"], "acapulco", "tie"))
    out["implausible"] = [
        "; ".join(f"{m}: {reason}" for m in ["ground_truth", *methods]
                  if (reason := implausible_volume("cerebellum", row[m]))) for _, row in out.iterrows()]
    return out


def group_summaries(table: pd.DataFrame) -> pd.DataFrame:
    """Per group (control / presymptomatic / sca2 / other, then ``all``): n, mean volumes, mean (abs, relative)
    errors and how many subjects each method is closer on."""
    methods = ["model"] + (["acapulco"] if "acapulco" in table.columns else [])
    groups = [g for g in GROUP_ORDER if g in set(table["group"])] + \
        sorted(set(table["group"]) - set(GROUP_ORDER))
    rows = []
    for g in groups + ["all"]:
        sub = table if g == "all" else table[table["group"] == g]
        row = {"group": g or "unknown", "n": len(sub), "ground_truth_mean": sub["ground_truth"].mean()}
        for m in methods:
            row[f"{m}_mean"] = sub[m].mean()
            row[f"{m}_mean_error"] = sub[f"{m}_error"].mean()
            row[f"{m}_mae"] = sub[f"{m}_abs_error"].mean()
            row[f"{m}_mean_abs_rel_error_pct"] = sub[f"{m}_rel_error_pct"].abs().mean()
        if "closer" in sub.columns:
            row["model_closer"] = int((sub["closer"] == "model").sum())
            row["acapulco_closer"] = int((sub["closer"] == "acapulco").sum())
        rows.append(row)
    return pd.DataFrame(rows)


def paired_statistics(table: pd.DataFrame) -> dict:
    """Paired tests and correlations (scipy.stats).

    For each method vs ground truth: paired t-test and Wilcoxon signed-rank test on the volumes, Pearson and
    Spearman correlation, Bland-Altman bias and 95 % limits of agreement. With ACAPULCO: both tests on the
    absolute errors model vs ACAPULCO. A test that cannot run (too few subjects, all differences 0) gives None.
    """
    from scipy import stats

    def safe(fn, *a, **k):
        import warnings
        try:
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                r = fn(*a, **k)
            return {"statistic": float(r.statistic), "p_value": float(r.pvalue)}
        except (ValueError, ZeroDivisionError):
            return None

    out: dict = {"n": int(len(table))}
    methods = ["model"] + (["acapulco"] if "acapulco" in table.columns else [])
    gt = table["ground_truth"].to_numpy(float)
    for m in methods:
        v = table[m].to_numpy(float)
        d = v - gt
        sd = float(np.std(d, ddof=1)) if len(d) > 1 else float("nan")
        out[m] = {
            "paired_t_vs_ground_truth": safe(stats.ttest_rel, v, gt),
            "wilcoxon_vs_ground_truth": safe(stats.wilcoxon, v, gt),
            "pearson": safe(stats.pearsonr, v, gt) if len(v) > 2 else None,
            "spearman": safe(stats.spearmanr, v, gt) if len(v) > 2 else None,
            "bland_altman": {"bias": float(np.mean(d)), "sd": sd,
                             "loa_low": float(np.mean(d) - 1.96 * sd), "loa_high": float(np.mean(d) + 1.96 * sd)},
            "mae": float(np.mean(np.abs(d))),
        }
    if "acapulco" in table.columns:
        a = table["model_abs_error"].to_numpy(float)
        b = table["acapulco_abs_error"].to_numpy(float)
        out["model_vs_acapulco_abs_error"] = {"paired_t": safe(stats.ttest_rel, a, b),
                                              "wilcoxon": safe(stats.wilcoxon, a, b)}
        out["closer_counts"] = {k: int((table["closer"] == k).sum()) for k in ("model", "acapulco", "tie")}
    return out


def volumes_table_markdown(table: pd.DataFrame, model_name: str = "model") -> str:
    """Markdown in the layout of Table 4 (volumes in mm^3, group markers * presymptomatic, ** SCA2) plus errors."""
    has_aca = "acapulco" in table.columns
    head = ["Subject", "Ground truth", model_name] + (["ACAPULCO"] if has_aca else []) + \
        [f"{model_name} error", f"{model_name} error %"] + \
        (["ACAPULCO error", "ACAPULCO error %", "closer"] if has_aca else [])
    flagged = "implausible" in table.columns and bool((table["implausible"].fillna("") != "").any())
    head += ["implausible"] if flagged else []
    rows = []
    for _, r in table.iterrows():
        marker = GROUP_MARKERS.get(str(r["group"]), "")
        cells = [f"{r['case_id']} {marker}".strip(), f"{r['ground_truth']:.0f}", f"{r['model']:.0f}"]
        if has_aca:
            cells.append(f"{r['acapulco']:.0f}")
        cells += [f"{r['model_error']:+.0f}", f"{r['model_rel_error_pct']:+.2f}"]
        if has_aca:
            cells += [f"{r['acapulco_error']:+.0f}", f"{r['acapulco_rel_error_pct']:+.2f}",
                      {"model": model_name, "acapulco": "ACAPULCO"}.get(r["closer"], "tie")]
        if flagged:
            cells.append(r["implausible"] or "")
        rows.append(cells)
    note = " **implausible**: volumes outside the plausible whole-cerebellum range; check them." if flagged else ""
    return "\n".join([dataframe_markdown(pd.DataFrame(rows, columns=head)), "",
                      "\\* presymptomatic carrier, \\*\\* SCA2 patient; errors = method - ground truth (mm³)." + note])
