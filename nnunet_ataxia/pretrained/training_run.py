"""The one run that reproduces the released model: generate the data, plan, train (its stages, in resumable
chunks), export.

Every step skips what is already done, so the same command continues an interrupted run (on a CPU the training spans
many sessions: ``--hours`` ends a chunk cleanly at an epoch boundary, the next call resumes with nnU-Net's ``--c``).
The nnU-Net folders live in one work folder: ``<work>/nnUNet_raw``, ``<work>/nnUNet_preprocessed``,
``<work>/nnUNet_results``.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from nnunet_ataxia.errors import InputError
from nnunet_ataxia.io.nnunet_env import ext_trainer_path
from nnunet_ataxia.io.output_folders import check_output_folder, read_marker, write_marker
from nnunet_ataxia.io.step_records import StepRecords
from nnunet_ataxia.pretrained import release

COMMAND = "train-pretrained"
STATE_COMMAND = "train-pretrained --save-state"

#: files of a training run that carry it from one machine (or session) to the next
STATE_FILES = ("checkpoint_latest.pth", "progress.png", "debug.json")


@dataclass
class TrainingRunPaths:
    """The nnU-Net folders of a work folder and the model folder inside them."""
    work: Path
    trainer: str = release.TRAINER
    dataset_name: str = release.DATASET_NAME

    @property
    def raw(self) -> Path:
        return self.work / "nnUNet_raw"

    @property
    def preprocessed(self) -> Path:
        return self.work / "nnUNet_preprocessed"

    @property
    def results(self) -> Path:
        return self.work / "nnUNet_results"

    @property
    def model(self) -> Path:
        return self.results / self.dataset_name / release.model_dir_name(self.trainer)

    @property
    def fold(self) -> Path:
        return self.model / f"fold_{release.FOLD}"

    def environment(self, device: str) -> dict:
        env = dict(os.environ, nnUNet_raw=str(self.raw), nnUNet_preprocessed=str(self.preprocessed),
                   nnUNet_results=str(self.results), nnUNet_extTrainer=ext_trainer_path())
        if device == "cpu":
            env.setdefault("nnUNet_n_proc_DA", "0")
            env.setdefault("nnUNet_def_n_proc", str(max(1, os.cpu_count() or 1)))
        return env


def _run(cmd: list[str], env: dict) -> int:
    print("$ " + " ".join(cmd), flush=True)
    return subprocess.run(cmd, env=env).returncode


def _stage_files(fold: Path, with_checkpoints: bool = True) -> list[Path]:
    """A stage's files worth saving: logs, progress.png, debug.json and (``with_checkpoints``) its checkpoints."""
    names = [n for n in STATE_FILES + ("checkpoint_final.pth",) if with_checkpoints or not n.startswith("checkpoint_")]
    return sorted(f for f in fold.iterdir()
                  if f.is_file() and (f.name in names or f.name.startswith("training_log_")))


def restore_state(state_dir: Path, work: Path, stages: Sequence[str],
                  dataset_name: str = release.DATASET_NAME) -> list[str]:
    """Copy a saved training state (one subfolder per stage) into the stages' fold folders that have no checkpoint.

    Returns:
        The stages restored.
    """
    saved = {t: state_dir / t for t in stages if (state_dir / t).is_dir()}
    if not saved and (state_dir / "checkpoint_latest.pth").is_file():
        saved = {stages[0]: state_dir}   # saved by a version with one stage: the files directly in the folder
    if not any((d / name).is_file() for d in saved.values() for name in ("checkpoint_latest.pth",
                                                                         "checkpoint_final.pth")):
        done = (read_marker(state_dir) or {}).get("epochs_done")
        if done:   # a finished run keeps only its logs and progress.png: its model is the exported zip
            if isinstance(done, dict):
                done = ", ".join(f"{trainer} {n}" for trainer, n in done.items())
            raise InputError(f"{state_dir}: no checkpoint to resume from: the saved run ended (epochs: {done}; a "
                             f"finished run keeps only its logs; its model is the exported zip); leave out "
                             f"--resume-state to train again from scratch")
        raise InputError(f"{state_dir}: no checkpoint to resume from (expected one subfolder per training stage: "
                         f"{', '.join(stages)})")
    restored = []
    for trainer, folder in saved.items():
        fold = TrainingRunPaths(work, trainer, dataset_name).fold
        if any((fold / name).is_file() for name in ("checkpoint_latest.pth", "checkpoint_final.pth")):
            continue
        fold.mkdir(parents=True, exist_ok=True)
        for f in _stage_files(folder):
            shutil.copy2(f, fold / f.name)
        restored.append(trainer)
    return restored


