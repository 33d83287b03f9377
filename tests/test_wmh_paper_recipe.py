"""Paper-recipe WMH trainers, unit level: the balanced pool, patch reading, intensity scaling, no augmentation,
model selection by validation AUC, alpha bookkeeping, trainer look-up."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from batchgeneratorsv2.transforms.spatial.mirroring import MirrorTransform
from batchgeneratorsv2.transforms.spatial.spatial import SpatialTransform
from batchgeneratorsv2.transforms.utils.compose import ComposeTransforms
from batchgeneratorsv2.transforms.utils.random import RandomTransform
from batchgeneratorsv2.transforms.utils.remove_label import RemoveLabelTansform

from nnunet_ataxia.architectures.wmh_patches import SCALE_FACTORS, extract_multiscale_patches
from nnunet_ataxia.errors import InputError
from nnunet_ataxia.trainers import trainer_names, wmh_paper_recipe, wmh_trainers
from nnunet_ataxia.trainers.schedules import is_new_best
from nnunet_ataxia.trainers.wmh_paper_recipe import WMHPaperRecipeTrainer, validation_auc
from nnunet_ataxia.trainers.wmh_pixel_pool import (
    PatchReader,
    PoolBatches,
    build_pixel_pool,
    scale_case_images,
)

SHAPE = (3, 20, 26)


class FakeDataset:
    """nnU-Net dataset stand-in: ``load_case`` -> (data, seg, None, {})."""

    def __init__(self, cases: dict):
        self.cases = cases

    def load_case(self, identifier):
        data, seg = self.cases[identifier]
        return data, seg, None, {}


def fake_case(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A preprocessed-looking case: z-scored T1/FLAIR, 8 location channels > 0 in the brain, seg -1 outside."""
    z, y, x = np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij")
    brain = ((y - 9.5) / 9) ** 2 + ((x - 12.5) / 11) ** 2 <= 1
    data = np.zeros((10, *SHAPE), np.float32)
    data[:2] = rng.normal(0, 1, (2, *SHAPE))
    data[2:] = np.where(brain, rng.uniform(0.05, 1, (8, *SHAPE)), 0)
    seg = np.where(brain, 0, -1).astype(np.int8)
    cy, cx = rng.uniform(6, 13), rng.uniform(6, 19)
    seg[((y - cy) ** 2 + (x - cx) ** 2 <= rng.uniform(2, 9)) & brain] = 1
    seg[((y - 15) ** 2 + (x - 12) ** 2 <= 2) & brain & (z == 1)] = 2           # ignore label
    return data, seg[None]


@pytest.fixture(scope="module")
def fake():
    rng = np.random.default_rng(7)
    return FakeDataset({f"c{i}": fake_case(rng) for i in range(4)})


def _pool(fake, **kw):
    return build_pixel_pool(fake, sorted(fake.cases), 2, [True, False] + [False] * 8, **kw)


def test_pool_is_half_the_lesion_voxels_plus_as_many_normal_brain_voxels(fake):
    pool = _pool(fake, seed=3)
    lesion_total = sum(int((s == 1).sum()) for _, s in fake.cases.values())
    k = math.ceil(0.5 * lesion_total)
    assert pool.lesion_voxels == lesion_total
    assert (pool.label == 1).sum() == k and (pool.label == 0).sum() == k
    for i, cid in enumerate(pool.case_ids):
        data, seg = fake.cases[cid]
        sel = pool.case == i
        s = seg[0][pool.z[sel], pool.y[sel], pool.x[sel]]
        assert np.array_equal(s, pool.label[sel]), "labels must be the segmentation at the sampled voxels"
        normal = pool.label[sel] == 0
        assert (data[2:, pool.z[sel][normal], pool.y[sel][normal], pool.x[sel][normal]] > 0).any(0).all(), \
            "normal samples must be brain voxels"
    assert not np.isin(pool.label, [2]).any(), "ignore-label voxels are never sampled"
    keys = set(zip(pool.case.tolist(), pool.z.tolist(), pool.y.tolist(), pool.x.tolist(), strict=False))
    assert len(keys) == len(pool), "no voxel drawn twice"
    assert pool.nbytes == 17 * len(pool)


