"""Tune the location-feature weight alpha of a trained WMH +Loc model on its fold's validation cases.

Ghafoorian et al. §3.2.5: the eight location features are multiplied by alpha "as a parameter of the method. We
tuned the best value for alpha as a parameter by validation." The paper compares its models by validation A_z and
keeps the epoch with the best validation A_z, so alpha is chosen here by the same criterion: the pooled voxel-wise
ROC AUC over the brain voxels of the fold's validation cases (ignore label left out). The Dice-maximizing threshold
and its Dice are recorded per alpha for information.

The sweep re-weights the location features of the trained network (alpha is the ``location_alpha`` buffer of
:class:`~nnunet_ataxia.architectures.wmh_location_networks.WMHLocationNet`); the trained alpha is always part of
the sweep, so the chosen value is never worse on the validation cases than the trained one. Each case is
preprocessed once with the model's own plans (as ``nnUNetv2_predict`` does) and predicted by nnU-Net's predictor for
every alpha. The chosen alpha is written into the checkpoint's weights (where ``nnUNetv2_predict`` and the trainer
read it, no extra flag) and recorded, with the whole sweep, in ``<fold folder>/location_alpha.json``; both writes are
atomic.
"""
from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nnunet_ataxia.architectures.wmh_location_networks import NUM_LOCATION_FEATURES, image_channel_count
from nnunet_ataxia.errors import InputError
from nnunet_ataxia.io.constants import WMH_MAX_NORMAL_VOXELS_PER_CASE

ALPHA_FILE = "location_alpha.json"
DEFAULT_ALPHAS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 10.0)

__all__ = ["ALPHA_FILE", "DEFAULT_ALPHAS", "tune_location_alpha", "read_location_alpha", "set_checkpoint_alpha",
           "validation_cases"]


def read_location_alpha(fold_dir: str | os.PathLike) -> dict | None:
    """The record written by :func:`tune_location_alpha` in a fold folder, or None.

    Example:
        >>> read_location_alpha("/nonexistent") is None
        True
    """
    path = Path(fold_dir) / ALPHA_FILE
    if not path.is_file():
        return None
    from nnunet_ataxia.io.files import read_json
    return read_json(path, "alpha record")


def _atomic_write(path: Path, write) -> None:
    """``write(tmp)`` to a temporary sibling, give it the replaced file's permissions (new file: 0666 & ~umask,
    as ``open`` would), then move it into place."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        if path.exists():
            mode = stat.S_IMODE(os.stat(path).st_mode)
        else:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def set_checkpoint_alpha(checkpoint: str | os.PathLike, alpha: float) -> None:
    """Write ``alpha`` into an nnU-Net checkpoint's ``network_weights['location_alpha']`` (atomically).

    Example:
        >>> set_checkpoint_alpha("fold_0/checkpoint_final.pth", 0.5)  # doctest: +SKIP
    """
    import torch

    path = Path(checkpoint)
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    weights = ckpt["network_weights"]
    weights["location_alpha"] = torch.tensor(float(alpha), dtype=weights["location_alpha"].dtype)
    _atomic_write(path, lambda tmp: torch.save(ckpt, tmp))


def validation_cases(preprocessed_dataset: Path, fold: int) -> list[str]:
    """The validation cases of ``fold`` in ``<preprocessed dataset>/splits_final.json``."""
    from nnunet_ataxia.io.files import read_json

    splits_file = preprocessed_dataset / "splits_final.json"
    if not splits_file.is_file():
        raise InputError(f"{splits_file}: missing (nnUNetv2_train writes it when it trains the first fold)")
    splits = read_json(splits_file, "splits file", expect=list)
    if not 0 <= fold < len(splits):
        raise InputError(f"fold {fold}: {splits_file} defines folds 0-{len(splits) - 1}")
    val = list(splits[fold].get("val", [])) if isinstance(splits[fold], dict) else []
    if not val:
        raise InputError(f"fold {fold}: no validation cases in {splits_file}")
    return val


def _case_arrays(predictor, files: dict, rng: np.random.Generator, max_normal: int | None):
    """Preprocess one case with the model's plans: input, valid-voxel mask, reference, sampled voxel indices."""
    preprocessor = predictor.configuration_manager.preprocessor_class(verbose=False)
    data, seg, _ = preprocessor.run_case(files["images"], files["label"], predictor.plans_manager,
                                         predictor.configuration_manager, predictor.dataset_json)
    s = seg[0]
    ignore = predictor.label_manager.ignore_label
    n_img = image_channel_count(data.shape[0])
    brain = (data[n_img:n_img + NUM_LOCATION_FEATURES] > 0).any(0)
    valid = brain & (s >= 0) & (s != ignore if ignore is not None else True)
    reference = (s > 0) & valid
    lesion, normal = np.flatnonzero(reference), np.flatnonzero(valid & ~reference)
    if max_normal is not None and normal.size > max_normal:   # AUC is unchanged in expectation by
        normal = np.sort(rng.choice(normal, max_normal, replace=False))   # subsampling one class
    return data, valid, reference, np.concatenate([lesion, normal])


