"""Which nnU-Net model ``segment`` uses, and nnU-Net's own ``nnUNetPredictor`` loaded once, in-process.

Three ways to name a model, as with ``nnUNetv2_predict``:

* nothing: the pretrained M2 shipped with the package (:mod:`nnunet_ataxia.pretrained.release`), installed into
  ``$nnUNet_results`` when that variable is set (and the model is not there yet), otherwise into a private cache
  folder (``segment`` uses one inside its output folder), so ``nnUNet_results`` is not needed;
* ``model_folder``: a ``Trainer__Plans__configuration`` folder (``nnUNetv2_predict_from_modelfolder -m``);
* ``dataset`` (+ ``trainer``, ``plans``, ``configuration``): looked up in ``$nnUNet_results`` like
  ``nnUNetv2_predict -d``. The defaults are the pretrained model's trainer, plans and configuration.
"""
from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nnunet_ataxia.errors import InputError
from nnunet_ataxia.io.cases import load_dataset_labels
from nnunet_ataxia.io.nnunet_env import dataset_name, ext_trainer_path, nnunet_folder, trainer_shim_folder
from nnunet_ataxia.pretrained import release

__all__ = ["ModelSpec", "resolve_model", "load_predictor", "model_labels"]


@dataclass(frozen=True)
class ModelSpec:
    """A resolved nnU-Net model: its folder, the folds and checkpoint to use, and where it came from."""
    folder: Path
    folds: tuple
    checkpoint: str
    source: str


def _available_folds(folder: Path, checkpoint: str) -> tuple:
    folds = []
    for sub in sorted(folder.glob("fold_*")):
        if (sub / checkpoint).is_file():
            name = sub.name[len("fold_"):]
            folds.append(int(name) if name.isdigit() else name)
    return tuple(folds)


def _check_model_folder(folder: Path, folds: Sequence | None, checkpoint: str, source: str) -> ModelSpec:
    if not folder.is_dir():
        raise InputError(f"{folder}: no such model folder")
    for name in ("plans.json", "dataset.json"):
        if not (folder / name).is_file():
            raise InputError(f"{folder}: not an nnU-Net model folder ({name} is missing; give the "
                             f"Trainer__Plans__configuration folder)")
    if folds:
        folds = tuple(int(f) if str(f).isdigit() else str(f) for f in folds)
        for f in folds:
            if not (folder / f"fold_{f}" / checkpoint).is_file():
                raise InputError(f"{folder / f'fold_{f}' / checkpoint}: no such checkpoint")
    else:
        folds = _available_folds(folder, checkpoint)
        if not folds:
            raise InputError(f"{folder}: no fold_*/{checkpoint} in this model folder")
    model_labels(folder)  # fails early for models this command cannot use
    return ModelSpec(folder=folder, folds=folds, checkpoint=checkpoint, source=source)


def _find_dataset_folder(results: Path, dataset: str | int) -> Path:
    folder = results / dataset_name(dataset)
    if not folder.is_dir():
        raise InputError(f"dataset '{dataset}': no trained model folder {folder.name} in nnUNet_results ({results})")
    return folder


