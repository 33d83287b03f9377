"""The pretrained M2 shipped with the package: its nnU-Net identity, export to nnU-Net's zip, installation.

The model is an ordinary nnU-Net model folder (:data:`RELEASED_TRAINER` of :data:`RELEASED_DATASET_NAME`),
``$nnUNet_results/Dataset511_LabelMapCerebellumBrainstem/M2InceptionTrainer_pretrainedLabelMapsFolia__
nnUNetFixed128Plans__3d_fullres/fold_0``, exported with nnU-Net's own ``export_pretrained_model``
(``nnUNetv2_export_model_to_zip``) and installed with ``install_model_from_zip_file``
(``nnUNetv2_install_pretrained_model_from_zip``). The shipped checkpoint keeps only what inference and
``-pretrained_weights`` need (no optimizer state). The package also holds the model it was fine-tuned from, model
v1 (:data:`V1_ZIP_NAME`): where ``train-pretrained --label-maps`` starts by default.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import torch

from nnunet_ataxia.architectures.common import upgrade_output_keys
from nnunet_ataxia.errors import InputError
from nnunet_ataxia.io.constants import CEREBELLUM_BRAINSTEM_LABELS as LABELS  # noqa: F401 (the model's labels)
from nnunet_ataxia.io.nnunet_env import ext_trainer_path

#: model v1's dataset: subjects generated from the one template anatomy (``train-pretrained`` without ``--label-maps``)
DATASET_ID = 510
DATASET_NAME = "Dataset510_SynthCerebellumBrainstem"
#: the first (from-scratch) stage of model v1's training run
TRAINER = "M2InceptionTrainer_pretrained"
#: the training stages of ``train-pretrained``'s default run
TRAINING_STAGES = (TRAINER,)
#: ``train-pretrained --contrast-finetune``: a second stage with more random contrasts (tried; not the released model,
#: see CHANGELOG.md)
CONTRAST_FINETUNE_STAGES = (TRAINER, "M2InceptionTrainer_pretrainedContrastFinetune")
#: random-contrast subjects that ``--contrast-finetune`` adds to the dataset
CONTRAST_FINETUNE_SUBJECTS = 80
#: ``train-pretrained --contrast-finetune 2``: a third stage on twice the random contrasts, from the second stage
CONTRAST_FINETUNE2_STAGES = CONTRAST_FINETUNE_STAGES + ("M2InceptionTrainer_pretrainedContrastFinetune2",)
CONTRAST_FINETUNE2_SUBJECTS = 160
#: model v1's trainer (the last stage of the template run that made it)
V1_TRAINER = CONTRAST_FINETUNE2_STAGES[-1]
#: the pretrained model v2 (``train-pretrained --label-maps``): its dataset and its one stage, which fine-tunes
#: model v1 on pseudo-subjects rendered from real label maps
LABEL_MAP_DATASET_ID = 511
LABEL_MAP_DATASET_NAME = "Dataset511_LabelMapCerebellumBrainstem"
LABEL_MAP_STAGES = ("M2InceptionTrainer_pretrainedLabelMaps",)
#: the cortex-rim fine-tuning of a trained model v2 (``train-pretrained --label-maps DIR --cortex-rim``): one shorter
#: stage on subjects rendered with the outer cortex layers blended towards CSF
LABEL_MAP_RIM_STAGES = ("M2InceptionTrainer_pretrainedLabelMapsRim",)
#: the cerebellar-folia fine-tuning of a trained model v2 (``train-pretrained --label-maps DIR --cortex-folia``)
LABEL_MAP_FOLIA_STAGES = ("M2InceptionTrainer_pretrainedLabelMapsFolia",)
#: a fine-tuning of a trained model v2 without dropout (``train-pretrained --label-maps DIR --no-dropout``)
LABEL_MAP_NO_DROPOUT_STAGES = ("M2InceptionTrainer_pretrainedLabelMapsNoDropout",)
#: the shipped model: model v2 fine-tuned with cerebellar folia; its trainer names the model folder in the zip
RELEASED_TRAINER = LABEL_MAP_FOLIA_STAGES[-1]
RELEASED_DATASET_ID = LABEL_MAP_DATASET_ID
RELEASED_DATASET_NAME = LABEL_MAP_DATASET_NAME
#: where a v2 run finds the network it starts from (``<nnUNet_results>/<dataset>/initial_weights/``)
INITIAL_WEIGHTS_FOLDER = "initial_weights"
PLANS = "nnUNetFixed128Plans"
CONFIGURATION = "3d_fullres"
FOLD = 0
ZIP_NAME = "M2_cerebellum_brainstem_pretrained.zip"
#: model v1 (:data:`V1_TRAINER` of :data:`DATASET_NAME`), shipped beside the model as the start of model v2's training
V1_ZIP_NAME = "M2_cerebellum_brainstem_pretrained_v1.zip"
#: what is known about the shipped model (training progress, held-out accuracy), next to the zip
RELEASE_INFO_NAME = "release.json"
#: the package folder that holds the shipped zips and :data:`RELEASE_INFO_NAME`
PACKAGE_DATA = Path(__file__).resolve().parent.parent / "data" / "pretrained"
#: checkpoint entries kept in the shipped model (what nnU-Net's predictor and load_pretrained_weights read)
INFERENCE_KEYS = ("network_weights", "init_args", "trainer_name", "inference_allowed_mirroring_axes",
                  "current_epoch", "_best_ema")


def model_dir_name(trainer: str = RELEASED_TRAINER) -> str:
    """``<trainer>__nnUNetFixed128Plans__3d_fullres``: nnU-Net's trainer folder name (default: the shipped model's)."""
    return f"{trainer}__{PLANS}__{CONFIGURATION}"


def pretrained_zip_path(v1: bool = False) -> Path:
    """The zip shipped inside the package (``nnunet_ataxia/data/pretrained/``); InputError if it is missing.

    Args:
        v1: model v1's zip (:data:`V1_ZIP_NAME`), where a model v2 training starts, instead of the shipped model's.

    Example:
        >>> pretrained_zip_path().name  # doctest: +SKIP
        'M2_cerebellum_brainstem_pretrained.zip'
    """
    path = PACKAGE_DATA / (V1_ZIP_NAME if v1 else ZIP_NAME)
    if not path.is_file():
        if v1:
            raise InputError(f"{path}: model v1 is missing from this installation; give the network to start from "
                             f"with --initial-weights")
        raise InputError(f"{path}: this version ships no pretrained model yet (its training is still running, see the "
                         f"model card, docs/model-card.md); give your own model with -m <nnU-Net model folder> or "
                         f"-d/-tr/-p, or build one with 'nnunet-ataxia train-pretrained'")
    return path


def release_info() -> dict:
    """The shipped model's ``release.json`` (``status`` "interim" or "final", epochs, held-out figures), or {}.

    Example:
        >>> release_info().get("status") in (None, "interim", "final")
        True
    """
    path = PACKAGE_DATA / RELEASE_INFO_NAME
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def release_note() -> str | None:
    """One line to show users when the shipped model is an interim release (None for a final one)."""
    info = release_info()
    if not info or info.get("status") == "final":
        return None
    heldout = info.get("heldout", {})
    figures = ", ".join(f"{k} {v}" for k, v in heldout.items()) if heldout else "not yet measured"
    return (f"note: the shipped pretrained model is an interim release (epoch {info.get('epochs_done', '?')} of "
            f"{info.get('epochs_planned', '?')}; held-out: {figures}); check the QC pictures and see the model card "
            f"(docs/model-card.md)")


def training_run_in(model_folder: str | os.PathLike) -> str | None:
    """What marks ``model_folder`` as a training run (a file an installed zip never holds), or None.

    Installing the shipped zip there would replace that run's files (its ``checkpoint_final.pth`` would also make
    ``train-pretrained`` think the run had finished), so :func:`install_pretrained` refuses.

    Example:
        >>> training_run_in("/nonexistent/model") is None
        True
    """
    for fold in sorted(Path(model_folder).glob("fold_*")):
        for name in ("checkpoint_latest.pth", "checkpoint_best.pth"):
            if (fold / name).is_file():
                return f"{fold.name}/{name}"
    return None


@contextlib.contextmanager
def start_checkpoint(initial_weights: str | os.PathLike | None) -> Iterator[Path]:
    """The checkpoint a fine-tuning run starts from (``train-pretrained --initial-weights``), as a context manager.

    A model zip's fold-0 ``checkpoint_final.pth`` is extracted into a temporary folder that is removed when the
    ``with`` block ends, also on an error; a PyTorch checkpoint is used where it lies.

    Args:
        initial_weights: a checkpoint or an nnU-Net model zip; ``None``: model v1 (:data:`V1_ZIP_NAME`), where
            model v2's training starts.

    Raises:
        InputError: no such file, or neither a PyTorch checkpoint nor a model zip with one fold-0 checkpoint (on
            entering the ``with`` block).

    Example:
        >>> with start_checkpoint("model_v2.zip") as checkpoint:  # doctest: +SKIP
        ...     checkpoint.name
        'checkpoint_final.pth'
    """
    path = Path(initial_weights) if initial_weights is not None else pretrained_zip_path(v1=True)
    if not path.is_file():
        raise InputError(f"{path}: no such file (--initial-weights: an nnU-Net model zip or checkpoint)")
    if not zipfile.is_zipfile(path):
        raise InputError(f"{path}: neither an nnU-Net model zip nor a PyTorch checkpoint")
    with zipfile.ZipFile(path) as zf:
        entries = zf.namelist()
        names = [n for n in entries if n.endswith(f"fold_{FOLD}/checkpoint_final.pth")]
        if not names and not any(n.endswith("/data.pkl") for n in entries):
            raise InputError(f"{path}: no fold_{FOLD}/checkpoint_final.pth in this zip; neither an nnU-Net model zip "
                             f"nor a PyTorch checkpoint")
        if len(names) > 1:
            raise InputError(f"{path}: expected one fold_{FOLD}/checkpoint_final.pth in this zip, "
                             f"found {len(names)}")
        if not names:   # torch.save's own zip layout: a checkpoint
            extracted = None
        else:
            extracted = tempfile.TemporaryDirectory(prefix="nnunet_ataxia_initial_")
            with zf.open(names[0]) as src, open(Path(extracted.name) / "checkpoint_final.pth", "wb") as dst:
                shutil.copyfileobj(src, dst)
    if extracted is None:
        yield path
        return
    with extracted as folder:
        yield Path(folder) / "checkpoint_final.pth"


def installed_model_folder(results: str | os.PathLike | None = None) -> Path:
    """Where the pretrained model lives (or will live) under ``nnUNet_results``."""
    if results is None:
        results = os.environ.get("nnUNet_results")
        if not results:
            raise InputError("environment variable nnUNet_results is not set: it says where nnU-Net models live")
    return Path(results) / RELEASED_DATASET_NAME / model_dir_name()


def strip_checkpoint(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Copy an nnU-Net checkpoint keeping only :data:`INFERENCE_KEYS` (drops optimizer and logging state); the output
    layer's keys are written the current way (``head.seg_layers.*``, :func:`upgrade_output_keys`)."""
    checkpoint = torch.load(src, map_location="cpu", weights_only=False)
    missing = [k for k in ("network_weights", "init_args", "trainer_name") if k not in checkpoint]
    if missing:
        raise InputError(f"{src}: not an nnU-Net checkpoint (missing {', '.join(missing)})")
    upgrade_output_keys(checkpoint["network_weights"])
    torch.save({k: checkpoint[k] for k in INFERENCE_KEYS if k in checkpoint}, dst)


