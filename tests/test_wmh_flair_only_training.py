"""FLAIR-only WMH datasets (9 channels: FLAIR + 8 location features) train and predict with the stock nnU-Net
commands: the networks take one image channel, intensity augmentation never touches a location channel, and the
paper recipe scales the FLAIR (channel 0) only."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from nnunet_helpers import nnunet_env, plan_and_preprocess_2d, run_checked
from wmh_toy_data import SHAPE, make_toy_wmh_case, write_image

from nnunet_ataxia.architectures.wmh_location_networks import (
    WMHLocationNet,
    expected_parameter_count,
    image_channel_count,
)
from nnunet_ataxia.trainers.wmh_pixel_pool import brain_mask, image_channels, location_channels
from nnunet_ataxia.trainers.wmh_trainers import ImageChannelSubsetTransform, brain_mask_from_input

DATASET_ID, DATASET_NAME = 985, "Dataset985_WMHFlairOnlyToy"


def make_flair_only_dataset(raw_root: Path, n_train: int = 6, n_test: int = 1, seed: int = 3) -> Path:
    """The toy WMH cases of tests/wmh_toy_data.py without their T1: _0000 FLAIR, _0001.._0008 location."""
    rng = np.random.default_rng(seed)
    root = raw_root / DATASET_NAME
    for i in range(n_train + n_test):
        split = "Tr" if i < n_train else "Ts"
        (root / f"images{split}").mkdir(parents=True, exist_ok=True)
        (root / f"labels{split}").mkdir(parents=True, exist_ok=True)
        channels, labels = make_toy_wmh_case(rng)
        for c, arr in enumerate(channels[1:]):                    # drop the T1
            write_image(arr, root / f"images{split}" / f"wmh_{i:03d}_{c:04d}.nii.gz")
        write_image(labels, root / f"labels{split}" / f"wmh_{i:03d}.nii.gz")
    names = {"0": "FLAIR", **{str(c): "noNorm" for c in range(1, 9)}}
    (root / "dataset.json").write_text(json.dumps({
        "channel_names": names, "labels": {"background": 0, "wmh": 1, "ignore": 2},
        "numTraining": n_train, "file_ending": ".nii.gz"}, indent=1))
    return root


def test_channel_layout_helpers():
    assert [image_channel_count(n) for n in (10, 9, 3, 2, 1)] == [2, 1, 2, 2, 1]
    assert image_channels(9) == (0,) and location_channels(9) == slice(1, 9)
    assert image_channels(10) == (0, 1) and location_channels(10) == slice(2, 10)
    with pytest.raises(ValueError, match="11 channels"):
        image_channel_count(11)
    data = np.zeros((9, 1, 3), np.float32)
    data[0] = 5.0                      # a bright FLAIR must not count as brain
    data[8, 0, 2] = 0.4                # the last location channel (the WMH prior)
    assert brain_mask(data).tolist() == [[False, False, True]]
    assert brain_mask_from_input(torch.from_numpy(data)[None]).tolist() == [[[False, False, True]]]


def test_intensity_transforms_touch_the_flair_only():
    from batchgeneratorsv2.transforms.intensity.brightness import MultiplicativeBrightnessTransform
    t = ImageChannelSubsetTransform(MultiplicativeBrightnessTransform((2., 2.), False, 1), None)
    out = t(image=torch.ones(9, 2, 2))["image"]
    assert out[0].eq(2).all() and out[1:].eq(1).all(), "FLAIR-only: channel 1 is a location feature"
    out = t(image=torch.ones(10, 2, 2))["image"]
    assert out[:2].eq(2).all() and out[2:].eq(1).all()


@pytest.mark.parametrize("variant", ["SS", "MSEF", "MSIW", "MSWS"])
def test_one_channel_networks_parameter_count_and_dense_equals_patches(variant):
    torch.manual_seed(0)
    net = WMHLocationNet(variant, use_location=True, input_channels=9, num_image_channels=1).eval()
    assert sum(p.numel() for p in net.parameters()) == expected_parameter_count(variant, True, num_image_channels=1)
    assert expected_parameter_count(variant, True, num_image_channels=1) < expected_parameter_count(variant, True)
    x = torch.rand(1, 9, 12, 10)
    x[:, 1:, :, :2] = 0
    dense = net(x)
    from nnunet_ataxia.architectures.wmh_patches import extract_multiscale_patches
    rows, cols = torch.tensor([0, 5, 11]), torch.tensor([0, 4, 9])
    patches = extract_multiscale_patches(x[0, :1], rows, cols, net.scale_factors)
    by_patch = net.forward_patches(patches, x[0, 1:, rows, cols].T)
    assert torch.allclose(dense[0][:, rows, cols].T, by_patch, atol=1e-4)


@pytest.fixture(scope="module")
def flair_only_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("wmh_flair_only_train")
    env = nnunet_env(tmp_path, OMP_NUM_THREADS="2")
    make_flair_only_dataset(tmp_path / "nnUNet_raw")
    plan_and_preprocess_2d(DATASET_ID, env)
    for trainer in ("WMHMSWSLocTrainer_smoke", "WMHSSLocTrainer_paper_smoke"):
        run_checked(["nnUNetv2_train", str(DATASET_ID), "2d", "0", "-tr", trainer, "-device", "cpu"], env)
    pred = tmp_path / "pred"
    run_checked(["nnUNetv2_predict", "-d", str(DATASET_ID), "-c", "2d", "-tr", "WMHSSLocTrainer_paper_smoke", "-f",
                 "0", "-i", str(tmp_path / "nnUNet_raw" / DATASET_NAME / "imagesTs"), "-o", str(pred),
                 "--save_probabilities", "-device", "cpu", "-npp", "1", "-nps", "1"], env)
    return tmp_path, pred


@pytest.mark.slow
@pytest.mark.e2e
def test_flair_only_trains_one_channel_networks(flair_only_run):
    tmp_path, _ = flair_only_run
    results = tmp_path / "nnUNet_results" / DATASET_NAME
    for trainer in ("WMHMSWSLocTrainer_smoke", "WMHSSLocTrainer_paper_smoke"):
        ckpt = torch.load(results / f"{trainer}__nnUNetPlans__2d" / "fold_0" / "checkpoint_final.pth",
                          map_location="cpu", weights_only=False)
        w = ckpt["network_weights"]
        assert w["conv_stacks.0.convs.0.weight"].shape == (20, 1, 7, 7), f"{trainer}: FLAIR is the only image"
        assert w["fc2.weight"].shape[1] % 100 == 8, f"{trainer}: the 8 location features enter after FC1"
    plans = json.loads((results / "WMHSSLocTrainer_paper_smoke__nnUNetPlans__2d" / "plans.json").read_text())
    schemes = plans["configurations"]["2d"]["normalization_schemes"]
    assert schemes[0] != "NoNormalization" and set(schemes[1:]) == {"NoNormalization"}, \
        f"paper recipe must rescale the FLAIR only, got {schemes}"


@pytest.mark.slow
@pytest.mark.e2e
def test_flair_only_prediction(flair_only_run):
    _, pred = flair_only_run
    seg = sitk.GetArrayFromImage(sitk.ReadImage(str(pred / "wmh_006.nii.gz")))
    probs = np.load(pred / "wmh_006.npz")["probabilities"]
    assert seg.shape == SHAPE and probs.shape == (2, *SHAPE)
    assert np.array_equal(seg, probs.argmax(0)) and np.allclose(probs.sum(0), 1, atol=1e-4)
