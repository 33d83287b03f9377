"""Reading back the Markdown tables the commands write (pandas' ``to_markdown``, GitHub style: padded cells)."""
from __future__ import annotations

import re

_SEPARATOR = re.compile(r"^\|[\s:|-]+\|\s*$")


def _cells(line: str) -> list[str]:
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip()[1:-1])]


def markdown_tables(md: str) -> list[list[list[str]]]:
    """Every pipe table of ``md``: its rows (header first, the separator row left out) as lists of stripped cells.

    Example:
        >>> markdown_tables("text\\n| a   | b |\\n|-----|---|\\n| x\\\\|y | 1 |\\n\\nmore")
        [[['a', 'b'], ['x|y', '1']]]
    """
    tables, rows = [], []
    for line in md.splitlines() + [""]:
        if line.startswith("|"):
            if not _SEPARATOR.match(line):
                rows.append(_cells(line))
        elif rows:
            tables.append(rows)
            rows = []
    return tables


def tables_with_header(md: str, *header_start: str) -> list[list[list[str]]]:
    """The tables of ``md`` whose header row begins with the cells ``header_start``."""
    return [t for t in markdown_tables(md) if t[0][: len(header_start)] == list(header_start)]


def header_position(md: str, *header_start: str) -> int:
    """Where in ``md`` the first table with that header begins (for checks of order)."""
    pattern = r"^\|" + r"\|".join(rf"\s*{re.escape(c)}\s*" for c in header_start) + r"\|"
    match = re.search(pattern, md, flags=re.M)
    assert match, f"no table with the header {header_start}"
    return match.start()
