"""``nnunet-ataxia wmh-tune-alpha``: tune the location-feature weight alpha of a WMH +Loc model on a fold's
validation cases (best validation AUC) and write it where ``nnUNetv2_predict`` reads it."""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from nnunet_ataxia.evaluation.wmh_alpha_tuning import DEFAULT_ALPHAS

    parser.add_argument("-d", "--dataset", required=True, help="dataset id or name (e.g. 504)")
    parser.add_argument("-tr", "--trainer", required=True, help="trainer of the model (e.g. WMHMSWSLocTrainer_paper)")
    parser.add_argument("-p", "--plans", default="nnUNetPlans", help="plans identifier (default nnUNetPlans)")
    parser.add_argument("-c", "--configuration", default="2d", help="configuration (default 2d)")
    parser.add_argument("-f", "--fold", required=True, help="fold whose validation cases tune alpha")
    parser.add_argument("--alphas", nargs="+", type=float, default=list(DEFAULT_ALPHAS),
                        help=f"values tried (default {' '.join(map(str, DEFAULT_ALPHAS))}; the trained alpha is "
                             f"always added)")
    parser.add_argument("-chk", "--checkpoint", default="checkpoint_final.pth",
                        help="checkpoint predicted with and updated (default checkpoint_final.pth; the paper "
                             "trainers' model is checkpoint_best.pth)")
    parser.add_argument("-device", "--device", default=None, choices=("cpu", "cuda", "mps"),
                        help="device (default cuda when available, else cpu)")
    parser.add_argument("--max-normal-voxels", type=int, default=200_000,
                        help="normal brain voxels per case entering the AUC (seeded subsample; all lesion voxels "
                             "always do; default 200000)")


def run(args: argparse.Namespace) -> int:
    import torch

    from nnunet_ataxia.evaluation.wmh_alpha_tuning import ALPHA_FILE, tune_location_alpha

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    record = tune_location_alpha(args.dataset, args.trainer, args.fold, args.plans, args.configuration, args.alphas,
                                 args.checkpoint, device, args.max_normal_voxels)
    by_alpha = {r["alpha"]: r for r in record["sweep"]}
    print(f"alpha {record['alpha']:g} (validation AUC {by_alpha[record['alpha']]['auc']:.5f}; trained alpha "
          f"{record['trained_alpha']:g}: {by_alpha[record['trained_alpha']]['auc']:.5f}) written to fold "
          f"{record['fold']}'s {record['checkpoint']}; sweep in {ALPHA_FILE}")
    return 0
