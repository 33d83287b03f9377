"""Checks shared by the plugin's architectures."""
from __future__ import annotations

from typing import Sequence


class PatchSizeError(ValueError):
    """A spatial size that a network cannot process (not divisible by its down-sampling factor)."""


def check_spatial_divisibility(spatial_shape: Sequence[int], divisor: int, network_name: str) -> None:
    """Raise :class:`PatchSizeError` unless every spatial axis is divisible by ``divisor``.

    Args:
        spatial_shape: the spatial size (e.g. ``(96, 128, 128)``).
        divisor: required divisor per axis (8 for M1, 16 for M2).
        network_name: used in the message.

    Example:
        >>> check_spatial_divisibility((96, 128, 128), 16, "M2InceptionUNet")
    """
    bad = [s for s in spatial_shape if s % divisor != 0]
    if bad or len(spatial_shape) != 3:
        raise PatchSizeError(
            f"{network_name} cannot process spatial size {tuple(int(s) for s in spatial_shape)}: it needs a 3D size "
            f"whose every axis is divisible by {divisor} (offending: {bad or 'not 3D'}); "
            f"use a patch size such as {tuple(int(-(-max(s, 1) // divisor) * divisor) for s in spatial_shape)}")


def round_up_to_multiple(spatial_shape: Sequence[int], divisor: int) -> list[int]:
    """Round each axis up to the next multiple of ``divisor``.

    Example:
        >>> round_up_to_multiple([40, 56, 40], 16)
        [48, 64, 48]
    """
    return [int(-(-int(s) // divisor) * divisor) for s in spatial_shape]
