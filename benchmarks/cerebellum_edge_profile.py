"""Where the cerebellum outline lies against the image: the T1 intensity in voxel shells across the outline.

For each subject of one or more ``nnunet-ataxia segment`` output folders, the mean native T1 intensity, relative to
the cortex (the median of the mask's outer three voxels), in the mask's own outer voxel layer (``in1``) and in the
first three voxel shells outside it (``out1`` .. ``out3``; the brainstem's neighbourhood left out), counted only
within 5 mm of the brain's outer surface (where the outside is CSF, not another brain structure). An outline on the
outer edge of the cortex has a first outer shell about as dark as the partial-volume midpoint between cortex and
CSF; a first shell that is still nearly as bright as the cortex means the outline runs inside the tissue.
``shell1_pct`` is the size of the first outer shell (within the brain, away from the brainstem) in per cent of the
mask: roughly the volume that moving the outline out by one voxel would add.

With ``--truth DIR`` (``<case>.nii.gz`` native label maps, as ``bench_pretrained_heldout.py --work`` keeps them), the
same profile is printed for the true outline, for comparison; with ``--subjects FILE`` (the ``subjects.csv`` that
``bench_pretrained_heldout.py`` writes) only the T1-like subjects are profiled (in a random contrast the cortex can be
darker than CSF, and the ratios mean nothing). Acquisitions thicker than 1.3 mm are skipped (shells are not
comparable there).

Run:  python benchmarks/cerebellum_edge_profile.py SEGMENT_OUT [SEGMENT_OUT ...] [--truth DIR] [--images DIR]
      [--subjects subjects.csv]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from nnunet_ataxia.io.images import read_image

SHELLS = ("in1", "out1", "out2", "out3")
#: the first outer voxel shell's size as a share of the mask (how much volume one voxel of outline position is)
SHELL_SHARE = "shell1_pct"


def brain_region(image: np.ndarray, reference_mask: np.ndarray) -> np.ndarray:
    """The head's brain as one blob: voxels above a quarter of the mask's median intensity, opened, the largest
    component, holes filled."""
    bright = image > 0.25 * float(np.median(image[reference_mask]))
    bright = ndimage.binary_opening(bright, iterations=2)
    labels, n = ndimage.label(bright)
    if n == 0:
        return bright
    largest = np.bincount(labels.ravel())[1:].argmax() + 1
    return ndimage.binary_fill_holes(labels == largest)


def edge_profile(image: np.ndarray, seg: np.ndarray, label: int, brain: np.ndarray, spacing_zyx) -> dict[str, float]:
    """Mean intensity / cortex intensity in the mask's outer layer and the first three shells outside it."""
    mask = seg == label
    if mask.sum() < 100:
        return dict.fromkeys((*SHELLS, SHELL_SHARE), float("nan"))
    other = ndimage.binary_dilation((seg > 0) & ~mask, iterations=2)
    near_surface = ndimage.distance_transform_edt(brain, sampling=spacing_zyx) <= 5.0
    cortex = float(np.median(image[mask & ~ndimage.binary_erosion(mask, iterations=3)]))
    inner = mask & ~ndimage.binary_erosion(mask) & near_surface
    out = {"in1": float(image[inner].mean()) / cortex if inner.any() else float("nan")}
    first_shell = ndimage.binary_dilation(mask) & ~mask & ~other & brain
    out[SHELL_SHARE] = 100.0 * float(first_shell.sum()) / float(mask.sum())
    grown = mask
    for k in (1, 2, 3):
        bigger = ndimage.binary_dilation(grown)
        shell = bigger & ~grown & ~other & near_surface
        out[f"out{k}"] = float(image[shell].mean()) / cortex if shell.any() else float("nan")
        grown = bigger
    return out


def find_input(recorded: str, segment_out: Path, images: Path | None) -> Path:
    """The T1 that ``segment`` read: as recorded (relative to the current folder or to the output folder's parent),
    or its file name in ``images``."""
    for candidate in (Path(recorded), segment_out.parent / recorded,
                      (images / Path(recorded).name) if images else None):
        if candidate is not None and candidate.is_file():
            return candidate
    raise SystemExit(f"{recorded}: the T1 that segment read was not found (give its folder with --images)")


def subject_rows(segment_out: Path, truth_dir: Path | None, label: int, images: Path | None = None,
                 cases: set[str] | None = None) -> list[dict]:
    """One profile row per segmented subject of ``segment_out`` (only ``cases``, when given)."""
    rows = []
    for record_file in sorted(segment_out.glob("*/segment.json")):
        record = json.loads(record_file.read_text())
        if record.get("status") != "ok":
            continue
        case, case_dir = record["case"], record_file.parent
        if cases is not None and case not in cases:
            continue
        t1 = read_image(find_input(record["input"], segment_out, images))
        if max(t1.GetSpacing()) > 1.3:
            continue
        image = sitk.GetArrayFromImage(t1).astype(np.float32)
        seg = sitk.GetArrayFromImage(sitk.ReadImage(str(case_dir / f"{case}_seg.nii.gz")))
        spacing = t1.GetSpacing()[::-1]
        truth = None
        if truth_dir is not None and (truth_dir / f"{case}.nii.gz").is_file():
            truth = sitk.GetArrayFromImage(sitk.ReadImage(str(truth_dir / f"{case}.nii.gz")))
        brain = brain_region(image, (truth if truth is not None else seg) == label)
        row = {"folder": segment_out.name, "case": case,
               **{f"pred_{k}": v for k, v in edge_profile(image, seg, label, brain, spacing).items()}}
        if truth is not None:
            row.update({f"truth_{k}": v for k, v in edge_profile(image, truth, label, brain, spacing).items()})
        rows.append(row)
        print(" ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in row.values()), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("segment_out", nargs="+", type=Path, help="nnunet-ataxia segment output folder(s)")
    parser.add_argument("--truth", type=Path, help="folder of native truth label maps <case>.nii.gz")
    parser.add_argument("--images", type=Path, help="folder of the T1s, when the recorded paths do not resolve")
    parser.add_argument("--label", type=int, default=1, help="label value of the cerebellum (default 1)")
    parser.add_argument("--subjects", type=Path,
                        help="bench_pretrained_heldout.py's subjects.csv: profile only its T1-like subjects")
    args = parser.parse_args()
    import pandas as pd

    cases = None
    if args.subjects is not None:
        listed = pd.read_csv(args.subjects)
        cases = set(listed.loc[listed["contrast"] == "T1", "case"])
    rows = [r for folder in args.segment_out
            for r in subject_rows(folder, args.truth, args.label, args.images, cases)]
    if not rows:
        raise SystemExit("no segmented subject with a voxel size of at most 1.3 mm found"
                         + (" among the T1-like subjects of --subjects" if cases is not None else ""))
    table = pd.DataFrame(rows)
    empty = table[table[[c for c in table.columns if c.endswith(SHELLS)]].isna().any(axis=1)]
    for _, row in empty.iterrows():  # a shell left empty after the restrictions: left out of that shell's mean
        shells = [c for c in table.columns if c.endswith(SHELLS) and np.isnan(row[c])]
        print(f"{row['folder']}/{row['case']}: no voxel in {', '.join(shells)} (left out of those means)")
    print("\nmean intensity / cortex intensity, per shell (in1: the mask's outer layer; out1-3: outside it); "
          "shell1_pct: first outer shell in % of the mask")
    print(table.groupby("folder").agg({c: "mean" for c in table.columns if c not in ("folder", "case")})
          .assign(subjects=table.groupby("folder").size()).round(2).to_string())


if __name__ == "__main__":
    main()
