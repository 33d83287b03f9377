"""Automatic QC flags of ``segment``: reasons to look at a subject's picture, for cohorts where nobody sees them all.

A subject's ``qc`` is ``ok`` or the reasons, joined by ``"; "``:

* ``registration uncertain``: :func:`~nnunet_ataxia.preprocessing.registration_check.registration_similarity` below
  :data:`~nnunet_ataxia.preprocessing.registration_check.MIN_CONFIDENT_SIMILARITY` (the subject passed the refusal
  threshold, but its registration is weak even after the retry from the top of the head);
* ``<structure> volume implausible``: the volume on the 1 mm MNI crop (the native volume divided by the registration's
  scale factor, so the head size is taken out) outside :data:`~nnunet_ataxia.io.plausibility.PLAUSIBLE_MNI_VOLUME_CM3`;
* ``<structure> unsure``: the mean maximum class probability inside the structure's predicted mask below
  :data:`MIN_MEAN_CONFIDENCE`;
* ``<structure> in N pieces``: the native mask has more than one connected piece of at least
  :data:`MIN_PIECE_SHARE` of the structure's volume.

The thresholds and how they were chosen are documented in the reference (outputs) and the model card.
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from nnunet_ataxia.io.plausibility import PLAUSIBLE_MNI_VOLUME_CM3
from nnunet_ataxia.preprocessing.registration_check import MIN_CONFIDENT_SIMILARITY

__all__ = ["QC_OK", "MIN_CONFIDENT_SIMILARITY", "MIN_MEAN_CONFIDENCE", "MIN_PIECE_SHARE", "mask_confidence",
           "large_pieces", "qc_flags", "qc_text"]

QC_OK = "ok"
#: below this mean maximum class probability inside a predicted mask the structure is flagged; calibrated on the
#: held-out real-anatomy subjects (``benchmarks/bench_pretrained_heldout.py --anatomy label-maps``): every
#: well-segmented subject (cerebellum Dice >= 0.9, |volume error| <= 10 %) scored at least 0.955 with model v1, model
#: v2 and the shipped v2 + folia
MIN_MEAN_CONFIDENCE = 0.94
#: a connected piece of a mask counts as large from this share of the structure's volume
MIN_PIECE_SHARE = 0.05


def mask_confidence(probabilities: np.ndarray, segmentation: np.ndarray, labels: dict[str, int]) -> dict[str, float]:
    """Mean maximum class probability inside each structure's predicted mask (NaN for an empty mask).

    Args:
        probabilities: (classes, z, y, x) class probabilities; channel i is label value i.
        segmentation: the label map on the same grid.
        labels: ``{name: value}`` of the foreground structures.

    Example:
        >>> p = np.zeros((2, 1, 1, 4), np.float32); p[1] = [[[0.9, 0.6, 0.1, 0.2]]]; p[0] = 1 - p[1]
        >>> seg = (p[1] > 0.5).astype(np.uint8)
        >>> round(mask_confidence(p, seg, {"cerebellum": 1})["cerebellum"], 3)
        0.75
    """
    top = probabilities.max(0)
    return {name: float(top[segmentation == value].mean()) if (segmentation == value).any() else float("nan")
            for name, value in labels.items()}


def large_pieces(mask: sitk.Image | np.ndarray, min_share: float = MIN_PIECE_SHARE) -> int:
    """How many connected pieces (26-connectivity) of a binary mask hold at least ``min_share`` of its volume.

    Example:
        >>> m = np.zeros((10, 10, 30), np.uint8); m[2:8, 2:8, 2:10] = 1; m[2:8, 2:8, 20:28] = 1
        >>> large_pieces(m)
        2
    """
    image = mask if isinstance(mask, sitk.Image) else sitk.GetImageFromArray(np.asarray(mask, np.uint8))
    components = sitk.GetArrayFromImage(sitk.ConnectedComponent(sitk.Cast(image > 0, sitk.sitkUInt8), True))
    sizes = np.bincount(components.ravel())[1:]
    if sizes.sum() == 0:
        return 0
    return int((sizes >= min_share * sizes.sum()).sum())


def qc_flags(*, similarity: float, volumes_mni_mm3: dict[str, float], confidence: dict[str, float],
             pieces: dict[str, int]) -> list[str]:
    """The reasons to look at a subject (empty: nothing found), in a fixed order.

    Args:
        similarity: the registration similarity.
        volumes_mni_mm3: ``{structure: volume on the MNI crop in mm³}``.
        confidence: :func:`mask_confidence`'s values.
        pieces: :func:`large_pieces` per structure.

    Example:
        >>> qc_flags(similarity=0.1, volumes_mni_mm3={"cerebellum": 40_000.0}, confidence={"cerebellum": 0.97},
        ...          pieces={"cerebellum": 1})
        ['cerebellum volume implausible (40 cm³ on the MNI crop, plausible 70-200)']
    """
    flags = []
    if similarity < MIN_CONFIDENT_SIMILARITY:
        flags.append(f"registration uncertain (similarity {similarity:.3f} < {MIN_CONFIDENT_SIMILARITY})")
    for name, mm3 in volumes_mni_mm3.items():
        low, high = PLAUSIBLE_MNI_VOLUME_CM3.get(name, (0.0, float("inf")))
        if not low <= mm3 / 1000.0 <= high:
            flags.append(f"{name} volume implausible ({mm3 / 1000.0:.0f} cm³ on the MNI crop, plausible "
                         f"{low:g}-{high:g})")
    for name, value in confidence.items():
        if np.isfinite(value) and value < MIN_MEAN_CONFIDENCE:
            flags.append(f"{name} unsure (mean probability {value:.3f} < {MIN_MEAN_CONFIDENCE})")
    for name, n in pieces.items():
        if n > 1:
            flags.append(f"{name} in {n} pieces")
    return flags


def qc_text(flags: list[str]) -> str:
    """``ok`` or the flags joined by ``"; "`` (the ``qc`` column of ``volumes.csv``)."""
    return "; ".join(flags) if flags else QC_OK
