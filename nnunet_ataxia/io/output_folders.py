"""Output folders that never destroy a user's files.

Every ``nnunet-ataxia`` command that writes a folder goes through :func:`output_folder`:

* the folder may be **new**, **empty**, or an **earlier output of the same command** (recognized by the marker file
  ``.nnunet-ataxia-output.json`` that every command leaves in its output); anything else is refused with one line
  naming the folder, unless the user passes ``--overwrite``;
* an output folder **equal to, inside, or containing an input** is always refused (even with ``--overwrite``), as is
  one that is, or contains, the current working folder or the home folder;
* the output is built in a temporary sibling folder and moved into place only when complete
  (:func:`nnunet_ataxia.io.atomic.atomic_output_dir`): a failure or Ctrl-C leaves the old folder as it was.

Adopting it in a command::

    from nnunet_ataxia.io.output_folders import add_overwrite_argument, output_folder

    def add_arguments(parser):
        parser.add_argument("-o", "--output", required=True)
        add_overwrite_argument(parser)

    def run(args):
        with output_folder(args.output, "my-command", inputs=[args.input], overwrite=args.overwrite) as tmp:
            ...  # write everything into tmp
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from nnunet_ataxia.errors import InputError
from nnunet_ataxia.io.atomic import atomic_output_dir

__all__ = ["MARKER_NAME", "add_overwrite_argument", "check_output_folder", "check_not_overlapping", "output_folder",
           "read_marker", "write_marker"]

#: the marker file every command leaves in its output folder (JSON, at least {"command": "<sub-command>"})
MARKER_NAME = ".nnunet-ataxia-output.json"


def add_overwrite_argument(parser: argparse.ArgumentParser) -> None:
    """Add the shared ``--overwrite`` option to a sub-command's parser."""
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing output folder even if it is not an earlier output of this command "
                             "(never one that holds, or lies inside, an input)")


def _real(path: str | os.PathLike) -> Path:
    return Path(os.path.realpath(os.path.expanduser(str(path))))


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def read_marker(folder: str | os.PathLike) -> dict | None:
    """The marker of an earlier nnunet-ataxia output in ``folder`` (None when absent or unreadable)."""
    try:
        data = json.loads((Path(folder) / MARKER_NAME).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_marker(folder: str | os.PathLike, command: str, info: Mapping | None = None) -> Path:
    """Write the marker ``.nnunet-ataxia-output.json`` (command, package version, time, ``info``) into ``folder``."""
    from nnunet_ataxia import __version__

    data = {"command": command, "nnunet_ataxia_version": __version__,
            "written": _dt.datetime.now().isoformat(timespec="seconds"), **dict(info or {})}
    path = Path(folder) / MARKER_NAME
    path.write_text(json.dumps(data, indent=1, default=str) + "\n")
    return path


def check_not_overlapping(output: str | os.PathLike, inputs: Iterable[str | os.PathLike | None],
                          what: str = "output folder") -> None:
    """Refuse an output folder that is, contains or lies inside one of ``inputs``, the working or home folder."""
    out = _real(output)
    for item in inputs:
        if item is None or str(item) == "":
            continue
        inp = _real(item)
        if out == inp:
            raise InputError(f"{output}: the {what} is also an input ({item}); choose another {what}")
        if _within(inp, out):
            raise InputError(f"{output}: the {what} contains the input {item}, which replacing it would destroy; "
                             f"choose another {what}")
        if _within(out, inp):
            raise InputError(f"{output}: the {what} lies inside the input {item}; choose another {what} outside it")
    for name, special in (("the current working folder", _real(os.getcwd())), ("your home folder", _real("~"))):
        if _within(special, out):
            raise InputError(f"{output}: the {what} is or contains {name}; choose another, dedicated {what}")
    if out.parent == out:
        raise InputError(f"{output}: the file-system root cannot be an {what}")


def check_output_folder(output: str | os.PathLike, command: str, *,
                        inputs: Iterable[str | os.PathLike | None] = (), overwrite: bool = False,
                        recognize: Sequence[str] = ()) -> Path:
    """Check that ``command`` may write (replace) the folder ``output``; raise :class:`InputError` otherwise.

    Args:
        output: the output folder.
        command: the sub-command (as in its marker).
        inputs: every input file or folder of the command (``None`` entries are skipped).
        overwrite: the user passed ``--overwrite`` (a non-empty foreign folder may be replaced).
        recognize: file names that, all present, identify an earlier output of ``command`` written before the
            marker existed (e.g. ``conversion_manifest.json``).

    Returns:
        ``output`` as a Path.

    Example:
        >>> check_output_folder("eval", "evaluate", inputs=["pred", "labelsTs"])  # doctest: +SKIP
        PosixPath('eval')
    """
    out = Path(os.path.expanduser(str(output)))
    check_not_overlapping(out, inputs)
    if not (out.exists() or out.is_symlink()):
        return out
    if not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder; give a folder path for the output")
    try:
        empty = next(out.iterdir(), None) is None
    except OSError as e:
        raise InputError(f"{out}: cannot read the output folder ({e.strerror or e})") from None
    if empty:
        return out
    marker = read_marker(out)
    if marker is not None and marker.get("command") == command:
        return out
    if marker is None and recognize and all((out / name).exists() for name in recognize):
        return out
    if overwrite:
        return out
    other = f" (it is the output of 'nnunet-ataxia {marker.get('command')}')" if marker else ""
    raise InputError(f"{out}: folder exists and is not an earlier output of 'nnunet-ataxia {command}'{other}; "
                     f"refusing to replace it: choose a new or empty folder, or pass --overwrite")


@contextmanager
def output_folder(output: str | os.PathLike, command: str, *, inputs: Iterable[str | os.PathLike | None] = (),
                  overwrite: bool = False, recognize: Sequence[str] = (), info: Mapping | None = None
                  ) -> Iterator[Path]:
    """Check ``output`` (:func:`check_output_folder`), then yield a temporary folder that becomes ``output``.

    The marker file is written last, into the temporary folder; the folder replaces ``output`` only when the block
    succeeds. On an error or Ctrl-C nothing is changed.

    Args:
        output, command, inputs, overwrite, recognize: see :func:`check_output_folder`.
        info: extra fields for the marker.

    Example:
        >>> with output_folder("eval", "evaluate", inputs=["pred"]) as tmp:  # doctest: +SKIP
        ...     (tmp / "summary.json").write_text("{}")
    """
    final = check_output_folder(output, command, inputs=list(inputs), overwrite=overwrite, recognize=recognize)
    with atomic_output_dir(final) as tmp:
        yield tmp
        write_marker(tmp, command, info)
