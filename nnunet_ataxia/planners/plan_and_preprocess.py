"""Fingerprint, plan with :class:`FixedPatch128Planner` and preprocess, through nnU-Net's Python API.

nnU-Net's ``nnUNetv2_plan_and_preprocess -pl`` only searches inside nnunetv2 for planner classes, so
``nnunet-ataxia plan`` runs the same three steps through ``plan_and_preprocess_api`` with the plugin's planner, in a
child process whose environment names the folders (``nnUNet_preprocessed`` is a staging folder, see
:func:`~nnunet_ataxia.io.nnunet_env.staged_preprocessed_dataset`): nothing in this process, nnU-Net's imported
modules included, is changed.
"""
from __future__ import annotations

import builtins
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from nnunet_ataxia.errors import InputError
from nnunet_ataxia.io.nnunet_env import (
    check_raw_dataset_images,
    nnunet_folder,
    resolve_raw_dataset,
    staged_preprocessed_dataset,
)
from nnunet_ataxia.io.nnunet_integrity import verify_raw_dataset
from nnunet_ataxia.io.output_folders import check_not_overlapping
from nnunet_ataxia.planners.fixed_patch_planner import FixedPatch128Planner

__all__ = ["PLANS_IDENTIFIER", "plan_and_preprocess_fixed", "child_main"]

PLANS_IDENTIFIER = "nnUNetFixed128Plans"  # FixedPatch128Planner's default plans name

#: what the child process runs: ``child_main(request_json, result_file)``
_CHILD_SCRIPT = ("import sys\n"
                 "from nnunet_ataxia.planners.plan_and_preprocess import child_main\n"
                 "sys.exit(child_main(sys.argv[1:]))\n")


def plan_and_preprocess_fixed(dataset: str | int, configurations=("3d_fullres",), num_processes: int = 2,
                              preprocess: bool = True, check_integrity: bool = True, clean: bool = False) -> str:
    """Fingerprint, plan with the fixed 1 mm / 128×128×96 planner, and preprocess one dataset.

    nnU-Net runs in a child process with ``nnUNet_raw`` and a staging ``nnUNet_preprocessed`` in its environment;
    its output replaces the dataset's files in ``$nnUNet_preprocessed`` only when the child succeeds.

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
    if check_integrity:
        check_raw_dataset_images(raw_folder)  # finite, non-constant images (nnU-Net would read NaN as 0)
        verify_raw_dataset(raw_folder, num_processes)
    reuse = [] if clean else ["dataset_fingerprint.json"]
    request = {"dataset_id": dataset_id, "configurations": list(configurations), "num_processes": num_processes,
               "preprocess": bool(preprocess)}
    # nnU-Net writes into a staging folder; only a complete run replaces its files in nnUNet_preprocessed/<name>
    with staged_preprocessed_dataset(name, reuse + [f"{PLANS_IDENTIFIER}.json"]) as staged:
        return _run_child(dict(request, staged=str(staged)), _child_env(staged.parent), staged.parent / "result.json")


def _child_env(staging_root: Path) -> dict[str, str]:
    env = dict(os.environ, nnUNet_raw=str(nnunet_folder("nnUNet_raw")), nnUNet_preprocessed=str(staging_root))
    # nnU-Net's VRAM estimate calls torch.set_num_threads(nnUNet_n_proc_DA), which fails for the value 0 that is
    # recommended for CPU training: the child plans with at least one thread
    if env.get("nnUNet_n_proc_DA", "").strip() == "0":
        env["nnUNet_n_proc_DA"] = "1"
    return env


def _run_child(request: dict, env: dict[str, str], result_file: Path) -> str:
    """Run :func:`child_main` in a child process; its error becomes the same exception here (one line)."""
    argv = [sys.executable, "-c", _CHILD_SCRIPT, json.dumps(request), str(result_file)]
    returncode = subprocess.run(argv, env=env, check=False).returncode
    if returncode in (130, -signal.SIGINT):
        raise KeyboardInterrupt
    try:
        result = json.loads(result_file.read_text())
    except (OSError, ValueError):
        raise RuntimeError(f"nnU-Net's planning process ended with exit status {returncode} and no result") from None
    if "plans_identifier" in result and returncode == 0:
        return str(result["plans_identifier"])
    raise _error_from(result)


def _error_from(result: dict) -> BaseException:
    kind, message = str(result.get("error", "RuntimeError")), str(result.get("message", ""))
    if kind == "InputError":
        return InputError(message)
    if result.get("errno") is not None:
        return OSError(result["errno"], result.get("strerror") or message, result.get("filename"))
    cls = getattr(builtins, kind, None)
    if isinstance(cls, type) and issubclass(cls, Exception):
        return cls(message)
    return RuntimeError(f"{kind}: {message}")


def child_main(argv: list[str]) -> int:
    """The child process: fingerprint (unless the staging folder has one), plan and preprocess one dataset.

    Args:
        argv: the request (JSON: ``dataset_id``, ``staged``, ``configurations``, ``num_processes``, ``preprocess``)
            and the file to write the result to (``{"plans_identifier": ...}`` or ``{"error": ..., "message": ...}``).

    Returns:
        The exit status: 0, 1 (an error, described in the result file) or 130 (interrupted).

    Example:
        >>> child_main(['{"dataset_id": 501, "staged": "/p/.s/Dataset501_H", "configurations": ["3d_fullres"], '
        ...             '"num_processes": 2, "preprocess": true}', "/p/.s/result.json"])  # doctest: +SKIP
        0
    """
    request, result_file = json.loads(argv[0]), Path(argv[1])
    try:
        from nnunetv2.experiment_planning import plan_and_preprocess_api as api

        result = {"plans_identifier": _plan_and_preprocess(
            api, int(request["dataset_id"]), Path(request["staged"]), FixedPatch128Planner,
            request["configurations"], int(request["num_processes"]), bool(request["preprocess"]))}
        code = 0
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # reported by the parent as one line
        result = {"error": type(e).__name__, "message": str(e)}
        if isinstance(e, OSError):
            result.update(errno=e.errno, strerror=e.strerror, filename=e.filename and str(e.filename))
        code = 1
    result_file.write_text(json.dumps(result))
    return code


def _plan_and_preprocess(api, dataset_id: int, staged: Path, planner, configurations, num_processes: int,
                         preprocess: bool) -> str:
    if not (staged / "dataset_fingerprint.json").is_file():
        api.extract_fingerprint_dataset(dataset_id, num_processes=num_processes, check_dataset_integrity=False,
                                        clean=True, verbose=False)
    _, plans_identifier = api.plan_experiment_dataset(dataset_id, planner)
    if preprocess:
        api.preprocess_dataset(dataset_id, plans_identifier, configurations=list(configurations),
                               num_processes=[num_processes] * len(configurations))
    return plans_identifier
