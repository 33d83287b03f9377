"""Small generated nnU-Net raw datasets for the tests (no download)."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk


def write_toy_cerebellum_dataset(raw_root: Path, dataset_id: int = 990, n_cases: int = 5,
                                 shape_zyx: Sequence[int] = (36, 44, 40), spacing_xyz=(1.0, 1.0, 1.0),
                                 seed: int = 0, name: str = "ToyCerebellum") -> Path:
    """Write ``Dataset<id>_<name>`` with a T1-like image and labels 1 (cerebellum ellipsoid) and 2 (brainstem).

    Each case has a slightly different position/size and noise, so the label is learnable from intensity.
    """
    from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json

    rng = np.random.default_rng(seed)
    folder = Path(raw_root) / f"Dataset{dataset_id:03d}_{name}"
    (folder / "imagesTr").mkdir(parents=True, exist_ok=True)
    (folder / "labelsTr").mkdir(parents=True, exist_ok=True)
    z, y, x = np.meshgrid(*[np.arange(s, dtype=float) for s in shape_zyx], indexing="ij")
    for i in range(n_cases):
        cz, cy, cx = (np.asarray(shape_zyx) / 2 + rng.uniform(-3, 3, 3))
        r = rng.uniform(0.9, 1.1)
        cerebellum = ((z - cz) / (8 * r)) ** 2 + ((y - cy) / (11 * r)) ** 2 + ((x - cx) / (13 * r)) ** 2 <= 1
        brainstem = (((y - cy + 9) / 4) ** 2 + ((x - cx) / 4) ** 2 <= 1) & (z > cz) & ~cerebellum
        label = np.zeros(shape_zyx, np.uint8)
        label[cerebellum] = 1
        label[brainstem] = 2
        image = 100 + 60 * (label == 1) + 120 * (label == 2) + rng.normal(0, 8, shape_zyx)
        for array, path in ((image.astype(np.float32), folder / "imagesTr" / f"toy_{i:03d}_0000.nii.gz"),
                            (label, folder / "labelsTr" / f"toy_{i:03d}.nii.gz")):
            itk = sitk.GetImageFromArray(array)
            itk.SetSpacing(tuple(float(s) for s in spacing_xyz))
            sitk.WriteImage(itk, str(path))
    generate_dataset_json(str(folder), {0: "T1"}, {"background": 0, "cerebellum": 1, "brainstem": 2},
                          n_cases, ".nii.gz", dataset_name=folder.name)
    return folder


def add_undeclared_label(raw_folder: Path, value: int = 7, case_index: int = 1) -> Path:
    """Write label ``value`` (not in dataset.json) into one voxel of the ``case_index``-th label file; its path."""
    bad = sorted((Path(raw_folder) / "labelsTr").glob("*.nii.gz"))[case_index]
    image = sitk.ReadImage(str(bad))
    arr = sitk.GetArrayFromImage(image)
    arr[0, 0, 0] = value
    out = sitk.GetImageFromArray(arr)
    out.CopyInformation(image)
    sitk.WriteImage(out, str(bad))
    return bad
