"""``segment``'s run-level files: ``volumes.csv`` and ``qc/index.html``, written from the rows, read back for merges.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from nnunet_ataxia.inference.qc import write_index
from nnunet_ataxia.inference.run_records import QC_FOLDER, VOLUMES_TABLE

__all__ = ["read_volumes", "write_tables"]


def _numeric(column: str) -> bool:
    return column.endswith("_mm3") or column == "scale_factor"


def write_tables(out: str | os.PathLike, rows: Sequence[dict]) -> None:
    """Write ``<out>/volumes.csv`` (atomically) and ``<out>/qc/index.html`` (the table and every ok subject's
    picture ``qc/<case>.png``) from the rows, in their order.

    Args:
        out: the output folder.
        rows: one dict per subject (the columns of ``volumes.csv``, in order).

    Example:
        >>> write_tables("seg_out", [{"case": "sub-01", "status": "failed", "message": "..."}])  # doctest: +SKIP
    """
    import pandas as pd

    out = Path(out)
    columns = list(rows[0]) if rows else ["case", "status"]
    table = pd.DataFrame(list(rows), columns=columns)
    tmp = out / f".{VOLUMES_TABLE}.tmp"
    table.to_csv(tmp, index=False)
    os.replace(tmp, out / VOLUMES_TABLE)
    pictures = {r["case"]: out / QC_FOLDER / f"{r['case']}.png" for r in rows
                if r["status"] == "ok" and (out / QC_FOLDER / f"{r['case']}.png").is_file()}
    shown = [c for c in columns if c != "input"]
    write_index(out / QC_FOLDER / "index.html", rows, shown, pictures)


def read_volumes(path: str | os.PathLike) -> tuple[list[str], list[dict]]:
    """The columns and rows of a ``volumes.csv`` as :func:`write_tables` was given them (text columns stay text,
    ``*_mm3`` and ``scale_factor`` are floats, empty cells NaN), so that writing them again gives the same files.

    Args:
        path: a ``volumes.csv``.

    Example:
        >>> columns, rows = read_volumes("seg_out/volumes.csv")  # doctest: +SKIP
    """
    import pandas as pd

    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    columns = list(table.columns)
    rows = []
    for record in table.to_dict(orient="records"):
        rows.append({c: (float(v) if v != "" else float("nan")) if _numeric(c) else v for c, v in record.items()})
    return columns, rows
