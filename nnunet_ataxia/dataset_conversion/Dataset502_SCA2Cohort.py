"""SCA2 cohort (BIDS-like, with ACAPULCO outputs) -> nnU-Net raw dataset (default ``Dataset502_SCA2Cohort``).

Input layout::

    <root>/participants.tsv                      participant_id, group (control | presymptomatic | sca2)
    <root>/sub-XX/anat/sub-XX_T1w.nii.gz         the T1
    <root>/derivatives/acapulco/sub-XX/...       ACAPULCO's output folder for that T1 (any depth, e.g. out/parc/):
        *_n4_mni_seg_post_inverse.nii.gz         native-space parcellation (preferred)
        *_n4_mni_seg_post.nii.gz + *_n4_mni.nii.gz   MNI-space parcellation + ACAPULCO's MNI image (fallback: the
                                                 case is then converted in ACAPULCO's MNI space)
        *_n4_mni_seg_post_volumes.csv            volumes table (kept for the volume comparison)
    <root>/derivatives/manual/sub-XX/anat/sub-XX_desc-cerebellum_mask.nii.gz   manually corrected whole-cerebellum
                                                 mask (optional; takes precedence over ACAPULCO)

Label: background 0, cerebellum 1 = the manual mask, else the union of ACAPULCO's 28 lobule labels (by value).
Group membership goes to ``participants.tsv`` in the raw dataset (``case_id, group, source, subject``); ACAPULCO's
whole-cerebellum volumes go to ``acapulco_volumes.tsv`` (``space`` says native or MNI mm^3).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from nnunet_ataxia.dataset_conversion.conversion_utils import (
    case_fingerprint,
    case_outputs,
    convert_cases,
    convert_labelled_case,
    dataset_folder,
    file_fingerprint,
    finish_dataset,
    write_raw_dataset,
)
from nnunet_ataxia.errors import InputError
from nnunet_ataxia.io.acapulco import acapulco_whole_cerebellum_volume, find_acapulco_outputs, read_acapulco_volumes_csv
from nnunet_ataxia.io.constants import CEREBELLUM_ONLY_LABELS
from nnunet_ataxia.io.participants import write_participants_tsv, write_splits

DEFAULT_DATASET_ID = 502
DATASET_NAME = "SCA2Cohort"
COHORT_GROUPS = ("control", "presymptomatic", "sca2")
REFERENCE = "Cabeza-Ruiz et al.; Cuban Neurosciences Center SCA2 cohort; ACAPULCO (Han et al., NeuroImage 2020)"


def _first(folder: Path, patterns: tuple[str, ...]) -> Path | None:
    for pattern in patterns:
        hits = sorted(folder.glob(pattern)) if folder.is_dir() else []
        if hits:
            return hits[0]
    return None


def read_participants(root: str | os.PathLike) -> pd.DataFrame:
    """``participants.tsv`` checked: columns ``participant_id`` and ``group``, known groups, no duplicates.

    Returns:
        DataFrame with ``participant_id`` (``sub-XX``) and ``group`` (lower case), in file order.
    """
    path = Path(root) / "participants.tsv"
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: unreadable table ({e})") from None
    df.columns = [c.strip() for c in df.columns]
    for col in ("participant_id", "group"):
        if col not in df.columns:
            raise InputError(f"{path}: missing column '{col}' (found {list(df.columns)})")
    df["participant_id"] = [p.strip() if p.strip().startswith("sub-") else f"sub-{p.strip()}"
                            for p in df["participant_id"]]
    df["group"] = df["group"].str.strip().str.lower()
    bad = df.loc[~df["group"].isin(COHORT_GROUPS)]
    if len(bad):
        row = bad.iloc[0]
        raise InputError(f"{path}: unknown group '{row['group']}' for {row['participant_id']} "
                         f"(expected one of {', '.join(COHORT_GROUPS)})")
    dup = df.loc[df["participant_id"].duplicated(), "participant_id"]
    if len(dup):
        raise InputError(f"{path}: duplicate subject '{dup.iloc[0]}'")
    return df[["participant_id", "group"]].reset_index(drop=True)


def find_sca2_cases(root: str | os.PathLike) -> list[dict]:
    """Every participant's T1 and label source, checked before anything is written.

    Returns:
        One dict per participant: ``subject``, ``group``, ``image`` (the T1, or ACAPULCO's MNI image for an
        MNI-space parcellation), ``label``, ``label_kind`` (``mask`` or ``acapulco``), ``label_source``
        (``manual``, ``acapulco_native``, ``acapulco_mni``), ``volumes_csv`` (or None), ``native_t1``.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: input folder not found")
    participants = read_participants(root)
    listed = set(participants["participant_id"])
    for d in sorted(root.glob("sub-*")):
        if d.is_dir() and d.name not in listed:
            raise InputError(f"{d}: subject folder not listed in {root / 'participants.tsv'} (group unknown)")
    cases = []
    for sub, group in zip(participants["participant_id"], participants["group"], strict=False):
        anat = root / sub / "anat"
        t1 = _first(anat, (f"{sub}_T1w.nii.gz", f"{sub}_T1w.nii", f"{sub}*_T1w.nii.gz", f"{sub}*_T1w.nii"))
        if t1 is None:
            raise InputError(f"{anat / f'{sub}_T1w.nii.gz'}: T1 of {sub} (listed in participants.tsv) not found")
        manual = _first(root / "derivatives" / "manual" / sub / "anat",
                        (f"{sub}*_desc-cerebellum_mask.nii.gz", f"{sub}*_desc-cerebellum_mask.nii"))
        aca = find_acapulco_outputs(root / "derivatives" / "acapulco" / sub)
        case = {"subject": sub, "group": group, "native_t1": t1, "volumes_csv": aca["volumes"],
                "acapulco_native": aca["native"]}
        if manual is not None:
            case.update(image=t1, label=manual, label_kind="mask", label_source="manual")
        elif aca["native"] is not None:
            case.update(image=t1, label=aca["native"], label_kind="acapulco", label_source="acapulco_native")
        elif aca["mni"] is not None and aca["mni_image"] is not None:
            case.update(image=aca["mni_image"], label=aca["mni"], label_kind="acapulco", label_source="acapulco_mni")
        else:
            raise InputError(f"{root / 'derivatives'}: no cerebellum label for {sub} (need derivatives/manual/{sub}/"
                             f"anat/{sub}_desc-cerebellum_mask.nii.gz or ACAPULCO's *_n4_mni_seg_post_inverse.nii.gz"
                             f" / *_n4_mni_seg_post.nii.gz + *_n4_mni.nii.gz under derivatives/acapulco/{sub}/)")
        cases.append(case)
    if not cases:
        raise InputError(f"{root / 'participants.tsv'}: no participants listed")
    return cases


