"""Paper-faithful variants of the WMH trainers: the training recipe of Ghafoorian et al. §2.3/§3.3 in nnU-Net.

``WMH<net>Trainer_paper`` builds the network of ``WMH<net>Trainer`` (the same ``wmh_network``) and trains it with only
what the paper prescribes changed (:class:`WMHPaperRecipeTrainer`):

* data: the balanced pool built once per fold (:func:`~nnunet_ataxia.trainers.wmh_pixel_pool.build_pixel_pool`:
  half of all lesion voxels of the fold's training cases + as many normal-appearing brain voxels, seed
  ``pool_seed``), served in shuffled mini-batches of 128 patches; one epoch = one pass over the pool (the paper
  picks the best *epoch*, so an epoch is a pass over its training set). The validation cases get their own pool
  (same rule, seed ``pool_seed + 1``; the paper's 430 k validation samples), predicted in full every epoch;
* no data augmentation and no test-time mirroring;
* the patch classifier (``forward_patches``) on 128 patches per step, cross-entropy, RMSprop (lr 1e-4, rho 0.9,
  eps 1e-6, constant: the paper gives no values), float32, no gradient clipping;
* model selection: ``checkpoint_best.pth`` = the epoch with the highest validation AUC (A_z) on the validation
  pool; nnU-Net's EMA pseudo-Dice selection is switched off. ``checkpoint_final.pth`` stays the last epoch, so
  predict with ``-chk checkpoint_best.pth`` (and validate with ``--val_best``) for the paper's model;
* intensities: per-patient [0, 1] scaling of T1 and FLAIR. Training min-max-scales nnU-Net's z-scored values per
  case (z-score is affine per case, so this is the min-max of the image as converted); the model's ``plans.json``
  gets ``RescaleTo01Normalization`` for channels 0 and 1, so ``nnUNetv2_predict`` and nnU-Net's final validation feed
  the network the same values. For images whose minimum is 0 (the converter's: 0 outside the brain, [0, 1] inside)
  both equal the converted image exactly.

Runs on one device (no DDP). ``_smoke`` variants: 3 epochs over a pool capped at 48 lesion samples, batches of 32
(:data:`PAPER_POOL_SMOKE`). ``WMHSSTrainer_paper_demo`` / ``WMHSSLocTrainer_paper_demo`` (``nnunet-ataxia wmh-demo``):
the paper recipe with fewer epochs over a capped pool (:data:`PAPER_POOL_DEMO`).
"""
from __future__ import annotations

import copy
import os

import numpy as np
import torch
from batchgenerators.utilities.file_and_folder_operations import save_json
from batchgeneratorsv2.transforms.base.basic_transform import BasicTransform
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from torch._dynamo import OptimizedModule

from nnunet_ataxia.architectures.wmh_location_networks import WMHLocationNet
from nnunet_ataxia.architectures.wmh_patches import SCALE_FACTORS
from nnunet_ataxia.trainers.schedules import TrainingSchedule
from nnunet_ataxia.trainers.wmh_pixel_pool import (
    PatchReader,
    PoolBatches,
    build_pixel_pool,
    image_channels,
    scale_case_images,
)
from nnunet_ataxia.trainers.wmh_trainers import WMH_NETWORKS, WMHLocationTrainer, sampled_hard_counts

VAL_AUC_KEY = "val_auc"
PAPER_INFERENCE_NORMALIZATION = "RescaleTo01Normalization"


def unit_scaled_dataset_class(base: type, use_mask_for_norm) -> type:
    """An nnU-Net dataset class whose ``load_case`` returns the case with T1/FLAIR scaled to [0, 1] per case (what
    nnU-Net's final validation predicts on)."""
    def load_case(self, identifier):
        data, seg, seg_prev, properties = base.load_case(self, identifier)
        data, seg = np.asarray(data[:]), np.asarray(seg[:])
        return scale_case_images(data, seg, use_mask_for_norm), seg, seg_prev, properties

    return type(f"{base.__name__}UnitScaled", (base,), {"load_case": load_case})


