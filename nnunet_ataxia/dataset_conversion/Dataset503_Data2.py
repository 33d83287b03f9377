"""Data2 of Cabeza-Ruiz et al.: Hammers (cerebellum only) + the SCA2 cohort -> ``Dataset503_Data2``.

Split = the paper's Table 1 (train / validation / test, stratified by group; Hammers subjects count as healthy):

============  ========  ==============  =====
partition     healthy   presymptomatic  SCA2
============  ========  ==============  =====
train         21        3               1
validation    7         1               1
test          7         1               2
============  ========  ==============  =====

Test cases go to ``imagesTs``/``labelsTs``; train + validation are ``imagesTr`` and the validation cases are fold 0
of ``splits_final.json``. For cohorts of other sizes the same per-group fractions are used (rounded).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from nnunet_ataxia.dataset_conversion.conversion_utils import (
    convert_cases,
    convert_labelled_case,
    dataset_folder,
    finish_dataset,
    write_raw_dataset,
)
from nnunet_ataxia.dataset_conversion.Dataset501_HammersN30R95 import (
    find_hammers_cases,
    hammers_jobs,
    hammers_label_scheme,
    read_hammers_regions,
)
from nnunet_ataxia.dataset_conversion.Dataset502_SCA2Cohort import (
    acapulco_volume_rows,
    find_sca2_cases,
    sca2_case_id,
    sca2_jobs,
)
from nnunet_ataxia.io.constants import CEREBELLUM_ONLY_LABELS
from nnunet_ataxia.io.participants import write_participants_tsv, write_splits

DEFAULT_DATASET_ID = 503
DATASET_NAME = "Data2"
#: Table 1 of the paper: stratum -> (train, validation, test)
TABLE1 = {"healthy": (21, 7, 7), "presymptomatic": (3, 1, 1), "sca2": (1, 1, 2)}
_STRATUM = {"atlas": "healthy", "control": "healthy", "presymptomatic": "presymptomatic", "sca2": "sca2"}


def table1_split(case_groups: dict[str, str], seed: int = 12345) -> tuple[list[str], list[str], list[str]]:
    """The paper's Table 1 split (train, validation, test), stratified by group, seeded.

    Args:
        case_groups: case id -> group (``atlas``/``control`` = healthy, ``presymptomatic``, ``sca2``).
        seed: shuffling seed within each stratum.

    Example:
        >>> groups = {**{f"h{i}": "atlas" for i in range(35)}, **{f"p{i}": "presymptomatic" for i in range(5)},
        ...           **{f"s{i}": "sca2" for i in range(4)}}
        >>> [len(x) for x in table1_split(groups)]
        [25, 9, 10]
    """
    rs = np.random.RandomState(seed)
    train, val, test = [], [], []
    for stratum, (n_tr, n_va, n_te) in TABLE1.items():
        members = sorted(c for c, g in case_groups.items() if _STRATUM.get(g) == stratum)
        n = len(members)
        total = n_tr + n_va + n_te
        k_te = int(round(n * n_te / total))
        k_va = min(int(round(n * n_va / total)), n - k_te)
        order = [members[i] for i in rs.permutation(n)]
        test += order[:k_te]
        val += order[k_te:k_te + k_va]
        train += order[k_te + k_va:]
    return sorted(train), sorted(val), sorted(test)


def convert_data2(hammers_folder: str | os.PathLike, sca2_folder: str | os.PathLike,
                  output_folder: str | os.PathLike | None = None, dataset_id: int = DEFAULT_DATASET_ID,
                  seed: int = 12345, preprocess: bool = False, skull_strip: bool = False,
                  num_processes: int = 1, overwrite: bool = False) -> Path:
    """Merge the Hammers atlas (cerebellum only) and the SCA2 cohort into Data2 with the Table 1 split.

    Args:
        hammers_folder: the Hammers n30r95 download (see ``Dataset501_HammersN30R95``).
        sca2_folder: the SCA2 cohort root (see ``Dataset502_SCA2Cohort``).
        output_folder: dataset folder; default ``$nnUNet_raw/Dataset{dataset_id}_Data2``.
        dataset_id: nnU-Net dataset id.
        seed: seed of the split.
        preprocess: run the paper's MRI preprocessing per case (the paper did not strip the skull for Data2).
        skull_strip: with ``preprocess``.
        num_processes: parallel cases.
        overwrite: replace an existing output folder that is not an earlier output of this converter.

    Returns:
        The dataset folder.

    Example:
        >>> convert_data2("~/Hammers_mith-n30r95", "/data/sca2_bids")  # doctest: +SKIP
    """
    final = dataset_folder(dataset_id, DATASET_NAME, output_folder)
    h_cases = find_hammers_cases(hammers_folder)
    s_cases = find_sca2_cases(sca2_folder)
    _, mapping = hammers_label_scheme(read_hammers_regions(hammers_folder), cerebellum_only=True)
    groups = {**{f"hammers_{c['subject']}": "atlas" for c in h_cases},
              **{sca2_case_id(c["subject"]): c["group"] for c in s_cases}}
    train, val, test = table1_split(groups, seed)
    pre = {"skull_strip": skull_strip, "crop": True} if preprocess else None
    jobs = hammers_jobs(h_cases, mapping, set(test), pre) + sca2_jobs(s_cases, set(test), pre)
    labels = dict(CEREBELLUM_ONLY_LABELS)

    def fill(tmp: Path, previous: Path | None) -> None:
        infos = convert_cases(convert_labelled_case, jobs, tmp, previous, num_processes, "convert Data2")
        finish_dataset(tmp, jobs, infos, labels, DATASET_NAME,
                       "Data2: Hammers n30r95 (cerebellum only) + SCA2 cohort; Table 1 split", "Cabeza-Ruiz et al.")
        write_participants_tsv(tmp / "participants.tsv", [
            {"case_id": j["case_id"], "group": groups[j["case_id"]],
             "source": "hammers" if j["case_id"].startswith("hammers_") else "sca2", "subject": j["subject"],
             "split": "test" if j["case_id"] in test else "val" if j["case_id"] in val else "train"} for j in jobs])
        pd.DataFrame(acapulco_volume_rows(s_cases)).to_csv(tmp / "acapulco_volumes.tsv", sep="\t", index=False)
        write_splits(tmp / "splits_final.json", [{"train": train, "val": val}])

    return write_raw_dataset(final, fill, num_processes, command="convert-data2",
                             inputs=[hammers_folder, sca2_folder], overwrite=overwrite)
