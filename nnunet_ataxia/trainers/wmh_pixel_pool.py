"""The paper's training pool for the WMH networks (Ghafoorian et al. §2.3), built once per fold.

"We randomly select 50% of positive and select an equal number of negative samples from normal voxels of all
cases": :func:`build_pixel_pool` draws ``ceil(fraction * L)`` of the ``L`` lesion voxels of all cases of a fold
and as many normal-appearing brain voxels (label 0 inside the brain mask) of all cases, uniformly without
replacement over the whole fold (indices drawn among all the fold's lesion / normal voxels numbered case after
case), with a fixed seed. Ignore-label voxels are never drawn. The pool stores coordinates only
(case index, slice, row, column, label: 17 bytes per sample); :class:`PoolBatches` serves it as mini-batches of
multi-scale patches read from nnU-Net's preprocessed (memory-mapped) arrays, one window per (case, slice) group.

Intensities: the paper scales each patient's images to [0, 1]. nnU-Net's z-score is affine per case, so a per-case
min-max of the z-scored image equals the min-max of the raw image (:func:`unit_scale_params`,
:func:`apply_unit_scale`); the paper trainers apply it to channels 0 (T1) and 1 (FLAIR).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from nnunet_ataxia.architectures.wmh_location_networks import NUM_LOCATION_FEATURES, image_channel_count
from nnunet_ataxia.architectures.wmh_patches import PATCH_SIZE, extract_multiscale_patches
from nnunet_ataxia.errors import InputError


def image_channels(num_channels: int) -> tuple[int, ...]:
    """Indices of the image channels of a case with ``num_channels`` channels: (0, 1) T1 + FLAIR, (0,) FLAIR-only.

    Example:
        >>> image_channels(10), image_channels(9)
        ((0, 1), (0,))
    """
    return tuple(range(image_channel_count(num_channels)))


def location_channels(num_channels: int) -> slice:
    """The location-feature channels of a case with ``num_channels`` channels (empty without features)."""
    n = image_channel_count(num_channels)
    return slice(n, n + NUM_LOCATION_FEATURES)


def brain_mask(data: np.ndarray) -> np.ndarray:
    """(C, ...) case -> brain mask: any location channel (2..9; FLAIR-only 1..8) > 0; all True when it has none.

    Example:
        >>> d = np.zeros((10, 1, 2)); d[5, 0, 1] = 0.3
        >>> brain_mask(d).tolist()
        [[False, True]]
    """
    loc = data[location_channels(data.shape[0])]
    return np.ones(data.shape[1:], bool) if loc.shape[0] == 0 else (loc > 0).any(0)


def unit_scale_params(data: np.ndarray, seg: np.ndarray, use_mask_for_norm: Sequence[bool],
                      channels: Sequence[int] | None = None) -> np.ndarray:
    """Per-channel (min, max) of nnU-Net-normalized image channels for the per-case [0, 1] scaling.

    Over nnU-Net's non-zero region (``seg >= 0``) when the plans normalize with that mask (voxels outside it keep
    0 instead of being z-scored), else over the whole (cropped) case.

    Args:
        data: (C, Z, Y, X) preprocessed case.
        seg: (1, Z, Y, X) preprocessed segmentation (-1 outside the non-zero region).
        use_mask_for_norm: the configuration's per-channel flag.
        channels: the image channels (default: :func:`image_channels` of ``data``).

    Returns:
        (len(channels), 2) float64: min, max.

    Example:
        >>> unit_scale_params(np.array([[[-1., 3.]]]), np.array([[[0, 0]]]), [False], (0,)).tolist()
        [[-1.0, 3.0]]
    """
    channels = image_channels(data.shape[0]) if channels is None else channels
    out = np.zeros((len(channels), 2))
    inside = seg[0] >= 0
    for i, c in enumerate(channels):
        values = data[c][inside] if use_mask_for_norm[c] else data[c]
        if values.size:
            out[i] = float(values.min()), float(values.max())
    return out


def apply_unit_scale(image: np.ndarray, lo_hi: Sequence[float], inside: np.ndarray | None = None) -> np.ndarray:
    """``(image - min) / (max - min)``; voxels outside ``inside`` (nnU-Net's non-zero region, when the plans
    normalize with it) become 0. A constant image becomes 0.

    Example:
        >>> apply_unit_scale(np.array([-1., 1., 3.]), (-1., 3.)).tolist()
        [0.0, 0.5, 1.0]
    """
    lo, hi = float(lo_hi[0]), float(lo_hi[1])
    out = (np.asarray(image, np.float32) - lo) / max(hi - lo, 1e-8)
    if inside is not None:
        out = np.where(inside, out, np.float32(0))
    return out.astype(np.float32, copy=False)


def scale_case_images(data: np.ndarray, seg: np.ndarray, use_mask_for_norm: Sequence[bool],
                      params: np.ndarray | None = None, channels: Sequence[int] | None = None) -> np.ndarray:
    """A copy of a preprocessed case (or window) with its image channels scaled per case to [0, 1]."""
    channels = image_channels(data.shape[0]) if channels is None else channels
    params = unit_scale_params(data, seg, use_mask_for_norm, channels) if params is None else params
    out = np.array(data, dtype=np.float32, copy=True)
    for i, c in enumerate(channels):
        out[c] = apply_unit_scale(out[c], params[i], seg[0] >= 0 if use_mask_for_norm[c] else None)
    return out


def _masks(data: np.ndarray, seg: np.ndarray, ignore_label: int | None) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(seg[0])
    usable = np.ones(s.shape, bool) if ignore_label is None else s != ignore_label
    return (s > 0) & usable, (s == 0) & brain_mask(data) & usable


def _draw(counts: np.ndarray, k: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``k`` of ``sum(counts)`` items uniformly without replacement (items numbered case after case; Floyd's
    algorithm, memory O(k)) -> per case the sorted offsets of its drawn items."""
    starts = np.concatenate([[0], np.cumsum(counts)])
    picks = np.sort(rng.choice(int(starts[-1]), size=int(k), replace=False))
    bounds = np.searchsorted(picks, starts)
    return [picks[bounds[i]:bounds[i + 1]] - starts[i] for i in range(len(counts))]


