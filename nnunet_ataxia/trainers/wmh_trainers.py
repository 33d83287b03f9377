"""nnU-Net 2d trainers for the location-sensitive WMH networks of Ghafoorian et al.

Input per case (docs/reference/wmh-channels.md): channel 0 T1, 1 FLAIR, 2-9 location features (``noNorm``,
per case in [0, 1] inside the brain mask, 0 outside). The dense form of :class:`WMHLocationNet` is trained with
cross-entropy on a balanced pixel sample per batch (50 % of the foreground pixels and as many background pixels from
inside the brain mask; ignore label never sampled), RMSprop, dropout 0.3, Glorot init, no deep supervision. nnU-Net's
intensity augmentations act on T1/FLAIR only; spatial transforms (and mirroring) move the location channels with the
pixels. ``nnUNetv2_predict`` runs the dense form and, with ``--save_probabilities``, writes probability maps.

Use: ``nnUNetv2_train 504 2d 0 -tr WMHMSWSLocTrainer`` with ``nnUNet_extTrainer`` pointing at
``nnunet_ataxia/nnunet_ext_trainers``. Variants set one class attribute: ``wmh_network`` (one of
:data:`WMH_NETWORKS`; e.g. ``dataclasses.replace(WMH_NETWORKS["MSWS+Loc"], location_alpha=0.5)`` for another
alpha) or ``schedule`` (``_smoke``: :data:`PIXEL_SAMPLING_SMOKE`).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from batchgeneratorsv2.transforms.base.basic_transform import BasicTransform, ImageOnlyTransform
from batchgeneratorsv2.transforms.utils.compose import ComposeTransforms
from batchgeneratorsv2.transforms.utils.nnunet_masking import MaskImageTransform
from batchgeneratorsv2.transforms.utils.random import RandomTransform
from nnunetv2.training.loss.dice import get_tp_fp_fn_tn
from nnunetv2.training.lr_scheduler.polylr import PolyLRScheduler
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.helpers import dummy_context
from torch import autocast, nn
from torch._dynamo import OptimizedModule

from nnunet_ataxia.architectures.wmh_location_networks import NUM_LOCATION_FEATURES, WMHLocationNet, image_channel_count
from nnunet_ataxia.trainers.schedules import SMOKE, ScheduledTrainer

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


def sampled_hard_counts(logits: torch.Tensor, labels: torch.Tensor) -> dict:
    """nnU-Net's validation counts (``tp_hard``, ``fp_hard``, ``fn_hard`` per foreground class) for sampled pixels:
    (N, C) logits against (N,) labels, counted by nnU-Net's ``get_tp_fp_fn_tn``.

    Example:
        >>> logits = torch.tensor([[0., 1.], [1., 0.], [0., 1.]])
        >>> {k: v.tolist() for k, v in sampled_hard_counts(logits, torch.tensor([1, 1, 0])).items()}
        {'tp_hard': [1.0], 'fp_hard': [1.0], 'fn_hard': [1.0]}
    """
    predicted = torch.nn.functional.one_hot(logits.argmax(1), logits.shape[1])
    tp, fp, fn, _ = get_tp_fp_fn_tn(predicted, labels.long()[:, None], axes=(0,))
    return {name: counts[1:].detach().cpu().numpy().astype(float)
            for name, counts in (("tp_hard", tp), ("fp_hard", fp), ("fn_hard", fn))}


@dataclass(frozen=True)
class WMHNetworkChoice:
    """Which network of Ghafoorian et al. a WMH trainer builds (:class:`WMHLocationNet`'s arguments).

    Example:
        >>> WMH_NETWORKS["SS+Loc"].build(num_input_channels=10, num_output_channels=2).use_location
        True
    """

    variant: str = "MSWS"
    use_location: bool = True
    location_injection: str = "first_fc"
    location_alpha: float = 1.0
    dropout: float = 0.3

    def build(self, num_input_channels: int, num_output_channels: int) -> WMHLocationNet:
        return WMHLocationNet(variant=self.variant, use_location=self.use_location,
                              location_alpha=self.location_alpha, location_injection=self.location_injection,
                              num_classes=num_output_channels, dropout=self.dropout,
                              input_channels=num_input_channels,
                              num_image_channels=image_channel_count(num_input_channels))


#: the networks of the paper's Tables 3-5, by the paper's names
WMH_NETWORKS = {f"{v}{'+Loc' if loc else ''}": WMHNetworkChoice(v, loc)
                for v in ("SS", "MSEF", "MSIW", "MSWS") for loc in (False, True)}
WMH_NETWORKS["SS+Loc (last conv)"] = WMHNetworkChoice("SS", True, "last_conv")
WMH_NETWORKS["SS+Loc (second FC)"] = WMHNetworkChoice("SS", True, "second_fc")

#: a cheap run of a pixel-sampling trainer (tests): one epoch of 2 iterations of batch 2, 32 lesion pixels per batch
PIXEL_SAMPLING_SMOKE = replace(SMOKE, batch_size=2, max_lesion_samples=32)


class WMHLocationTrainer(ScheduledTrainer):
    """Base trainer (MSWS+Loc). Variants set ``wmh_network`` (:data:`WMH_NETWORKS`) or ``schedule``."""
    wmh_network: WMHNetworkChoice = WMH_NETWORKS["MSWS+Loc"]
    positive_fraction = 0.5
    max_samples_per_class = 256
    negatives_if_no_positive = 32

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.enable_deep_supervision = False
        self.initial_lr = 1e-4
        self.weight_decay = 0.0

    @classmethod
    def build_network_architecture(cls, plans_manager, configuration_manager, num_input_channels: int,
                                   num_output_channels: int, enable_deep_supervision: bool = True) -> nn.Module:
        # a classmethod (nnU-Net declares a staticmethod): nnU-Net calls it on the class or an instance alike
        return cls.wmh_network.build(num_input_channels, num_output_channels)

    def initialize(self):
        if self.schedule is not None and self.schedule.max_lesion_samples is not None:
            self.max_samples_per_class = self.schedule.max_lesion_samples
        super().initialize()

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
        if not isinstance(mod, WMHLocationNet):
            raise ValueError(f"expected a WMHLocationNet, got {type(mod).__name__}")
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
        return {"loss": loss.detach().cpu().numpy(), **sampled_hard_counts(logits, labels)}


class WMHSSTrainer(WMHLocationTrainer):
    """SS of Ghafoorian et al."""
    wmh_network = WMH_NETWORKS["SS"]


class WMHSSLocTrainer(WMHLocationTrainer):
    """SS+Loc of Ghafoorian et al."""
    wmh_network = WMH_NETWORKS["SS+Loc"]


class WMHMSEFTrainer(WMHLocationTrainer):
    """MSEF of Ghafoorian et al."""
    wmh_network = WMH_NETWORKS["MSEF"]


class WMHMSEFLocTrainer(WMHLocationTrainer):
    """MSEF+Loc of Ghafoorian et al."""
    wmh_network = WMH_NETWORKS["MSEF+Loc"]


class WMHMSIWTrainer(WMHLocationTrainer):
    """MSIW of Ghafoorian et al."""
    wmh_network = WMH_NETWORKS["MSIW"]


class WMHMSIWLocTrainer(WMHLocationTrainer):
    """MSIW+Loc of Ghafoorian et al."""
    wmh_network = WMH_NETWORKS["MSIW+Loc"]


class WMHMSWSTrainer(WMHLocationTrainer):
    """MSWS of Ghafoorian et al."""
    wmh_network = WMH_NETWORKS["MSWS"]


class WMHMSWSLocTrainer(WMHLocationTrainer):
    """MSWS+Loc of Ghafoorian et al."""
    wmh_network = WMH_NETWORKS["MSWS+Loc"]


class WMHSSLocLastConvTrainer(WMHLocationTrainer):
    """SS+Loc (last conv) of Ghafoorian et al. (paper Table 5)"""
    wmh_network = WMH_NETWORKS["SS+Loc (last conv)"]


class WMHSSLocSecondFCTrainer(WMHLocationTrainer):
    """SS+Loc (second FC) of Ghafoorian et al. (paper Table 5)"""
    wmh_network = WMH_NETWORKS["SS+Loc (second FC)"]


class WMHSSTrainer_smoke(WMHSSTrainer):
    """WMHSSTrainer, a cheap run (:data:`PIXEL_SAMPLING_SMOKE`)."""
    schedule = PIXEL_SAMPLING_SMOKE


class WMHSSLocTrainer_smoke(WMHSSLocTrainer):
    """WMHSSLocTrainer, a cheap run (:data:`PIXEL_SAMPLING_SMOKE`)."""
    schedule = PIXEL_SAMPLING_SMOKE


class WMHMSEFTrainer_smoke(WMHMSEFTrainer):
    """WMHMSEFTrainer, a cheap run (:data:`PIXEL_SAMPLING_SMOKE`)."""
    schedule = PIXEL_SAMPLING_SMOKE


class WMHMSEFLocTrainer_smoke(WMHMSEFLocTrainer):
    """WMHMSEFLocTrainer, a cheap run (:data:`PIXEL_SAMPLING_SMOKE`)."""
    schedule = PIXEL_SAMPLING_SMOKE


class WMHMSIWTrainer_smoke(WMHMSIWTrainer):
    """WMHMSIWTrainer, a cheap run (:data:`PIXEL_SAMPLING_SMOKE`)."""
    schedule = PIXEL_SAMPLING_SMOKE


class WMHMSIWLocTrainer_smoke(WMHMSIWLocTrainer):
    """WMHMSIWLocTrainer, a cheap run (:data:`PIXEL_SAMPLING_SMOKE`)."""
    schedule = PIXEL_SAMPLING_SMOKE


class WMHMSWSTrainer_smoke(WMHMSWSTrainer):
    """WMHMSWSTrainer, a cheap run (:data:`PIXEL_SAMPLING_SMOKE`)."""
    schedule = PIXEL_SAMPLING_SMOKE


class WMHMSWSLocTrainer_smoke(WMHMSWSLocTrainer):
    """WMHMSWSLocTrainer, a cheap run (:data:`PIXEL_SAMPLING_SMOKE`)."""
    schedule = PIXEL_SAMPLING_SMOKE


class WMHSSLocLastConvTrainer_smoke(WMHSSLocLastConvTrainer):
    """WMHSSLocLastConvTrainer, a cheap run (:data:`PIXEL_SAMPLING_SMOKE`)."""
    schedule = PIXEL_SAMPLING_SMOKE


class WMHSSLocSecondFCTrainer_smoke(WMHSSLocSecondFCTrainer):
    """WMHSSLocSecondFCTrainer, a cheap run (:data:`PIXEL_SAMPLING_SMOKE`)."""
    schedule = PIXEL_SAMPLING_SMOKE
