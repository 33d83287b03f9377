"""Alpha tuned as a hyper-parameter of training: one network trained per alpha, the best validation AUC kept.

Ghafoorian et al. (§3.2.5) weigh the eight location features by alpha, "a parameter of the method", tuned "by
validation". :mod:`nnunet_ataxia.evaluation.wmh_alpha_tuning` re-weighs one trained network (fast); this module
trains one network per alpha of a small grid with the same trainer, plans, configuration and fold, scores each by
the pooled voxel-wise ROC AUC over the brain voxels of the fold's validation cases (the criterion of the fast option)
and selects the best (:func:`select_best_alpha`; ties: the smallest alpha).

Each alpha's network lives in its own nnU-Net results tree, ``<model folder>/alpha_retrain/alpha_<a>/`` (set
``nnUNet_results`` to it to predict with ``nnUNetv2_predict -tr <trainer>``; the checkpoint carries its alpha). The
sweep is resumable: ``alpha_retrain_fold_<k>.json`` records every finished alpha (its AUC) after each one; a re-run
skips alphas whose record and checkpoint are there, continues an interrupted training from its latest checkpoint,
and trains the rest.
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from nnunet_ataxia.errors import InputError
from nnunet_ataxia.io.constants import WMH_MAX_NORMAL_VOXELS_PER_CASE

__all__ = ["DEFAULT_RETRAIN_ALPHAS", "RETRAIN_FOLDER", "select_best_alpha", "run_alpha_sweep",
           "retrain_location_alpha"]

#: the grid of the retrain option (each value costs one training run)
DEFAULT_RETRAIN_ALPHAS = (0.25, 1.0, 4.0)
RETRAIN_FOLDER = "alpha_retrain"


def select_best_alpha(rows: Sequence[dict]) -> dict:
    """The row with the highest validation AUC (``{"alpha", "auc", ...}``); ties and NaN: the smallest alpha wins.

    Example:
        >>> select_best_alpha([{"alpha": 1.0, "auc": 0.9}, {"alpha": 0.25, "auc": 0.95}])["alpha"]
        0.25
    """
    scored = [r for r in rows if r.get("auc") is not None and math.isfinite(r["auc"])]
    if not scored:
        raise InputError("no alpha has a finite validation AUC (are there lesions in the validation cases?)")
    return min(scored, key=lambda r: (-r["auc"], r["alpha"]))


def _alpha_name(alpha: float) -> str:
    return f"alpha_{alpha:g}"


def run_alpha_sweep(sweep_dir: str | Path, fold: int, alphas: Sequence[float], identity: dict,
                    train_one: Callable[[float, Path], None], score_one: Callable[[float, Path], float]) -> dict:
    """Train (``train_one(alpha, results_root)``) and score (``score_one(alpha, results_root)`` -> validation AUC)
    one network per alpha, resumably, and select the best.

    Args:
        sweep_dir: where the per-alpha results trees and the record go.
        fold: the fold (names the record).
        alphas: the grid (finite, >= 0).
        identity: what the networks are (trainer, plans, configuration, checkpoint, ...); a record of other
            networks is not reused.
        train_one: trains (or finishes) the network of one alpha in its results tree.
        score_one: its validation AUC.

    Returns:
        The record (``alpha``, ``sweep`` rows ``{"alpha", "auc", "model"}``, ``identity``), also written to
        ``alpha_retrain_fold_<fold>.json``.

    Example:
        >>> run_alpha_sweep("sweep", 0, [0.5, 2.0], {}, train, score)["alpha"]  # doctest: +SKIP
        2.0
    """
    alphas = sorted({float(a) for a in alphas})
    if not alphas or any(not math.isfinite(a) or a < 0 for a in alphas):
        raise InputError(f"--alphas {' '.join(map(str, alphas))}: give finite values >= 0")
    sweep_dir = Path(sweep_dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    record_file = sweep_dir / f"alpha_retrain_fold_{fold}.json"
    done: dict[float, dict] = {}
    if record_file.is_file():
        try:
            earlier = json.loads(record_file.read_text())
        except ValueError:
            earlier = {}
        if earlier.get("identity") == identity:
            done = {float(r["alpha"]): r for r in earlier.get("sweep", []) if r.get("finished")}
    rows = []
    for alpha in alphas:
        root = sweep_dir / _alpha_name(alpha)
        if alpha in done and Path(done[alpha]["model"]).is_dir():
            rows.append(done[alpha])
            continue
        train_one(alpha, root)
        rows.append({"alpha": alpha, "auc": float(score_one(alpha, root)), "model": str(root), "finished": True})
        _write_record(record_file, identity, fold, rows + [r for a, r in done.items() if a not in alphas], None)
    best = select_best_alpha(rows)
    return _write_record(record_file, identity, fold, rows, best)


def _write_record(path: Path, identity: dict, fold: int, rows: list[dict], best: dict | None) -> dict:
    from nnunet_ataxia.evaluation.wmh_alpha_tuning import _atomic_write

    record = {"alpha": None if best is None else best["alpha"],
              "model": None if best is None else best["model"], "fold": fold,
              "criterion": "validation AUC (brain voxels), one network trained per alpha",
              "identity": identity, "sweep": sorted(rows, key=lambda r: r["alpha"])}
    text = json.dumps(record, indent=2)
    _atomic_write(path, lambda tmp: Path(tmp).write_text(text))
    return record


def _trainer_class(trainer: str):
    import nnunet_ataxia.trainers as trainers
    from nnunet_ataxia.trainers.wmh_trainers import WMHLocationTrainer

    cls = getattr(trainers, trainer, None)
    if not (isinstance(cls, type) and issubclass(cls, WMHLocationTrainer)):
        raise InputError(f"{trainer}: not a WMH trainer of this plugin (e.g. WMHSSLocTrainer_paper)")
    if not cls.wmh_network.use_location:
        raise InputError(f"{trainer}: its network has no location features, so alpha has nothing to weigh")
    return cls


def _train_with_alpha(base, name: str, plans: str, configuration: str, fold: int, alpha: float, root: Path,
                      device: str) -> None:
    """Train ``base`` with ``location_alpha = alpha`` into the results tree ``root`` (resuming when possible)."""
    import nnunetv2.training.nnUNetTrainer.nnUNetTrainer as trainer_module
    import torch

    from nnunet_ataxia.io.files import read_json
    from nnunet_ataxia.io.nnunet_env import nnunet_folder

    pre = nnunet_folder("nnUNet_preprocessed") / name
    plans_json = read_json(pre / f"{plans}.json", "plans file")
    dataset_json = read_json(pre / "dataset.json", "dataset.json")
    # same class name as the base (checkpoints name a trainer nnU-Net can find), another alpha
    cls = type(base.__name__, (base,), {"wmh_network": replace(base.wmh_network, location_alpha=float(alpha)),
                                        "__module__": base.__module__})
    saved = trainer_module.nnUNet_results
    trainer_module.nnUNet_results = str(root)   # the trainer puts its output folder under nnUNet_results
    try:
        trainer = cls(plans_json, configuration, fold, dataset_json, torch.device(device))
    finally:
        trainer_module.nnUNet_results = saved
    out = Path(trainer.output_folder)
    if (out / "checkpoint_final.pth").is_file():
        return
    if (out / "checkpoint_latest.pth").is_file():
        trainer.load_checkpoint(str(out / "checkpoint_latest.pth"))
    trainer.run_training()


def retrain_location_alpha(dataset: str | int, trainer: str, fold: int | str, plans: str = "nnUNetPlans",
                           configuration: str = "2d", alphas: Sequence[float] = DEFAULT_RETRAIN_ALPHAS,
                           checkpoint: str = "checkpoint_final.pth", device: str = "cpu",
                           max_normal_voxels_per_case: int | None = WMH_MAX_NORMAL_VOXELS_PER_CASE) -> dict:
    """Train one network per alpha and keep the one with the best validation AUC (module docstring).

    Args:
        dataset: dataset id or name (planned and preprocessed; ``nnUNet_raw`` holds its images and labels).
        trainer, plans, configuration: the model; ``trainer`` must have location features.
        fold: the fold (its validation cases score each alpha).
        alphas: the grid.
        checkpoint: the checkpoint of each network that is scored (``checkpoint_best.pth`` for the paper trainers).
        device: ``cpu``, ``cuda`` or ``mps``.
        max_normal_voxels_per_case: normal voxels per validation case entering the AUC (seeded subsample).

    Returns:
        The record of :func:`run_alpha_sweep`.

    Example:
        >>> retrain_location_alpha(504, "WMHSSLocTrainer_paper", 0, checkpoint="checkpoint_best.pth")  # doctest: +SKIP
    """
    from nnunet_ataxia.io.nnunet_env import nnunet_folder, resolve_raw_dataset

    if str(fold) == "all":
        raise InputError("fold all: trained on every case, it has no held-out validation cases to tune alpha on")
    fold = int(fold)
    base = _trainer_class(trainer)
    name, _ = resolve_raw_dataset(dataset)
    if not (nnunet_folder("nnUNet_preprocessed") / name / f"{plans}.json").is_file():
        raise InputError(f"{name}: not planned with {plans} (run nnunet-ataxia plan or nnUNetv2_plan_and_preprocess)")
    model_dir = nnunet_folder("nnUNet_results") / name / f"{trainer}__{plans}__{configuration}"
    identity = {"dataset": name, "trainer": trainer, "plans": plans, "configuration": configuration,
                "checkpoint": checkpoint}

    def train_one(alpha: float, root: Path) -> None:
        _train_with_alpha(base, name, plans, configuration, fold, alpha, root, device)

    def score_one(alpha: float, root: Path) -> float:
        return _validation_auc(dataset, root / name / model_dir.name, fold, checkpoint, device,
                               max_normal_voxels_per_case)

    return run_alpha_sweep(model_dir / RETRAIN_FOLDER, fold, alphas, identity, train_one, score_one)


def _validation_auc(dataset, model_dir: Path, fold: int, checkpoint: str, device: str,
                    max_normal: int | None, seed: int = 0) -> float:
    """Pooled voxel-wise ROC AUC of one trained network over the brain voxels of its fold's validation cases."""
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    from nnunet_ataxia.evaluation.wmh_alpha_tuning import _case_arrays, validation_cases
    from nnunet_ataxia.evaluation.wmh_statistics import roc
    from nnunet_ataxia.io.nnunet_env import nnunet_folder, raw_dataset_files, resolve_raw_dataset

    name, raw = resolve_raw_dataset(dataset)
    cases = validation_cases(nnunet_folder("nnUNet_preprocessed") / name, fold)
    files = raw_dataset_files(raw)   # nnU-Net's listing, without its forked pool
    predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=True,
                                perform_everything_on_device=True, device=torch.device(device), verbose=False,
                                verbose_preprocessing=False, allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(str(model_dir), (fold,), checkpoint_name=checkpoint)
    rng = np.random.default_rng(seed)
    probs, refs = [], []
    for case in cases:
        data, _, reference, picked = _case_arrays(predictor, files[case], rng, max_normal)
        logits = predictor.predict_logits_from_preprocessed_data(torch.from_numpy(data)).float()
        probs.append(torch.softmax(logits, 0)[1:].sum(0).cpu().numpy().reshape(-1)[picked])
        refs.append(reference.reshape(-1)[picked])
    return float(roc(probs, refs, max_voxels=None)["auc"])
