"""Pieces of the M1/M2 trainers that need no training run: loss, augmentation, discovery, planner class."""
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from nnunet_ataxia.trainers.losses import PaperSoftDiceLoss
from nnunet_ataxia.trainers.paper_augmentation import RandomAxisRotationShiftTransform


def _logits_from_probabilities(p_foreground: torch.Tensor) -> torch.Tensor:
    # two-class logits whose softmax foreground probability is p
    p = p_foreground.clamp(1e-7, 1 - 1e-7)
    return torch.stack([torch.zeros_like(p), torch.log(p / (1 - p))], dim=1)


def test_soft_dice_is_the_papers_equation_1():
    p = torch.tensor([0.9, 0.8, 0.3, 0.1, 0.6]).reshape(1, 5, 1, 1)
    g = torch.tensor([1, 1, 0, 0, 1]).reshape(1, 1, 5, 1, 1)
    expected_dsc = 2 * (0.9 + 0.8 + 0.6) / ((0.81 + 0.64 + 0.09 + 0.01 + 0.36) + 3)
    loss = PaperSoftDiceLoss(smooth=0.0)(_logits_from_probabilities(p), g)
    assert float(loss) == pytest.approx(1 - expected_dsc, abs=1e-5)


def test_soft_dice_leaves_ignore_label_out():
    p = torch.tensor([0.9, 0.1, 0.7]).reshape(1, 3, 1, 1)
    g = torch.tensor([1, 0, 2]).reshape(1, 1, 3, 1, 1)  # the third voxel is "ignore"
    loss = PaperSoftDiceLoss(ignore_label=2, smooth=0.0)(_logits_from_probabilities(p), g)
    assert float(loss) == pytest.approx(1 - 2 * 0.9 / (0.81 + 0.01 + 1), abs=1e-5)


def test_soft_dice_perfect_and_gradient():
    g = torch.randint(0, 3, (2, 1, 4, 4, 4))
    perfect = torch.nn.functional.one_hot(g[:, 0], 3).permute(0, 4, 1, 2, 3).float() * 50
    assert float(PaperSoftDiceLoss()(perfect, g)) == pytest.approx(0.0, abs=1e-4)
    logits = torch.zeros(2, 3, 4, 4, 4, requires_grad=True)
    PaperSoftDiceLoss()(logits, g).backward()
    assert torch.any(logits.grad != 0)


def test_augmentation_shift_only_moves_the_volume_by_whole_voxels():
    t = RandomAxisRotationShiftTransform(rotation_degrees=(0.0, 0.0), shift_voxels=(2.0, 2.0))
    image = torch.rand(1, 10, 12, 14)
    seg = torch.randint(0, 3, (1, 10, 12, 14)).float()
    out = t(image=image.clone(), segmentation=seg.clone())
    # output voxel p samples input voxel p + 2 on every axis
    assert torch.allclose(out["image"][:, :-2, :-2, :-2], image[:, 2:, 2:, 2:], atol=1e-5)
    assert torch.equal(out["segmentation"][:, :-2, :-2, :-2], seg[:, 2:, 2:, 2:])
    # the voxels shifted in are the background (the patch's minimum), the segmentation's background 0
    assert torch.allclose(out["image"][:, -2:], image.min().expand_as(out["image"][:, -2:]))
    assert torch.all(out["segmentation"][:, -2:] == 0)


def test_augmentation_rotates_about_exactly_one_axis_within_45_degrees():
    np.random.seed(3)
    t = RandomAxisRotationShiftTransform(rotation_degrees=(-45.0, 45.0), shift_voxels=(0.0, 0.0))
    for _ in range(20):
        theta = t.get_parameters(image=torch.zeros(1, 9, 9, 9))["theta"].numpy()
        rotation = theta[:, :3]
        fixed_axes = [a for a in range(3) if np.allclose(rotation[a], np.eye(3)[a])]
        assert len(fixed_axes) >= 1  # one axis stays put
        angle = math.degrees(math.acos(np.clip((np.trace(rotation) - 1) / 2, -1, 1)))
        assert angle <= 45 + 1e-6
    # segmentation values stay labels (nearest neighbour)
    seg = torch.randint(0, 3, (1, 9, 9, 9)).float()
    out = t(image=torch.rand(1, 9, 9, 9), segmentation=seg)
    assert set(out["segmentation"].unique().tolist()) <= {0.0, 1.0, 2.0}


@pytest.mark.slow
def test_trainer_path_command_and_nnunet_discovery():
    """nnU-Net's own look-up, through the discovery folder, finds every trainer class defined in the package."""
    folder = subprocess.run(["nnunet-ataxia", "trainer-path"], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert os.path.isdir(folder)
    code = ("import importlib, inspect, pkgutil;"
            "from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer;"
            "from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name as f;"
            "import nnunet_ataxia.trainers as t;"
            "mods=[importlib.import_module('nnunet_ataxia.trainers.'+m.name) "
            "for m in pkgutil.iter_modules(t.__path__)];"
            "defined={n: c for m in mods for n, c in vars(m).items() if inspect.isclass(c) "
            "and issubclass(c, nnUNetTrainer) and c.__module__ == m.__name__ and not n.startswith('_')};"
            "assert len(defined) > 50, sorted(defined);"
            "missed=[n for n, c in sorted(defined.items()) if f(n) is not c];"
            "assert not missed, missed;"
            "print('ok', len(defined))")
    env = dict(os.environ, nnUNet_extTrainer=folder)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1].startswith("ok")  # nnU-Net prints "Using trainer ..." lines


