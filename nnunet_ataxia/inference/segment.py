"""``segment``'s run: inputs, output folder rules, skip-if-done, subjects in parallel, ``volumes.csv``, QC index.

Output folder (issue 9's rule): created when missing, with the marker file ``.nnunet-ataxia-output.json``
(``{"command": "segment", ...}``); an existing non-empty folder is used only if it holds that marker from ``segment``.
The output may not be, lie inside, or contain the input. Each subject is built in a temporary sibling folder and
renamed to ``<out>/<case>/`` when complete; ``<out>/<case>/segment.json`` (written last) marks it done, and a re-run
skips it. A failing subject is reported in one line and the others go on.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from nnunet_ataxia.errors import InputError
from nnunet_ataxia.inference.model import ModelSpec, load_predictor, model_labels, resolve_model
from nnunet_ataxia.inference.qc import write_index
from nnunet_ataxia.inference.subject import RECORD_FILE, SubjectOptions, segment_subject
from nnunet_ataxia.pretrained import release
from nnunet_ataxia.io.atomic import atomic_output_dir
from nnunet_ataxia.io.cases import find_images
from nnunet_ataxia.io.participants import read_participants
from nnunet_ataxia.io.output_folders import (MARKER_NAME, check_output_folder, read_marker,
                                                 write_marker)

__all__ = ["OUTPUT_MARKER", "SegmentResult",
           "prepare_output_folder", "segment_images"]

OUTPUT_MARKER = MARKER_NAME
MODEL_CACHE = ".model"  # private copy of the pretrained model when nnUNet_results is not set


@dataclass
class SegmentResult:
    """What a run did: every row of ``volumes.csv``, the failed cases, how many were skipped (done before)."""
    rows: list[dict] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    output: Path | None = None


def prepare_output_folder(output: str | os.PathLike, source: str | os.PathLike, command: str = "segment") -> Path:
    """Check the output folder rules (:mod:`nnunet_ataxia.io.output_folders`), create it with its marker file
    if it is new or empty, and return it.

    Raises:
        InputError: the output is, is inside, or contains the input; or it is a non-empty folder without this
            command's marker file; or it is a file.

    Example:
        >>> prepare_output_folder("seg_out", "t1_folder")  # doctest: +SKIP
        PosixPath('seg_out')
    """
    out = check_output_folder(output, command, inputs=[source])
    if read_marker(out) is None:
        try:
            out.mkdir(parents=True, exist_ok=True)
            write_marker(out, command, {"input": str(Path(source).resolve())})
        except OSError as e:
            raise InputError(f"{output}: cannot create the output folder ({e.strerror or e})") from None
    return out


# ------------------------------------------------------------------------------------------------ workers
_PREDICTOR = None


def _set_threads(threads: int) -> None:
    import SimpleITK as sitk
    import torch

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(int(threads))
    torch.set_num_threads(int(threads))


def _init_worker(spec: ModelSpec, mirror: bool, device: str | None, threads: int) -> None:
    global _PREDICTOR
    os.environ.setdefault("nnUNet_def_n_proc", str(threads))  # nnU-Net's own thread count (read at import)
    _set_threads(threads)
    _PREDICTOR = load_predictor(spec, mirror=mirror, device=device)


def _segment_one(job: dict) -> tuple[str, dict | str]:
    """Segment one subject into ``<out>/<case>`` atomically; ('ok', record) or ('failed', one-line message)."""
    case, out = job["case"], Path(job["output"])
    try:
        with atomic_output_dir(out / case) as tmp:
            png = tmp / f"{case}_qc.png"
            record = segment_subject(job["image"], case, tmp, _PREDICTOR, job["labels"], job["options"],
                                     qc_png=png, model_folder=job["model_folder"])
            if png.is_file():
                (out / "qc").mkdir(exist_ok=True)
                os.replace(png, out / "qc" / f"{case}.png")
        return "ok", record
    except InputError as e:
        return "failed", " ".join(str(e).split())  # one line
    except MemoryError:
        return "failed", f"{job['image']}: out of memory"
    except Exception as e:  # one subject's unexpected failure must not stop the others
        detail = str(e).strip().splitlines()[-1] if str(e).strip() else ""
        return "failed", f"{job['image']}: {type(e).__name__}{': ' + detail if detail else ''}"


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
    row["message"] = record.get("message", "")
    return row


def segment_images(source: str | os.PathLike, output: str | os.PathLike, *,
                   model_folder: str | os.PathLike | None = None, dataset: str | int | None = None,
                   trainer: str | None = None, plans: str | None = None, configuration: str | None = None,
                   folds: Sequence | None = None, checkpoint: str = "checkpoint_final.pth", mirror: bool = True,
                   device: str | None = None, num_processes: int = 1,
                   participants: str | os.PathLike | None = None, options: SubjectOptions | None = None,
                   progress: bool = True) -> SegmentResult:
    """Segment a T1 file or every T1 in a folder; write ``<out>/<case>/``, ``volumes.csv`` and ``qc/``.

    Args:
        source: a T1 image (``.nii``, ``.nii.gz``, ``.mgz``, ...) or a folder of them.
        output: the output folder (see the module's rules).
        model_folder, dataset, trainer, plans, configuration, folds, checkpoint: the model
            (:func:`nnunet_ataxia.inference.model.resolve_model`; default: the shipped pretrained model).
        mirror: test-time mirroring over the axes the trainer allows (nnU-Net's default; left-right only for the
            pretrained model, one more network pass).
        device: ``"cuda"`` / ``"cpu"`` / None (CUDA when available).
        num_processes: subjects processed in parallel (spawned processes, each with cores // N threads).
        participants: TSV with ``case``/``participant_id`` and ``group`` columns (adds ``group`` to the table).
        options: per-subject settings (:class:`~nnunet_ataxia.inference.subject.SubjectOptions`).
        progress: show a tqdm progress bar and one line per failure.

    Returns:
        A :class:`SegmentResult` (rows of ``volumes.csv``, failed cases with their messages, skipped cases).

    Example:
        >>> result = segment_images("t1_folder", "seg_out", num_processes=2)  # doctest: +SKIP
        >>> sorted(result.failed)  # doctest: +SKIP
        []
    """
    from tqdm import tqdm

    options = options or SubjectOptions()
    images = find_images(source)
    out = prepare_output_folder(output, source)
    groups = read_participants(participants, [c for c, _ in images], known_groups=None) if participants else None
    result = SegmentResult(output=out)
    records: dict[str, dict] = {}
    pending = []
    for case, path in images:
        record = _done_record(out / case)
        if record is not None:
            records[case] = record
            result.skipped.append(case)
        else:
            pending.append((case, path))

    names: list[str] = []
    if pending:
        model_kwargs = {k: v for k, v in (("trainer", trainer), ("plans", plans),
                                          ("configuration", configuration)) if v}
        spec = resolve_model(model_folder=model_folder, dataset=dataset, folds=folds, checkpoint=checkpoint,
                             cache_dir=Path(out) / MODEL_CACHE, **model_kwargs)
        if model_folder is None and dataset is None and progress and release.release_note():
            tqdm.write(release.release_note(), file=sys.stderr)  # an interim pretrained model says so
        labels = model_labels(spec.folder)
        jobs = [{"case": c, "image": str(p), "output": str(out), "labels": labels, "options": options,
                 "model_folder": str(spec.folder)} for c, p in pending]
        n_proc = max(1, min(int(num_processes), len(jobs)))
        threads = max(1, (os.cpu_count() or 1) // n_proc)
        progress = progress and len(images) > 1  # one subject: no bar, its error is the command's message
        bar = tqdm(total=len(jobs), desc="segment", unit="subject", disable=not progress)

        def handle(job, status, payload):
            if status == "ok":
                records[job["case"]] = payload
            else:
                result.failed[job["case"]] = payload
                if progress:
                    tqdm.write(f"failed: {payload}")
            bar.update()

        try:
            if n_proc == 1:
                global _PREDICTOR
                previous = _PREDICTOR
                _PREDICTOR = load_predictor(spec, mirror=mirror, device=device)
                try:
                    for job in jobs:
                        handle(job, *_segment_one(job))
                finally:
                    _PREDICTOR = previous
            else:
                with ProcessPoolExecutor(n_proc, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                                         initargs=(spec, mirror, device, threads)) as pool:
                    futures = {pool.submit(_segment_one, job): job for job in jobs}
                    for future in as_completed(futures):
                        try:
                            status, payload = future.result()
                        except Exception as e:  # a worker died (killed for memory, crashed): report, go on
                            status, payload = "failed", (f"{futures[future]['image']}: the worker process "
                                                         f"stopped ({type(e).__name__}); out of memory?")
                        handle(futures[future], status, payload)
        finally:
            bar.close()
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
    _write_tables(Path(out), result.rows)
    return result


def _write_tables(out: Path, rows: list[dict]) -> None:
    import pandas as pd

    columns = list(rows[0]) if rows else ["case", "status"]
    table = pd.DataFrame(rows, columns=columns)
    tmp = out / ".volumes.csv.tmp"
    table.to_csv(tmp, index=False)
    os.replace(tmp, out / "volumes.csv")
    pictures = {r["case"]: out / "qc" / f"{r['case']}.png" for r in rows
                if r["status"] == "ok" and (out / "qc" / f"{r['case']}.png").is_file()}
    shown = [c for c in columns if c != "input"]
    write_index(out / "qc" / "index.html", rows, shown, pictures)
