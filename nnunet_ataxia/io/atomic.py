"""Write an output folder atomically: build it in a temporary sibling, move it into place on success.

:func:`atomic_output_dir` is the low-level primitive; commands use
:func:`nnunet_ataxia.io.output_folders.output_folder`, which first checks that the output folder may be written
(new, empty, or an earlier output of the same command; never an input) and leaves a marker file in it.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from nnunet_ataxia.errors import InputError

_UMASK = os.umask(0o022)   # the process's umask (os.umask can only be read by setting it)
os.umask(_UMASK)


def _inside(path: str | None, folder: Path) -> bool:
    if not path:
        return False
    try:
        Path(os.path.abspath(path)).relative_to(os.path.abspath(folder))
        return True
    except ValueError:
        return False


@contextmanager
def atomic_output_dir(final_dir: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary folder next to ``final_dir``; move it to ``final_dir`` only if the block succeeds.

    On any exception (including Ctrl-C) the temporary folder is deleted and ``final_dir`` is left exactly as it was,
    so a failed command never leaves a half-written output behind. With ``overwrite=True`` an existing ``final_dir``
    is replaced (re-running a command on its own output is safe); the old folder is removed only after the new one
    is in place. OS errors while creating, writing or moving the output (permissions, read-only file system, disk
    full) become one :class:`InputError` naming ``final_dir``. The folder gets the permissions of one made by
    ``mkdir`` (``0o777`` minus the umask), not ``mkdtemp``'s private ``0o700``.

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
    # parent folders created here are removed again on failure
    created = [p for p in [final_dir.parent, *final_dir.parent.parents] if not p.exists()]
    try:
        final_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final_dir.name}.tmp-", dir=final_dir.parent))
        os.chmod(tmp, 0o777 & ~_UMASK)   # mkdtemp makes it private (0700); the output is an ordinary folder
    except OSError as e:
        _remove_empty(created)
        raise InputError(f"{final_dir}: cannot create the output folder ({e.strerror or e})") from None
    try:
        yield tmp
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_empty(created)
        translated = _translated(e, tmp, final_dir)
        if translated is e:
            raise
        raise translated from None
    _commit(tmp, final_dir)


def _remove_empty(folders) -> None:
    for folder in folders:  # deepest first
        try:
            folder.rmdir()
        except OSError:
            return


def _commit(tmp: Path, final_dir: Path) -> None:
    """Move the finished temporary folder to ``final_dir`` (replacing an old one only once the new one is there)."""
    old = None
    try:
        if final_dir.exists() or final_dir.is_symlink():
            old = final_dir.parent / f".{final_dir.name}.old-{os.getpid()}"
            os.replace(final_dir, old)
        os.replace(tmp, final_dir)
    except BaseException as e:
        if old is not None and not final_dir.exists():
            os.replace(old, final_dir)
            old = None
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError):
            raise InputError(f"{final_dir}: cannot move the new output into place ({e.strerror or e}); nothing "
                             f"was changed") from None
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _translated(error: BaseException, tmp: Path, final_dir: Path) -> BaseException:
    """The exception to raise for ``error`` raised while writing into ``tmp`` (one line naming ``final_dir``)."""
    if isinstance(error, OSError) and (_inside(error.filename, tmp) or
                                       _inside(getattr(error, "filename2", None), tmp)):
        return InputError(f"{final_dir}: cannot write the output ({error.strerror or error}); nothing was changed")
    if isinstance(error, KeyboardInterrupt) and not error.args:
        return KeyboardInterrupt(f"{final_dir}: interrupted before the output was complete; the folder is left as "
                                 f"it was")
    return error