@dataclass
class PixelPool:
    """A balanced sample of pixels (coordinates in nnU-Net's preprocessed, cropped space).

    Attributes:
        case_ids: the cases; ``case`` indexes them.
        case, z, y, x: (N,) int32 sample coordinates (z = slice of the 2d configuration).
        label: (N,) uint8 class of each sample (0 = normal-appearing brain).
        scale: (n_cases, C, 2) min/max of the image channels per case (:func:`unit_scale_params`).
        lesion_voxels, normal_voxels: totals over the cases the pool was drawn from.
    """
    case_ids: list[str]
    case: np.ndarray
    z: np.ndarray
    y: np.ndarray
    x: np.ndarray
    label: np.ndarray
    scale: np.ndarray
    lesion_voxels: int
    normal_voxels: int

    def __len__(self) -> int:
        return int(self.label.size)

    @property
    def nbytes(self) -> int:
        """Memory of the per-sample arrays."""
        return int(sum(a.nbytes for a in (self.case, self.z, self.y, self.x, self.label)))


def build_pixel_pool(dataset: Any, case_ids: Sequence[str], ignore_label: int | None,
                     use_mask_for_norm: Sequence[bool], fraction: float = 0.5, seed: int = 0,
                     max_lesion_samples: int | None = None) -> PixelPool:
    """Draw the paper's balanced pool once: ``ceil(fraction * L)`` lesion voxels of all cases and as many normal
    brain voxels, uniformly over the cases together (two passes over the cases; one case in memory at a time).

    Args:
        dataset: an nnU-Net dataset (``load_case(id) -> (data, seg, seg_prev, properties)``).
        case_ids: the fold's cases.
        ignore_label: never sampled (None: none).
        use_mask_for_norm: the configuration's flags (for the intensity scaling parameters).
        fraction: fraction of the lesion voxels drawn (0.5 in the paper).
        seed: the fixed seed; the same data and seed give the same pool.
        max_lesion_samples: cap on the lesion samples (smoke trainers only; None = the paper).

    Returns:
        The pool, ordered by case.

    Example:
        >>> pool = build_pixel_pool(nnUNetDatasetBlosc2(folder, keys), keys, 2, [True] * 10)  # doctest: +SKIP
    """
    case_ids = list(case_ids)
    if not case_ids:
        raise InputError("WMH pixel pool: no cases in this part of the fold")
    n_pos, n_neg, scale = np.zeros(len(case_ids), np.int64), np.zeros(len(case_ids), np.int64), []
    for i, k in enumerate(case_ids):
        data, seg = (np.asarray(a[:]) for a in dataset.load_case(k)[:2])
        pos, neg = _masks(data, seg, ignore_label)
        n_pos[i], n_neg[i] = pos.sum(), neg.sum()
        scale.append(unit_scale_params(data, seg, use_mask_for_norm))
    if n_pos.sum() == 0:
        raise InputError(f"WMH pixel pool: no lesion voxels in cases {', '.join(case_ids[:5])}"
                         f"{' ...' if len(case_ids) > 5 else ''} (the balanced sample needs some)")
    k_pos = math.ceil(fraction * int(n_pos.sum()))
    k_pos = k_pos if max_lesion_samples is None else min(k_pos, int(max_lesion_samples))
    k_neg = min(k_pos, int(n_neg.sum()))
    rng = np.random.default_rng(seed)
    take_pos, take_neg = _draw(n_pos, k_pos, rng), _draw(n_neg, k_neg, rng)
    parts = []
    for i, k in enumerate(case_ids):
        if take_pos[i].size == 0 and take_neg[i].size == 0:
            continue
        data, seg = (np.asarray(a[:]) for a in dataset.load_case(k)[:2])
        pos, neg = _masks(data, seg, ignore_label)
        for mask, offsets in ((pos, take_pos[i]), (neg, take_neg[i])):
            voxels = np.flatnonzero(mask)[offsets]     # the drawn voxels of this class, in C order
            parts.append((np.full(voxels.size, i), *np.unravel_index(voxels, mask.shape),
                          seg[0].reshape(-1)[voxels]))
    cols = [np.concatenate([p[j] for p in parts]) for j in range(5)]
    return PixelPool(case_ids, *(c.astype(np.int32) for c in cols[:4]), cols[4].astype(np.uint8),
                     np.stack(scale), int(n_pos.sum()), int(n_neg.sum()))


