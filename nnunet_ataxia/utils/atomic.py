"""Write an output folder atomically: build it in a temporary sibling, move it into place on success."""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_output_dir(final_dir: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary folder next to ``final_dir``; move it to ``final_dir`` only if the block succeeds.

    On any exception the temporary folder is deleted and ``final_dir`` is left exactly as it was, so a failed
    command never leaves a half-written dataset behind. With ``overwrite=True`` an existing ``final_dir`` is
    replaced (re-running a command on its own output is safe); the old folder is removed only after the new
    one is complete.

    Args:
        final_dir: where the finished folder should end up.
        overwrite: replace an existing ``final_dir``; if False and it exists, raise ``FileExistsError``.

    Example:
        >>> with atomic_output_dir("/data/nnUNet_raw/Dataset501_Hammers") as tmp:  # doctest: +SKIP
        ...     (tmp / "dataset.json").write_text("{}")
    """
    final_dir = Path(final_dir)
    if final_dir.exists() and not overwrite:
        raise FileExistsError(f"{final_dir} exists already")
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final_dir.name}.tmp-", dir=final_dir.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if final_dir.exists():
        old = final_dir.parent / f".{final_dir.name}.old-{os.getpid()}"
        os.replace(final_dir, old)
    os.replace(tmp, final_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
