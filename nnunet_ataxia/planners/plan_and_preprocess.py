"""Fingerprint, plan with :class:`FixedPatch128Planner` and preprocess, through nnU-Net's Python API.

nnU-Net's ``nnUNetv2_plan_and_preprocess -pl`` only searches inside nnunetv2 for planner classes, so
``nnunet-ataxia plan`` runs the same three steps through ``plan_and_preprocess_api`` with the plugin's planner.
"""
from __future__ import annotations

import os

from nnunet_ataxia.errors import InputError
from nnunet_ataxia.io.nnunet_env import (check_raw_dataset_images, nnunet_folder, resolve_raw_dataset,
                                         staged_preprocessed_dataset)
from nnunet_ataxia.io.output_folders import check_not_overlapping
from nnunet_ataxia.planners.fixed_patch_planner import FixedPatch128Planner

__all__ = ["PLANS_IDENTIFIER", "plan_and_preprocess_fixed"]

PLANS_IDENTIFIER = "nnUNetFixed128Plans"  # FixedPatch128Planner's default plans name


def plan_and_preprocess_fixed(dataset: str | int, configurations=("3d_fullres",), num_processes: int = 2,
                              preprocess: bool = True, check_integrity: bool = True, clean: bool = False) -> str:
    """Fingerprint, plan with the fixed 1 mm / 128×128×96 planner, and preprocess one dataset.

    Args:
        dataset: id or name of a dataset in ``$nnUNet_raw``.
        configurations: nnU-Net configurations to preprocess.
        num_processes: worker processes.
        preprocess: also run nnU-Net's preprocessing.
        check_integrity: run nnU-Net's dataset integrity check first.
        clean: recompute the fingerprint.

    Returns:
        The plans identifier (``nnUNetFixed128Plans``).

    Example:
        >>> plan_and_preprocess_fixed(501)  # doctest: +SKIP
        'nnUNetFixed128Plans'
    """
    name, raw_folder = resolve_raw_dataset(dataset)
    check_not_overlapping(nnunet_folder("nnUNet_preprocessed") / name, [raw_folder], "preprocessed dataset folder")
    dataset_id = int(name[len("Dataset"):len("Dataset") + 3])

    from nnunetv2.experiment_planning import plan_and_preprocess_api as api
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    if check_integrity:
        check_raw_dataset_images(raw_folder)  # finite, non-constant images (nnU-Net would read NaN as 0)
        try:
            verify_dataset_integrity(str(raw_folder), num_processes)
        except Exception as e:  # nnU-Net raises RuntimeError/AssertionError with its own explanation
            raise InputError(f"{raw_folder}: nnU-Net's dataset integrity check failed: {e}") from e
    reuse = [] if clean else ["dataset_fingerprint.json"]
    # nnU-Net writes into a staging folder; only a complete run replaces its files in nnUNet_preprocessed/<name>
    with staged_preprocessed_dataset(name, reuse + [f"{PLANS_IDENTIFIER}.json"]) as staged:
        plans_identifier = _plan_and_preprocess(api, dataset_id, staged, FixedPatch128Planner, configurations,
                                                num_processes, preprocess)
    return plans_identifier


def _plan_and_preprocess(api, dataset_id: int, staged, planner, configurations, num_processes: int,
                         preprocess: bool) -> str:
    if not (staged / "dataset_fingerprint.json").is_file():
        api.extract_fingerprint_dataset(dataset_id, num_processes=num_processes, check_dataset_integrity=False,
                                        clean=True, verbose=False)
    # nnU-Net's VRAM estimate calls torch.set_num_threads(nnUNet_n_proc_DA), which fails for the value 0 that is
    # recommended for CPU training; plan with at least one thread and restore the variable afterwards
    saved = os.environ.get("nnUNet_n_proc_DA")
    if saved is not None and saved.strip() == "0":
        os.environ["nnUNet_n_proc_DA"] = "1"
    try:
        _, plans_identifier = api.plan_experiment_dataset(dataset_id, planner)
    finally:
        if saved is not None:
            os.environ["nnUNet_n_proc_DA"] = saved
    if preprocess:
        api.preprocess_dataset(dataset_id, plans_identifier, configurations=list(configurations),
                               num_processes=[num_processes] * len(configurations))
    return plans_identifier
