"""Generated WMH cases in which whether a bright spot is WMH depends on where it is (the WMH demo's data).

Each case is :func:`nnunet_ataxia.synthesis.wmh_cases.make_synthetic_case` (MNI152 anatomy, T1 at 2 mm, a random pose,
one "other pathology" blob = ignore label 2) without its own lesions, with the FLAIR at the paper's in-plane
resolution (1 x 1 mm, 5 mm slices) on a 30 mm slab through the lateral ventricles, so that the networks' 32-pixel
window spans 32 mm. Bright FLAIR structures, all of one appearance (each structure a value in
:data:`BRIGHT_FLAIR_RANGE`, the same noise), are painted in:

* **WMH** (label 1): the periventricular band (white matter within 3-5 mm of the lateral ventricles) *behind* the
  plane MNI y = :data:`CAP_PLANE_Y_MM` (along the ventricle bodies and the atria), and a few deep-WMH blobs
  placed with probability proportional to ``exp(-distance to the ventricles / 10 mm)``;
* **hard negatives** (label 0; their kinds in ``mimics.nii.gz``: 1 frontal caps, 2 septum, 3 juxtacortical spots):
  the periventricular band *in front of* that plane (frontal caps, 5-10 mm: normal periventricular signal), a
  bright septum pellucidum (the midline between the frontal horns), and juxtacortical spots placed with probability
  proportional to ``exp(-distance to the cortex / 4 mm)``.

The location rule (caps in front, WMH behind) is invisible to a 32-mm window: both sides show a bright rim along a
dark ventricle. The hard negatives are a few per cent of the brain's voxels, so that the paper's balanced pool, whose
normal samples are drawn uniformly from all normal brain voxels, holds that share of them
(:func:`hard_negative_share`).
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

__all__ = ["BRIGHT_FLAIR_RANGE", "CAP_PLANE_Y_MM", "MIMIC_KINDS", "FLAIR_SPACING", "SLAB_EXTENT_MM",
           "make_location_case", "hard_negative_share", "write_location_dataset"]

#: FLAIR contrast of the template (synthetic._flair_contrast): white matter ~420, grey matter ~600, CSF ~110
BRIGHT_FLAIR_RANGE = (620.0, 900.0)
WHITE_MATTER_T1 = 6500.0
#: MNI (RAS) y of the plane that separates frontal caps (in front, normal) from periventricular WMH (behind)
CAP_PLANE_Y_MM = 0.0
MIMIC_KINDS = {1: "frontal cap / rim", 2: "septum pellucidum", 3: "juxtacortical spot"}
FLAIR_SPACING = (1.0, 1.0, 5.0)           # x, y, z (mm): the paper's ~1 mm pixels, RUN DMC-like slices
SLAB_EXTENT_MM = (150.0, 185.0, 30.0)     # x, y, z field of view of the FLAIR: 6 slices through the ventricles


@functools.lru_cache(maxsize=1)
def _mni_maps() -> dict[str, sitk.Image]:
    """1 mm MNI maps: white matter, distance (mm) to the left / right lateral ventricle and to the brain outline."""
    from nnunet_ataxia.io.templates import desikan_killiany_atlas
    from nnunet_ataxia.preprocessing.wmh_pipeline import mni_template
    from nnunet_ataxia.preprocessing.wmh_ventricles import LEFT_LATERAL_VENTRICLE, RIGHT_LATERAL_VENTRICLE

    template, brain_img = mni_template(1.0)
    atlas = sitk.GetArrayFromImage(sitk.Resample(desikan_killiany_atlas(), template, sitk.Transform(),
                                                 sitk.sitkNearestNeighbor, 0))
    brain = sitk.GetArrayFromImage(brain_img) > 0
    spacing = list(reversed(template.GetSpacing()))
    arrays = {"wm": ((sitk.GetArrayFromImage(template) > WHITE_MATTER_T1) & brain).astype(np.float32),
              "d_left": ndimage.distance_transform_edt(atlas != LEFT_LATERAL_VENTRICLE, sampling=spacing),
              "d_right": ndimage.distance_transform_edt(atlas != RIGHT_LATERAL_VENTRICLE, sampling=spacing),
              "d_cortex": ndimage.distance_transform_edt(brain, sampling=spacing)}
    maps = {}
    for name, arr in arrays.items():
        img = sitk.GetImageFromArray(arr.astype(np.float32))
        img.CopyInformation(template)
        maps[name] = img
    return maps


def _on_flair(case: dict) -> dict[str, np.ndarray]:
    """The MNI maps carried onto the case's FLAIR grid, and the MNI (RAS) x and y of every FLAIR voxel."""
    from nnunet_ataxia.preprocessing.affine_matrices import grid_points

    flair = case["flair"]
    out = {name: sitk.GetArrayFromImage(sitk.Resample(img, flair, case["flair_to_mni"], sitk.sitkLinear, 1e3,
                                                      sitk.sitkFloat32))
           for name, img in _mni_maps().items()}
    out["wm"] = out["wm"] >= 0.5
    mni = grid_points(flair, case["subject_to_mni"])
    out["x"], out["y"] = -mni[0], -mni[1]  # LPS -> RAS
    return out


