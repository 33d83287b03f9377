"""The capacity benchmark's Dice (``benchmarks/bench_m2_capacity.py``) on constructed predictions."""
from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def capacity(load_benchmark):
    return load_benchmark("bench_m2_capacity.py")


class FixedPrediction(torch.nn.Module):
    """Logits that favour a given label map, whatever the input; remembers the mode it was called in."""

    def __init__(self, prediction: np.ndarray) -> None:
        super().__init__()
        self.logits = torch.nn.functional.one_hot(torch.from_numpy(prediction).long(), 3).permute(3, 0, 1, 2)[None]
        self.called_in_training_mode = None

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        self.called_in_training_mode = self.training
        return self.logits.float()


def test_dice_per_structure_on_constructed_masks(capacity):
    truth = np.zeros((8, 10, 12), np.int64)
    truth[1:5, 2:8, 2:10] = 1      # 4 × 6 × 8 = 192 voxels of cerebellum
    truth[5:7, 4:6, 4:8] = 2       # 2 × 2 × 4 = 16 voxels of brainstem
    prediction = truth.copy()
    prediction[1, 2:8, 2:10] = 0   # one cerebellum slice missed: 48 false negatives
    prediction[7, 4:6, 4:8] = 2    # the brainstem one slice too long: 8 false positives
    case = (torch.zeros(1, 1, *truth.shape), torch.from_numpy(truth)[None, None])
    network = FixedPrediction(prediction)
    network.train()
    dice = capacity.dice_per_structure(network, [case, case])
    assert dice["cerebellum"] == pytest.approx(2 * 144 / (144 + 192))
    assert dice["brainstem"] == pytest.approx(2 * 16 / (24 + 16))
    assert network.called_in_training_mode is False and network.training   # evaluated in eval mode, then restored


def test_weights_from_a_checkpoint_and_from_an_exported_zip_are_the_same(capacity, tmp_path):
    import zipfile

    from nnunet_ataxia.architectures import M2InceptionUNet

    weights = M2InceptionUNet(input_channels=1, num_classes=3).state_dict()
    checkpoint = tmp_path / "checkpoint_final.pth"
    torch.save({"network_weights": weights}, checkpoint)
    exported = tmp_path / "model.zip"
    with zipfile.ZipFile(exported, "w") as archive:
        archive.write(checkpoint, "Dataset511_X/Trainer__Plans__3d_fullres/fold_0/checkpoint_final.pth")
    from_checkpoint = capacity.load_network_weights(str(checkpoint))
    from_zip = capacity.load_network_weights(str(exported))
    assert from_checkpoint.keys() == from_zip.keys() == weights.keys()
    assert all(torch.equal(from_zip[k], weights[k]) and torch.equal(from_checkpoint[k], weights[k]) for k in weights)


def test_a_zip_without_a_fold_0_checkpoint_is_refused_by_name(capacity, tmp_path):
    import zipfile

    exported = tmp_path / "other.zip"
    with zipfile.ZipFile(exported, "w") as archive:
        archive.writestr("Dataset511_X/plans.json", "{}")
    with pytest.raises(SystemExit, match=f"{exported}: no fold_0/checkpoint_final.pth"):
        capacity.load_network_weights(str(exported))
