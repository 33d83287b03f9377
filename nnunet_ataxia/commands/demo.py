"""``nnunet-ataxia demo``: the README's main job on built-in demo data."""
from __future__ import annotations

import argparse

from nnunet_ataxia.io.arguments import nonnegative_int, positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="nnunet_ataxia_demo",
                        help="output folder (default ./nnunet_ataxia_demo): new, empty, or an earlier demo folder, "
                             "whose finished steps are skipped")
    parser.add_argument("--quick", action="store_true", help="tiny, fast run (fewer, coarser subjects; smoke trainer)")
    parser.add_argument("-np", "--num-processes", type=positive_int, default=2, help="parallel processes (default 2)")
    parser.add_argument("--seed", type=nonnegative_int, default=0,
                        help="seed of the demo subjects and of the training (same seed: same numbers on a CPU)")
    parser.add_argument("--trainer", default=None,
                        help="nnU-Net trainer (default M2InceptionTrainer_paperWDA_demo; "
                             "M2InceptionTrainer_paperNDA_smoke with --quick)")
    parser.add_argument("--no-pretrained", action="store_true",
                        help="skip the first step (the pretrained M2 segmenting the test subjects) and its comparison "
                             "with the trained model")
    parser.add_argument("--pretrained-zip", default=None,
                        help="use this exported model zip (train-pretrained's export) as the pretrained M2 instead of "
                             "the one shipped in the package")
    parser.add_argument("--overwrite", action="store_true",
                        help="run in an existing non-empty folder that is not a demo folder (nothing in it is deleted; "
                             "the demo's own sub-folders are replaced)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nnunet_ataxia.demo.main_job import run_demo
    from nnunet_ataxia.io.output_folders import check_output_folder, read_marker, write_marker

    check_output_folder(args.out, "demo", overwrite=args.overwrite, recognize=("demo_data",))
    Path(args.out).mkdir(parents=True, exist_ok=True)
    if read_marker(args.out) is None:
        write_marker(args.out, "demo")  # the demo is resumable: its folder is marked from the start
    run_demo(args.out, quick=args.quick, num_processes=args.num_processes, seed=args.seed, trainer=args.trainer,
             pretrained=not args.no_pretrained, pretrained_zip=args.pretrained_zip)
    return 0
