"""The trainers of the pretrained M2 (cerebellum + brainstem on domain-randomized 1 mm data).

Model v1, stock ``nnUNetv2_train`` runs on ``Dataset510_SynthCerebellumBrainstem``:
:class:`M2InceptionTrainer_pretrained` from scratch (the first stage; ``nnunet-ataxia train-pretrained``), and, with
``train-pretrained --contrast-finetune``, :class:`M2InceptionTrainer_pretrainedContrastFinetune` from its final
checkpoint (a second stage with more random contrasts), and with ``--contrast-finetune 2``,
:class:`M2InceptionTrainer_pretrainedContrastFinetune2` from that one's (a third stage on twice the random contrasts).
The shipped model, on ``Dataset511_LabelMapCerebellumBrainstem``: :class:`M2InceptionTrainer_pretrainedLabelMaps`
from model v1 (model v2, ``train-pretrained --label-maps``), then :class:`M2InceptionTrainer_pretrainedLabelMapsFolia`
from model v2 (``--cortex-folia``). All stop cleanly at an epoch end when asked, so that a CPU run spans sessions in
resumable chunks.
"""
from __future__ import annotations

import os
import time

import torch
from nnunetv2.training.lr_scheduler.polylr import PolyLRScheduler

from nnunet_ataxia.architectures.common import upgrade_output_keys
from nnunet_ataxia.io.constants import CONTRAST_SEED_OFFSET
from nnunet_ataxia.trainers.cerebellum_trainers import M2InceptionTrainer
from nnunet_ataxia.trainers.schedules import SMOKE, refuse

#: environment variable: a Unix time after which a chunked training run stops at the end of its current epoch
STOP_AT_VARIABLE = "NNUNET_ATAXIA_STOP_AT"
STOP_FILE = "stop_after_epoch"


class M2InceptionTrainer_pretrained(M2InceptionTrainer):
    """The recipe of the pretrained M2's first stage (domain-randomized 1 mm data, cerebellum + brainstem).

    Changes to nnU-Net's recipe: Adam (lr 1e-3, poly decay) instead of SGD, which learns M2 much faster in short CPU
    runs (see the README); mirroring only left-right (the data are MNI-registered, so up-down and front-back flips
    are never seen at inference); 120 epochs of 50 iterations with 5 validation iterations; a checkpoint every epoch.
    nnU-Net's Dice + cross-entropy loss and its augmentation are kept.

    Chunks: when the environment variable ``NNUNET_ATAXIA_STOP_AT`` holds a Unix time that has passed at the end of
    an epoch, training stops there (exit status 0) after writing ``checkpoint_latest.pth``; ``nnUNetv2_train ... --c``
    continues it. ``nnunet-ataxia train-pretrained --hours H`` uses this to train in resumable chunks on a CPU.
    An empty file named ``stop_after_epoch`` in the fold folder does the same for a run already under way (the file is
    removed when the run stops).
    """

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.initial_lr = 1e-3
        self.weight_decay = 0.0
        self.num_epochs = 120
        self.num_iterations_per_epoch = 50
        self.num_val_iterations_per_epoch = 5
        self.save_every = 1

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(self.network.parameters(), lr=self.initial_lr, weight_decay=self.weight_decay)
        return optimizer, PolyLRScheduler(optimizer, self.initial_lr, self.num_epochs)

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        rotation, dummy_2d, initial_patch_size, _ = \
            super().configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        mirror_axes = (2,)  # array axis 2 = x = left-right on the MNI grid
        self.inference_allowed_mirroring_axes = mirror_axes
        return rotation, dummy_2d, initial_patch_size, mirror_axes

    def on_epoch_end(self):
        super().on_epoch_end()
        self._stop_if_asked()

    def _stop_if_asked(self) -> None:
        stop_at = os.environ.get(STOP_AT_VARIABLE)
        stop_file = os.path.join(self.output_folder, STOP_FILE)
        if self.current_epoch < self.num_epochs and (
                (stop_at and time.time() >= float(stop_at)) or os.path.isfile(stop_file)):
            # nnU-Net's on_epoch_end has just written checkpoint_latest.pth (save_every = 1)
            reason = STOP_FILE if os.path.isfile(stop_file) else STOP_AT_VARIABLE
            if os.path.isfile(stop_file):
                os.remove(stop_file)
            self.print_to_log_file(f"{reason} reached: stopping after epoch {self.current_epoch - 1}; "
                                   f"continue with nnUNetv2_train ... --c")
            raise SystemExit(0)


