"""``nnunet-ataxia wmh-random-forest``: the paper's conventional baseline (random forest, 50 trees, hand-made
features) on the networks' pixel pool; writes ``<case>.npz`` probabilities for ``wmh-stats``."""
from __future__ import annotations

import argparse

from nnunet_ataxia.io.arguments import at_least, nonnegative_int
from nnunet_ataxia.io.output_folders import add_overwrite_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", "--input", required=True, help="a convert-wmh dataset folder (nnUNet_raw/Dataset504_WMH)")
    parser.add_argument("-o", "--output", required=True,
                        help="output folder: validation/<case>.npz, test/<case>.npz, random_forest.json")
    parser.add_argument("-f", "--fold", type=nonnegative_int, default=None,
                        help="train on this fold's training cases of the dataset's splits_final.json and predict its "
                             "validation cases (default: train on all training cases)")
    parser.add_argument("--trees", type=at_least(1), default=50, help="trees of the forest (default 50, the paper)")
    parser.add_argument("--max-lesion-samples", type=at_least(1), default=None,
                        help="cap on the pool's lesion samples (default: the paper's pool, half of all lesion voxels)")
    parser.add_argument("-np", "--num-processes", type=at_least(1), default=1, help="parallel jobs of the forest")
    add_overwrite_argument(parser)


def run(args: argparse.Namespace) -> int:
    from nnunet_ataxia.evaluation.wmh_random_forest import run_random_forest_baseline

    record = run_random_forest_baseline(args.input, args.output, fold=args.fold, n_trees=args.trees,
                                        max_lesion_samples=args.max_lesion_samples, n_jobs=args.num_processes,
                                        overwrite=args.overwrite)
    print(f"random forest on {record['n_pool_samples']} pool samples of {len(record['training_cases'])} case(s): "
          f"{len(record['validation_cases'])} validation, {len(record['test_cases'])} test prediction(s) -> "
          f"{args.output} (compare: wmh-stats --test rf={args.output}/test --val rf={args.output}/validation ...)")
    return 0
