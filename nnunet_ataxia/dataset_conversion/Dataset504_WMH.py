"""T1 + FLAIR (or FLAIR-only) + WMH data (plain RUN DMC-style or MICCAI WMH 2017 layout) -> nnU-Net raw dataset (504).

Ten input channels per case on the FLAIR grid: ``_0000`` T1 (registered to FLAIR), ``_0001`` FLAIR, ``_0002`` ..
``_0009`` the eight location features (x, y, z in MNI; in-plane distance to the left ventricle, the right ventricle,
the cortex and the midsagittal plane; the WMH prior), each in [0, 1] inside the brain and 0 outside. FLAIR-only
datasets (no T1 in any case, or ``flair_only``) have nine: ``_0000`` FLAIR, ``_0001`` .. ``_0008`` the features.
Labels {0 background, 1 wmh, 2 ignore}. Also written: ``brainmasks/<case>.nii.gz`` (FLAIR grid),
``transforms/<case>/`` (``flair_to_mni.txt`` 4x4 affine, with the default non-linear registration
``mni_warp.nii.gz`` + ``mni_warp_inverse.nii.gz`` (:class:`nnunet_ataxia.preprocessing.wmh_mni_map.MNIMap`), and with a T1
``flair_to_t1.tfm``), ``wmh_prior_mni.nii.gz`` + ``wmh_prior.json`` (which cases built the prior) and, with a prior
fold, ``splits_final.json``.
"""
from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import SimpleITK as sitk

from nnunet_ataxia.dataset_conversion.conversion_utils import (case_fingerprint, convert_cases, dataset_folder,
    file_fingerprint, write_raw_dataset)
from nnunet_ataxia.io.images import write_image_like
from nnunet_ataxia.io.participants import write_splits
from nnunet_ataxia.errors import InputError
from nnunet_ataxia.dataset_conversion.wmh_layouts import WMHCaseFiles, check_case_files, find_cases, select_t1_mode
from nnunet_ataxia.preprocessing.wmh_location_features import LOCATION_CHANNELS

__all__ = ["DATASET_ID", "DATASET_NAME", "CHANNEL_NAMES", "LABELS", "channel_names", "convert_wmh_dataset",
           "convert_wmh_case"]

DATASET_ID, DATASET_NAME = 504, "WMH"
CHANNEL_NAMES = {"0": "T1", "1": "FLAIR", **{str(i + 2): "noNorm" for i in range(len(LOCATION_CHANNELS))}}
LABELS = {"background": 0, "wmh": 1, "ignore": 2}
PRIOR_CHANNEL = 2 + LOCATION_CHANNELS.index("wmh_prior")


def channel_names(with_t1: bool = True) -> dict[str, str]:
    """dataset.json ``channel_names``: T1, FLAIR, 8 x noNorm; FLAIR-only: FLAIR, 8 x noNorm.

    Example:
        >>> list(channel_names(False).values())[:2]
        ['FLAIR', 'noNorm']
    """
    images = ["T1", "FLAIR"] if with_t1 else ["FLAIR"]
    return {str(i): name for i, name in enumerate(images + ["noNorm"] * len(LOCATION_CHANNELS))}


def _first_location_channel(with_t1: bool) -> int:
    return 2 if with_t1 else 1


def _stage1_outputs(case_id: str, role: str, has_label: bool, with_t1: bool) -> list[str]:
    prior_channel = _first_location_channel(with_t1) + LOCATION_CHANNELS.index("wmh_prior")
    outs = [f"images{role}/{case_id}_{c:04d}.nii.gz" for c in range(prior_channel)]
    if has_label:
        outs.append(f"labels{role}/{case_id}.nii.gz")
    return outs + [f"brainmasks/{case_id}.nii.gz", f"transforms/{case_id}"]


