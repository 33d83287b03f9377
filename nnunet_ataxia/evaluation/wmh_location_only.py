"""What location alone can tell on a WMH dataset: a classifier that sees only the eight location channels.

Used by the WMH demo to show, before any network is compared, how much of the answer the location features carry:
a gradient-boosted tree classifier (scikit-learn's ``HistGradientBoostingClassifier``) on the location channels of
the training cases' voxels, scored by ROC AUC on the test cases, for two questions:

* ``wmh_vs_hard_negatives``: WMH voxels against the hard negatives (bright non-WMH voxels, given per case);
* ``wmh_vs_normal``: WMH voxels against all normal brain voxels (a seeded subsample per case).
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from nnunet_ataxia.errors import InputError

__all__ = ["case_voxels", "location_only_auc"]


def _read(path: Path) -> np.ndarray:
    if not path.is_file():
        raise InputError(f"{path}: not found")
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def case_voxels(images: Path, labels: Path, mimics: Path, case: str, first_location_channel: int,
                n_channels: int = 8, max_normal: int = 20_000, seed: int = 0) -> dict[str, np.ndarray]:
    """Location vectors of one case's WMH, hard-negative and (subsampled) normal brain voxels.

    Args:
        images: the nnU-Net image folder (``<case>_XXXX.nii.gz``).
        labels: the label folder (1 = WMH, 2 = ignored).
        mimics: the case's hard-negative map (> 0 = hard negative).
        case: the case id.
        first_location_channel: index of the first location channel (2 with T1 + FLAIR, 1 FLAIR-only).
        n_channels: number of location channels.
        max_normal: normal brain voxels kept (seeded subsample).
        seed: seed of the subsample.

    Returns:
        ``{"wmh": (n, 8), "hard": (m, 8), "normal": (k, 8)}``.

    Example:
        >>> v = case_voxels(Path("imagesTs"), Path("labelsTs"), Path("g/mimics.nii.gz"), "g", 2)  # doctest: +SKIP
    """
    loc = np.stack([_read(images / f"{case}_{c:04d}.nii.gz")
                    for c in range(first_location_channel, first_location_channel + n_channels)], axis=-1)
    label, hard = _read(labels / f"{case}.nii.gz"), _read(mimics) > 0
    brain = (loc > 0).any(-1)
    normal = np.flatnonzero(brain & (label == 0))
    rng = np.random.default_rng(seed)
    if normal.size > max_normal:
        normal = np.sort(rng.choice(normal, max_normal, replace=False))
    flat = loc.reshape(-1, n_channels)
    return {"wmh": loc[brain & (label == 1)], "hard": loc[brain & hard & (label == 0)], "normal": flat[normal]}


def _auc(train: list[dict], test: list[dict], negative: str, seed: int) -> float:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    def xy(parts: list[dict]) -> tuple[np.ndarray, np.ndarray]:
        pos = np.concatenate([p["wmh"] for p in parts])
        neg = np.concatenate([p[negative] for p in parts])
        return np.concatenate([pos, neg]), np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])

    x, y = xy(train)
    xt, yt = xy(test)
    if len(np.unique(y)) < 2 or len(np.unique(yt)) < 2:
        return float("nan")
    clf = HistGradientBoostingClassifier(max_iter=100, class_weight="balanced", random_state=seed).fit(x, y)
    return float(roc_auc_score(yt, clf.predict_proba(xt)[:, 1]))


def location_only_auc(images_tr: Path, labels_tr: Path, images_ts: Path, labels_ts: Path,
                      mimics: dict[str, Path], train_cases: Sequence[str], test_cases: Sequence[str],
                      first_location_channel: int = 2, seed: int = 0, out_json: Path | None = None) -> dict:
    """Train location-only classifiers on the training cases and score them on the test cases (module docstring).

    Args:
        images_tr, labels_tr, images_ts, labels_ts: the dataset's nnU-Net folders.
        mimics: case id -> its hard-negative map (``mimics.nii.gz`` of the WMH demo's generated cases).
        train_cases, test_cases: the case ids.
        first_location_channel: index of the first location channel.
        seed: seed of the subsamples and the classifier.
        out_json: where to write the result (optional).

    Returns:
        ``{"wmh_vs_hard_negatives": auc, "wmh_vs_normal": auc, "n_train_cases", "n_test_cases", "voxels": {...}}``.

    Example:
        >>> location_only_auc(raw / "imagesTr", raw / "labelsTr", raw / "imagesTs", raw / "labelsTs",
        ...                   mimics, ["gen000"], ["gen010"])  # doctest: +SKIP
    """
    def load(images: Path, labels: Path, cases: Sequence[str]) -> list[dict]:
        return [case_voxels(images, labels, mimics[c], c, first_location_channel, seed=seed + i)
                for i, c in enumerate(cases)]

    train, test = load(images_tr, labels_tr, train_cases), load(images_ts, labels_ts, test_cases)
    result = {"wmh_vs_hard_negatives": _auc(train, test, "hard", seed),
              "wmh_vs_normal": _auc(train, test, "normal", seed),
              "classifier": "HistGradientBoostingClassifier(max_iter=100, class_weight='balanced') on the 8 "
                            "location channels",
              "n_train_cases": len(train), "n_test_cases": len(test),
              "voxels": {part: {k: int(sum(len(c[k]) for c in cases)) for k in ("wmh", "hard", "normal")}
                         for part, cases in (("train", train), ("test", test))}}
    if out_json is not None:
        tmp = Path(out_json).with_suffix(".json.tmp")
        tmp.write_text(json.dumps(result, indent=1))
        tmp.replace(out_json)
    return result
