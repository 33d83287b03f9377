"""The WMH demo's generated cases put their hard negatives into the paper's balanced pool: the pool's share of hard
negatives among its normal samples is the share of hard negatives among the normal brain voxels (uniform sampling),
and that share is a few per cent (the demo cannot answer its question when the pool never shows "bright but not
WMH")."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_ataxia.demo.wmh_data import CAP_PLANE_Y_MM, hard_negative_share, make_location_case
from nnunet_ataxia.preprocessing.affine_matrices import grid_points
from nnunet_ataxia.trainers.wmh_paper_recipe import PAPER_POOL_DEMO
from nnunet_ataxia.trainers.wmh_pixel_pool import build_pixel_pool


class _Cases:
    """Stand-in for nnU-Net's dataset: (C, z, y, x) with T1, FLAIR and 8 location channels (brain = 0.5)."""

    def __init__(self, cases):
        self.cases = cases

    def load_case(self, key):
        flair, label = self.cases[key][:2]
        brain = (flair > 0).astype(np.float32)
        data = np.stack([flair, flair, *([0.5 * brain] * 8)])
        return data, label[None].astype(np.int16), None, {}


@pytest.fixture(scope="module")
def generated():
    cases = {}
    for seed in (0, 1):
        c = make_location_case(seed)
        y_ras = -grid_points(c["flair"], c["subject_to_mni"])[1]   # MNI y (anterior +) of every FLAIR voxel
        cases[f"gen{seed}"] = (*(sitk.GetArrayFromImage(c[k]) for k in ("flair", "label", "mimics")), y_ras)
    return cases


def test_pool_holds_the_hard_negatives_in_their_voxel_share(generated):
    flair = np.concatenate([c[0].ravel() for c in generated.values()])
    label = np.concatenate([c[1].ravel() for c in generated.values()])
    mimics = np.concatenate([c[2].ravel() for c in generated.values()])
    expected = hard_negative_share(label, mimics, flair > 0)
    assert 0.02 < expected < 0.06, expected     # a few per cent of the normal brain voxels are hard negatives
    assert ((mimics > 0) & (label != 0)).sum() == 0 and (flair[mimics > 0] >= 600).all()   # bright, not WMH
    for cap in (None, PAPER_POOL_DEMO.max_lesion_samples):
        pool = build_pixel_pool(_Cases(generated), list(generated), 2, [False] * 10, 0.5, seed=3,
                                max_lesion_samples=cap)
        normal = pool.label == 0
        keys = list(generated)
        hard = np.array([generated[keys[c]][2][z, y, x] > 0 for c, z, y, x in
                         zip(pool.case[normal], pool.z[normal], pool.y[normal], pool.x[normal], strict=True)])
        n = hard.size
        assert n == (pool.label > 0).sum() >= 1000
        sd = np.sqrt(expected * (1 - expected) / n)
        assert abs(hard.mean() - expected) < 4 * sd, (hard.mean(), expected, n)
        assert hard.sum() >= 25   # dozens of hard negatives per pool, not the 0-1 of uniform sampling among rare ones


def test_caps_and_wmh_differ_by_location_only(generated):
    """The same periventricular band is WMH behind the plane MNI y = 0 and a hard negative (frontal cap) in front of
    it, with the same brightness."""
    for flair, label, mimics, y in generated.values():
        caps, wmh = mimics == 1, label == 1
        assert caps.sum() > 500 and wmh.sum() > 500
        assert (y[caps] >= CAP_PLANE_Y_MM).all() and (y[wmh] < CAP_PLANE_Y_MM).mean() > 0.7
        assert abs(np.median(flair[caps]) - np.median(flair[wmh])) < 150