def resolve_model(*, model_folder: str | os.PathLike | None = None, dataset: str | int | None = None,
                  trainer: str = release.RELEASED_TRAINER, plans: str = release.PLANS,
                  configuration: str = release.CONFIGURATION, folds: Sequence | None = None,
                  checkpoint: str = "checkpoint_final.pth",
                  cache_dir: str | os.PathLike | None = None) -> ModelSpec:
    """Find (and for the pretrained model, install if needed) the model folder to predict with.

    Args:
        model_folder: a ``Trainer__Plans__configuration`` folder (wins over ``dataset``).
        dataset: dataset id or name in ``$nnUNet_results`` (with ``trainer``, ``plans``, ``configuration``).
        trainer, plans, configuration: which model of ``dataset`` (default: the pretrained model's).
        folds: folds to ensemble (default: every fold that has ``checkpoint``).
        checkpoint: checkpoint file name in each fold folder.
        cache_dir: where the pretrained model is installed when ``nnUNet_results`` is not set.

    Example:
        >>> spec = resolve_model(cache_dir="/tmp/cache")  # doctest: +SKIP
        >>> spec.folder.name  # doctest: +SKIP
        'M2InceptionTrainer_pretrainedLabelMapsFolia__nnUNetFixed128Plans__3d_fullres'
    """
    if model_folder is not None:
        return _check_model_folder(Path(model_folder), folds, checkpoint, f"model folder {model_folder}")
    if dataset is not None:
        results = nnunet_folder("nnUNet_results")
        folder = _find_dataset_folder(results, dataset) / f"{trainer}__{plans}__{configuration}"
        return _check_model_folder(folder, folds, checkpoint, f"nnUNet_results model {folder.parent.name}/"
                                                              f"{folder.name}")
    results = os.environ.get("nnUNet_results")
    if results:
        where = f"pretrained model in nnUNet_results ({results})"
    elif cache_dir is not None:
        results, where = str(cache_dir), f"pretrained model (private copy in {cache_dir})"
    else:
        raise InputError("no model given and neither nnUNet_results nor a cache folder to install the pretrained "
                         "model into")
    folder = release.installed_model_folder(results)
    pretrained_folds = tuple(folds) if folds else (release.FOLD,)

    def installed() -> bool:
        return all((folder / f"fold_{f}" / checkpoint).is_file() for f in pretrained_folds)

    training = None if installed() else release.training_run_in(folder)
    if training is not None and cache_dir is not None:   # never install over an unfinished training run
        print(f"note: {folder} holds an unfinished training run of the pretrained model ({training}); it is left "
              f"alone and the shipped model is installed privately in {cache_dir}")
        results, where = str(cache_dir), f"pretrained model (private copy in {cache_dir})"
        folder = release.installed_model_folder(results)
    if not installed():
        release.install_pretrained(results)   # refuses (InputError) to overwrite a training run
    return _check_model_folder(folder, pretrained_folds, checkpoint, where)


def model_labels(folder: str | os.PathLike) -> dict[str, int]:
    """``{name: value}`` of the model's labels (dataset.json), background included; region-based models refused.

    Example:
        >>> model_labels(resolve_model(cache_dir="/tmp/cache").folder)  # doctest: +SKIP
        {'background': 0, 'cerebellum': 1, 'brainstem': 2}
    """
    path = Path(folder) / "dataset.json"
    structures, _, _ = load_dataset_labels(path)  # read and checked the way nnU-Net's LabelManager reads them
    regions = {name: values for name, values in structures.items() if len(values) > 1}
    if regions:
        name, values = next(iter(regions.items()))
        raise InputError(f"{path}: region-based label '{name}' {list(values)}: segment needs a model with one value "
                         f"per label")
    return {"background": 0, **{name: values[0] for name, values in structures.items()}}


def load_predictor(spec: ModelSpec, *, mirror: bool = False, device: str | None = None):
    """nnU-Net's ``nnUNetPredictor`` for ``spec``, loaded once (CPU unless CUDA is available).

    Args:
        spec: the model (:func:`resolve_model`).
        mirror: test-time mirroring over the axes the trainer allows (slower; off by default).
        device: ``"cuda"``, ``"cpu"``, or None (CUDA when available).

    Example:
        >>> predictor = load_predictor(resolve_model(cache_dir="/tmp/cache"))  # doctest: +SKIP
    """
    import torch

    if str(trainer_shim_folder()) not in os.environ.get("nnUNet_extTrainer", "").split(os.pathsep):
        # nnU-Net finds this plugin's trainer classes (named in the checkpoint) through this variable
        os.environ["nnUNet_extTrainer"] = ext_trainer_path()
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    log = io.StringIO()
    try:
        # nnU-Net's prints and its dependencies' deprecation warnings are not the user's business here
        with contextlib.redirect_stdout(log), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

            predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=bool(mirror),
                                        perform_everything_on_device=dev.type == "cuda", device=dev,
                                        verbose=False, verbose_preprocessing=False, allow_tqdm=False)
            predictor.initialize_from_trained_model_folder(str(spec.folder), use_folds=spec.folds,
                                                           checkpoint_name=spec.checkpoint)
    except (RuntimeError, KeyError, OSError, AssertionError) as e:
        raise InputError(f"{spec.folder}: nnU-Net cannot load this model ({type(e).__name__}: "
                         f"{str(e).strip().splitlines()[-1] if str(e).strip() else e})") from None
    return predictor