def validation_auc(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC of lesion probabilities against labels (> 0 = lesion); NaN when one class is missing.

    Example:
        >>> validation_auc(np.array([0.1, 0.8, 0.4]), np.array([0, 1, 0]))
        1.0
    """
    from sklearn.metrics import roc_auc_score
    positive = np.asarray(labels) > 0
    if positive.all() or not positive.any():
        return float("nan")
    return float(roc_auc_score(positive, probabilities))


class WMHPaperRecipeTrainer(WMHLocationTrainer):
    """The paper's training recipe (module docstring); variants set ``wmh_network`` or ``schedule``. Its numbers:"""
    paper_batch_size = 128          # patches per mini-batch (paper)
    validation_batch_size = 512     # patches per forward pass when predicting the validation pool
    pool_fraction = 0.5             # fraction of the lesion voxels in the pool (paper)
    pool_seed = 12345
    paper_num_epochs = 50           # passes over the pool (the paper does not state its number of epochs)

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = self.paper_num_epochs
        self.save_every = 1   # an epoch is a whole pass over the pool: keep a resumable checkpoint after each
        self.logger.local_logger.my_fantastic_logging.setdefault(VAL_AUC_KEY, [])
        self.train_pool = self.val_pool = None

    # ------------------------------------------------------------------ no augmentation, no mirroring
    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        super().configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        self.inference_allowed_mirroring_axes = None
        return (0.0, 0.0), False, self.configuration_manager.patch_size, None

    @staticmethod
    def get_training_transforms(patch_size, rotation_for_DA, deep_supervision_scales, mirror_axes,
                                do_dummy_2d_data_aug, use_mask_for_norm=None, is_cascaded=False,
                                foreground_labels=None, regions=None, ignore_label=None) -> BasicTransform:
        """No augmentation: the validation pipeline (label bookkeeping only). The pool batches bypass it anyway."""
        return nnUNetTrainer.get_validation_transforms(deep_supervision_scales, is_cascaded, foreground_labels,
                                                       regions, ignore_label)

    # ------------------------------------------------------------------ the pool
    def _set_batch_size_and_oversample(self):
        super()._set_batch_size_and_oversample()
        self.batch_size = self.paper_batch_size  # patches, served by PoolBatches (nnU-Net's loaders are not used)

    def initialize(self):
        super().initialize()
        if self.is_ddp:
            raise RuntimeError(f"{type(self).__name__}: the paper recipe trains on one device (no DDP)")
        self.pool_dataset_class = self.dataset_class        # nnU-Net's z-scored arrays, read window by window
        self.dataset_class = unit_scaled_dataset_class(self.dataset_class,
                                                       self.configuration_manager.use_mask_for_norm)

    def _scale_factors(self) -> tuple[int, ...]:
        return (1,) if self.wmh_network.variant == "SS" else SCALE_FACTORS

    def get_dataloaders(self):
        if not self.was_initialized:
            self.initialize()
        self.configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        tr_keys, val_keys = self.do_split()
        use_mask = self.configuration_manager.use_mask_for_norm
        cap = None if self.schedule is None else self.schedule.max_lesion_samples
        batches = []
        for part, keys, seed, size, shuffle in (("training", tr_keys, self.pool_seed, self.batch_size, True),
                                                ("validation", val_keys, self.pool_seed + 1,
                                                 self.validation_batch_size, False)):
            dataset = self.pool_dataset_class(self.preprocessed_dataset_folder, keys)
            pool = build_pixel_pool(dataset, keys, self.label_manager.ignore_label, use_mask, self.pool_fraction,
                                    seed, cap)
            self.print_to_log_file(f"{part} pool: {len(pool)} samples ({int((pool.label > 0).sum())} lesion + "
                                   f"{int((pool.label == 0).sum())} normal; {pool.lesion_voxels} lesion voxels in "
                                   f"{len(keys)} cases), {pool.nbytes / 2 ** 20:.1f} MiB")
            reader = PatchReader(dataset, pool, self._scale_factors(), use_mask,
                                 with_location=self.wmh_network.use_location)
            batches.append(PoolBatches(reader, size, shuffle, seed))
        self.train_pool, self.val_pool = batches[0].reader.pool, batches[1].reader.pool
        self.num_iterations_per_epoch, self.num_val_iterations_per_epoch = len(batches[0]), len(batches[1])
        return batches[0], batches[1]

    def on_train_start(self):
        super().on_train_start()
        # nnUNetv2_predict reads the model's plans.json: scale T1/FLAIR to [0, 1] per case, as in training
        plans = copy.deepcopy(self.plans_manager.plans)
        schemes = list(self.configuration_manager.normalization_schemes)
        for c in image_channels(len(self.dataset_json["channel_names"])):
            schemes[c] = PAPER_INFERENCE_NORMALIZATION
        plans["configurations"][self.configuration_name]["normalization_schemes"] = schemes
        save_json(plans, os.path.join(self.output_folder_base, "plans.json"), sort_keys=False)

    def on_train_epoch_start(self):
        super().on_train_epoch_start()
        self.dataloader_train.start_epoch(self.current_epoch)

    def on_validation_epoch_start(self):
        super().on_validation_epoch_start()
        self.dataloader_val.start_epoch(0)

    # ------------------------------------------------------------------ steps
    def _patch_classifier(self) -> WMHLocationNet:
        net = self.network._orig_mod if isinstance(self.network, OptimizedModule) else self.network
        if not isinstance(net, WMHLocationNet):
            raise ValueError(f"expected a WMHLocationNet, got {type(net).__name__}")
        return net

    def _logits(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        patches = [p.to(self.device, non_blocking=True) for p in batch["patches"]]
        net = self._patch_classifier()
        loc = batch["location"].to(self.device, non_blocking=True) if net.use_location else None
        return net.forward_patches(patches, loc), batch["target"].to(self.device, non_blocking=True)

    def train_step(self, batch: dict) -> dict:
        self.optimizer.zero_grad(set_to_none=True)
        logits, target = self._logits(batch)
        loss = self.loss(logits, target)
        loss.backward()
        self.optimizer.step()
        return {"loss": loss.detach().cpu().numpy()}

    def validation_step(self, batch: dict) -> dict:
        with torch.no_grad():
            logits, target = self._logits(batch)
            loss = self.loss(logits, target)
        lesion = torch.softmax(logits.float(), 1)[:, 1:].sum(1)
        return {"loss": loss.detach().cpu().numpy(), **sampled_hard_counts(logits, target),
                "probabilities": lesion.cpu().numpy(), "labels": target.cpu().numpy()}

    # ------------------------------------------------------------------ model selection by validation AUC
    def on_validation_epoch_end(self, val_outputs: list[dict]):
        probabilities = np.concatenate([o.pop("probabilities") for o in val_outputs])
        labels = np.concatenate([o.pop("labels") for o in val_outputs])
        super().on_validation_epoch_end(val_outputs)
        self.logger.log(VAL_AUC_KEY, validation_auc(probabilities, labels), self.current_epoch)

    def on_epoch_end(self):
        history = self.logger.get_value(VAL_AUC_KEY, step=None)
        self.print_to_log_file(f"validation AUC {history[-1]:.5f}")
        self.keep_best_checkpoint(history, "validation AUC")
        super().on_epoch_end()


class WMHSSTrainer_paper(WMHPaperRecipeTrainer):
    """SS, paper recipe."""
    wmh_network = WMH_NETWORKS["SS"]


class WMHSSLocTrainer_paper(WMHPaperRecipeTrainer):
    """SS+Loc, paper recipe."""
    wmh_network = WMH_NETWORKS["SS+Loc"]


class WMHMSEFTrainer_paper(WMHPaperRecipeTrainer):
    """MSEF, paper recipe."""
    wmh_network = WMH_NETWORKS["MSEF"]


class WMHMSEFLocTrainer_paper(WMHPaperRecipeTrainer):
    """MSEF+Loc, paper recipe."""
    wmh_network = WMH_NETWORKS["MSEF+Loc"]


class WMHMSIWTrainer_paper(WMHPaperRecipeTrainer):
    """MSIW, paper recipe."""
    wmh_network = WMH_NETWORKS["MSIW"]


class WMHMSIWLocTrainer_paper(WMHPaperRecipeTrainer):
    """MSIW+Loc, paper recipe."""
    wmh_network = WMH_NETWORKS["MSIW+Loc"]


class WMHMSWSTrainer_paper(WMHPaperRecipeTrainer):
    """MSWS, paper recipe."""
    wmh_network = WMH_NETWORKS["MSWS"]


class WMHMSWSLocTrainer_paper(WMHPaperRecipeTrainer):
    """MSWS+Loc, paper recipe."""
    wmh_network = WMH_NETWORKS["MSWS+Loc"]


class WMHSSLocLastConvTrainer_paper(WMHPaperRecipeTrainer):
    """SS+Loc (last conv), paper recipe."""
    wmh_network = WMH_NETWORKS["SS+Loc (last conv)"]


class WMHSSLocSecondFCTrainer_paper(WMHPaperRecipeTrainer):
    """SS+Loc (second FC), paper recipe."""
    wmh_network = WMH_NETWORKS["SS+Loc (second FC)"]


#: test size of the paper recipe: 3 epochs over a pool capped at 48 lesion + 48 normal samples, batches of 32
PAPER_POOL_SMOKE = TrainingSchedule(num_epochs=3, batch_size=32, max_lesion_samples=48)
#: CPU demo size (``nnunet-ataxia wmh-demo``, three training seeds x two networks, within 20 minutes on 2 cores): 4
#: passes over a pool capped at 1,500 lesion samples + as many normal ones (normal samples still drawn uniformly from
#: all normal brain voxels, as in the paper), batches of 128 as in the paper
PAPER_POOL_DEMO = TrainingSchedule(num_epochs=4, max_lesion_samples=1500)


class WMHSSTrainer_paper_demo(WMHSSTrainer_paper):
    """WMHSSTrainer_paper with the demo's schedule (:data:`PAPER_POOL_DEMO`)."""
    schedule = PAPER_POOL_DEMO


class WMHSSLocTrainer_paper_demo(WMHSSLocTrainer_paper):
    """WMHSSLocTrainer_paper with the demo's schedule (:data:`PAPER_POOL_DEMO`)."""
    schedule = PAPER_POOL_DEMO


class WMHSSTrainer_paper_smoke(WMHSSTrainer_paper):
    """WMHSSTrainer_paper at test size (:data:`PAPER_POOL_SMOKE`)."""
    schedule = PAPER_POOL_SMOKE


class WMHSSLocTrainer_paper_smoke(WMHSSLocTrainer_paper):
    """WMHSSLocTrainer_paper at test size (:data:`PAPER_POOL_SMOKE`)."""
    schedule = PAPER_POOL_SMOKE


class WMHMSEFTrainer_paper_smoke(WMHMSEFTrainer_paper):
    """WMHMSEFTrainer_paper at test size (:data:`PAPER_POOL_SMOKE`)."""
    schedule = PAPER_POOL_SMOKE


class WMHMSEFLocTrainer_paper_smoke(WMHMSEFLocTrainer_paper):
    """WMHMSEFLocTrainer_paper at test size (:data:`PAPER_POOL_SMOKE`)."""
    schedule = PAPER_POOL_SMOKE


class WMHMSIWTrainer_paper_smoke(WMHMSIWTrainer_paper):
    """WMHMSIWTrainer_paper at test size (:data:`PAPER_POOL_SMOKE`)."""
    schedule = PAPER_POOL_SMOKE


class WMHMSIWLocTrainer_paper_smoke(WMHMSIWLocTrainer_paper):
    """WMHMSIWLocTrainer_paper at test size (:data:`PAPER_POOL_SMOKE`)."""
    schedule = PAPER_POOL_SMOKE


class WMHMSWSTrainer_paper_smoke(WMHMSWSTrainer_paper):
    """WMHMSWSTrainer_paper at test size (:data:`PAPER_POOL_SMOKE`)."""
    schedule = PAPER_POOL_SMOKE


class WMHMSWSLocTrainer_paper_smoke(WMHMSWSLocTrainer_paper):
    """WMHMSWSLocTrainer_paper at test size (:data:`PAPER_POOL_SMOKE`)."""
    schedule = PAPER_POOL_SMOKE


class WMHSSLocLastConvTrainer_paper_smoke(WMHSSLocLastConvTrainer_paper):
    """WMHSSLocLastConvTrainer_paper at test size (:data:`PAPER_POOL_SMOKE`)."""
    schedule = PAPER_POOL_SMOKE


class WMHSSLocSecondFCTrainer_paper_smoke(WMHSSLocSecondFCTrainer_paper):
    """WMHSSLocSecondFCTrainer_paper at test size (:data:`PAPER_POOL_SMOKE`)."""
    schedule = PAPER_POOL_SMOKE
