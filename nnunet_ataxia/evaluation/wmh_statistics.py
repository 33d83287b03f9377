"""WMH statistics after Ghafoorian et al.: threshold sweep, ROC/AUC and patient-level bootstrap.

* Only voxels inside the brain mask count (and never the ignore label 2, "other pathology").
* A voxel is foreground when its WMH probability is >= the threshold.
* The threshold maximizes the *overall* Dice of the validation set: TP, FP, FN are pooled over all validation
  cases before the Dice is taken (``criterion="pooled"``; ``"mean"`` maximizes the mean per-case Dice instead).
* Bootstrap (paper §4): resample the test patients with replacement, compute the Dice of both methods on each
  resample; the empirical p-value for the null hypothesis "method A is no better than B" is the proportion of
  resamples in which B's Dice is higher than A's (ties count one half, so identical methods give 0.5).
  When no resample favours B, the paper reports p < 0.01 (for 100 resamples): ``p_value`` is then 0 and
  ``p_value_upper_bound`` 1 / n_bootstrap.

Per-case counts are arrays of shape (n_thresholds, 3) holding TP, FP, FN; stacked over cases (N, T, 3).
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nnunet_ataxia.errors import InputError
from nnunet_ataxia.io.constants import WMH_FLAIR_ONLY_LOCATION_CHANNEL_INDICES, WMH_LABELS, WMH_LOCATION_CHANNEL_INDICES

WMH_LABEL = WMH_LABELS["wmh"]
WMH_IGNORE_LABEL = WMH_LABELS["ignore"]


def threshold_grid(n: int = 101) -> np.ndarray:
    """``n`` equally spaced thresholds from 0 to 1 inclusive.

    Example:
        >>> threshold_grid(5).tolist()
        [0.0, 0.25, 0.5, 0.75, 1.0]
    """
    return np.linspace(0.0, 1.0, int(n))


def threshold_counts(probability: np.ndarray, reference: np.ndarray, thresholds: Sequence[float],
                     valid: np.ndarray | None = None) -> np.ndarray:
    """TP, FP, FN of ``probability >= t`` against a binary reference for every threshold t.

    Args:
        probability: foreground probabilities.
        reference: binary reference mask (same shape).
        thresholds: the thresholds.
        valid: optional mask of the voxels that count (brain mask without ignore voxels).

    Returns:
        int64 array (len(thresholds), 3): TP, FP, FN.

    Example:
        >>> threshold_counts(np.array([0.2, 0.6, 0.9]), np.array([0, 1, 1]), [0.5]).tolist()
        [[2, 0, 0]]
    """
    p = np.asarray(probability, dtype=np.float64)
    g = np.asarray(reference).astype(bool)
    if p.shape != g.shape:
        raise ValueError(f"probability shape {p.shape} != reference shape {g.shape}")
    if valid is not None:
        v = np.asarray(valid, bool)
        p, g = p[v], g[v]
    pos = np.sort(p[g])
    neg = np.sort(p[~g])
    t = np.asarray(thresholds, dtype=np.float64)
    tp = pos.size - np.searchsorted(pos, t, side="left")
    fp = neg.size - np.searchsorted(neg, t, side="left")
    fn = pos.size - tp
    return np.stack([tp, fp, fn], axis=-1).astype(np.int64)


def dice_from_counts(counts: np.ndarray) -> np.ndarray:
    """Dice 2TP / (2TP + FP + FN) along the last axis (TP, FP, FN); nan where nothing is foreground."""
    c = np.asarray(counts, dtype=np.float64)
    den = 2 * c[..., 0] + c[..., 1] + c[..., 2]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, 2 * c[..., 0] / np.where(den > 0, den, 1), np.nan)


def dice_curve(case_counts: np.ndarray, criterion: str = "pooled") -> np.ndarray:
    """Dice per threshold of a set of cases (N, T, 3): pooled counts (overall Dice) or mean per-case Dice."""
    if criterion == "pooled":
        return dice_from_counts(np.asarray(case_counts).sum(axis=0))
    if criterion == "mean":
        with np.errstate(all="ignore"):
            return np.nanmean(dice_from_counts(case_counts), axis=0)
    raise ValueError(f"criterion must be 'pooled' or 'mean', got {criterion!r}")


def best_threshold(case_counts: np.ndarray, thresholds: Sequence[float], criterion: str = "pooled"
                   ) -> tuple[float, float]:
    """The Dice-maximizing threshold (the smallest one on ties) and its Dice.

    Example:
        >>> c = np.stack([threshold_counts(np.array([.1, .4, .7]), np.array([0, 1, 1]), [0, .3, .5])])
        >>> best_threshold(c, [0, .3, .5])
        (0.3, 1.0)
    """
    curve = dice_curve(case_counts, criterion)
    if np.all(np.isnan(curve)):
        raise InputError("threshold search: no foreground in references or predictions at any threshold")
    i = int(np.nanargmax(curve))
    return float(np.asarray(thresholds)[i]), float(curve[i])


def roc(probabilities: Sequence[np.ndarray], references: Sequence[np.ndarray],
        valids: Sequence[np.ndarray | None] | None = None, max_voxels: int | None = 5_000_000,
        seed: int = 0) -> dict:
    """Pooled voxel-wise ROC curve and AUC (scikit-learn) over cases, inside the valid voxels.

    ``max_voxels`` caps memory: a seeded uniform subsample of the pooled voxels is used beyond it.

    Returns:
        ``{"fpr", "tpr", "thresholds", "auc"}``.
    """
    from sklearn.metrics import roc_auc_score, roc_curve
    ps, gs = [], []
    for i, (p, g) in enumerate(zip(probabilities, references, strict=False)):
        v = None if valids is None else valids[i]
        p = np.asarray(p, np.float32)
        g = np.asarray(g).astype(bool)
        ps.append(p[v] if v is not None else p.ravel())
        gs.append(g[v] if v is not None else g.ravel())
    p = np.concatenate(ps)
    g = np.concatenate(gs)
    if max_voxels is not None and p.size > max_voxels:
        idx = np.random.default_rng(seed).choice(p.size, size=max_voxels, replace=False)
        p, g = p[idx], g[idx]
    if g.all() or not g.any():
        raise InputError("ROC: the references need both WMH and non-WMH voxels inside the brain mask")
    fpr, tpr, thr = roc_curve(g, p)
    return {"fpr": fpr, "tpr": tpr, "thresholds": thr, "auc": float(roc_auc_score(g, p))}


def _resample_indices(n_cases: int, n_bootstrap: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n_cases, size=(int(n_bootstrap), n_cases))


def bootstrap_compare(counts_a: np.ndarray, counts_b: np.ndarray, n_bootstrap: int = 1000, seed: int = 0,
                      criterion: str = "pooled") -> dict:
    """Patient-level bootstrap comparison of two methods on the same cases (Ghafoorian et al.).

    Args:
        counts_a, counts_b: per-case (TP, FP, FN) at each method's chosen threshold, shape (N, 3), same case order.
        n_bootstrap: number of resamples (>= 100; the paper used 100).
        seed: random seed (the same resamples are used for both methods).
        criterion: "pooled" (overall Dice of a resample) or "mean" (mean per-case Dice).

    Returns:
        dict with ``dice_a``, ``dice_b`` (on all cases), ``p_value`` (H0: A is no better than B), its
        ``p_value_upper_bound``, ``n_b_better``, ``n_ties``, 95 % bootstrap intervals ``ci_a``, ``ci_b``.

    Example:
        >>> a = np.array([[90, 10, 10]] * 20); b = np.array([[50, 50, 50]] * 20)
        >>> bootstrap_compare(a, b, n_bootstrap=100)["p_value"]
        0.0
    """
    a = np.asarray(counts_a, dtype=np.int64)
    b = np.asarray(counts_b, dtype=np.int64)
    if a.shape != b.shape or a.ndim != 2 or a.shape[1] != 3:
        raise ValueError(f"counts must both be (N, 3), got {a.shape} and {b.shape}")
    if n_bootstrap < 100:
        raise ValueError("use at least 100 bootstrap resamples")
    idx = _resample_indices(a.shape[0], n_bootstrap, seed)

    def stat(c):  # c: (B, N, 3)
        if criterion == "pooled":
            return dice_from_counts(c.sum(axis=1))
        with np.errstate(all="ignore"):
            return np.nanmean(dice_from_counts(c), axis=1)

    da, db = stat(a[idx]), stat(b[idx])
    n_b_better = int(np.sum(db > da))
    n_ties = int(np.sum(db == da))
    p = (n_b_better + 0.5 * n_ties) / n_bootstrap
    return {"dice_a": float(dice_curve(a[:, None, :], criterion)[0]),
            "dice_b": float(dice_curve(b[:, None, :], criterion)[0]),
            "p_value": float(p), "p_value_upper_bound": float(max(p, 1.0 / n_bootstrap)),
            "n_b_better": n_b_better, "n_ties": n_ties, "n_bootstrap": int(n_bootstrap), "seed": int(seed),
            "ci_a": [float(np.nanpercentile(da, 2.5)), float(np.nanpercentile(da, 97.5))],
            "ci_b": [float(np.nanpercentile(db, 2.5)), float(np.nanpercentile(db, 97.5))]}


def bootstrap_dice_band(case_counts: np.ndarray, n_bootstrap: int = 1000, seed: int = 0, level: float = 0.95,
                        criterion: str = "pooled") -> tuple[np.ndarray, np.ndarray]:
    """Pointwise bootstrap confidence band (patients resampled) of the Dice-vs-threshold curve."""
    c = np.asarray(case_counts, dtype=np.int64)
    idx = _resample_indices(c.shape[0], n_bootstrap, seed)
    curves = np.stack([dice_curve(c[i], criterion) for i in idx])
    q = (1 - level) / 2 * 100
    with np.errstate(all="ignore"):
        return np.nanpercentile(curves, q, axis=0), np.nanpercentile(curves, 100 - q, axis=0)


# ----------------------------------------------------------------------------------------------- reading cases
def read_probabilities(npz_file: str | os.PathLike, channel: int = WMH_LABEL) -> np.ndarray:
    """Foreground probability (z, y, x) from nnU-Net's ``.npz`` (key ``probabilities``, shape (C, z, y, x)).

    Raises:
        InputError: truncated/corrupt file, no ``probabilities`` array, no such channel, NaN/Inf, or values
            outside [0, 1] (logits instead of probabilities?).
    """
    from nnunet_ataxia.io.files import read_npz_array
    probs = read_npz_array(npz_file, "probabilities", "nnU-Net probability file")
    if probs.ndim < 3 or probs.shape[0] <= channel:
        raise InputError(f"{npz_file}: probabilities of shape {probs.shape} have no channel {channel}")
    p = probs[channel].astype(np.float32)
    if p.size and (float(p.min()) < -1e-3 or float(p.max()) > 1 + 1e-3):
        raise InputError(f"{npz_file}: probabilities outside [0, 1] (min {float(p.min()):.3g}, max "
                         f"{float(p.max()):.3g}); logits instead of nnU-Net's --save_probabilities output?")
    return p


def list_probability_files(folders: Sequence[str | os.PathLike]) -> dict[str, Path]:
    """case id -> ``<case>.npz`` over merged folders (e.g. all ``fold_*/validation``)."""
    from nnunet_ataxia.io.cases import list_cases
    return list_cases(folders, endings=(".npz",))


def brain_mask_for_case(case_id: str, brain_mask_dirs: Sequence[str | os.PathLike] = (),
                        image_dirs: Sequence[str | os.PathLike] = (), reference=None) -> np.ndarray | None:
    """The case's brain mask: ``<dir>/<case>.nii.gz`` from a brain-mask folder, else the union of the location
    channels ``_0002``..``_0009`` > 0 from an images folder (``_0001``..``_0008`` in a FLAIR-only dataset); None when
    neither folder is given.

    Args:
        case_id: the case.
        brain_mask_dirs, image_dirs: where to look.
        reference: optional ``(Geometry, file)`` the mask must match (grid and spacing).
    """
    from nnunet_ataxia.io.images import check_same_geometry, read_array, read_label_map

    def checked(array, geom, path):
        if reference is not None:
            check_same_geometry(reference[0], geom, reference[1], path, "brain mask")
        return array

    for d in brain_mask_dirs:
        f = Path(d) / f"{case_id}.nii.gz"
        if f.is_file():
            mask, geom = read_label_map(f, what="brain mask")
            return checked(mask > 0, geom, f)
    for d in image_dirs:
        # the location channels (zero outside the brain mask): with a T1 the last one is one channel further
        flair_only = not (Path(d) / f"{case_id}_{WMH_LOCATION_CHANNEL_INDICES[-1]:04d}.nii.gz").is_file()
        files = [Path(d) / f"{case_id}_{c:04d}.nii.gz"
                 for c in (WMH_FLAIR_ONLY_LOCATION_CHANNEL_INDICES if flair_only else WMH_LOCATION_CHANNEL_INDICES)]
        if all(f.is_file() for f in files):
            channels = [read_array(f, "location channel") for f in files]
            for (_, geom), f in zip(channels, files, strict=False):
                checked(None, geom, f)
            return np.any(np.stack([a > 0 for a, _ in channels]), axis=0)
    if brain_mask_dirs or image_dirs:
        raise InputError(f"{case_id}: no brain mask in {[str(d) for d in (*brain_mask_dirs, *image_dirs)]}")
    return None


def load_case(case_id: str, npz_file: Path, reference_dirs: Sequence[str | os.PathLike],
              brain_mask_dirs: Sequence[str | os.PathLike] = (), image_dirs: Sequence[str | os.PathLike] = ()
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(foreground probability, binary WMH reference, valid voxels) of one case; checks values and shapes."""
    from nnunet_ataxia.io.files import require_folder
    from nnunet_ataxia.io.images import read_label_map
    for d in reference_dirs:
        require_folder(d, "reference folder")
    ref_file = next((Path(d) / f"{case_id}.nii.gz" for d in reference_dirs
                     if (Path(d) / f"{case_id}.nii.gz").is_file()), None)
    if ref_file is None:
        raise InputError(f"{npz_file}: no reference {case_id}.nii.gz in {[str(d) for d in reference_dirs]}")
    ref, ref_geom = read_label_map(ref_file, (0, WMH_LABEL, WMH_IGNORE_LABEL),
                                   "WMH reference (0 background, 1 WMH, 2 ignore)")
    prob = read_probabilities(npz_file)
    if prob.shape != ref.shape:
        raise InputError(f"{npz_file}: probabilities have shape {prob.shape}, reference {ref_file} "
                         f"{ref.shape} (another case, or another space?)")
    brain = brain_mask_for_case(case_id, brain_mask_dirs, image_dirs, reference=(ref_geom, ref_file))
    valid = (ref != WMH_IGNORE_LABEL) if brain is None else (brain & (ref != WMH_IGNORE_LABEL))
    return prob, ref == WMH_LABEL, valid
