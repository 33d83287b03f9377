"""What both demos (``demo``, ``wmh-demo``) use to print, skip and run their steps."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from nnunet_ataxia.errors import InputError

__all__ = ["step", "run_step", "ataxia_command"]


def step(title: str, done: Path | None = None) -> bool:
    """Print the step's title; return True (skip) when ``done`` exists from an earlier run.

    Example:
        >>> step("1/2 nothing to skip")
        <BLANKLINE>
        === 1/2 nothing to skip ===
        False
    """
    print(f"\n=== {title} ===", flush=True)
    if done is not None and done.exists():
        print(f"already done ({done} exists; delete it to redo this step)", flush=True)
        return True
    return False


def run_step(cmd: list, env: dict, what: str = "demo") -> None:
    """Print and run one command; a failure raises one :class:`InputError` line naming ``what`` and the command."""
    cmd = [str(c) for c in cmd]
    print("$ " + " ".join(cmd), flush=True)
    result = subprocess.run(cmd, env=env)
    if result.returncode != 0:
        raise InputError(f"{what} step failed ({result.returncode}): {' '.join(cmd)}")


def ataxia_command(*args) -> list:
    """``nnunet-ataxia ARGS`` as a command list run with this Python (no reliance on PATH)."""
    return [sys.executable, "-m", "nnunet_ataxia.cli", *args]
