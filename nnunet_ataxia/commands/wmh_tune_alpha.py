"""``nnunet-ataxia wmh-tune-alpha``: tune the location-feature weight alpha of a WMH +Loc model on a fold's
validation cases (best validation AUC): re-weigh one trained network and write alpha where ``nnUNetv2_predict``
reads it (fast), or with ``--retrain`` train one network per alpha (resumable)."""
from __future__ import annotations

import argparse

from nnunet_ataxia.io.arguments import at_least, fold, nonnegative_float
from nnunet_ataxia.io.constants import WMH_MAX_NORMAL_VOXELS_PER_CASE


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from nnunet_ataxia.evaluation.wmh_alpha_retrain import DEFAULT_RETRAIN_ALPHAS
    from nnunet_ataxia.evaluation.wmh_alpha_tuning import DEFAULT_ALPHAS

    parser.add_argument("-d", "--dataset", required=True, help="dataset id or name (e.g. 504)")
    parser.add_argument("-tr", "--trainer", required=True, help="trainer of the model (e.g. WMHMSWSLocTrainer_paper)")
    parser.add_argument("-p", "--plans", default="nnUNetPlans", help="plans identifier (default nnUNetPlans)")
    parser.add_argument("-c", "--configuration", default="2d", help="configuration (default 2d)")
    parser.add_argument("-f", "--fold", required=True, type=fold, help="fold whose validation cases tune alpha")
    parser.add_argument("--alphas", nargs="+", type=nonnegative_float, default=None,
                        help=f"values tried (default {' '.join(map(str, DEFAULT_ALPHAS))}; the trained alpha is "
                             f"always added; with --retrain: {' '.join(map(str, DEFAULT_RETRAIN_ALPHAS))})")
    parser.add_argument("--retrain", action="store_true",
                        help="train one network per alpha (as the paper tunes alpha) and select by validation AUC; "
                             "resumable: a re-run skips finished alphas and continues an interrupted one")
    parser.add_argument("-chk", "--checkpoint", default="checkpoint_final.pth",
                        help="checkpoint predicted with and updated (default checkpoint_final.pth; the paper "
                             "trainers' model is checkpoint_best.pth)")
    parser.add_argument("-device", "--device", default=None, choices=("cpu", "cuda", "mps"),
                        help="device (default cuda when available, else cpu)")
    parser.add_argument("--max-normal-voxels", type=at_least(1), default=WMH_MAX_NORMAL_VOXELS_PER_CASE,
                        help="normal brain voxels per case entering the AUC (seeded subsample; all lesion voxels "
                             f"always do; default {WMH_MAX_NORMAL_VOXELS_PER_CASE})")


def run(args: argparse.Namespace) -> int:
    import torch

    from nnunet_ataxia.evaluation.wmh_alpha_tuning import ALPHA_FILE, tune_location_alpha

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.retrain:
        from nnunet_ataxia.evaluation.wmh_alpha_retrain import DEFAULT_RETRAIN_ALPHAS, retrain_location_alpha

        record = retrain_location_alpha(args.dataset, args.trainer, args.fold, args.plans, args.configuration,
                                        args.alphas or DEFAULT_RETRAIN_ALPHAS, args.checkpoint, device,
                                        args.max_normal_voxels)
        aucs = ", ".join(f"{r['alpha']:g}: {r['auc']:.5f}" for r in record["sweep"])
        print(f"alpha {record['alpha']:g} (validation AUC per alpha {aucs}); its network: {record['model']} "
              f"(set nnUNet_results to it for nnUNetv2_predict)")
        return 0
    from nnunet_ataxia.evaluation.wmh_alpha_tuning import DEFAULT_ALPHAS

    record = tune_location_alpha(args.dataset, args.trainer, args.fold, args.plans, args.configuration,
                                 args.alphas or DEFAULT_ALPHAS, args.checkpoint, device, args.max_normal_voxels)
    by_alpha = {r["alpha"]: r for r in record["sweep"]}
    print(f"alpha {record['alpha']:g} (validation AUC {by_alpha[record['alpha']]['auc']:.5f}; trained alpha "
          f"{record['trained_alpha']:g}: {by_alpha[record['trained_alpha']]['auc']:.5f}) written to fold "
          f"{record['fold']}'s {record['checkpoint']}; sweep in {ALPHA_FILE}")
    return 0
