"""``nnunet-ataxia wmh-demo``: SS vs SS+Loc (three training seeds, alpha tuned) with the paper's recipe on generated
WMH data whose location rule a 32-mm window cannot see, ending in one report."""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="nnunet_ataxia_wmh_demo",
                        help="output folder (default ./nnunet_ataxia_wmh_demo): new, empty, or an earlier wmh-demo "
                             "folder, whose finished steps are skipped")
    parser.add_argument("--quick", action="store_true",
                        help="tiny, fast run (6 + 3 cases, one training seed, the _smoke trainers); for tests")
    parser.add_argument("-np", "--num-processes", type=int, default=2, help="parallel processes (default 2)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the generated cases and the bootstrap; the networks are trained with seeds "
                             "SEED, SEED+1, SEED+2 (same seed: same numbers on a CPU)")
    parser.add_argument("--n-bootstrap", type=int, default=100,
                        help="bootstrap resamples of the test patients (default 100, as in the paper)")
    parser.add_argument("--overwrite", action="store_true",
                        help="run in an existing non-empty folder that is not a wmh-demo folder (nothing in it is "
                             "deleted; the demo's own sub-folders are added)")


def run(args: argparse.Namespace) -> int:
    from nnunet_ataxia.demo.wmh_demo import run_wmh_demo

    run_wmh_demo(args.out, quick=args.quick, num_processes=args.num_processes, seed=args.seed,
                 n_bootstrap=args.n_bootstrap, overwrite=args.overwrite)
    return 0
