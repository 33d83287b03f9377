"""The conventional baseline of Ghafoorian et al. (Table 3): a random forest on hand-made voxel features.

What the paper states (§4): 22 hand-crafted features -- FLAIR and T1 intensities; Laplacian of Gaussian at
sigma = 1, 2, 4 mm; determinant of the Hessian at t = 1, 2, 4 mm; a vesselness filter at sigma = 1 mm; a
multi-scale annular filter at t = 1, 2, 4 mm; the FLAIR mean and standard deviation in a 16 x 16 neighbourhood;
the same eight location features as the networks -- and a random forest with 50 trees.

What this module assumes (the paper refers to its reference [23] for the details): every filter works in-plane
(per slice, as the 2D networks, spacing in mm) on the per-case [0, 1]-scaled FLAIR; LoG and Hessian are
scale-normalized (times sigma^2 and t^4); the vesselness is Frangi's 2D measure for bright tubes (beta 0.5, c half
the largest Hessian norm of the case); the annular filter is the mean over a disk of radius t minus the mean over
the ring from t to 2t; the 16 x 16 neighbourhood is 16 x 16 voxels. FLAIR-only datasets have 21 features (no T1).
Training samples are the networks' pixel pool (:func:`nnunet_ataxia.trainers.wmh_pixel_pool.build_pixel_pool`:
half the lesion voxels of the training cases and as many normal brain voxels, the same seed), drawn here on the
raw dataset's grid. Predictions are written as ``<case>.npz`` probabilities, so that ``wmh-stats`` compares the
forest with the networks.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage

from nnunet_ataxia.errors import InputError
from nnunet_ataxia.io.constants import WMH_LABELS, WMH_LOCATION_CHANNEL_NAMES

__all__ = ["SCALES_MM", "feature_names", "hand_crafted_features", "RawWMHCases", "train_random_forest",
           "predict_probabilities", "run_random_forest_baseline"]

SCALES_MM = (1.0, 2.0, 4.0)
N_TREES = 50          # the paper
POOL_SEED = 12345     # the paper trainers' pool seed


def feature_names(with_t1: bool) -> list[str]:
    """The features in order (22 with a T1, 21 FLAIR-only).

    Example:
        >>> len(feature_names(True)), len(feature_names(False))
        (22, 21)
    """
    names = ["FLAIR"] + (["T1"] if with_t1 else [])
    names += [f"LoG_{s:g}mm" for s in SCALES_MM] + [f"detHessian_{s:g}mm" for s in SCALES_MM]
    names += ["vesselness_1mm"] + [f"annular_{s:g}mm" for s in SCALES_MM] + ["FLAIR_mean16", "FLAIR_std16"]
    return names + list(WMH_LOCATION_CHANNEL_NAMES)


def _hessian(image: np.ndarray, sigma_vox: tuple[float, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    s = (0.0, *sigma_vox)
    return tuple(ndimage.gaussian_filter(image, s, order=o) for o in ((0, 2, 0), (0, 0, 2), (0, 1, 1)))


def _disk_mean(image: np.ndarray, radius_vox: tuple[float, float]) -> np.ndarray:
    ry, rx = (max(1, int(round(r))) for r in radius_vox)
    yy, xx = np.mgrid[-ry:ry + 1, -rx:rx + 1]
    disk = ((yy / ry) ** 2 + (xx / rx) ** 2) <= 1.0
    return ndimage.correlate(image, (disk / disk.sum())[None], mode="nearest")


def hand_crafted_features(images: np.ndarray, location: np.ndarray, spacing_zyx: Sequence[float]) -> np.ndarray:
    """The baseline's features of one case (module docstring), in-plane per slice (slices along axis 0).

    Args:
        images: (1 or 2, z, y, x) FLAIR, or T1 and FLAIR (the dataset's channel order), each scaled to [0, 1].
        location: (8, z, y, x) location channels.
        spacing_zyx: voxel spacing in mm.

    Returns:
        (n_features, z, y, x) float32 in :func:`feature_names` order.

    Example:
        >>> f = hand_crafted_features(np.random.rand(2, 2, 20, 20), np.random.rand(8, 2, 20, 20), (3, 1, 1))
        >>> f.shape
        (22, 2, 20, 20)
    """
    images = np.asarray(images, dtype=np.float32)
    flair = images[-1]
    sp = np.asarray(spacing_zyx, dtype=float)[1:]
    out = [flair] + ([images[0]] if images.shape[0] == 2 else [])
    hessians = [_hessian(flair, tuple(s / sp)) for s in SCALES_MM]   # in-plane only (no derivative along z)
    out += [(hyy + hxx) * s ** 2 for s, (hyy, hxx, _) in zip(SCALES_MM, hessians, strict=False)]
    out += [(hyy * hxx - hxy ** 2) * s ** 4 for s, (hyy, hxx, hxy) in zip(SCALES_MM, hessians, strict=False)]
    hyy, hxx, hxy = hessians[SCALES_MM.index(1.0)]
    root = np.sqrt((hyy - hxx) ** 2 + 4 * hxy ** 2)
    l1, l2 = (hyy + hxx + root) / 2, (hyy + hxx - root) / 2          # l2 <= l1
    small, large = np.where(np.abs(l1) < np.abs(l2), l1, l2), np.where(np.abs(l1) < np.abs(l2), l2, l1)
    norm = np.sqrt(l1 ** 2 + l2 ** 2)
    c = 0.5 * float(norm.max()) or 1.0
    rb = small / np.where(large == 0, 1e-12, large)
    vessel = np.exp(-rb ** 2 / (2 * 0.5 ** 2)) * (1 - np.exp(-norm ** 2 / (2 * c ** 2)))
    out.append(np.where(large < 0, vessel, 0.0))                  # bright tubes: strongly negative curvature
    for s in SCALES_MM:
        inner = _disk_mean(flair, tuple(s / sp))
        outer = _disk_mean(flair, tuple(2 * s / sp))
        ring = (outer * 4 - inner) / 3                              # mean over the ring t..2t (area 4:1)
        out.append(inner - ring)
    mean = ndimage.uniform_filter(flair, (1, 16, 16), mode="nearest")
    sq = ndimage.uniform_filter(flair ** 2, (1, 16, 16), mode="nearest")
    out += [mean, np.sqrt(np.clip(sq - mean ** 2, 0, None))]
    return np.concatenate([np.stack(out).astype(np.float32), np.asarray(location, np.float32)])


class RawWMHCases:
    """A ``convert-wmh`` dataset folder read as the pool builder expects (``load_case(id) -> (data, seg, ...)``).

    Example:
        >>> cases = RawWMHCases("nnUNet_raw/Dataset504_WMH")  # doctest: +SKIP
    """

    def __init__(self, folder: str | Path, role: str = "Tr"):
        from nnunet_ataxia.io.files import read_json

        self.folder, self.role = Path(folder), role
        info = read_json(self.folder / "dataset.json", "dataset.json")
        self.n_channels = len(info["channel_names"])
        if self.n_channels not in (9, 10):
            raise InputError(f"{self.folder / 'dataset.json'}: not a convert-wmh dataset (9 or 10 channels)")

    def case_ids(self) -> list[str]:
        return sorted({p.name[:-12] for p in (self.folder / f"images{self.role}").glob("*_0000.nii.gz")})

    def load_case(self, case_id: str):
        import SimpleITK as sitk

        files = [self.folder / f"images{self.role}/{case_id}_{c:04d}.nii.gz" for c in range(self.n_channels)]
        missing = [f for f in files if not f.is_file()]
        if missing:
            raise InputError(f"{missing[0]}: missing channel of case {case_id}")
        data = np.stack([sitk.GetArrayFromImage(sitk.ReadImage(str(f))) for f in files]).astype(np.float32)
        label_file = self.folder / f"labels{self.role}/{case_id}.nii.gz"
        seg = (sitk.GetArrayFromImage(sitk.ReadImage(str(label_file)))[None].astype(np.int16)
               if label_file.is_file() else np.zeros((1, *data.shape[1:]), np.int16))
        spacing = sitk.ReadImage(str(files[0])).GetSpacing()[::-1]
        return data, seg, None, {"spacing": spacing}


def _case_features(cases: RawWMHCases, case_id: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    data, seg, _, props = cases.load_case(case_id)
    n_img = data.shape[0] - len(WMH_LOCATION_CHANNEL_NAMES)
    return hand_crafted_features(data[:n_img], data[n_img:], props["spacing"]), data, seg


def train_random_forest(cases: RawWMHCases, case_ids: Sequence[str], n_trees: int = N_TREES, seed: int = POOL_SEED,
                        fraction: float = 0.5, max_lesion_samples: int | None = None, n_jobs: int = 1):
    """Fit the forest on the pixel pool of ``case_ids`` (module docstring).

    Args:
        cases: the dataset (:class:`RawWMHCases`).
        case_ids: training cases.
        n_trees: trees (50 in the paper).
        seed: seed of the pool and of the forest.
        fraction: share of the lesion voxels in the pool (0.5 in the paper).
        max_lesion_samples: cap on the pool's lesion samples (None = the paper).
        n_jobs: scikit-learn's parallel jobs.

    Returns:
        The fitted ``sklearn.ensemble.RandomForestClassifier`` (``feature_names_``, ``n_pool_samples_`` added).

    Example:
        >>> rf = train_random_forest(RawWMHCases(raw), ["c0", "c1"])  # doctest: +SKIP
    """
    from sklearn.ensemble import RandomForestClassifier

    from nnunet_ataxia.trainers.wmh_pixel_pool import build_pixel_pool

    case_ids = list(case_ids)
    pool = build_pixel_pool(cases, case_ids, WMH_LABELS["ignore"], [False] * cases.n_channels, fraction, seed,
                            max_lesion_samples)
    x, y = [], []
    for i, cid in enumerate(case_ids):
        take = pool.case == i
        if not take.any():
            continue
        feats, _, _ = _case_features(cases, cid)
        x.append(feats[:, pool.z[take], pool.y[take], pool.x[take]].T)
        y.append((pool.label[take] == WMH_LABELS["wmh"]).astype(np.uint8))
    forest = RandomForestClassifier(n_estimators=n_trees, random_state=seed, n_jobs=n_jobs)
    forest.fit(np.concatenate(x), np.concatenate(y))
    forest.feature_names_ = feature_names(cases.n_channels == 10)
    forest.n_pool_samples_ = int(len(pool))
    return forest


def predict_probabilities(forest, cases: RawWMHCases, case_id: str, out_dir: str | Path | None = None
                          ) -> np.ndarray:
    """WMH probability of every brain voxel of one case (0 outside the brain); with ``out_dir`` also written as
    ``<case>.npz`` (``probabilities`` (2, z, y, x), nnU-Net's layout) for ``wmh-stats``.

    Example:
        >>> p = predict_probabilities(rf, RawWMHCases(raw, "Ts"), "c9", "rf/test")  # doctest: +SKIP
    """
    feats, data, _ = _case_features(cases, case_id)
    n_img = data.shape[0] - len(WMH_LOCATION_CHANNEL_NAMES)
    brain = (data[n_img:] > 0).any(0)
    prob = np.zeros(brain.shape, np.float32)
    if brain.any():
        prob[brain] = forest.predict_proba(feats[:, brain].T)[:, list(forest.classes_).index(1)] \
            if 1 in forest.classes_ else 0.0
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(out / f"{case_id}.npz", probabilities=np.stack([1 - prob, prob]))
    return prob


def run_random_forest_baseline(dataset_dir: str | Path, out: str | Path, fold: int | None = None,
                               n_trees: int = N_TREES, max_lesion_samples: int | None = None, n_jobs: int = 1,
                               overwrite: bool = False) -> dict:
    """Train the forest on a fold's (or all) training cases; write validation and test probabilities atomically.

    Returns:
        The record written to ``random_forest.json`` (features, cases, pool size, feature importances).

    Example:
        >>> run_random_forest_baseline("nnUNet_raw/Dataset504_WMH", "rf", fold=0)  # doctest: +SKIP
    """
    import json

    from nnunet_ataxia.io.files import read_json
    from nnunet_ataxia.io.output_folders import check_output_folder, output_folder

    dataset_dir = Path(dataset_dir)
    check_output_folder(out, "wmh-random-forest", inputs=[dataset_dir], overwrite=overwrite)
    train = RawWMHCases(dataset_dir, "Tr")
    ids = train.case_ids()
    val: list[str] = []
    if fold is not None:
        splits = read_json(dataset_dir / "splits_final.json", "splits file", expect=list)
        if fold >= len(splits):
            raise InputError(f"fold {fold}: {dataset_dir / 'splits_final.json'} defines folds 0-{len(splits) - 1}")
        ids, val = sorted(splits[fold]["train"]), sorted(splits[fold]["val"])
    test = RawWMHCases(dataset_dir, "Ts") if (dataset_dir / "imagesTs").is_dir() else None
    forest = train_random_forest(train, ids, n_trees, max_lesion_samples=max_lesion_samples, n_jobs=n_jobs)
    test_ids = test.case_ids() if test is not None else []
    with output_folder(out, "wmh-random-forest", inputs=[dataset_dir], overwrite=overwrite) as tmp:
        for cid in val:
            predict_probabilities(forest, train, cid, tmp / "validation")
        for cid in test_ids:
            predict_probabilities(forest, test, cid, tmp / "test")
        record = {"features": forest.feature_names_, "n_trees": n_trees, "fold": fold, "training_cases": ids,
                  "validation_cases": val, "test_cases": test_ids, "n_pool_samples": forest.n_pool_samples_,
                  "feature_importance": dict(zip(forest.feature_names_,
                                                 map(float, forest.feature_importances_), strict=False))}
        (tmp / "random_forest.json").write_text(json.dumps(record, indent=1))
    return record
