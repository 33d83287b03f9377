"""How much CSF each label map carves into its cerebellum, beside the model's volume error on that map.

For every map of a SynthSeg-style folder: the cerebellum (labels 7, 8, 46, 47) and the share that a morphological
closing (ball of radius 3 voxels) adds to it, i.e. the fissures and sulci inside the cerebellar outline that the map
labels as CSF or other tissue. A map that labels many fissures as CSF has a "tighter" cerebellum than one that labels
them cortex. With ``--heldout`` (a CSV of ``bench_pretrained_heldout.py --anatomy label-maps``), each held-out map's
mean signed cerebellum volume error of the model (T1-like subjects) is printed beside it.

    python benchmarks/label_map_fissures.py --label-maps ../shared/label_maps/synthseg \
        --heldout release/heldout_real_anatomy_v2_epoch7.csv
"""
from __future__ import annotations

import argparse
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from nnunet_ataxia.io.constants import CEREBELLUM_LABELS_ASEG


def closing_share(label_map: np.ndarray, radius: int = 3) -> tuple[int, float]:
    """(cerebellum voxels, share of them that the closing adds)."""
    cerebellum = np.isin(label_map, CEREBELLUM_LABELS_ASEG)
    box = ndi.find_objects(cerebellum.astype(np.uint8))[0]
    box = tuple(slice(max(s.start - radius - 2, 0), s.stop + radius + 2) for s in box)
    mask = np.pad(cerebellum[box], radius + 1)
    ball = ndi.iterate_structure(ndi.generate_binary_structure(3, 1), radius)
    closed = ndi.binary_closing(mask, ball)
    n = int(mask.sum())
    return n, float((closed & ~mask).sum()) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label-maps", required=True, type=Path)
    parser.add_argument("--heldout", type=Path, help="per-subject CSV of bench_pretrained_heldout.py")
    args = parser.parse_args()
    errors = {}
    if args.heldout is not None:
        d = pd.read_csv(args.heldout)
        d = d[(d["status"] == "ok") & (d["contrast"] == "T1")]
        errors = d.groupby("label_map")["cerebellum_volume_error_pct"].mean().to_dict()
    rows = []
    for path in sorted(args.label_maps.glob("training_seg_*.nii*")):
        image = nib.load(path)
        voxel_cm3 = float(np.prod(image.header.get_zooms()[:3])) / 1000
        n, share = closing_share(np.asarray(image.dataobj))
        name = path.name.split(".")[0]
        rows.append({"map": name, "cerebellum_cm3": round(n * voxel_cm3, 1), "closing_adds_pct": round(100 * share, 1),
                     "model_signed_error_pct": round(errors[name], 1) if name in errors else None})
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    held = table.dropna(subset=["model_signed_error_pct"])
    if len(held) > 2:
        rho = held["closing_adds_pct"].corr(held["model_signed_error_pct"], method="spearman")
        print(f"\nheld-out maps: Spearman correlation of closing share and signed error {rho:.2f} (n = {len(held)})")
    print(f"closing share over all maps: {table['closing_adds_pct'].min()}-{table['closing_adds_pct'].max()} % "
          f"(median {table['closing_adds_pct'].median()} %)")


if __name__ == "__main__":
    main()