def sca2_case_id(subject: str) -> str:
    """``sub-07`` -> ``sca2_07``."""
    return "sca2_" + subject[4:] if subject.startswith("sub-") else "sca2_" + subject


def sca2_jobs(cases: list[dict], test_ids: set[str], preprocess: dict | None) -> list[dict]:
    """Conversion jobs (see ``convert_labelled_case``) for SCA2-cohort cases."""
    jobs = []
    for c in cases:
        case_id = sca2_case_id(c["subject"])
        subset = "Ts" if case_id in test_ids else "Tr"
        jobs.append({"case_id": case_id, "subject": c["subject"], "group": c["group"], "image": str(c["image"]),
                     "label": str(c["label"]), "label_kind": c["label_kind"], "subset": subset,
                     "preprocess": preprocess, "require_labels": [1], "require_names": "cerebellum",
                     "outputs": case_outputs(case_id, subset, preprocess is not None),
                     "fingerprint": case_fingerprint(image=file_fingerprint(c["image"]),
                                                     label=file_fingerprint(c["label"]), kind=c["label_kind"],
                                                     subset=subset, preprocess=preprocess)})
    return jobs


def acapulco_volume_rows(cases: list[dict]) -> list[dict]:
    """Whole-cerebellum ACAPULCO volume per case: from the volumes CSV (MNI-space mm^3) and/or the native
    parcellation (native mm^3)."""
    import SimpleITK as sitk

    from nnunet_ataxia.io.acapulco import acapulco_whole_cerebellum_mask
    from nnunet_ataxia.io.images import read_image

    rows = []
    for c in cases:
        row = {"case_id": sca2_case_id(c["subject"]), "subject": c["subject"], "group": c["group"],
               "acapulco_native_mm3": np.nan, "acapulco_csv_mni_mm3": np.nan, "label_source": c["label_source"]}
        if c["acapulco_native"] is not None:
            img = read_image(c["acapulco_native"])
            n = int(acapulco_whole_cerebellum_mask(sitk.GetArrayViewFromImage(img)).sum())
            row["acapulco_native_mm3"] = n * float(np.prod(img.GetSpacing()))
        if c["volumes_csv"] is not None:
            row["acapulco_csv_mni_mm3"] = acapulco_whole_cerebellum_volume(read_acapulco_volumes_csv(c["volumes_csv"]))
        rows.append(row)
    return rows


