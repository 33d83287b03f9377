"""Where a model's native masks lose Dice on the held-out set, beside what segment's resampling alone would lose.

For every subject that ``bench_pretrained_heldout.py`` segmented (``--work W --segment-name S``):

- **round trip** (no network): the true label map carried onto the subject's 1 mm MNI crop with the subject's own
  transform (each class linearly interpolated) and back to the native grid exactly as ``segment`` maps the
  network's probabilities (:func:`nnunet_ataxia.inference.subject.probabilities_to_native`). Its Dice is the
  ceiling that a perfect network on the crop grid would reach through the same registration and resampling.
- **the model**: Dice of ``segment``'s native masks, and the cerebellum's errors in percent of the true cerebellum:
  false positives in the brainstem, in the fissures (inside a closing of the true cerebellum, ball of radius 3
  voxels), beyond the outline; false negatives labelled brainstem, within 2 voxels of the true surface, deeper.

Printed as means by contrast and slice thickness; ``--csv`` writes the per-subject table.

    python benchmarks/segment_error_breakdown.py --work /work/runs/heldout_real --segment-name segment_v2_final
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk
from scipy import ndimage as ndi

from nnunet_ataxia.evaluation.metrics import dice
from nnunet_ataxia.inference.subject import probabilities_to_native
from nnunet_ataxia.io.constants import CEREBELLUM_BRAINSTEM_LABELS

STRUCTURES = {n: v for n, v in CEREBELLUM_BRAINSTEM_LABELS.items() if v != 0}


def round_trip(truth: sitk.Image, crop: sitk.Image, mni_to_native: sitk.Transform, n_classes: int) -> np.ndarray:
    """The true label map carried onto the crop grid (linear per class) and back as ``segment`` maps probabilities."""
    labels = sitk.GetArrayViewFromImage(truth)
    probabilities = []
    for c in range(n_classes):
        one_hot = sitk.GetImageFromArray((labels == c).astype(np.float32))
        one_hot.CopyInformation(truth)
        probabilities.append(sitk.GetArrayFromImage(sitk.Resample(one_hot, crop, mni_to_native, sitk.sitkLinear,
                                                                  1.0 if c == 0 else 0.0, sitk.sitkFloat32)))
    return sitk.GetArrayFromImage(probabilities_to_native(np.stack(probabilities), crop, mni_to_native, truth))


def cerebellum_errors(truth: np.ndarray, pred: np.ndarray, radius: int = 3) -> dict[str, float]:
    """The cerebellum's false positives and negatives by where they lie, in percent of the true cerebellum."""
    t, p = truth == STRUCTURES["cerebellum"], pred == STRUCTURES["cerebellum"]
    brainstem = truth == STRUCTURES["brainstem"]
    ball = ndi.iterate_structure(ndi.generate_binary_structure(3, 1), radius)
    hull = ndi.binary_closing(np.pad(t, radius + 1), ball)[(slice(radius + 1, -radius - 1),) * 3]
    surface = t & ~ndi.binary_erosion(t, iterations=2)
    fp, fn = p & ~t, t & ~p
    n = max(int(t.sum()), 1) / 100.0
    return {"fp_brainstem_pct": (fp & brainstem).sum() / n, "fp_fissures_pct": (fp & hull & ~brainstem).sum() / n,
            "fp_outside_pct": (fp & ~hull & ~brainstem).sum() / n,
            "fn_as_brainstem_pct": (fn & (pred == STRUCTURES["brainstem"])).sum() / n,
            "fn_surface_pct": (fn & surface & (pred != STRUCTURES["brainstem"])).sum() / n,
            "fn_deep_pct": (fn & ~surface & (pred != STRUCTURES["brainstem"])).sum() / n}


def subject_row(work: Path, segment_name: str, case: str) -> dict | None:
    """One subject's figures, or None when ``segment`` did not finish it."""
    case_dir = work / segment_name / case
    if not (case_dir / "segment.json").exists():
        return None
    truth_image = sitk.ReadImage(str(work / "truth" / f"{case}.nii.gz"))
    crop = sitk.ReadImage(str(case_dir / "mni" / f"{case}_seg_mni.nii.gz"))
    tfm = sitk.ReadTransform(str(case_dir / "transform" / "mni_to_native.tfm"))
    truth = sitk.GetArrayFromImage(truth_image)
    pred = sitk.GetArrayFromImage(sitk.ReadImage(str(case_dir / f"{case}_seg.nii.gz")))
    ceiling = round_trip(truth_image, crop, tfm, len(CEREBELLUM_BRAINSTEM_LABELS))
    row: dict = {"case": case}
    for name, value in STRUCTURES.items():
        row[f"{name}_round_trip_dice"] = dice(truth == value, ceiling == value)
        row[f"{name}_dice"] = dice(truth == value, pred == value)
    row.update(cerebellum_errors(truth, pred))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True, type=Path, help="bench_pretrained_heldout.py's --work folder")
    parser.add_argument("--segment-name", required=True, help="the segment output folder inside --work")
    parser.add_argument("--csv", type=Path, help="write the per-subject table here")
    args = parser.parse_args()
    subjects = pd.read_csv(args.work / "subjects.csv")
    rows = [r for r in (subject_row(args.work, args.segment_name, c) for c in subjects["case"]) if r is not None]
    if not rows:
        raise SystemExit(f"{args.work / args.segment_name}: no finished subject (segment.json) for subjects.csv")
    table = subjects.merge(pd.DataFrame(rows), on="case")
    if args.csv:
        table.to_csv(args.csv, index=False)
    table["acquisition"] = np.where(table["contrast"] == "T1", "T1-like", "random") + np.where(
        table["thick_slices"], ", thick slices", ", 1 mm")
    columns = [c for c in table.columns if c.endswith("_dice") or c.endswith("_pct")]
    groups = table.groupby("acquisition")[columns].mean()
    groups.loc[f"all ({len(table)})"] = table[columns].mean()
    groups.insert(0, "n", table.groupby("acquisition").size().reindex(groups.index).fillna(len(table)).astype(int))
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(groups.round(3).T.to_string())


if __name__ == "__main__":
    main()
