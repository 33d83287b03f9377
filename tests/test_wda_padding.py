"""WDA (rotation + shift) pads with the background, not with 0 (the mean intensity in nnU-Net's z-scored space)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nnunet_ataxia.trainers.paper_augmentation import RandomAxisRotationShiftTransform


def _zscored_head(shape=(20, 22, 24)) -> torch.Tensor:
    """Two channels of a z-scored "head": background well below 0, brain around 0."""
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    head = (z ** 2 + y ** 2 + x ** 2) < 0.6
    rng = np.random.default_rng(0)
    out = np.empty((2, *shape), np.float32)
    for c, background in enumerate((-1.3, -0.7)):
        out[c] = background
        out[c][head] = rng.normal(0.3, 0.3, head.sum()).clip(background + 0.2)
    return torch.from_numpy(out)


def test_shift_pads_each_channel_with_its_background():
    image = _zscored_head()
    seg = (image[:1] > -0.5).float()
    t = RandomAxisRotationShiftTransform(rotation_degrees=(0.0, 0.0), shift_voxels=(5.0, 5.0))
    out = t(image=image.clone(), segmentation=seg.clone())
    # moved content is unchanged, the vacated border is each channel's background, and the labels there are 0
    assert torch.allclose(out["image"][:, :-5, :-5, :-5], image[:, 5:, 5:, 5:], atol=1e-5)
    for c, background in enumerate((-1.3, -0.7)):
        assert torch.allclose(out["image"][c, -5:], torch.tensor(background), atol=1e-6)
        assert torch.allclose(out["image"][c, :, :, -5:], torch.tensor(background), atol=1e-6)
    assert torch.all(out["segmentation"][:, -5:] == 0)


def test_rotation_never_creates_a_frame_brighter_than_the_background():
    np.random.seed(1)
    image = _zscored_head()
    t = RandomAxisRotationShiftTransform(rotation_degrees=(40.0, 45.0), shift_voxels=(-3.0, 3.0))
    for _ in range(5):
        params = t.get_parameters(image=image)
        out = t._apply_to_image(image.clone(), **params)
        # output voxels that sample more than one voxel outside the patch (normalized coordinates beyond +-1)
        step = 2.0 / (min(image.shape[1:]) - 1)
        outside = (params["grid"][0].abs() > 1 + step).any(-1)
        assert outside.sum() > 100
        for c in range(2):
            assert torch.allclose(out[c][outside], image[c].min(), atol=1e-5)
            assert out[c].min() >= image[c].min() - 1e-5 and out[c].max() <= image[c].max() + 1e-5


def test_a_given_fill_value_and_bad_settings():
    image = _zscored_head()
    t = RandomAxisRotationShiftTransform(rotation_degrees=(0.0, 0.0), shift_voxels=(4.0, 4.0), image_fill=-5.0)
    out = t(image=image.clone(), segmentation=torch.zeros(1, *image.shape[1:]))["image"]
    assert torch.all(out[:, -4:] == -5.0)
    with pytest.raises(ValueError):
        RandomAxisRotationShiftTransform(image_fill="mean")
