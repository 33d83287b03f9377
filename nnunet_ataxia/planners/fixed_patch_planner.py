"""An nnU-Net experiment planner for the papers' set-up: 1 mm isotropic spacing and a fixed 128×128×96 patch."""
from __future__ import annotations

import numpy as np
from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner
from nnunetv2.experiment_planning.experiment_planners.network_topology import get_pool_and_conv_props

from nnunet_ataxia.io.images import MNI_CROP_SIZE_XYZ

#: the papers' crop, (x, y, z) = 128 × 128 × 96 voxels of 1 mm: the box that ``preprocess-mri`` crops
PAPER_PATCH_XYZ: tuple[int, int, int] = MNI_CROP_SIZE_XYZ
#: the same patch in nnU-Net's array order (z, y, x)
PAPER_PATCH_ZYX: tuple[int, int, int] = MNI_CROP_SIZE_XYZ[::-1]


class FixedPatch128Planner(ExperimentPlanner):
    """Plans ``3d_fullres`` at 1 mm isotropic spacing with the fixed patch ``[96, 128, 128]`` and batch size 2.

    Everything else is nnU-Net's default planning. The transpose is suppressed (axis order stays (z, y, x) as read),
    so the patch maps to 128 × 128 × 96 in (x, y, z) whatever the data's spacing. ``3d_lowres``/cascade are dropped:
    the patch holds the whole cropped region. The ``architecture`` entry is recomputed for the fixed patch, so the
    default ``nnUNetTrainer`` also trains with these plans (useful as a baseline). Images smaller than the patch are
    padded by nnU-Net's data loader and sliding-window predictor.

    nnU-Net's ``-pl`` cannot find planners outside nnunetv2, so use ``nnunet-ataxia plan -d ID``.

    Args:
        dataset_name_or_id: nnU-Net dataset name or id.
        gpu_memory_target_in_gb: kept for nnU-Net's API; the patch and batch size are fixed anyway.
        preprocessor_name: nnU-Net preprocessor.
        plans_name: plans identifier (``nnUNetFixed128Plans``).
        overwrite_target_spacing: ignored (always 1 mm).
        suppress_transpose: ignored (always suppressed).

    Example:
        >>> from nnunetv2.experiment_planning.plan_and_preprocess_api import plan_experiment_dataset
        >>> plan_experiment_dataset(501, FixedPatch128Planner)  # doctest: +SKIP
    """

    target_spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    patch_size: tuple[int, int, int] = PAPER_PATCH_ZYX
    batch_size: int = 2

    def __init__(self, dataset_name_or_id: str | int, gpu_memory_target_in_gb: float = 8,
                 preprocessor_name: str = "DefaultPreprocessor", plans_name: str = "nnUNetFixed128Plans",
                 overwrite_target_spacing: list[float] | tuple[float, ...] = None,
                 suppress_transpose: bool = True):
        super().__init__(dataset_name_or_id, gpu_memory_target_in_gb, preprocessor_name, plans_name,
                         overwrite_target_spacing=None, suppress_transpose=True)
        # the fixed patch covers the whole cropped region: never plan a 3d_lowres/cascade stage
        self.lowres_creation_threshold = 0.0

    def determine_fullres_target_spacing(self) -> np.ndarray:
        return np.array(self.target_spacing, dtype=float)

    def get_plans_for_configuration(self, spacing, median_shape, data_identifier: str,
                                    approximate_n_voxels_dataset: float, _cache: dict) -> dict:
        plan = super().get_plans_for_configuration(spacing, median_shape, data_identifier,
                                                   approximate_n_voxels_dataset, _cache)
        if len(spacing) != 3:
            return plan
        _, strides, kernels, patch_size, _ = get_pool_and_conv_props(
            spacing, list(self.patch_size), self.UNet_featuremap_min_edge_length, 999999)
        if list(patch_size) != list(self.patch_size):
            raise ValueError(f"nnU-Net's topology changed the fixed patch {self.patch_size} to {patch_size}")
        num_stages = len(strides)
        arch = plan["architecture"]["arch_kwargs"]
        arch.update({
            "n_stages": num_stages,
            "features_per_stage": [min(self.UNet_max_features_3d, self.UNet_base_num_features * 2 ** i)
                                   for i in range(num_stages)],
            "kernel_sizes": kernels,
            "strides": strides,
            "n_conv_per_stage": list(self.UNet_blocks_per_stage_encoder[:num_stages]),
            "n_conv_per_stage_decoder": list(self.UNet_blocks_per_stage_decoder[:num_stages - 1]),
        })
        plan["patch_size"] = list(self.patch_size)
        plan["batch_size"] = self.batch_size
        return plan
