"""How long a training run is: the one thing a ``_smoke`` or ``_demo`` trainer variant changes.

Every trainer of this plugin derives from :class:`ScheduledTrainer`. Variants follow one rule, as nnU-Net's own
``variants/`` do: a variant is a subclass that sets class attributes (the network, the augmentation, the schedule), and
the recipe class it derives from reads them; no mixins. A ``schedule`` replaces the recipe's run length, batch size and
test-time mirroring; it is applied when the trainer is initialized (after every ``__init__``, so it wins over the
recipe's numbers) and logged. A short schedule may also choose ``checkpoint_best.pth`` among its last epochs by the
epoch's validation pseudo-Dice (``best_of_last_epochs``), so that a constant-rate optimizer's last steps do not decide
which network a short run delivers.

nnU-Net seeds nothing, so two runs of the same command differ. With ``NNUNET_ATAXIA_SEED=<int>`` in the environment a
trainer of this plugin seeds Python's, NumPy's and torch's generators before it builds its network: with
augmentation in the main process (``nnUNet_n_proc_DA=0``, as the demos run) the run is then repeatable on a CPU.

Example:
    >>> SMOKE.num_epochs, SMOKE.iterations_per_epoch, SMOKE.test_time_mirroring
    (1, 2, False)
"""
from __future__ import annotations

import math
import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NoReturn

import numpy as np
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_ataxia.io.nnunet_env import SEED_VARIABLE


@dataclass(frozen=True)
class TrainingSchedule:
    """A run length that replaces a recipe's.

    Args:
        num_epochs: epochs.
        iterations_per_epoch: training iterations per epoch (None: the recipe's, e.g. one pass over its data).
        val_iterations_per_epoch: validation iterations per epoch (None: the recipe's).
        batch_size: samples per iteration (None: the recipe's); ignored under DDP.
        max_lesion_samples: pixel-sampling (WMH) recipes only: cap on the lesion samples they draw (None: theirs).
        test_time_mirroring: keep the recipe's test-time mirroring (False: none, 8x cheaper CPU inference in 3D).
        best_of_last_epochs: ``checkpoint_best.pth`` is the network of the epoch with the highest validation
            pseudo-Dice (nnU-Net's per-epoch mean foreground Dice, not its moving average) among the last
            ``best_of_last_epochs`` epochs; nnU-Net's own choice (the best moving average over the whole run) is off.
            None: nnU-Net's choice. ``checkpoint_final.pth`` stays the last epoch's network either way.
    """

    num_epochs: int
    iterations_per_epoch: int | None = None
    val_iterations_per_epoch: int | None = None
    batch_size: int | None = None
    max_lesion_samples: int | None = None
    test_time_mirroring: bool = False
    best_of_last_epochs: int | None = None

    def __post_init__(self):
        for name in ("num_epochs", "iterations_per_epoch", "val_iterations_per_epoch", "batch_size",
                     "max_lesion_samples", "best_of_last_epochs"):
            value = getattr(self, name)
            if not (value is None or (isinstance(value, int) and value >= 1)):
                raise ValueError(f"TrainingSchedule.{name} must be a positive integer or None, got {value!r}")
        if self.best_of_last_epochs is not None and self.best_of_last_epochs > self.num_epochs:
            raise ValueError(f"TrainingSchedule.best_of_last_epochs ({self.best_of_last_epochs}) exceeds num_epochs "
                             f"({self.num_epochs})")


#: one epoch of two training iterations and one validation iteration, no test-time mirroring (tests)
SMOKE = TrainingSchedule(num_epochs=1, iterations_per_epoch=2, val_iterations_per_epoch=1)


def is_new_best(history: Sequence[float]) -> bool:
    """Model selection: is the last epoch's validation figure strictly above every earlier (finite) one?
    The first finite value is a new best; NaN never is.

    Example:
        >>> is_new_best([0.9, 0.95]), is_new_best([0.9, 0.95, 0.93])
        (True, False)
    """
    if not history or not np.isfinite(history[-1]):
        return False
    earlier = [v for v in history[:-1] if np.isfinite(v)]
    return not earlier or float(history[-1]) > max(earlier)