def test_trainer_names_follow_nnunet_rules():
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    import nnunet_ataxia.trainers as t

    for name in t.__all__:
        assert "__" not in name
        assert issubclass(getattr(t, name), nnUNetTrainer)
    smoke = [n for n in t.__all__ if n.endswith("_smoke")]
    assert {n[: -len("_smoke")] for n in smoke} <= set(t.__all__)


def test_trainer_variants_use_one_mechanism_single_inheritance_and_class_attributes():
    """Every trainer derives from one class only (no mixins); a ``_smoke``/``_demo`` variant derives from the trainer
    it shortens and sets nothing but its ``schedule``; ``_paperNDA`` only switches the paper's augmentation off."""
    import nnunet_ataxia.trainers as t
    from nnunet_ataxia.trainers.schedules import ScheduledTrainer, TrainingSchedule

    def own(cls):
        return {k for k in vars(cls) if not k.startswith("__")}

    for name in t.__all__:
        cls = getattr(t, name)
        assert issubclass(cls, ScheduledTrainer), name
        assert len(cls.__bases__) == 1, f"{name} mixes {cls.__bases__}"
        for suffix in ("_smoke", "_demo"):
            if name.endswith(suffix):
                assert cls.__bases__[0] is getattr(t, name[: -len(suffix)]), name
                assert own(cls) == {"schedule"} and isinstance(cls.schedule, TrainingSchedule), name
        if name.endswith("_paperNDA"):
            assert cls.__bases__[0] is getattr(t, name.replace("NDA", "WDA")) and own(cls) == {"paper_augmentation"}
            assert cls.paper_augmentation is False and getattr(t, name.replace("NDA", "WDA")).paper_augmentation
    assert t.ScheduledTrainer.schedule is None and t.M2InceptionTrainer_pretrained.schedule is None


def test_a_schedule_is_checked():
    from nnunet_ataxia.trainers.schedules import TrainingSchedule
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        TrainingSchedule(num_epochs=1, batch_size=0)
    with pytest.raises(ValueError, match=r"best_of_last_epochs \(6\) exceeds num_epochs \(5\)"):
        TrainingSchedule(num_epochs=5, best_of_last_epochs=6)


def test_the_demo_predicts_with_the_best_of_its_last_epochs():
    import nnunet_ataxia.trainers as t
    from nnunet_ataxia.trainers.schedules import prediction_checkpoint

    assert prediction_checkpoint(t.M2InceptionTrainer_paperWDA_demo) == "checkpoint_best.pth"
    assert t.M2InceptionTrainer_paperWDA_demo.schedule.best_of_last_epochs == 10
    for other in (t.M2InceptionTrainer_paperNDA_smoke, t.M2InceptionTrainer_paperWDA, None):
        assert prediction_checkpoint(other) == "checkpoint_final.pth"


@pytest.mark.parametrize("trainer_name", ["M1Trainer_paperWDA", "M2InceptionTrainer_paperNDA",
                                          "M2InceptionTrainer_paperWDA_demo"])
def test_paper_trainers_start_from_keras_default_weights(trainer_name):
    # the paper's Keras code: glorot_uniform kernels, zero biases; nnU-Net-recipe trainers keep PyTorch's default
    from types import SimpleNamespace

    import nnunet_ataxia.trainers as trainers

    config = SimpleNamespace(patch_size=[16, 16, 16])
    torch.manual_seed(0)
    paper = getattr(trainers, trainer_name).build_network_architecture(None, config, 1, 2)
    torch.manual_seed(0)
    recipe = trainers.M2InceptionTrainer.build_network_architecture(None, config, 1, 2)
    convs = [m for m in paper.modules() if isinstance(m, torch.nn.modules.conv._ConvNd)]
    assert len(convs) > 10
    for conv in convs:
        receptive = conv.weight[0, 0].numel()
        bound = math.sqrt(6 / ((conv.weight.shape[0] + conv.weight.shape[1]) * receptive))
        assert float(conv.bias.abs().max()) == 0.0
        assert float(conv.weight.abs().max()) <= bound
        # filled, not just scaled down: the largest weight is close to the bound
        assert float(conv.weight.abs().max()) > 0.5 * bound
    recipe_biases = [m.bias for m in recipe.modules() if isinstance(m, torch.nn.modules.conv._ConvNd)]
    assert all(float(b.abs().max()) > 0 for b in recipe_biases)


def test_no_dropout_trainer_trains_the_same_m2_without_dropping_features():
    # same weights (dropout has none): in training mode the variant computes what M2 computes at inference, while
    # the recipe's network drops feature maps
    from types import SimpleNamespace

    import nnunet_ataxia.trainers as trainers

    config = SimpleNamespace(patch_size=[16, 16, 16])
    recipe = trainers.M2InceptionTrainer_pretrainedLabelMaps.build_network_architecture(None, config, 1, 3)
    variant = trainers.M2InceptionTrainer_pretrainedLabelMapsNoDropout.build_network_architecture(None, config, 1, 3)
    variant.load_state_dict(recipe.state_dict())   # strict: the same parameters, so the same checkpoints
    assert sum(p.numel() for p in variant.parameters()) == sum(p.numel() for p in recipe.parameters())
    x = torch.randn(1, 1, 16, 16, 16)
    with torch.no_grad():
        reference = recipe.eval()(x)
        recipe.train()
        torch.manual_seed(0)
        assert not torch.allclose(recipe(x), reference)
        variant.train()
        torch.manual_seed(0)
        assert torch.equal(variant(x), reference)
