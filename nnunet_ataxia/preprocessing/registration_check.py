"""Is a registered image a head? The check that ``segment`` and ``preprocess-mri`` run on every scan after its
registration to MNI: a plausible scale and shear, and brain anatomy where the template has the cerebellum and
brainstem (:func:`registration_similarity`), so that noise, phantoms and label maps are refused with one line.
"""
from __future__ import annotations

import functools
import os

import numpy as np
import SimpleITK as sitk

from nnunet_ataxia.errors import InputError

__all__ = ["MIN_REGISTRATION_SIMILARITY", "MIN_CONFIDENT_SIMILARITY", "MIN_BRAIN_SIMILARITY",
           "registration_similarity", "rank_mutual_information", "brain_registration_similarity",
           "check_brain_registration", "check_registration", "check_case_registration"]


@functools.lru_cache(maxsize=1)
def _template_crop() -> tuple[np.ndarray, np.ndarray]:
    from nnunet_ataxia.preprocessing.mri_pipeline import brain_mask_mni, crop_to_box
    from nnunet_ataxia.preprocessing.registration import load_mni_template

    template, _ = load_mni_template(with_brain_mask=False)
    brain = sitk.GetArrayFromImage(crop_to_box(brain_mask_mni(0))) > 0
    return sitk.GetArrayFromImage(crop_to_box(template))[brain], brain


def registration_similarity(preprocessed: sitk.Image, bins: int = 8, step: int = 5) -> float:
    """How much the registered image tells about the MNI template inside the crop's brain region, in [0, 1].

    Mutual information of the rank-binned intensities (``bins`` equal-count bins each, tied values in one bin)
    divided by the template's entropy, on every ``step``-th brain voxel of the crop. Contrast-agnostic (an inverted
    or random contrast scores like a T1). Measured after registration with a 2 mm template: a real FreeSurfer T1 0.10,
    generated subjects with random contrast 0.16, a box phantom 0.016, random noise 0.000, smooth noise 0.001.

    Args:
        preprocessed: an image on the crop grid (what ``preprocess_t1_case`` writes).
        bins: equal-count intensity bins per image.
        step: use every ``step``-th voxel of the brain region.

    Example:
        >>> registration_similarity(sitk.ReadImage("out/sub-01/mni/sub-01_t1_mni.nii.gz"))  # doctest: +SKIP
        0.101
    """
    template, brain = _template_crop()
    image = sitk.GetArrayViewFromImage(preprocessed)[brain]
    return rank_mutual_information(image[::step], template[::step], bins)