def prediction_checkpoint(trainer: type | None) -> str:
    """The checkpoint to predict with after a whole run of ``trainer``: ``checkpoint_best.pth`` when its schedule
    chooses the best of its last epochs (``best_of_last_epochs``), otherwise ``checkpoint_final.pth`` (also for None,
    a trainer from outside this plugin).

    Example:
        >>> prediction_checkpoint(None)
        'checkpoint_final.pth'
    """
    schedule = getattr(trainer, "schedule", None)
    best = isinstance(schedule, TrainingSchedule) and schedule.best_of_last_epochs
    return "checkpoint_best.pth" if best else "checkpoint_final.pth"


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (network initialization, patch sampling, augmentation).

    Example:
        >>> seed_everything(3); a = (np.random.rand(), torch.rand(1).item())
        >>> seed_everything(3); a == (np.random.rand(), torch.rand(1).item())
        True
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def refuse(message: str) -> NoReturn:
    """End an nnU-Net command with one clear message (no traceback from deep inside nnU-Net)."""
    raise SystemExit(f"nnunet-ataxia: {message}")


def seed_from_environment(environ: Mapping[str, str] = os.environ) -> int | None:
    """The seed in ``NNUNET_ATAXIA_SEED`` (None when unset or empty); anything but an integer ends the command.

    Example:
        >>> seed_from_environment({"NNUNET_ATAXIA_SEED": "7"}), seed_from_environment({})
        (7, None)
        >>> seed_from_environment({"NNUNET_ATAXIA_SEED": "0.5"})
        Traceback (most recent call last):
        SystemExit: nnunet-ataxia: NNUNET_ATAXIA_SEED='0.5': the seed must be an integer
    """
    value = environ.get(SEED_VARIABLE, "").strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        refuse(f"{SEED_VARIABLE}={value!r}: the seed must be an integer")


class ScheduledTrainer(nnUNetTrainer):
    """nnU-Net's trainer with a class attribute ``schedule`` (:class:`TrainingSchedule`; None: the recipe's own)."""

    schedule: TrainingSchedule | None = None

    def initialize(self):
        seed = seed_from_environment()
        if not self.was_initialized and seed is not None:
            seed_everything(seed)
            self.print_to_log_file(f"{SEED_VARIABLE}={seed}: random generators seeded")
        if not self.was_initialized and self.schedule is not None:
            s = self.schedule
            self.num_epochs = s.num_epochs
            if s.iterations_per_epoch is not None:
                self.num_iterations_per_epoch = s.iterations_per_epoch
            if s.val_iterations_per_epoch is not None:
                self.num_val_iterations_per_epoch = s.val_iterations_per_epoch
            self.print_to_log_file(f"schedule of {type(self).__name__}: {s}")
        super().initialize()  # sets the recipe's batch size (_set_batch_size_and_oversample)
        if self.schedule is not None and self.schedule.batch_size is not None and not self.is_ddp:
            self.batch_size = self.schedule.batch_size

    def keep_best_checkpoint(self, history: Sequence[float], what: str) -> None:
        """Model selection by a validation figure, in place of nnU-Net's: save ``checkpoint_best.pth`` when the last
        value of ``history`` is a new best (:func:`is_new_best`), and switch off nnU-Net's choice (the best moving
        average of the pseudo-Dice). Call it in ``on_epoch_end`` before nnU-Net's.

        Args:
            history: the figure per epoch so far (or of the epochs that compete).
            what: its name in the training log.
        """
        if is_new_best(history):
            self.print_to_log_file(f"new best {what} {history[-1]:.5f}: checkpoint_best.pth")
            self.save_checkpoint(os.path.join(self.output_folder, "checkpoint_best.pth"))
        self._best_ema = math.inf  # nnU-Net saves checkpoint_best.pth only above its best moving average

    def on_epoch_end(self):
        n = self.schedule.best_of_last_epochs if self.schedule is not None else None
        if n:
            first = self.num_epochs - n
            window = self.logger.get_value("mean_fg_dice", step=None)[first:] if self.current_epoch >= first else []
            self.keep_best_checkpoint(window, f"validation pseudo Dice of the last {n} epochs")
        super().on_epoch_end()

    def on_train_start(self):
        super().on_train_start()  # the recipe chooses its mirror axes while building the data loaders
        if self.schedule is not None and not self.schedule.test_time_mirroring:
            self.inference_allowed_mirroring_axes = None
