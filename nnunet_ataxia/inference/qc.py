"""Quality-control pictures (native T1 with mask outlines, three planes) and the run's HTML index.

The picture has two rows: the three planes over the whole head (outlines and a light fill), and below them the same
planes zoomed on the first label (the cerebellum) with outlines only, large enough to see single voxels, so that one
can judge whether the outline follows the outer edge of the cortex.

The native image and its label map are reoriented to LPS (``sitk.DICOMOrient``; a permutation and flips of the axes,
no resampling), so every picture shows the anatomy upright whatever the scanner orientation: axial and coronal
views in radiological convention (the subject's left on the picture's right), sagittal with anterior on the left.
The three planes pass through the centre of the cerebellum (of the whole mask when the first label is empty).
"""
from __future__ import annotations

import base64
import html
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk

__all__ = ["qc_picture", "write_index", "zoom_window", "LABEL_COLOURS"]

#: outline colours, in the order of the model's foreground labels (cerebellum, brainstem, ...)
LABEL_COLOURS: tuple[str, ...] = ("#ffb000", "#00d5ff", "#ff40ff", "#60ff60", "#ff5050")


def _upright_planes(t1: sitk.Image, seg: sitk.Image, centre_label: int
                    ) -> tuple[list[np.ndarray], list[np.ndarray], list[float], list[str]]:
    """Axial, coronal, sagittal slices (T1 and labels) through the centre of ``centre_label``, upright."""
    t1 = sitk.DICOMOrient(t1, "LPS")
    seg = sitk.DICOMOrient(seg, "LPS")
    # copies, not views: the reoriented images are freed when this function returns
    img = sitk.GetArrayFromImage(t1)   # (z: inferior->superior, y: anterior->posterior, x: right->left)
    lab = sitk.GetArrayFromImage(seg)
    sx, sy, sz = t1.GetSpacing()
    # show the head, not the empty field of view around it (5 voxels of margin)
    positive = img[img > 0]
    head = img > 0.1 * float(np.percentile(positive, 99)) if positive.size else np.ones(img.shape, bool)
    if head.any():
        lo = np.maximum(np.argwhere(head).min(0) - 5, 0)
        hi = np.argwhere(head).max(0) + 6
        img, lab = img[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]], lab[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    target = lab == centre_label if np.any(lab == centre_label) else lab > 0
    if np.any(target):
        z, y, x = (int(round(c)) for c in np.argwhere(target).mean(0))
    else:
        z, y, x = (n // 2 for n in lab.shape)
    slices_img = [img[z], np.flipud(img[:, y, :]), np.flipud(img[:, :, x])]
    slices_lab = [lab[z], np.flipud(lab[:, y, :]), np.flipud(lab[:, :, x])]
    aspects = [sy / sx, sz / sx, sz / sy]
    return slices_img, slices_lab, aspects, ["axial", "coronal", "sagittal"]


def zoom_window(mask: np.ndarray, margin: int = 8) -> tuple[slice, slice]:
    """Rows and columns of a 2D ``mask``'s bounding box widened by ``margin`` voxels, clipped to the slice.

    The whole slice when the mask is empty.

    Example:
        >>> m = np.zeros((50, 60), bool); m[20:30, 10:15] = True
        >>> zoom_window(m, margin=5)
        (slice(15, 35, None), slice(5, 20, None))
    """
    if not mask.any():
        return slice(0, mask.shape[0]), slice(0, mask.shape[1])
    idx = np.argwhere(mask)
    lo = np.maximum(idx.min(0) - margin, 0)
    hi = np.minimum(idx.max(0) + 1 + margin, mask.shape)
    return slice(int(lo[0]), int(hi[0])), slice(int(lo[1]), int(hi[1]))


def qc_picture(t1: sitk.Image, seg: sitk.Image, labels: Mapping[str, int], out_png: str | os.PathLike, *,
               title: str = "", subtitle: str = "") -> Path:
    """Write a PNG with the label outlines over the native T1 in three orthogonal planes: whole head (outlines and a
    light fill), then zoomed on the first label (outlines only).

    Args:
        t1: the native T1.
        seg: the native label map on the same grid.
        labels: ``{name: value}`` of the foreground labels to draw (first one centres the planes).
        out_png: the picture to write.
        title, subtitle: text above the panels (case id, volumes).

    Example:
        >>> qc_picture(t1, seg, {"cerebellum": 1, "brainstem": 2}, "qc/sub-01.png", title="sub-01")  # doctest: +SKIP
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    labels = {k: int(v) for k, v in labels.items() if int(v) != 0}
    first = next(iter(labels.values()), 1)
    imgs, labs, aspects, names = _upright_planes(t1, seg, first)
    lo, hi = np.percentile(np.concatenate([i[i > 0].ravel() for i in imgs] or [np.zeros(1)]), [0.5, 99.5]) \
        if any(np.any(i > 0) for i in imgs) else (0.0, 1.0)
    fig, axes = plt.subplots(2, 3, figsize=(13.5, 10.0), facecolor="black",
                             gridspec_kw={"height_ratios": (1.0, 1.25)})
    colours = {v: LABEL_COLOURS[i % len(LABEL_COLOURS)] for i, v in enumerate(labels.values())}
    for row, zoomed in ((axes[0], False), (axes[1], True)):
        for ax, img, lab, aspect, name in zip(row, imgs, labs, aspects, names, strict=False):
            if zoomed:
                window = zoom_window(lab == first)
                img, lab = img[window], lab[window]
            ax.imshow(img, cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1, aspect=aspect,
                      interpolation="nearest")
            for value, colour in colours.items():
                mask = lab == value
                if not mask.any():
                    continue
                if not zoomed:
                    ax.imshow(np.ma.masked_where(~mask, mask), cmap=ListedColormap([colour]), alpha=0.25,
                              aspect=aspect, interpolation="nearest")
                ax.contour(mask.astype(np.float32), levels=[0.5], colors=[colour], linewidths=1.1 if zoomed else 0.9)
            ax.set_title(f"{name}, zoomed" if zoomed else name, color="white", fontsize=10)
            ax.axis("off")
    handles = [Patch(facecolor=colours[v], label=n) for n, v in labels.items()]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False, labelcolor="white")
    fig.suptitle(f"{title}\n{subtitle}" if subtitle else title, color="white", fontsize=11)
    fig.tight_layout(rect=(0, 0.04, 1, 0.94))
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=90, facecolor="black")
    plt.close(fig)
    return out_png


def write_index(out_html: str | os.PathLike, rows: Sequence[Mapping], columns: Sequence[str],
                pictures: Mapping[str, str | os.PathLike], *, title: str = "nnunet-ataxia segment") -> Path:
    """Write a self-contained HTML page: the volumes table, then every QC picture (embedded as base64).

    Args:
        out_html: the page to write (``<out>/qc/index.html``).
        rows: one mapping per case (the rows of ``volumes.csv``).
        columns: the columns to show, in order.
        pictures: ``{case: png path}``; cases without a picture are listed in the table only.
        title: page title.

    Example:
        >>> write_index("qc/index.html", rows, ["case", "status"], {"sub-01": "qc/sub-01.png"})  # doctest: +SKIP
    """
    def cell(value) -> str:
        if isinstance(value, float):
            return "" if np.isnan(value) else f"{value:,.1f}"
        return html.escape(str(value))

    def flagged(row: Mapping) -> bool:
        return str(row.get("qc", "ok")) not in ("ok", "")

    rows = sorted(rows, key=lambda r: not flagged(r))   # flagged subjects first (a stable sort keeps the order)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(("<tr class=\"flagged\">" if flagged(r) else "<tr>")
                   + "".join(f"<td>{cell(r.get(c, ''))}</td>" for c in columns) + "</tr>" for r in rows)
    order = [r["case"] for r in rows if r.get("case") in pictures]
    pictures = {case: pictures[case] for case in order + [c for c in pictures if c not in order]}
    figures = []
    for case, png in pictures.items():
        data = base64.b64encode(Path(png).read_bytes()).decode("ascii")
        figures.append(f'<figure id="{html.escape(case)}"><img alt="{html.escape(case)}" '
                       f'src="data:image/png;base64,{data}"><figcaption>{html.escape(case)}</figcaption></figure>')
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:1.5em}} table{{border-collapse:collapse;font-size:0.9em}}
td,th{{border:1px solid #bbb;padding:3px 7px;text-align:right}} td:first-child,th:first-child{{text-align:left}}
img{{max-width:100%}} figure{{margin:1.5em 0}} figcaption{{font-weight:bold}}
tr.flagged td{{background:#fde2c4}}</style></head>
<body><h1>{html.escape(title)}</h1>
<p>Volumes in mm³: <em>native</em> = voxel count × voxel volume of the native masks (the subject's own mm³);
<em>mni</em> = on the 1 mm MNI crop (scaled by the registration); scale_factor = |det| of the MNI → native
affine's linear part. Outlines: masks over the native T1, planes through the cerebellum. <em>qc</em>: ok, or the
reasons to look at the subject (highlighted, listed first).</p>
<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
{''.join(figures)}
</body></html>
"""
    out_html = Path(out_html)
    out_html.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_html.with_name(f".{out_html.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, out_html)
    return out_html