def rank_mutual_information(values: np.ndarray, template_values: np.ndarray, bins: int = 8) -> float:
    """Mutual information of two paired samples' rank-binned values over the template sample's entropy, in [0, 1].

    Each sample is cut into ``bins`` equal-count bins (tied values share one), so any monotone or non-monotone
    contrast that separates the same tissues scores alike; a flat sample scores 0.

    Args:
        values: the registered image's intensities.
        template_values: the template's intensities at the same points.
        bins: equal-count bins per sample.

    Example:
        >>> x = np.arange(1000.0)
        >>> round(rank_mutual_information(-x, x), 3), rank_mutual_information(np.zeros(1000), x)
        (1.0, 0.0)
    """
    from scipy.stats import rankdata

    def ranks(x: np.ndarray) -> np.ndarray:  # equal-count bins; tied values share a bin
        return np.minimum(((rankdata(x, method="average") - 1) * bins // len(x)).astype(int), bins - 1)

    joint = np.histogram2d(ranks(values), ranks(template_values), bins=bins, range=[[0, bins], [0, bins]])[0]
    p = joint / max(joint.sum(), 1.0)

    def entropy(q: np.ndarray) -> float:
        q = q[q > 0]
        return float(-np.sum(q * np.log(q)))

    ha, hb = entropy(p.sum(1)), entropy(p.sum(0))
    return (ha + hb - entropy(p)) / hb if hb > 0 else 0.0


#: below this :func:`registration_similarity` the image is not taken for a registered head
MIN_REGISTRATION_SIMILARITY = 0.04
#: a registration scoring below this is weak: it is run again from the head-top start and the better one is kept
#: (:func:`~nnunet_ataxia.preprocessing.mri_pipeline.preprocess_t1_case`), and ``segment`` flags a subject that
#: still scores below it; good registrations of T1 scans score about 0.1 to 0.16, so they run once
MIN_CONFIDENT_SIMILARITY = 0.06


def check_registration(path: str | os.PathLike, preprocessed: sitk.Image, linear_determinant: float,
                       matrix: np.ndarray) -> float:
    """Refuse registrations that cannot be a head: implausible scale or shear, or no anatomy where the brain is.

    Checks: the MNI -> native linear part has singular values in [0.6, 1.6] and |det| in [0.35, 2.5] (generous:
    children's and large adult heads, any pose); :func:`registration_similarity` of the preprocessed crop is at least
    :data:`MIN_REGISTRATION_SIMILARITY`. A non-brain image (noise, a phantom, a box) fails the second check.

    Args:
        path: the input file (named in the error).
        preprocessed: the preprocessed crop.
        linear_determinant: |det| of the MNI -> native affine's linear part.
        matrix: that linear part (3 x 3).

    Returns:
        The similarity.

    Raises:
        InputError: naming ``path`` and the failed check.

    Example:
        >>> check_registration("sub-01.nii.gz", crop, 0.95, tfm.GetMatrix())  # doctest: +SKIP
        0.101
    """
    sv = np.linalg.svd(np.asarray(matrix, float).reshape(3, 3), compute_uv=False)
    if not (0.35 <= linear_determinant <= 2.5) or sv.min() < 0.6 or sv.max() > 1.6:
        raise InputError(f"{path}: registration to MNI failed (implausible scaling {np.round(sv, 2).tolist()}); "
                         f"is this a T1 image of a head?")
    similarity = registration_similarity(preprocessed)
    if similarity < MIN_REGISTRATION_SIMILARITY:
        raise InputError(f"{path}: registration to MNI failed: no brain anatomy where the template has the "
                         f"cerebellum and brainstem (similarity {similarity:.3f} < {MIN_REGISTRATION_SIMILARITY}); "
                         f"is this a T1 image of a head? (A whole head with a bright scalp, neck or face often "
                         f"registers once skull-stripped.)")
    return similarity


def check_case_registration(path: str | os.PathLike, preprocessed: str | os.PathLike,
                            transform_dir: str | os.PathLike) -> tuple[float, sitk.Image, sitk.Transform, dict]:
    """:func:`check_registration` of a case as ``preprocess_t1_case`` wrote it (the MNI image, cropped or on the
    full MNI grid, and its transform folder).

    Returns:
        The similarity, and what was read for it: the preprocessed image, the MNI -> native transform and the
        folder's ``preprocessing.json`` (:func:`~nnunet_ataxia.preprocessing.native_space.load_case_transform`).

    Example:
        >>> check_case_registration("sub-01.nii.gz", "out/sub-01_0000.nii.gz",  # doctest: +SKIP
        ...                         "out/transforms/sub-01")
        (0.101, <SimpleITK.SimpleITK.Image ...>, <SimpleITK.SimpleITK.Transform ...>, {...})
    """
    from nnunet_ataxia.preprocessing.mri_pipeline import crop_to_box
    from nnunet_ataxia.preprocessing.native_space import load_case_transform

    tfm, meta = load_case_transform(transform_dir)
    image = sitk.ReadImage(str(preprocessed))
    similarity = check_registration(path, crop_to_box(image), float(meta["linear_determinant"]),
                                    np.array(tfm.GetMatrix()))
    return similarity, image, tfm, meta


#: below this :func:`brain_registration_similarity` a registration (of a FLAIR or T1, over the whole brain) is refused
MIN_BRAIN_SIMILARITY = 0.03


def brain_registration_similarity(image: sitk.Image, mni_to_image: sitk.Transform, template: sitk.Image,
                                  template_mask: sitk.Image, step: int = 3) -> float:
    """:func:`rank_mutual_information` of a registered image and the MNI template over the template's whole brain.

    The image is resampled onto the template grid through ``mni_to_image``; only brain voxels that fall inside the
    image's field of view count, so a scan that covers part of the brain is judged on that part. Measured with
    ``convert-wmh``'s 1 mm template and affine registration (``benchmarks/bench_wmh_registration_check.py``): a real
    1 mm FLAIR 0.066, the same in 3-8 mm slices, with strong noise or with a quarter of its slices blank 0.043-0.071;
    a real T1 0.115; the FLAIR's registration moved by 10-40 mm or rotated by 15-180 degrees 0.004-0.021, the FLAIR
    upside down 0.021, a box phantom 0.014, noise 0.000.

    Args:
        image: the image that was registered (native grid).
        mni_to_image: the registration's transform (template points -> image points).
        template, template_mask: the template it was registered to, and its brain mask (same grid).
        step: use every ``step``-th brain voxel.

    Example:
        >>> brain_registration_similarity(flair, affine, *mni_template(1.0))  # doctest: +SKIP
        0.067
    """
    # points outside the image's field of view get NaN, so one resampling gives both the values and the view
    resampled = sitk.GetArrayFromImage(sitk.Resample(sitk.Cast(image, sitk.sitkFloat32), template, mni_to_image,
                                                     sitk.sitkLinear, float("nan"), sitk.sitkFloat32))
    use = (sitk.GetArrayViewFromImage(template_mask) > 0) & ~np.isnan(resampled)
    values = resampled[use][::step]
    if values.size < 100:
        return 0.0
    return rank_mutual_information(values, sitk.GetArrayViewFromImage(template)[use][::step])


def check_brain_registration(path: str | os.PathLike, image: sitk.Image, mni_to_image: sitk.Transform,
                             template: sitk.Image, template_mask: sitk.Image) -> float:
    """Refuse a registration to MNI that found no brain anatomy where the template has it.

    Args:
        path: the input file (named in the error).
        image, mni_to_image, template, template_mask: as :func:`brain_registration_similarity`.

    Returns:
        The similarity (at least :data:`MIN_BRAIN_SIMILARITY`).

    Raises:
        InputError: naming ``path``, when the similarity is below :data:`MIN_BRAIN_SIMILARITY`.

    Example:
        >>> check_brain_registration("sub-01_FLAIR.nii.gz", flair, affine, *mni_template(1.0))  # doctest: +SKIP
        0.067
    """
    similarity = brain_registration_similarity(image, mni_to_image, template, template_mask)
    if similarity < MIN_BRAIN_SIMILARITY:
        raise InputError(f"{path}: registration to MNI failed: no brain anatomy where the template has the brain "
                         f"(similarity {similarity:.3f} < {MIN_BRAIN_SIMILARITY}); is this a brain scan "
                         f"(FLAIR or T1) of a head?")
    return similarity
