"""``preprocess-mri`` on many T1 scans: find and check the inputs, then the paper's pipeline per case, in parallel.

Writes ``<output>/<case>_0000.nii.gz`` (nnU-Net's input naming, so ``nnUNetv2_predict -i <output>`` works), with label
maps ``<output>/labels/<case>.nii.gz``, and ``<output>/transforms/<case>/`` (what ``to-native`` needs). The case id is
the file name without its ending and without a ``_0000`` channel suffix: ``sub01.nii.gz`` and ``sub01_0000.nii.gz``
both give ``sub01``. Every registered scan must pass the registration check
(:func:`~nnunet_ataxia.preprocessing.registration_check.check_case_registration`): noise, a phantom or anything that is
not a head is refused with one line naming the file, and nothing is written.
"""
from __future__ import annotations

import os
from pathlib import Path

import SimpleITK as sitk

from nnunet_ataxia.errors import InputError
from nnunet_ataxia.io.cases import IMAGE_ENDINGS, case_id_of, find_images
from nnunet_ataxia.io.files import require_folder
from nnunet_ataxia.io.images import (
    Geometry,
    check_intensity_image,
    check_label_values,
    check_same_geometry,
    label_map_like,
    read_image,
)
from nnunet_ataxia.io.output_folders import output_folder
from nnunet_ataxia.io.parallel import run_cases
from nnunet_ataxia.preprocessing.mri_pipeline import preprocess_t1_case
from nnunet_ataxia.preprocessing.registration_check import check_case_registration

__all__ = ["find_t1_inputs", "preprocess_t1_images"]


def _check_inputs(image, label) -> None:
    """Read and check a T1 (finite, 3D, not constant, not a label map) and its label map (whole numbers, on the
    T1's grid) up front."""
    t1 = read_image(image)
    if t1.GetDimension() != 3 or t1.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"{image}: expected a 3D scalar T1 image, got {t1.GetDimension()}D with "
                         f"{t1.GetNumberOfComponentsPerPixel()} component(s)")
    check_intensity_image(sitk.GetArrayViewFromImage(t1), image, "T1 image")
    n_values = label_map_like(sitk.GetArrayViewFromImage(t1))
    if n_values is not None:
        raise InputError(f"{image}: looks like a label map, not a T1 image (only {n_values} distinct whole-number "
                         f"values); give the T1 image")
    if label is not None:
        lab = read_image(label)
        check_same_geometry(Geometry.of(t1), Geometry.of(lab), image, label, "label map")
        check_label_values(sitk.GetArrayViewFromImage(lab), label, what="label map")


def find_t1_inputs(input_path: str | os.PathLike, labels_dir: str | os.PathLike | None = None
                   ) -> list[tuple[str, Path, Path | None]]:
    """The T1 images of a file or folder (and their label maps), read and checked before anything is written.

    Args:
        input_path: one T1 image, or a folder of them (any of :data:`~nnunet_ataxia.io.cases.IMAGE_ENDINGS`).
        labels_dir: optional folder of label maps named like the images (``<case>`` or ``<case>_0000``).

    Returns:
        ``(case id, image, label or None)`` per image, sorted by file name.

    Raises:
        InputError: no images, two images with the same case id, a missing label map, an unreadable, non-3D or
            constant T1, or a label map off the T1's grid or with non-integer values.

    Example:
        >>> find_t1_inputs("t1_folder/")  # doctest: +SKIP
        [('sub01', PosixPath('t1_folder/sub01.nii.gz'), None)]
    """
    src = Path(input_path)
    if labels_dir is not None:
        require_folder(labels_dir, "label folder")
    pairs = []
    for case_id, image in find_images(src):
        label = None
        if labels_dir is not None:
            names = dict.fromkeys((case_id, case_id_of(image), f"{case_id}_0000"))
            candidates = [Path(labels_dir) / f"{n}{s}" for n in names for s in IMAGE_ENDINGS]
            found = [c for c in candidates if c.is_file()]
            if not found:
                raise InputError(f"{image}: no label map named {case_id}.nii.gz (or similar) in {labels_dir}")
            label = found[0]
        _check_inputs(image, label)
        pairs.append((case_id, image, label))
    return pairs


def _one_case(job: dict) -> dict:
    info = preprocess_t1_case(job["image"], job["out_image"], label_paths=job["labels"],
                              out_label_paths=job["out_labels"], transform_dir=job["transform_dir"],
                              skull_strip=job["skull_strip"], crop=job["crop"], seed=job["seed"],
                              registration_template_spacing_mm=job["template_mm"])
    check_case_registration(job["image"], job["out_image"], job["transform_dir"])
    return info


def preprocess_t1_images(input_path: str | os.PathLike, output: str | os.PathLike, *,
                         labels_dir: str | os.PathLike | None = None, skull_strip: bool = True, crop: bool = True,
                         seed: int = 0, registration_template_mm: float = 1.0, num_processes: int = 1,
                         overwrite: bool = False) -> int:
    """The paper's MRI preprocessing (:func:`~nnunet_ataxia.preprocessing.mri_pipeline.preprocess_t1_case`) on one
    T1 file or a folder of them, written atomically into ``output``.

    Args:
        input_path: a T1 image or a folder of T1 images.
        output: the output folder; an existing one must be an earlier ``preprocess-mri`` output (or ``overwrite``).
        labels_dir: optional label maps, resampled with nearest neighbour.
        skull_strip: strip the skull with the MNI brain mask (the paper's Data2 setting keeps it: False).
        crop: crop to the 128x128x96 box around cerebellum and brainstem (else the full 1 mm MNI grid).
        seed: seed of the registration's metric sampling.
        registration_template_mm: register against the template down-sampled to this spacing.
        num_processes: cases in parallel; the cores are shared out between them (as many processes as cores: one
            SimpleITK thread each, and results that repeat bit for bit).
        overwrite: replace an existing folder that is not an earlier output of this command.

    Returns:
        The number of cases written.

    Example:
        >>> preprocess_t1_images("t1_folder/", "preprocessed/", num_processes=2)  # doctest: +SKIP
        12
    """
    pairs = find_t1_inputs(input_path, labels_dir)
    n_proc = max(1, min(int(num_processes), len(pairs)))
    with output_folder(output, "preprocess-mri", inputs=[input_path, labels_dir], overwrite=overwrite) as tmp:
        jobs = [{"image": str(image), "out_image": str(tmp / f"{case_id}_0000.nii.gz"),
                 "labels": [str(label)] if label else [],
                 "out_labels": [str(tmp / "labels" / f"{case_id}.nii.gz")] if label else [],
                 "transform_dir": str(tmp / "transforms" / case_id), "skull_strip": skull_strip, "crop": crop,
                 "seed": seed, "template_mm": registration_template_mm}
                for case_id, image, label in pairs]
        run_cases(_one_case, jobs, n_proc, "preprocess-mri")
    return len(jobs)
