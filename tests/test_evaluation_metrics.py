"""Metrics on hand-built masks whose values are known in closed form."""
import math

import numpy as np
import pytest

from nnunet_ataxia.evaluation import metrics as M


def two_cubes(n=10, shift=3, shape=(20, 20, 30), axis=2):
    """Cube A = [2, 2+n)^3, cube B = A shifted by `shift` voxels along `axis`."""
    a = np.zeros(shape, bool)
    b = np.zeros(shape, bool)
    a[2:2 + n, 2:2 + n, 2:2 + n] = True
    sl = [slice(2, 2 + n)] * 3
    sl[axis] = slice(2 + shift, 2 + n + shift)
    b[tuple(sl)] = True
    return a, b


def test_two_cubes_closed_form():
    n, s = 10, 3
    a, b = two_cubes(n, s)
    total = a.size
    tp = n * n * (n - s)
    fp = fn = n * n * s
    tn = total - tp - fp - fn
    assert M.confusion_counts(a, b) == (tp, fp, fn, tn)
    assert M.dice(a, b) == pytest.approx((n - s) / n)  # 2*700/(2*1000) = 0.7
    assert M.jaccard(a, b) == pytest.approx((n - s) / (n + s))  # 700/1300
    assert M.sensitivity(a, b) == pytest.approx((n - s) / n)
    assert M.specificity(a, b) == pytest.approx(tn / (tn + fp))
    # every surface distance is <= s voxels and a whole face (>5 % of the surface) is exactly s away
    assert M.hausdorff_distance_95(a, b, (1.0, 1.0, 1.0)) == pytest.approx(3.0)
    # anisotropic spacing: the shift is along the last axis (x) with 2.5 mm voxels
    assert M.hausdorff_distance_95(a, b, (0.7, 1.1, 2.5)) == pytest.approx(7.5)
    assert M.hausdorff_distance_95(a, b, (1.0, 1.0, 1.0), percentile=100) == pytest.approx(3.0)


def test_hd95_thin_planes_and_empty():
    a = np.zeros((12, 12, 12), bool)
    b = a.copy()
    a[2:8, 2:8, 3] = True
    b[2:8, 2:8, 7] = True  # 4 voxels apart along x
    assert M.hausdorff_distance_95(a, b, (2.0, 2.0, 0.5)) == pytest.approx(2.0)
    assert math.isnan(M.hausdorff_distance_95(a, np.zeros_like(a), (1, 1, 1)))


def test_soft_dice_and_soft_jaccard_known_map():
    g = np.zeros((4, 4))
    g[:2] = 1  # 8 foreground voxels
    p = np.full((4, 4), 0.5)  # sum p g = 4, sum p^2 = 4, sum g^2 = 8, sum p = 8
    assert M.soft_dice(g, p) == pytest.approx(2 * 4 / (4 + 8))
    assert M.soft_jaccard(g, p) == pytest.approx(4 / (8 + 8 - 4))
    assert M.soft_dice(g, g) == pytest.approx(1.0)  # soft Dice of binary maps equals hard Dice
    pb = (np.arange(16).reshape(4, 4) % 3 == 0).astype(float)
    assert M.soft_dice(g, pb) == pytest.approx(M.dice(g, pb))


def test_volume_honours_anisotropic_spacing():
    m = np.zeros((5, 6, 7), bool)
    m[1:3, 1:4, 1:5] = True  # 24 voxels
    assert M.volume_mm3(m, (5.0, 1.0, 1.2)) == pytest.approx(24 * 6.0)
    assert M.relative_volume_difference(100.0, 90.0) == pytest.approx(-10.0)
    assert M.absolute_volume_difference(100.0, 90.0) == pytest.approx(10.0)
    assert M.wmh_absolute_volume_difference(100.0, 90.0) == pytest.approx(10.0)


def test_ignore_label_and_brain_mask_are_left_out():
    ref = np.zeros((10, 10), np.uint8)
    pred = np.zeros((10, 10), np.uint8)
    ref[0:4, 0:4] = 1   # 16 true voxels
    pred[0:4, 0:4] = 1
    ref[6:8, 6:8] = 2   # ignore region, predicted as foreground: must not count as FP
    pred[6:8, 6:8] = 1
    pred[9, 0:5] = 1    # false positives outside the brain mask: must not count
    brain = np.ones((10, 10), bool)
    brain[9] = False
    valid = M.valid_voxels(ref, brain, ignore_label=2)
    assert valid.sum() == 100 - 4 - 10
    m = M.structure_metrics(ref == 1, pred == 1, (1.0, 2.0), valid=valid, compute_hd95=True)
    assert (m["TP"], m["FP"], m["FN"], m["TN"]) == (16, 0, 0, 70)
    assert m["Dice"] == 1.0 and m["Specificity"] == 1.0
    assert m["volume_pred_mm3"] == pytest.approx(32.0)
    assert m["HD95_mm"] == 0.0
    # without the mask the same prediction has 4 + 5 false positives
    m2 = M.structure_metrics(ref == 1, pred == 1, (1.0, 2.0))
    assert m2["FP"] == 9
    # a valid-voxel mask of another shape is refused, never broadcast (a (1, 10) mask would broadcast over rows)
    with pytest.raises(ValueError, match="valid-voxel mask shape"):
        M.confusion_counts(ref == 1, pred == 1, valid[:1])


def test_lesion_wise_metrics_on_constructed_components():
    ref = np.zeros((20, 20, 20), bool)
    pred = np.zeros_like(ref)
    # three reference lesions; the first two are hit, the third missed
    ref[2:4, 2:4, 2:4] = True
    ref[10:13, 10:13, 10:13] = True
    ref[16:18, 2:4, 2:4] = True
    pred[3:5, 3:5, 3:5] = True          # touches lesion 1
    pred[12, 12, 12] = True             # inside lesion 2
    pred[13, 13, 13] = True             # diagonal neighbour of the voxel above: same component (26-conn.)
    pred[2:4, 15:18, 15:18] = True      # false positive lesion
    pred[18, 18, 18] = True             # another false positive lesion
    r = M.lesion_detection(ref, pred)
    assert r["n_reference_lesions"] == 3 and r["n_predicted_lesions"] == 4
    assert r["lesion_recall"] == pytest.approx(2 / 3)
    assert r["lesion_precision"] == pytest.approx(2 / 4)
    assert r["lesion_f1"] == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    # a brain mask that removes the missed lesion and one false positive changes the counts accordingly
    valid = np.ones_like(ref)
    valid[16:, :, :] = False
    r2 = M.lesion_detection(ref, pred, valid)
    assert r2["n_reference_lesions"] == 2 and r2["lesion_recall"] == 1.0
    assert r2["n_predicted_lesions"] == 3
    m = M.structure_metrics(ref, pred, (1, 1, 1), compute_hd95=False, lesion_metrics=True)
    v_ref, v_pred = ref.sum(), pred.sum()
    assert m["AVD_pct"] == pytest.approx(abs(v_pred - v_ref) / v_ref * 100)
