"""Toy WMH cases for the nnU-Net runs of the WMH tests: thick axial slices (3 x 24 x 24), T1, FLAIR, 8 location
channels and labels {0 background, 1 WMH, 2 other pathology}; lesions lie next to two fake ventricles."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

SHAPE = (3, 24, 24)          # (z, y, x): thick axial slices, 2d configuration works on y, x
SPACING_XYZ = (1.0, 1.0, 5.0)


def write_image(arr: np.ndarray, path: Path) -> None:
    """Write ``arr`` (float32, or uint8 for integer labels) with the toy spacing."""
    img = sitk.GetImageFromArray(arr.astype(np.float32 if arr.dtype.kind == "f" else np.uint8))
    img.SetSpacing(SPACING_XYZ)
    sitk.WriteImage(img, str(path))


def normalize_in_mask(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-case [0, 1] inside the brain mask, exactly 0 outside (WMH location-channel convention)."""
    inside = values[mask]
    out = np.zeros(values.shape, np.float32)
    out[mask] = (inside - inside.min()) / max(float(inside.max() - inside.min()), 1e-6)
    return out


def make_toy_wmh_case(rng: np.random.Generator) -> tuple[list[np.ndarray], np.ndarray]:
    """T1, FLAIR, 8 location channels and labels {0, 1, 2} of one toy case: lesions next to fake ventricles."""
    z, y, x = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in SHAPE], indexing="ij")
    cy, cx = (SHAPE[1] - 1) / 2 + rng.uniform(-1, 1), (SHAPE[2] - 1) / 2 + rng.uniform(-1, 1)
    brain = ((y - cy) / 10.5) ** 2 + ((x - cx) / 9.5) ** 2 <= 1
    left_v = ((y - cy) / 3) ** 2 + ((x - (cx - 3)) / 1.5) ** 2 <= 1
    right_v = ((y - cy) / 3) ** 2 + ((x - (cx + 3)) / 1.5) ** 2 <= 1
    labels = np.zeros(SHAPE, np.uint8)
    for side in (-1, 1):
        ly, lx = cy + rng.uniform(-4, -3), cx + side * rng.uniform(4, 5.5)
        labels[((y - ly) ** 2 + (x - lx) ** 2 <= rng.uniform(1.5, 3.5)) & brain] = 1
    labels[((y - (cy + 6)) ** 2 + (x - cx) ** 2 <= 1.5) & brain & (z == 1)] = 2   # "other pathology"
    flair = np.where(brain, 0.5, 0.0) - 0.35 * (left_v | right_v) + 0.45 * (labels == 1) + 0.2 * (labels == 2)
    t1 = np.where(brain, 0.7, 0.0) - 0.5 * (left_v | right_v) - 0.2 * (labels == 1)
    flair = (flair + rng.normal(0, 0.03, SHAPE) * brain).astype(np.float32)
    t1 = (t1 + rng.normal(0, 0.03, SHAPE) * brain).astype(np.float32)
    ventricle_dist = [np.sqrt((y - cy) ** 2 + (x - (cx + s * 3)) ** 2) for s in (-1, 1)]
    cortex_dist = 1 - np.sqrt(((y - cy) / 10.5) ** 2 + ((x - cx) / 9.5) ** 2)
    features = [x, y, z, *ventricle_dist, cortex_dist, np.abs(x - cx), np.exp(-np.minimum(*ventricle_dist) / 4)]
    location = [normalize_in_mask(f, brain) for f in features]
    return [t1, flair, *location], labels