def tune_location_alpha(dataset: str | int, trainer: str, fold: int | str, plans: str = "nnUNetPlans",
                        configuration: str = "2d", alphas: Sequence[float] = DEFAULT_ALPHAS,
                        checkpoint: str = "checkpoint_final.pth", device: str = "cpu",
                        max_normal_voxels_per_case: int | None = WMH_MAX_NORMAL_VOXELS_PER_CASE,
                        seed: int = 0) -> dict:
    """Sweep alpha on the fold's validation cases, keep the one with the best validation AUC, write it.

    Args:
        dataset: dataset id or name (``nnUNet_raw`` must hold its images and labels).
        trainer, plans, configuration: the model (``nnUNet_results/<dataset>/<trainer>__<plans>__<configuration>``).
        fold: the fold (its validation cases come from ``splits_final.json``).
        alphas: values tried (>= 0); the trained alpha is added.
        checkpoint: the checkpoint predicted with and updated (``checkpoint_best.pth`` for the paper trainers).
        device: ``cpu``, ``cuda`` or ``mps``.
        max_normal_voxels_per_case: normal brain voxels per case entering the AUC (seeded subsample; all lesion
            voxels always enter); None = all.
        seed: seed of that subsample.

    Returns:
        The record written to ``location_alpha.json`` (``alpha``, ``trained_alpha``, ``sweep``, ...).

    Example:
        >>> tune_location_alpha(504, "WMHMSWSLocTrainer_paper", 0, checkpoint="checkpoint_best.pth")  # doctest: +SKIP
    """
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    from nnunet_ataxia.evaluation.wmh_statistics import best_threshold, roc, threshold_counts, threshold_grid
    from nnunet_ataxia.io.nnunet_env import nnunet_folder, raw_dataset_files, resolve_raw_dataset

    if str(fold) == "all":
        raise InputError("fold all: trained on every case, it has no held-out validation cases to tune alpha on")
    fold = int(fold)
    if not alphas or any(not np.isfinite(a) or a < 0 for a in alphas):
        raise InputError(f"--alphas {' '.join(map(str, alphas))}: give finite values >= 0")
    name, raw = resolve_raw_dataset(dataset)
    model_dir = nnunet_folder("nnUNet_results") / name / f"{trainer}__{plans}__{configuration}"
    fold_dir = model_dir / f"fold_{fold}"
    if not (fold_dir / checkpoint).is_file():
        raise InputError(f"{fold_dir / checkpoint}: no such checkpoint (train fold {fold} of {trainer} first)")
    cases = validation_cases(nnunet_folder("nnUNet_preprocessed") / name, fold)
    files = raw_dataset_files(raw)   # nnU-Net's listing, without its forked pool
    for case in cases:
        entry = files.get(case)
        missing = [f for f in ([*entry["images"], entry["label"]] if entry else []) if not os.path.isfile(f)]
        if entry is None or missing:
            raise InputError(f"{case}: validation case without its images and label in {raw}"
                             + (f" ({missing[0]} missing)" if missing else ""))

    predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=True,
                                perform_everything_on_device=True, device=torch.device(device), verbose=False,
                                verbose_preprocessing=False, allow_tqdm=False)
    try:
        predictor.initialize_from_trained_model_folder(str(model_dir), (fold,), checkpoint_name=checkpoint)
    except RuntimeError as e:
        if "Could not find requested nnunet trainer" not in str(e):
            raise
        raise InputError(f"{trainer}: nnU-Net cannot find this trainer class; point nnUNet_extTrainer at the "
                         f"plugin's trainers: eval \"$(nnunet-ataxia trainer-path --export)\"") from None
    params = predictor.list_of_parameters[0]
    if "location_alpha" not in params or not getattr(predictor.network, "use_location", False):
        raise InputError(f"{trainer}: its network has no location features, so alpha has nothing to weigh")
    earlier = read_location_alpha(fold_dir)
    trained = float(earlier["trained_alpha"]) if earlier and earlier.get("checkpoint") == checkpoint \
        else float(params["location_alpha"])
    sweep = sorted({float(a) for a in alphas} | {trained})

    thresholds = threshold_grid(101)
    rng = np.random.default_rng(seed)
    probs: dict[float, list[np.ndarray]] = {a: [] for a in sweep}
    counts: dict[float, list[np.ndarray]] = {a: [] for a in sweep}
    references = []
    for case in cases:
        data, valid, reference, picked = _case_arrays(predictor, files[case], rng, max_normal_voxels_per_case)
        references.append(reference.reshape(-1)[picked])
        for a in sweep:
            params["location_alpha"] = torch.tensor(a, dtype=params["location_alpha"].dtype)
            logits = predictor.predict_logits_from_preprocessed_data(torch.from_numpy(data)).float()
            p = torch.softmax(logits, 0)[1:].sum(0).cpu().numpy()
            probs[a].append(p.reshape(-1)[picked])
            counts[a].append(threshold_counts(p, reference, thresholds, valid))
    rows = []
    for a in sweep:
        auc = roc(probs[a], references, max_voxels=None)["auc"]
        threshold, dice = best_threshold(np.stack(counts[a]), thresholds)
        rows.append({"alpha": a, "auc": auc, "dice": dice, "threshold": threshold})
    best = rows[int(np.argmax([r["auc"] for r in rows]))]   # ties: the smallest alpha
    record = {"alpha": best["alpha"], "trained_alpha": trained, "criterion": "validation AUC (brain voxels)",
              "checkpoint": checkpoint, "trainer": trainer, "plans": plans, "configuration": configuration,
              "fold": fold, "validation_cases": cases, "sweep": rows}
    text = json.dumps(record, indent=2)
    _atomic_write(fold_dir / ALPHA_FILE, lambda tmp: Path(tmp).write_text(text))   # the record first: a re-run
    set_checkpoint_alpha(fold_dir / checkpoint, best["alpha"])                      # keeps the trained alpha
    return record
