"""Records of a resumable run's finished steps: what ``demo``, ``wmh-demo`` and ``train-pretrained`` use to decide
whether a step of an earlier run can be skipped.

A step is skipped only when its record in ``<run folder>/steps.json`` matches what would be done now: the run's
identity (its options, the package version, fingerprints of its inputs), the records of the steps it builds on (a
step redone makes every step after it be redone), and every output it names is present. Otherwise it is redone: its
earlier outputs (inside the run folder, written by the same command) are removed first, so that no command of the
step picks up a stale file. A step whose redoing would throw away long work (a training run) can refuse instead,
with one line that names what changed. :meth:`StepRecords.summary` gives the line that says how many steps were
skipped and how many were redone, and why.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from nnunet_ataxia.errors import InputError

__all__ = ["RECORD_FILE", "StepRecords", "identity_digest"]

#: the record file in the run folder
RECORD_FILE = "steps.json"


def identity_digest(identity: Mapping) -> str:
    """SHA-256 of a JSON-able mapping (key order does not matter).

    Example:
        >>> identity_digest({"a": 1, "b": 2}) == identity_digest({"b": 2, "a": 1})
        True
    """
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


class StepRecords:
    """The finished steps of one run folder.

    Args:
        folder: the run folder (``steps.json`` is kept there; outputs to clear must lie inside it).
        identity: what makes this run's results what they are (options, version, input fingerprints).

    Example:
        >>> import tempfile
        >>> run = Path(tempfile.mkdtemp())
        >>> records = StepRecords(run, {"seed": 0})
        >>> records.check("data", [run / "data"])   # never done: run it
        False
        >>> (run / "data").mkdir(); records.done("data")
        >>> StepRecords(run, {"seed": 0}).check("data", [run / "data"])
        already done with the same options (data); skipped
        True
        >>> again = StepRecords(run, {"seed": 1})
        >>> again.check("data", [run / "data"]), again.redone
        redoing data: options changed (seed 0 -> 1)
        (False, {'data': 'options changed (seed 0 -> 1)'})
    """

    def __init__(self, folder: str | os.PathLike, identity: Mapping):
        self.folder = Path(folder).resolve()
        self.identity = json.loads(json.dumps(dict(identity), default=str))
        self.skipped: list[str] = []
        self.redone: dict[str, str] = {}
        try:
            data = json.loads((self.folder / RECORD_FILE).read_text())
        except (OSError, ValueError):
            data = {}
        self._run = data.get("run") if isinstance(data, dict) else None
        self._recorded_run = self._run or {}  # the options of the run that wrote the records
        steps = data.get("steps") if isinstance(data, dict) else None
        self._steps: dict = steps if isinstance(steps, dict) else {}

    def _expected(self, after: Sequence[str]) -> str:
        return identity_digest({"run": self.identity, "after": [self._steps.get(a, {}).get("stamp") for a in after]})

    def _changed_options(self) -> str:
        old = self._recorded_run
        diffs = [f"{k} {old.get(k, '-')} -> {self.identity.get(k, '-')}" for k in sorted({*old, *self.identity})
                 if old.get(k) != self.identity.get(k)]
        return f"options changed ({', '.join(diffs)})" if diffs else "an earlier step was redone"

    def check(self, key: str, outputs: Sequence[str | os.PathLike], *, after: Sequence[str] = (),
              clear: Sequence[str | os.PathLike] | None = None, refuse: bool = False, adopt: bool = False,
              quiet: bool = False) -> bool:
        """True when step ``key`` can be skipped; otherwise False, after removing its earlier outputs.

        Args:
            key: the step's name in the record.
            outputs: files or folders the step leaves; one missing means the step is redone.
            after: keys of the steps whose results this step uses.
            clear: what to remove before redoing (default ``outputs``); only paths inside the run folder.
            refuse: raise :class:`InputError` instead of redoing a step that was done with other options (a step
                done before any record was kept is adopted, with one line that says so).
            adopt: take outputs that have no record (a folder from a version that kept none) as done with these
                options, with one line that says so; for steps whose outputs the caller has checked otherwise.
            quiet: no line for a step that is skipped.
        """
        outputs = [Path(p) for p in outputs]
        old = self._steps.get(key)
        present = [p for p in outputs if p.exists()]
        if old is None and not present:
            return False
        if old is None:
            if refuse or adopt:
                print(f"{key}: no record of the options it was made with (an earlier version kept none); taken as "
                      f"made with these options", flush=True)
                self.done(key, after=after)
                self.skipped.append(key)
                return True
            reason = "no record of the earlier run's options"
        elif old.get("identity") != self._expected(after):
            reason = self._changed_options()
        elif len(present) < len(outputs):
            reason = f"{', '.join(p.name for p in outputs if not p.exists())} missing"
        else:
            if not quiet:
                print(f"already done with the same options ({key}); skipped", flush=True)
            self.skipped.append(key)
            return True
        if refuse and old is not None:
            raise InputError(f"{self.folder}: {key} was done with other settings ({reason}); continue it with the "
                             f"same settings or use a new folder")
        print(f"redoing {key}: {reason}", flush=True)
        self.redone[key] = reason
        self._steps.pop(key, None)
        self._write()
        for path in (outputs if clear is None else [Path(p) for p in clear]):
            self._remove(path)
        return False

    def done(self, key: str, *, after: Sequence[str] = ()) -> None:
        """Record step ``key`` as finished with this run's identity."""
        self._steps[key] = {"identity": self._expected(after), "stamp": uuid.uuid4().hex,
                            "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
        self._run = self.identity
        self._write()

    def summary(self) -> str:
        """``"N step(s) done before with the same options, skipped; M redone: reason: steps"`` (or "")."""
        parts = [f"{len(self.skipped)} step(s) done before with the same options, skipped"] if self.skipped else []
        if self.redone:
            by_reason: dict[str, list[str]] = {}
            for key, reason in self.redone.items():
                by_reason.setdefault(reason, []).append(key)
            parts.append(f"{len(self.redone)} redone: " + "; ".join(f"{r}: {', '.join(k)}"
                                                                     for r, k in by_reason.items()))
        return "; ".join(parts)

    def _remove(self, path: Path) -> None:
        path = Path(os.path.abspath(path))
        if self.folder not in path.parents:
            raise ValueError(f"{path}: not inside the run folder {self.folder}")
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()

    def _write(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{RECORD_FILE}.tmp"
        tmp.write_text(json.dumps({"run": self._run, "steps": self._steps}, indent=1, default=str) + "\n")
        os.replace(tmp, self.folder / RECORD_FILE)
