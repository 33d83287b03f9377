"""The shipped model's recipe in one resumable command: model v2 from the real label maps, then its folia
fine-tuning, the second run starting from the first run's exported model.

Both runs are ordinary :func:`~nnunet_ataxia.pretrained.training_run.train_pretrained` runs, each in its own nnU-Net
folders (they render different subjects into the same dataset name): the first in the work folder itself (the
folders of a ``--label-maps`` run of model v2 alone, which it continues), the second in ``<work>/cortex_folia``. The
first run's model is exported to ``<work>/model_v2.zip`` when it finishes: the second run's ``--initial-weights``.
"""
from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

from nnunet_ataxia.pretrained import release
from nnunet_ataxia.pretrained.training_run import (
    TrainingRunPaths,
    check_arguments,
    epochs_done,
    save_state,
    train_pretrained,
)

#: the folder of the second run (the folia fine-tuning) inside the work folder
FOLIA_RUN_FOLDER = "cortex_folia"
#: the first run's model, exported inside the work folder: the weights the second run starts from
MODEL_V2_ZIP = "model_v2.zip"
#: the stages of the two runs, in order
RECIPE_STAGES = (release.LABEL_MAP_STAGES, release.LABEL_MAP_FOLIA_STAGES)


def train_released_model(work: str | os.PathLike, label_maps: str | os.PathLike, *, n_train: int = 180,
                         n_val: int = 15, hours: float | None = None, device: str = "cpu", num_processes: int = 2,
                         initial_weights: str | os.PathLike | None = None,
                         resume_state: str | os.PathLike | None = None,
                         save_state_to: str | os.PathLike | None = None, export_to: str | os.PathLike | None = None,
                         export_checkpoint: str | None = None, overwrite: bool = False,
                         stages: Sequence[Sequence[str]] = RECIPE_STAGES) -> dict:
    """Train the shipped model from the label maps: model v2, then model v2 fine-tuned with cerebellar folia.

    Every step skips finished work, so the same call continues an interrupted recipe; ``hours`` ends the chunk at the
    first epoch end after that time (a run that finishes after it does not start the next).

    Args:
        work: the work folder (the first run's nnU-Net folders, ``cortex_folia/`` for the second, ``model_v2.zip``).
        label_maps: folder of SynthSeg's training label maps (five are held out by name).
        n_train, n_val: rendered training / validation subjects of each run.
        hours: end this chunk at the first epoch end after ``hours`` hours.
        device: ``cpu`` or ``cuda``.
        num_processes: processes for rendering and planning.
        initial_weights: the model zip or checkpoint the first run fine-tunes (default: model v1, in the package).
        resume_state: a folder written by ``save_state_to`` in an earlier session.
        save_state_to: after the chunk, copy both runs' resumable state here (``<state>/<trainer>/``).
        export_to: write the finished model's nnU-Net zip here (the second run's model).
        export_checkpoint: the second run's checkpoint to export (default: final when finished, else the latest).
        overwrite: allow a non-empty work / state folder that is not an earlier output of this command.
        stages: the trainer stages of the first and of the second run (tests use short-schedule variants).

    Returns:
        ``{"finished": bool, "epochs_done": {trainer: int} of both runs, "exported": path or None}``.

    Example:
        >>> train_released_model("/scratch/m2", "SynthSeg/data/training_label_maps", hours=2.5)  # doctest: +SKIP
    """
    work = Path(work).resolve()
    folia_work = work / FOLIA_RUN_FOLDER
    model_v2 = work / MODEL_V2_ZIP
    first, second = (tuple(s) for s in stages)
    check_arguments(work, n_train=n_train, n_val=n_val, n_contrast=0, hours=hours, num_processes=num_processes,
                    save_state_to=save_state_to, export_to=export_to, overwrite=overwrite, label_maps=label_maps,
                    resume_state=resume_state, cortex_rim=False, from_scratch=False, initial_weights=initial_weights)
    deadline = None if hours is None else time.time() + hours * 3600.0
    common = dict(label_maps=label_maps, n_train=n_train, n_val=n_val, device=device, num_processes=num_processes,
                  overwrite=overwrite)
    started = time.time()
    out = train_pretrained(work, **common, hours=hours, initial_weights=initial_weights, stages=first,
                           resume_state=resume_state)
    epochs = dict(out["epochs_done"])
    final = TrainingRunPaths(work, first[-1], release.LABEL_MAP_DATASET_NAME)
    # trained in this call: a checkpoint written now (one restored from a saved state keeps its time)
    trained_first = any(f.stat().st_mtime >= started for f in final.fold.glob("checkpoint_*.pth"))
    if out["finished"]:
        checkpoint = final.fold / "checkpoint_final.pth"
        if not model_v2.is_file() or model_v2.stat().st_mtime < checkpoint.stat().st_mtime:
            release.export_release(final.model, model_v2, checkpoint="checkpoint_final.pth", trainer=first[-1],
                                   dataset_id=release.LABEL_MAP_DATASET_ID,
                                   dataset_name=release.LABEL_MAP_DATASET_NAME)
            print(f"model v2 exported to {model_v2}: the start of the folia fine-tuning", flush=True)
    time_up = deadline is not None and time.time() >= deadline and trained_first
    second_out = None
    if out["finished"] and not time_up:
        left = None if deadline is None else max(0.0, deadline - time.time()) / 3600.0
        second_out = train_pretrained(folia_work, **common, hours=left, cortex_folia=True, initial_weights=model_v2,
                                      stages=second, resume_state=_second_run_state(resume_state, second),
                                      export_to=export_to, export_checkpoint=export_checkpoint)
        epochs.update(second_out["epochs_done"])
    else:
        epochs.update({trainer: epochs_done(TrainingRunPaths(folia_work, trainer,
                                                             release.LABEL_MAP_DATASET_NAME).fold)
                       for trainer in second})
    if save_state_to is not None:
        save_state(work, first + second, Path(save_state_to), overwrite=overwrite,
                   dataset_name=release.LABEL_MAP_DATASET_NAME, stage_work=dict.fromkeys(second, folia_work))
    return {"finished": bool(second_out and second_out["finished"]), "epochs_done": epochs,
            "exported": second_out["exported"] if second_out else None}


def _second_run_state(resume_state: str | os.PathLike | None, stages: Sequence[str]) -> str | os.PathLike | None:
    """``resume_state`` when it holds a saved stage of the second run (none until that run has started)."""
    if resume_state is None or not any((Path(resume_state) / trainer).is_dir() for trainer in stages):
        return None
    return resume_state