def test_pool_is_fixed_by_its_seed_and_capped_only_when_asked(fake):
    a, b, c = _pool(fake, seed=3), _pool(fake, seed=3), _pool(fake, seed=4)
    for name in ("case", "z", "y", "x", "label"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert not all(np.array_equal(getattr(a, n), getattr(c, n)) for n in ("case", "y", "x"))
    capped = _pool(fake, seed=3, max_lesion_samples=5)
    assert (capped.label == 1).sum() == 5 and (capped.label == 0).sum() == 5
    empty = FakeDataset({k: (d, np.where(s > 0, 0, s)) for k, (d, s) in fake.cases.items()})
    with pytest.raises(InputError, match="no lesion voxels"):
        _pool(empty)


def test_draw_is_uniform_over_all_items_numbered_case_after_case():
    from nnunet_ataxia.trainers.wmh_pixel_pool import _draw
    rng = np.random.default_rng(0)
    counts = np.array([3, 0, 5, 2])
    assert [o.tolist() for o in _draw(counts, 10, rng)] == [[0, 1, 2], [], [0, 1, 2, 3, 4], [0, 1]]
    part = _draw(counts, 4, rng)
    assert sum(o.size for o in part) == 4
    assert all(np.unique(o).size == o.size and (o < n).all() for o, n in zip(part, counts, strict=False))
    huge = _draw(np.array([2_000_000_000, 3_000_000_000]), 1000, rng)   # beyond numpy's hypergeometric limit
    assert sum(o.size for o in huge) == 1000 and huge[0].max() < 2_000_000_000


def test_every_epoch_is_one_pass_over_the_same_pool_in_a_new_order(fake):
    pool = _pool(fake, seed=3)
    batches = PoolBatches(PatchReader(fake, pool, (1,), [False] * 10), batch_size=7, shuffle=True, seed=11)
    assert len(batches) == math.ceil(len(pool) / 7)
    orders = [batches.epoch_order(e) for e in range(3)]
    for o in orders:
        assert np.array_equal(np.sort(o), np.arange(len(pool))), "an epoch serves every sample exactly once"
    assert not np.array_equal(orders[0], orders[1])
    assert np.array_equal(PoolBatches(batches.reader, 7, True, 11).epoch_order(1), orders[1]), "resumable"
    served = np.concatenate([next(batches)["target"].numpy() for _ in range(len(batches))])
    assert np.array_equal(served, pool.label[orders[0]])
    batches.start_epoch(2)
    assert np.array_equal(next(batches)["target"].numpy(), pool.label[orders[2][:7]])
    assert np.array_equal(PoolBatches(batches.reader, 7, False).epoch_order(5), np.arange(len(pool)))


@pytest.mark.parametrize("scales", [(1,), SCALE_FACTORS])
def test_patches_read_by_windows_equal_patches_of_the_whole_scaled_slice(fake, scales):
    use_mask = [True, False] + [False] * 8
    pool = _pool(fake, seed=5)
    idx = np.random.default_rng(0).permutation(len(pool))[:40]
    batch = PatchReader(fake, pool, scales, use_mask).read(idx)
    for j, i in enumerate(idx):
        data, seg = fake.cases[pool.case_ids[pool.case[i]]]
        full = scale_case_images(data, seg, use_mask)
        r, c = torch.tensor([int(pool.y[i])]), torch.tensor([int(pool.x[i])])
        expected = extract_multiscale_patches(torch.from_numpy(full[:2, pool.z[i]]), r, c, scales)
        for s in range(len(scales)):
            assert torch.equal(batch["patches"][s][j], expected[s][0])
        assert torch.equal(batch["location"][j], torch.from_numpy(data[2:, pool.z[i], pool.y[i], pool.x[i]]))
        assert int(batch["target"][j]) == int(pool.label[i])
    plain = PatchReader(fake, pool, scales, use_mask, with_location=False).read(idx)
    assert plain["location"] is None
    assert all(torch.equal(a, b) for a, b in zip(plain["patches"], batch["patches"], strict=True))


@pytest.mark.parametrize("use_mask,inside_min", [(True, 0.0), (False, 0.0), (False, 0.2)])
def test_unit_scaling_of_zscored_data_equals_rescale_to_01_of_the_raw_image(use_mask, inside_min):
    """Training scales nnU-Net's z-scored case; nnUNetv2_predict runs RescaleTo01Normalization on the raw image."""
    from nnunetv2.preprocessing.cropping.cropping import crop_to_nonzero
    from nnunetv2.preprocessing.normalization.default_normalization_schemes import (
        RescaleTo01Normalization,
        ZScoreNormalization,
    )
    rng = np.random.default_rng(1)
    z, y, x = np.meshgrid(*[np.arange(n) for n in (2, 30, 30)], indexing="ij")
    brain = ((y - 14) / 12) ** 2 + ((x - 15) / 10) ** 2 <= 1
    raw = np.zeros((3, 2, 30, 30), np.float32)
    raw[:2] = np.where(brain, np.clip(rng.uniform(inside_min - 0.1, 1.1, (2, 2, 30, 30)), inside_min, 1), 0)
    raw[2] = np.where(brain, 0.5, 0)                                     # a location-like channel
    data, seg, _ = crop_to_nonzero(raw.copy())
    zscored = np.stack([ZScoreNormalization(use_mask, {}).run(data[c].copy(), seg[0]) for c in range(2)] + [data[2]])
    flags = [use_mask, use_mask, False]
    got = scale_case_images(zscored, seg, flags)
    for c in range(2):
        expected = RescaleTo01Normalization(False, {}).run(data[c].copy(), seg[0])
        assert np.allclose(got[c], expected, atol=1e-6)
        assert not np.allclose(zscored[c], expected, atol=1e-2), "z-scored values differ from the paper's"


def _flatten(t):
    if isinstance(t, ComposeTransforms):
        for s in t.transforms:
            yield from _flatten(s)
    else:
        yield t


def test_paper_trainers_build_no_augmentation():
    kw = dict(use_mask_for_norm=[False] * 10, foreground_labels=(1,), ignore_label=2)
    for cls in (wmh_paper_recipe.WMHSSTrainer_paper, wmh_paper_recipe.WMHMSWSLocTrainer_paper_smoke):
        pipeline = cls.get_training_transforms(np.array([24, 24]), (-np.pi, np.pi), None, (0, 1), False, **kw)
        parts = list(_flatten(pipeline))
        assert [type(p) for p in parts] == [RemoveLabelTansform], f"{cls.__name__}: {parts}"
        torch.manual_seed(0)
        for _ in range(10):
            image, seg = torch.rand(10, 24, 24), torch.randint(-1, 3, (1, 24, 24)).float()
            out = pipeline(image=image.clone(), segmentation=seg.clone())
            assert torch.equal(out["image"], image)
            assert torch.equal(out["segmentation"], torch.where(seg == -1, 0, seg))
    nnunet = list(_flatten(wmh_trainers.WMHSSTrainer.get_training_transforms(
        np.array([24, 24]), (-np.pi, np.pi), None, (0, 1), False, **kw)))
    assert any(isinstance(p, (RandomTransform, SpatialTransform, MirrorTransform)) for p in nnunet), \
        "the nnU-Net-recipe trainer does augment (the check above would notice augmentation)"


def test_model_selection_keeps_the_first_epoch_with_the_highest_validation_auc():
    history = [0.90, 0.95, float("nan"), 0.94, 0.97, 0.97, 0.96]
    saved = [e for e in range(len(history)) if is_new_best(history[:e + 1])]
    assert saved == [0, 1, 4], "checkpoint_best.pth is rewritten exactly when the AUC improves"
    assert saved[-1] == int(np.nanargmax(history))
    assert not is_new_best([float("nan")]) and is_new_best([float("nan"), 0.5])


def test_validation_auc_is_the_roc_auc_of_lesion_probabilities():
    p = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9])
    y = np.array([0, 0, 1, 1, 0, 1])
    # pairs (lesion, normal) ranked correctly: 0.35 beats 0.1, 0.2 (2 of 3); 0.8 and 0.9 beat all three
    assert validation_auc(p, y) == pytest.approx(8 / 9)
    assert math.isnan(validation_auc(p, np.zeros(6)))


