"""One-structure datasets (label filter) and the one-sigmoid-output trainers: the paper's parameter counts."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from nnunet_ataxia.cli import main


def _source(root):
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    for cid in ("a", "b"):
        lab = np.zeros((8, 8, 8), np.uint8)
        lab[:4] = 1
        lab[6:] = 2
        sitk.WriteImage(sitk.GetImageFromArray(np.random.rand(8, 8, 8).astype(np.float32)),
                        str(root / f"imagesTr/{cid}_0000.nii.gz"))
        sitk.WriteImage(sitk.GetImageFromArray(lab), str(root / f"labelsTr/{cid}.nii.gz"))
    (root / "dataset.json").write_text(json.dumps({"channel_names": {"0": "T1"}, "file_ending": ".nii.gz",
                                                   "labels": {"background": 0, "cerebellum": 1, "brainstem": 2},
                                                   "numTraining": 2}))
    (root / "splits_final.json").write_text("[]")


@pytest.mark.parametrize("structure, value", [("cerebellum", 1), ("brainstem", 2)])
def test_select_structure_writes_a_one_region_dataset(tmp_path, structure, value):
    _source(tmp_path / "src")
    out = tmp_path / "one"
    assert main(["select-structure", "-i", str(tmp_path / "src"), "--structure", structure, "-o", str(out)]) == 0
    info = json.loads((out / "dataset.json").read_text())
    assert info["labels"] == {"background": 0, structure: [1, 1]} and info["regions_class_order"] == [1]
    lab = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "labelsTr/a.nii.gz")))
    src = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "src/labelsTr/a.nii.gz")))
    assert np.array_equal(lab, (src == value).astype(np.uint8))
    assert (out / "imagesTr/a_0000.nii.gz").is_file() and (out / "splits_final.json").is_file()


def test_one_structure_trainers_build_the_papers_networks(tmp_path):
    from nnunetv2.utilities.label_handling.label_handling import LabelManager

    from nnunet_ataxia.trainers import single_structure_trainers as t

    _source(tmp_path / "src")
    main(["select-structure", "-i", str(tmp_path / "src"), "--structure", "cerebellum", "-o", str(tmp_path / "one")])
    info = json.loads((tmp_path / "one" / "dataset.json").read_text())
    heads = LabelManager(info["labels"], info["regions_class_order"]).num_segmentation_heads
    assert heads == 1   # nnU-Net builds one output channel and predicts with a sigmoid
    cm = SimpleNamespace(patch_size=[32, 32, 32])
    for cls, count in ((t.M1Trainer_paperWDA_oneStructure, 372_521), (t.M1Trainer_paperNDA_oneStructure, 372_521),
                       (t.M2InceptionTrainer_paperWDA_oneStructure, 550_097),
                       (t.M2InceptionTrainer_paperNDA_oneStructure, 550_097)):
        net = cls.build_network_architecture(None, cm, 1, heads, False)
        assert sum(p.numel() for p in net.parameters()) == count, cls.__name__


def test_sigmoid_soft_dice_loss():
    from nnunet_ataxia.trainers.single_structure_trainers import SigmoidSoftDiceLoss

    g = torch.zeros(2, 1, 4, 4, 4)
    g[:, :, :2] = 1
    loss = SigmoidSoftDiceLoss()
    assert float(loss(torch.where(g > 0, 30.0, -30.0), g)) == pytest.approx(0, abs=1e-4)
    assert float(loss(torch.where(g > 0, -30.0, 30.0), g)) == pytest.approx(1, abs=1e-4)
    logits = torch.zeros_like(g, requires_grad=True)
    loss(logits, g).backward()
    assert (logits.grad[g > 0] < 0).all()   # raising the foreground logits lowers the loss
