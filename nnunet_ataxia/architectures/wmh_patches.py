"""Multi-scale patch geometry of the Ghafoorian et al. WMH networks (the patch classifier's input).

Conventions (documented in docs/explanation/architectures.md, "WMH location networks"):

* A patch of even size ``P = 32 * s`` "centred" on pixel ``(i, j)`` covers rows ``i - P/2 ... i + P/2 - 1`` and the
  same columns, i.e. the centre pixel sits at index ``P/2`` (0-based) of the patch. Pixels outside the slice are 0.
* Scale ``s1`` is the 32x32 patch itself; ``s2`` is the 64x64 patch averaged over non-overlapping 2x2 blocks;
  ``s3`` is the 128x128 patch averaged over non-overlapping 4x4 blocks. All three are 32x32.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

PATCH_SIZE = 32
SCALE_FACTORS = (1, 2, 4)


def scale_padding(scale_factor: int) -> tuple[int, int]:
    """Zero padding (before, after) along one axis that puts a ``32*s`` patch around every pixel of a slice.

    Example:
        >>> scale_padding(2)
        (32, 31)
    """
    half = PATCH_SIZE * scale_factor // 2
    return half, half - 1


def extract_multiscale_patches(image: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
                               scale_factors: Sequence[int] = SCALE_FACTORS) -> list[torch.Tensor]:
    """Cut the 32x32 patches at each scale centred on the given pixels of one slice (the patch classifier's input).

    Args:
        image: (C, H, W) slice (e.g. T1 and FLAIR).
        rows, cols: (N,) integer pixel coordinates of the patch centres.
        scale_factors: block-averaging factor per scale (1 = 32x32, 2 = 64x64 -> 32x32, 4 = 128x128 -> 32x32).

    Returns:
        One (N, C, 32, 32) tensor per scale.

    Example:
        >>> img = torch.rand(2, 40, 50)
        >>> [p.shape for p in extract_multiscale_patches(img, torch.tensor([0, 39]), torch.tensor([5, 49]))]
        [torch.Size([2, 2, 32, 32]), torch.Size([2, 2, 32, 32]), torch.Size([2, 2, 32, 32])]
    """
    if image.ndim != 3:
        raise ValueError(f"expected a (C, H, W) slice, got shape {tuple(image.shape)}")
    if not (rows.shape == cols.shape and rows.ndim == 1):
        raise ValueError("rows and cols must be 1-D and of equal length")
    max_half = PATCH_SIZE * max(scale_factors) // 2
    padded = F.pad(image, (max_half, max_half, max_half, max_half))
    patches = []
    for s in scale_factors:
        size = PATCH_SIZE * s
        offsets = torch.arange(size, device=image.device) - size // 2 + max_half
        r = rows.to(image.device)[:, None] + offsets[None]          # (N, size)
        c = cols.to(image.device)[:, None] + offsets[None]
        crops = padded[:, r[:, :, None], c[:, None, :]]             # (C, N, size, size)
        crops = crops.permute(1, 0, 2, 3)
        patches.append(F.avg_pool2d(crops, kernel_size=s, stride=s) if s > 1 else crops.contiguous())
    return patches

