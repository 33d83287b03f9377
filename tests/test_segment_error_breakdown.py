"""The held-out error breakdown (``benchmarks/segment_error_breakdown.py``): its error locations and its round-trip
ceiling on constructed masks."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk


@pytest.fixture(scope="module")
def breakdown(load_benchmark):
    return load_benchmark("segment_error_breakdown.py")


def _ball(shape, centre, radius):
    z, y, x = np.indices(shape)
    return (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 <= radius ** 2


def test_errors_are_sorted_by_where_they_lie(breakdown):
    shape = (40, 40, 40)
    truth = np.zeros(shape, np.uint8)
    truth[_ball(shape, (20, 20, 20), 12)] = 1
    truth[(np.indices(shape)[0] == 20) & _ball(shape, (20, 20, 20), 10)
          & ~_ball(shape, (20, 20, 20), 5)] = 0  # a one-voxel fissure inside the outline
    truth[30:36, 18:22, 18:22] = 2  # brainstem below
    n = int((truth == 1).sum())
    pred = truth.copy()
    fissure = (truth == 0) & _ball(shape, (20, 20, 20), 10)
    pred[fissure] = 1  # the fissure filled: false positives inside the outline
    shell = _ball(shape, (20, 20, 20), 14) & ~_ball(shape, (20, 20, 20), 13) & (truth == 0)
    pred[shell] = 1  # a detached layer beyond the outline
    errors = breakdown.cerebellum_errors(truth, pred)
    assert errors["fp_fissures_pct"] == pytest.approx(100 * fissure.sum() / n)
    assert errors["fp_outside_pct"] + errors["fp_brainstem_pct"] == pytest.approx(100 * shell.sum() / n)
    assert errors["fn_surface_pct"] == errors["fn_deep_pct"] == errors["fn_as_brainstem_pct"] == 0

    pred = truth.copy()
    outer = (truth == 1) & ~_ball(shape, (20, 20, 20), 11)
    pred[outer] = 0  # the outermost layer missed
    core = _ball(shape, (20, 20, 20), 2)
    pred[core] = 0  # and a hole deep inside
    errors = breakdown.cerebellum_errors(truth, pred)
    assert errors["fn_surface_pct"] == pytest.approx(100 * outer.sum() / n)
    assert errors["fn_deep_pct"] == pytest.approx(100 * core.sum() / n)
    assert errors["fp_fissures_pct"] == errors["fp_outside_pct"] == 0


def test_round_trip_through_an_identity_transform_keeps_the_labels(breakdown):
    shape = (30, 32, 34)
    labels = np.zeros(shape, np.uint8)
    labels[_ball(shape, (15, 16, 17), 9)] = 1
    labels[20:27, 14:18, 15:19] = 2
    truth = sitk.GetImageFromArray(labels)
    truth.SetSpacing((1.0, 1.0, 1.0))
    crop = sitk.Image(40, 40, 40, sitk.sitkUInt8)
    crop.SetOrigin((-3.0, -4.0, -2.0))  # a larger 1 mm grid around the subject
    back = breakdown.round_trip(truth, crop, sitk.Transform(3, sitk.sitkIdentity), 3)
    np.testing.assert_array_equal(back, labels)
