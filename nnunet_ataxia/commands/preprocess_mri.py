"""``nnunet-ataxia preprocess-mri``: the paper's MRI preprocessing on one T1 file or a folder of T1 files.

Writes ``<output>/<case>_0000.nii.gz`` (nnU-Net's input naming, so ``nnUNetv2_predict -i <output>`` works), with
``--labels`` ``<output>/labels/<case>.nii.gz``, and ``<output>/transforms/<case>/`` (what ``nnunet-ataxia to-native``
needs to map ``nnUNetv2_predict``'s ``<case>.nii.gz`` back). The case id is the file name without its ending and
without a ``_0000`` channel suffix: ``sub01.nii.gz`` and ``sub01_0000.nii.gz`` both give ``sub01``.
"""
from __future__ import annotations

import argparse

from nnunet_ataxia.utils.output_folders import add_overwrite_argument

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", "--input", required=True, help="a T1 image or a folder of T1 images (.nii.gz, ...)")
    parser.add_argument("-o", "--output", required=True,
                        help="output folder: <case>_0000.nii.gz, labels/<case>.nii.gz, transforms/<case>/ (written "
                             "atomically; an existing folder must be an earlier preprocess-mri output)")
    parser.add_argument("--labels", default=None,
                        help="optional folder of label maps named like the images (a '_0000' channel suffix of the "
                             "image is dropped when looking for its label); resampled with nearest neighbour")
    parser.add_argument("--no-skull-strip", action="store_true", help="keep the skull (the paper's Data2 setting)")
    parser.add_argument("--no-crop", action="store_true", help="keep the full 1 mm MNI grid instead of 128x128x96")
    parser.add_argument("--seed", type=int, default=0, help="seed of the registration's metric sampling")
    parser.add_argument("--registration-template-mm", type=float, default=1.0,
                        help="register against the template down-sampled to this spacing (default 1 = full "
                             "resolution; 2-3 is faster and coarser; the output grid stays 1 mm)")
    parser.add_argument("-np", "--num-processes", type=int, default=1, help="cases processed in parallel")
    add_overwrite_argument(parser)


def case_id_of(path) -> str:
    """File name without its image suffix (``a01.nii.gz`` -> ``a01``)."""
    name = path.name
    for suffix in IMAGE_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def subject_id_of(path) -> str:
    """Case id without nnU-Net's ``_0000`` channel suffix (``sub01_0000.nii.gz`` and ``sub01.nii.gz`` -> ``sub01``)."""
    case = case_id_of(path)
    return case[:-5] if case.endswith("_0000") and len(case) > 5 else case


def _check_inputs(image, label) -> None:
    """Read and check a T1 (finite, 3D, not constant) and its label map (whole numbers, the T1's grid) up front."""
    import SimpleITK as sitk

    from nnunet_ataxia.errors import InputError
    from nnunet_ataxia.preprocessing.registration import read_image
    from nnunet_ataxia.utils.checked_io import Geometry, check_intensity_image, check_label_values, \
        check_same_geometry

    t1 = read_image(image)
    if t1.GetDimension() != 3 or t1.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"{image}: expected a 3D scalar T1 image, got {t1.GetDimension()}D with "
                         f"{t1.GetNumberOfComponentsPerPixel()} component(s)")
    check_intensity_image(sitk.GetArrayViewFromImage(t1), image, "T1 image")
    if label is not None:
        lab = read_image(label)
        check_same_geometry(Geometry.of(t1), Geometry.of(lab), image, label, "label map")
        check_label_values(sitk.GetArrayViewFromImage(lab), label, what="label map")


def _find_inputs(input_path, labels_dir):
    from pathlib import Path

    from nnunet_ataxia.errors import InputError
    from nnunet_ataxia.utils.checked_io import require_folder

    src = Path(input_path)
    if src.is_dir():
        images = sorted(p for p in src.iterdir() if p.is_file() and p.name.endswith(IMAGE_SUFFIXES))
        if not images:
            raise InputError(f"{src}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
    elif src.is_file():
        images = [src]
    else:
        raise InputError(f"{src}: no such file or folder")
    if labels_dir is not None:
        require_folder(labels_dir, "label folder")
    ids = [subject_id_of(p) for p in images]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise InputError(f"{src}: several images give the case id(s) {dupes} (e.g. both sub01.nii.gz and "
                         f"sub01_0000.nii.gz)")
    pairs = []
    for image, case_id in zip(images, ids):
        label = None
        if labels_dir is not None:
            names = dict.fromkeys((case_id, case_id_of(image), f"{case_id}_0000"))
            candidates = [Path(labels_dir) / f"{n}{s}" for n in names for s in IMAGE_SUFFIXES]
            found = [c for c in candidates if c.is_file()]
            if not found:
                raise InputError(f"{image}: no label map named {case_id}.nii.gz (or similar) in {labels_dir}")
            label = found[0]
        _check_inputs(image, label)
        pairs.append((case_id, image, label))
    return pairs


def _one_case(job: dict) -> dict:
    import SimpleITK as sitk

    from nnunet_ataxia.preprocessing.mri_pipeline import preprocess_t1_case

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(job["threads"])
    return preprocess_t1_case(job["image"], job["out_image"], label_paths=job["labels"],
                              out_label_paths=job["out_labels"], transform_dir=job["transform_dir"],
                              skull_strip=job["skull_strip"], crop=job["crop"], seed=job["seed"],
                              registration_template_spacing_mm=job["template_mm"])


def run(args: argparse.Namespace) -> int:
    import multiprocessing as mp
    import os
    from concurrent.futures import ProcessPoolExecutor

    from tqdm import tqdm

    from nnunet_ataxia.utils.output_folders import output_folder

    pairs = _find_inputs(args.input, args.labels)
    n_proc = max(1, min(int(args.num_processes), len(pairs)))
    threads = max(1, (os.cpu_count() or 1) // n_proc)
    with output_folder(args.output, "preprocess-mri", inputs=[args.input, args.labels],
                       overwrite=args.overwrite) as tmp:
        jobs = [{"image": str(image), "out_image": str(tmp / f"{case_id}_0000.nii.gz"),
                 "labels": [str(label)] if label else [],
                 "out_labels": [str(tmp / "labels" / f"{case_id}.nii.gz")] if label else [],
                 "transform_dir": str(tmp / "transforms" / case_id), "skull_strip": not args.no_skull_strip,
                 "crop": not args.no_crop, "seed": args.seed, "threads": threads,
                 "template_mm": args.registration_template_mm} for case_id, image, label in pairs]
        with tqdm(total=len(jobs), desc="preprocess-mri", unit="case", disable=None) as bar:
            if n_proc == 1:
                for job in jobs:
                    _one_case(job)
                    bar.update()
            else:
                with ProcessPoolExecutor(n_proc, mp_context=mp.get_context("spawn")) as pool:
                    for _ in pool.map(_one_case, jobs):
                        bar.update()
    print(f"wrote {len(jobs)} case(s) to {args.output}")
    return 0