def save_state(work: Path, stages: Sequence[str], state_dir: Path, overwrite: bool = False,
               dataset_name: str = release.DATASET_NAME, stage_work: Mapping[str, Path] | None = None) -> None:
    """Copy the resumable state of every stage (checkpoint, logs, progress.png) to ``state_dir/<trainer>/``.

    When the last stage has finished, only the logs and ``progress.png`` are kept (the model is the exported zip).
    ``state_dir`` is replaced only when it is new, empty or an earlier saved state (its marker), or with ``overwrite``.
    ``stage_work`` names the work folder of a stage trained elsewhere than ``work`` (a recipe of several runs).
    """
    check_output_folder(state_dir, STATE_COMMAND, inputs=[work], overwrite=overwrite,
                        recognize=("checkpoint_latest.pth",))

    def fold_of(trainer: str) -> Path:
        return TrainingRunPaths((stage_work or {}).get(trainer, work), trainer, dataset_name).fold

    finished = (fold_of(stages[-1]) / "checkpoint_final.pth").is_file()
    tmp = state_dir.with_name(state_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    done = {}
    for trainer in stages:
        fold = fold_of(trainer)
        if not fold.is_dir():
            continue
        (tmp / trainer).mkdir()
        for f in _stage_files(fold, with_checkpoints=not finished):
            shutil.copy2(f, tmp / trainer / f.name)
        done[trainer] = epochs_done(fold)
    write_marker(tmp, STATE_COMMAND, {"epochs_done": done, "finished": finished})
    if state_dir.exists():
        shutil.rmtree(state_dir)
    os.replace(tmp, state_dir)


def train_pretrained(work: str | os.PathLike, *, n_train: int = 160, n_val: int = 12, n_contrast: int = 0,
                     hours: float | None = None, device: str = "cpu", num_processes: int = 2,
                     resume_state: str | os.PathLike | None = None, save_state_to: str | os.PathLike | None = None,
                     export_to: str | os.PathLike | None = None, export_checkpoint: str | None = None,
                     stages: Sequence[str] | None = None, overwrite: bool = False,
                     label_maps: str | os.PathLike | None = None,
                     initial_weights: str | os.PathLike | None = None, cortex_rim: bool = False,
                     cortex_folia: bool = False, from_scratch: bool = False, no_dropout: bool = False) -> dict:
    """Reproduce a released model: data -> plan -> train (stages, in chunks) -> export. Each step skips finished work.

    The stages are stock ``nnUNetv2_train`` runs on the same dataset, one after the other (model v1:
    :data:`~nnunet_ataxia.pretrained.release.TRAINING_STAGES`, with ``--contrast-finetune`` the contrast stages;
    model v2, ``label_maps``: :data:`~nnunet_ataxia.pretrained.release.LABEL_MAP_STAGES` on
    ``Dataset511_LabelMapCerebellumBrainstem``, starting from ``initial_weights``); the last stage's model is exported.
    Every argument is checked before any work starts.

    Args:
        work: work folder (holds the three nnU-Net folders).
        n_train: generated training subjects (seeds 0 .. n_train-1).
        n_val: generated validation subjects (fold 0's validation split).
        n_contrast: generated random-contrast subjects for the fine-tuning stage (v1 only; in no split).
        hours: stop training at the first epoch end after this many hours (resume later with the same command); a
            stage that finishes after that time does not start the next one.
        device: ``cpu`` or ``cuda``.
        num_processes: processes for data generation and nnU-Net preprocessing.
        resume_state: a folder written by ``save_state_to`` in an earlier session (copied in where the work folder
            has no checkpoint yet).
        save_state_to: after training, copy the resumable state (checkpoints, logs, progress.png) here.
        export_to: write the nnU-Net zip of the last stage's model here.
        export_checkpoint: checkpoint to export (default: ``checkpoint_final.pth`` when training finished, else
            ``checkpoint_latest.pth``).
        stages: the trainer classes, in order (default: the model's; tests use short-schedule variants).
        overwrite: allow a non-empty work / state folder that is not an earlier output of this run.
        label_maps: folder of real whole-head label maps (SynthSeg's ``data/training_label_maps``): train model v2.
        initial_weights: v2 only: the nnU-Net zip or checkpoint the fine-tuning starts from (default: the shipped
            model v1).
        cortex_rim: v2 only: render the training subjects with the outer cortex layers blended towards CSF
            (:func:`~nnunet_ataxia.dataset_conversion.Dataset511_LabelMapCerebellumBrainstem.build_label_map_dataset`);
            the default stages are then :data:`~nnunet_ataxia.pretrained.release.LABEL_MAP_RIM_STAGES`.
        cortex_folia: v2 only: render thin sulci in the cerebellar cortex (drawn at 0.5 mm, averaged back); the
            default stages are then :data:`~nnunet_ataxia.pretrained.release.LABEL_MAP_FOLIA_STAGES`.
        from_scratch: v2 only: train from randomly initialized weights with the first stage of model v1
            (:data:`~nnunet_ataxia.pretrained.release.TRAINING_STAGES`: 120 epochs at 1e-3) instead of fine-tuning.
        no_dropout: v2 only: fine-tune without dropout
            (:data:`~nnunet_ataxia.pretrained.release.LABEL_MAP_NO_DROPOUT_STAGES`; meant to start from a model v2).

    Returns:
        ``{"finished": bool, "epochs_done": {trainer: int}, "exported": path or None}``.

    Example:
        >>> train_pretrained("/scratch/m2_v2", label_maps="SynthSeg/data/training_label_maps",  # doctest: +SKIP
        ...                  n_train=180, n_val=15, hours=2.5)
    """
    v2 = label_maps is not None
    dataset_id = release.LABEL_MAP_DATASET_ID if v2 else release.DATASET_ID
    dataset_name = release.LABEL_MAP_DATASET_NAME if v2 else release.DATASET_NAME
    stages = tuple(stages or default_stages(v2, cortex_rim=cortex_rim, cortex_folia=cortex_folia,
                                           from_scratch=from_scratch, no_dropout=no_dropout))
    work = Path(work).resolve()
    check_arguments(work, n_train=n_train, n_val=n_val, n_contrast=n_contrast, hours=hours,
                     num_processes=num_processes, save_state_to=save_state_to, export_to=export_to,
                     overwrite=overwrite, label_maps=label_maps, resume_state=resume_state, cortex_rim=cortex_rim,
                     cortex_folia=cortex_folia, from_scratch=from_scratch, initial_weights=initial_weights,
                     no_dropout=no_dropout)
    fine_tuning = v2 and not from_scratch
    with release.start_checkpoint(initial_weights) if fine_tuning else contextlib.nullcontext() as start_weights:
        check_output_folder(work, COMMAND, overwrite=overwrite, recognize=("nnUNet_raw", "nnUNet_preprocessed"))
        work.mkdir(parents=True, exist_ok=True)
        write_marker(work, COMMAND)
        first = TrainingRunPaths(work, stages[0], dataset_name)
        env = first.environment(device)
        os.environ.update({k: env[k] for k in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")})
        records = StepRecords(work, _run_identity(v2, n_train, n_val, n_contrast, label_maps, start_weights,
                                                   cortex_rim, cortex_folia))
        for trainer, before in zip(stages, _stage_before(stages), strict=True):
            # a fold trained with other settings is neither continued nor thrown away: one line, now
            records.check(f"train {trainer}", [TrainingRunPaths(work, trainer, dataset_name).fold], after=before,
                          refuse=True, quiet=True)
        if start_weights is not None:  # copied again when --initial-weights names other content
            target = first.results / dataset_name / release.INITIAL_WEIGHTS_FOLDER / "checkpoint_final.pth"
            if not records.check("initial weights", [target], adopt=True, quiet=True):
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(start_weights, target.with_suffix(".tmp"))
                os.replace(target.with_suffix(".tmp"), target)
                records.done("initial weights")
    raw_dataset = first.raw / dataset_name
    n_cases = len(list((raw_dataset / "labelsTr").glob("*.nii.gz"))) if raw_dataset.is_dir() else 0
    n_wanted = n_train + n_val + n_contrast
    # the generators re-use every case whose fingerprint (seed, generator, map file) is unchanged: nothing to clear
    generated = not records.check("data", [raw_dataset / "dataset.json"], clear=[], adopt=n_cases == n_wanted)
    if generated:
        t0 = time.time()
        if v2:
            from nnunet_ataxia.dataset_conversion.Dataset511_LabelMapCerebellumBrainstem import build_label_map_dataset
            build_label_map_dataset(label_maps, n_train, n_val, output=raw_dataset, num_processes=num_processes,
                                    cortex_rim=cortex_rim, cortex_folia=cortex_folia)
        else:
            from nnunet_ataxia.dataset_conversion.Dataset510_SynthCerebellumBrainstem import build_synthetic_dataset
            build_synthetic_dataset(n_train, n_val, n_contrast, output=raw_dataset, num_processes=num_processes)
        print(f"data: {n_wanted} subjects in {raw_dataset} ({time.time() - t0:.0f} s)", flush=True)
        records.done("data")
    plans = first.preprocessed / dataset_name / f"{release.PLANS}.json"
    if not records.check("plan", [plans], after=["data"], clear=[], adopt=not generated):
        exe = [sys.executable, "-m", "nnunet_ataxia.cli"]
        if _run(exe + ["plan", "-d", str(dataset_id), "-np", str(num_processes)], env) != 0:
            raise InputError(f"{raw_dataset}: planning failed (see nnU-Net's output above)")
        records.done("plan", after=["data"])
    if resume_state is not None:
        for trainer in restore_state(Path(resume_state), work, stages, dataset_name):
            print(f"resumed the training state of {trainer} from {resume_state}", flush=True)
    deadline = None if hours is None else time.time() + hours * 3600.0
    trained = False
    for trainer, before in zip(stages, _stage_before(stages), strict=True):
        paths = TrainingRunPaths(work, trainer, dataset_name)
        if not (paths.fold / "checkpoint_final.pth").is_file():
            if trained and deadline is not None and time.time() >= deadline:
                break   # the chunk's time is up: the next call starts this stage
            cmd = ["nnUNetv2_train", str(dataset_id), release.CONFIGURATION, str(release.FOLD),
                   "-tr", trainer, "-p", release.PLANS, "-device", device]
            if (paths.fold / "checkpoint_latest.pth").is_file():
                cmd.append("--c")
            if deadline is not None:
                env["NNUNET_ATAXIA_STOP_AT"] = str(deadline)  # read by the trainers (pretrained_trainers)
            records.done(f"train {trainer}", after=before)   # the settings this fold is trained with, before it starts
            if _run(cmd, env) != 0:
                raise InputError(f"{paths.fold}: nnUNetv2_train failed (see its output above)")
            trained = True
            if not (paths.fold / "checkpoint_final.pth").is_file():
                break   # stopped at the deadline: resumable with the same command
    last = TrainingRunPaths(work, stages[-1], dataset_name)
    finished = (last.fold / "checkpoint_final.pth").is_file()
    if save_state_to is not None:
        save_state(work, stages, Path(save_state_to), overwrite=overwrite, dataset_name=dataset_name)
    exported = None
    if export_to is not None:
        chk = export_checkpoint or ("checkpoint_final.pth" if finished else "checkpoint_latest.pth")
        exported = release.export_release(last.model, export_to, checkpoint=chk, trainer=stages[-1],
                                          dataset_id=dataset_id, dataset_name=dataset_name)
    done = {t: epochs_done(TrainingRunPaths(work, t, dataset_name).fold) for t in stages}
    return {"finished": finished, "epochs_done": done, "exported": exported}


def default_stages(label_maps: bool, *, cortex_rim: bool = False, cortex_folia: bool = False,
                   from_scratch: bool = False, no_dropout: bool = False) -> tuple[str, ...]:
    """The trainer stages of a run: model v1's first stage, or with ``label_maps`` the model v2's stage (the folia
    stage with ``cortex_folia``, else the rim stage with ``cortex_rim``, the stage without dropout with
    ``no_dropout``; model v1's first stage, from random weights, with ``from_scratch``).

    Example:
        >>> default_stages(True)
        ('M2InceptionTrainer_pretrainedLabelMaps',)
    """
    if not label_maps or from_scratch:
        return release.TRAINING_STAGES
    if cortex_folia:
        return release.LABEL_MAP_FOLIA_STAGES
    if no_dropout:
        return release.LABEL_MAP_NO_DROPOUT_STAGES
    return release.LABEL_MAP_RIM_STAGES if cortex_rim else release.LABEL_MAP_STAGES


def _stage_before(stages: Sequence[str]) -> list[list[str]]:
    """For each stage, the record keys of the stage it starts from (none for the first): a stage is trained after the
    one before it, so a later stage trained from another run of an earlier one is refused, while adding a stage after
    finished ones keeps them."""
    return [[]] + [[f"train {previous}"] for previous in stages[:-1]]


def _run_identity(v2: bool, n_train: int, n_val: int, n_contrast: int, label_maps: str | os.PathLike | None,
                  start_weights: Path | None, cortex_rim: bool, cortex_folia: bool = False) -> dict:
    """What a training run's model depends on: the data options, the label maps' and initial weights' contents
    (which stages follow one another is recorded with each stage, :func:`_stage_before`)."""
    from nnunet_ataxia.dataset_conversion import Dataset510_SynthCerebellumBrainstem as v1_data
    from nnunet_ataxia.dataset_conversion import Dataset511_LabelMapCerebellumBrainstem as v2_data
    from nnunet_ataxia.io.fingerprints import file_fingerprint
    from nnunet_ataxia.io.step_records import identity_digest

    maps = None
    if label_maps is not None:
        maps = identity_digest({p.name: file_fingerprint(p)["sha256"]
                                for p in sorted(Path(label_maps).glob("*.nii*")) if p.is_file()})
    return {"model": "v2" if v2 else "v1", "generator": (v2_data if v2 else v1_data).GENERATOR_VERSION,
            "n_train": n_train, "n_val": n_val, "n_contrast": n_contrast, "label_maps": maps,
            "initial_weights": file_fingerprint(start_weights)["sha256"] if start_weights else None,
            "cortex_rim": cortex_rim, **({"cortex_folia": True} if cortex_folia else {})}


def check_arguments(work: Path, *, n_train: int, n_val: int, n_contrast: int, hours: float | None,
                     num_processes: int, save_state_to, export_to, overwrite: bool, label_maps, resume_state,
                     cortex_rim: bool, from_scratch: bool, initial_weights, cortex_folia: bool = False,
                     no_dropout: bool = False) -> None:
    """Every check that can be made before the long work (data generation, training) starts.

    Args: the options of :func:`train_pretrained` (``work`` resolved); raises :class:`InputError` naming the first
    problem.

    Example:
        >>> check_arguments(Path("w").resolve(), n_train=0, n_val=1, n_contrast=0, hours=None, num_processes=1,
        ...                 save_state_to=None, export_to=None, overwrite=False, label_maps=None, resume_state=None,
        ...                 cortex_rim=False, from_scratch=False, initial_weights=None)  # doctest: +SKIP
        InputError: --n-train 0 / --n-val 1: need at least one training and one validation subject
    """
    if n_train < 1 or n_val < 1 or n_contrast < 0:
        raise InputError(f"--n-train {n_train} / --n-val {n_val}: need at least one training and one validation "
                         f"subject")
    if hours is not None and not hours >= 0:   # 0: stop at the first epoch end (the command line asks for > 0)
        raise InputError(f"--hours {hours}: must be a positive number of hours")
    if num_processes < 1:
        raise InputError(f"-np {num_processes}: must be at least 1")
    stage_options = [o for o, on in (("--cortex-rim", cortex_rim), ("--cortex-folia", cortex_folia),
                                     ("--from-scratch", from_scratch), ("--no-dropout", no_dropout)) if on]
    if label_maps is not None:
        from nnunet_ataxia.synthesis.label_map_subjects import list_label_maps

        training_maps, _ = list_label_maps(label_maps)   # InputError naming the folder
        if n_contrast:
            raise InputError("--contrast-finetune is a stage of model v1; it cannot be combined with --label-maps")
        if from_scratch and initial_weights is not None:
            raise InputError("--from-scratch starts from random weights; it cannot be combined with --initial-weights")
        if no_dropout and (cortex_rim or cortex_folia or from_scratch):
            raise InputError("--no-dropout is a stage of its own; it cannot be combined with --cortex-rim, "
                             "--cortex-folia or --from-scratch")
        continuation = next((o for o in stage_options if o != "--from-scratch"), None)  # they continue a model v2
        if continuation and initial_weights is None:
            raise InputError(f"{continuation} continues a trained model v2: give its zip with --initial-weights "
                             f"(the --export of a 'train-pretrained --label-maps DIR' run, or "
                             f"release/model_v2_candidate.zip); without it the stage would start from model v1")
    elif stage_options:
        raise InputError(f"{stage_options[0]} is an option of model v2; it needs --label-maps")
    if resume_state is not None and not Path(resume_state).is_dir():
        raise InputError(f"{resume_state}: no such folder (--resume-state: a folder written by --save-state)")
    if save_state_to is not None:
        state = Path(save_state_to).resolve()
        if state == work or work in state.parents or state in work.parents:
            raise InputError(f"{save_state_to}: the saved state must lie outside the work folder {work}")
        check_output_folder(state, STATE_COMMAND, inputs=[work], overwrite=overwrite,
                            recognize=("checkpoint_latest.pth",))
    if export_to is not None and Path(export_to).exists() and not zipfile.is_zipfile(export_to):
        raise InputError(f"{export_to}: exists and is not a model zip; refusing to replace it")


def epochs_done(fold_dir: Path) -> int:
    """Epochs completed so far, read from the newest checkpoint (0 when none)."""
    import torch

    if not fold_dir.is_dir():
        return 0
    for name in ("checkpoint_final.pth", "checkpoint_latest.pth"):
        if (fold_dir / name).is_file():
            return int(torch.load(fold_dir / name, map_location="cpu", weights_only=False)["current_epoch"])
    return 0
