"""nnU-Net 2d trainers for the location-sensitive WMH networks of Ghafoorian et al.

Input per case (the README's WMH conventions): channel 0 T1, 1 FLAIR, 2-9 location features (``noNorm``,
per case in [0, 1] inside the brain mask, 0 outside). The dense form of :class:`WMHLocationNet` is trained with
cross-entropy on a balanced pixel sample per batch (50 % of the foreground pixels and as many background pixels from
inside the brain mask; ignore label never sampled), RMSprop, dropout 0.3, Glorot init, no deep supervision. nnU-Net's
intensity augmentations act on T1/FLAIR only; spatial transforms (and mirroring) move the location channels with the
pixels. ``nnUNetv2_predict`` runs the dense form and, with ``--save_probabilities``, writes probability maps.

Use: ``nnUNetv2_train 504 2d 0 -tr WMHMSWSLocTrainer`` with ``nnUNet_extTrainer`` pointing at
``nnunet_ataxia/nnunet_ext_trainers``. Subclass and set ``location_alpha`` to tune alpha.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from batchgeneratorsv2.transforms.base.basic_transform import BasicTransform, ImageOnlyTransform
from batchgeneratorsv2.transforms.utils.compose import ComposeTransforms
from batchgeneratorsv2.transforms.utils.nnunet_masking import MaskImageTransform
from batchgeneratorsv2.transforms.utils.random import RandomTransform
from torch import autocast, nn
from torch._dynamo import OptimizedModule

from nnunetv2.training.lr_scheduler.polylr import PolyLRScheduler
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.helpers import dummy_context

from nnunet_ataxia.architectures.wmh_location_networks import NUM_LOCATION_FEATURES, WMHLocationNet, \
    image_channel_count

WMH_IMAGE_CHANNELS = None   # the image channels of each input: T1 + FLAIR (0, 1) or FLAIR-only (0,)


class ImageChannelSubsetTransform(BasicTransform):
    """Apply an image-only (intensity) transform to some image channels only; the others stay untouched.

    ``channels=None``: the WMH image channels of each input (:func:`image_channel_count`: T1 + FLAIR or FLAIR).

    Example:
        >>> from batchgeneratorsv2.transforms.intensity.brightness import MultiplicativeBrightnessTransform
        >>> t = ImageChannelSubsetTransform(MultiplicativeBrightnessTransform((2., 2.), False, 1), (0,))
        >>> t(image=torch.ones(2, 4, 4))["image"][:, 0, 0].tolist()
        [2.0, 1.0]
    """

    def __init__(self, transform: BasicTransform, channels: Sequence[int] | None):
        super().__init__()
        self.transform = transform
        self.channels = None if channels is None else tuple(int(c) for c in channels)

    def __call__(self, **data_dict) -> dict:
        image = data_dict.get("image")
        if image is None:
            return data_dict
        channels = range(image_channel_count(image.shape[0])) if self.channels is None else self.channels
        idx = [c for c in channels if c < image.shape[0]]
        image = image.clone()
        image[idx] = self.transform(image=image[idx].clone())["image"]
        data_dict["image"] = image
        return data_dict

    def __repr__(self) -> str:
        return f"{type(self).__name__}(channels={self.channels}, transform={self.transform})"


def restrict_intensity_transforms(transforms: ComposeTransforms, channels: Sequence[int] | None
                                  ) -> ComposeTransforms:
    """Wrap every image-only (intensity) transform of an nnU-Net pipeline so it acts on ``channels`` only.

    Spatial transforms, mirroring, masking and label transforms are kept as they are.
    """
    def wrap(t: BasicTransform) -> BasicTransform:
        if isinstance(t, RandomTransform):
            t.transform = wrap(t.transform)
            return t
        if isinstance(t, ImageOnlyTransform) and not isinstance(t, MaskImageTransform):
            return ImageChannelSubsetTransform(t, channels)
        return t

    transforms.transforms = [wrap(t) for t in transforms.transforms]
    return transforms


def brain_mask_from_input(data: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) nnU-Net input -> (B, H, W) brain mask: any location channel (2..9; FLAIR-only 1..8) > 0; all
    True without them."""
    n_img = image_channel_count(data.shape[1])
    loc = data[:, n_img:n_img + NUM_LOCATION_FEATURES]
    if loc.shape[1] == 0:
        return torch.ones_like(data[:, 0], dtype=torch.bool)
    return (loc > 0).any(1)


