"""Training data of the pretrained model v2 -> ``Dataset511_LabelMapCerebellumBrainstem``.

Every case is a pseudo-subject rendered from one of the real whole-head label maps of a folder the user gives (the
SynthSeg training label maps) by
:func:`nnunet_ataxia.synthesis.label_map_subjects.make_registered_label_map_case`, already on the preprocessed grid
(1 mm MNI, 128 × 128 × 96 crop, equalized), so :class:`~nnunet_ataxia.planners.FixedPatch128Planner` plans it as it
plans data from ``preprocess-mri``. Labels: background 0, cerebellum 1 (7, 8, 46, 47), brainstem 2 (16).

The held-out maps (:data:`~nnunet_ataxia.synthesis.label_map_subjects.HELD_OUT_MAPS`) are never used. Training case
``i`` (seed ``i``) comes from training map ``i mod M`` (M maps); fold 0's validation cases (seeds from
``VALIDATION_SEED_OFFSET``) are new draws from the same training maps (one or more per map). Each map's registration
to MNI is computed once and stored in ``label_map_registrations.json``.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import SimpleITK as sitk

from nnunet_ataxia.dataset_conversion.conversion_utils import (
    case_fingerprint,
    convert_cases,
    dataset_folder,
    file_fingerprint,
    finish_dataset,
    write_generated_case,
    write_raw_dataset,
)
from nnunet_ataxia.errors import InputError
from nnunet_ataxia.io.constants import CEREBELLUM_BRAINSTEM_LABELS, VALIDATION_SEED_OFFSET
from nnunet_ataxia.io.parallel import run_cases
from nnunet_ataxia.io.participants import write_splits

DEFAULT_DATASET_ID = 511
DATASET_NAME = "LabelMapCerebellumBrainstem"
#: bump when the generator changes, so that re-runs regenerate every case
GENERATOR_VERSION = 1
REGISTRATIONS_FILE = "label_map_registrations.json"


def label_map_case_id(seed: int) -> str:
    """``maps_000042`` for seed 42."""
    return f"maps_{seed:06d}"


def _register(path: str) -> list[float]:
    from nnunet_ataxia.synthesis.label_map_subjects import affine_to_list, map_to_mni_registration

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    return affine_to_list(map_to_mni_registration(path))


def _generate_case(job: dict) -> dict:
    from nnunet_ataxia.synthesis.label_map_subjects import affine_from_list, make_registered_label_map_case

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    image, labels, subject = make_registered_label_map_case(job["label_map"], affine_from_list(job["mni_to_map"]),
                                                            int(job["seed"]), cortex_rim=bool(job["cortex_rim"]),
                                                            cortex_folia=bool(job.get("cortex_folia", False)))
    return write_generated_case(job, image, labels, asdict(subject))


def build_label_map_dataset(label_maps: str | os.PathLike, n_train: int = 180, n_val: int = 15, *,
                            dataset_id: int = DEFAULT_DATASET_ID, output: str | os.PathLike | None = None,
                            num_processes: int = 1, cortex_rim: bool = False,
                            cortex_folia: bool = False) -> Path:
    """Generate the v2 training dataset from a folder of label maps (atomic; a re-run re-uses finished cases).

    Args:
        label_maps: folder of ``training_seg_*.nii.gz`` (SynthSeg's ``data/training_label_maps``).
        n_train: training subjects (seeds ``0 .. n_train-1``, cycling over the training maps).
        n_val: validation subjects (fold 0's ``val``), cycling over the training maps.
        dataset_id: nnU-Net dataset id.
        output: dataset folder (default ``$nnUNet_raw/Dataset511_LabelMapCerebellumBrainstem``).
        num_processes: cases generated in parallel (about 6 s and 1 GB each).
        cortex_rim: render the outer cortex layers blended towards CSF
            (:func:`~nnunet_ataxia.synthesis.label_map_subjects.render_subject_map`); part of each case's
            fingerprint, so switching it regenerates the cases.
        cortex_folia: render thin sulci in the cerebellar cortex at 0.5 mm, averaged back to the map's grid (the
            same function); part of the fingerprint when on.

    Returns:
        The dataset folder.

    Example:
        >>> build_label_map_dataset("SynthSeg/data/training_label_maps", 30, 3)  # doctest: +SKIP
    """
    from nnunet_ataxia.synthesis.label_map_subjects import list_label_maps, map_name

    if n_train < 1 or n_val < 1:
        raise InputError(f"need at least one training and one validation subject (got {n_train} and {n_val})")
    training_maps, _ = list_label_maps(label_maps)
    final = dataset_folder(dataset_id, DATASET_NAME, output)
    registrations = _read_registrations(final)
    todo = [p for p in training_maps if registrations.get(map_name(p), {}).get("fingerprint") != file_fingerprint(p)]
    registered = run_cases(_register, [str(p) for p in todo], num_processes, "map registrations")
    for path, params in zip(todo, registered, strict=True):
        registrations[map_name(path)] = {"fingerprint": file_fingerprint(path), "mni_to_map": params}
    seeds = list(range(n_train)) + [VALIDATION_SEED_OFFSET + i for i in range(n_val)]
    jobs = []
    folia = {"cortex_folia": True} if cortex_folia else {}   # absent when off: earlier datasets keep their cases
    for seed in seeds:
        path = training_maps[(seed % VALIDATION_SEED_OFFSET) % len(training_maps)]
        case_id = label_map_case_id(seed)
        jobs.append({"case_id": case_id, "seed": seed, "subset": "Tr", "label_map": str(path),
                     "mni_to_map": registrations[map_name(path)]["mni_to_map"], "cortex_rim": cortex_rim, **folia,
                     "fingerprint": case_fingerprint(seed=seed, generator=GENERATOR_VERSION, label_map=map_name(path),
                                                     map_file=file_fingerprint(path), cortex_rim=cortex_rim,
                                                     **folia),
                     "outputs": [f"imagesTr/{case_id}_0000.nii.gz", f"labelsTr/{case_id}.nii.gz"]})
    jobs.sort(key=lambda j: (j["label_map"], j["seed"]))   # a worker reads each map once

    def fill(tmp: Path, previous: Path | None) -> None:
        infos = convert_cases(_generate_case, jobs, tmp, previous, num_processes, "label-map subjects")
        finish_dataset(tmp, jobs, infos, CEREBELLUM_BRAINSTEM_LABELS, f"Dataset{dataset_id:03d}_{DATASET_NAME}",
                       "Pseudo-subjects rendered from real whole-head label maps (SynthSeg recipe; 1 mm MNI crop); "
                       "cerebellum and brainstem", "nnunet-ataxia synthesis (label maps)")
        (tmp / REGISTRATIONS_FILE).write_text(json.dumps(registrations, indent=1))
        write_splits(tmp / "splits_final.json",
                     [{"train": [label_map_case_id(s) for s in seeds[:n_train]],
                       "val": [label_map_case_id(s) for s in seeds[n_train:]]}])

    return write_raw_dataset(final, fill, num_processes=max(1, num_processes))


def _read_registrations(folder: Path) -> dict:
    try:
        return json.loads((folder / REGISTRATIONS_FILE).read_text())
    except (OSError, ValueError):
        return {}
