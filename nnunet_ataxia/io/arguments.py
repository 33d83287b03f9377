"""argparse ``type=`` functions shared by the sub-commands: a bad value is a usage error (argparse's one line, exit
status 2) before any work starts.

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> _ = parser.add_argument("-np", type=positive_int, default=1)
    >>> parser.parse_args(["-np", "2"]).np
    2
"""
from __future__ import annotations

import argparse
import math
from collections.abc import Callable

__all__ = ["at_least", "dataset_id", "fold", "nonnegative_float", "nonnegative_int", "positive_float",
           "positive_int"]


def _number(text: str, kind: type, what: str):
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _integer_at_least(text: str, minimum: int) -> int:
    value = _number(text, int, "an integer")
    if value < minimum:
        raise argparse.ArgumentTypeError(f"{text} must be >= {minimum}")
    return value


def at_least(minimum: int) -> Callable[[str], int]:
    """An integer type accepting values >= ``minimum`` (e.g. a number of folds, of trees).

    Example:
        >>> at_least(2)("5")
        5
    """
    def parse(text: str) -> int:
        return _integer_at_least(text, minimum)
    parse.__name__ = f"integer >= {minimum}"
    return parse


def positive_int(text: str) -> int:
    """An integer >= 1 (a number of processes, cases, epochs).

    Example:
        >>> positive_int("3")
        3
    """
    return _integer_at_least(text, 1)


def nonnegative_int(text: str) -> int:
    """An integer >= 0 (a seed, a fold).

    Example:
        >>> nonnegative_int("0")
        0
    """
    return _integer_at_least(text, 0)


def positive_float(text: str) -> float:
    """A finite number > 0 (a spacing in mm, a width).

    Example:
        >>> positive_float("1.5")
        1.5
    """
    value = _number(text, float, "a number")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be > 0")
    return value


def nonnegative_float(text: str) -> float:
    """A finite number >= 0 (a weight, a smoothing width).

    Example:
        >>> nonnegative_float("0")
        0.0
    """
    value = _number(text, float, "a number")
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} must be >= 0")
    return value


def dataset_id(text: str) -> int:
    """An nnU-Net dataset id: an integer from 1 to 999 (nnU-Net names datasets ``DatasetXXX_Name``).

    Example:
        >>> dataset_id("501")
        501
    """
    value = _number(text, int, "an integer")
    if not 1 <= value <= 999:
        raise argparse.ArgumentTypeError(f"{text} must be 1 to 999 (nnU-Net's dataset ids)")
    return value


def fold(text: str) -> int | str:
    """A fold number (>= 0) or ``all``.

    Example:
        >>> fold("all"), fold("0")
        ('all', 0)
    """
    return "all" if text == "all" else nonnegative_int(text)
