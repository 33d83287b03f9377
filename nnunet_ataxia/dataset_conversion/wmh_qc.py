"""Quality-control picture of a converted WMH case: the FLAIR and its eight location channels in three planes.

Every channel is reoriented to LPS (``sitk.DICOMOrient``: axis permutations and flips, no resampling), as in
:mod:`nnunet_ataxia.inference.qc`, so the anatomy is upright whatever the scan's orientation: axial and coronal views
in radiological convention (the subject's left on the picture's right, superior up), sagittal with anterior on the
left. The axial and coronal planes pass through the centre of the lateral ventricles (the zero-distance voxels of the
two distance-to-ventricle channels), the sagittal plane through the centre of the left ventricle (the centre of the
brain mask, i.e. the voxels where any location channel is > 0, when there are no ventricles); thick slices keep
their true aspect ratio. Location channels are drawn in [0, 1] with one colour scale; the FLAIR panels carry the
outline of the left (red) and right (blue) ventricle, and the title the share of their voxels that are CSF-dark
(:func:`nnunet_ataxia.preprocessing.wmh_ventricles.zero_distance_csf_dark_share`).
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from nnunet_ataxia.errors import InputError
from nnunet_ataxia.io.constants import WMH_LOCATION_CHANNEL_NAMES

__all__ = ["location_qc_picture", "dataset_case_qc"]

_TITLES = {"x_mni": "x (MNI, R+)", "y_mni": "y (MNI, A+)", "z_mni": "z (MNI, S+)",
           "dist_left_ventricle": "dist. left ventricle", "dist_right_ventricle": "dist. right ventricle",
           "dist_cortex": "dist. cortex", "dist_midsagittal": "dist. midsagittal", "wmh_prior": "WMH prior"}


def _planes(arrays: Sequence[np.ndarray], reference: sitk.Image, ventricles: Sequence[np.ndarray] = ()
            ) -> tuple[list[list[np.ndarray]], list[float]]:
    """Axial, coronal, sagittal slices of each (z, y, x) array on ``reference``'s grid, upright (LPS), followed by
    the ``ventricles`` masks (left, right) and the brain mask (any array after the first > 0) in every row."""
    oriented = []
    for a in [*arrays, *ventricles]:
        img = sitk.GetImageFromArray(np.asarray(a, dtype=np.float32))
        img.CopyInformation(reference)
        oriented.append(sitk.DICOMOrient(img, "LPS"))
    sx, sy, sz = oriented[0].GetSpacing()
    data = [sitk.GetArrayFromImage(o) for o in oriented]
    n = len(arrays)
    brain = np.any(np.stack([d > 0 for d in data[1:n]]), axis=0) if n > 1 else data[0] > 0
    if brain.any():
        lo, hi = np.maximum(np.argwhere(brain).min(0) - 3, 0), np.argwhere(brain).max(0) + 4
        data = [d[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] for d in data]
        brain = brain[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        z, y, x = (int(round(c)) for c in np.argwhere(brain).mean(0))
    else:
        z, y, x = (size // 2 for size in brain.shape)
    masks = [d > 0 for d in data[n:]]
    if masks and (masks[0] | masks[-1]).any():
        z, y, _ = (int(round(c)) for c in np.argwhere(masks[0] | masks[-1]).mean(0))
        x = int(round(np.argwhere(masks[0] if masks[0].any() else masks[-1]).mean(0)[2]))
    data = data[:n] + masks + [brain]
    rows = [[d[z] for d in data], [np.flipud(d[:, y, :]) for d in data], [np.flipud(d[:, :, x]) for d in data]]
    return rows, [sy / sx, sz / sx, sz / sy]


def _ventricle_masks(flair: np.ndarray, features: Sequence[np.ndarray], names: Sequence[str]
                     ) -> tuple[list[np.ndarray], str]:
    """The zero-distance voxels of the two distance-to-ventricle channels (inside the brain) and a line with the
    share of them that are CSF-dark; nothing when the channels are not there."""
    from nnunet_ataxia.preprocessing.wmh_ventricles import DARK_PERCENTILE, zero_distance_csf_dark_share

    wanted = ("dist_left_ventricle", "dist_right_ventricle")
    if not all(w in names for w in wanted):
        return [], ""
    brain = np.any(np.stack([np.asarray(f) > 0 for f in features]), axis=0)
    dists = [np.asarray(features[list(names).index(w)]) for w in wanted]
    share = zero_distance_csf_dark_share(flair, brain, dists[0], dists[1])
    line = (f"ventricles (red left, blue right): {100 * share['left']:.0f} % / {100 * share['right']:.0f} % of "
            f"their voxels CSF-dark (FLAIR < brain's {DARK_PERCENTILE:g}th percentile)")
    return [brain & (d == 0) for d in dists], line


def location_qc_picture(flair: np.ndarray, features: Sequence[np.ndarray], reference: sitk.Image,
                        out_png: str | os.PathLike, *, title: str = "",
                        names: Sequence[str] = WMH_LOCATION_CHANNEL_NAMES) -> Path:
    """Write a PNG: the FLAIR and each location channel (columns) in axial, coronal and sagittal planes (rows).

    Args:
        flair: the FLAIR channel, (z, y, x) on ``reference``'s grid.
        features: the location channels (normalized to [0, 1], 0 outside the brain), same grid.
        reference: the grid (geometry only).
        out_png: the picture to write.
        title: a line above the picture.
        names: the channel names (default: the eight location features).

    Returns:
        ``out_png`` as a Path.

    Example:
        >>> location_qc_picture(flair, [feats[n] for n in WMH_LOCATION_CHANNEL_NAMES], ref, "qc.png")  # doctest: +SKIP
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ventricles, line = _ventricle_masks(flair, features, names)
    rows, aspects = _planes([flair, *features], reference, ventricles)
    ncol = len(rows[0]) - 1 - len(ventricles)  # then the ventricle masks and the brain mask
    fig, axes = plt.subplots(3, ncol, figsize=(1.9 * ncol, 6.4), squeeze=False)
    flair_hi = float(np.percentile(np.asarray(flair)[np.asarray(flair) > 0], 99)) if np.any(flair) else 1.0
    for r, (row, aspect) in enumerate(zip(rows, aspects, strict=False)):
        brain = row[-1]
        for c, sl in enumerate(row[:ncol]):
            ax = axes[r][c]
            ax.imshow(row[0], cmap="gray", vmin=0.0, vmax=flair_hi, aspect=aspect, interpolation="nearest")
            if c > 0:  # the feature inside the brain (its zeros too, e.g. in a ventricle), the FLAIR outside
                im = ax.imshow(np.ma.masked_where(~brain, sl), cmap="viridis", vmin=0.0, vmax=1.0, aspect=aspect,
                               interpolation="nearest")
            if c == 0:
                for mask, colour in zip(row[ncol:-1], ("red", "blue"), strict=False):
                    if mask.any():
                        ax.contour(mask.astype(float), [0.5], colors=colour, linewidths=0.6)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title("FLAIR" if c == 0 else _TITLES.get(names[c - 1], names[c - 1]), fontsize=8)
        axes[r][0].set_ylabel(("axial", "coronal", "sagittal")[r], fontsize=8)
    if ncol > 1:
        fig.colorbar(im, ax=axes, shrink=0.6, label="normalized feature (0 outside the brain)")
    if title or line:
        fig.suptitle("\n".join(t for t in (title, line) if t), fontsize=9)
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png


