"""Segmentation metrics as flat typed functions on numpy arrays (+ voxel spacing).

Conventions (shared by every function here):

* masks are boolean (or 0/1) arrays of the same shape; spacing is given in the array's axis order, in mm
  (for an array read with SimpleITK, ``spacing = image.GetSpacing()[::-1]``);
* ``valid`` is an optional boolean array: only voxels where it is True count (the brain mask with the
  ignore-label voxels removed, see :func:`valid_voxels`);
* a ratio whose denominator is 0 is ``nan`` (as in nnU-Net's ``summary.json``), never a made-up 0 or 1.

Cabeza-Ruiz et al. eq. 1-4: DSC (soft form on probabilities), JI, SN = TP/(TP+FN), SP = TN/(FP+TN).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage


def valid_voxels(reference: np.ndarray, brain_mask: np.ndarray | None = None,
                 ignore_label: int | None = None) -> np.ndarray:
    """Voxels that count: inside ``brain_mask`` (when given) and not ``ignore_label`` in ``reference``.

    Args:
        reference: reference label map.
        brain_mask: optional mask of the same shape (non-zero = brain).
        ignore_label: label value of ``reference`` whose voxels are left out (nnU-Net's ignore label).

    Example:
        >>> ref = np.array([0, 1, 2, 1]); valid_voxels(ref, np.array([1, 1, 1, 0]), ignore_label=2).tolist()
        [True, True, False, False]
    """
    valid = np.ones(reference.shape, dtype=bool)
    if brain_mask is not None:
        if brain_mask.shape != reference.shape:
            raise ValueError(f"brain mask shape {brain_mask.shape} != reference shape {reference.shape}")
        valid &= brain_mask.astype(bool)
    if ignore_label is not None:
        valid &= reference != ignore_label
    return valid


def confusion_counts(reference: np.ndarray, prediction: np.ndarray,
                     valid: np.ndarray | None = None) -> tuple[int, int, int, int]:
    """(TP, FP, FN, TN) voxel counts of two binary masks, counted only where ``valid`` (nnU-Net's
    ``compute_tp_fp_fn_tn``, the counts behind its ``summary.json``, with ``~valid`` as the ignore mask).

    Example:
        >>> confusion_counts(np.array([1, 1, 0, 0]), np.array([1, 0, 1, 0]))
        (1, 1, 1, 1)
    """
    ref = np.asarray(reference).astype(bool)
    pred = np.asarray(prediction).astype(bool)
    if ref.shape != pred.shape:
        raise ValueError(f"reference shape {ref.shape} != prediction shape {pred.shape}")
    from nnunetv2.evaluation.evaluate_predictions import compute_tp_fp_fn_tn

    if valid is not None and np.shape(valid) != ref.shape:  # nnU-Net's counting would broadcast silently
        raise ValueError(f"valid-voxel mask shape {np.shape(valid)} != reference shape {ref.shape}")
    ignore = None if valid is None else ~np.asarray(valid).astype(bool)
    return tuple(int(n) for n in compute_tp_fp_fn_tn(ref, pred, ignore))


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den > 0 else float("nan")


def dice(reference: np.ndarray, prediction: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Hard Dice 2TP / (2TP + FP + FN); nan when both masks are empty.

    Example:
        >>> dice(np.array([1, 1, 0, 0]), np.array([1, 0, 0, 0]))
        0.6666666666666666
    """
    tp, fp, fn, _ = confusion_counts(reference, prediction, valid)
    return _ratio(2 * tp, 2 * tp + fp + fn)


def jaccard(reference: np.ndarray, prediction: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Jaccard index TP / (TP + FP + FN) (eq. 2 on binary masks); nan when both masks are empty.

    Example:
        >>> jaccard(np.array([1, 1, 0, 0]), np.array([1, 0, 0, 0]))
        0.5
    """
    tp, fp, fn, _ = confusion_counts(reference, prediction, valid)
    return _ratio(tp, tp + fp + fn)


def sensitivity(reference: np.ndarray, prediction: np.ndarray, valid: np.ndarray | None = None) -> float:
    """SN = TP / (TP + FN) (eq. 3); nan when the reference is empty.

    Example:
        >>> sensitivity(np.array([1, 1, 0, 0]), np.array([1, 0, 1, 0]))
        0.5
    """
    tp, _, fn, _ = confusion_counts(reference, prediction, valid)
    return _ratio(tp, tp + fn)


def specificity(reference: np.ndarray, prediction: np.ndarray, valid: np.ndarray | None = None) -> float:
    """SP = TN / (FP + TN) (eq. 4); nan when every counted voxel is foreground in the reference.

    Example:
        >>> specificity(np.array([1, 1, 0, 0]), np.array([1, 0, 1, 0]))
        0.5
    """
    _, fp, _, tn = confusion_counts(reference, prediction, valid)
    return _ratio(tn, fp + tn)


def soft_dice(reference: np.ndarray, probabilities: np.ndarray, valid: np.ndarray | None = None) -> float:
    """The paper's soft Dice (Cabeza-Ruiz eq. 1): 2 sum(p g) / (sum(p^2) + sum(g^2)).

    Args:
        reference: ground truth g (binary or soft, values in [0, 1]).
        probabilities: prediction p (probabilities in [0, 1]).
        valid: optional mask of voxels that count.

    Example:
        >>> soft_dice(np.array([1.0, 1.0, 0.0]), np.array([0.5, 1.0, 0.5]))
        0.8571428571428571
    """
    g = np.asarray(reference, dtype=np.float64)
    p = np.asarray(probabilities, dtype=np.float64)
    if valid is not None:
        g, p = g[np.asarray(valid, bool)], p[np.asarray(valid, bool)]
    return _ratio(2.0 * np.sum(p * g), np.sum(p * p) + np.sum(g * g))


def soft_jaccard(reference: np.ndarray, probabilities: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Eq. 2 of Cabeza-Ruiz on probabilities: sum(p g) / (sum(p) + sum(g) - sum(p g)).

    Example:
        >>> soft_jaccard(np.array([1.0, 1.0, 0.0]), np.array([0.5, 1.0, 0.5]))
        0.6
    """
    g = np.asarray(reference, dtype=np.float64)
    p = np.asarray(probabilities, dtype=np.float64)
    if valid is not None:
        g, p = g[np.asarray(valid, bool)], p[np.asarray(valid, bool)]
    inter = np.sum(p * g)
    return _ratio(inter, np.sum(p) + np.sum(g) - inter)


def volume_mm3(mask: np.ndarray, spacing: Sequence[float], valid: np.ndarray | None = None) -> float:
    """Volume of a binary mask in mm^3: voxel count x product of the spacing.

    Args:
        mask: binary mask.
        spacing: voxel size in mm per array axis.
        valid: optional mask of voxels that count.

    Example:
        >>> volume_mm3(np.ones((2, 2, 2)), (3.0, 1.0, 0.5))
        12.0
    """
    m = np.asarray(mask).astype(bool)
    if len(spacing) != m.ndim:
        raise ValueError(f"spacing {tuple(spacing)} does not match a {m.ndim}-D mask")
    if valid is not None:
        m = m & np.asarray(valid, bool)
    return float(np.count_nonzero(m)) * float(np.prod(np.asarray(spacing, dtype=np.float64)))


def absolute_volume_difference(volume_reference: float, volume_prediction: float) -> float:
    """|V_pred - V_ref| in the unit of the volumes (mm^3).

    Example:
        >>> absolute_volume_difference(100.0, 90.0)
        10.0
    """
    return abs(float(volume_prediction) - float(volume_reference))


def relative_volume_difference(volume_reference: float, volume_prediction: float) -> float:
    """Signed (V_pred - V_ref) / V_ref in percent; nan for an empty reference.

    Example:
        >>> relative_volume_difference(200.0, 210.0)
        5.0
    """
    return 100.0 * _ratio(float(volume_prediction) - float(volume_reference), float(volume_reference))


def wmh_absolute_volume_difference(volume_reference: float, volume_prediction: float) -> float:
    """The WMH challenge's AVD: |V_pred - V_ref| / V_ref in percent.

    Example:
        >>> wmh_absolute_volume_difference(200.0, 150.0)
        25.0
    """
    return abs(relative_volume_difference(volume_reference, volume_prediction))


def _surface(mask: np.ndarray) -> np.ndarray:
    structure = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask & ~ndimage.binary_erosion(mask, structure=structure, border_value=0)


def surface_distances(reference: np.ndarray, prediction: np.ndarray,
                      spacing: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Distances (mm) from each surface voxel of one mask to the nearest surface voxel of the other.

    Surface voxels are the mask voxels with a face neighbour outside the mask (the image border counts as
    outside). Distances are Euclidean between voxel centres with the given (possibly anisotropic) spacing.

    Returns:
        (distances from the prediction surface to the reference surface,
         distances from the reference surface to the prediction surface).
    """
    ref = np.asarray(reference).astype(bool)
    pred = np.asarray(prediction).astype(bool)
    # crop to the joint bounding box (+1 voxel) so that big images with small masks stay cheap
    union = ref | pred
    coords = np.argwhere(union)
    lo = np.maximum(coords.min(0) - 1, 0)
    hi = np.minimum(coords.max(0) + 2, union.shape)
    sl = tuple(slice(a, b) for a, b in zip(lo, hi, strict=False))
    # surfaces are taken on the full arrays (image border = outside); every surface voxel lies in the crop
    ref_s, pred_s = _surface(ref)[sl], _surface(pred)[sl]
    sampling = np.asarray(spacing, dtype=np.float64)
    dist_to_ref = ndimage.distance_transform_edt(~ref_s, sampling=sampling)
    dist_to_pred = ndimage.distance_transform_edt(~pred_s, sampling=sampling)
    return dist_to_ref[pred_s], dist_to_pred[ref_s]


def hausdorff_distance_95(reference: np.ndarray, prediction: np.ndarray, spacing: Sequence[float],
                          percentile: float = 95.0) -> float:
    """Robust (95th percentile) symmetric Hausdorff distance in mm.

    The larger of the two directed 95th percentiles of the surface distances (the definition of DeepMind's
    ``surface-distance`` package, used by the Medical Segmentation Decathlon); ``percentile=100`` gives the
    classic Hausdorff distance. nan when either mask is empty.

    Args:
        reference: binary reference mask.
        prediction: binary predicted mask.
        spacing: voxel size in mm per array axis (anisotropy is honoured).
        percentile: which percentile of the directed distances.

    Example:
        >>> a = np.zeros((1, 1, 10), bool); b = a.copy(); a[0, 0, 2] = True; b[0, 0, 5] = True
        >>> hausdorff_distance_95(a, b, (1.0, 1.0, 2.0))
        6.0
    """
    ref = np.asarray(reference).astype(bool)
    pred = np.asarray(prediction).astype(bool)
    if len(spacing) != ref.ndim:
        raise ValueError(f"spacing {tuple(spacing)} does not match a {ref.ndim}-D mask")
    if not ref.any() or not pred.any():
        return float("nan")
    d_pred_ref, d_ref_pred = surface_distances(ref, pred, spacing)
    return float(max(np.percentile(d_pred_ref, percentile), np.percentile(d_ref_pred, percentile)))


def connected_lesions(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Label the lesions (fully connected components: 26-neighbourhood in 3D) of a binary mask."""
    m = np.asarray(mask).astype(bool)
    structure = ndimage.generate_binary_structure(m.ndim, m.ndim)
    labelled, n = ndimage.label(m, structure=structure)
    return labelled, int(n)


def lesion_detection(reference: np.ndarray, prediction: np.ndarray,
                     valid: np.ndarray | None = None) -> dict[str, float]:
    """Lesion-wise recall, precision and F1 of the WMH segmentation challenge (MICCAI 2017).

    A reference lesion (connected component, full connectivity) is detected when at least one of its voxels is
    predicted; a predicted lesion is a true detection when it touches the reference. Voxels outside ``valid``
    (brain mask, ignore label) are removed from both masks first.

    Returns:
        dict with ``n_reference_lesions``, ``n_predicted_lesions``, ``lesion_recall`` (detected / reference
        lesions), ``lesion_precision`` (touching / predicted lesions) and ``lesion_f1`` (harmonic mean; nan
        when recall or precision is undefined, 0 when both are 0).

    Example:
        >>> ref = np.array([1, 1, 0, 0, 1, 0, 0, 0]); pred = np.array([0, 1, 0, 0, 0, 0, 1, 1])
        >>> lesion_detection(ref, pred)["lesion_f1"]
        0.5
    """
    ref = np.asarray(reference).astype(bool)
    pred = np.asarray(prediction).astype(bool)
    if valid is not None:
        ref = ref & np.asarray(valid, bool)
        pred = pred & np.asarray(valid, bool)
    ref_lab, n_ref = connected_lesions(ref)
    pred_lab, n_pred = connected_lesions(pred)
    detected = len(np.unique(ref_lab[pred & (ref_lab > 0)]))
    touching = len(np.unique(pred_lab[ref & (pred_lab > 0)]))
    recall = _ratio(detected, n_ref)
    precision = _ratio(touching, n_pred)
    if np.isnan(recall) or np.isnan(precision):
        f1 = float("nan")
    elif recall + precision == 0:
        f1 = 0.0
    else:
        f1 = 2.0 * recall * precision / (recall + precision)
    return {"n_reference_lesions": n_ref, "n_predicted_lesions": n_pred, "lesion_recall": recall,
            "lesion_precision": precision, "lesion_f1": f1}


def structure_metrics(reference: np.ndarray, prediction: np.ndarray, spacing: Sequence[float],
                      valid: np.ndarray | None = None, compute_hd95: bool = True,
                      lesion_metrics: bool = False) -> dict[str, float]:
    """All metrics of one structure of one case (binary masks), as one flat dict.

    Keys: ``Dice``, ``Jaccard``, ``Sensitivity``, ``Specificity``, ``TP``, ``FP``, ``FN``, ``TN``,
    ``volume_ref_mm3``, ``volume_pred_mm3``, ``abs_volume_difference_mm3``, ``rel_volume_difference_pct``,
    ``HD95_mm`` (if requested) and the :func:`lesion_detection` keys plus ``AVD_pct`` (if requested).
    Voxels outside ``valid`` count for nothing (HD95 is computed on the masks restricted to ``valid``).

    Example:
        >>> m = structure_metrics(np.array([[1, 1, 0]]), np.array([[1, 0, 0]]), (1.0, 2.0))
        >>> m["Dice"], m["volume_ref_mm3"]
        (0.6666666666666666, 4.0)
    """
    ref = np.asarray(reference).astype(bool)
    pred = np.asarray(prediction).astype(bool)
    if valid is not None:
        ref = ref & valid
        pred = pred & valid
    tp, fp, fn, tn = confusion_counts(ref, pred, valid)
    v_ref = volume_mm3(ref, spacing)
    v_pred = volume_mm3(pred, spacing)
    out: dict[str, float] = {
        "Dice": _ratio(2 * tp, 2 * tp + fp + fn),
        "Jaccard": _ratio(tp, tp + fp + fn),
        "Sensitivity": _ratio(tp, tp + fn),
        "Specificity": _ratio(tn, fp + tn),
        "TP": tp, "FP": fp, "FN": fn, "TN": tn,
        "volume_ref_mm3": v_ref,
        "volume_pred_mm3": v_pred,
        "abs_volume_difference_mm3": absolute_volume_difference(v_ref, v_pred),
        "rel_volume_difference_pct": relative_volume_difference(v_ref, v_pred),
    }
    if compute_hd95:
        out["HD95_mm"] = hausdorff_distance_95(ref, pred, spacing)
    if lesion_metrics:
        out.update(lesion_detection(ref, pred))
        out["AVD_pct"] = wmh_absolute_volume_difference(v_ref, v_pred)
    return out
