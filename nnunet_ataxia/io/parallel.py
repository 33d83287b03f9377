"""Apply a function to many cases in worker processes, with a progress bar (the one parallel map of the project).
"""
from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from typing import Any, Callable, Sequence

__all__ = ["run_cases"]

def _call(func: Callable, item) -> Any:
    return func(item)


def run_cases(func: Callable[[Any], Any], cases: Sequence, num_processes: int, desc: str) -> list:
    """Apply ``func`` to every case, in ``num_processes`` worker processes, with a tqdm progress bar.

    Results come back in the order of ``cases``. An :class:`InputError` raised in a worker reaches the caller as an
    :class:`InputError` with the same message (the remaining cases are cancelled). ``func`` and the cases must be
    picklable (module-level functions, plain data). Workers are started with ``spawn`` (safe with SimpleITK's
    threads).

    Args:
        func: called as ``func(case)``.
        cases: the work items.
        num_processes: 1 runs everything in this process.
        desc: label of the progress bar.

    Example:
        >>> run_cases(abs, [-1, -2], num_processes=1, desc="abs")
        [1, 2]
    """
    from tqdm import tqdm

    cases = list(cases)
    if not cases:
        return []
    results: list = [None] * len(cases)
    with tqdm(total=len(cases), desc=desc, unit="case", disable=None) as bar:  # shown on a terminal only
        if num_processes <= 1 or len(cases) == 1:
            for i, c in enumerate(cases):
                results[i] = func(c)
                bar.update()
            return results
        with ProcessPoolExecutor(max_workers=min(num_processes, len(cases)), mp_context=get_context("spawn")) as ex:
            futures = {ex.submit(_call, func, c): i for i, c in enumerate(cases)}
            try:
                for fut in as_completed(futures):
                    results[futures[fut]] = fut.result()
                    bar.update()
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
    return results
