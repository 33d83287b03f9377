"""``segment``'s run: inputs, output folder rules, skip-if-done, subjects in parallel, ``volumes.csv``, QC index.

Output folder: created when missing, with the marker file ``.nnunet-ataxia-output.json``
(``{"command": "segment", ...}``); an existing non-empty folder is used only if it holds that marker from ``segment``.
The output may not be, lie inside, or contain the input. Each subject is built in a temporary sibling folder and
renamed to ``<out>/<case>/`` when complete; ``<out>/<case>/segment.json`` (written last) marks it done. A failing
subject is reported in one line and the others go on.

Re-runs (:mod:`nnunet_ataxia.inference.run_records`): a done subject is skipped only when its ``segment.json``
records what would be done now: the same input file (absolute path, size and SHA-256 of its whole content), the same
model (its ``plans.json``, ``dataset.json`` and checkpoint files by content, folds and checkpoint name), the same
options (test-time mirroring and every :class:`~nnunet_ataxia.inference.subject.SubjectOptions` field but ``qc``),
and every output file it lists still present. Otherwise it is redone and :attr:`SegmentResult.redone` says why.

A BIDS dataset root as input (:mod:`nnunet_ataxia.inference.bids`): its T1w images, and the output folder is also a
BIDS-derivatives dataset. A cohort across machines (:mod:`nnunet_ataxia.inference.parts`): ``num_parts``/``part_id``
segment one part of the sorted cases; ``merge_parts`` combines the parts' folders into one output. Subjects run
through the project's one process pool (:func:`nnunet_ataxia.io.parallel.run_cases`).

Reserved names: a case id equal to something ``segment`` writes at the top of its output folder
(:data:`~nnunet_ataxia.inference.run_records.RESERVED_NAMES`, compared case-insensitively) or starting with ``.`` is
refused before any work starts.
"""
from __future__ import annotations

import errno
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nnunet_ataxia.errors import InputError
from nnunet_ataxia.inference import bids, parts
from nnunet_ataxia.inference.model import ModelSpec, load_predictor, model_labels, resolve_model
from nnunet_ataxia.inference.run_records import (
    MODEL_CACHE,
    OUTPUT_MARKER,
    QC_FOLDER,
    RESERVED_NAMES,
    check_arguments,
    check_case_names,
    model_identity,
    redo_reason,
    run_identity,
)
from nnunet_ataxia.inference.subject import RECORD_FILE, SubjectOptions, segment_subject
from nnunet_ataxia.inference.tables import write_tables
from nnunet_ataxia.io.atomic import atomic_output_dir
from nnunet_ataxia.io.cases import find_images
from nnunet_ataxia.io.output_folders import check_output_folder, read_marker, write_marker
from nnunet_ataxia.io.parallel import run_cases, threads_per_process
from nnunet_ataxia.io.participants import read_participants
from nnunet_ataxia.io.plausibility import implausible_volumes
from nnunet_ataxia.pretrained import release

__all__ = ["OUTPUT_MARKER", "RESERVED_NAMES", "SegmentResult", "prepare_output_folder", "segment_images"]


@dataclass
class SegmentResult:
    """What a run did: every row of ``volumes.csv``, the failed cases, the skipped ones (done before, same
    identity), the redone ones (done before, with the reason they were redone) and whether the output is also a
    BIDS-derivatives dataset."""
    rows: list[dict] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    output: Path | None = None
    redone: dict[str, str] = field(default_factory=dict)
    bids_derivatives: bool = False


