"""The MNI registration from each start (centre of mass, top of the head) and with `segment`'s retry, side by side.

Subjects are rendered from the *training* label maps (``label_map_subjects.list_label_maps``; seeds 900000 + i, which
no training run uses; the held-out maps are not touched): the generator's default mix of T1-like and random
contrasts, skull on or off, poses, orientations and thick slices. Each subject is bias-corrected once (N4 as
`segment` does it), then registered as `segment` does (2 mm copy, 1 mm template) from each start; for each result:
the registration check's similarity (refused below 0.04), the Dice of the MNI atlas's cerebellum carried to native
space against the subject's true cerebellum (how well the registration places it; about 0.85 when it works) and the
time. The retry column is what `segment` keeps: the centre-of-mass result, or the better of the two when that one
scores below the retry threshold.

    python benchmarks/bench_registration_starts.py --label-maps DIR --n 30 -np 2 [--out starts.csv]
"""
from __future__ import annotations

import argparse
import time
from multiprocessing import Pool

import numpy as np
import pandas as pd

SEED_OFFSET = 900000
STARTS = ("moments", "head-top")


def _subject(args: tuple[str, int]) -> dict:
    import SimpleITK as sitk

    from nnunet_ataxia.evaluation.metrics import dice
    from nnunet_ataxia.inference.subject import SubjectOptions
    from nnunet_ataxia.preprocessing.mri_pipeline import (
        bias_correct,
        crop_to_box,
        preprocess_registered,
        register_to_mni,
    )
    from nnunet_ataxia.preprocessing.registration_check import registration_similarity
    from nnunet_ataxia.synthesis.label_map_subjects import list_label_maps, make_native_label_map_subject
    from nnunet_ataxia.synthesis.template_subjects import cerebellum_brainstem_labels_mni

    label_maps, i = args
    training, _ = list_label_maps(label_maps)
    seed = SEED_OFFSET + i
    t1, truth, subject = make_native_label_map_subject(training[i % len(training)], seed)
    options = SubjectOptions()
    corrected = bias_correct(t1, shrink_factor=options.n4_shrink_factor)
    atlas = crop_to_box(cerebellum_brainstem_labels_mni())
    truth_cerebellum = sitk.GetArrayViewFromImage(truth) == 1
    row = {"seed": seed, "label_map": subject.label_map, "contrast": subject.appearance["mode"],
           "skull": subject.skull, "orientation": subject.appearance["orientation"]}
    for start in STARTS:
        t = time.perf_counter()
        tfm = register_to_mni(corrected, seed=options.seed, moving_spacing_mm=options.moving_spacing_mm, start=start)
        row[f"{start}_s"] = time.perf_counter() - t
        row[f"{start}_similarity"] = registration_similarity(
            preprocess_registered(corrected, tfm))
        native = sitk.Resample(atlas, truth, tfm.GetInverse(), sitk.sitkNearestNeighbor, 0)
        row[f"{start}_atlas_dice"] = dice(truth_cerebellum, sitk.GetArrayViewFromImage(native) == 1)
    return row


def main() -> None:
    from nnunet_ataxia.preprocessing.registration_check import (
        MIN_CONFIDENT_SIMILARITY,
        MIN_REGISTRATION_SIMILARITY,
    )

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--label-maps", required=True, help="the label maps' folder (its training maps are used)")
    parser.add_argument("--n", type=int, default=30, help="subjects (seeds 900000 ... 900000 + n - 1)")
    parser.add_argument("-np", "--num-processes", type=int, default=1)
    parser.add_argument("--out", default=None, help="write the per-subject table (CSV) here")
    args = parser.parse_args()

    t0 = time.time()
    with Pool(args.num_processes) as pool:
        table = pd.DataFrame(pool.map(_subject, [(args.label_maps, i) for i in range(args.n)], chunksize=1))
    retried = table["moments_similarity"] < MIN_CONFIDENT_SIMILARITY
    head_top_better = table["head-top_similarity"] > table["moments_similarity"]
    kept = np.where(retried & head_top_better, "head-top", "moments")
    table["retry_kept"] = kept
    for what in ("similarity", "atlas_dice"):
        table[f"retry_{what}"] = np.where(kept == "head-top", table[f"head-top_{what}"], table[f"moments_{what}"])
    table["retry_s"] = table["moments_s"] + np.where(retried, table["head-top_s"], 0.0)
    if args.out:
        table.to_csv(args.out, index=False)
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.precision", 3):
        print(table.drop(columns=["label_map"]).to_string(index=False))
    print(f"\n{len(table)} subjects in {time.time() - t0:.0f} s; registration check refuses below "
          f"{MIN_REGISTRATION_SIMILARITY}, retry below {MIN_CONFIDENT_SIMILARITY}")
    for name in ("moments", "head-top", "retry"):
        sim, dc, sec = table[f"{name}_similarity"], table[f"{name}_atlas_dice"], table[f"{name}_s"]
        t1_like = table["contrast"] == "T1"
        print(f"{name:9s} refused {int((sim < MIN_REGISTRATION_SIMILARITY).sum()):2d} "
              f"(T1-like {int((sim[t1_like] < MIN_REGISTRATION_SIMILARITY).sum())} of {int(t1_like.sum())}); "
              f"atlas cerebellum Dice mean {dc.mean():.3f}, median {dc.median():.3f}; "
              f"registration {sec.mean():.1f} s per subject (max {sec.max():.1f} s)")
    print(f"retried {int(retried.sum())}, head-top kept for {int((kept == 'head-top').sum())}")


if __name__ == "__main__":
    main()
