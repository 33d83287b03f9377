"""nnU-Net trainers for M1 and M2 (Cabeza-Ruiz et al.).

``M1Trainer`` / ``M2InceptionTrainer`` keep nnU-Net's whole training recipe and change only the network. The
``_paperWDA`` / ``_paperNDA`` variants derive from :class:`CerebellumPaperRecipeTrainer`, the paper's recipe (Adam with
default settings, the soft-Dice loss of eq. 1, batch size 1, 200 epochs of one pass over the training images,
element-wise dropout after the output layer, and either the paper's rotation+shift augmentation or none, no
mirroring); ``_smoke`` / ``_demo`` variants set a shorter ``schedule`` (``trainers.schedules``). Each variant is a tiny
subclass that sets one class attribute. On CPUs with native bf16 all of them run the forward pass under bf16 autocast
(``cpu_speed``; ``NNUNET_ATAXIA_CPU_BF16=0`` turns it off).
"""
from __future__ import annotations

import math

import torch
from batchgeneratorsv2.helpers.scalar_type import RandomScalar
from batchgeneratorsv2.transforms.base.basic_transform import BasicTransform
from batchgeneratorsv2.transforms.utils.compose import ComposeTransforms
from batchgeneratorsv2.transforms.utils.random import RandomTransform
from nnunetv2.training.lr_scheduler.polylr import PolyLRScheduler
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager
from torch import nn

from nnunet_ataxia.architectures import M1UNet, M2InceptionUNet
from nnunet_ataxia.architectures.common import (
    PatchSizeError,
    check_spatial_divisibility,
    init_weights_,
    round_up_to_multiple,
)
from nnunet_ataxia.trainers.cpu_speed import autocast_forward_bf16, decide_cpu_bf16
from nnunet_ataxia.trainers.losses import PaperSoftDiceLoss
from nnunet_ataxia.trainers.paper_augmentation import RandomAxisRotationShiftTransform
from nnunet_ataxia.trainers.schedules import SMOKE, ScheduledTrainer, TrainingSchedule, refuse


def build_fixed_network(network_class: type[nn.Module], configuration_manager: ConfigurationManager,
                        num_input_channels: int, num_output_channels: int,
                        dropout_placement: str = "features", weight_init: str = "pytorch",
                        dropout: float = 0.2) -> nn.Module:
    """Build ``network_class`` after checking that it can process the configuration's patch size.

    Args:
        network_class: ``M1UNet`` or ``M2InceptionUNet``.
        configuration_manager: nnU-Net's configuration (its ``patch_size`` is checked).
        num_input_channels: image channels.
        num_output_channels: nnU-Net's number of segmentation heads.
        dropout_placement: ``"features"`` or ``"output"`` (see ``architectures.common.make_dropout``).
        weight_init: ``"pytorch"`` or ``"keras"`` (see ``architectures.common.init_weights_``).
        dropout: the dropout probability (0 turns dropout off; it has no parameters, so checkpoints are the same).
    """
    try:
        check_spatial_divisibility(configuration_manager.patch_size, network_class.divisor, network_class.__name__)
    except PatchSizeError as e:
        refuse(str(e))
    network = network_class(input_channels=num_input_channels, num_classes=num_output_channels,
                            deep_supervision=False, dropout=dropout, dropout_placement=dropout_placement)
    return init_weights_(network, weight_init)


def paper_epoch_iterations(num_cases: int, copies_per_case: int, samples_per_iteration: int) -> int:
    """Iterations of one paper epoch: one pass over ``num_cases`` images, each seen ``copies_per_case`` times.

    The paper's WDA epoch is every training image and its 10 augmented copies (11 samples per image), NDA's is every
    image once; with batch size 1 that is ``11 n`` or ``n`` iterations.

    Example:
        >>> paper_epoch_iterations(18, 11, 1), paper_epoch_iterations(18, 1, 2)
        (198, 9)
    """
    if not (num_cases >= 1 and copies_per_case >= 1 and samples_per_iteration >= 1):
        raise ValueError(f"need at least one case, copy and sample per iteration, got {num_cases}, {copies_per_case}, "
                         f"{samples_per_iteration}")
    return math.ceil(num_cases * copies_per_case / samples_per_iteration)