def prepare_output_folder(output: str | os.PathLike, source: str | os.PathLike, command: str = "segment",
                          inputs: Sequence[str | os.PathLike] | None = None) -> Path:
    """Check the output folder rules (:mod:`nnunet_ataxia.io.output_folders`), create it with its marker file
    if it is new or empty, and return it.

    Args:
        output: the output folder.
        source: the input (recorded in the marker).
        command: the command (its marker).
        inputs: what the output may not be, contain or lie in (default: ``source``; for a BIDS dataset the
            subject folders read, so that ``<root>/derivatives/...`` may hold the output).

    Raises:
        InputError: the output is, is inside, or contains the input; or it is a non-empty folder without this
            command's marker file; or it is a file.

    Example:
        >>> prepare_output_folder("seg_out", "t1_folder")  # doctest: +SKIP
        PosixPath('seg_out')
    """
    out = check_output_folder(output, command, inputs=list(inputs) if inputs is not None else [source])
    if read_marker(out) is None:
        try:
            out.mkdir(parents=True, exist_ok=True)
            write_marker(out, command, {"input": str(Path(source).resolve())})
        except OSError as e:
            raise InputError(f"{output}: cannot create the output folder ({e.strerror or e})") from None
    return out


# ------------------------------------------------------------------------------------------------ workers
_PREDICTOR = None


def _init_worker(spec: ModelSpec, mirror: bool, device: str | None, threads: int) -> None:
    """A worker's set-up: its share of the cores for torch and nnU-Net (run_cases sets SimpleITK's), the model."""
    import torch

    global _PREDICTOR
    os.environ.setdefault("nnUNet_def_n_proc", str(threads))  # nnU-Net's own thread count (read at import)
    torch.set_num_threads(int(threads))
    _PREDICTOR = load_predictor(spec, mirror=mirror, device=device)


def _segment_one(job: dict) -> tuple[str, dict | str]:
    """Segment one subject into ``<out>/<case>`` atomically; ('ok', record) or ('failed', one-line message)."""
    case, out = job["case"], Path(job["output"])
    try:
        with atomic_output_dir(out / case) as tmp:
            png = tmp / f"{case}_qc.png"
            record = segment_subject(job["image"], case, tmp, _PREDICTOR, job["labels"], job["options"],
                                     qc_png=png, model_folder=job["model_folder"])
            outputs = [f"{case}/{p.relative_to(tmp).as_posix()}" for p in sorted(tmp.rglob("*"))
                       if p.is_file() and p != png]
            if png.is_file():
                (out / QC_FOLDER).mkdir(exist_ok=True)
                os.replace(png, out / QC_FOLDER / f"{case}.png")
                outputs.append(f"{QC_FOLDER}/{case}.png")
            record.update(identity=job["identity"], outputs=outputs)
            (tmp / RECORD_FILE).write_text(json.dumps(record, indent=2))  # again, last: with what makes it
        return "ok", record
    except InputError as e:
        return "failed", " ".join(str(e).split())  # one line
    except MemoryError:
        return "failed", f"{job['image']}: out of memory"
    except Exception as e:  # one subject's unexpected failure must not stop the others
        full = _full_disk(e, out)
        if full:
            return "stop", full
        detail = str(e).strip().splitlines()[-1] if str(e).strip() else ""
        return "failed", f"{job['image']}: {type(e).__name__}{': ' + detail if detail else ''}"


def _worker_died(job: dict, error: BaseException) -> tuple[str, str]:
    """A worker process that died (killed for memory, crashed) fails its subject; the others go on."""
    return "failed", f"{job['image']}: the worker process stopped ({type(error).__name__}); out of memory?"


