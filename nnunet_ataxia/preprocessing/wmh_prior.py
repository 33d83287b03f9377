"""The WMH prior: the probability of WMH at each MNI location, from training labels only.

Each training label's WMH voxels (value 1; the ignore label 2 counts as "not WMH") are warped to an MNI grid by the
case's FLAIR<->MNI map (:class:`nnunet_ataxia.preprocessing.wmh_mni_map.MNIMap`: the affine, refined by the non-linear
warp when
there is one; linear interpolation of the binary map, i.e. the WMH fraction of each MNI voxel), the maps
are averaged and lightly smoothed. The prior is then sampled back on every case's FLAIR grid. Only cases passed to
:func:`build_wmh_prior` enter it: the converter passes training cases only (never ``imagesTs``), optionally without
one cross-validation fold (:func:`prior_cases_for_fold`).

Which labels build the prior of which case (:func:`prior_sources`): by default the prior is cross-fitted, so that
the prior channel of a training case never contains that case's own lesions. The cases whose labels may enter the
prior (the "pool": the training cases, or the training part of a fold or of a fixed split) are cut into folds; each
pool case gets the prior built from the other folds' cases, every other case (validation, test) the prior built from
the whole pool. A prior built from all cases including the case itself (``"pooled"``) puts each training case's
own lesions into its input: the network then learns "high prior means lesion" from values that unseen cases never
show. A fixed prior from a file (:func:`read_external_prior`) uses no label of the dataset at all.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk

from nnunet_ataxia.preprocessing.wmh_mni_map import MNIMap, as_mni_map

__all__ = ["mni_grid", "warp_wmh_to_mni", "build_wmh_prior", "sample_prior", "prior_cases_for_fold", "PRIOR_MODES",
           "prior_sources", "read_external_prior"]

#: how the prior of each case is built: cross-fitted (default, leak-free) or from the whole pool (leaks)
PRIOR_MODES = ("crossfit", "pooled")


def mni_grid(template: sitk.Image, spacing_mm: float) -> sitk.Image:
    """An empty float32 grid covering ``template`` (MNI) at ``spacing_mm`` isotropic.

    Example:
        >>> grid = mni_grid(load_mni_template()[0], 2.0)  # doctest: +SKIP
    """
    size = [max(1, int(round(n * s / spacing_mm)))
            for n, s in zip(template.GetSize(), template.GetSpacing(), strict=True)]
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


def prior_sources(pool_ids: Sequence[str], other_ids: Sequence[str] = (), mode: str = "crossfit",
                  num_folds: int = 5, seed: int = 12345) -> dict[str, tuple[str, ...]]:
    """For every case, the cases whose labels build its prior.

    Args:
        pool_ids: the cases whose labels may enter the prior (training cases only).
        other_ids: cases that get the prior but never give their labels (validation, test cases).
        mode: ``"crossfit"``: the pool is cut into ``num_folds`` folds (nnU-Net's split: KFold, shuffled, ``seed``,
            over the sorted ids; fewer folds when the pool is smaller) and each pool case gets the prior of the
            other folds' cases; ``"pooled"``: every case gets the prior of the whole pool (a pool case's own labels
            are then in its own input).
        num_folds: folds of the cross-fitting (at least 2).
        seed: seed of the fold split.

    Returns:
        ``{case id: sorted ids whose labels build its prior}``; other cases always get the whole pool.

    Example:
        >>> src = prior_sources([f"c{i}" for i in range(10)], ["t0"], num_folds=5)
        >>> len(src["c0"]), "c0" in src["c0"], len(src["t0"])
        (8, False, 10)
    """
    pool = sorted(map(str, pool_ids))
    others = sorted(map(str, other_ids))
    if mode not in PRIOR_MODES:
        raise ValueError(f"prior mode {mode!r} is not one of {', '.join(PRIOR_MODES)}")
    if set(pool) & set(others):
        raise ValueError(f"cases {sorted(set(pool) & set(others))[:5]} are both in the prior's pool and outside it")
    if not pool:
        raise ValueError("no training labels to build the prior from")
    everything = tuple(pool)
    sources = {cid: everything for cid in others}
    if mode == "pooled":
        sources.update({cid: everything for cid in pool})
        return sources
    k = min(int(num_folds), len(pool))
    if k < 2:
        raise ValueError(f"a cross-fitted prior needs at least 2 training cases, got {len(pool)}")
    from nnunetv2.utilities.crossval_split import generate_crossval_split

    for split in generate_crossval_split(pool, seed=seed, n_splits=k):
        rest = tuple(sorted(map(str, split["train"])))
        sources.update({str(cid): rest for cid in split["val"]})
    return sources


def read_external_prior(path) -> sitk.Image:
    """A fixed WMH prior in MNI space (a 3D image of probabilities in [0, 1]), checked before any work.

    Args:
        path: the image file (e.g. a prior built from another cohort, in the MNI152 space the converter uses).

    Returns:
        The prior as a float32 image.

    Raises:
        nnunet_ataxia.errors.InputError: unreadable, not 3D, not finite, or outside [0, 1].

    Example:
        >>> prior = read_external_prior("cohort_prior_mni.nii.gz")  # doctest: +SKIP
    """
    from pathlib import Path

    from nnunet_ataxia.errors import InputError

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such prior file")
    try:
        image = sitk.ReadImage(str(path), sitk.sitkFloat32)
    except RuntimeError:
        raise InputError(f"{path}: not a readable image (give a 3D NIfTI prior in MNI space)") from None
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"{path}: the prior must be a 3D single-channel image, got {image.GetDimension()}D")
    values = sitk.GetArrayViewFromImage(image)
    if not np.isfinite(values).all() or values.min() < 0 or values.max() > 1:
        raise InputError(f"{path}: the prior's values must be finite probabilities in [0, 1] "
                         f"(found {np.nanmin(values):g} .. {np.nanmax(values):g})")
    if values.max() == 0:
        raise InputError(f"{path}: the prior is zero everywhere")
    return image