def test_every_trainer_has_a_paper_variant_found_by_nnunet(nnunet_environ):
    import nnunetv2.utilities.find_objects as fo
    originals = [n for n in trainer_names(wmh_trainers) if n != "WMHLocationTrainer" and not n.endswith("_smoke")]
    assert len(originals) == 10
    for name in originals:
        for suffix in ("_paper", "_paper_smoke"):
            cls = getattr(wmh_paper_recipe, name + suffix)
            base = getattr(wmh_trainers, name)
            assert issubclass(cls, WMHPaperRecipeTrainer) and cls.wmh_network == base.wmh_network
            net = cls.build_network_architecture(None, None, 10, 2)
            assert (net.variant, net.use_location, net.location_injection) == \
                (base.wmh_network.variant, base.wmh_network.use_location, base.wmh_network.location_injection)
        assert fo.recursive_find_trainer_class_by_name(name + "_paper_smoke") is \
            getattr(wmh_paper_recipe, name + "_paper_smoke")


def test_validation_cases_errors(tmp_path):
    from nnunet_ataxia.evaluation.wmh_alpha_tuning import read_location_alpha, validation_cases
    with pytest.raises(InputError, match="splits_final.json: missing"):
        validation_cases(tmp_path, 0)
    (tmp_path / "splits_final.json").write_text(json.dumps([{"train": ["a"], "val": ["b"]},
                                                            {"train": ["a", "b"], "val": []}]))
    assert validation_cases(tmp_path, 0) == ["b"]
    with pytest.raises(InputError, match="fold 1: no validation cases"):
        validation_cases(tmp_path, 1)
    with pytest.raises(InputError, match="fold 5: .* defines folds 0-1"):
        validation_cases(tmp_path, 5)
    assert read_location_alpha(tmp_path) is None
