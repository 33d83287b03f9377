"""Single-structure trainers: the paper's recipe with one sigmoid output (Cabeza-Ruiz et al. train one network per
structure).

For a one-structure dataset (``nnunet-ataxia select-structure``: one region-based label) nnU-Net builds the network
with one output channel -- M1 372,521 and M2 550,097 parameters, the paper's counts -- and predicts with a sigmoid.
These variants change one thing of the ``_paperWDA`` / ``_paperNDA`` trainers: the soft-Dice loss (eq. 1) on the
sigmoid of that one output (:class:`SigmoidSoftDiceLoss`).
"""
from __future__ import annotations

import torch
from torch import nn

from nnunet_ataxia.trainers.cerebellum_trainers import (
    CerebellumPaperRecipeTrainer,
    M1Trainer_paperWDA,
    M2InceptionTrainer_paperWDA,
)
from nnunet_ataxia.trainers.schedules import refuse


class SigmoidSoftDiceLoss(nn.Module):
    """``1 - (2 sum p g) / (sum p^2 + sum g^2)`` with ``p = sigmoid(logits)`` per output channel (region targets).

    Example:
        >>> loss = SigmoidSoftDiceLoss()
        >>> g = torch.zeros(1, 1, 4, 4, 4); g[..., :2] = 1
        >>> round(float(loss(torch.where(g > 0, 20.0, -20.0), g)), 4)
        0.0
    """

    def __init__(self, ignore_label: int | None = None, smooth: float = 1e-5) -> None:
        super().__init__()
        self.ignore_label = ignore_label
        self.smooth = smooth

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        p = torch.sigmoid(logits.float())
        g = target.float()
        if self.ignore_label is not None:   # nnU-Net's region targets carry the ignore flag as an extra channel
            valid, g = 1 - g[:, -1:], g[:, :-1]
            p, g = p * valid, g * valid
        axes = [0] + list(range(2, logits.ndim))
        dice = (2 * (p * g).sum(axes) + self.smooth) / ((p ** 2).sum(axes) + (g ** 2).sum(axes) + self.smooth)
        return 1 - dice.mean()


def _initialize_one_structure(self) -> None:
    """Refuse datasets that are not one-structure, then initialize as the paper trainers do."""
    lm = self.label_manager
    if not lm.has_regions or len(lm.foreground_regions) != 1:
        refuse(f"{type(self).__name__} trains one sigmoid output: give a one-structure dataset "
               f"(nnunet-ataxia select-structure), not labels {self.dataset_json.get('labels')}")
    CerebellumPaperRecipeTrainer.initialize(self)


def _sigmoid_soft_dice(self) -> nn.Module:
    return SigmoidSoftDiceLoss(ignore_label=self.label_manager.ignore_label)


class M1Trainer_paperWDA_oneStructure(M1Trainer_paperWDA):
    """M1, the paper's recipe with WDA, one sigmoid output (372,521 parameters)."""

    initialize = _initialize_one_structure
    _build_loss = _sigmoid_soft_dice


class M1Trainer_paperNDA_oneStructure(M1Trainer_paperWDA_oneStructure):
    """M1, the paper's recipe without augmentation, one sigmoid output (372,521 parameters)."""

    paper_augmentation = False


class M2InceptionTrainer_paperWDA_oneStructure(M2InceptionTrainer_paperWDA):
    """M2, the paper's recipe with WDA, one sigmoid output (550,097 parameters)."""

    initialize = _initialize_one_structure
    _build_loss = _sigmoid_soft_dice


class M2InceptionTrainer_paperNDA_oneStructure(M2InceptionTrainer_paperWDA_oneStructure):
    """M2, the paper's recipe without augmentation, one sigmoid output (550,097 parameters)."""

    paper_augmentation = False