def _blobs(rng: np.random.Generator, n: int, weights: np.ndarray, candidates: np.ndarray, mni_xyz: np.ndarray,
           radius_mm: tuple[float, float]) -> np.ndarray:
    """Union of ``n`` spheres centred on candidate voxels drawn with probability ∝ ``weights`` (distances in MNI)."""
    out = np.zeros(mni_xyz.shape[1:], bool)
    if n == 0 or candidates.size == 0 or weights.sum() <= 0:
        return out
    picks = candidates[rng.choice(len(candidates), size=min(n, len(candidates)), replace=False,
                                  p=weights / weights.sum())]
    for q in picks:
        centre = mni_xyz[(slice(None), *q)].reshape(3, 1, 1, 1)
        out |= ((mni_xyz - centre) ** 2).sum(0) <= rng.uniform(*radius_mm) ** 2
    return out


def make_location_case(seed: int = 0, flair_spacing=FLAIR_SPACING, flair_extent_mm=SLAB_EXTENT_MM,
                       band_mm: tuple[float, float] = (3.0, 5.0), cap_mm: tuple[float, float] = (5.0, 10.0),
                       n_deep_wmh: tuple[int, int] = (3, 6), n_juxtacortical: tuple[int, int] = (8, 14),
                       radius_mm: tuple[float, float] = (2.5, 4.5)
                       ) -> dict:
    """One generated case with the location rule of the module docstring.

    Args:
        seed: random seed (pose, band width, blob counts and positions, brightness, noise).
        flair_spacing, flair_extent_mm: FLAIR voxel size and field of view (x, y, z; mm).
        band_mm, cap_mm: ranges of the width of the periventricular band behind and in front of the plane
            (uniform, one value each per case; frontal caps are thicker than the rims along the bodies).
        n_deep_wmh, n_juxtacortical: inclusive ranges of the numbers of deep-WMH and juxtacortical blobs.
        radius_mm: range of the blob radii.

    Returns:
        :func:`~nnunet_ataxia.synthesis.wmh_cases.make_synthetic_case`'s dict with the structures painted in, plus
        ``"mimics"`` (uint8 image on the FLAIR grid: :data:`MIMIC_KINDS`, 0 elsewhere).

    Example:
        >>> case = make_location_case(seed=3)  # doctest: +SKIP
    """
    from nnunet_ataxia.preprocessing.affine_matrices import grid_points
    from nnunet_ataxia.synthesis.wmh_cases import make_synthetic_case

    case = make_synthetic_case(seed=seed, flair_spacing=flair_spacing, n_lesions=0, flair_extent_mm=flair_extent_mm)
    rng = np.random.default_rng([seed, 504])
    m = _on_flair(case)
    flair = sitk.GetArrayFromImage(case["flair"]).astype(np.float64)
    label = sitk.GetArrayFromImage(case["label"])
    brain, free = flair > 0, label != 2
    d_vent = np.minimum(m["d_left"], m["d_right"])
    front = m["y"] >= CAP_PLANE_Y_MM
    band = m["wm"] & free & (d_vent <= np.where(front, rng.uniform(*cap_mm), rng.uniform(*band_mm)))
    mni_xyz = grid_points(case["flair"], case["subject_to_mni"])
    wm = np.argwhere(m["wm"] & free)
    mimics = np.zeros(label.shape, np.uint8)
    mimics[band & front] = 1
    mimics[(np.abs(m["x"]) <= 1.0) & (m["d_left"] <= 8.0) & (m["d_right"] <= 8.0) & (m["d_left"] > 0)
           & (m["d_right"] > 0) & brain & free] = 2
    juxta = _blobs(rng, int(rng.integers(n_juxtacortical[0], n_juxtacortical[1] + 1)),
                   np.exp(-m["d_cortex"][tuple(wm.T)] / 4.0), wm, mni_xyz, radius_mm)
    mimics[juxta & brain & free & (mimics == 0)] = 3
    wmh = band & ~front
    wmh |= _blobs(rng, int(rng.integers(n_deep_wmh[0], n_deep_wmh[1] + 1)), np.exp(-d_vent[tuple(wm.T)] / 10.0),
                  wm, mni_xyz, radius_mm) & brain & free
    mimics[wmh] = 0                                   # an overlap is WMH
    for kind in (1, 2, 3):
        flair[mimics == kind] = rng.uniform(*BRIGHT_FLAIR_RANGE)
    flair[wmh] = rng.uniform(*BRIGHT_FLAIR_RANGE)
    label[wmh] = 1
    label[mimics > 0] = 0
    painted = wmh | (mimics > 0)
    flair[painted] += rng.normal(0, 8, int(painted.sum()))
    images = {}
    for key, arr, kind in (("flair", flair, np.float32), ("label", label, np.uint8), ("mimics", mimics, np.uint8)):
        img = sitk.GetImageFromArray(arr.astype(kind))
        img.CopyInformation(case["flair"])
        images[key] = img
    return {**case, **images}


