"""T1 + FLAIR (or FLAIR-only) + WMH data (plain RUN DMC-style or MICCAI WMH 2017 layout) -> nnU-Net raw dataset (504).

Ten input channels per case on the FLAIR grid: ``_0000`` T1 (registered to FLAIR), ``_0001`` FLAIR, ``_0002`` ..
``_0009`` the eight location features (x, y, z in MNI; in-plane distance to the left ventricle, the right ventricle,
the cortex and the midsagittal plane; the WMH prior), each in [0, 1] inside the brain and 0 outside. FLAIR-only
datasets (no T1 in any case, or ``flair_only``) have nine: ``_0000`` FLAIR, ``_0001`` .. ``_0008`` the features.
Labels {0 background, 1 wmh, 2 ignore}. Also written: ``brainmasks/<case>.nii.gz`` (FLAIR grid),
``transforms/<case>/`` (``flair_to_mni.txt`` 4x4 affine, with the default non-linear registration
``mni_warp.nii.gz`` + ``mni_warp_inverse.nii.gz`` (:class:`nnunet_ataxia.preprocessing.wmh_mni_map.MNIMap`), and with
a T1
``flair_to_t1.tfm``), ``wmh_prior_mni.nii.gz`` + ``wmh_prior.json`` (which cases built each case's prior; by default
cross-fitted, so that no training case's prior holds its own labels) and, with a prior fold or ``split="paper"``,
``splits_final.json``.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from nnunet_ataxia.dataset_conversion.conversion_utils import (
    MANIFEST_NAME,
    case_fingerprint,
    convert_cases,
    dataset_folder,
    file_fingerprint,
    write_raw_dataset,
)
from nnunet_ataxia.dataset_conversion.wmh_layouts import WMHCaseFiles, check_case_files, find_cases, select_t1_mode
from nnunet_ataxia.errors import InputError
from nnunet_ataxia.io.constants import (
    WMH_FLAIR_ONLY_IMAGE_CHANNEL_NAMES,
    WMH_FLAIR_ONLY_LOCATION_CHANNEL_INDICES,
    WMH_IMAGE_CHANNEL_NAMES,
    WMH_LABELS,
    WMH_LOCATION_CHANNEL_INDICES,
    WMH_LOCATION_CHANNEL_NAMES,
)
from nnunet_ataxia.io.images import write_image_like
from nnunet_ataxia.io.output_folders import check_output_folder
from nnunet_ataxia.io.participants import write_splits

__all__ = ["DATASET_ID", "DATASET_NAME", "CHANNEL_NAMES", "channel_names", "convert_wmh_dataset",
           "convert_wmh_case", "ventricle_check_lines"]

DATASET_ID, DATASET_NAME = 504, "WMH"


def channel_names(with_t1: bool = True) -> dict[str, str]:
    """dataset.json ``channel_names``: T1, FLAIR, 8 x noNorm; FLAIR-only: FLAIR, 8 x noNorm.

    Example:
        >>> list(channel_names(False).values())[:2]
        ['FLAIR', 'noNorm']
    """
    images = list(WMH_IMAGE_CHANNEL_NAMES if with_t1 else WMH_FLAIR_ONLY_IMAGE_CHANNEL_NAMES)
    return {str(i): name for i, name in enumerate(images + ["noNorm"] * len(WMH_LOCATION_CHANNEL_NAMES))}


def _first_location_channel(with_t1: bool) -> int:
    return (WMH_LOCATION_CHANNEL_INDICES if with_t1 else WMH_FLAIR_ONLY_LOCATION_CHANNEL_INDICES)[0]


CHANNEL_NAMES = channel_names(with_t1=True)
PRIOR_CHANNEL = _first_location_channel(True) + WMH_LOCATION_CHANNEL_NAMES.index("wmh_prior")


def _stage1_outputs(case_id: str, role: str, has_label: bool, with_t1: bool) -> list[str]:
    prior_channel = _first_location_channel(with_t1) + WMH_LOCATION_CHANNEL_NAMES.index("wmh_prior")
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
    images += [pre.features[name] for name in WMH_LOCATION_CHANNEL_NAMES[:-1]]
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
    from nnunet_ataxia.preprocessing.wmh_ventricles import zero_distance_csf_dark_share

    dark = zero_distance_csf_dark_share(pre.flair, pre.brain, pre.features["dist_left_ventricle"],
                                        pre.features["dist_right_ventricle"])
    return {"ventricles": pre.ventricle_source, "brain_voxels": int(pre.brain.sum()), "role": role,
            "registration": pre.registration, "ventricle_csf_dark": dark}


def ventricle_check_lines(case_ids: Sequence[str], infos: Sequence[dict]) -> list[str]:
    """One line per case: the share of each distance-to-ventricle channel's zero-distance voxels that are CSF-dark.

    Example:
        >>> ventricle_check_lines(["c1"], [{"ventricles": "atlas+image", "ventricle_csf_dark":
        ...     {"left": 0.9, "right": 0.8, "both": 0.86, "left_voxels": 10, "right_voxels": 5}}])[0][:47]
        'convert-wmh: c1: ventricles (atlas+image): 86 %'
    """
    lines = []
    for cid, info in zip(case_ids, infos, strict=True):
        d = info.get("ventricle_csf_dark")
        if d:
            lines.append(f"convert-wmh: {cid}: ventricles ({info.get('ventricles')}): {100 * d['both']:.0f} % of the "
                         f"zero-distance voxels CSF-dark (left {100 * d['left']:.0f} % of {d['left_voxels']}, right "
                         f"{100 * d['right']:.0f} % of {d['right_voxels']}; CSF-dark: FLAIR below the brain's "
                         "10th percentile)")
    return lines


def _write_prior_channels(out: Path, sources: dict[str, tuple[str, ...]], roles: dict[str, str], options,
                          record: dict, prior_channel: int = PRIOR_CHANNEL, external: sitk.Image | None = None) -> None:
    """Build the WMH priors (one per distinct set of source cases, from training labels only; or the ``external``
    prior for every case) and write the prior channel of every case.

    ``wmh_prior_mni.nii.gz`` is the prior of the whole pool (what unseen cases get); ``wmh_prior.json`` records the
    pool and which cases built each case's prior.
    """
    from nnunet_ataxia.preprocessing.wmh_location_features import normalize_features
    from nnunet_ataxia.preprocessing.wmh_mni_map import MNIMap
    from nnunet_ataxia.preprocessing.wmh_pipeline import mni_template
    from nnunet_ataxia.preprocessing.wmh_prior import build_wmh_prior, mni_grid, sample_prior, warp_wmh_to_mni

    pool = sorted({cid for ids in sources.values() for cid in ids})
    train_ids = {cid for cid, role in roles.items() if role == "Tr"}
    leaked = sorted(set(pool) - train_ids)
    assert not leaked, f"only training labels may enter the WMH prior, got {leaked}"
    if external is not None:
        priors = {None: external}
        full = external
    else:
        grid = mni_grid(mni_template(1.0)[0], options.prior_grid_mm)
        # the prior of a source set = mean of its cases' maps: sums of the left-out cases, subtracted from the total
        left_out = {ids: sorted(set(pool) - set(ids)) for ids in set(sources.values())}
        total, removed = None, {ids: None for ids in left_out}
        for cid in pool:
            w = warp_wmh_to_mni(sitk.ReadImage(str(out / f"labelsTr/{cid}.nii.gz")),
                                MNIMap.load(out / f"transforms/{cid}"), grid).astype(np.float64)
            total = w if total is None else total + w
            for ids, excluded in left_out.items():
                if cid in excluded:
                    removed[ids] = w if removed[ids] is None else removed[ids] + w
        priors = {ids: build_wmh_prior([(total - (0 if removed[ids] is None else removed[ids])) / len(ids)], grid,
                                       options.prior_sigma_mm) for ids in left_out}
        full = build_wmh_prior([total / len(pool)], grid, options.prior_sigma_mm)
    sitk.WriteImage(full, str(out / "wmh_prior_mni.nii.gz"), useCompression=True)
    folds = sorted({ids for ids in sources.values() if len(ids) < len(pool)},
                   key=lambda ids: sorted(set(pool) - set(ids)))
    fold_of = {ids: i for i, ids in enumerate(folds)}
    (out / "wmh_prior.json").write_text(json.dumps(
        {**record, "built_from": pool, "grid_mm": options.prior_grid_mm, "sigma_mm": options.prior_sigma_mm,
         "left_out_per_prior": [sorted(set(pool) - set(ids)) for ids in folds],
         "prior_of_case": {cid: fold_of.get(sources.get(cid), "pool") for cid in sorted(roles)}}, indent=1))
    for cid, role in roles.items():
        mask_img = sitk.ReadImage(str(out / f"brainmasks/{cid}.nii.gz"))
        brain = sitk.GetArrayFromImage(mask_img) > 0
        prior = priors[None] if external is not None else priors[sources[cid]]
        values = sample_prior(prior, mask_img, MNIMap.load(out / f"transforms/{cid}"))
        channel = normalize_features({"wmh_prior": values}, brain)["wmh_prior"]
        write_image_like(channel, mask_img, out / f"images{role}/{cid}_{prior_channel:04d}.nii.gz", np.float32)


def convert_wmh_dataset(input_dir: str | Path, output_dir: str | Path | None = None, *,
                        test_dir: str | Path | None = None,
                        dataset_id: int = DATASET_ID, dataset_name: str = DATASET_NAME, layout: str = "auto",
                        miccai_images: str = "pre", prior_fold: int | None = None, num_folds: int = 5,
                        num_processes: int = 1, options=None, verify: bool = True, overwrite: bool = False,
                        flair_only: bool = False, qc: bool = False, prior: str = "crossfit",
                        prior_file: str | Path | None = None, split: str = "cv", split_seed: int = 12345) -> Path:
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
            (written as ``splits_final.json``); ``None`` = from all training cases.
        num_folds: folds of that split, and of the prior's cross-fitting.
        num_processes: cases converted in parallel.
        options: a :class:`nnunet_ataxia.preprocessing.wmh_pipeline.WMHOptions` (default settings when ``None``).
        verify: run nnU-Net's ``verify_dataset_integrity`` before moving the dataset into place.
        overwrite: replace an existing output folder that is not an earlier output of ``convert-wmh``.
        flair_only: ignore T1 images: a FLAIR-only dataset (for models applied to FLAIR-only clinical scans).
        qc: also write ``qc/<case>.png``, the FLAIR and its eight location channels in three planes
            (:func:`nnunet_ataxia.dataset_conversion.wmh_qc.dataset_case_qc`).
        prior: ``"crossfit"`` (default: a training case's prior never holds its own labels) or ``"pooled"`` (every
            case gets the prior of all pool cases; leaks each training case's labels into its input); see
            :func:`nnunet_ataxia.preprocessing.wmh_prior.prior_sources`.
        prior_file: a fixed prior in MNI space for every case instead (no label of this dataset is used).
        split: ``"cv"`` (nnU-Net's cross-validation) or ``"paper"``: a fixed seeded training/validation/test split
            of the input cases in the paper's 378/42/46 proportions (test cases -> ``imagesTs``/``labelsTs``,
            training/validation -> fold 0 of ``splits_final.json``); see
            :mod:`nnunet_ataxia.dataset_conversion.wmh_splits`.
        split_seed: seed of the paper split.

    Returns:
        The dataset folder.

    Example:
        >>> convert_wmh_dataset("/data/wmh2017/training", test_dir="/data/wmh2017/test")  # doctest: +SKIP
    """
    from nnunet_ataxia.dataset_conversion.wmh_splits import SPLITS, paper_split
    from nnunet_ataxia.preprocessing.wmh_pipeline import WMHOptions
    from nnunet_ataxia.preprocessing.wmh_prior import (
        PRIOR_MODES,
        prior_cases_for_fold,
        prior_sources,
        read_external_prior,
    )

    options = options or WMHOptions()
    if split not in SPLITS:
        raise InputError(f"--split {split}: choose one of {', '.join(SPLITS)}")
    if prior not in PRIOR_MODES:
        raise InputError(f"--prior {prior}: choose one of {', '.join(PRIOR_MODES)}")
    if split == "paper" and test_dir is not None:
        raise InputError(f"{test_dir}: --split paper takes its test cases from the input; give no test folder")
    if split == "paper" and prior_fold is not None:
        raise InputError("--split paper has one fixed validation set; --prior-fold applies to cross-validation only")
    external = read_external_prior(prior_file) if prior_file is not None else None
    final = dataset_folder(dataset_id, dataset_name, output_dir)
    # the output folder first: a wrong -o is named before anything about the cases
    check_output_folder(final, "convert-wmh", inputs=[input_dir, test_dir], overwrite=overwrite,
                        recognize=(MANIFEST_NAME,))
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
    if split == "paper":
        try:
            fixed = paper_split([c.case_id for c in train], split_seed)
        except ValueError as e:
            raise InputError(f"{input_dir}: --split paper: {e}") from None
        test = [c for c in train if c.case_id in set(fixed["test"])]
        train = [c for c in train if c.case_id not in set(fixed["test"])]
        prior_ids, splits = fixed["train"], [{"train": fixed["train"], "val": fixed["val"]}]
    else:
        try:
            prior_ids, splits = prior_cases_for_fold([c.case_id for c in train], prior_fold, num_folds)
        except ValueError as e:
            raise InputError(f"--prior-fold: {e}") from None
    all_ids = [c.case_id for c in train] + [c.case_id for c in test]
    if external is None:
        try:
            sources = prior_sources(prior_ids, sorted(set(all_ids) - set(prior_ids)), prior, num_folds)
        except ValueError as e:
            raise InputError(f"{input_dir}: WMH prior: {e}") from None
    else:
        sources = {}
    record = {"mode": "file" if external is not None else prior, "file": None if external is None else str(prior_file),
              "fold": prior_fold, "split": split}

    opts = asdict(replace(options))
    jobs = []
    for role, cases in (("Tr", train), ("Ts", test)):
        for c in cases:
            files = {k: file_fingerprint(getattr(c, k)) for k in ("t1", "flair", "label", "brain_mask", "ventricles")}
            jobs.append({"case_id": c.case_id, "case": asdict(c), "role": role, "options": opts,
                         "fingerprint": case_fingerprint(files=files, role=role, options=opts, version=3,
                                                         t1_in_flair_space=c.t1_in_flair_space),
                         "outputs": _stage1_outputs(c.case_id, role, c.label is not None, with_t1)})
    roles = {j["case_id"]: j["role"] for j in jobs}

    def fill(tmp: Path, previous: Path | None) -> None:
        for sub in ("imagesTr", "labelsTr", "brainmasks", "transforms") + (("imagesTs",) if test else ()):
            (tmp / sub).mkdir(parents=True, exist_ok=True)
        infos = convert_cases(convert_wmh_case, jobs, tmp, previous, num_processes, desc="convert-wmh")
        for line in ventricle_check_lines([j["case_id"] for j in jobs], infos):
            print(line)
        prior_channel = _first_location_channel(with_t1) + WMH_LOCATION_CHANNEL_NAMES.index("wmh_prior")
        _write_prior_channels(tmp, sources, roles, options, record, prior_channel, external)
        if splits is not None:
            write_splits(tmp / "splits_final.json", splits)
        from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json

        generate_dataset_json(
            str(tmp), channel_names(with_t1), WMH_LABELS, num_training_cases=len(train), file_ending=".nii.gz",
            dataset_name=final.name, license="see the source data",
            description=f"{'T1 + FLAIR' if with_t1 else 'FLAIR'} + 8 location features (Ghafoorian et al. 2017) "
                        "in FLAIR space",
            reference="Ghafoorian et al., Location sensitive deep CNNs for segmentation of WMH, Sci Rep 2017",
            converted_by="nnunet-ataxia convert-wmh", location_channels=list(WMH_LOCATION_CHANNEL_NAMES),
            image_channels=["T1", "FLAIR"] if with_t1 else ["FLAIR"], mni_registration=options.registration,
            wmh_prior={"mode": record["mode"], "fold_excluded": prior_fold, "split": split,
                       "built_from_training_cases": 0 if external is not None else len(prior_ids)})
        if qc:
            from nnunet_ataxia.dataset_conversion.wmh_qc import dataset_case_qc

            for cid in roles:
                dataset_case_qc(tmp, cid, tmp / "qc" / f"{cid}.png", dataset_name=final.name)

    return write_raw_dataset(final, fill, num_processes=num_processes, verify=verify, command="convert-wmh",
                             inputs=[input_dir, test_dir], overwrite=overwrite)
