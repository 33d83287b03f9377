"""A constructed Hammers n30r95 atlas in the real download layout (aNN.nii.gz + aNN-seg.nii.gz), with boxes of known
voxel counts as regions (used by the Hammers and the Data2 converter tests)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

SHAPE = (14, 16, 18)  # z, y, x
SPACING = (1.1, 1.0, 1.2)
# region -> (box slices) with known voxel counts
BOXES = {17: (slice(1, 4), slice(2, 6), slice(3, 8)),      # 3*4*5 = 60 voxels
         18: (slice(6, 8), slice(2, 5), slice(3, 7)),      # 2*3*4 = 24
         19: (slice(10, 12), slice(10, 12), slice(3, 6)),  # 2*2*3 = 12
         5: (slice(0, 1), slice(0, 1), slice(0, 9)),       # another region: must become background
         46: (slice(12, 13), slice(0, 2), slice(10, 12))}  # a ventricle: background too
COUNTS = {17: 60, 18: 24, 19: 12}


def atlas_image(arr: np.ndarray, spacing=SPACING) -> sitk.Image:
    """``arr`` as an image with the atlas's spacing and origin."""
    im = sitk.GetImageFromArray(arr)
    im.SetSpacing(spacing)
    im.SetOrigin((-5.0, 3.0, 7.0))
    return im


def make_atlas(root: Path, n: int = 30, seed: int = 0) -> Path:
    """Write ``n`` subjects (random T1, the same box regions) under ``root``; returns ``root``."""
    rs = np.random.RandomState(seed)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(1, n + 1):
        seg = np.zeros(SHAPE, np.uint8)
        for value, box in BOXES.items():
            seg[box] = value
        t1 = rs.uniform(10, 100, SHAPE).astype(np.float32)
        sitk.WriteImage(atlas_image(t1), str(root / f"a{i:02d}.nii.gz"))
        sitk.WriteImage(atlas_image(seg), str(root / f"a{i:02d}-seg.nii.gz"))
    return root