class M2InceptionTrainer_pretrainedContrastFinetune(M2InceptionTrainer_pretrained):
    """A second stage: fine-tunes :class:`M2InceptionTrainer_pretrained` with more random contrasts.

    A fresh run (epoch 0) starts from the whole network of the first stage's ``checkpoint_final.pth`` (same dataset,
    plans, configuration and fold: ``$nnUNet_results/<dataset>/M2InceptionTrainer_pretrained__<plans>__<config>/
    fold_<fold>``), output layer included: nnU-Net's ``-pretrained_weights`` would re-initialize the output layer
    (right for a new label set, not here: tried, the brainstem's pseudo-Dice fell from 0.94 to 0 for two epochs).
    ``--c`` resumes from this stage's own checkpoint as usual.

    It trains on every case of the dataset except the fold's validation cases, i.e. the first stage's training
    subjects plus the subjects drawn with SynthSeg's fully random contrast only (``Dataset510``'s ``synth_2xxxxx``
    cases, which the first stage's split leaves out), so that random contrasts, the held-out set's weak point, make
    up about half of the training data; Adam restarts at 3e-4 with poly decay to zero over 15 epochs of 50 iterations.
    """

    #: the stage whose ``checkpoint_final.pth`` a fresh run starts from
    first_stage: str = "M2InceptionTrainer_pretrained"
    #: random-contrast cases trained on (the first ones; a dataset made for a later stage has more)
    contrast_subjects: int = 80
    #: Adam's restarted learning rate (poly decay to zero) and the stage's epochs
    finetune_lr: float = 3e-4
    finetune_epochs: int = 15

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.initial_lr = self.finetune_lr
        self.num_epochs = self.finetune_epochs

    def first_stage_checkpoint(self) -> str:
        """The first stage's ``checkpoint_final.pth`` (a sibling model folder in ``nnUNet_results``)."""
        name = f"{self.first_stage}__{self.plans_manager.plans_name}__{self.configuration_name}"
        return os.path.join(os.path.dirname(self.output_folder_base), name, f"fold_{self.fold}",
                            "checkpoint_final.pth")

    def on_train_start(self):
        if not self.was_initialized:
            self.initialize()
        if self.current_epoch == 0:   # a fresh run; --c has loaded this stage's own checkpoint instead
            path = self.first_stage_checkpoint()
            if not os.path.isfile(path):
                refuse(f"{path}: no such file: {type(self).__name__} fine-tunes the finished stage before it; "
                       f"train {self.first_stage} first (nnunet-ataxia train-pretrained --contrast-finetune [2] "
                       f"runs the stages in order)")
            weights = upgrade_output_keys(torch.load(path, map_location="cpu", weights_only=False)["network_weights"])
            network = self.network.module if self.is_ddp else self.network
            network = getattr(network, "_orig_mod", network)   # torch.compile's wrapper
            network.load_state_dict(weights)
            self.print_to_log_file(f"started from the whole network of {path}")
        super().on_train_start()

    def do_split(self):
        _, val_keys = super().do_split()   # also sets self.dataset_class
        cases = set(self.dataset_class.get_identifiers(self.preprocessed_dataset_folder)) - set(val_keys)
        tr_keys = sorted(c for c in cases if not _is_contrast_case(c, beyond=self.contrast_subjects))
        self.print_to_log_file(f"fine-tuning on every case except the {len(val_keys)} validation cases"
                               f"{'' if len(tr_keys) == len(cases) else ' and the extra random-contrast ones'}"
                               f": {len(tr_keys)} training cases")
        return tr_keys, val_keys




def _is_contrast_case(case: str, beyond: int = 0) -> bool:
    """Whether ``case`` is a random-contrast case of Dataset510 numbered ``beyond`` or higher (``synth_2xxxxx``)."""
    seed = case.rsplit("_", 1)[-1]
    return seed.isdigit() and int(seed) >= CONTRAST_SEED_OFFSET + beyond


