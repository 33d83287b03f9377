"""Apply a function to many cases in worker processes, with a progress bar (the one parallel map of the project).
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from typing import Any

__all__ = ["run_cases", "threads_per_process", "available_cores", "nnunet_file_listing_in_threads"]


def available_cores() -> int:
    """The CPU cores this process may run on (its CPU affinity, as a batch system's allocation sets it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # no affinity on this platform (macOS)
        return max(1, os.cpu_count() or 1)


def threads_per_process(num_processes: int) -> int:
    """The CPU threads each of ``num_processes`` parallel processes gets: the available cores shared out, at least one.

    Args:
        num_processes: processes running side by side.

    Example:
        >>> threads_per_process(10 ** 6)
        1
        >>> threads_per_process(1) == available_cores()
        True
    """
    return max(1, available_cores() // max(1, int(num_processes)))


def _set_itk_threads(threads: int) -> None:
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(int(threads))


def _limit_itk_threads(threads: int) -> int:
    """Set SimpleITK's default thread count to ``threads``, or lower if it was lower already (e.g. by
    ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS``); return the count it had."""
    import SimpleITK as sitk

    before = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    _set_itk_threads(max(1, min(int(threads), before)))
    return before


def _call(func: Callable, item) -> Any:
    return func(item)


def _start_worker(itk_threads: int, initializer: Callable[..., None] | None, initargs: tuple) -> None:
    _limit_itk_threads(itk_threads)
    if initializer is not None:
        initializer(*initargs)


def _terminate_workers(executor: ProcessPoolExecutor) -> None:
    """Stop an interrupted pool's worker processes now (its running cases cannot be cancelled): a worker left
    running would keep writing after the command has exited."""
    for process in list((getattr(executor, "_processes", None) or {}).values()):
        if process.is_alive():
            process.terminate()
    executor.shutdown(wait=True, cancel_futures=True)


def run_cases(func: Callable[[Any], Any], cases: Sequence, num_processes: int, desc: str, *,
              initializer: Callable[..., None] | None = None, initargs: tuple = (),
              on_result: Callable[[Any, Any], None] | None = None,
              on_error: Callable[[Any, BaseException], Any] | None = None,
              progress: bool = True, unit: str = "case") -> list:
    """Apply ``func`` to every case, in ``num_processes`` worker processes, with a tqdm progress bar.

    Every case runs with SimpleITK's default thread count set to :func:`threads_per_process` of ``num_processes``
    (or lower, where ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS`` says so), in a worker or in this process (whose setting
    is restored afterwards): the workers do not oversubscribe the cores, and a filter's result does not depend on
    how many cases a run happens to have. With one thread per process, SimpleITK's N4 and registration repeat bit
    for bit; with more, they can differ in the last digits between runs.

    Results come back in the order of ``cases``. An :class:`InputError` raised in a worker reaches the caller as an
    :class:`InputError` with the same message (the remaining cases are cancelled). ``func``, the cases, the
    initializer and its arguments must be picklable (module-level functions, plain data). Workers are started with
    ``spawn`` (safe with SimpleITK's threads); Ctrl-C (or SIGTERM, which the CLI turns into Ctrl-C) stops them, the
    running cases included. The progress bar is shown on a terminal only.

    Args:
        func: called as ``func(case)``.
        cases: the work items.
        num_processes: 1 (or a single case) runs everything in this process; also sets the SimpleITK threads.
        desc: label of the progress bar.
        initializer: called as ``initializer(*initargs)`` once in every worker process before its first case (to
            load a model once per worker). Not called when everything runs in this process: the caller sets up its
            own process.
        initargs: the initializer's arguments.
        on_result: called in this process as ``on_result(case, result)`` as each case finishes (in the order they
            finish); an exception it raises cancels the cases not started and reaches the caller.
        on_error: when given, an exception of ``func`` (or a worker process that died, e.g. killed for memory:
            ``BrokenProcessPool``) does not stop the run: ``on_error(case, exception)`` gives that case's result.
        progress: False never shows the bar.
        unit: the bar's unit.

    Example:
        >>> run_cases(abs, [-1, -2], num_processes=1, desc="abs")
        [1, 2]
        >>> run_cases(int, ["1", "x"], num_processes=1, desc="int", on_error=lambda case, e: type(e).__name__)
        [1, 'ValueError']
    """
    from tqdm import tqdm

    cases = list(cases)
    if not cases:
        return []
    results: list = [None] * len(cases)

    def finish(i: int, result, bar) -> None:
        results[i] = result
        if on_result is not None:
            on_result(cases[i], result)
        bar.update()

    itk_threads = threads_per_process(num_processes)
    with tqdm(total=len(cases), desc=desc, unit=unit, disable=None if progress else True) as bar:
        if num_processes <= 1 or len(cases) == 1:
            before = _limit_itk_threads(itk_threads)
            try:
                for i, c in enumerate(cases):
                    try:
                        result = func(c)
                    except Exception as e:
                        if on_error is None:
                            raise
                        result = on_error(c, e)
                    finish(i, result, bar)
            finally:
                _set_itk_threads(before)
            return results
        with ProcessPoolExecutor(max_workers=min(num_processes, len(cases)), mp_context=get_context("spawn"),
                                 initializer=_start_worker, initargs=(itk_threads, initializer, initargs)) as ex:
            futures = {ex.submit(_call, func, c): i for i, c in enumerate(cases)}
            try:
                for fut in as_completed(futures):
                    i = futures[fut]
                    try:
                        result = fut.result()
                    except Exception as e:
                        if on_error is None:
                            raise
                        result = on_error(cases[i], e)
                    finish(i, result, bar)
            except BaseException:
                for f in futures:
                    f.cancel()
                if not isinstance(sys.exc_info()[1], Exception):  # Ctrl-C, SIGTERM: stop the running cases too
                    _terminate_workers(ex)
                raise
    return results


def nnunet_file_listing_in_threads() -> None:
    """Make nnU-Net list a raw dataset's image files in threads instead of forked processes (idempotent).

    nnU-Net's ``create_lists_from_splitted_dataset_folder`` (called by its dataset integrity check and its
    fingerprint extraction) matches file names with a regular expression in a ``multiprocessing.Pool`` of 12
    processes of the default start method, which is fork on Linux. Forked from a process that has run SimpleITK's
    threads and this project's worker pools, such a worker can block for ever on a lock it inherited held, and the
    command with it (seen in ``convert-wmh``: the worker waiting on a semaphore, the command on the worker). The
    work is a few string matches, so a thread pool (``multiprocessing.dummy.Pool``, the same interface) does it
    without forking. Call it before running nnU-Net's checks in this project's processes.

    Example:
        >>> nnunet_file_listing_in_threads()
        >>> import multiprocessing.dummy, nnunetv2.utilities.utils
        >>> nnunetv2.utilities.utils.Pool is multiprocessing.dummy.Pool
        True
    """
    import multiprocessing.dummy

    import nnunetv2.utilities.utils as nnunet_utils

    nnunet_utils.Pool = multiprocessing.dummy.Pool
