"""The one exception type that the command line turns into a clear message and a non-zero exit."""
from __future__ import annotations

import errno


class InputError(Exception):
    """Bad user input: a missing file, wrong labels, mismatched geometry, an unknown dataset...

    The message must name the file (or dataset/case) and the problem; ``nnunet-ataxia`` prints it as
    ``error: <message>`` and exits with status 1, without a traceback.
    """


_OS_HINTS = {errno.ENOSPC: "free some space or write elsewhere", errno.EROFS: "write the output elsewhere",
             errno.EACCES: "check the permissions or write elsewhere", errno.EPERM: "check the permissions"}


def os_error_message(error: OSError) -> str:
    """One line for an OS error, naming the file first: ``<file>: <problem>[; <hint>]``.

    Example:
        >>> os_error_message(PermissionError(13, "Permission denied", "/data/out"))
        '/data/out: Permission denied; check the permissions or write elsewhere'
    """
    name = error.filename if error.filename is not None else getattr(error, "filename2", None)
    problem = error.strerror or str(error) or type(error).__name__
    hint = _OS_HINTS.get(error.errno or -1)
    text = f"{name}: {problem}" if name is not None else f"{type(error).__name__}: {problem}"
    return f"{text}; {hint}" if hint else text


def one_line(message: str) -> str:
    """Collapse whitespace and newlines so that a message prints as one line."""
    return " ".join(str(message).split())
