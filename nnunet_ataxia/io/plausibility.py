"""Plausible volumes per structure: a volume outside its range is flagged (a table column and one warning line).

The ranges are generous on purpose (atrophy in SCA2, children, large heads): a flagged volume is almost surely a
wrong mask, a wrong label value, a wrong voxel size or a unit error (cm³ given as mm³), not an unusual subject.

===================  =====================  ============================================================
structure            plausible range (mm³)  reasoning
===================  =====================  ============================================================
``cerebellum``       50,000 - 250,000       adults ~110,000-160,000; severe SCA2 atrophy ~70,000
``cerebellum_left``  25,000 - 125,000       one hemisphere (``convert-hammers --split-hemispheres``)
``cerebellum_right`` 25,000 - 125,000       one hemisphere
``brainstem``        8,000 - 60,000         adults ~20,000-35,000; severe atrophy ~12,000
===================  =====================  ============================================================

Structures without a range (other models' labels) are never flagged.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

__all__ = ["PLAUSIBLE_VOLUME_MM3", "PLAUSIBLE_MNI_VOLUME_CM3", "implausible_volume", "implausible_volumes"]

#: structure name -> (lowest, highest) plausible native volume in mm³
PLAUSIBLE_VOLUME_MM3: dict[str, tuple[float, float]] = {
    "cerebellum": (50_000.0, 250_000.0),
    "cerebellum_left": (25_000.0, 125_000.0),
    "cerebellum_right": (25_000.0, 125_000.0),
    "brainstem": (8_000.0, 60_000.0),
}

#: structure name -> (lowest, highest) plausible volume on the 1 mm MNI crop in cm³ (the native volume divided by the
#: registration's scale factor, so head size is taken out): ``segment``'s QC flag. Narrower than the native ranges;
#: the low ends leave room for strong SCA-like atrophy (a third of the cerebellum lost).
PLAUSIBLE_MNI_VOLUME_CM3: dict[str, tuple[float, float]] = {"cerebellum": (70.0, 200.0), "brainstem": (12.0, 40.0)}


def implausible_volume(structure: str, volume_mm3: float) -> str:
    """Why ``volume_mm3`` is implausible for ``structure`` (``""`` when plausible, unknown, or not a number).

    Args:
        structure: a structure name of :data:`PLAUSIBLE_VOLUME_MM3`.
        volume_mm3: its volume.

    Example:
        >>> implausible_volume("cerebellum", 125.0)
        'cerebellum 125 mm³ < 50,000'
        >>> implausible_volume("cerebellum", 140_000.0)
        ''
    """
    bounds = PLAUSIBLE_VOLUME_MM3.get(structure)
    try:
        value = float(volume_mm3)
    except (TypeError, ValueError):
        return ""
    if bounds is None or not math.isfinite(value):
        return ""
    low, high = bounds
    if value < low:
        return f"{structure} {value:.0f} mm³ < {low:,.0f}"
    if value > high:
        return f"{structure} {value:.0f} mm³ > {high:,.0f}"
    return ""


def implausible_volumes(volumes: Mapping[str, float]) -> list[str]:
    """The :func:`implausible_volume` reasons of every implausible entry of ``{structure: volume}``.

    Example:
        >>> implausible_volumes({"cerebellum": 140_000.0, "brainstem": 900_000.0})
        ['brainstem 900000 mm³ > 60,000']
    """
    return [reason for name, value in volumes.items() if (reason := implausible_volume(name, value))]
