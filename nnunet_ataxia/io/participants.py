"""The team's ``participants.tsv`` (case id -> group) and nnU-Net's ``splits_final.json``."""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from nnunet_ataxia.io.files import KNOWN_GROUPS, read_table

__all__ = ["PARTICIPANTS_COLUMNS", "read_participants", "write_participants_tsv", "write_splits"]

PARTICIPANTS_COLUMNS = ("case_id", "group", "source", "subject")


def read_participants(path: str | os.PathLike | None, cases: Sequence[str] | None = None, *,
                      known_groups: Sequence[str] | None = KNOWN_GROUPS) -> dict[str, str]:
    """``case id -> group`` from a participants table (tab-separated; empty dict when ``path`` is None).

    The id column is ``case_id`` (the converters' ``participants.tsv``), ``case`` or ``participant_id`` (BIDS); ids
    must be unique and groups known (:func:`~nnunet_ataxia.io.files.read_table`). With ``cases``, every case gets the
    group of the id equal to it or of the id it starts with followed by ``_`` (``sub-01`` gives ``sub-01_T1w`` its
    group), ``""`` when none matches.

    Args:
        path: the table, or None.
        cases: optional case ids to look up.
        known_groups: the allowed groups (``None``: any).

    Example:
        >>> import tempfile, pathlib
        >>> tsv = pathlib.Path(tempfile.mkdtemp()) / "participants.tsv"
        >>> _ = tsv.write_text("participant_id\\tgroup\\nsub-01\\tSCA2\\n")
        >>> read_participants(tsv, ["sub-01_T1w", "sub-02"])
        {'sub-01_T1w': 'sca2', 'sub-02': ''}
    """
    if path is None:
        return {}
    df = read_table(path, what="participants table", sep="\t", required=("case_id", "group"),
                    aliases={"case": "case_id", "participant_id": "case_id"}, id_column="case_id",
                    group_column="group", known_groups=known_groups)
    groups = dict(zip(df["case_id"], df["group"], strict=False))
    if cases is None:
        return groups
    return {case: groups.get(case, next((g for pid, g in groups.items() if case.startswith(pid + "_")), ""))
            for case in cases}


def write_participants_tsv(path: str | os.PathLike, rows: Sequence[dict]) -> None:
    """Write the team's ``participants.tsv`` (``case_id``, ``group``, ``source``, ``subject``, + extra columns)."""
    df = pd.DataFrame(list(rows))
    cols = list(PARTICIPANTS_COLUMNS) + [c for c in df.columns if c not in PARTICIPANTS_COLUMNS]
    df.reindex(columns=cols).to_csv(path, sep="\t", index=False)


def write_splits(path: str | os.PathLike, splits: Sequence[dict]) -> None:
    """Write nnU-Net's ``splits_final.json`` (a list of ``{"train": [...], "val": [...]}``)."""
    clean = [{"train": sorted(map(str, s["train"])), "val": sorted(map(str, s["val"]))} for s in splits]
    Path(path).write_text(json.dumps(clean, indent=2))
