"""Plain helpers for the tests that run nnU-Net (no fixtures here: those are in tests/conftest.py).

nnunetv2.paths reads ``nnUNet_raw`` / ``nnUNet_preprocessed`` / ``nnUNet_results`` when it is imported, so the
tests run nnU-Net's commands as subprocesses with the environment built by :func:`nnunet_env`.
"""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable, Sequence

from nnunet_ataxia.io.nnunet_env import nnunet_subprocess_env, trainer_shim_folder

# nnU-Net samples 10e7 foreground intensities per channel for the fingerprint (10 WMH channels: ~12 GB of RAM);
# this writes the fingerprint with 10e4 samples, nnUNetv2_plan_and_preprocess then reuses it (no --clean)
FINGERPRINT_SCRIPT = """
import sys
from nnunetv2.experiment_planning.dataset_fingerprint.fingerprint_extractor import DatasetFingerprintExtractor
if __name__ == "__main__":
    fe = DatasetFingerprintExtractor(int(sys.argv[1]), num_processes=1)
    fe.num_foreground_voxels_for_intensitystats = 10e4
    fe.run()
"""


def nnunet_env(root: str | os.PathLike, results: bool = True, trainers: Iterable[str | os.PathLike] = (),
               **extra: str) -> dict[str, str]:
    """The environment for nnU-Net commands on ``root/nnUNet_{raw,preprocessed,results}`` (folders created).

    ``os.environ`` plus: the three folders, ``nnUNet_extTrainer`` = this package's trainer shim folder (what
    ``nnunet-ataxia trainer-path`` prints) followed by ``trainers``, ``nnUNet_n_proc_DA=0`` (augmentation in the
    main process), ``nnUNet_def_n_proc=2``, ``nnUNet_compile=false`` and ``MPLBACKEND=Agg``
    (``nnunet_ataxia.io.nnunet_env.nnunet_subprocess_env``, the environment the demos use).

    Args:
        root: the folder that holds the three nnU-Net folders.
        results: ``False`` leaves ``nnUNet_results`` unset (commands that must not need it).
        trainers: more folders for ``nnUNet_extTrainer`` (test-only trainers), after the shim folder.
        **extra: more variables, e.g. ``OMP_NUM_THREADS="1"``; they win over the ones above.
    """
    env = nnunet_subprocess_env(root, num_processes=2)
    env["nnUNet_extTrainer"] = os.pathsep.join([str(trainer_shim_folder()), *map(str, trainers)])
    if not results:
        env.pop("nnUNet_results")
    env.update(extra)
    return env


def run_checked(cmd: Sequence, env: dict, expect_ok: bool = True) -> subprocess.CompletedProcess:
    """Run a command (items turned into ``str``); when ``expect_ok``, fail the test with its output's tail."""
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env)
    if expect_ok:
        assert result.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{result.stdout[-3000:]}\n" \
                                       f"{result.stderr[-3000:]}"
    return result


def run_checked_two_at_a_time(cmds: Sequence[Sequence], env: dict) -> None:
    """Run ``cmds`` (each checked as :func:`run_checked`) two at a time, each on one thread (2 cores).

    The first command runs alone: ``nnUNetv2_train`` writes ``splits_final.json`` on its first run, and two folds
    must not race to write it. The others overlap their single-threaded parts (imports, augmentation, export).
    """
    from concurrent.futures import ThreadPoolExecutor

    one_thread = dict(env, OMP_NUM_THREADS="1")
    run_checked(cmds[0], env)
    with ThreadPoolExecutor(max_workers=2) as pool:
        for future in [pool.submit(run_checked, cmd, one_thread) for cmd in cmds[1:]]:
            future.result()


def planning_env(env: dict) -> dict:
    """``env`` for nnU-Net's planner, which calls ``torch.set_num_threads(nnUNet_n_proc_DA)`` (fails for 0)."""
    return {k: v for k, v in env.items() if k != "nnUNet_n_proc_DA"}


def plan_and_preprocess_2d(dataset_id: int, env: dict) -> None:
    """``nnUNetv2_plan_and_preprocess -c 2d`` with a fingerprint of 10e4 intensity samples (many-channel toys)."""
    plan_env = planning_env(env)
    run_checked([sys.executable, "-c", FINGERPRINT_SCRIPT, str(dataset_id)], plan_env)
    run_checked(["nnUNetv2_plan_and_preprocess", "-d", str(dataset_id), "-c", "2d", "-np", "1", "-npfp", "1"],
                plan_env)
