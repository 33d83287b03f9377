"""SCA-like atrophy on a real label map: cerebellum and brainstem lose a given share of their volume, CSF fills in.

Used by the pretrained model v2's generator (:mod:`nnunet_ataxia.synthesis.label_map_subjects`).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from nnunet_ataxia.io.constants import BRAINSTEM_LABEL_ASEG, CEREBELLUM_LABELS_ASEG

__all__ = ["CSF_LABEL", "CEREBELLUM_CORTEX_LABEL", "atrophy_label_map"]

#: CSF: what fills the space that atrophy leaves
CSF_LABEL = 24
#: the label given to a voxel that the scaled cerebellum covers when the nearest label there is not cerebellar
CEREBELLUM_CORTEX_LABEL = 8


def _structure_box(arr: np.ndarray, labels, margin: int) -> tuple[slice, ...]:
    idx = np.argwhere(np.isin(arr, labels))
    lo, hi = np.maximum(idx.min(0) - margin, 0), np.minimum(idx.max(0) + margin + 1, arr.shape)
    return tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))


def _scaled_lookup(arr: np.ndarray, box: tuple[slice, ...], centre: np.ndarray, inverse_scale: np.ndarray,
                   labels) -> tuple[np.ndarray, np.ndarray]:
    """The structure ``labels`` scaled about ``centre``, on the voxels of ``box``: (inside, label there).

    ``inside`` is the structure's indicator, linearly interpolated at ``centre + (x - centre) * inverse_scale``, at
    least 0.5 (so that scalings smaller than a voxel still move the boundary); the label is the nearest one there.
    """
    grids = np.meshgrid(*[np.arange(s.start, s.stop, dtype=np.float32) for s in box], indexing="ij")
    coords = [centre[a] + (grids[a] - centre[a]) * inverse_scale[a] for a in range(3)]
    indicator = np.isin(arr, labels).astype(np.float32)
    inside = ndimage.map_coordinates(indicator, coords, order=1, mode="constant", cval=0.0) >= 0.5
    return inside, ndimage.map_coordinates(arr, coords, order=0, mode="constant", cval=0)


def _scaled_structure(arr: np.ndarray, labels, loss: float, axes: list[int], allowed: np.ndarray | None
                      ) -> tuple[tuple[slice, ...], np.ndarray, np.ndarray]:
    """The structure scaled about its centre along ``axes`` so that it loses ``loss`` of its volume exactly.

    A shrunk structure stays inside its own voxels (it never covers a neighbour, e.g. the fourth ventricle); a grown
    one stays inside ``allowed``. The scale is found by bisection on the voxel count (nearest-neighbour and the
    non-convex shape make the plain ``(1 - loss) ** (1 / len(axes))`` miss by a few per cent).

    Returns:
        (box, membership on the box, nearest source label on the box).
    """
    structure = np.isin(arr, labels)
    margin = 4 + int(np.ceil(20 * max(0.0, -loss)))
    box = _structure_box(arr, labels, margin)
    centre = np.argwhere(structure).mean(0)
    allowed_box = structure[box] if loss > 0 else (np.ones(structure[box].shape, bool) if allowed is None
                                                   else allowed[box] | structure[box])
    wanted = (1.0 - loss) * structure.sum()
    lo, hi = (0.3, 1.0) if loss > 0 else (1.0, 1.5)   # linear scale factor of the structure
    best, best_miss = None, np.inf
    for _ in range(12):
        scale = 0.5 * (lo + hi)
        inverse = np.ones(3)
        inverse[axes] = 1.0 / scale
        inside, source = _scaled_lookup(arr, box, centre, inverse, labels)
        inside &= allowed_box
        count = int(inside.sum())
        if abs(count - wanted) < best_miss:   # the closest of the scales tried (the count moves in steps)
            best, best_miss = (inside, source), abs(count - wanted)
        if count > wanted:
            hi = scale
        else:
            lo = scale
    return box, best[0], best[1]


def atrophy_label_map(arr: np.ndarray, cerebellum_loss: float, brainstem_loss: float,
                      superior_inferior_axis: int) -> np.ndarray:
    """SCA-like atrophy on a 1 mm label array: the cerebellum and brainstem lose the given shares of their volume.

    The cerebellum shrinks towards its centre of mass by the same factor on every axis; the brainstem thins in the
    axial plane about its centre line (its superior-inferior extent is kept, so it stays joined to the midbrain);
    the voxels they leave become CSF (label 24). Where the shrunk cerebellum would cover the brainstem, the brainstem
    stays. A negative loss grows the structure (natural size variation).

    Args:
        arr: label array (any axis order, isotropic voxels).
        cerebellum_loss: share of the cerebellum's volume lost, e.g. 0.2.
        brainstem_loss: share of the brainstem's volume lost.
        superior_inferior_axis: the array axis that runs superior-inferior.

    Returns:
        A new label array.

    Example:
        >>> z, y, x = np.mgrid[:40, :40, :40]
        >>> arr = np.where((z - 20) ** 2 + (y - 20) ** 2 + (x - 20) ** 2 <= 12 ** 2, 8, 0).astype(np.uint16)
        >>> out = atrophy_label_map(arr, 0.2, 0.0, 1)
        >>> round(float((out == 8).sum() / (arr == 8).sum()), 2)
        0.8
    """
    out = arr.copy()
    brainstem = arr == BRAINSTEM_LABEL_ASEG
    if abs(brainstem_loss) > 1e-6 and brainstem.any():
        axes = [a for a in range(3) if a != superior_inferior_axis]
        box, inside, _ = _scaled_structure(arr, [BRAINSTEM_LABEL_ASEG], brainstem_loss, axes, allowed=None)
        region = out[box]
        region[(region == BRAINSTEM_LABEL_ASEG) & ~inside] = CSF_LABEL
        region[inside] = BRAINSTEM_LABEL_ASEG
        brainstem = out == BRAINSTEM_LABEL_ASEG
    if abs(cerebellum_loss) > 1e-6 and np.isin(arr, CEREBELLUM_LABELS_ASEG).any():
        box, keep, source = _scaled_structure(arr, CEREBELLUM_LABELS_ASEG, cerebellum_loss, [0, 1, 2],
                                              allowed=~brainstem)
        # at the edge the nearest label may lie outside the structure: the voxel's own label, else cortex
        source = np.where(np.isin(source, CEREBELLUM_LABELS_ASEG), source,
                          np.where(np.isin(arr[box], CEREBELLUM_LABELS_ASEG), arr[box], CEREBELLUM_CORTEX_LABEL))
        region = out[box]
        region[np.isin(region, CEREBELLUM_LABELS_ASEG) & ~keep] = CSF_LABEL
        region[keep] = source[keep]
    return out
