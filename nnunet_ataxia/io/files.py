"""Checked reading of the files users give (other than images): files and folders, text, JSON, NPZ, tables, case sets.

Every reader raises one :class:`~nnunet_ataxia.errors.InputError` whose message starts with the file (or case):
tables (:func:`read_table`: columns, numbers, positive values, unique ids, known groups), JSON / NPZ / text files
(:func:`read_json`, :func:`read_npz_array`, :func:`read_text`), case sets (:func:`check_case_sets`).
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nnunet_ataxia.errors import InputError

__all__ = ["KNOWN_GROUPS", "warn", "require_file", "require_folder", "check_finite", "check_case_sets", "read_text",
           "read_json", "read_npz_array", "read_table",
           "dataframe_markdown"]

#: participant groups the cohort tables may hold (case-insensitive; empty = unknown)
KNOWN_GROUPS = ("control", "presymptomatic", "sca2", "atlas")


def warn(message: str) -> None:
    """Print one line ``warning: <message>`` on stderr (a result the user should look at; the exit status stays 0).

    Example:
        >>> warn("volumes.csv: 1 volume outside its plausible range")  # doctest: +SKIP
    """
    import sys

    print("warning: " + " ".join(str(message).split()), file=sys.stderr)


def _first_line(error: BaseException) -> str:  # the informative (last) line of a library's message
    return ([line.strip()[:200] for line in str(error).splitlines() if line.strip()] or [type(error).__name__])[-1]


def require_file(path: str | os.PathLike, what: str = "file") -> Path:
    """``path`` as a Path when it is an existing file; else :class:`InputError` naming it."""
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{p}: is a folder, expected a {what}")
    if not p.is_file():
        raise InputError(f"{p}: {what} not found")
    return p


def require_folder(path: str | os.PathLike, what: str = "folder") -> Path:
    """``path`` as a Path when it is an existing folder; else :class:`InputError` naming it."""
    p = Path(path)
    if p.is_file():
        raise InputError(f"{p}: is a file, expected a {what}")
    if not p.is_dir():
        raise InputError(f"{p}: {what} not found")
    return p


def check_finite(array: np.ndarray, path, what: str = "image") -> None:
    """Raise :class:`InputError` naming ``path`` when ``array`` holds NaN or infinite values.

    SimpleITK's NIfTI reader turns NaN/Inf voxels into 0 without a word, so for a floating-point NIfTI file the
    stored values are checked too (with nibabel): a NaN image is refused instead of becoming a zero image.
    """
    a = np.asarray(array)
    bad = int(a.size - np.count_nonzero(np.isfinite(a))) if a.dtype.kind in "fc" else 0
    if not bad:
        bad = _nonfinite_in_nifti(path)
    if bad:
        raise InputError(f"{path}: {what} has {bad} NaN or infinite voxel(s); only finite values are accepted")


def _nonfinite_in_nifti(path) -> int:
    """NaN/Inf values stored in a floating-point NIfTI file (0 for other files or when nibabel cannot tell)."""
    if not str(path).lower().endswith((".nii", ".nii.gz")):
        return 0
    try:
        import nibabel as nib

        img = nib.load(str(path))
        if np.dtype(img.get_data_dtype()).kind not in "fc":
            return 0
        data = np.asanyarray(img.dataobj)
        return int(data.size - np.count_nonzero(np.isfinite(data)))
    except Exception:  # nibabel missing or unable to read what SimpleITK read: nothing more to check
        return 0


def _names(cases: Sequence[str], n: int = 5) -> str:
    return ", ".join(cases[:n]) + (f" and {len(cases) - n} more" if len(cases) > n else "")


def check_case_sets(expected: Iterable[str], found: Iterable[str], expected_where, found_where, *,
                    allow_missing: bool = False, allow_extra: bool = False, what: str = "case") -> None:
    """Raise :class:`InputError` when two case sets differ (e.g. predictions vs references), naming the cases.

    Example:
        >>> check_case_sets(["a", "b"], ["a"], "labelsTs", "pred")
        Traceback (most recent call last):
        ...
        nnunet_ataxia.errors.InputError: pred: missing case(s) b that labelsTs has (1 of 2)
    """
    expected, found = set(expected), set(found)
    extra = sorted(found - expected)
    if extra and not allow_extra:
        raise InputError(f"{found_where}: {what}(s) {_names(extra)} have no counterpart in {expected_where}")
    missing = sorted(expected - found)
    if missing and not allow_missing:
        raise InputError(f"{found_where}: missing {what}(s) {_names(missing)} that {expected_where} has "
                         f"({len(missing)} of {len(expected)})")


def read_text(path: str | os.PathLike, what: str = "text file") -> str:
    """A UTF-8 text file; missing, binary or undecodable files raise :class:`InputError`."""
    p = require_file(path, what)
    try:
        text = p.read_bytes().decode("utf-8-sig")  # a byte-order mark (Excel's "CSV UTF-8") is dropped
    except UnicodeDecodeError:
        raise InputError(f"{p}: {what} is not UTF-8 text (corrupt or binary file?)") from None
    if "\x00" in text:
        raise InputError(f"{p}: {what} holds binary data (corrupt file?)")
    return text


def read_json(path: str | os.PathLike, what: str = "JSON file", expect: type | None = dict) -> Any:
    """Parse a JSON file; missing, truncated or malformed files (or another top-level type) raise InputError."""
    p = Path(path)
    try:
        data = json.loads(read_text(p, what))
    except json.JSONDecodeError as e:
        raise InputError(f"{p}: {what} is not valid JSON ({e.msg} at line {e.lineno}; truncated or edited "
                         f"by hand?)") from None
    if expect is not None and not isinstance(data, expect):
        raise InputError(f"{p}: {what} should hold a JSON {expect.__name__}, found {type(data).__name__}")
    return data


def read_npz_array(path: str | os.PathLike, key: str, what: str = "probability file") -> np.ndarray:
    """One array of a ``.npz`` file; truncated or corrupt archives, a missing key or NaN/Inf raise InputError."""
    import zipfile
    import zlib

    p = require_file(path, what)
    try:
        with np.load(p, allow_pickle=False) as f:
            array = f[key] if key in f.files else None
            found = f.files[:5]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise InputError(f"{p}: cannot read {what} (corrupt or truncated .npz: {_first_line(e)})") from None
    if array is None:
        raise InputError(f"{p}: {what} has no array '{key}' (found {found})")
    check_finite(array, p, what)
    return array


def read_table(path: str | os.PathLike, *, what: str = "table", sep: str | None = None,
               required: Sequence[str] = (), numeric: Sequence[str] = (), positive: Sequence[str] = (),
               id_column: str | None = None, group_column: str | None = None,
               known_groups: Sequence[str] | None = KNOWN_GROUPS, lower_case_columns: bool = False,
               aliases: dict[str, str] | None = None):
    """Read a CSV/TSV and check it; every problem raises :class:`InputError` naming the file (and row).

    Args:
        path: the file; ``.tsv`` is tab-separated, anything else comma-separated unless ``sep`` is given.
        what: what the table is, for messages.
        required: columns that must be present.
        numeric, positive: columns whose non-empty values must be numbers / whose values must be numbers > 0
            (both converted to float).
        id_column: column whose values must be present and unique.
        group_column, known_groups: column of participant groups (lower-cased; empty allowed) and the allowed ones.
        lower_case_columns: lower-case the column names first.
        aliases: ``{other name: column}``: ``other name`` is renamed to ``column`` when ``column`` is absent.

    Returns:
        The ``pandas.DataFrame`` (values stripped, numeric columns as float).

    Example:
        >>> df = read_table("volumes.csv", required=["case_id", "model"], positive=["model"],  # doctest: +SKIP
        ...                 id_column="case_id")
    """
    import io

    import pandas as pd

    p = Path(path)
    text = read_text(p, what)
    try:
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False,
                         sep=sep or ("\t" if p.name.lower().endswith(".tsv") else ","))
    except (ValueError, pd.errors.ParserError) as e:  # EmptyDataError is a ValueError
        raise InputError(f"{p}: cannot parse {what} ({_first_line(e)})") from None
    df.columns = [str(c).strip().lower() if lower_case_columns else str(c).strip() for c in df.columns]
    df = df.rename(columns={o: c for o, c in (aliases or {}).items() if c not in df.columns})
    missing = [c for c in required if c not in df.columns]
    if missing or df.columns.duplicated().any():
        raise InputError(f"{p}: {what} lacks column(s) {missing} or repeats one (found {list(df.columns)})")
    if df.empty:
        raise InputError(f"{p}: {what} has no rows")
    df = df.apply(lambda col: col.astype(str).str.strip())
    has_id = id_column is not None and id_column in df.columns

    def row(i) -> str:
        return f"{id_column} '{df.at[i, id_column]}'" if has_id else f"row {i + 2}"

    if has_id and ((df[id_column] == "").any() or df[id_column].duplicated().any()):
        i = df.index[(df[id_column] == "") | df[id_column].duplicated()][0]
        raise InputError(f"{p}: {what} lists {id_column} '{df.at[i, id_column]}' twice or empty (row {i + 2}; "
                         f"duplicated subject?)")
    for c in [c for c in dict.fromkeys([*numeric, *positive]) if c in df.columns]:
        values = pd.to_numeric(df[c].where(df[c] != "", None), errors="coerce").astype(float)
        bad = df.index[(df[c] != "") & values.isna()]
        if len(bad):
            raise InputError(f"{p}: {what} column '{c}' holds a non-numeric value '{df.at[bad[0], c]}' "
                             f"({row(bad[0])})")
        bad = df.index[~(np.isfinite(values) & (values > 0))] if c in positive else []
        if len(bad):
            raise InputError(f"{p}: {what} column '{c}' must hold positive values, found "
                             f"{df.at[bad[0], c] or 'an empty cell'} ({row(bad[0])})")
        df[c] = values
    if group_column is not None and group_column in df.columns:
        df[group_column] = df[group_column].str.lower()
        bad = df.index[~df[group_column].isin([*known_groups, ""])] if known_groups is not None else []
        if len(bad):
            raise InputError(f"{p}: {what} has an unknown group '{df.at[bad[0], group_column]}' ({row(bad[0])}); "
                             f"known groups: {', '.join(known_groups)}")
    return df


def dataframe_markdown(df, digits: int = 1) -> str:
    """A DataFrame as a Markdown (GitHub) table, rendered by pandas (``DataFrame.to_markdown``).

    Floats get ``digits`` decimals (NaN: ``n/a``); every other cell is written as its text, verbatim (no re-parsing of
    numbers in strings); ``|`` inside a cell is escaped. Column names may repeat (e.g. ``""`` under a spanning header).

    Example:
        >>> import pandas as pd
        >>> print(dataframe_markdown(pd.DataFrame({"method": ["M2", "M1"], "Dice": [0.9261, float("nan")]}), 3))
        | method   | Dice   |
        |----------|--------|
        | M2       | 0.926  |
        | M1       | n/a    |
    """
    import pandas as pd

    def fmt(v) -> str:
        if isinstance(v, (float, np.floating)):
            return "n/a" if v != v else f"{v:.{digits}f}"
        return str(v).replace("|", "\\|")

    cells = [[fmt(v) for v in row] for row in df.itertuples(index=False)]
    text = pd.DataFrame(cells, columns=[fmt(c) for c in df.columns])
    return text.to_markdown(index=False, tablefmt="github", disable_numparse=True)