def dataset_case_qc(dataset_dir: str | os.PathLike, case_id: str, out_png: str | os.PathLike,
                    dataset_name: str | None = None) -> Path:
    """The QC picture of one case of a ``convert-wmh`` dataset (``imagesTr`` or ``imagesTs``; T1+FLAIR or FLAIR-only).

    ``dataset_name`` goes into the title (default: the folder's name).

    Example:
        >>> dataset_case_qc("$nnUNet_raw/Dataset504_WMH", "sub01", "qc/sub01.png")  # doctest: +SKIP
    """
    dataset_dir = Path(dataset_dir)
    try:
        info = json.loads((dataset_dir / "dataset.json").read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"{dataset_dir / 'dataset.json'}: cannot read ({e})") from None
    image_channels = info.get("image_channels", ["T1", "FLAIR"])
    names = info.get("location_channels", list(WMH_LOCATION_CHANNEL_NAMES))
    folder = next((dataset_dir / d for d in ("imagesTr", "imagesTs")
                   if (dataset_dir / d / f"{case_id}_0000.nii.gz").is_file()), None)
    if folder is None:
        raise InputError(f"{dataset_dir}: no case {case_id!r} in imagesTr or imagesTs")
    first = len(image_channels)
    read = [sitk.ReadImage(str(folder / f"{case_id}_{c:04d}.nii.gz"))
            for c in [image_channels.index("FLAIR"), *range(first, first + len(names))]]
    arrays = [sitk.GetArrayFromImage(img) for img in read]
    return location_qc_picture(arrays[0], arrays[1:], read[0], out_png, names=names,
                               title=f"{dataset_name or dataset_dir.name} / {case_id}: FLAIR and location channels")
