"""WMH trainers: balanced pixel sampling, intensity augmentation restricted to T1/FLAIR, trainer registry."""
from __future__ import annotations

import numpy as np
import torch
from batchgeneratorsv2.transforms.spatial.mirroring import MirrorTransform
from batchgeneratorsv2.transforms.spatial.spatial import SpatialTransform

from nnunet_ataxia.architectures.wmh_location_networks import WMHLocationNet
from nnunet_ataxia.trainers import trainer_names, wmh_trainers
from nnunet_ataxia.trainers.wmh_trainers import WMHLocationTrainer, brain_mask_from_input, sample_balanced_pixels


def test_balanced_sample_counts_and_exclusions():
    target = torch.zeros(2, 1, 10, 10, dtype=torch.long)
    target[0, 0, :2, :5] = 1          # 10 positives
    target[1, 0, 9, :] = 2            # ignore label
    brain = torch.zeros(2, 10, 10, dtype=torch.bool)
    brain[:, 2:, :] = True            # outside-brain rows 0, 1 (besides the positives) are never negatives
    g = torch.Generator().manual_seed(0)
    b, r, c, y = sample_balanced_pixels(target, brain, ignore_label=2, generator=g)
    assert (y == 1).sum() == 5 and (y == 0).sum() == 5
    assert torch.equal(y, target[b, 0, r, c])
    neg = y == 0
    assert brain[b[neg], r[neg], c[neg]].all(), "negatives must come from inside the brain mask"
    assert not ((b == 1) & (r == 9)).any(), "ignore-label pixels are never sampled"
    assert len(set(zip(b.tolist(), r.tolist(), c.tolist(), strict=False))) == len(b), "no pixel drawn twice"


def test_balanced_sample_caps_and_no_positive_case():
    target = torch.zeros(1, 30, 30, dtype=torch.long)
    target[0, :20] = 1                # 600 positives -> 300 wanted, capped at 7
    brain = torch.ones(1, 30, 30, dtype=torch.bool)
    *_, y = sample_balanced_pixels(target, brain, None, max_per_class=7)
    assert (y == 1).sum() == 7 and (y == 0).sum() == 7
    *_, y = sample_balanced_pixels(torch.zeros(1, 30, 30, dtype=torch.long), brain, None,
                                   negatives_if_no_positive=11)
    assert len(y) == 11 and (y == 0).all()


def test_brain_mask_is_any_location_channel_positive():
    x = torch.zeros(1, 10, 3, 3)
    x[0, :2] = 5.0                    # image channels do not count
    x[0, 9, 1, 1] = 0.2
    x[0, 4, 0, 2] = 1.0
    assert brain_mask_from_input(x)[0].nonzero().tolist() == [[0, 2], [1, 1]]


def test_intensity_augmentation_leaves_location_channels_untouched():
    transforms = WMHLocationTrainer.get_training_transforms(
        np.array([24, 24]), (-np.pi, np.pi), None, (0, 1), False, use_mask_for_norm=[False] * 10)
    # keep only the intensity part of the real pipeline: spatial transforms legitimately move every channel
    transforms.transforms = [t for t in transforms.transforms if not isinstance(t, (SpatialTransform,
                                                                                     MirrorTransform))]
    torch.manual_seed(0)
    changed = 0
    for _ in range(40):
        image = torch.rand(10, 24, 24)
        out = transforms(image=image.clone(), segmentation=torch.zeros(1, 24, 24))["image"]
        assert torch.equal(out[2:], image[2:]), "an intensity transform changed a location channel"
        changed += int(not torch.equal(out[:2], image[:2]))
    assert changed >= 10, f"T1/FLAIR were augmented in only {changed} of 40 draws"


def test_every_variant_has_a_trainer_and_a_smoke_trainer():
    expected = {f"WMH{v}{loc}Trainer{s}" for v in ("SS", "MSEF", "MSIW", "MSWS") for loc in ("", "Loc")
                for s in ("", "_smoke")}
    assert expected <= set(trainer_names(wmh_trainers))
    for name in expected:
        cls = getattr(wmh_trainers, name)
        net = cls.build_network_architecture(None, None, 10, 2, True)
        assert isinstance(net, WMHLocationNet)
        assert net.variant == cls.wmh_network.variant and net.use_location == ("Loc" in name)
        assert (cls.schedule is not None) == name.endswith("_smoke")
        assert "__" not in name
    inj = wmh_trainers.WMHSSLocLastConvTrainer.build_network_architecture(None, None, 10, 2)
    assert inj.location_injection == "last_conv"


def test_trainers_are_found_by_nnunet_lookup(nnunet_environ):
    import nnunetv2.utilities.find_objects as fo  # nnunetv2.paths reads nnUNet_extTrainer lazily
    cls = fo.recursive_find_trainer_class_by_name("WMHMSWSLocTrainer_smoke")
    assert cls is wmh_trainers.WMHMSWSLocTrainer_smoke


def test_sampled_hard_counts_match_a_direct_count():
    g = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(500, 3, generator=g), torch.randint(0, 3, (500,), generator=g)
    got = wmh_trainers.sampled_hard_counts(logits, labels)
    pred = logits.argmax(1)
    for i, k in enumerate((1, 2)):
        assert got["tp_hard"][i] == ((pred == k) & (labels == k)).sum().item()
        assert got["fp_hard"][i] == ((pred == k) & (labels != k)).sum().item()
        assert got["fn_hard"][i] == ((pred != k) & (labels == k)).sum().item()
    assert all(v.shape == (2,) and v.dtype == float for v in got.values())