def convert_wmh_case(job: dict) -> dict:
    """Worker: preprocess one case and write its image and location channels (all but the prior), label, brain
    mask and transforms.

    Args:
        job: ``{"case": WMHCaseFiles as dict, "role": "Tr"|"Ts", "options": WMHOptions as dict, "out_dir": ...}``.

    Returns:
        A small info dict (recorded in the conversion manifest).
    """
    import SimpleITK as sitk  # noqa: F811  (spawned workers)

    from nnunet_ataxia.preprocessing.wmh_pipeline import WMHOptions, preprocess_case

    case = WMHCaseFiles(**job["case"])
    opts = job["options"]
    options = WMHOptions(**{k: tuple(v) if isinstance(v, list) else v for k, v in opts.items()})
    out, role, cid = Path(job["out_dir"]), job["role"], case.case_id
    pre = preprocess_case(case, options)
    ref = pre.reference
    images = [pre.flair] if pre.t1 is None else [pre.t1, pre.flair]
    images += [pre.features[name] for name in LOCATION_CHANNELS[:-1]]
    for c, channel in enumerate(images):
        write_image_like(channel, ref, out / f"images{role}/{cid}_{c:04d}.nii.gz", np.float32)
    if case.label is not None:
        label = sitk.GetArrayFromImage(sitk.ReadImage(case.label))
        write_image_like(np.rint(label).astype(np.uint8), ref, out / f"labels{role}/{cid}.nii.gz", np.uint8)
    write_image_like(pre.brain, ref, out / f"brainmasks/{cid}.nii.gz", np.uint8)
    tdir = out / "transforms" / cid
    pre.mni_map.save(tdir)
    if pre.flair_to_t1 is not None:
        sitk.WriteTransform(pre.flair_to_t1, str(tdir / "flair_to_t1.tfm"))
    return {"ventricles": pre.ventricle_source, "brain_voxels": int(pre.brain.sum()), "role": role,
            "registration": pre.registration}


def _write_prior_channels(out: Path, train_ids: Sequence[str], prior_ids: Sequence[str], roles: dict[str, str],
                          options, fold: int | None, prior_channel: int = PRIOR_CHANNEL) -> None:
    """Build the WMH prior from ``prior_ids`` (training labels only) and write the prior channel of every case."""
    from nnunet_ataxia.preprocessing.wmh_location_features import normalize_features
    from nnunet_ataxia.preprocessing.wmh_mni_map import MNIMap
    from nnunet_ataxia.preprocessing.wmh_pipeline import mni_template
    from nnunet_ataxia.preprocessing.wmh_prior import build_wmh_prior, mni_grid, sample_prior, warp_wmh_to_mni

    not_training = sorted(set(prior_ids) - set(train_ids))
    assert not not_training, f"only training labels may enter the WMH prior, got {not_training}"
    grid = mni_grid(mni_template(1.0)[0], options.prior_grid_mm)
    warped = [warp_wmh_to_mni(sitk.ReadImage(str(out / f"labelsTr/{cid}.nii.gz")),
                              MNIMap.load(out / f"transforms/{cid}"), grid) for cid in prior_ids]
    prior = build_wmh_prior(warped, grid, options.prior_sigma_mm)
    sitk.WriteImage(prior, str(out / "wmh_prior_mni.nii.gz"), useCompression=True)
    (out / "wmh_prior.json").write_text(json.dumps(
        {"built_from": list(prior_ids), "fold": fold, "grid_mm": options.prior_grid_mm,
         "sigma_mm": options.prior_sigma_mm}, indent=1))
    for cid, role in roles.items():
        mask_img = sitk.ReadImage(str(out / f"brainmasks/{cid}.nii.gz"))
        brain = sitk.GetArrayFromImage(mask_img) > 0
        values = sample_prior(prior, mask_img, MNIMap.load(out / f"transforms/{cid}"))
        channel = normalize_features({"wmh_prior": values}, brain)["wmh_prior"]
        write_image_like(channel, mask_img, out / f"images{role}/{cid}_{prior_channel:04d}.nii.gz", np.float32)


