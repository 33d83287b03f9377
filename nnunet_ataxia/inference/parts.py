"""A cohort segmented in parts (``segment --num-parts N --part-id I``) and the parts merged into one output.

The split is nnU-Net's (``nnUNetv2_predict -num_parts N -part_id I``): the cases sorted by case id, part ``I`` takes
every ``N``-th one starting at the ``I``-th (``cases[I::N]``, ``I`` from 0). A part's folder is an ordinary
``segment`` output of its cases plus ``segment_part.json`` (:data:`PART_FILE`, written last: the part is finished),
which records the split, the whole cohort (count and SHA-256 of its case ids), the input, the model and the options.

:func:`merge_parts` checks that the parts fit together (same split, cohort, input, model and options; every part
once; each finished) and builds one output folder as a single run would have written it: every part's subject
folders, QC pictures and BIDS-derivatives files (hard links where the file system allows, else copies), then
``volumes.csv``, ``qc/index.html`` and, for a BIDS input, ``dataset_description.json`` and ``.bidsignore`` written
from all rows. The merged folder is a ``segment`` output: a later ``segment`` run into it skips every done subject.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nnunet_ataxia.errors import InputError
from nnunet_ataxia.inference.run_records import MODEL_CACHE, OUTPUT_MARKER, PART_FILE, QC_FOLDER, VOLUMES_TABLE
from nnunet_ataxia.inference.tables import read_volumes, write_tables
from nnunet_ataxia.io.atomic import atomic_output_dir
from nnunet_ataxia.io.output_folders import check_output_folder, read_marker, write_marker

__all__ = ["PART_FILE", "MergeResult", "check_part_folder", "cohort_fingerprint", "merge_parts", "select_part",
           "write_part_file"]

#: written from all rows by the merge, not taken from a part
_RUN_FILES = {OUTPUT_MARKER, PART_FILE, VOLUMES_TABLE, f".{VOLUMES_TABLE}.tmp", MODEL_CACHE,
              f"{QC_FOLDER}/index.html", "dataset_description.json", ".bidsignore"}


def select_part(cases: Sequence[str], num_parts: int, part_id: int) -> list[str]:
    """The cases of part ``part_id`` of ``num_parts``: ``sorted(cases)[part_id::num_parts]`` (as nnU-Net).

    Raises:
        InputError: ``part_id`` outside ``0 .. num_parts - 1``.

    Example:
        >>> select_part(["c", "a", "b", "d", "e"], 3, 0), select_part(["c", "a", "b", "d", "e"], 3, 2)
        (['a', 'd'], ['c'])
    """
    if int(num_parts) < 1 or not 0 <= int(part_id) < int(num_parts):
        raise InputError(f"--part-id {part_id} --num-parts {num_parts}: the part id runs from 0 to num-parts - 1")
    return sorted(cases)[int(part_id)::int(num_parts)]


def cohort_fingerprint(cases: Sequence[str]) -> dict:
    """How many cases and the SHA-256 of their sorted ids (the parts of one cohort share it).

    Example:
        >>> cohort_fingerprint(["b", "a"])["cases"]
        2
    """
    text = "\n".join(sorted(cases))
    return {"cases": len(cases), "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()}


def check_part_folder(out: str | os.PathLike, num_parts: int | None, part_id: int | None) -> None:
    """Refuse to write part ``part_id`` of ``num_parts`` (or a whole run: None) into a folder that holds another
    part or split.

    Example:
        >>> check_part_folder("seg_part0", 3, 0)  # doctest: +SKIP
    """
    path = Path(out) / PART_FILE
    if not path.is_file():
        return
    try:
        old = json.loads(path.read_text())
        key = (old["num_parts"], old["part_id"])
    except (OSError, ValueError, KeyError, TypeError):
        raise InputError(f"{path}: unreadable part record; use a new output folder") from None
    if num_parts is None or key != (num_parts, part_id):
        now = "a whole run" if num_parts is None else f"part {part_id} of {num_parts}"
        raise InputError(f"{out}: holds part {key[1]} of {key[0]} of a split run, this is {now}; use another "
                         f"output folder")


def write_part_file(out: str | os.PathLike, *, num_parts: int, part_id: int, cases: Sequence[str],
                    cohort: Sequence[str], source: str | os.PathLike, identity: dict) -> None:
    """Write ``segment_part.json`` (last, atomically): the part is finished.

    Args:
        out: the part's output folder.
        num_parts, part_id: the split.
        cases: this part's cases.
        cohort: every case of the cohort.
        source: the input (file, folder or BIDS root).
        identity: the model and options (``run_identity``'s ``model`` without its folder, and ``options``).

    Example:
        >>> write_part_file("seg_part0", num_parts=3, part_id=0, cases=["a"], cohort=["a", "b", "c"],  # doctest: +SKIP
        ...                 source="t1", identity={})
    """
    data = {"num_parts": int(num_parts), "part_id": int(part_id), "cases": list(cases),
            "cohort": cohort_fingerprint(cohort), "input": str(Path(source).resolve()), "identity": identity}
    tmp = Path(out) / f".{PART_FILE}.tmp"
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, Path(out) / PART_FILE)


@dataclass
class MergeResult:
    """What a merge wrote: the output folder, every row of ``volumes.csv`` and the failed cases."""
    output: Path
    rows: list[dict] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def _read_part(folder: Path) -> dict:
    marker = read_marker(folder)
    if not folder.is_dir() or marker is None or marker.get("command") != "segment":
        raise InputError(f"{folder}: not a segment output folder (no {OUTPUT_MARKER} from segment)")
    try:
        part = json.loads((folder / PART_FILE).read_text())
        part["num_parts"], part["part_id"], part["cases"]  # noqa: B018 (the keys must be there)
    except (OSError, ValueError, KeyError, TypeError):
        raise InputError(f"{folder}: not a finished part (no readable {PART_FILE}): run segment --num-parts N "
                         f"--part-id I into it and let it finish") from None
    columns, rows = read_volumes(folder / VOLUMES_TABLE) if (folder / VOLUMES_TABLE).is_file() else ([], [])
    if [r["case"] for r in rows] != list(part["cases"]):
        raise InputError(f"{folder / VOLUMES_TABLE}: does not list this part's {len(part['cases'])} subject(s); the "
                         f"part did not finish: run it again")
    return {**part, "folder": folder, "columns": columns, "rows": rows}


def _check_fit(parts: list[dict]) -> None:
    first = parts[0]
    for part in parts[1:]:
        for key, what in (("num_parts", "number of parts"), ("input", "input"), ("cohort", "set of subjects"),
                          ("identity", "model or options")):
            if part.get(key) != first.get(key):
                raise InputError(f"{part['folder']}: does not fit with {first['folder']}: another {what} "
                                 f"({part.get(key) if key != 'identity' else '...'} vs "
                                 f"{first.get(key) if key != 'identity' else '...'}); merge parts of one split run")
    n = first["num_parts"]
    seen: dict[int, Path] = {}
    for part in parts:
        if part["part_id"] in seen:
            raise InputError(f"{part['folder']}: part {part['part_id']} of {n} again (also {seen[part['part_id']]}); "
                             f"give every part once")
        seen[part["part_id"]] = part["folder"]
    missing = [str(i) for i in range(n) if i not in seen]
    if missing:
        raise InputError(f"{', '.join(str(p['folder']) for p in parts)}: part(s) {', '.join(missing)} of {n} "
                         f"missing; give every part folder")
    cases = [c for p in parts for c in p["cases"]]
    if cohort_fingerprint(cases) != first["cohort"] or len(set(cases)) != len(cases):
        raise InputError(f"{first['folder']}: the parts' subjects overlap or do not make up the cohort they were "
                         f"split from; run the parts again into new folders")
    columns = {tuple(p["columns"]) for p in parts if p["rows"]}
    if len(columns) > 1:
        raise InputError(f"{first['folder']}: the parts' volumes.csv columns differ (one run with --participants, "
                         f"another without?); run the parts with the same options")


def _link_tree(source: Path, cases: Sequence[str], target: Path, origin: dict[str, Path]) -> None:
    """Link the part's own files into ``target``: its cases' folders and QC pictures, its BIDS subject folders."""
    wanted = set(cases)
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source).as_posix()
        top = rel.split("/")
        if not path.is_file() or rel in _RUN_FILES or any(t.startswith(".") for t in top):
            continue
        if not (top[0] in wanted or (top[0] == QC_FOLDER and len(top) == 2 and path.stem in wanted)
                or (top[0].startswith("sub-") and "_" not in top[0] and len(top) > 1)):
            continue
        if rel in origin:
            raise InputError(f"{path}: also in {origin[rel]}; the parts overlap")
        origin[rel] = source
        dest = target / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, dest)
        except OSError:
            shutil.copy2(path, dest)


def merge_parts(part_folders: Sequence[str | os.PathLike], output: str | os.PathLike) -> MergeResult:
    """Merge the part folders of a split ``segment`` run into one output folder, as a single run writes it.

    Args:
        part_folders: every part's output folder (any order).
        output: the merged output folder: new, empty, or an earlier merge's output (replaced atomically).

    Raises:
        InputError: a folder that is not a finished part, parts that do not fit together, a missing, repeated or
            overlapping part, or an output folder that may not be written.

    Example:
        >>> merged = merge_parts(["seg_part0", "seg_part1", "seg_part2"], "seg_all")  # doctest: +SKIP
        >>> len(merged.rows)  # doctest: +SKIP
        12
    """
    folders = [Path(p) for p in part_folders]
    if not folders:
        raise InputError("--merge: give the part folders")
    parts = [_read_part(f) for f in folders]
    _check_fit(parts)
    out = check_output_folder(output, "segment", inputs=folders)
    marker = read_marker(out)
    if marker is not None and "merged_from" not in marker:
        raise InputError(f"{out}: holds a segment run, not an earlier merge; merge into a new or empty folder")
    rows = sorted((r for p in parts for r in p["rows"]), key=lambda r: r["case"])
    bids = next((p["folder"] for p in parts if (p["folder"] / "dataset_description.json").is_file()), None)
    with atomic_output_dir(out) as tmp:
        origin: dict[str, Path] = {}
        for part in sorted(parts, key=lambda p: p["part_id"]):
            _link_tree(part["folder"], part["cases"], tmp, origin)
        write_tables(tmp, rows)
        if bids is not None:
            for name in ("dataset_description.json", ".bidsignore"):
                shutil.copyfile(bids / name, tmp / name)
        write_marker(tmp, "segment", {"input": parts[0]["input"],
                                      "merged_from": [str(p["folder"].resolve()) for p in parts]})
    return MergeResult(output=out, rows=rows, failed=[r["case"] for r in rows if r.get("status") != "ok"])
