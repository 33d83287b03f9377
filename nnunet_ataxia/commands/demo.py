"""``nnunet-ataxia demo``: the README's main job on built-in demo data."""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="nnunet_ataxia_demo", help="output folder (default ./nnunet_ataxia_demo)")
    parser.add_argument("--quick", action="store_true", help="tiny, fast run (fewer, coarser subjects; smoke trainer)")
    parser.add_argument("-np", "--num-processes", type=int, default=2, help="parallel processes (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the demo subjects")
    parser.add_argument("--trainer", default=None,
                        help="nnU-Net trainer (default M2InceptionTrainer_paperWDA_demo; M2InceptionTrainer_paperNDA_smoke with --quick)")


def run(args: argparse.Namespace) -> int:
    from nnunet_ataxia.demo.main_job import run_demo

    run_demo(args.out, quick=args.quick, num_processes=args.num_processes, seed=args.seed, trainer=args.trainer)
    return 0
