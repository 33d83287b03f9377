"""Non-linear (B-spline) MNI registration of the WMH pipeline: a known smooth deformation is recovered better than by
the affine alone; the FLAIR<->MNI map is consistent both ways; thick-slice pyramids never shrink an axis below ITK's
minimum."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_ataxia.preprocessing.deformable_registration import (
    axis_shrink_factors,
    displacement_field,
    field_jacobian_range,
    invert_displacement_field,
)
from nnunet_ataxia.preprocessing.wmh_mni_map import MNIMap
from nnunet_ataxia.preprocessing.wmh_pipeline import WMHOptions, mni_template, register_to_mni
from nnunet_ataxia.preprocessing.wmh_ventricles import warp_atlas_ventricles
from nnunet_ataxia.synthesis.wmh_cases import make_synthetic_case, smooth_deformation

# small grids and few iterations: seconds on 2 cores
FAST = WMHOptions(mni_spacing_mm=3.0, mni_iterations=100, bspline_mesh_mm=40.0, bspline_levels_mm=(6.0, 3.0),
                  bspline_iterations=15, bspline_samples=3000, warp_grid_mm=3.0)


pytestmark = pytest.mark.usefixtures("sitk_one_thread")


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / max(1.0, float(a.sum() + b.sum()))


@pytest.fixture(scope="module")
def deformed_case():
    """A FLAIR (3 mm) whose anatomy is MNI deformed by a known smooth B-spline on top of a known affine."""
    case = make_synthetic_case(seed=3, flair_spacing=(3.0, 3.0, 3.0), warp_mm=5.0)
    flair = case["flair"]
    brain = sitk.GetArrayFromImage(sitk.Resample(mni_template(3.0)[1], flair, case["flair_to_mni"],
                                                 sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)) > 0
    field = displacement_field(case["flair_to_mni"], flair)  # the true FLAIR -> MNI map, point minus point
    true_points = MNIMap(np.eye(4)).mni_points(flair) + np.moveaxis(sitk.GetArrayFromImage(field), -1, 0)
    return case, brain, true_points


def test_bspline_recovers_known_deformation_better_than_affine(deformed_case):
    case, brain, true_points = deformed_case
    flair = case["flair"]
    affine_map, kind_a = register_to_mni(flair, replace(FAST, registration="affine"))
    nonlinear_map, kind_b = register_to_mni(flair, FAST)
    assert (kind_a, kind_b) == ("affine", "bspline") and nonlinear_map.nonlinear and not affine_map.nonlinear
    np.testing.assert_allclose(nonlinear_map.affine, affine_map.affine)  # same affine underneath
    low, high = field_jacobian_range(nonlinear_map.warp, mni_template(3.0)[1])
    assert 0.3 < low <= 1.0 <= high < 3.0, (low, high)  # a smooth, invertible warp

    def error_mm(m: MNIMap) -> np.ndarray:
        return np.linalg.norm(m.mni_points(flair)[:, brain] - true_points[:, brain], axis=0)

    # the deformation is real: the true map is far from any affine the registration can find
    warp_size = np.linalg.norm(true_points[:, brain] - MNIMap(case["subject_to_mni"]).mni_points(flair)[:, brain],
                               axis=0)
    err_affine, err_bspline = error_mm(affine_map), error_mm(nonlinear_map)
    assert warp_size.mean() > 2.0, warp_size.mean()
    assert err_affine.mean() > 1.5, err_affine.mean()
    assert err_bspline.mean() < 0.6 * err_affine.mean(), (err_bspline.mean(), err_affine.mean())
    assert np.percentile(err_bspline, 95) < np.percentile(err_affine, 95)

    # label overlap: the atlas lateral ventricles carried to the FLAIR by each map vs by the true map
    true_l, true_r = warp_atlas_ventricles(flair, case["flair_to_mni"])
    dice = {}
    for name, m in (("affine", affine_map), ("bspline", nonlinear_map)):
        left, right = warp_atlas_ventricles(flair, m.to_mni())
        dice[name] = (_dice(left, true_l) + _dice(right, true_r)) / 2
    assert dice["bspline"] > dice["affine"] + 0.05, dice


def test_map_round_trip_and_save_load(tmp_path):
    template = mni_template(3.0)[0]
    from nnunet_ataxia.preprocessing.wmh_prior import mni_grid

    grid = mni_grid(template, 4.0)
    u = displacement_field(smooth_deformation(template, 4.0, seed=1), grid)
    affine = np.eye(4)
    affine[:3, 3] = (2.0, -3.0, 1.0)
    m = MNIMap(affine, u, invert_displacement_field(u))
    m.save(tmp_path)
    loaded = MNIMap.load(tmp_path)
    assert loaded.nonlinear and sorted(p.name for p in tmp_path.iterdir()) == [
        "flair_to_mni.txt", "mni_warp.nii.gz", "mni_warp_inverse.nii.gz"]
    rng = np.random.default_rng(0)
    points = rng.uniform(-50, 50, (200, 3)) + np.array([0.0, 18.0, 10.0])
    to_mni, from_mni = loaded.to_mni(), loaded.from_mni()
    back = np.array([to_mni.TransformPoint(from_mni.TransformPoint(tuple(p))) for p in points])
    assert np.abs(back - points).max() < 0.1  # FLAIR->MNI undoes MNI->FLAIR (float32 files, inverted field)
    moved = np.array([from_mni.TransformPoint(tuple(p)) for p in points])
    assert np.linalg.norm(moved - (points - affine[:3, 3]), axis=1).mean() > 1.0  # and the warp is not nothing
    # mni_points (vectorized) equals the transform point by point
    ref = sitk.Image([5, 4, 3], sitk.sitkUInt8)
    ref.SetSpacing((7.0, 9.0, 11.0))
    ref.SetOrigin((-20.0, 0.0, -5.0))
    pts = loaded.mni_points(ref)
    assert np.allclose(pts[:, 2, 3, 4], to_mni.TransformPoint(ref.TransformIndexToPhysicalPoint((4, 3, 2))),
                       atol=1e-4)
    (tmp_path / "mni_warp_inverse.nii.gz").unlink()  # one field alone: treated as affine-only
    assert not MNIMap.load(tmp_path).nonlinear


def test_axis_shrink_factors_keep_four_voxels():
    assert axis_shrink_factors((256, 256, 16), 8) == [8, 8, 4]
    assert axis_shrink_factors((167, 206, 16), 2) == [2, 2, 2]
    assert axis_shrink_factors((60, 60, 7), 4) == [4, 4, 1]
    for size in ((16, 300, 5), (4, 4, 4), (512, 33, 12)):
        for f in (1, 2, 3, 8, 16):
            factors = axis_shrink_factors(size, f)
            assert all(n // s >= 4 or s == 1 for n, s in zip(size, factors, strict=False)) and max(factors) <= f


def test_thick_slice_flair_registers_to_mni():
    """16 slices of 8 mm: the exhaustive initialization shrank them to 2 slices and ITK refused."""
    from nnunet_ataxia.preprocessing.affine_matrices import matrix_from_transform, transform_from_matrix
    from nnunet_ataxia.preprocessing.registration import affine_register_to_mni

    case = make_synthetic_case(seed=4, flair_spacing=(2.0, 2.0, 8.0), flair_extent_mm=(150.0, 185.0, 128.0))
    flair = case["flair"]
    assert flair.GetSize()[2] == 16
    template, mask = mni_template(1.5)  # coarse template, but the 8 mm search shrink (5) would leave 3 slices
    found = affine_register_to_mni(flair, template=template, template_mask=mask, iterations=30,
                                   shrink_factors=(8,), smoothing_sigmas_mm=(4.0,))
    brain = sitk.GetArrayFromImage(sitk.Resample(mask, flair, transform_from_matrix(case["subject_to_mni"]),
                                                 sitk.sitkNearestNeighbor)) > 0
    pts = MNIMap(np.eye(4)).mni_points(flair)[:, brain][:, ::97]
    hom = np.vstack([pts, np.ones(pts.shape[1])])
    err = np.linalg.norm((np.linalg.inv(matrix_from_transform(found)) @ hom - case["subject_to_mni"] @ hom)[:3], axis=0)
    assert np.median(err) < 6.0, np.median(err)  # one coarse level only: a few mm, not a failure