def convert_wmh_dataset(input_dir: str | Path, output_dir: str | Path | None = None, *, test_dir: str | Path | None = None,
                        dataset_id: int = DATASET_ID, dataset_name: str = DATASET_NAME, layout: str = "auto",
                        miccai_images: str = "pre", prior_fold: int | None = None, num_folds: int = 5,
                        num_processes: int = 1, options=None, verify: bool = True, overwrite: bool = False,
                        flair_only: bool = False, qc: bool = False) -> Path:
    """Convert T1 + FLAIR (or FLAIR-only) + WMH training (and optional test) cases into an nnU-Net raw dataset.

    FLAIR-only mode (no T1 channel; the FLAIR is registered to MNI and gives the brain mask) is used when no case
    has a T1, or with ``flair_only``; T1 for some cases but not others is an error.

    Args:
        input_dir: training cases (plain or MICCAI layout; every case needs ``wmh.nii.gz``).
        output_dir: the dataset folder; default ``$nnUNet_raw/Dataset{id}_{name}``.
        test_dir: optional test cases (same layout) -> ``imagesTs`` (+ ``labelsTs`` when labelled); their labels
            never enter the WMH prior.
        dataset_id, dataset_name: nnU-Net dataset id and name.
        layout: ``plain``, ``miccai`` or ``auto``.
        miccai_images: ``pre`` or ``orig`` images of the MICCAI layout.
        prior_fold: build the WMH prior without the validation cases of this fold of nnU-Net's default 5-fold split
            (written as ``splits_final.json``); ``None`` = from all training cases (see the README, "WMH prior and leakage").
        num_folds: folds of that split.
        num_processes: cases converted in parallel.
        options: a :class:`nnunet_ataxia.preprocessing.wmh_pipeline.WMHOptions` (default settings when ``None``).
        verify: run nnU-Net's ``verify_dataset_integrity`` before moving the dataset into place.
        overwrite: replace an existing output folder that is not an earlier output of ``convert-wmh``.
        flair_only: ignore T1 images: a FLAIR-only dataset (for models applied to FLAIR-only clinical scans).
        qc: also write ``qc/<case>.png``, the FLAIR and its eight location channels in three planes
            (:func:`nnunet_ataxia.dataset_conversion.wmh_qc.dataset_case_qc`).

    Returns:
        The dataset folder.

    Example:
        >>> convert_wmh_dataset("/data/wmh2017/training", test_dir="/data/wmh2017/test")  # doctest: +SKIP
    """
    from nnunet_ataxia.preprocessing.wmh_pipeline import WMHOptions
    from nnunet_ataxia.preprocessing.wmh_prior import prior_cases_for_fold

    options = options or WMHOptions()
    final = dataset_folder(dataset_id, dataset_name, output_dir)
    train = find_cases(input_dir, layout, miccai_images)
    test = find_cases(test_dir, layout, miccai_images) if test_dir is not None else []
    clash = sorted({c.case_id for c in train} & {c.case_id for c in test})
    if clash:
        raise InputError(f"{test_dir}: test case ids {clash[:5]} also occur among the training cases in {input_dir}")
    with_t1, (train, test) = select_t1_mode([train, test], flair_only)
    for c in train:
        check_case_files(c, require_label=True)
    for c in test:
        check_case_files(c, require_label=False)
    if not with_t1:
        print("convert-wmh: FLAIR-only mode (no T1 channel)")
    try:
        prior_ids, splits = prior_cases_for_fold([c.case_id for c in train], prior_fold, num_folds)
    except ValueError as e:
        raise InputError(f"--prior-fold: {e}") from None

    opts = asdict(replace(options))
    jobs = []
    for role, cases in (("Tr", train), ("Ts", test)):
        for c in cases:
            files = {k: file_fingerprint(getattr(c, k)) for k in ("t1", "flair", "label", "brain_mask", "ventricles")}
            jobs.append({"case_id": c.case_id, "case": asdict(c), "role": role, "options": opts,
                         "fingerprint": case_fingerprint(files=files, role=role, options=opts, version=2,
                                                         t1_in_flair_space=c.t1_in_flair_space),
                         "outputs": _stage1_outputs(c.case_id, role, c.label is not None, with_t1)})
    roles = {j["case_id"]: j["role"] for j in jobs}
    train_ids = [c.case_id for c in train]

    def fill(tmp: Path, previous: Path | None) -> None:
        for sub in ("imagesTr", "labelsTr", "brainmasks", "transforms") + (("imagesTs",) if test else ()):
            (tmp / sub).mkdir(parents=True, exist_ok=True)
        convert_cases(convert_wmh_case, jobs, tmp, previous, num_processes, desc="convert-wmh")
        _write_prior_channels(tmp, train_ids, prior_ids, roles, options, prior_fold,
                              _first_location_channel(with_t1) + LOCATION_CHANNELS.index("wmh_prior"))
        if splits is not None:
            write_splits(tmp / "splits_final.json", splits)
        from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json

        generate_dataset_json(
            str(tmp), channel_names(with_t1), LABELS, num_training_cases=len(train), file_ending=".nii.gz",
            dataset_name=final.name, license="see the source data",
            description=f"{'T1 + FLAIR' if with_t1 else 'FLAIR'} + 8 location features (Ghafoorian et al. 2017) "
                        "in FLAIR space",
            reference="Ghafoorian et al., Location sensitive deep CNNs for segmentation of WMH, Sci Rep 2017",
            converted_by="nnunet-ataxia convert-wmh", location_channels=list(LOCATION_CHANNELS),
            image_channels=["T1", "FLAIR"] if with_t1 else ["FLAIR"], mni_registration=options.registration,
            wmh_prior={"built_from_training_cases": len(prior_ids), "fold_excluded": prior_fold})
        if qc:
            from nnunet_ataxia.dataset_conversion.wmh_qc import dataset_case_qc

            for cid in roles:
                dataset_case_qc(tmp, cid, tmp / "qc" / f"{cid}.png", dataset_name=final.name)

    return write_raw_dataset(final, fill, num_processes=num_processes, verify=verify, command="convert-wmh",
                             inputs=[input_dir, test_dir], overwrite=overwrite)
