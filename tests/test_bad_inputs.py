"""Bad inputs, one per test, for every sub-command: never lose a user's files, never a wrong number.

Every case builds tiny valid inputs (tests/bad_input_data.py), breaks one thing, runs ``nnunet-ataxia`` in-process
and asserts: a non-zero exit status (1, or 130 for Ctrl-C), exactly one line on stderr, ``error: ...``, that names
the offending file (or folder / case) and carries a keyword of the problem, and that every file and folder under the
test's folder (the inputs and any earlier output) is byte-for-byte unchanged, with no temporary folder left over.
Progress bars are not shown when stderr is not a terminal, so stderr holds the error line only.
"""
from __future__ import annotations

import pytest

# each module registers its cases in CASES: output folders, then values and geometry, then case sets/tables/files
import bad_cases_outputs  # noqa: F401  isort:skip
import bad_cases_values  # noqa: F401  isort:skip
import bad_cases_data  # noqa: F401  isort:skip
from bad_input_data import CASES, snapshot

from nnunet_ataxia.cli import main


@pytest.mark.parametrize("make", CASES)
def test_bad_input(make, tmp_path, capsys, monkeypatch, nnunet_environ):
    bad = make(tmp_path, monkeypatch)
    before = snapshot(tmp_path)
    capsys.readouterr()
    rc = main(bad.argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == bad.code, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert bad.file in lines[0], lines[0]
    assert any(k.lower() in lines[0].lower() for k in bad.keywords), lines[0]
    assert snapshot(tmp_path) == before  # inputs and earlier outputs untouched, no temporary folder left


def test_at_least_sixty_cases():
    assert len(CASES) >= 60