def _full_disk(error: BaseException, out: Path) -> str | None:
    """The one line for a full disk or quota (the output folder's fault, not the scan's), else None."""
    text = str(error)
    if getattr(error, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or "No space left" in text \
            or "quota exceeded" in text.lower():
        return f"{out}: no space left on the output folder's disk; free some space or write elsewhere (the " \
               f"subjects done so far are kept, a re-run goes on from there)"
    return None


def _done_record(case_dir: Path) -> dict | None:
    try:
        record = json.loads((case_dir / RECORD_FILE).read_text())
    except (OSError, ValueError):
        return None
    return record if record.get("status") == "ok" else None


def _row(record: dict, names: Sequence[str], group: str | None) -> dict:
    row = {"case": record["case"], "input": record.get("input", "")}
    for n in names:
        row[f"{n}_native_mm3"] = record.get("volumes_native_mm3", {}).get(n, float("nan"))
    for n in names:
        row[f"{n}_mni_mm3"] = record.get("volumes_mni_mm3", {}).get(n, float("nan"))
    row["scale_factor"] = record.get("scale_factor", float("nan"))
    if group is not None:
        row["group"] = group
    row["status"] = record.get("status", "failed")
    row["qc"] = record.get("qc", "") if row["status"] == "ok" else "failed"
    row["message"] = record.get("message", "")
    return row


def segment_images(source: str | os.PathLike, output: str | os.PathLike, *,
                   model_folder: str | os.PathLike | None = None, dataset: str | int | None = None,
                   trainer: str | None = None, plans: str | None = None, configuration: str | None = None,
                   folds: Sequence | None = None, checkpoint: str = "checkpoint_final.pth", mirror: bool = True,
                   device: str | None = None, num_processes: int = 1,
                   participants: str | os.PathLike | None = None, options: SubjectOptions | None = None,
                   progress: bool = True, participant_labels: Sequence[str] | None = None,
                   session_labels: Sequence[str] | None = None, num_parts: int | None = None,
                   part_id: int = 0) -> SegmentResult:
    """Segment a T1 file, every T1 in a folder or a BIDS dataset's T1w images; write ``<out>/<case>/``,
    ``volumes.csv`` and ``qc/`` (for a BIDS dataset also a BIDS-derivatives dataset:
    :mod:`nnunet_ataxia.inference.bids`).

    Args:
        source: a T1 image (``.nii``, ``.nii.gz``, ``.mgz``, ...), a folder of them, or a BIDS dataset root.
        output: the output folder (see the module's rules).
        model_folder, dataset, trainer, plans, configuration, folds, checkpoint: the model
            (:func:`nnunet_ataxia.inference.model.resolve_model`; default: the shipped pretrained model).
        mirror: test-time mirroring over the axes the trainer allows (nnU-Net's default; left-right only for the
            pretrained model, one more network pass).
        device: ``"cuda"`` / ``"cpu"`` / None (CUDA when available).
        num_processes: subjects processed in parallel (spawned processes, each with cores // N threads).
        participants: TSV with ``case``/``participant_id`` and ``group`` columns (adds ``group`` to the table; a
            BIDS dataset's own ``participants.tsv`` is used when it has a ``group`` column).
        options: per-subject settings (:class:`~nnunet_ataxia.inference.subject.SubjectOptions`).
        progress: show a tqdm progress bar (on a terminal) and one line per failure.
        participant_labels, session_labels: BIDS input only: the participants / sessions to segment.
        num_parts, part_id: segment only part ``part_id`` (0-based) of ``num_parts`` of the sorted cases
            (:mod:`nnunet_ataxia.inference.parts`); the part folders are merged with
            :func:`~nnunet_ataxia.inference.parts.merge_parts`.

    Returns:
        A :class:`SegmentResult` (rows of ``volumes.csv``, failed cases with their messages, skipped cases).

    Example:
        >>> result = segment_images("t1_folder", "seg_out", num_processes=2)  # doctest: +SKIP
        >>> sorted(result.failed)  # doctest: +SKIP
        []
    """
    from tqdm import tqdm

    options = options or SubjectOptions()
    check_arguments(device=device, num_processes=num_processes, options=options)
    bids_images = None
    if bids.is_bids_input(source, participant_labels, session_labels):
        bids_images = bids.find_bids_images(source, participant_labels, session_labels)
        images = [(i.case, i.path) for i in bids_images]
    else:
        images = find_images(source)
    check_case_names(images)
    images = sorted(images, key=lambda item: item[0])  # the order of volumes.csv and of the parts' split
    cohort = [c for c, _ in images]
    if num_parts is not None:
        chosen = set(parts.select_part(cohort, num_parts, part_id))
        images = [(c, p) for c, p in images if c in chosen]
    if participants:
        groups = read_participants(participants, [c for c, _ in images], known_groups=None)
    else:
        groups = bids.bids_groups(source, [c for c, _ in images]) if bids_images is not None else None
    read = None if bids_images is None else \
        [Path(source) / bids.BIDS_DESCRIPTION, *sorted({Path(source) / f"sub-{i.subject}" for i in bids_images})]
    out = prepare_output_folder(output, source, inputs=read)
    parts.check_part_folder(out, num_parts, part_id if num_parts is not None else None)
    result = SegmentResult(output=out)
    model_kwargs = {k: v for k, v in (("trainer", trainer), ("plans", plans), ("configuration", configuration)) if v}
    spec = resolve_model(model_folder=model_folder, dataset=dataset, folds=folds, checkpoint=checkpoint,
                         cache_dir=Path(out) / MODEL_CACHE, **model_kwargs)
    records: dict[str, dict] = {}
    pending = []
    identities = {}
    for case, path in images:
        identities[case] = run_identity(path, spec, mirror, options)
        record = _done_record(out / case)
        reason = None if record is None else redo_reason(record, identities[case], out, qc=options.qc)
        if record is not None and reason is None:
            records[case] = record
            result.skipped.append(case)
        else:
            if record is not None:
                result.redone[case] = reason
            pending.append((case, path))

    names: list[str] = []
    if pending:
        if model_folder is None and dataset is None and progress and release.release_note():
            tqdm.write(release.release_note(), file=sys.stderr)  # an interim pretrained model says so
        labels = model_labels(spec.folder)
        jobs = [{"case": c, "image": str(p), "output": str(out), "labels": labels, "options": options,
                 "model_folder": str(spec.folder), "identity": identities[c]} for c, p in pending]
        n_proc = max(1, min(int(num_processes), len(jobs)))
        threads = threads_per_process(n_proc)
        progress = progress and len(images) > 1  # one subject: no bar, its error is the command's message

        def handle(job, outcome):
            status, payload = outcome
            if status == "stop":  # the output cannot be written: every further subject would fail the same way
                raise InputError(payload)
            if status == "ok":
                records[job["case"]] = payload
            else:
                result.failed[job["case"]] = payload
                if progress:
                    tqdm.write(f"failed: {payload}")

        global _PREDICTOR
        previous = _PREDICTOR
        if n_proc == 1:  # in this process: the model is loaded here, once
            _PREDICTOR = load_predictor(spec, mirror=mirror, device=device)
        try:
            run_cases(_segment_one, jobs, n_proc, "segment", initializer=_init_worker,
                      initargs=(spec, mirror, device, threads), on_result=handle, on_error=_worker_died,
                      progress=progress, unit="subject")
        finally:
            _PREDICTOR = previous
        names = [n for n, v in labels.items() if v != 0]
    for record in records.values():
        for n in record.get("volumes_native_mm3", {}):
            if n not in names:
                names.append(n)

    for case, path in images:
        if case in records:
            rec = records[case]
        else:
            rec = {"case": case, "input": str(path), "status": "failed", "message": result.failed.get(case, "")}
        result.rows.append(_row(rec, names, None if groups is None else groups.get(case, "")))
    for row in result.rows:  # documented per-structure ranges (nnunet_ataxia.io.plausibility)
        row["implausible"] = "; ".join(implausible_volumes({n: row[f"{n}_native_mm3"] for n in names})) \
            if row["status"] == "ok" else ""
    write_tables(Path(out), result.rows)
    if bids_images is not None:
        result.bids_derivatives = True
        bids.write_derivatives(out, result.rows, bids_images, source=source,
                               model={"name": spec.folder.name, "dataset": spec.folder.parent.name,
                                      "folds": [str(f) for f in spec.folds], "checkpoint": spec.checkpoint})
    if num_parts is not None:  # last: the part is finished
        parts.write_part_file(out, num_parts=num_parts, part_id=part_id, cases=[c for c, _ in images],
                              cohort=cohort, source=source, identity=model_identity(spec, mirror, options))
    return result
