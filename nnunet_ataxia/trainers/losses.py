"""The soft-Dice loss of Cabeza-Ruiz et al. (eq. 1), for nnU-Net's softmax outputs."""
from __future__ import annotations

import torch
from torch import nn


class PaperSoftDiceLoss(nn.Module):
    """``1 - DSC`` with the paper's soft Dice ``DSC = 2 Σ p g / (Σ p² + Σ g²)`` (eq. 1).

    The network gives logits for ``C`` classes; ``p`` is the softmax probability and ``g`` the one-hot target. Sums run
    over the whole batch and all voxels, per foreground class; the loss is one minus the mean over foreground classes
    (the paper's single sigmoid output is the one-foreground-class case). Voxels with the ignore label are left out.

    Args:
        ignore_label: label value to leave out, or ``None``.
        smooth: added to numerator and denominator (avoids 0/0 on empty classes).

    Example:
        >>> loss = PaperSoftDiceLoss()
        >>> logits = torch.tensor([[[[[-20.0]], [[20.0]]], [[[20.0]], [[-20.0]]]]]).reshape(1, 2, 2, 1, 1)
        >>> target = torch.tensor([1, 0]).reshape(1, 1, 2, 1, 1)  # the classes the logits favour: a perfect guess
        >>> round(float(loss(logits, target)), 4)
        0.0
    """

    def __init__(self, ignore_label: int | None = None, smooth: float = 1e-5) -> None:
        super().__init__()
        self.ignore_label = ignore_label
        self.smooth = smooth

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if target.shape[1] != 1:
            raise ValueError(f"expected a (B, 1, ...) label map, got shape {tuple(target.shape)}")
        num_classes = logits.shape[1]
        probabilities = torch.softmax(logits.float(), dim=1)
        target = target.long()
        valid = torch.ones_like(target, dtype=probabilities.dtype)
        if self.ignore_label is not None:
            valid = (target != self.ignore_label).to(probabilities.dtype)
            target = torch.where(target == self.ignore_label, torch.zeros_like(target), target)
        one_hot = torch.zeros_like(probabilities).scatter_(1, target, 1.0)
        probabilities = probabilities * valid
        one_hot = one_hot * valid
        axes = [0] + list(range(2, logits.ndim))
        intersection = (probabilities * one_hot).sum(axes)
        denominator = (probabilities ** 2).sum(axes) + (one_hot ** 2).sum(axes)
        dice = (2 * intersection + self.smooth) / (denominator + self.smooth)
        foreground = dice[1:] if num_classes > 1 else dice
        return 1 - foreground.mean()
