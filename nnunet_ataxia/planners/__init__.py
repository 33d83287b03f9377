"""Experiment planners of this plugin (use them through ``nnunet-ataxia plan``)."""
from nnunet_ataxia.planners.fixed_patch_planner import PAPER_PATCH_XYZ, PAPER_PATCH_ZYX, FixedPatch128Planner

__all__ = ["FixedPatch128Planner", "PAPER_PATCH_XYZ", "PAPER_PATCH_ZYX"]