def _nnunet(args: list[str], results: Path) -> None:
    env = dict(os.environ, nnUNet_results=str(results), nnUNet_extTrainer=ext_trainer_path())  # the trainer class
    proc = subprocess.run(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.strip().splitlines()[-15:])
        raise InputError(f"{' '.join(args[:2])}: failed (exit {proc.returncode}):\n{tail}")


def export_release(model_folder: str | os.PathLike, out_zip: str | os.PathLike, *,
                   checkpoint: str = "checkpoint_best.pth", validate: bool = True,
                   trainer: str = RELEASED_TRAINER, dataset_id: int = RELEASED_DATASET_ID,
                   dataset_name: str = RELEASED_DATASET_NAME) -> Path:
    """Export a trained (or partly trained) model folder as the shippable nnU-Net zip.

    A staging copy of ``model_folder`` gets ``checkpoint`` as its ``checkpoint_final.pth``; nnU-Net's own
    validation (``nnUNetv2_train ... --val``) writes ``fold_0/validation/summary.json`` there; the checkpoint is then
    stripped to :data:`INFERENCE_KEYS` and ``nnUNetv2_export_model_to_zip`` writes the zip, to which the training
    logs are added. ``nnUNet_preprocessed`` must hold the dataset (the validation reads it; its plans and
    ``dataset.json`` stand in for the model folder's when a restored checkpoint has not trained there).

    Args:
        model_folder: ``.../Dataset510_.../M2InceptionTrainer_pretrained__nnUNetFixed128Plans__3d_fullres``.
        out_zip: the zip to write (replaced atomically).
        checkpoint: which checkpoint of ``fold_0`` to ship.
        validate: run nnU-Net's validation (needed for the ``summary.json`` that the export requires; without it a
            placeholder summary is written).
        trainer: the trainer class of the model (tests export short-schedule variants).
        dataset_id, dataset_name: the model's nnU-Net dataset (model v1: :data:`DATASET_ID`).

    Example:
        >>> export_release("$nnUNet_results/Dataset510_SynthCerebellumBrainstem/"  # doctest: +SKIP
        ...                "M2InceptionTrainer_pretrained__nnUNetFixed128Plans__3d_fullres", "model.zip")
    """
    model_folder, out_zip = Path(model_folder), Path(out_zip)
    fold_dir = model_folder / f"fold_{FOLD}"
    if not (fold_dir / checkpoint).is_file():
        raise InputError(f"{fold_dir / checkpoint}: no such checkpoint to export")
    with tempfile.TemporaryDirectory(prefix="nnunet_ataxia_export_") as tmp:
        staging = Path(tmp) / "results"
        target = staging / dataset_name / model_dir_name(trainer)
        (target / f"fold_{FOLD}").mkdir(parents=True)
        for name, planned in (("plans.json", f"{PLANS}.json"), ("dataset.json", "dataset.json"),
                              ("dataset_fingerprint.json", "dataset_fingerprint.json")):
            # nnUNetv2_train copies them in when it starts; a checkpoint restored from a saved state has not trained
            source = model_folder / name
            if not source.is_file():
                source = Path(os.environ.get("nnUNet_preprocessed", "")) / dataset_name / planned
                if not source.is_file():
                    raise InputError(f"{model_folder / name}: missing, and no {planned} in "
                                     f"$nnUNet_preprocessed/{dataset_name} to take it from")
            shutil.copy2(source, target / name)
        logs = sorted(fold_dir.glob("training_log_*.txt"))
        for path in [fold_dir / "progress.png", fold_dir / "debug.json", *logs]:
            if path.is_file():
                shutil.copy2(path, target / f"fold_{FOLD}" / path.name)
        final = target / f"fold_{FOLD}" / "checkpoint_final.pth"
        shutil.copy2(fold_dir / checkpoint, final)
        if validate:
            _nnunet(["nnUNetv2_train", str(dataset_id), CONFIGURATION, str(FOLD), "-tr", trainer, "-p", PLANS,
                     "--val", "-device", "cuda" if torch.cuda.is_available() else "cpu"], staging)
        else:
            summary = target / f"fold_{FOLD}" / "validation" / "summary.json"
            summary.parent.mkdir(parents=True, exist_ok=True)
            summary.write_text('{"note": "exported without validation"}\n')
        strip_checkpoint(final, final)
        partial = Path(tmp) / ZIP_NAME
        _nnunet(["nnUNetv2_export_model_to_zip", "-d", str(dataset_id), "-o", str(partial), "-c", CONFIGURATION,
                 "-tr", trainer, "-p", PLANS, "-f", str(FOLD)], staging)
        with zipfile.ZipFile(partial, "a", zipfile.ZIP_DEFLATED) as zf:
            for log in logs:
                zf.write(log, f"{dataset_name}/{model_dir_name(trainer)}/fold_{FOLD}/{log.name}")
        out_zip.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(partial), str(out_zip.with_suffix(".zip.tmp")))
        os.replace(out_zip.with_suffix(".zip.tmp"), out_zip)
    return out_zip


