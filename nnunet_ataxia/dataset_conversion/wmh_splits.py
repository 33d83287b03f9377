"""Fixed training/validation/test splits of a WMH dataset.

Ghafoorian et al. (§2.1) split their 466 usable RUN DMC scans once, at random, into 378 training, 42 validation and
46 test scans; every network of the paper is trained, selected and tested on that one split. :func:`paper_split`
makes a split in the same proportions from any list of cases, seeded so that a re-run gives the same split. The
converter (``convert-wmh --split paper``) writes the test part to ``imagesTs``/``labelsTs`` and the training and
validation parts as fold 0 of a custom ``splits_final.json`` (nnU-Net then trains ``nnUNetv2_train ... 0`` on
exactly that split).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["PAPER_SPLIT_SIZES", "SPLITS", "paper_split_sizes", "paper_split"]

#: the paper's split of its 466 scans: training, validation, test
PAPER_SPLIT_SIZES = (378, 42, 46)
#: ``convert-wmh --split`` choices: nnU-Net's 5-fold cross-validation, or the paper's fixed split
SPLITS = ("cv", "paper")


def paper_split_sizes(n_cases: int) -> tuple[int, int, int]:
    """Training, validation and test sizes for ``n_cases`` in the paper's 378/42/46 proportions.

    Validation and test get the rounded share (at least one case each); training the rest.

    Example:
        >>> paper_split_sizes(466)
        (378, 42, 46)
        >>> paper_split_sizes(20)
        (16, 2, 2)
    """
    total = sum(PAPER_SPLIT_SIZES)
    if n_cases < 3:
        raise ValueError(f"the paper's split needs at least 3 cases (training, validation, test), got {n_cases}")
    n_val = max(1, int(round(n_cases * PAPER_SPLIT_SIZES[1] / total)))
    n_test = max(1, int(round(n_cases * PAPER_SPLIT_SIZES[2] / total)))
    return n_cases - n_val - n_test, n_val, n_test


def paper_split(case_ids: Sequence[str], seed: int = 12345) -> dict[str, list[str]]:
    """A seeded random training/validation/test split in the paper's proportions.

    Args:
        case_ids: all labelled cases (unique).
        seed: the split's seed (the same ids and seed always give the same split, whatever their order).

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}``, each sorted, disjoint, together all cases.

    Example:
        >>> s = paper_split([f"c{i:03d}" for i in range(466)])
        >>> [len(s[k]) for k in ("train", "val", "test")]
        [378, 42, 46]
    """
    ids = sorted(map(str, case_ids))
    if len(set(ids)) != len(ids):
        raise ValueError("case ids must be unique")
    n_train, n_val, _ = paper_split_sizes(len(ids))
    order = np.random.default_rng(seed).permutation(len(ids))
    shuffled = [ids[i] for i in order]
    return {"train": sorted(shuffled[:n_train]), "val": sorted(shuffled[n_train:n_train + n_val]),
            "test": sorted(shuffled[n_train + n_val:])}
