"""Content fingerprints of files and folders: what a resumable command records to recognise its earlier work.

A file's fingerprint is its size and the SHA-256 of its whole content (not its name or modification time: a copied
file keeps its fingerprint, an edited file with the same name gets a new one). Hashes are cached per process by
(path, size, modification time), so a file read twice in one run is hashed once.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

__all__ = ["file_fingerprint", "files_fingerprint", "missing_files"]

_CACHE: dict[tuple[str, int, int], str] = {}
_BLOCK = 1 << 20


def file_fingerprint(path: str | os.PathLike) -> dict:
    """``{"size": bytes, "sha256": hex digest of the whole file}``.

    Args:
        path: the file (an OS error such as a missing file propagates).

    Example:
        >>> import tempfile
        >>> f = os.path.join(tempfile.mkdtemp(), "a.txt")
        >>> _ = open(f, "w").write("abc")
        >>> file_fingerprint(f)["size"], file_fingerprint(f)["sha256"][:12]
        (3, 'ba7816bf8f01')
    """
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    digest = _CACHE.get(key)
    if digest is None:
        sha = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(_BLOCK), b""):
                sha.update(block)
        digest = _CACHE[key] = sha.hexdigest()
    return {"size": stat.st_size, "sha256": digest}


def files_fingerprint(folder: str | os.PathLike, relative: Iterable[str]) -> dict:
    """``{relative path: file_fingerprint}`` of the given files of ``folder`` (a missing one maps to None).

    Example:
        >>> files_fingerprint("model", ["plans.json", "fold_0/checkpoint_final.pth"])  # doctest: +SKIP
        {'plans.json': {'size': 2875, 'sha256': '...'}, 'fold_0/checkpoint_final.pth': {...}}
    """
    folder = Path(folder)
    out = {}
    for rel in relative:
        path = folder / rel
        out[rel] = file_fingerprint(path) if path.is_file() else None
    return out


def missing_files(folder: str | os.PathLike, relative: Iterable[str]) -> list[str]:
    """The paths of ``relative`` that are not files under ``folder``.

    Example:
        >>> missing_files("out", ["sub-01/segment.json", "qc/sub-01.png"])  # doctest: +SKIP
        ['qc/sub-01.png']
    """
    folder = Path(folder)
    return [rel for rel in relative if not (folder / rel).is_file()]