class PatchReader:
    """Read the multi-scale patches (scaled to [0, 1] per case), location vectors and labels of pool samples.

    Samples are grouped by (case, slice); each group reads one window of the preprocessed case that covers all
    its patches (the largest scale reaches ``16 * max(scale_factors)`` pixels from the centre). Pixels outside the
    window are outside the slice, so the zero padding of :func:`extract_multiscale_patches` is exact.

    Args:
        dataset: the nnU-Net dataset the pool was drawn from.
        pool: the pool.
        scale_factors: (1,) for SS, (1, 2, 4) for the multi-scale networks.
        use_mask_for_norm: the configuration's flags.
        with_location: read the location vectors (+Loc networks); else only T1/FLAIR are read.
    """

    def __init__(self, dataset: Any, pool: PixelPool, scale_factors: Sequence[int],
                 use_mask_for_norm: Sequence[bool], with_location: bool = True):
        self.dataset, self.pool, self.with_location = dataset, pool, with_location
        self.scale_factors = tuple(int(s) for s in scale_factors)
        self.use_mask_for_norm = list(use_mask_for_norm)
        self._cases: dict[int, tuple] = {}

    def _case(self, i: int) -> tuple:
        if i not in self._cases:     # blosc2 / .npy arrays are opened memory-mapped: nothing is read here
            self._cases[i] = tuple(self.dataset.load_case(self.pool.case_ids[i])[:2])
        return self._cases[i]

    def read(self, indices: np.ndarray) -> dict:
        """Batch of the samples ``indices``: ``{"patches": [(N, 2, 32, 32)] per scale, "location": (N, 8) (None
        without ``with_location`` or location channels), "target": (N,) long}`` in the order of ``indices``."""
        p = self.pool
        indices = np.asarray(indices)
        half = PATCH_SIZE * max(self.scale_factors) // 2
        patches: list[list[torch.Tensor]] = [[] for _ in self.scale_factors]
        locations, order = [], []
        keys = p.case[indices].astype(np.int64) * (1 << 32) + p.z[indices]
        for key in np.unique(keys):
            at = np.flatnonzero(keys == key)          # positions in the batch
            sel = indices[at]
            ci, z = int(p.case[sel[0]]), int(p.z[sel[0]])
            data, seg = self._case(ci)
            rows, cols = p.y[sel], p.x[sel]
            r0, c0 = max(0, int(rows.min()) - half), max(0, int(cols.min()) - half)
            r1, c1 = int(rows.max()) + half, int(cols.max()) + half
            n_img = image_channel_count(data.shape[0])
            window = np.asarray(data[:n_img, z, r0:r1, c0:c1], np.float32)
            seg_w = np.asarray(seg[:, z, r0:r1, c0:c1])
            images = scale_case_images(window, seg_w, self.use_mask_for_norm, p.scale[ci], tuple(range(n_img)))
            r, c = torch.from_numpy((rows - r0).astype(np.int64)), torch.from_numpy((cols - c0).astype(np.int64))
            for s, t in enumerate(extract_multiscale_patches(torch.from_numpy(images), r, c, self.scale_factors)):
                patches[s].append(t)
            if self.with_location:   # the location values at the sampled pixels only
                ra, ca = int(rows.min()), int(cols.min())
                rows_end, cols_end = int(rows.max()) + 1, int(cols.max()) + 1
                loc = np.asarray(data[location_channels(data.shape[0]), z, ra:rows_end, ca:cols_end])
                locations.append(loc[:, rows - ra, cols - ca].T.astype(np.float32))
            order.append(at)
        back = torch.from_numpy(np.argsort(np.concatenate(order)))   # gathered group by group -> batch order
        loc = np.concatenate(locations) if locations else np.zeros((len(indices), 0), np.float32)
        return {"patches": [torch.cat(ps)[back] for ps in patches],
                "location": torch.from_numpy(loc)[back] if loc.shape[1] else None,
                "target": torch.from_numpy(p.label[indices].astype(np.int64))}


