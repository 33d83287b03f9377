"""nnU-Net's raw-dataset integrity check, turned into one :class:`InputError` that names the file at fault.

The converters run it on the dataset they are writing (in its temporary folder, before the move) and ``plan`` runs
it on the dataset it is asked to plan; both go through :func:`verify_raw_dataset`.
"""
from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

from nnunet_ataxia.errors import InputError
from nnunet_ataxia.io.files import read_json
from nnunet_ataxia.io.parallel import nnunet_file_listing_in_threads

__all__ = ["verify_raw_dataset"]


def verify_raw_dataset(folder: str | os.PathLike, num_processes: int = 1,
                       shown_as: str | os.PathLike | None = None) -> None:
    """Run nnU-Net's ``verify_dataset_integrity`` on a raw dataset; a failure names the file nnU-Net objects to.

    What nnU-Net prints in this process (its closing banner, its messages about the dataset as a whole) is kept off
    the terminal and goes into the error line when the check fails; its per-case warnings come from its worker
    processes and still reach the terminal.
    The file at fault is found by re-running nnU-Net's per-case checks one case at a time, only after a failure.

    Args:
        folder: the ``DatasetXXX_Name`` folder with ``dataset.json``, ``imagesTr`` and ``labelsTr``.
        num_processes: processes for nnU-Net's check.
        shown_as: the folder's name in the message, when ``folder`` is a temporary stand-in for it (a converter's
            dataset before it is moved into place); paths inside ``folder`` are shown inside ``shown_as``.

    Raises:
        InputError: ``<file>: nnU-Net's dataset integrity check failed: <nnU-Net's explanation>``.

    Example:
        >>> verify_raw_dataset("/data/nnUNet_raw/Dataset501_HammersN30R95", num_processes=2)  # doctest: +SKIP
    """
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    folder = Path(folder)
    nnunet_file_listing_in_threads()
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            verify_dataset_integrity(str(folder), num_processes=max(1, num_processes))
    except Exception as e:  # nnU-Net raises AssertionError, RuntimeError, ... with its own explanation
        culprit, detail = _integrity_culprit(folder, f"{e} {printed.getvalue()}")
        if shown_as is not None:
            culprit = Path(shown_as) / culprit.relative_to(folder)
        raise InputError(f"{culprit}: nnU-Net's dataset integrity check failed: {detail}") from None


def _integrity_culprit(raw_folder: Path, message: str) -> tuple[Path, str]:
    """The file (or folder) that nnU-Net's integrity check ``message`` is about, and the explanation to print."""
    text = " ".join(message.split())[:600]
    lower = text.lower()
    if "imagestr subfolder" in lower:
        return raw_folder / "imagesTr", text
    if "labelstr" in lower:
        return raw_folder / "labelsTr", text
    if any(k in lower for k in ("required keys", "number of training cases", "consecutive order")):
        return raw_folder / "dataset.json", text
    if "unexpected labels" in lower or "images have errors" in lower:
        found = _first_bad_case(raw_folder)
        if found is not None:
            return found
    return raw_folder, text


def _first_bad_case(raw_folder: Path) -> tuple[Path, str] | None:
    """Re-run nnU-Net's per-case checks one case at a time to find the first bad label file."""
    from nnunetv2.experiment_planning.verify_dataset_integrity import check_cases, verify_labels
    from nnunetv2.imageio.reader_writer_registry import determine_reader_writer_from_dataset_json
    from nnunetv2.utilities.label_handling.label_handling import LabelManager

    from nnunet_ataxia.io.nnunet_env import raw_dataset_files

    dj = read_json(raw_folder / "dataset.json", "dataset.json")
    cases = raw_dataset_files(raw_folder)
    labels = LabelManager(dj["labels"], regions_class_order=dj.get("regions_class_order"))
    expected = list(labels.all_labels) + ([labels.ignore_label] if labels.has_ignore_label else [])
    reader = determine_reader_writer_from_dataset_json(dj, next(iter(cases.values()))["images"][0])
    n_channels = len(dj.get("channel_names") or dj.get("modality") or {})
    for case in cases.values():
        label_file = str(case["label"])
        for check, args in ((verify_labels, (label_file, reader, expected)),
                            (check_cases, (case["images"], label_file, n_channels, reader))):
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                ok = check(*args)
            if not ok:
                return Path(label_file), _explanation(printed.getvalue(), label_file)
    return None


def _explanation(printed: str, label_file: str) -> str:
    """nnU-Net's printed error as one line, without the file names that the line already starts with."""
    lines = []
    for line in printed.replace(f" in file {label_file}", "").splitlines():
        line = line.strip().rstrip(".").strip()
        if not line or line.startswith(("Image files", "Seg file", "Images", "Segmentation:", label_file)):
            continue
        lines.append(line.removeprefix("Error: ").removeprefix("Warning: "))
    return "; ".join(lines) or "see nnU-Net's output above"