class M2InceptionTrainer_pretrainedContrastFinetune2(M2InceptionTrainer_pretrainedContrastFinetune):
    """A third stage: :class:`M2InceptionTrainer_pretrainedContrastFinetune` continued on twice the random contrasts.

    Starts from the whole network of the second stage's ``checkpoint_final.pth`` and trains on the first stage's
    training subjects plus 160 random-contrast subjects (the second stage's 80 and 80 new draws, so that the network
    sees more distinct contrasts, not the same ones longer); Adam restarts at 2e-4 with poly decay over 20 epochs.
    """

    first_stage: str = "M2InceptionTrainer_pretrainedContrastFinetune"
    contrast_subjects: int = 160
    finetune_lr: float = 2e-4
    finetune_epochs: int = 20


class M2InceptionTrainer_pretrainedLabelMaps(M2InceptionTrainer_pretrainedContrastFinetune):
    """The pretrained model v2: fine-tunes a whole trained M2 on pseudo-subjects rendered from real label maps.

    Trains on ``Dataset511_LabelMapCerebellumBrainstem`` (every case except fold 0's validation cases). A fresh run
    (epoch 0) starts from the whole network in ``<nnUNet_results>/<dataset>/initial_weights/checkpoint_final.pth``
    (``train-pretrained --label-maps`` puts the shipped model v1 there); ``--c`` resumes from this stage's own
    checkpoint. Adam restarts at 3e-4 with poly decay to zero over 40 epochs of 50 iterations.
    """

    #: the folder (beside the model folders of the dataset) that holds the starting network
    initial_weights_folder: str = "initial_weights"
    finetune_lr: float = 3e-4
    finetune_epochs: int = 40

    def first_stage_checkpoint(self) -> str:
        """``<nnUNet_results>/<dataset>/initial_weights/checkpoint_final.pth``: the network a fresh run starts from."""
        return os.path.join(os.path.dirname(self.output_folder_base), self.initial_weights_folder,
                            "checkpoint_final.pth")


class M2InceptionTrainer_pretrainedLabelMapsRim(M2InceptionTrainer_pretrainedLabelMaps):
    """:class:`M2InceptionTrainer_pretrainedLabelMaps` for a shorter fine-tuning of an already trained model v2.

    Meant for data rendered with the cortex rim (the outer voxel layers of the cortex blended towards CSF, labels
    unchanged) and a start from a trained model v2 (``train-pretrained --label-maps DIR --cortex-rim
    --initial-weights <v2 zip>``); Adam restarts at 2e-4 with poly decay to zero over 24 epochs of 50 iterations.
    """

    finetune_lr: float = 2e-4
    finetune_epochs: int = 24


class M2InceptionTrainer_pretrainedLabelMapsFolia(M2InceptionTrainer_pretrainedLabelMapsRim):
    """:class:`M2InceptionTrainer_pretrainedLabelMapsRim` over 16 epochs instead of 24: the shipped model's last stage.

    Meant for data rendered with cerebellar folia (thin sulci drawn at 0.5 mm and averaged back, labels unchanged;
    ``train-pretrained --label-maps DIR --cortex-folia --initial-weights <v2 zip>``).
    """

    finetune_epochs: int = 16


class M2InceptionTrainer_pretrainedLabelMapsNoDropout(M2InceptionTrainer_pretrainedLabelMaps):
    """:class:`M2InceptionTrainer_pretrainedLabelMaps` without dropout, meant to continue a trained model v2.

    The same data and loss; the channel-wise dropout (0.2) before the output convolution is off, so that the network
    can use all its 16 output feature maps at once; Adam restarts at 2e-4 with poly decay to zero over 16 epochs of 50
    iterations (``train-pretrained --label-maps DIR --no-dropout --initial-weights <v2 zip>``). Dropout has no
    weights: the checkpoint and inference are those of M2.
    """

    dropout: float = 0.0
    finetune_lr: float = 2e-4
    finetune_epochs: int = 16


class M2InceptionTrainer_pretrainedLabelMaps_smoke(M2InceptionTrainer_pretrainedLabelMaps):
    """M2InceptionTrainer_pretrainedLabelMaps, one short epoch (:data:`SMOKE`; tests)."""

    schedule = SMOKE


class M2InceptionTrainer_pretrained_smoke(M2InceptionTrainer_pretrained):
    """M2InceptionTrainer_pretrained, one short epoch (:data:`SMOKE`; tests, fine-tuning smoke runs)."""

    schedule = SMOKE