class PoolBatches:
    """Mini-batches over a pool: one epoch = one pass over every sample, in a new seeded order per epoch
    (``shuffle``) or in pool order. ``len()`` = batches per epoch (the last one may be smaller); after the last
    batch the next epoch starts. Call :meth:`start_epoch` to align with the trainer's epoch (resumption).

    Example:
        >>> b = PoolBatches(reader, batch_size=128, shuffle=True, seed=0)  # doctest: +SKIP
        >>> b.start_epoch(3); batch = next(b)  # doctest: +SKIP
    """

    def __init__(self, reader: PatchReader, batch_size: int, shuffle: bool, seed: int = 0):
        self.reader, self.batch_size, self.shuffle, self.seed = reader, int(batch_size), shuffle, int(seed)
        self.start_epoch(0)

    def __len__(self) -> int:
        return math.ceil(len(self.reader.pool) / self.batch_size)

    def epoch_order(self, epoch: int) -> np.ndarray:
        """The sample order of ``epoch`` (a permutation of the pool)."""
        n = len(self.reader.pool)
        return np.random.default_rng([self.seed, int(epoch)]).permutation(n) if self.shuffle else np.arange(n)

    def start_epoch(self, epoch: int) -> None:
        self.epoch, self._order, self._pos = int(epoch), self.epoch_order(epoch), 0

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        if self._pos >= self._order.size:
            self.start_epoch(self.epoch + 1)
        idx = self._order[self._pos:self._pos + self.batch_size]
        self._pos += self.batch_size
        return self.reader.read(idx)