def sample_balanced_pixels(target: torch.Tensor, brain_mask: torch.Tensor, ignore_label: int | None,
                           positive_fraction: float = 0.5, max_per_class: int = 256, negatives_if_no_positive: int = 32,
                           generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
    """The paper's balanced sample, per batch: ``ceil(positive_fraction * #foreground)`` foreground pixels (capped
    at ``max_per_class``) and as many background pixels from inside the brain mask; ignore-label pixels never.

    Args:
        target: (B, H, W) or (B, 1, H, W) integer labels.
        brain_mask: (B, H, W) bool.
        ignore_label: label never sampled (None: none).
        positive_fraction: fraction of the foreground pixels drawn.
        max_per_class: cap on foreground and on background samples.
        negatives_if_no_positive: background samples drawn when the batch holds no foreground.

    Returns:
        (batch_idx, rows, cols, labels), each (N,) long.

    Example:
        >>> t = torch.zeros(1, 4, 4, dtype=torch.long); t[0, 0, :2] = 1; t[0, 3, 3] = 2
        >>> b, r, c, y = sample_balanced_pixels(t, torch.ones(1, 4, 4, dtype=torch.bool), 2)
        >>> y.tolist()
        [1, 0]
    """
    if target.ndim == 4:
        target = target[:, 0]
    target = target.long()
    usable = torch.ones_like(brain_mask) if ignore_label is None else target != ignore_label
    pos = torch.nonzero((target > 0) & usable)
    neg = torch.nonzero((target == 0) & brain_mask & usable)
    n_pos = min(math.ceil(positive_fraction * len(pos)), max_per_class)
    n_neg = min(n_pos if n_pos > 0 else negatives_if_no_positive, max_per_class, len(neg))
    pick_pos = pos[torch.randperm(len(pos), generator=generator)[:n_pos]]
    pick_neg = neg[torch.randperm(len(neg), generator=generator)[:n_neg]]
    picked = torch.cat([pick_pos, pick_neg]).to(target.device)
    labels = target[picked[:, 0], picked[:, 1], picked[:, 2]]
    return picked[:, 0], picked[:, 1], picked[:, 2], labels


def _build_wmh_network(trainer_cls: type, num_input_channels: int, num_output_channels: int) -> WMHLocationNet:
    return WMHLocationNet(variant=trainer_cls.variant, use_location=trainer_cls.use_location,
                          location_alpha=trainer_cls.location_alpha,
                          location_injection=trainer_cls.location_injection, num_classes=num_output_channels,
                          dropout=trainer_cls.dropout_p, input_channels=num_input_channels,
                          num_image_channels=image_channel_count(num_input_channels))


def _make_builder(trainer_cls: type):
    def build_network_architecture(plans_manager, configuration_manager, num_input_channels: int,
                                   num_output_channels: int, enable_deep_supervision: bool = True) -> nn.Module:
        return _build_wmh_network(trainer_cls, num_input_channels, num_output_channels)
    return staticmethod(build_network_architecture)


class WMHLocationTrainer(nnUNetTrainer):
    """Base trainer (MSWS+Loc). Subclasses set the class attributes below; ``_smoke`` ones set ``smoke = True``."""
    variant = "MSWS"
    use_location = True
    location_alpha = 1.0
    location_injection = "first_fc"
    dropout_p = 0.3
    positive_fraction = 0.5
    max_samples_per_class = 256
    negatives_if_no_positive = 32
    smoke = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.build_network_architecture = _make_builder(cls)

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.enable_deep_supervision = False
        self.initial_lr = 1e-4
        self.weight_decay = 0.0
        if self.smoke:
            self.num_epochs, self.num_iterations_per_epoch, self.num_val_iterations_per_epoch = 1, 2, 1
            self.max_samples_per_class = 32

    def _set_batch_size_and_oversample(self):
        super()._set_batch_size_and_oversample()
        if self.smoke:
            self.batch_size = min(self.batch_size, 2)

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        rotation, dummy_2d, initial_patch_size, mirror_axes = \
            super().configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        if self.smoke:  # CPU smoke runs: no test-time mirroring (4x fewer dense passes)
            mirror_axes = None
            self.inference_allowed_mirroring_axes = None
        return rotation, dummy_2d, initial_patch_size, mirror_axes

    @staticmethod
    def get_training_transforms(patch_size, rotation_for_DA, deep_supervision_scales, mirror_axes,
                                do_dummy_2d_data_aug, use_mask_for_norm=None, is_cascaded=False,
                                foreground_labels=None, regions=None, ignore_label=None) -> BasicTransform:
        transforms = nnUNetTrainer.get_training_transforms(
            patch_size, rotation_for_DA, deep_supervision_scales, mirror_axes, do_dummy_2d_data_aug,
            use_mask_for_norm, is_cascaded, foreground_labels, regions, ignore_label)
        return restrict_intensity_transforms(transforms, WMH_IMAGE_CHANNELS)

    def set_deep_supervision_enabled(self, enabled: bool):
        mod = self.network.module if self.is_ddp else self.network
        if isinstance(mod, OptimizedModule):
            mod = mod._orig_mod
        assert isinstance(mod, WMHLocationNet), f"expected a WMHLocationNet, got {type(mod).__name__}"
        # the network has a single output; nothing to switch

    def _build_loss(self):
        return nn.CrossEntropyLoss()

    def configure_optimizers(self):
        optimizer = torch.optim.RMSprop(self.network.parameters(), lr=self.initial_lr, alpha=0.9, eps=1e-6,
                                        weight_decay=self.weight_decay)
        return optimizer, PolyLRScheduler(optimizer, self.initial_lr, self.num_epochs, exponent=0.0)  # constant

    def _sampled_logits(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        data = batch["data"].to(self.device, non_blocking=True)
        target = batch["target"]
        target = (target[0] if isinstance(target, list) else target).to(self.device, non_blocking=True)
        b, r, c, labels = sample_balanced_pixels(
            target, brain_mask_from_input(data), self.label_manager.ignore_label, self.positive_fraction,
            self.max_samples_per_class, self.negatives_if_no_positive)
        logits = self.network(data, (b, r, c))
        return logits, labels

    def train_step(self, batch: dict) -> dict:
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.device.type, enabled=True) if self.device.type == "cuda" else dummy_context():
            logits, labels = self._sampled_logits(batch)
            loss = self.loss(logits, labels)
        if self.grad_scaler is not None:
            self.grad_scaler.scale(loss).backward()
            self.grad_scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), 12)
            self.grad_scaler.step(self.optimizer)
            self.grad_scaler.update()
        else:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), 12)
            self.optimizer.step()
        return {"loss": loss.detach().cpu().numpy()}

    def validation_step(self, batch: dict) -> dict:
        with torch.no_grad():
            with autocast(self.device.type, enabled=True) if self.device.type == "cuda" else dummy_context():
                logits, labels = self._sampled_logits(batch)
                loss = self.loss(logits, labels)
        pred = logits.argmax(1)
        fg = range(1, logits.shape[1])
        tp = np.array([((pred == k) & (labels == k)).sum().item() for k in fg], dtype=float)
        fp = np.array([((pred == k) & (labels != k)).sum().item() for k in fg], dtype=float)
        fn = np.array([((pred != k) & (labels == k)).sum().item() for k in fg], dtype=float)
        return {"loss": loss.detach().cpu().numpy(), "tp_hard": tp, "fp_hard": fp, "fn_hard": fn}