class CerebellumNetworkTrainer(ScheduledTrainer):
    """Shared base: a fixed network instead of nnU-Net's planned U-Net, deep supervision off.

    A 3D patch that the network cannot process (not divisible by its down-sampling factor, e.g. nnU-Net's default
    plans) is rounded up to the next valid size; the adapted patch is written into the ``plans.json`` of the results
    folder, so ``nnUNetv2_predict`` uses it too. A 2D configuration is refused with a clear message.

    On a CPU with native bf16 the network's forward pass (training, validation) runs under bf16 autocast with float32
    outputs (``cpu_speed``); ``NNUNET_ATAXIA_CPU_BF16=0`` turns it off, ``=1`` forces it. The choice is logged.
    """

    network_class: type[nn.Module] = M2InceptionUNet
    #: where the network applies its dropout (``architectures.common.make_dropout``)
    dropout_placement: str = "features"
    #: the network's dropout probability during training (0: none; inference never drops)
    dropout: float = 0.2
    #: how the network's weights start (``architectures.common.init_weights_``)
    weight_init: str = "pytorch"

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.enable_deep_supervision = False
        self._adapt_patch_size()
        try:
            self.cpu_bf16, reason = decide_cpu_bf16(self.device)
        except ValueError as e:
            refuse(str(e))
        self.print_to_log_file(reason)

    @classmethod
    def build_network_architecture(cls, plans_manager: PlansManager, configuration_manager: ConfigurationManager,
                                   num_input_channels: int, num_output_channels: int,
                                   enable_deep_supervision: bool = True) -> nn.Module:
        # a classmethod (nnU-Net declares a staticmethod): nnU-Net calls it on the class or an instance alike
        return build_fixed_network(cls.network_class, configuration_manager, num_input_channels, num_output_channels,
                                   cls.dropout_placement, cls.weight_init, cls.dropout)

    def initialize(self):
        super().initialize()
        if self.cpu_bf16:
            autocast_forward_bf16(self.network.module if self.is_ddp else self.network)

    def _adapt_patch_size(self) -> None:
        patch_size = list(self.configuration_manager.patch_size)
        name = self.network_class.__name__
        if len(patch_size) != 3:
            refuse(f"{type(self).__name__} trains the 3D network {name}, but configuration "
                   f"'{self.configuration_name}' has the {len(patch_size)}D patch size {patch_size}; "
                   f"use a 3D configuration such as 3d_fullres")
        adapted = round_up_to_multiple(patch_size, self.network_class.divisor)
        if adapted != patch_size:
            self.print_to_log_file(f"{name} needs every patch axis divisible by {self.network_class.divisor}: "
                                   f"patch size {patch_size} of the plans adapted to {adapted}")
            self.configuration_manager.configuration["patch_size"] = adapted
            self.plans_manager.plans["configurations"][self.configuration_name]["patch_size"] = adapted

    def set_deep_supervision_enabled(self, enabled: bool) -> None:
        """M1/M2 have a single output. nnU-Net calls this around validation even with deep supervision off, so it
        does nothing (nnU-Net's own version would touch ``network.decoder.deep_supervision``)."""


class M1Trainer(CerebellumNetworkTrainer):
    """nnU-Net's training recipe with the M1 network (372,521 parameters for one class)."""

    network_class = M1UNet


class M2InceptionTrainer(CerebellumNetworkTrainer):
    """nnU-Net's training recipe with the M2 inception network (550,097 parameters for one class)."""

    network_class = M2InceptionUNet


class CerebellumPaperRecipeTrainer(CerebellumNetworkTrainer):
    """The paper's recipe — Adam (default settings), soft-Dice loss (eq. 1), batch size 1, 200 epochs of one pass
    over the training images, dropout 0.2 after the last convolutional layer, no mirroring.

    An epoch is one pass over the fold's training cases, counted at the start of training from nnU-Net's split: with
    WDA each image and its 10 augmented copies (``11 n`` iterations of batch 1), with NDA each image once (``n``); one
    validation pass is one iteration per validation case. (nnU-Net draws the cases of each batch at random, so a
    "pass" holds in number of samples, not as a permutation.) Dropout is element-wise on the output layer's result,
    as in the paper's text and the authors' Keras code, not nnU-Net-style before it.

    Variants set ``network_class`` and ``paper_augmentation`` (True: WDA, False: NDA).
    """

    paper_augmentation: bool = True
    dropout_placement = "output"
    weight_init = "keras"

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.initial_lr = 1e-3  # Adam's default
        self.weight_decay = 0.0
        self.num_epochs = 200
        # None: one pass over the fold's training / validation cases, counted in on_train_start
        self.num_iterations_per_epoch = None
        self.num_val_iterations_per_epoch = None

    def _set_batch_size_and_oversample(self):
        super()._set_batch_size_and_oversample()
        if not self.is_ddp:
            self.batch_size = 1  # the paper's

    def on_train_start(self):
        if not self.was_initialized:
            self.initialize()
        if self.num_iterations_per_epoch is None or self.num_val_iterations_per_epoch is None:
            tr_keys, val_keys = self.do_split()
            samples = self.batch_size * (torch.distributed.get_world_size() if self.is_ddp else 1)
            copies = 11 if self.paper_augmentation else 1
            if self.num_iterations_per_epoch is None:
                self.num_iterations_per_epoch = paper_epoch_iterations(len(tr_keys), copies, samples)
            if self.num_val_iterations_per_epoch is None:
                self.num_val_iterations_per_epoch = paper_epoch_iterations(max(len(val_keys), 1), 1, samples)
            self.print_to_log_file(
                f"paper epoch: {len(tr_keys)} training cases x {copies} (one pass) = {self.num_iterations_per_epoch} "
                f"iterations of batch {self.batch_size}; {self.num_val_iterations_per_epoch} validation iterations")
        super().on_train_start()

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(self.network.parameters())  # default settings, as in the paper
        # nnU-Net steps the scheduler every epoch; exponent 0 keeps the learning rate constant
        return optimizer, PolyLRScheduler(optimizer, self.initial_lr, self.num_epochs, exponent=0.0)

    def _build_loss(self):
        return PaperSoftDiceLoss(ignore_label=self.label_manager.ignore_label)

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        self.inference_allowed_mirroring_axes = None
        return (0.0, 0.0), False, list(self.configuration_manager.patch_size), None

    def get_training_transforms(self, patch_size, rotation_for_DA: RandomScalar,
                                deep_supervision_scales: list | tuple | None, mirror_axes: tuple[int, ...],
                                do_dummy_2d_data_aug: bool, use_mask_for_norm: list[bool] = None,
                                is_cascaded: bool = False, foreground_labels=None, regions=None,
                                ignore_label: int = None) -> BasicTransform:
        tail = nnUNetTrainer.get_validation_transforms(deep_supervision_scales, is_cascaded, foreground_labels,
                                                       regions, ignore_label)
        if not self.paper_augmentation:
            return tail
        # the paper made 10 augmented copies per image and kept the original: augment 10 of 11 samples
        return ComposeTransforms([RandomTransform(RandomAxisRotationShiftTransform((-45.0, 45.0), (-20.0, 20.0)),
                                                  apply_probability=10 / 11), tail])



