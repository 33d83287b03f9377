"""Location features (Ghafoorian et al.) on constructed arrays: exact values at known points."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_ataxia.preprocessing.affine_matrices import grid_points, matrix_from_transform, transform_from_matrix
from nnunet_ataxia.preprocessing.wmh_location_features import (
    compute_location_features,
    distance_to_boundary_mm,
    inplane_distance_mm,
    midline_mask,
    normalize_features,
    slice_axis_for_spacing,
)
from nnunet_ataxia.preprocessing.wmh_prior import build_wmh_prior, prior_cases_for_fold, sample_prior, warp_wmh_to_mni
from nnunet_ataxia.preprocessing.wmh_ventricles import refine_ventricles

SPACING = (5.0, 1.0, 1.2)  # (z, y, x) of a RUN DMC FLAIR: 1.2 x 1.0 x 5.0 mm


def test_slice_axis_is_the_thick_axis():
    assert slice_axis_for_spacing(SPACING) == 0
    assert slice_axis_for_spacing((1.0, 1.0, 3.0)) == 2
    assert slice_axis_for_spacing((1.0, 1.0, 1.0)) == 0


def test_midsagittal_distance_zero_on_midline_and_grows_by_spacing():
    shape = (12, 20, 31)
    x_index = np.arange(shape[2])
    x_mni = np.broadcast_to((x_index - 15) * 1.2, shape).astype(float) + 0.1  # plane between voxel 15 and 14
    mid = midline_mask(x_mni, SPACING)
    assert mid[:, :, 15].all() and mid.sum() == shape[0] * shape[1]
    dist = inplane_distance_mm(mid, SPACING)
    expected = np.abs(x_index - 15) * 1.2
    np.testing.assert_allclose(dist[3, 7], expected, atol=1e-5)
    # normalized: 0 on the midline, linear in the voxel distance, 1 at the farthest brain voxel
    brain = np.ones(shape, bool)
    norm = normalize_features({"dist_midsagittal": dist}, brain)["dist_midsagittal"]
    np.testing.assert_allclose(norm[5, 2], expected / expected.max(), atol=1e-6)


def test_inplane_distance_ignores_other_slices_and_uses_inplane_spacing():
    target = np.zeros((3, 9, 9), bool)
    target[1, 4, 4] = True  # a one-voxel "ventricle" in the middle slice only
    dist = inplane_distance_mm(target, SPACING)
    assert dist[1, 4, 4] == 0
    assert dist[1, 4, 7] == pytest.approx(3 * 1.2)
    assert dist[1, 1, 4] == pytest.approx(3 * 1.0)
    assert dist[1, 7, 8] == pytest.approx(np.hypot(3 * 1.0, 4 * 1.2))
    # slices without the structure fall back to the 3D distance (the 5 mm slice gap counts)
    assert dist[0, 4, 4] == pytest.approx(5.0)
    assert dist[2, 4, 6] == pytest.approx(np.hypot(5.0, 2 * 1.2))
    with pytest.raises(ValueError):
        inplane_distance_mm(np.zeros((2, 2, 2), bool), SPACING)


def test_cortex_distance_is_inplane_distance_to_mask_boundary():
    brain = np.zeros((2, 11, 13), bool)
    brain[:, 1:10, 1:12] = True
    dist = distance_to_boundary_mm(brain, SPACING)
    assert dist[0, 5, 1] == pytest.approx(1.2)   # boundary voxel: one in-plane step (x) from outside
    assert dist[0, 1, 6] == pytest.approx(1.0)   # one step (y)
    assert dist[1, 5, 6] == pytest.approx(5.0)   # centre: 5 voxels of 1 mm in y vs 6 of 1.2 mm in x
    assert (dist[~brain] == 0).all() and (dist[brain] > 0).all()


def test_features_normalized_to_unit_range_zero_outside_and_define_the_brain_mask():
    shape = (4, 16, 18)
    brain = np.zeros(shape, bool)
    brain[:, 2:14, 2:16] = True
    mni = np.stack([np.broadcast_to((np.arange(shape[2]) - 8.5) * 1.2, shape),
                    np.broadcast_to((np.arange(shape[1]) * 1.0)[:, None], shape),
                    np.broadcast_to((np.arange(shape[0]) * 5.0)[:, None, None], shape)])
    left = np.zeros(shape, bool)
    left[:, 7:9, 5:7] = True
    right = np.zeros(shape, bool)
    right[:, 7:9, 11:13] = True
    prior = np.zeros(shape)
    prior[:, 8, 9] = 0.25
    raw = compute_location_features(mni, brain, left, right, prior, SPACING)
    assert list(raw) == ["x_mni", "y_mni", "z_mni", "dist_left_ventricle", "dist_right_ventricle", "dist_cortex",
                         "dist_midsagittal", "wmh_prior"]
    assert (raw["dist_left_ventricle"][left] == 0).all() and (raw["dist_right_ventricle"][right] == 0).all()
    assert raw["dist_left_ventricle"][0, 7, 8] == pytest.approx(2 * 1.2)
    norm = normalize_features(raw, brain)
    for name, values in norm.items():
        assert values.dtype == np.float32
        assert values[brain].min() >= 0 and values[brain].max() == pytest.approx(1.0), name
        assert (values[~brain] == 0).all(), name
    assert (np.stack(list(norm.values())) > 0).any(axis=0).tolist() == brain.tolist()
    # coordinates: min-max over the brain; x of the first brain column is 0, the last 1
    assert norm["x_mni"][0, 5, 2] == 0 and norm["x_mni"][0, 5, 15] == pytest.approx(1.0)
    assert norm["dist_left_ventricle"][2, 7, 5] == 0  # 0 inside the ventricle also after normalization
    assert norm["wmh_prior"][1, 8, 9] == pytest.approx(1.0)


def test_refined_ventricles_keep_dark_voxels_near_the_atlas_only():
    shape = (3, 30, 40)
    flair = np.full(shape, 500.0)
    brain = np.zeros(shape, bool)
    brain[:, 2:28, 2:38] = True
    true_left = np.zeros(shape, bool)
    true_left[:, 12:18, 12:17] = True
    true_right = np.zeros(shape, bool)
    true_right[:, 12:18, 23:28] = True
    flair[true_left | true_right] = 100.0
    flair[:, 3:5, 3:5] = 100.0  # a dark spot far from the ventricles (e.g. a sulcus)
    atlas_left = np.zeros(shape, bool)
    atlas_left[:, 13:18, 13:16] = True  # atlas slightly too small / shifted
    atlas_right = np.zeros(shape, bool)
    atlas_right[:, 12:17, 24:27] = True
    left, right = refine_ventricles(flair, brain, atlas_left, atlas_right, SPACING, margin_mm=4.0)
    assert left.tolist() == true_left.tolist()
    assert right.tolist() == true_right.tolist()


def test_affine_matrix_round_trip_and_composition():
    euler = sitk.Euler3DTransform((1.0, 2.0, 3.0), 0.1, -0.2, 0.05, (4.0, -5.0, 6.0))
    m = matrix_from_transform(euler)
    p = np.array([10.0, -20.0, 30.0])
    np.testing.assert_allclose(m[:3, :3] @ p + m[:3, 3], euler.TransformPoint(p.tolist()), atol=1e-9)
    back = transform_from_matrix(m)
    np.testing.assert_allclose(back.TransformPoint(p.tolist()), euler.TransformPoint(p.tolist()), atol=1e-9)
    scale = sitk.ScaleTransform(3, (2.0, 2.0, 2.0))
    composite = sitk.CompositeTransform([euler, scale])  # scale applied first
    np.testing.assert_allclose(matrix_from_transform(composite), m @ matrix_from_transform(scale), atol=1e-9)
    with pytest.raises(ValueError):
        matrix_from_transform(sitk.DisplacementFieldTransform(_bumpy_field()))


def _bumpy_field() -> sitk.Image:
    arr = np.zeros((60, 60, 60, 3))
    arr[30:, :, :, 0] = 5.0
    img = sitk.GetImageFromArray(arr, isVector=True)
    img.SetOrigin((-100.0, -100.0, -100.0))
    img.SetSpacing((4.0, 4.0, 4.0))
    return img


def _image(shape_zyx, spacing_xyz=(1.2, 1.0, 5.0)) -> sitk.Image:
    img = sitk.Image([int(s) for s in reversed(shape_zyx)], sitk.sitkUInt8)
    img.SetSpacing(spacing_xyz)
    return img


def test_prior_is_the_mean_of_the_training_maps_and_samples_back():
    ref = _image((4, 10, 10), (2.0, 2.0, 2.0))
    grid = _image((4, 10, 10), (2.0, 2.0, 2.0))
    grid = sitk.Cast(grid, sitk.sitkFloat32)
    identity = np.eye(4)
    labels = []
    for fill in ((slice(None), slice(2, 5), slice(2, 5)), (slice(None), slice(2, 5), slice(6, 9))):
        arr = np.zeros((4, 10, 10), np.uint8)
        arr[fill] = 1
        arr[0, 0, 0] = 2  # ignore label: not WMH
        lab = sitk.GetImageFromArray(arr)
        lab.CopyInformation(ref)
        labels.append(lab)
    warped = [warp_wmh_to_mni(lab, identity, grid) for lab in labels]
    prior = build_wmh_prior(warped, grid, sigma_mm=0.0)
    arr = sitk.GetArrayFromImage(prior)
    assert arr[1, 3, 3] == pytest.approx(0.5) and arr[1, 3, 7] == pytest.approx(0.5)
    assert arr[1, 7, 7] == 0 and arr[0, 0, 0] == 0
    # sampled on a case shifted by one voxel (2 mm) in x: the case's voxel i sits at MNI voxel i + 1
    shift = np.eye(4)
    shift[0, 3] = 2.0
    sampled = sample_prior(prior, ref, shift)
    assert sampled[1, 3, 2] == pytest.approx(0.5) and sampled[1, 3, 4] == 0
    with pytest.raises(ValueError):
        build_wmh_prior([], grid)


def test_prior_fold_excludes_that_folds_validation_cases():
    ids = [f"case{i:02d}" for i in range(10)]
    all_ids, no_splits = prior_cases_for_fold(ids, None)
    assert all_ids == ids and no_splits is None
    for fold in range(5):
        used, splits = prior_cases_for_fold(ids, fold)
        assert set(used) == set(splits[fold]["train"])
        assert not set(used) & set(splits[fold]["val"]) and len(splits[fold]["val"]) == 2
    with pytest.raises(ValueError):
        prior_cases_for_fold(ids[:3], 0)


def test_grid_points_match_sitk():
    img = _image((3, 4, 5))
    img.SetOrigin((10.0, -3.0, 7.0))
    pts = grid_points(img)
    np.testing.assert_allclose(pts[:, 2, 3, 4], img.TransformIndexToPhysicalPoint((4, 3, 2)))