WMHLocationTrainer.build_network_architecture = _make_builder(WMHLocationTrainer)

class WMHSSTrainer(WMHLocationTrainer):
    """SS of Ghafoorian et al."""
    variant = "SS"
    use_location = False


class WMHSSLocTrainer(WMHLocationTrainer):
    """SS+Loc of Ghafoorian et al."""
    variant = "SS"
    use_location = True


class WMHMSEFTrainer(WMHLocationTrainer):
    """MSEF of Ghafoorian et al."""
    variant = "MSEF"
    use_location = False


class WMHMSEFLocTrainer(WMHLocationTrainer):
    """MSEF+Loc of Ghafoorian et al."""
    variant = "MSEF"
    use_location = True


class WMHMSIWTrainer(WMHLocationTrainer):
    """MSIW of Ghafoorian et al."""
    variant = "MSIW"
    use_location = False


class WMHMSIWLocTrainer(WMHLocationTrainer):
    """MSIW+Loc of Ghafoorian et al."""
    variant = "MSIW"
    use_location = True


class WMHMSWSTrainer(WMHLocationTrainer):
    """MSWS of Ghafoorian et al."""
    variant = "MSWS"
    use_location = False


class WMHMSWSLocTrainer(WMHLocationTrainer):
    """MSWS+Loc of Ghafoorian et al."""
    variant = "MSWS"
    use_location = True


