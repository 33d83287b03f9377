"""Accuracy of a cerebellum/brainstem model on held-out generated subjects, in native space, through `segment`.

The subjects come from seeds that training never uses (``HELD_OUT_SEED_OFFSET + i``): random anatomy, atrophy,
contrast, resolution, skull, head size, pose, orientation and voxel size, as in training (see
``nnunet_ataxia.synthesis.synthetic_subjects.make_native_subject``). Each native T1 goes through the whole
``nnunet-ataxia segment`` pipeline (N4, MNI registration, prediction with segment's default left-right test-time
mirroring unless ``--disable-tta``, mapping back); the native masks are compared with the native ground truth: Dice
per structure and the volume error.

Targets (issue 11): whole-cerebellum Dice >= 0.95, brainstem Dice >= 0.90, median absolute volume error <= 3 %.

Run:  python benchmarks/bench_pretrained_heldout.py --n 20 [--model-folder DIR] [--out heldout.csv] [--disable-tta]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

STRUCTURES = {"cerebellum": 1, "brainstem": 2}


def write_subjects(folder: Path, n: int, offset: int) -> list[dict]:
    from nnunet_ataxia.synthesis.synthetic_subjects import make_native_subject

    (folder / "t1").mkdir(parents=True, exist_ok=True)
    (folder / "truth").mkdir(exist_ok=True)
    rows = []
    for i in range(n):
        seed = offset + i
        case = f"heldout_{seed}"
        t1, truth, params = make_native_subject(seed)
        sitk.WriteImage(t1, str(folder / "t1" / f"{case}.nii.gz"), useCompression=True)
        sitk.WriteImage(truth, str(folder / "truth" / f"{case}.nii.gz"), useCompression=True)
        rows.append({"case": case, "seed": seed, "group": params.group, "skull": params.skull,
                     "contrast": params.appearance["mode"], "orientation": params.appearance["orientation"],
                     "thick_slices": "thick_slices" in params.appearance})
    return rows


def score(folder: Path, seg_dir: Path, subjects: list[dict]) -> pd.DataFrame:
    from nnunet_ataxia.evaluation.metrics import dice

    rows = []
    for subject in subjects:
        case = subject["case"]
        truth_img = sitk.ReadImage(str(folder / "truth" / f"{case}.nii.gz"))
        truth = sitk.GetArrayFromImage(truth_img)
        voxel = float(np.prod(truth_img.GetSpacing()))
        seg_path = seg_dir / case / f"{case}_seg.nii.gz"
        row = dict(subject)
        if not seg_path.is_file():
            row["status"] = "failed"
            rows.append(row)
            continue
        pred = sitk.GetArrayFromImage(sitk.ReadImage(str(seg_path)))
        row["status"] = "ok"
        for name, value in STRUCTURES.items():
            v_true, v_pred = float((truth == value).sum()) * voxel, float((pred == value).sum()) * voxel
            row[f"{name}_dice"] = dice(truth == value, pred == value)
            row[f"{name}_true_cm3"] = v_true / 1000.0
            row[f"{name}_pred_cm3"] = v_pred / 1000.0
            row[f"{name}_volume_error_pct"] = 100.0 * (v_pred - v_true) / v_true
        rows.append(row)
    return pd.DataFrame(rows)


def main() -> None:
    from nnunet_ataxia.dataset_conversion.Dataset510_SynthCerebellumBrainstem import HELD_OUT_SEED_OFFSET
    from nnunet_ataxia.inference.segment import segment_images

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20, help="held-out subjects (default 20)")
    parser.add_argument("--offset", type=int, default=HELD_OUT_SEED_OFFSET, help="first seed")
    parser.add_argument("--model-folder", default=None, help="nnU-Net model folder (default: the pretrained model)")
    parser.add_argument("--work", default=None, help="keep the subjects and segmentations here (default: temp)")
    parser.add_argument("-np", "--num-processes", type=int, default=1)
    parser.add_argument("--out", default=None, help="write the per-subject table (CSV) here")
    parser.add_argument("--disable-tta", action="store_true",
                        help="no test-time mirroring (segment --disable_tta) instead of segment's default")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        t0 = time.time()
        subjects = write_subjects(work, args.n, args.offset)
        t1 = time.time()
        seg_dir = work / ("segment_no_tta" if args.disable_tta else "segment")
        segment_images(work / "t1", seg_dir, model_folder=args.model_folder, num_processes=args.num_processes,
                       mirror=not args.disable_tta)
        t2 = time.time()
        table = score(work, seg_dir, subjects)
    if args.out:
        table.to_csv(args.out, index=False)
    ok = table[table.status == "ok"]
    columns = ["case", "group", "contrast", "orientation", "skull", "thick_slices", "cerebellum_dice",
               "brainstem_dice", "cerebellum_true_cm3", "cerebellum_volume_error_pct", "brainstem_volume_error_pct"]
    print(ok[columns].round(3).to_string(index=False))
    true_volumes = ok["cerebellum_true_cm3"]
    print(f"\n{len(ok)}/{len(table)} subjects segmented; generation {t1 - t0:.0f} s, segment {t2 - t1:.0f} s "
          f"({(t2 - t1) / max(1, len(table)):.1f} s per subject)")
    print(f"ground-truth cerebellum volume: {true_volumes.min():.0f}-{true_volumes.max():.0f} cm³ "
          f"(median {true_volumes.median():.0f}; {100 * (true_volumes.min() / true_volumes.median() - 1):+.0f} % to "
          f"{100 * (true_volumes.max() / true_volumes.median() - 1):+.0f} %)")
    summary = pd.DataFrame({
        "structure": list(STRUCTURES),
        "mean Dice": [ok[f"{s}_dice"].mean() for s in STRUCTURES],
        "min Dice": [ok[f"{s}_dice"].min() for s in STRUCTURES],
        "median |volume error| %": [ok[f"{s}_volume_error_pct"].abs().median() for s in STRUCTURES],
        "target": ["Dice >= 0.95, |err| <= 3 %", "Dice >= 0.90"],
    })
    print(summary.round(3).to_string(index=False))
    by_contrast = ok.groupby("contrast").agg(
        subjects=("case", "size"), **{f"{s} mean Dice": (f"{s}_dice", "mean") for s in STRUCTURES},
        **{f"{s} min Dice": (f"{s}_dice", "min") for s in STRUCTURES},
        **{f"{s} median |volume error| %": (f"{s}_volume_error_pct", lambda v: v.abs().median()) for s in STRUCTURES})
    print("\nby contrast (T1: T1-like tissue order; random: SynthSeg's fully random tissue contrast)")
    print(by_contrast.round(3).T.to_string())


if __name__ == "__main__":
    main()