def stratified_folds(case_groups: dict[str, str], seed: int = 12345, n_folds: int = 5) -> list[dict]:
    """k folds stratified by group (scikit-learn's ``StratifiedKFold``, shuffled with ``seed``), in nnU-Net's
    ``splits_final.json`` format.

    Example:
        >>> folds = stratified_folds({f"s{i:02d}": ("sca2" if i % 2 else "control") for i in range(10)}, n_folds=5)
        >>> [sorted("sca2" if int(c[1:]) % 2 else "control" for c in f["val"]) for f in folds][0]
        ['control', 'sca2']
    """
    import warnings

    from sklearn.model_selection import StratifiedKFold

    cases = sorted(case_groups)
    groups = [case_groups[c] for c in cases]
    counts = {g: groups.count(g) for g in sorted(set(groups))}
    if max(counts.values(), default=0) < n_folds:
        raise InputError(f"--split cv5: {n_folds} folds stratified by group need a group of at least {n_folds} "
                         f"participants, the cohort has {counts}; use --split none (nnU-Net's own random folds)")
    with warnings.catch_warnings():  # a group smaller than n_folds is spread as far as it goes
        warnings.simplefilter("ignore", UserWarning)
        folds = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed).split(cases, groups)
        return [{"train": sorted(cases[i] for i in tr), "val": sorted(cases[i] for i in va)} for tr, va in folds]


def convert_sca2(input_folder: str | os.PathLike, output_folder: str | os.PathLike | None = None,
                 dataset_id: int = DEFAULT_DATASET_ID, split: str = "none", seed: int = 12345,
                 preprocess: bool = False, skull_strip: bool = False, num_processes: int = 1,
                 overwrite: bool = False) -> Path:
    """Convert a BIDS-like SCA2 cohort with ACAPULCO outputs into an nnU-Net raw dataset (whole cerebellum).

    Args:
        input_folder: cohort root (``participants.tsv``, ``sub-XX/anat``, ``derivatives/``).
        output_folder: dataset folder; default ``$nnUNet_raw/Dataset{dataset_id}_SCA2Cohort``.
        dataset_id: nnU-Net dataset id.
        split: ``"none"`` (nnU-Net's own random 5 folds) or ``"cv5"`` (five folds stratified by group).
        seed: seed of the split.
        preprocess: run the paper's MRI preprocessing per case.
        skull_strip: with ``preprocess`` (the paper did not strip for Data2).
        num_processes: parallel cases.
        overwrite: replace an existing output folder that is not an earlier output of this converter.

    Returns:
        The dataset folder.

    Example:
        >>> convert_sca2("/data/sca2_bids", dataset_id=502)  # doctest: +SKIP
    """
    if split not in ("none", "cv5"):
        raise InputError(f"--split: unknown split '{split}' (none, cv5)")
    final = dataset_folder(dataset_id, DATASET_NAME, output_folder)
    cases = find_sca2_cases(input_folder)
    pre = {"skull_strip": skull_strip, "crop": True} if preprocess else None
    jobs = sca2_jobs(cases, set(), pre)
    labels = dict(CEREBELLUM_ONLY_LABELS)

    def fill(tmp: Path, previous: Path | None) -> None:
        infos = convert_cases(convert_labelled_case, jobs, tmp, previous, num_processes, "convert SCA2 cohort")
        finish_dataset(tmp, jobs, infos, labels, DATASET_NAME, "SCA2 cohort: whole cerebellum (manual/ACAPULCO)",
                       REFERENCE)
        write_participants_tsv(tmp / "participants.tsv", [
            {"case_id": j["case_id"], "group": j["group"], "source": "sca2", "subject": j["subject"]} for j in jobs])
        pd.DataFrame(acapulco_volume_rows(cases)).to_csv(tmp / "acapulco_volumes.tsv", sep="\t", index=False)
        if split == "cv5":
            write_splits(tmp / "splits_final.json", stratified_folds({j["case_id"]: j["group"] for j in jobs}, seed))

    return write_raw_dataset(final, fill, num_processes, command="convert-sca2", inputs=[input_folder],
                             overwrite=overwrite)