class WMHSSLocLastConvTrainer(WMHLocationTrainer):
    """SS+Loc with the location features injected at last_conv (paper Table 5)."""
    variant = "SS"
    use_location = True
    location_injection = "last_conv"


class WMHSSLocSecondFCTrainer(WMHLocationTrainer):
    """SS+Loc with the location features injected at second_fc (paper Table 5)."""
    variant = "SS"
    use_location = True
    location_injection = "second_fc"


class WMHSSTrainer_smoke(WMHSSTrainer):
    """WMHSSTrainer: 1 epoch, 2 iterations, 1 validation iteration, batch <= 2, no TTA mirroring."""
    smoke = True


class WMHSSLocTrainer_smoke(WMHSSLocTrainer):
    """WMHSSLocTrainer: 1 epoch, 2 iterations, 1 validation iteration, batch <= 2, no TTA mirroring."""
    smoke = True


class WMHMSEFTrainer_smoke(WMHMSEFTrainer):
    """WMHMSEFTrainer: 1 epoch, 2 iterations, 1 validation iteration, batch <= 2, no TTA mirroring."""
    smoke = True


class WMHMSEFLocTrainer_smoke(WMHMSEFLocTrainer):
    """WMHMSEFLocTrainer: 1 epoch, 2 iterations, 1 validation iteration, batch <= 2, no TTA mirroring."""
    smoke = True


class WMHMSIWTrainer_smoke(WMHMSIWTrainer):
    """WMHMSIWTrainer: 1 epoch, 2 iterations, 1 validation iteration, batch <= 2, no TTA mirroring."""
    smoke = True


class WMHMSIWLocTrainer_smoke(WMHMSIWLocTrainer):
    """WMHMSIWLocTrainer: 1 epoch, 2 iterations, 1 validation iteration, batch <= 2, no TTA mirroring."""
    smoke = True


class WMHMSWSTrainer_smoke(WMHMSWSTrainer):
    """WMHMSWSTrainer: 1 epoch, 2 iterations, 1 validation iteration, batch <= 2, no TTA mirroring."""
    smoke = True


class WMHMSWSLocTrainer_smoke(WMHMSWSLocTrainer):
    """WMHMSWSLocTrainer: 1 epoch, 2 iterations, 1 validation iteration, batch <= 2, no TTA mirroring."""
    smoke = True


class WMHSSLocLastConvTrainer_smoke(WMHSSLocLastConvTrainer):
    """WMHSSLocLastConvTrainer: 1 epoch, 2 iterations, 1 validation iteration, batch <= 2, no TTA mirroring."""
    smoke = True


class WMHSSLocSecondFCTrainer_smoke(WMHSSLocSecondFCTrainer):
    """WMHSSLocSecondFCTrainer: 1 epoch, 2 iterations, 1 validation iteration, batch <= 2, no TTA mirroring."""
    smoke = True
