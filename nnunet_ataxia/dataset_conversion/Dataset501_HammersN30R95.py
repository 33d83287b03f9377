"""Hammers_mith-n30r95 (brain-development.org) -> nnU-Net raw dataset (default ``Dataset501_HammersN30R95``).

The user's download holds, per subject ``aNN`` (a01 ... a30), the T1 image ``aNN.nii.gz`` and the 95-region label map
``aNN-seg.nii.gz`` (the download also has skull-stripped ``aNN-brain.nii.gz``; accepted variants: ``.nii``,
``_seg``, sub-folders, T1 named ``aNN_T1``/``aNN-T1``/``aNN-brain``). Regions 17, 18 = right, left cerebellum and
19 = brainstem (Cabeza-Ruiz et al.); when the download's own label list (a ``*label*`` .csv/.txt/.tsv/.xml file) is
present, cerebellum sides and the brainstem are read from it instead.

Output labels: background 0, cerebellum 1 (17 U 18), brainstem 2 (19); with ``split_hemispheres``: cerebellum_left 1,
cerebellum_right 2, brainstem 3; with ``cerebellum_only`` (Data2): cerebellum 1.

Usage::

    nnunet-ataxia convert-hammers -i ~/Hammers_mith-n30r95 --split paper
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
from nnunetv2.utilities.crossval_split import generate_crossval_split

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
from nnunet_ataxia.io.cases import NIFTI_ENDINGS, strip_ending
from nnunet_ataxia.io.constants import CEREBELLUM_BRAINSTEM_LABELS, CEREBELLUM_ONLY_LABELS
from nnunet_ataxia.io.files import warn
from nnunet_ataxia.io.participants import write_participants_tsv, write_splits

DEFAULT_DATASET_ID = 501
DATASET_NAME = "HammersN30R95"
#: the paper's reading of the atlas (Cabeza-Ruiz et al., section 2.1)
PAPER_REGIONS = {"cerebellum_right": 17, "cerebellum_left": 18, "brainstem": 19}
#: the values an n30r95 label map may hold: background and the 95 regions
ATLAS_VALUES = tuple(range(96))
REFERENCE = ("Hammers A et al., Hum Brain Mapp 2003; Gousias IS et al., Neuroimage 2008; Faillenot I et al., "
             "Neuroimage 2017; www.brain-development.org")
_SEG_RE = re.compile(r"^(?P<stem>.+?)[-_]seg$", re.IGNORECASE)
_T1_VARIANTS = ("{s}", "{s}_T1", "{s}-T1", "{s}_t1", "{s}-brain", "{s}_brain")


def find_hammers_cases(input_folder: str | os.PathLike) -> list[dict]:
    """Pair every ``*-seg`` label map under ``input_folder`` with its T1 image.

    Returns:
        Sorted list of ``{"subject": "a01", "image": Path, "label": Path}``.

    Raises:
        InputError: no label maps, a label map without a T1, or the same subject twice.
    """
    root = Path(input_folder)
    if not root.is_dir():
        raise InputError(f"{root}: input folder not found")
    files: dict[Path, dict[str, Path]] = {}
    for p in sorted(root.rglob("*")):
        stem = strip_ending(p.name, NIFTI_ENDINGS)
        if stem is not None and p.is_file():
            other = files.setdefault(p.parent, {}).get(stem)
            if other is not None:
                raise InputError(f"{p}: same image as {other.name} (two files of one image); remove one")
            files[p.parent][stem] = p
    cases: dict[str, dict] = {}
    for folder, by_stem in files.items():
        for stem, seg in sorted(by_stem.items()):
            m = _SEG_RE.match(stem)
            if not m:
                continue
            subject = m.group("stem")
            t1 = next((by_stem[v.format(s=subject)] for v in _T1_VARIANTS if v.format(s=subject) in by_stem), None)
            if t1 is None:
                raise InputError(f"{seg}: no T1 image for this label map (looked for "
                                 f"{', '.join(v.format(s=subject) + '.nii.gz' for v in _T1_VARIANTS)} in {folder})")
            if subject in cases:
                raise InputError(f"{seg}: duplicate subject '{subject}' (also {cases[subject]['label']})")
            cases[subject] = {"subject": subject, "image": t1, "label": seg}
    if not cases:
        raise InputError(f"{root}: no Hammers label maps (aNN-seg.nii.gz) found")
    used = {str(c[k]) for c in cases.values() for k in ("image", "label")}
    unpaired = sorted(str(p.relative_to(root)) for by_stem in files.values() for p in by_stem.values()
                      if str(p) not in used)
    if unpaired:
        warn(f"{root}: {len(unpaired)} image(s) without a label map (aNN-seg.nii.gz), not converted: "
             f"{', '.join(unpaired[:5])}{' ...' if len(unpaired) > 5 else ''}")
    return [cases[k] for k in sorted(cases)]


def read_hammers_regions(input_folder: str | os.PathLike) -> dict[str, list[int]]:
    """Cerebellum sides and brainstem values, from the atlas's own label list when present, else the paper's.

    Returns:
        ``{"cerebellum_right": [..], "cerebellum_left": [..], "brainstem": [..]}``.
    """
    table: dict[int, str] = {}
    for p in sorted(Path(input_folder).rglob("*")):
        if p.is_file() and "label" in p.name.lower() and p.suffix.lower() in (".csv", ".txt", ".tsv", ".xml"):
            text = p.read_text(errors="replace")
            pairs = re.findall(r"<index>\s*(\d+)\s*</index>\s*<name>([^<]+)</name>", text)
            pairs += re.findall(r"index=\"(\d+)\"[^>]*>([^<]+)<", text)
            pairs += re.findall(r"^\s*\"?(\d+)\"?[\s,;:\t]+\"?([A-Za-z][^\"\n]*)", text, flags=re.MULTILINE)
            for value, name in pairs:
                table.setdefault(int(value), name.strip())
    regions: dict[str, list[int]] = {"cerebellum_right": [], "cerebellum_left": [], "brainstem": []}
    for value, name in sorted(table.items()):
        words = set(re.findall(r"[a-z]+", name.lower().replace("_", " ")))
        low = name.lower()
        if "cerebell" in low and not ({"white", "nucleus", "nuclei", "peduncle"} & words):
            side = "right" if words & {"r", "right", "rh"} else "left" if words & {"l", "left", "lh"} else None
            if side:
                regions[f"cerebellum_{side}"].append(value)
        elif "brainstem" in low or "brain stem" in low:
            regions["brainstem"].append(value)
    if not (regions["cerebellum_right"] and regions["cerebellum_left"] and regions["brainstem"]):
        return {k: [v] for k, v in PAPER_REGIONS.items()}
    return regions


def hammers_label_scheme(regions: dict[str, list[int]], split_hemispheres: bool = False,
                         cerebellum_only: bool = False) -> tuple[dict[str, int], dict[int, int]]:
    """Output labels (for dataset.json) and the mapping atlas value -> output value."""
    if cerebellum_only:
        labels = dict(CEREBELLUM_ONLY_LABELS)
        mapping = {v: labels["cerebellum"] for v in regions["cerebellum_right"] + regions["cerebellum_left"]}
    elif split_hemispheres:
        labels = {"background": 0, "cerebellum_left": 1, "cerebellum_right": 2, "brainstem": 3}
        mapping = {**{v: 1 for v in regions["cerebellum_left"]}, **{v: 2 for v in regions["cerebellum_right"]},
                   **{v: 3 for v in regions["brainstem"]}}
    else:
        labels = dict(CEREBELLUM_BRAINSTEM_LABELS)
        mapping = {**{v: labels["cerebellum"] for v in regions["cerebellum_right"] + regions["cerebellum_left"]},
                   **{v: labels["brainstem"] for v in regions["brainstem"]}}
    return labels, mapping


def paper_split(case_ids: list[str], seed: int = 12345, n_val: int | None = None,
                n_test: int | None = None) -> tuple[list[str], list[str], list[str]]:
    """The paper's Data1 split: 18 train / 6 validation / 6 test of 30 (20 % / 20 % of other sizes), seeded.

    Example:
        >>> tr, va, te = paper_split([f"hammers_a{i:02d}" for i in range(1, 31)])
        >>> len(tr), len(va), len(te)
        (18, 6, 6)
    """
    ids = sorted(case_ids)
    n = len(ids)
    n_test = max(1, round(n * 0.2)) if n_test is None and n >= 3 else (n_test or 0)
    n_val = max(1, round(n * 0.2)) if n_val is None and n >= 3 else (n_val or 0)
    order = [ids[i] for i in np.random.RandomState(seed).permutation(n)]
    return sorted(order[n_test + n_val:]), sorted(order[n_test:n_test + n_val]), sorted(order[:n_test])


def hammers_jobs(cases: list[dict], mapping: dict[int, int], test_ids: set[str], preprocess: dict | None,
                 require_labels: tuple = (1,)) -> list[dict]:
    """Conversion jobs (see ``convert_labelled_case``) for Hammers cases (case id ``hammers_<subject>``)."""
    jobs = []
    for c in cases:
        case_id = f"hammers_{c['subject']}"
        subset = "Ts" if case_id in test_ids else "Tr"
        jobs.append({"case_id": case_id, "subject": c["subject"], "image": str(c["image"]), "label": str(c["label"]),
                     "label_kind": "remap", "mapping": {str(k): v for k, v in mapping.items()}, "subset": subset,
                     "preprocess": preprocess, "require_labels": list(require_labels),
                     "allowed_values": list(ATLAS_VALUES),
                     "require_names": "cerebellum", "outputs": case_outputs(case_id, subset, preprocess is not None),
                     "fingerprint": case_fingerprint(image=file_fingerprint(c["image"]),
                                                     label=file_fingerprint(c["label"]), mapping=mapping,
                                                     subset=subset, preprocess=preprocess)})
    return jobs


def convert_hammers(input_folder: str | os.PathLike, output_folder: str | os.PathLike | None = None,
                    dataset_id: int = DEFAULT_DATASET_ID, split: str = "paper", seed: int = 12345,
                    split_hemispheres: bool = False, preprocess: bool = False, skull_strip: bool = True,
                    num_processes: int = 1, overwrite: bool = False) -> Path:
    """Convert the user's Hammers n30r95 download into an nnU-Net raw dataset.

    Args:
        input_folder: the unpacked download (``aNN.nii.gz`` + ``aNN-seg.nii.gz``).
        output_folder: dataset folder; default ``$nnUNet_raw/Dataset{dataset_id}_HammersN30R95``.
        dataset_id: nnU-Net dataset id.
        split: ``"paper"`` (18/6/6: test -> imagesTs/labelsTs, validation = fold 0 of ``splits_final.json``),
            ``"cv5"`` (same test cases, five-fold CV over the others) or ``"none"`` (everything in imagesTr).
        seed: seed of the splits.
        split_hemispheres: keep left and right cerebellum apart.
        preprocess: run the paper's MRI preprocessing per case (transforms in ``transforms/<case_id>/``).
        skull_strip: with ``preprocess``, strip the skull (the paper did for Data1).
        num_processes: parallel cases (and nnU-Net's integrity check).
        overwrite: replace an existing output folder that is not an earlier output of this converter.

    Returns:
        The dataset folder.

    Example:
        >>> convert_hammers("~/Hammers_mith-n30r95", dataset_id=501, split="paper")  # doctest: +SKIP
    """
    if split not in ("paper", "cv5", "none"):
        raise InputError(f"--split: unknown split '{split}' (paper, cv5, none)")
    final = dataset_folder(dataset_id, DATASET_NAME, output_folder)
    cases = find_hammers_cases(input_folder)
    regions = read_hammers_regions(input_folder)
    labels, mapping = hammers_label_scheme(regions, split_hemispheres=split_hemispheres)
    ids = [f"hammers_{c['subject']}" for c in cases]
    train, val, test = paper_split(ids, seed) if split != "none" else (ids, [], [])
    if split == "cv5" and len(train) + len(val) < 5:
        raise InputError(f"{input_folder}: --split cv5 needs at least 5 cases outside the test set, found "
                         f"{len(train) + len(val)} of {len(ids)} cases; use --split paper or none")
    pre = {"skull_strip": skull_strip, "crop": True} if preprocess else None
    jobs = hammers_jobs(cases, mapping, set(test), pre)

    def fill(tmp: Path, previous: Path | None) -> None:
        infos = convert_cases(convert_labelled_case, jobs, tmp, previous, num_processes, "convert Hammers")
        finish_dataset(tmp, jobs, infos, labels, DATASET_NAME,
                       f"Hammers n30r95: cerebellum {'left/right ' if split_hemispheres else ''}and brainstem "
                       f"(atlas regions {regions})", REFERENCE)
        part = "train" if split == "none" else None
        write_participants_tsv(tmp / "participants.tsv", [
            {"case_id": j["case_id"], "group": "atlas", "source": "hammers", "subject": j["subject"],
             "split": part or ("test" if j["case_id"] in test else "val" if j["case_id"] in val else "train")}
            for j in jobs])
        if split == "paper":
            write_splits(tmp / "splits_final.json", [{"train": train, "val": val}])
        elif split == "cv5":
            write_splits(tmp / "splits_final.json", generate_crossval_split(sorted(train + val), seed, 5))

    return write_raw_dataset(final, fill, num_processes, command="convert-hammers", inputs=[input_folder],
                             overwrite=overwrite)