def hard_negative_share(label: np.ndarray, mimics: np.ndarray, brain: np.ndarray) -> float:
    """Share of hard negatives among the normal brain voxels: the expected share of hard negatives among the
    normal samples of the paper's pool, which draws them uniformly from the normal brain voxels.

    Example:
        >>> lab = np.zeros(10, np.uint8); lab[0] = 1; mim = np.zeros(10, np.uint8); mim[1:3] = 1
        >>> hard_negative_share(lab, mim, np.ones(10, bool))
        0.2222222222222222
    """
    normal = np.asarray(brain, bool) & (np.asarray(label) == 0)
    return float((np.asarray(mimics)[normal] > 0).sum() / max(int(normal.sum()), 1))


def _write_case(job: tuple) -> None:
    from nnunet_ataxia.synthesis.wmh_cases import write_plain_case

    folder, seed = job
    case = make_location_case(seed)
    write_plain_case(folder, case)
    sitk.WriteImage(case["mimics"], str(Path(folder) / "mimics.nii.gz"), useCompression=True)


def write_location_dataset(out_dir: str | Path, n_train: int, n_test: int, seed: int = 0,
                           num_processes: int = 1) -> Path:
    """Write ``train/<case>/{T1,FLAIR,wmh,mimics}.nii.gz`` and ``test/<case>/...`` (convert-wmh's plain layout;
    ``mimics.nii.gz``, the hard negatives' kinds, is ignored by convert-wmh).

    Args:
        out_dir: folder to write into (e.g. the temporary folder of an atomic output).
        n_train, n_test: numbers of cases; case ``i`` (train first) uses seed ``seed * 1000 + i``.
        seed: dataset seed.
        num_processes: cases generated in parallel.

    Example:
        >>> write_location_dataset("wmh_demo_data", 10, 4)  # doctest: +SKIP
    """
    out = Path(out_dir)
    jobs = [(out / ("train" if i < n_train else "test") / f"gen{i:03d}", seed * 1000 + i)
            for i in range(n_train + n_test)]
    from nnunet_ataxia.io.parallel import run_cases

    run_cases(_write_case, jobs, num_processes, "WMH demo cases")
    return out
