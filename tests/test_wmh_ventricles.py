"""Lateral ventricles refined on the subject's own CSF intensities: constructed volumes (exact answers) and, when
../shared/real_scans is present, the real 1 mm FLAIR in FLAIR-only mode (the share of CSF-dark ventricle voxels)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nnunet_ataxia.preprocessing.wmh_ventricles import (
    csf_dark_threshold,
    refine_ventricles,
    zero_distance_csf_dark_share,
)

REAL_FLAIR = Path(__file__).resolve().parents[2] / "shared" / "real_scans" / "flair_1mm.nii.gz"
SPACING = (1.0, 1.0, 1.0)


def _box(shape, z, y, x) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[z[0]:z[1], y[0]:y[1], x[0]:x[1]] = True
    return m


def _head(seed: int = 0):
    """An elderly-looking brain: an enlarged left ventricle (the atlas covers a fifth of it, and reaches into
    tissue beside it), a normal right one, a third ventricle on the midline touching the left one, a sulcus, and a
    bright periventricular cap. Tissue ~100, CSF ~20 (noise sd 5)."""
    rng = np.random.default_rng(seed)
    shape = (30, 70, 70)
    brain = _box(shape, (1, 29), (3, 67), (3, 67))
    left = _box(shape, (6, 24), (17, 48), (40, 54))      # 18 x 31 x 14 voxels: enlarged
    right = _box(shape, (10, 20), (25, 45), (18, 24))    # normal
    third = _box(shape, (8, 22), (40, 50), (30, 38))     # midline, 2 mm of tissue from the left ventricle ...
    third |= _box(shape, (14, 16), (42, 44), (38, 40))   # ... but for a narrow opening (foramen of Monro)
    sulcus = _box(shape, (8, 22), (5, 9), (50, 60))      # CSF, but far from the ventricles
    flair = 100.0 + rng.normal(0, 5, shape)
    flair[left | right | third | sulcus] = 20.0 + rng.normal(0, 5, (left | right | third | sulcus).sum())
    cap = _box(shape, (6, 24), (12, 17), (40, 54))       # bright WMH cap in front of the left ventricle
    flair[cap] = 160.0
    flair[~brain] = 0.0
    atlas_left = _box(shape, (10, 20), (25, 40), (44, 50)) | _box(shape, (10, 20), (25, 40), (54, 57))
    atlas_right = _box(shape, (10, 20), (26, 44), (18, 23))
    third_atlas = _box(shape, (10, 20), (42, 48), (32, 36))
    return flair, brain, (left, right, third, sulcus, cap), (atlas_left, atlas_right, third_atlas)


def test_enlarged_ventricle_is_followed_and_nothing_else_is_invaded():
    flair, brain, (left, right, third, sulcus, cap), (atlas_left, atlas_right, third_atlas) = _head()
    out_left, out_right = refine_ventricles(flair, brain, atlas_left, atlas_right, SPACING, margin_mm=10.0,
                                            other_csf=third_atlas)
    # the enlarged ventricle followed (but for a few voxels at the opening that the third ventricle reaches first);
    # the atlas's voxels in tissue dropped
    assert not (out_left & ~left).any() and out_left.sum() >= 0.98 * left.sum()
    assert out_left.sum() > 4 * (atlas_left & left).sum()
    assert out_right.tolist() == right.tolist()
    for name, region in (("third ventricle", third), ("sulcus", sulcus), ("cap", cap)):
        assert not (out_left | out_right)[region].any(), name
    # without the competing third-ventricle seed the left ventricle would take the third ventricle too
    greedy_left, _ = refine_ventricles(flair, brain, atlas_left, atlas_right, SPACING, margin_mm=10.0)
    assert greedy_left[third].sum() > 100
    # the atlas alone puts most of its voxels outside the ventricle's CSF; the refined masks are all CSF-dark
    atlas_share = zero_distance_csf_dark_share(flair, brain, (~atlas_left).astype(float),
                                               (~atlas_right).astype(float))
    refined_share = zero_distance_csf_dark_share(flair, brain, (~out_left).astype(float),
                                                 (~out_right).astype(float))
    assert atlas_share["left"] < 0.8 and refined_share["both"] == 1.0


def test_growth_stops_at_the_distance_limit():
    flair, brain, (left, _, _, _, _), (atlas_left, atlas_right, third_atlas) = _head()
    out_left, _ = refine_ventricles(flair, brain, atlas_left, atlas_right, SPACING, margin_mm=3.0,
                                    other_csf=third_atlas)
    assert out_left.sum() < 0.8 * left.sum() and not (out_left & ~left).any()


def test_t1_vetoes_voxels_that_are_dark_on_flair_only():
    flair, brain, (left, right, _, _, _), (atlas_left, atlas_right, third_atlas) = _head()
    t1 = np.where(brain, 100.0, 0.0)
    t1[left | right] = 20.0
    pocket = _box(flair.shape, (8, 22), (48, 49), (42, 52))  # FLAIR-dark behind the left ventricle, T1 bright
    flair[pocket] = 20.0
    flair_only, _ = refine_ventricles(flair, brain, atlas_left, atlas_right, SPACING, 10.0, other_csf=third_atlas)
    with_t1, _ = refine_ventricles(flair, brain, atlas_left, atlas_right, SPACING, 10.0, t1=t1,
                                   other_csf=third_atlas)
    assert flair_only[pocket].all()
    assert not with_t1[pocket].any() and with_t1.sum() >= 0.98 * left.sum()


def test_no_csf_contrast_keeps_the_atlas():
    flair, brain, _, (atlas_left, atlas_right, _) = _head()
    flat = np.where(brain, 100.0, 0.0)
    out_left, out_right = refine_ventricles(flat, brain, atlas_left, atlas_right, SPACING)
    assert out_left.tolist() == atlas_left.tolist() and out_right.tolist() == atlas_right.tolist()
    assert csf_dark_threshold(flat, brain, atlas_left | atlas_right, brain) is None


def test_csf_dark_share_counts_zero_distance_brain_voxels_below_the_percentile():
    flair = np.arange(100.0).reshape(1, 10, 10)
    brain = np.ones(flair.shape, bool)
    brain[0, 9] = False  # 90 brain voxels: values 0..89, 10th percentile 8.9
    dist = np.ones(flair.shape)
    dist[0, 0, :5] = 0      # values 0..4: dark
    dist[0, 5, :5] = 0      # values 50..54: not dark
    dist[0, 9, :] = 0       # outside the brain: not counted
    share = zero_distance_csf_dark_share(flair, brain, dist, np.ones(flair.shape))
    assert share["left"] == 0.5 and share["left_voxels"] == 10 and np.isnan(share["right"])
    assert share["both"] == 0.5


@pytest.mark.slow
@pytest.mark.skipif(not REAL_FLAIR.is_file(), reason="../shared/real_scans/flair_1mm.nii.gz not present")
def test_real_flair_ventricles_are_csf_dark():
    """convert-wmh's default pipeline, FLAIR-only, on the real FLAIR: at least 85 % of the voxels that the two
    distance-to-ventricle channels put at distance 0 are CSF-dark (FLAIR below the brain's 10th percentile); the
    atlas ventricles carried over by registration alone are clearly worse."""
    from nnunet_ataxia.preprocessing.wmh_pipeline import WMHCaseFiles, WMHOptions, preprocess_case
    from nnunet_ataxia.preprocessing.wmh_ventricles import warp_atlas_ventricles

    case = WMHCaseFiles("real", str(REAL_FLAIR.parent), "plain", None, str(REAL_FLAIR))
    pre = preprocess_case(case, WMHOptions())
    f = pre.features
    share = zero_distance_csf_dark_share(pre.flair, pre.brain, f["dist_left_ventricle"], f["dist_right_ventricle"])
    assert share["both"] >= 0.85, share
    assert min(share["left"], share["right"]) >= 0.8, share
    voxel_ml = float(np.prod(pre.reference.GetSpacing())) / 1000.0
    assert 2 < share["left_voxels"] * voxel_ml < 80 and 2 < share["right_voxels"] * voxel_ml < 80
    atlas = warp_atlas_ventricles(pre.reference, pre.mni_map.to_mni())
    atlas_share = zero_distance_csf_dark_share(pre.flair, pre.brain, (~atlas[0]).astype(float),
                                               (~atlas[1]).astype(float))
    assert atlas_share["both"] < share["both"] - 0.05, (atlas_share, share)


def test_qc_picture_cuts_through_and_outlines_the_ventricles(tmp_path):
    """The QC planes pass through the ventricles (which are off the brain's centre here), the ventricle masks are the
    zero-distance brain voxels, and the title states their CSF-dark share."""
    import SimpleITK as sitk

    from nnunet_ataxia.dataset_conversion.wmh_qc import _planes, _ventricle_masks, location_qc_picture
    from nnunet_ataxia.io.constants import WMH_LOCATION_CHANNEL_NAMES as LOCATION_CHANNELS

    flair, brain, (left, right, _, _, _), _ = _head()
    left, right = left & (np.arange(30)[:, None, None] >= 20), right & False
    right[20:24, 25:45, 18:24] = True                  # both ventricles only in slices 20-23 (brain centre: 14)
    flair = np.where(left | right, 20.0, np.where(brain, 100.0, 0.0))
    dist = {name: np.where(brain, 0.5, 0.0) for name in LOCATION_CHANNELS}
    dist["dist_left_ventricle"] = np.where(left, 0.0, dist["dist_left_ventricle"])
    dist["dist_right_ventricle"] = np.where(right, 0.0, dist["dist_right_ventricle"])
    features = [dist[n] for n in LOCATION_CHANNELS]
    masks, line = _ventricle_masks(flair, features, LOCATION_CHANNELS)
    assert masks[0].tolist() == left.tolist() and masks[1].tolist() == right.tolist()
    assert "100 % / 100 %" in line
    reference = sitk.GetImageFromArray(flair.astype(np.float32))
    rows, _ = _planes([flair, *features], reference, masks)
    n = 1 + len(features)
    for r, row in enumerate(rows):                      # axial, coronal: both sides; sagittal: the left one
        assert row[n].any(), r
        assert row[n + 1].any() or r == 2, r
    png = location_qc_picture(flair, features, reference, tmp_path / "qc.png", title="t")
    assert png.stat().st_size > 10_000
