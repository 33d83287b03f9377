"""Generated WMH cases whose lesion frequency depends on location (the WMH demo's data).

Each case is :func:`nnunet_ataxia.synthesis.wmh_cases.make_synthetic_case` (MNI152 anatomy, T1 + thick-slice FLAIR, a
random pose, one "other pathology" blob = ignore label 2) without its own lesions, plus two kinds of bright FLAIR
blobs of the same appearance (same radius and brightness distributions, both in white matter):

* **WMH** (label 1): centres drawn in MNI white matter with probability proportional to
  ``exp(-d_ventricles / ventricle_scale_mm)``: mostly periventricular and deep, rare near the cortex (as real WMH);
* **mimics** (label 0): FLAIR-hyperintense spots that are not WMH (e.g. juxtacortical lesions, artefacts), with
  probability proportional to ``exp(-d_cortex / cortex_scale_mm)``: mostly next to the cortex.

So whether a bright spot is WMH depends on where it is. The probabilities follow :func:`location_weights`.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

__all__ = ["location_weights", "make_location_case", "write_location_dataset"]

#: FLAIR contrast of the template (synthetic._flair_contrast): white matter ~420, grey matter ~600, CSF ~110
BLOB_FLAIR_RANGE = (620.0, 900.0)
WHITE_MATTER_T1 = 6500.0


@functools.lru_cache(maxsize=2)
def _mni_maps(grid_mm: float = 2.0) -> tuple[sitk.Image, np.ndarray, np.ndarray, np.ndarray]:
    """MNI grid, white-matter candidate mask and the distances (mm) to the lateral ventricles and the cortex."""
    from nnunet_ataxia.preprocessing.wmh_pipeline import mni_template
    from nnunet_ataxia.preprocessing.wmh_ventricles import LEFT_LATERAL_VENTRICLE, RIGHT_LATERAL_VENTRICLE
    from nnunet_ataxia.io.templates import desikan_killiany_atlas

    template, brain_img = mni_template(grid_mm)
    atlas = sitk.Resample(desikan_killiany_atlas(), template, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    vent = np.isin(sitk.GetArrayFromImage(atlas), (LEFT_LATERAL_VENTRICLE, RIGHT_LATERAL_VENTRICLE))
    brain = sitk.GetArrayFromImage(brain_img) > 0
    d_vent = ndimage.distance_transform_edt(~vent) * grid_mm
    d_cortex = ndimage.distance_transform_edt(brain) * grid_mm
    wm = (sitk.GetArrayFromImage(template) > WHITE_MATTER_T1) & brain & (d_vent >= 3.0) & (d_cortex >= 4.0)
    return template, wm, d_vent, d_cortex


def location_weights(d_ventricles_mm: np.ndarray, d_cortex_mm: np.ndarray, ventricle_scale_mm: float = 10.0,
                     cortex_scale_mm: float = 6.0) -> tuple[np.ndarray, np.ndarray]:
    """Unnormalized placement probabilities of WMH and of mimics at white-matter points with these distances.

    Example:
        >>> w, m = location_weights(np.array([2.0, 30.0]), np.array([30.0, 5.0]))
        >>> bool(w[0] > w[1]) and bool(m[1] > m[0])
        True
    """
    return (np.exp(-np.asarray(d_ventricles_mm, float) / ventricle_scale_mm),
            np.exp(-np.asarray(d_cortex_mm, float) / cortex_scale_mm))


def _draw_centres(rng: np.random.Generator, n: int, weights: np.ndarray, grid: sitk.Image,
                  candidates: np.ndarray) -> np.ndarray:
    p = weights / weights.sum()
    picks = candidates[rng.choice(len(candidates), size=n, replace=False, p=p)]
    jitter = rng.uniform(-0.5, 0.5, (n, 3)) * grid.GetSpacing()[0]
    return np.array([grid.TransformIndexToPhysicalPoint([int(i) for i in q[::-1]]) for q in picks]) + jitter


def make_location_case(seed: int = 0, n_wmh: tuple[int, int] = (6, 10), n_mimics: tuple[int, int] = (4, 7),
                       radius_mm: tuple[float, float] = (3.0, 5.5), flair_spacing=(2.4, 2.4, 5.0),
                       t1_spacing: float = 2.0, ventricle_scale_mm: float = 10.0,
                       cortex_scale_mm: float = 6.0) -> dict:
    """One generated case with location-dependent lesion frequency (module docstring).

    Args:
        seed: random seed (pose, blob counts, positions, sizes, brightness, noise).
        n_wmh, n_mimics: inclusive ranges of the numbers of WMH and mimic blobs.
        radius_mm: range of the blob radii (uniform).
        flair_spacing, t1_spacing: voxel sizes (mm) of the FLAIR (x, y, z) and the isotropic T1.
        ventricle_scale_mm, cortex_scale_mm: decay lengths of :func:`location_weights`.

    Returns:
        :func:`~nnunet_ataxia.synthesis.wmh_cases.make_synthetic_case`'s dict with the blobs painted in, plus
        ``"wmh_centers_mni"`` and ``"mimic_centers_mni"`` (n, 3 LPS mm).

    Example:
        >>> case = make_location_case(seed=3)  # doctest: +SKIP
    """
    from nnunet_ataxia.preprocessing.affine_matrices import grid_points
    from nnunet_ataxia.synthesis.wmh_cases import make_synthetic_case

    case = make_synthetic_case(seed=seed, flair_spacing=flair_spacing, t1_spacing=t1_spacing, n_lesions=0)
    rng = np.random.default_rng([seed, 504])
    grid, wm, d_vent, d_cortex = _mni_maps()
    candidates = np.argwhere(wm)
    w_wmh, w_mimic = location_weights(d_vent[wm], d_cortex[wm], ventricle_scale_mm, cortex_scale_mm)
    wmh = _draw_centres(rng, int(rng.integers(n_wmh[0], n_wmh[1] + 1)), w_wmh, grid, candidates)
    mimics = _draw_centres(rng, int(rng.integers(n_mimics[0], n_mimics[1] + 1)), w_mimic, grid, candidates)

    flair_img, label_img = case["flair"], case["label"]
    mni = grid_points(flair_img, case["subject_to_mni"])
    flair = sitk.GetArrayFromImage(flair_img).astype(np.float64)
    label = sitk.GetArrayFromImage(label_img)
    brain = flair > 0
    painted = np.zeros(label.shape, bool)
    for centres, value in ((mimics, 0), (wmh, 1)):   # WMH painted last: an overlap is WMH
        for c in centres:
            blob = (((mni - c.reshape(3, 1, 1, 1)) ** 2).sum(0) <= rng.uniform(*radius_mm) ** 2) & brain
            blob &= label != 2
            flair[blob] = rng.uniform(*BLOB_FLAIR_RANGE)
            label[blob] = value
            painted |= blob
    flair[painted] += rng.normal(0, 8, int(painted.sum()))
    out_flair = sitk.GetImageFromArray(flair.astype(np.float32))
    out_flair.CopyInformation(flair_img)
    out_label = sitk.GetImageFromArray(label.astype(np.uint8))
    out_label.CopyInformation(label_img)
    return {**case, "flair": out_flair, "label": out_label, "lesion_centers_mni": wmh, "wmh_centers_mni": wmh,
            "mimic_centers_mni": mimics}


def _write_case(job: tuple) -> None:
    from nnunet_ataxia.synthesis.wmh_cases import write_plain_case

    folder, seed, flair_spacing = job
    write_plain_case(folder, make_location_case(seed, flair_spacing=flair_spacing))


def write_location_dataset(out_dir: str | Path, n_train: int, n_test: int, seed: int = 0,
                           flair_spacing=(2.4, 2.4, 5.0), num_processes: int = 1) -> Path:
    """Write ``train/<case>/{T1,FLAIR,wmh}.nii.gz`` and ``test/<case>/...`` (convert-wmh's plain layout).

    Args:
        out_dir: folder to write into (e.g. the temporary folder of an atomic output).
        n_train, n_test: numbers of cases; case ``i`` (train first) uses seed ``seed * 1000 + i``.
        seed: dataset seed.
        flair_spacing: FLAIR voxel size (x, y, z) in mm.
        num_processes: cases generated in parallel.

    Example:
        >>> write_location_dataset("wmh_demo_data", 20, 12)  # doctest: +SKIP
    """
    out = Path(out_dir)
    jobs = [(out / ("train" if i < n_train else "test") / f"gen{i:03d}", seed * 1000 + i, tuple(flair_spacing))
            for i in range(n_train + n_test)]
    from nnunet_ataxia.io.parallel import run_cases

    run_cases(_write_case, jobs, num_processes, "WMH demo cases")
    return out
