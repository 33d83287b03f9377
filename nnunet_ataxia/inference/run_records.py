"""What ``segment`` checks before it works: its settings, the case names, and whether a done subject is still done.

A subject's ``segment.json`` records its identity (:func:`run_identity`: the input file by path and content, the
model by its files' content, the options) and the files it wrote; :func:`redo_reason` compares that record with the
run now. Case ids may not collide with the names ``segment`` writes at the top of its output folder
(:data:`RESERVED_NAMES`).
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from nnunet_ataxia.errors import InputError
from nnunet_ataxia.inference.model import ModelSpec
from nnunet_ataxia.inference.subject import SubjectOptions
from nnunet_ataxia.io.fingerprints import file_fingerprint, files_fingerprint, missing_files
from nnunet_ataxia.io.output_folders import MARKER_NAME

__all__ = ["MODEL_CACHE", "OUTPUT_MARKER", "PART_FILE", "QC_FOLDER", "RESERVED_NAMES", "VOLUMES_TABLE",
           "check_arguments", "check_case_names", "model_identity", "redo_reason", "run_identity"]

OUTPUT_MARKER = MARKER_NAME
MODEL_CACHE = ".model"  # private copy of the pretrained model when nnUNet_results is not set
VOLUMES_TABLE = "volumes.csv"
QC_FOLDER = "qc"
PART_FILE = "segment_part.json"  # a finished part of a split run (nnunet_ataxia.inference.parts)
#: names ``segment`` writes at the top of its output folder: no case may be called so
RESERVED_NAMES = (QC_FOLDER, VOLUMES_TABLE, f".{VOLUMES_TABLE}.tmp", MODEL_CACHE, OUTPUT_MARKER, PART_FILE)


def check_case_names(images: Sequence[tuple[str, Path]]) -> None:
    """Refuse case ids that would collide with what ``segment`` writes at the top of its output folder.

    Args:
        images: ``(case id, path)`` pairs (:func:`~nnunet_ataxia.io.cases.find_images`).

    Raises:
        InputError: naming the file whose case id is reserved (:data:`RESERVED_NAMES`, any case) or hidden.

    Example:
        >>> try:
        ...     check_case_names([("qc", Path("t1/qc.nii.gz"))])
        ... except InputError as e:
        ...     print(str(e)[:55])
        t1/qc.nii.gz: case id 'qc' is reserved for segment's ow
    """
    reserved = {name.lower() for name in RESERVED_NAMES}
    for case, path in images:
        if case.lower() in reserved or case.startswith("."):
            raise InputError(f"{path}: case id '{case}' is reserved for segment's own outputs "
                             f"({', '.join(RESERVED_NAMES)}); rename the file")


def check_arguments(*, device: str | None = None, num_processes: int = 1,
                    options: SubjectOptions | None = None) -> None:
    """Check ``segment``'s settings before any work starts (a CUDA request needs CUDA on this machine).

    Args:
        device: ``"cuda"``, ``"cpu"`` or None.
        num_processes: at least 1.
        options: the per-subject options.

    Raises:
        InputError: naming the setting and the problem.

    Example:
        >>> check_arguments(device="cpu", num_processes=0)
        Traceback (most recent call last):
        ...
        nnunet_ataxia.errors.InputError: -np 0: the number of processes must be at least 1
    """
    if device not in (None, "cpu", "cuda"):
        raise InputError(f"-device {device}: use 'cuda' or 'cpu'")
    if int(num_processes) < 1:
        raise InputError(f"-np {num_processes}: the number of processes must be at least 1")
    options = options or SubjectOptions()
    if options.native_mapping not in ("probabilities", "labels"):
        raise InputError(f"--native-mapping {options.native_mapping}: use 'probabilities' or 'labels'")
    if not options.registration_template_spacing_mm > 0:
        raise InputError(f"--registration-template-mm {options.registration_template_spacing_mm}: must be > 0")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise InputError("-device cuda: CUDA is not available on this machine (PyTorch finds no GPU); "
                             "use -device cpu, or leave -device out to use a GPU when there is one")


def run_identity(image: str | os.PathLike, spec: ModelSpec, mirror: bool, options: SubjectOptions) -> dict:
    """What makes a subject's result: the input file, the model and the options (recorded in ``segment.json``).

    Args:
        image: the input T1.
        spec: the resolved model.
        mirror: test-time mirroring.
        options: the per-subject options.

    Example:
        >>> run_identity("sub-01.nii.gz", spec, True, SubjectOptions())["input"]["path"]  # doctest: +SKIP
        '/data/t1/sub-01.nii.gz'
    """
    return {"input": {"path": str(Path(image).resolve()), **file_fingerprint(image)},
            **model_identity(spec, mirror, options, folder=True)}


def model_identity(spec: ModelSpec, mirror: bool, options: SubjectOptions, folder: bool = False) -> dict:
    """The model (its files by content, folds, checkpoint) and the options of a run: what every subject shares.

    Args:
        spec: the resolved model.
        mirror: test-time mirroring.
        options: the per-subject options (``qc`` left out: it changes no result).
        folder: include the model's folder (a private copy's folder differs between output folders).

    Example:
        >>> model_identity(spec, True, SubjectOptions())["options"]["mirror"]  # doctest: +SKIP
        True
    """
    from dataclasses import asdict

    model_files = ["plans.json", "dataset.json", *(f"fold_{f}/{spec.checkpoint}" for f in spec.folds)]
    opts = {k: v for k, v in asdict(options).items() if k != "qc"}
    model = {"folds": [str(f) for f in spec.folds], "checkpoint": spec.checkpoint,
             "files": files_fingerprint(spec.folder, model_files)}
    return {"model": {"folder": str(spec.folder), **model} if folder else model,
            "options": {"mirror": bool(mirror), **opts}}


def redo_reason(record: dict, identity: dict, output: str | os.PathLike, qc: bool = True) -> str | None:
    """Why a done subject (its ``segment.json`` record) must be redone now, or None when it can be skipped.

    Args:
        record: the subject's ``segment.json``.
        identity: :func:`run_identity` of the run now.
        output: the run's output folder (the record lists its files relative to it).
        qc: the run writes QC pictures (a record without one is redone).

    Example:
        >>> redo_reason(json.load(open("out/sub-01/segment.json")), identity, "out")  # doctest: +SKIP
        'other input file'
    """
    old = record.get("identity")
    if not isinstance(old, dict) or not isinstance(record.get("outputs"), list):
        return "no identity record"
    if old.get("input", {}).get("path") != identity["input"]["path"]:
        return "other input file"
    if old.get("input") != identity["input"]:
        return "input changed"
    if old.get("model") != {**identity["model"], "folder": old.get("model", {}).get("folder")}:
        return "other model"
    if old.get("options") != identity["options"]:
        changed = sorted(k for k in set(old.get("options") or {}) | set(identity["options"])
                         if (old.get("options") or {}).get(k) != identity["options"].get(k))
        return f"other options ({', '.join(changed)})"
    missing = missing_files(output, record["outputs"])
    if missing:
        return f"output missing ({missing[0]}{f' and {len(missing) - 1} more' if len(missing) > 1 else ''})"
    if qc and f"{QC_FOLDER}/{record.get('case')}.png" not in record["outputs"]:
        return "no QC picture"
    return None