class M1Trainer_paperWDA(CerebellumPaperRecipeTrainer):
    """M1 with the paper's recipe and its rotation+shift augmentation (WDA)."""

    network_class = M1UNet


class M1Trainer_paperNDA(M1Trainer_paperWDA):
    """M1 with the paper's recipe and no augmentation (NDA)."""

    paper_augmentation = False


class M2InceptionTrainer_paperWDA(CerebellumPaperRecipeTrainer):
    """M2 with the paper's recipe and its rotation+shift augmentation (WDA)."""

    network_class = M2InceptionUNet


class M2InceptionTrainer_paperNDA(M2InceptionTrainer_paperWDA):
    """M2 with the paper's recipe and no augmentation (NDA)."""

    paper_augmentation = False


class M1Trainer_smoke(M1Trainer):
    """M1Trainer, one short epoch (:data:`SMOKE`)."""

    schedule = SMOKE


class M2InceptionTrainer_smoke(M2InceptionTrainer):
    """M2InceptionTrainer, one short epoch (:data:`SMOKE`)."""

    schedule = SMOKE


class M1Trainer_paperWDA_smoke(M1Trainer_paperWDA):
    """M1Trainer_paperWDA, one short epoch (:data:`SMOKE`)."""

    schedule = SMOKE


class M1Trainer_paperNDA_smoke(M1Trainer_paperNDA):
    """M1Trainer_paperNDA, one short epoch (:data:`SMOKE`)."""

    schedule = SMOKE


class M2InceptionTrainer_paperWDA_smoke(M2InceptionTrainer_paperWDA):
    """M2InceptionTrainer_paperWDA, one short epoch (:data:`SMOKE`)."""

    schedule = SMOKE


class M2InceptionTrainer_paperNDA_smoke(M2InceptionTrainer_paperNDA):
    """M2InceptionTrainer_paperNDA, one short epoch (:data:`SMOKE`)."""

    schedule = SMOKE


#: the README demo's CPU budget: 30 epochs of 8 iterations of batch 2 (the demo plans' batch; 240 iterations, 3x the
#: 80 before the faster networks and bf16), 2 validation iterations, no test-time mirroring; ``checkpoint_best.pth`` is
#: the best of the last 10 epochs by validation pseudo-Dice
DEMO = TrainingSchedule(num_epochs=30, iterations_per_epoch=8, val_iterations_per_epoch=2, batch_size=2,
                        best_of_last_epochs=10)


class M2InceptionTrainer_paperWDA_demo(M2InceptionTrainer_paperWDA):
    """M2InceptionTrainer_paperWDA (the paper's Table 4 model) on the README demo's CPU budget (:data:`DEMO`): 240
    iterations of batch 2, about 12-19 minutes on a 2-core CPU with native bf16. Predict with ``-chk
    checkpoint_best.pth`` (the best of the last 10 epochs by validation pseudo-Dice). A demonstration, not a
    converged model (the paper trained 200 epochs on a GPU)."""

    schedule = DEMO
