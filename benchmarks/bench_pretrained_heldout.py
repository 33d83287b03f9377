"""Accuracy of a cerebellum/brainstem model on held-out generated subjects, in native space, through `segment`.

Two kinds of held-out anatomy:

* ``--anatomy template`` (default): the one template anatomy of the model v1's training data, with seeds that
  training never uses (``HELD_OUT_SEED_OFFSET + i``): random deformation, atrophy, contrast, resolution, skull,
  head size, pose, orientation and voxel size (``synthetic_subjects.make_native_subject``).
* ``--anatomy label-maps --label-maps DIR``: real anatomy that no model has seen: subjects rendered from the five
  held-out label maps (``label_map_subjects.HELD_OUT_MAPS``), cycling over the maps, the atrophy levels (none, mild,
  moderate, strong), skull on/off, T1-like and random contrast (every fourth subject) and 1 mm or thick-slice
  acquisitions (every third subject), each with a random pose, orientation and voxel size. With ``--cortex-rim``
  the same subjects with the outer voxel layers of the cortex darker (partial volume with CSF, as in a real 1 mm
  scan; every other draw unchanged); with ``--cortex-folia`` the cerebellar cortex mottled by thin sulci drawn at
  0.5 mm (also every other draw unchanged).

Each native T1 goes through the whole ``nnunet-ataxia segment`` pipeline (N4, MNI registration, prediction with
segment's default left-right test-time mirroring unless ``--disable-tta``, mapping back); the native masks are
compared with the native truth: Dice per structure and the signed volume error. Beside the model, on the same
subjects, the trivial baseline: the MNI atlas's cerebellum and brainstem carried to native space by the subject's own
registration (no network).

Run:  python benchmarks/bench_pretrained_heldout.py --n 20 [--model-folder DIR] [--out heldout.csv] [--disable-tta]
      python benchmarks/bench_pretrained_heldout.py --anatomy label-maps --label-maps DIR --n 40 [--model-folder DIR]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

STRUCTURES = {"cerebellum": 1, "brainstem": 2}
#: a subject counts as well segmented (a QC flag on it is a false alarm) from this cerebellum Dice and volume error
GOOD_DICE = 0.9
GOOD_VOLUME_ERROR_PCT = 10.0


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


def write_label_map_subjects(folder: Path, label_maps: str, n: int, offset: int, cortex_rim: bool = False,
                             cortex_folia: bool = False) -> list[dict]:
    """The real-anatomy held-out subjects (see the module docstring for the design); ``cortex_rim``: the outer voxel
    layers of the cortex blended towards CSF, as in the training data of ``train-pretrained --cortex-rim`` (every
    other draw is the same as without); ``cortex_folia``: thin sulci in the cerebellar cortex, as with
    ``train-pretrained --cortex-folia``."""
    from nnunet_ataxia.synthesis.label_map_subjects import (
        ATROPHY_LEVELS,
        list_label_maps,
        make_native_label_map_subject,
    )

    _, held_out = list_label_maps(label_maps)
    levels = list(ATROPHY_LEVELS)
    (folder / "t1").mkdir(parents=True, exist_ok=True)
    (folder / "truth").mkdir(exist_ok=True)
    rows = []
    for i in range(n):
        seed = offset + i
        case = f"realanat_{seed}"
        path = held_out[i % len(held_out)]
        t1, truth, subject = make_native_label_map_subject(
            path, seed, atrophy=levels[(i // len(held_out)) % len(levels)], skull=(i // 2) % 2 == 0,
            random_contrast_probability=1.0 if i % 4 == 3 else 0.0, thick_slice_probability=1.0 if i % 3 == 2 else 0.0,
            cortex_rim=cortex_rim, cortex_folia=cortex_folia)
        sitk.WriteImage(t1, str(folder / "t1" / f"{case}.nii.gz"), useCompression=True)
        sitk.WriteImage(truth, str(folder / "truth" / f"{case}.nii.gz"), useCompression=True)
        rows.append({"case": case, "seed": seed, "label_map": subject.label_map, "group": subject.atrophy,
                     "cerebellum_loss": round(subject.cerebellum_loss, 3), "skull": subject.skull,
                     "contrast": subject.appearance["mode"], "orientation": subject.appearance["orientation"],
                     "thick_slices": "thick_slices" in subject.appearance["acquisition"]})
    return rows


def atlas_baseline(case_dir: Path) -> np.ndarray:
    """The MNI atlas's cerebellum (1) and brainstem (2) carried to native space by the case's own registration."""
    from nnunet_ataxia.preprocessing.mri_pipeline import crop_to_box
    from nnunet_ataxia.preprocessing.native_space import map_to_native
    from nnunet_ataxia.synthesis.template_subjects import cerebellum_brainstem_labels_mni

    atlas = crop_to_box(cerebellum_brainstem_labels_mni())
    return sitk.GetArrayFromImage(map_to_native(atlas, case_dir / "transform", interpolation="linear"))


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
        atlas = atlas_baseline(seg_dir / case)
        record = json.loads((seg_dir / case / "segment.json").read_text())
        row["status"] = "ok"
        row["qc"] = record.get("qc", "")
        for name, value in record.get("mask_confidence", {}).items():
            row[f"{name}_confidence"] = value
        for name, value in STRUCTURES.items():
            v_true, v_pred = float((truth == value).sum()) * voxel, float((pred == value).sum()) * voxel
            row[f"{name}_dice"] = dice(truth == value, pred == value)
            row[f"{name}_true_cm3"] = v_true / 1000.0
            row[f"{name}_pred_cm3"] = v_pred / 1000.0
            row[f"{name}_volume_error_pct"] = 100.0 * (v_pred - v_true) / v_true
            row[f"{name}_atlas_dice"] = dice(truth == value, atlas == value)
            row[f"{name}_atlas_volume_error_pct"] = 100.0 * (float((atlas == value).sum()) * voxel - v_true) / v_true
        rows.append(row)
    return pd.DataFrame(rows)


def main() -> None:
    from nnunet_ataxia.dataset_conversion.Dataset510_SynthCerebellumBrainstem import HELD_OUT_SEED_OFFSET
    from nnunet_ataxia.inference.segment import segment_images

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--anatomy", choices=("template", "label-maps"), default="template",
                        help="held-out anatomy: the template (model v1's) or the held-out real label maps")
    parser.add_argument("--label-maps", default=None, help="with --anatomy label-maps: the label maps' folder")
    parser.add_argument("--n", type=int, default=None, help="held-out subjects (default 20; 40 for label-maps)")
    parser.add_argument("--offset", type=int, default=HELD_OUT_SEED_OFFSET, help="first seed")
    parser.add_argument("--model-folder", default=None, help="nnU-Net model folder (default: the pretrained model)")
    parser.add_argument("--checkpoint", default="checkpoint_final.pth",
                        help="checkpoint of --model-folder (e.g. checkpoint_latest.pth while it trains)")
    parser.add_argument("--work", default=None, help="keep the subjects and segmentations here (default: temp)")
    parser.add_argument("-np", "--num-processes", type=int, default=1)
    parser.add_argument("--out", default=None, help="write the per-subject table (CSV) here")
    parser.add_argument("--disable-tta", action="store_true",
                        help="no test-time mirroring (segment --disable_tta) instead of segment's default")
    parser.add_argument("--cortex-rim", action="store_true",
                        help="with --anatomy label-maps: the cortex's outer voxel layers darker (partial volume)")
    parser.add_argument("--cortex-folia", action="store_true",
                        help="with --anatomy label-maps: the cerebellar cortex mottled by thin sulci (drawn at 0.5 mm)")
    parser.add_argument("--segment-name", default=None, help="subfolder of --work for the segmentations")
    args = parser.parse_args()
    if args.anatomy == "label-maps" and not args.label_maps:
        parser.error("--anatomy label-maps needs --label-maps DIR")
    n = args.n or (40 if args.anatomy == "label-maps" else 20)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        t0 = time.time()
        listing = work / "subjects.csv"
        if listing.is_file():   # the same --work: re-use the generated subjects
            subjects = pd.read_csv(listing).to_dict("records")
        else:
            subjects = (write_label_map_subjects(work, args.label_maps, n, args.offset, args.cortex_rim,
                                                 args.cortex_folia)
                        if args.anatomy == "label-maps" else write_subjects(work, n, args.offset))
            pd.DataFrame(subjects).to_csv(listing, index=False)
        t1 = time.time()
        seg_dir = work / (args.segment_name or ("segment_no_tta" if args.disable_tta else "segment"))
        segment_images(work / "t1", seg_dir, model_folder=args.model_folder, num_processes=args.num_processes,
                       mirror=not args.disable_tta, checkpoint=args.checkpoint)
        t2 = time.time()
        table = score(work, seg_dir, subjects)
    if args.out:
        table.to_csv(args.out, index=False)
    report(table, t1 - t0, t2 - t1)


def _summary(frame: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for s in STRUCTURES:
        for method, prefix in (("model", s), ("atlas baseline", f"{s}_atlas")):
            err = frame[f"{prefix}_volume_error_pct"]
            rows.append({"structure": s, "method": method, "subjects": len(frame),
                         "mean Dice": frame[f"{prefix}_dice"].mean(), "min Dice": frame[f"{prefix}_dice"].min(),
                         "mean signed vol. err. %": err.mean(), "median |vol. err.| %": err.abs().median(),
                         "max |vol. err.| %": err.abs().max()})
    return pd.DataFrame(rows)


def report(table: pd.DataFrame, generation_s: float, segment_s: float) -> None:
    """Print the per-subject table, the summary (model and atlas baseline), and the splits by contrast and atrophy."""
    ok = table[table.status == "ok"]
    columns = [c for c in ["case", "label_map", "group", "contrast", "orientation", "skull", "thick_slices",
                           "cerebellum_dice", "brainstem_dice", "cerebellum_true_cm3", "cerebellum_volume_error_pct",
                           "brainstem_volume_error_pct", "cerebellum_atlas_dice"] if c in ok]
    print(ok[columns].round(3).to_string(index=False))
    print(f"\n{len(ok)}/{len(table)} subjects segmented; generation {generation_s:.0f} s, segment {segment_s:.0f} s "
          f"({segment_s / max(1, len(table)):.1f} s per subject)")
    print("\nsummary (volume error = (predicted - true) / true; the atlas baseline is the MNI atlas's labels carried "
          "to native space by the subject's registration)")
    print(_summary(ok).round(3).to_string(index=False))
    if "qc" in ok and (ok["qc"] != "").all():
        good = (ok["cerebellum_dice"] >= GOOD_DICE) & (ok["cerebellum_volume_error_pct"].abs() <= GOOD_VOLUME_ERROR_PCT)
        flagged = ok["qc"] != "ok"
        print(f"\nQC flags: {int(flagged.sum())} of {len(ok)} subjects flagged; false alarms (flagged although "
              f"cerebellum Dice >= {GOOD_DICE} and |volume error| <= {GOOD_VOLUME_ERROR_PCT} %): "
              f"{int((flagged & good).sum())} of {int(good.sum())} good subjects; missed (not flagged, not good): "
              f"{int((~flagged & ~good).sum())} of {int((~good).sum())}")
        for reason in sorted({r for q in ok["qc"] if q != "ok" for r in q.split("; ")}):
            print(f"  {reason}")
        if "cerebellum_confidence" in ok:
            print("mean maximum probability inside the cerebellum mask: good subjects "
                  f"{ok.loc[good, 'cerebellum_confidence'].min():.3f}-{ok.loc[good, 'cerebellum_confidence'].max():.3f}"
                  + (f", the others {ok.loc[~good, 'cerebellum_confidence'].min():.3f}-"
                     f"{ok.loc[~good, 'cerebellum_confidence'].max():.3f}" if (~good).any() else ""))
    for by, what in (("contrast", "contrast (T1: T1-like tissue order; random: fully random tissue contrast)"),
                     ("group", "atrophy level / group")):
        print(f"\nby {what}")
        parts = [_summary(part).assign(**{by: key}) for key, part in ok.groupby(by)]
        split = pd.concat(parts)
        print(split[split.method == "model"].drop(columns="method").round(3).to_string(index=False))


if __name__ == "__main__":
    main()