def changed_installed_files(results: str | os.PathLike, zip_file: str | os.PathLike) -> list[Path]:
    """Files under ``results`` that unpacking ``zip_file`` there would replace with other content.

    Compares each member's size and CRC-32 (stored in the zip) with the installed file.

    Example:
        >>> changed_installed_files("/data/nnUNet_results", pretrained_zip_path())  # doctest: +SKIP
        [PosixPath('/data/nnUNet_results/Dataset511_.../fold_0/checkpoint_final.pth')]
    """
    changed = []
    with zipfile.ZipFile(zip_file) as zf:
        for member in zf.infolist():
            target = Path(results) / member.filename
            if member.is_dir() or not target.is_file():
                continue
            if target.stat().st_size != member.file_size or _crc32(target) != member.CRC:
                changed.append(target)
    return changed


def _crc32(path: Path) -> int:
    crc = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            crc = zlib.crc32(block, crc)
    return crc


def install_pretrained(results: str | os.PathLike | None = None, zip_file: str | os.PathLike | None = None,
                       overwrite: bool = False) -> Path:
    """Install the shipped model into ``nnUNet_results`` with nnU-Net's ``nnUNetv2_install_pretrained_model_from_zip``.

    Re-running is safe: nnU-Net unpacks the same files over the same folder. An installed file that differs from
    the zip's (a fine-tuned checkpoint, edited plans) is not replaced unless ``overwrite``.

    Args:
        results: the ``nnUNet_results`` folder (default: the environment variable).
        zip_file: another exported zip (default: the one shipped in the package).
        overwrite: replace installed files that differ from the zip's.

    Returns:
        The installed model folder (give it to ``nnUNetPredictor`` or use ``nnUNetv2_predict -d 511 -tr ... -p ...``).

    Example:
        >>> install_pretrained("/data/nnUNet_results")  # doctest: +SKIP
        PosixPath('/data/nnUNet_results/Dataset511_LabelMapCerebellumBrainstem/...__nnUNetFixed128Plans__3d_fullres')
    """
    results = installed_model_folder(results).parent.parent
    zip_file = Path(zip_file) if zip_file is not None else pretrained_zip_path()
    if not zip_file.exists():
        raise InputError(f"{zip_file}: no such file")
    if not zip_file.is_file() or not zipfile.is_zipfile(zip_file):
        raise InputError(f"{zip_file}: not a zip file")
    marker = f"/fold_{FOLD}/checkpoint_final.pth"
    models = sorted({n[: -len(marker)] for n in zipfile.ZipFile(zip_file).namelist() if n.endswith(marker)})
    if len(models) != 1:
        raise InputError(f"{zip_file}: expected one nnU-Net model with fold_{FOLD}/checkpoint_final.pth, "
                         f"found {len(models)}")
    folder = results / models[0]
    training = training_run_in(folder)
    if training is not None:
        raise InputError(f"{folder}: holds a training run of this model ({training}); installing the shipped model "
                         "would overwrite it. Install into another nnUNet_results folder (--results), or give "
                         "segment the model folder (-m)")
    changed = [] if overwrite else changed_installed_files(results, zip_file)
    if changed:
        more = f" and {len(changed) - 1} more file(s)" if len(changed) > 1 else ""
        raise InputError(f"{changed[0]}{more}: differ(s) from the model in {zip_file.name} (modified, or another "
                         f"model); installing would replace it: to replace it run 'nnunet-ataxia install-pretrained "
                         f"--overwrite', or install into another nnUNet_results folder")
    results.mkdir(parents=True, exist_ok=True)
    _nnunet(["nnUNetv2_install_pretrained_model_from_zip", str(zip_file)], results)
    if not (folder / f"fold_{FOLD}" / "checkpoint_final.pth").is_file():
        raise InputError(f"{zip_file}: installed, but {folder}/fold_{FOLD}/checkpoint_final.pth is missing")
    return folder
