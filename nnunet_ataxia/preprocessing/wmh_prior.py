"""The WMH prior: the probability of WMH at each MNI location, from training labels only.

Each training label's WMH voxels (value 1; the ignore label 2 counts as "not WMH") are warped to an MNI grid by the
case's FLAIR<->MNI map (:class:`nnunet_ataxia.preprocessing.wmh_mni_map.MNIMap`: the affine, refined by the non-linear warp when
there is one; linear interpolation of the binary map, i.e. the WMH fraction of each MNI voxel), the maps
are averaged and lightly smoothed. The prior is then sampled back on every case's FLAIR grid. Only cases passed to
:func:`build_wmh_prior` enter it: the converter passes training cases only (never ``imagesTs``), optionally without
one cross-validation fold (:func:`prior_cases_for_fold`).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import SimpleITK as sitk

from nnunet_ataxia.preprocessing.wmh_mni_map import MNIMap, as_mni_map

__all__ = ["mni_grid", "warp_wmh_to_mni", "build_wmh_prior", "sample_prior", "prior_cases_for_fold"]


def mni_grid(template: sitk.Image, spacing_mm: float) -> sitk.Image:
    """An empty float32 grid covering ``template`` (MNI) at ``spacing_mm`` isotropic.

    Example:
        >>> grid = mni_grid(load_mni_template()[0], 2.0)  # doctest: +SKIP
    """
    size = [max(1, int(round(n * s / spacing_mm))) for n, s in zip(template.GetSize(), template.GetSpacing())]
    grid = sitk.Image(size, sitk.sitkFloat32)
    grid.SetSpacing([float(spacing_mm)] * 3)
    grid.SetOrigin(template.GetOrigin())
    grid.SetDirection(template.GetDirection())
    return grid


def warp_wmh_to_mni(label: sitk.Image, flair_to_mni: MNIMap | np.ndarray, grid: sitk.Image) -> np.ndarray:
    """The WMH fraction (label == 1) of every voxel of the MNI ``grid``.

    Args:
        label: the case's label map on its FLAIR grid (0, 1 WMH, 2 ignore).
        flair_to_mni: the case's :class:`MNIMap`, or a 4x4 matrix mapping FLAIR points to MNI points.
        grid: the MNI grid (see :func:`mni_grid`).

    Returns:
        float32 (z, y, x) array in [0, 1] on ``grid``.

    Example:
        >>> frac = warp_wmh_to_mni(sitk.ReadImage("labelsTr/c1.nii.gz"), M, grid)  # doctest: +SKIP
    """
    wmh = sitk.Cast(sitk.BinaryThreshold(label, 1, 1, 1, 0), sitk.sitkFloat32)
    warped = sitk.Resample(wmh, grid, as_mni_map(flair_to_mni).from_mni(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    return np.clip(sitk.GetArrayFromImage(warped), 0.0, 1.0)


def build_wmh_prior(warped: Sequence[np.ndarray], grid: sitk.Image, sigma_mm: float = 3.0) -> sitk.Image:
    """Average the warped WMH maps of the training cases and smooth (Gaussian, ``sigma_mm``).

    Args:
        warped: :func:`warp_wmh_to_mni` outputs of the cases that may enter the prior (training cases only).
        grid: their MNI grid.
        sigma_mm: Gaussian smoothing in mm (0 = none).

    Returns:
        The prior probability as a float32 image on ``grid``.

    Example:
        >>> prior = build_wmh_prior([warp_wmh_to_mni(l, M, grid) for l, M in train], grid)  # doctest: +SKIP
    """
    if len(warped) == 0:
        raise ValueError("build_wmh_prior: no training labels to build the prior from")
    mean = np.mean(np.stack([np.asarray(w, dtype=np.float32) for w in warped]), axis=0)
    img = sitk.GetImageFromArray(mean.astype(np.float32))
    img.CopyInformation(grid)
    if sigma_mm > 0:
        img = sitk.SmoothingRecursiveGaussian(img, float(sigma_mm))
        img = sitk.Clamp(img, sitk.sitkFloat32, 0.0, 1.0)
    return img


def sample_prior(prior: sitk.Image, reference: sitk.Image, flair_to_mni: MNIMap | np.ndarray) -> np.ndarray:
    """The prior on the grid of ``reference`` (linear interpolation through the case's FLAIR->MNI map or matrix).

    Example:
        >>> p = sample_prior(prior, flair, M)  # doctest: +SKIP
    """
    out = sitk.Resample(prior, reference, as_mni_map(flair_to_mni).to_mni(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    return np.clip(sitk.GetArrayFromImage(out), 0.0, 1.0)


def prior_cases_for_fold(train_ids: Sequence[str], fold: int | None, num_folds: int = 5,
                         seed: int = 12345) -> tuple[list[str], list[dict] | None]:
    """Which training cases build the prior, and the cross-validation splits when built per fold.

    With ``fold=None`` every training case enters the prior (each validation fold's own labels are then in it).
    With a fold, nnU-Net's default split (``generate_crossval_split``: KFold, shuffled, seed 12345, over the sorted
    case ids) is made and the prior is built from that fold's training part only.

    Returns:
        (case ids for the prior, splits or ``None``)

    Example:
        >>> ids, splits = prior_cases_for_fold([f"c{i}" for i in range(10)], fold=0)
        >>> len(ids), len(splits)
        (8, 5)
    """
    ids = sorted(train_ids)
    if fold is None:
        return ids, None
    from nnunetv2.utilities.crossval_split import generate_crossval_split

    if len(ids) < num_folds:
        raise ValueError(f"{len(ids)} training cases cannot be split into {num_folds} folds")
    if not 0 <= fold < num_folds:
        raise ValueError(f"fold {fold} is not in 0..{num_folds - 1}")
    splits = generate_crossval_split(ids, seed=seed, n_splits=num_folds)
    splits = [{"train": sorted(map(str, s["train"])), "val": sorted(map(str, s["val"]))} for s in splits]
    return list(splits[fold]["train"]), splits
