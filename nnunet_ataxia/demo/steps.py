"""What both demos (``demo``, ``wmh-demo``) use to print, skip and run their steps."""
from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from nnunet_ataxia.errors import InputError
from nnunet_ataxia.io.step_records import StepRecords

__all__ = ["step", "run_step", "ataxia_command"]


def step(title: str, done: Path | None = None, *, records: StepRecords | None = None, key: str | None = None,
         after: Sequence[str] = (), clear: Sequence[Path] | None = None) -> bool:
    """Print the step's title; return True (skip) when the step is done: with ``records``, when its record matches
    this run's options and ``done`` exists (:meth:`StepRecords.check`; otherwise its earlier outputs ``clear``
    are removed and it is redone); without, when ``done`` exists.

    Args:
        title: printed as ``=== title ===``.
        done: the file or folder the step leaves when finished.
        records: the run's step records; call ``records.done(key, after=after)`` when the step has finished.
        key: the step's name in the records (default: the title).
        after: keys of the steps whose results this step uses.
        clear: the step's outputs to remove before redoing it (default: ``done``).

    Example:
        >>> step("1/2 nothing to skip")
        <BLANKLINE>
        === 1/2 nothing to skip ===
        False
    """
    print(f"\n=== {title} ===", flush=True)
    if records is not None:
        return records.check(key or title, [done] if done is not None else [], after=after, clear=clear)
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
