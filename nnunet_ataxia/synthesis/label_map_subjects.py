"""Pseudo-subjects rendered from real whole-head label maps (the SynthSeg recipe), for the pretrained model v2.

Anatomy: a folder of real subjects' whole-head label maps with FreeSurfer label values, such as the 20 training label
maps that the SynthSeg project publishes (``training_seg_01.nii.gz`` ... ``training_seg_20.nii.gz``: 1 mm, cerebral
and cerebellar structures, CSF and extra-cerebral labels above 100). :data:`HELD_OUT_MAPS` are never used for
training, validation or model selection: the held-out benchmark renders its subjects from them.

A subject is one map with

* SCA-like atrophy (:func:`~nnunet_ataxia.synthesis.atrophy.atrophy_label_map`): cerebellum shrunk towards its
  centre and the brainstem thinned in the axial plane by a drawn share of their volume, CSF (label 24) filling the
  space they leave;
* a random smooth deformation (a few mm) and, for the native form, a random pose, orientation and voxel size;
* a random intensity per label (:func:`label_map_intensity_tables`: T1-like tissue order for most subjects, fully
  random for a share), skull and scalp kept or removed (labels above 100 set to air);
* partial volume at tissue edges: the intensities are rendered on the map's own 1 mm grid and carried to the output
  grid by linear interpolation (the labels by nearest neighbour), then the acquisition
  (:func:`~nnunet_ataxia.synthesis.tissue_contrast.acquisition_artefacts`: blur, thick slices, bias, gamma, noise).

The training target is the map's own boundary: 1 = cerebellum (7, 8, 46, 47), 2 = brainstem (16).

Two forms, as for the template generator (:mod:`nnunet_ataxia.synthesis.synthetic_subjects`):
:func:`make_registered_label_map_case` (training: on the 1 mm MNI crop after the map's own registration to MNI plus a
random residual affine, skull-stripped, equalized and cropped by the pipeline's functions) and
:func:`make_native_label_map_subject` (held-out evaluation: native scanner grid, truth in native space).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from nnunet_ataxia.errors import InputError
from nnunet_ataxia.io.constants import BRAINSTEM_LABEL_ASEG, CEREBELLUM_LABELS_ASEG, LABEL_VALUE_LIMIT
from nnunet_ataxia.preprocessing.mri_pipeline import (
    brain_mask_mni,
    crop_reference,
    crop_to_box,
    register_to_mni,
    rescale_and_equalize,
)
from nnunet_ataxia.preprocessing.registration import load_mni_template
from nnunet_ataxia.synthesis.atrophy import CSF_LABEL, atrophy_label_map
from nnunet_ataxia.synthesis.synthetic_subjects import aseg_to_targets, native_grid, random_affine
from nnunet_ataxia.synthesis.tissue_contrast import (
    RANDOM_CONTRAST_PROBABILITY,
    TISSUE_CLASSES,
    acquisition_artefacts,
    cortex_folia_partial_volume,
    cortex_rim_partial_volume,
    smooth_random_field,
    t1_class_means,
)

#: file names of the label maps (SynthSeg's training maps)
LABEL_MAP_PATTERN = "training_seg_*.nii.gz"
#: the maps kept out of training, validation and model selection (file names without ``.nii.gz``)
HELD_OUT_MAPS: tuple[str, ...] = ("training_seg_04", "training_seg_08", "training_seg_12", "training_seg_16",
                                  "training_seg_20")
#: label values at and above this are outside the brain (skull, scalp, eyes, fat, ...)
EXTRA_CEREBRAL_MIN_LABEL = 100
#: FreeSurfer labels of these maps that the template generator's tissue classes do not list, and their class
EXTRA_BRAIN_CLASSES = {25: "white_matter", 57: "white_matter", 72: "csf", 85: "white_matter"}
#: atrophy level -> range of the cerebellum's volume loss (share); the brainstem loses 30-70 % of that share
ATROPHY_LEVELS: dict[str, tuple[float, float]] = {"none": (-0.05, 0.05), "mild": (0.05, 0.12),
                                                  "moderate": (0.12, 0.22), "strong": (0.22, 0.35)}
ATROPHY_PROBABILITIES: dict[str, float] = {"none": 0.4, "mild": 0.2, "moderate": 0.2, "strong": 0.2}
#: the cortex rim's own random stream (``RandomState([seed, CORTEX_RIM_STREAM])``): turning the rim on or off leaves
#: every other draw of a subject as it was
CORTEX_RIM_STREAM = 1
#: the cerebellar folia's own random stream, for the same reason
CORTEX_FOLIA_STREAM = 2

__all__ = ["HELD_OUT_MAPS", "ATROPHY_LEVELS", "CSF_LABEL", "LabelMapSubject", "list_label_maps", "load_label_map",
           "label_map_intensity_tables", "atrophy_label_map", "map_to_mni_registration",
           "make_registered_label_map_case", "make_native_label_map_subject"]


def list_label_maps(folder: str | os.PathLike) -> tuple[list[Path], list[Path]]:
    """The label maps of ``folder``, split into (training maps, held-out maps).

    Raises:
        InputError: the folder is missing, holds no ``training_seg_*.nii.gz``, or lacks a held-out map.

    Example:
        >>> train, held_out = list_label_maps("SynthSeg/data/training_label_maps")  # doctest: +SKIP
        >>> len(train), len(held_out)  # doctest: +SKIP
        (15, 5)
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder (the label maps: SynthSeg's data/training_label_maps)")
    maps = sorted(folder.glob(LABEL_MAP_PATTERN))
    if not maps:
        raise InputError(f"{folder}: holds no {LABEL_MAP_PATTERN} (the label maps: SynthSeg's "
                         f"data/training_label_maps)")
    names = {map_name(p) for p in maps}
    missing = [n for n in HELD_OUT_MAPS if n not in names]
    if missing and len(maps) >= len(HELD_OUT_MAPS) + 1:
        raise InputError(f"{folder}: held-out maps missing: {', '.join(missing)} (expected the 20 SynthSeg maps)")
    held_out = [p for p in maps if map_name(p) in HELD_OUT_MAPS]
    return [p for p in maps if map_name(p) not in HELD_OUT_MAPS], held_out


def map_name(path: str | os.PathLike) -> str:
    """``training_seg_01`` for ``.../training_seg_01.nii.gz``."""
    return Path(path).name.removesuffix(".gz").removesuffix(".nii")


@lru_cache(maxsize=2)
def load_label_map(path: str) -> sitk.Image:
    """A label map as a UInt16 image; InputError if it is not a 3D map of non-negative integers with a cerebellum."""
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError:
        raise InputError(f"{path}: cannot read this label map") from None
    arr = sitk.GetArrayFromImage(image)
    if arr.ndim != 3 or arr.min() < 0 or arr.max() >= LABEL_VALUE_LIMIT or not np.allclose(arr, np.round(arr)):
        raise InputError(f"{path}: not a 3D label map of integer values in [0, {LABEL_VALUE_LIMIT})")
    if not np.isin(arr, CEREBELLUM_LABELS_ASEG).any() or not (arr == BRAINSTEM_LABEL_ASEG).any():
        raise InputError(f"{path}: no cerebellum {CEREBELLUM_LABELS_ASEG} or brainstem ({BRAINSTEM_LABEL_ASEG}) label "
                         f"in this map")
    out = sitk.GetImageFromArray(arr.astype(np.uint16))
    out.CopyInformation(image)
    return out


def label_map_intensity_tables(rs: np.random.RandomState, mode: str = "T1", dark_shell: tuple[int, ...] = ()
                               ) -> tuple[np.ndarray, np.ndarray]:
    """Per-label mean and standard deviation for a whole-head label map (look-up tables indexed by label value).

    Brain labels follow the tissue classes of :mod:`~nnunet_ataxia.synthesis.tissue_contrast` (T1 order in ``"T1"``
    mode, uniform in [0, 1] in ``"random"`` mode); label 0 is air (0); every extra-cerebral label (>= 100) gets its own
    uniform intensity in either mode, as in SynthSeg, except that in ``"T1"`` mode the labels of ``dark_shell`` (the
    tissue right around the brain, see :func:`extra_cerebral_shell_labels`) are drawn as dark as CSF to bone, as a T1
    scan shows skull and meninges.

    Args:
        rs: random state of the subject.
        mode: ``"T1"`` or ``"random"``.
        dark_shell: extra-cerebral labels drawn dark in ``"T1"`` mode.

    Example:
        >>> mean, std = label_map_intensity_tables(np.random.RandomState(0))
        >>> bool(mean[0] == 0 and mean[2] > mean[3] > mean[24])   # air, white > grey matter > CSF
        True
    """
    if mode not in ("T1", "random"):
        raise ValueError(f"mode {mode!r}: use 'T1' or 'random'")
    classes = {c: list(v) for c, v in TISSUE_CLASSES.items()}
    for label, cls in EXTRA_BRAIN_CLASSES.items():
        classes[cls].append(label)
    classes["csf"].remove(0)
    means = t1_class_means(rs) if mode == "T1" else {c: rs.uniform(0.0, 1.0) for c in classes}
    jitter = 0.04 if mode == "T1" else 0.1
    mean = np.zeros(LABEL_VALUE_LIMIT, np.float32)
    std = np.zeros(LABEL_VALUE_LIMIT, np.float32)
    for cls, labels in classes.items():
        for v in labels:
            mean[v] = max(0.0, means[cls] * (1.0 + rs.normal(0.0, jitter)))
            std[v] = rs.uniform(0.01, 0.05)
    listed = {v for labels in classes.values() for v in labels}
    extra = np.array([v for v in range(EXTRA_CEREBRAL_MIN_LABEL, LABEL_VALUE_LIMIT) if v not in listed])
    mean[extra] = rs.uniform(0.0, 1.0, len(extra))
    std[extra] = rs.uniform(0.01, 0.08, len(extra))
    if mode == "T1" and dark_shell:
        shell = np.array(dark_shell)
        mean[shell] = means["white_matter"] * rs.uniform(0.02, 0.3, len(shell))
    return mean, std


#: an extra-cerebral label whose median distance to the brain is at most this (mm) belongs to the shell around it
SHELL_DISTANCE_MM = 8.0


@lru_cache(maxsize=8)
def extra_cerebral_shell_labels(path: str) -> tuple[int, ...]:
    """The extra-cerebral labels (>= 100) of a map that lie right around the brain (median distance to the brain's
    labels at most :data:`SHELL_DISTANCE_MM`): skull, meninges, vessels on the surface.

    Example:
        >>> extra_cerebral_shell_labels("training_seg_01.nii.gz")  # doctest: +SKIP
        (136, 137, 163, 164, 515, 530)
    """
    label_map = load_label_map(str(path))
    arr = sitk.GetArrayViewFromImage(label_map)
    brain = (arr > 0) & (arr < EXTRA_CEREBRAL_MIN_LABEL) & (arr != CSF_LABEL)
    distance = ndimage.distance_transform_edt(~brain, sampling=label_map.GetSpacing()[::-1])
    labels = [int(v) for v in np.unique(arr) if v >= EXTRA_CEREBRAL_MIN_LABEL]
    return tuple(v for v in labels if np.median(distance[arr == v]) <= SHELL_DISTANCE_MM)


@dataclass
class LabelMapSubject:
    """What was drawn for one subject (kept in the dataset for reproducibility)."""
    seed: int
    label_map: str
    atrophy: str
    cerebellum_loss: float
    brainstem_loss: float
    deformation_mm: float
    skull: bool
    appearance: dict = field(default_factory=dict)


def draw_label_map_subject(seed: int, label_map: str | os.PathLike, atrophy: str | None = None,
                           skull: bool | None = None) -> tuple[np.random.RandomState, LabelMapSubject]:
    """Draw a subject's atrophy, deformation amplitude and skull (deterministic for a seed); fixed values win."""
    rs = np.random.RandomState(seed)
    drawn = str(rs.choice(list(ATROPHY_PROBABILITIES), p=list(ATROPHY_PROBABILITIES.values())))
    atrophy = drawn if atrophy is None else atrophy
    if atrophy not in ATROPHY_LEVELS:
        raise ValueError(f"atrophy {atrophy!r}: use one of {', '.join(ATROPHY_LEVELS)}")
    cerebellum_loss = rs.uniform(*ATROPHY_LEVELS[atrophy])
    brainstem_loss = cerebellum_loss * rs.uniform(0.3, 0.7)
    amplitude = rs.uniform(1.0, 4.0)
    drawn_skull = bool(rs.uniform() < 0.5)
    return rs, LabelMapSubject(seed, map_name(label_map), atrophy, float(cerebellum_loss), float(brainstem_loss),
                               float(amplitude), drawn_skull if skull is None else bool(skull))


def superior_inferior_axis(image: sitk.Image) -> int:
    """The numpy array axis of ``image`` that runs superior-inferior (from its direction matrix)."""
    direction = np.array(image.GetDirection()).reshape(3, 3)
    return 2 - int(np.abs(direction[2]).argmax())   # sitk index axis i is numpy axis 2 - i


def render_subject_map(label_map: sitk.Image, subject: LabelMapSubject, rs: np.random.RandomState,
                       random_contrast_probability: float, dark_shell: tuple[int, ...] = (), cortex_rim: bool = False,
                       cortex_folia: bool = False) -> tuple[sitk.Image, sitk.Image]:
    """The subject on the map's own grid: (atrophied labels, rendered float32 intensities before the acquisition).

    ``dark_shell``: see :func:`label_map_intensity_tables` (empty: every extra-cerebral label at random).
    ``cortex_rim``: blend the outer voxel layers of the cerebral and cerebellar cortex towards CSF
    (:func:`~nnunet_ataxia.synthesis.tissue_contrast.cortex_rim_partial_volume`, drawn from its own random stream).
    ``cortex_folia``: thin sulci in the cerebellar cortex, drawn at 0.5 mm and averaged back, darkest at its surface
    (:func:`~nnunet_ataxia.synthesis.tissue_contrast.cortex_folia_partial_volume`, its own random stream).
    """
    arr = sitk.GetArrayFromImage(label_map)
    arr = atrophy_label_map(arr, subject.cerebellum_loss, subject.brainstem_loss, superior_inferior_axis(label_map))
    if not subject.skull:
        arr[arr >= EXTRA_CEREBRAL_MIN_LABEL] = 0
    mode = "random" if rs.uniform() < random_contrast_probability else "T1"
    mean, std = label_map_intensity_tables(rs, mode, dark_shell)
    subject.appearance["mode"] = mode
    intensity = mean[arr] + std[arr] * rs.normal(0.0, 1.0, arr.shape).astype(np.float32)
    intensity[arr == 0] = 0.0
    # what lies outside the brain tissue, for the partial-volume effects on the cortex below
    outside = np.isin(arr, TISSUE_CLASSES["csf"]) | (arr >= EXTRA_CEREBRAL_MIN_LABEL) if cortex_rim or cortex_folia \
        else None
    if cortex_rim:
        cortex = np.isin(arr, TISSUE_CLASSES["cortex"] + TISSUE_CLASSES["cerebellum_cortex"])
        rim_rs = np.random.RandomState([subject.seed, CORTEX_RIM_STREAM])
        subject.appearance["cortex_rim"] = cortex_rim_partial_volume(intensity, cortex, outside,
                                                                     float(mean[CSF_LABEL]), rim_rs)
    if cortex_folia:
        cerebellum_cortex = np.isin(arr, TISSUE_CLASSES["cerebellum_cortex"])
        folia_rs = np.random.RandomState([subject.seed, CORTEX_FOLIA_STREAM])
        subject.appearance["cortex_folia"] = cortex_folia_partial_volume(intensity, cerebellum_cortex, outside,
                                                                         float(mean[CSF_LABEL]), folia_rs)
    labels_image, intensity_image = sitk.GetImageFromArray(arr), sitk.GetImageFromArray(intensity.astype(np.float32))
    labels_image.CopyInformation(label_map)
    intensity_image.CopyInformation(label_map)
    return labels_image, intensity_image


def random_map_deformation(reference: sitk.Image, rs: np.random.RandomState, amplitude_mm: float,
                           grid_mm: float = 8.0) -> sitk.DisplacementFieldTransform:
    """A smooth random displacement (up to ``amplitude_mm``) on a coarse grid over ``reference`` (map space)."""
    size = [int(np.ceil(n * s / grid_mm)) + 1 for n, s in zip(reference.GetSize(), reference.GetSpacing(), strict=True)]
    grid = sitk.Image(size, sitk.sitkVectorFloat64, 3)
    grid.SetSpacing([grid_mm] * 3)
    grid.SetOrigin(reference.GetOrigin())
    grid.SetDirection(reference.GetDirection())
    shape = tuple(size[::-1])
    disp = np.stack([smooth_random_field(shape, rs, 5, amplitude_mm) for _ in range(3)], -1).astype(np.float64)
    field_image = sitk.GetImageFromArray(disp, isVector=True)
    field_image.CopyInformation(grid)
    return sitk.DisplacementFieldTransform(field_image)


def _resample_pair(labels: sitk.Image, intensity: sitk.Image, reference: sitk.Image, transform: sitk.Transform,
                   label_reference: sitk.Image | None = None) -> tuple[np.ndarray, np.ndarray]:
    image = sitk.Resample(intensity, reference, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    target = sitk.Resample(labels, label_reference or reference, transform, sitk.sitkNearestNeighbor, 0,
                           sitk.sitkUInt16)
    return sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(target)


def map_to_mni_registration(label_map_path: str | os.PathLike, seed: int = 0) -> sitk.AffineTransform:
    """MNI -> map affine of a label map: a fixed T1-like rendering of its brain registered as ``segment`` registers.

    Example:
        >>> tfm = map_to_mni_registration("training_seg_01.nii.gz")  # doctest: +SKIP
    """
    label_map = load_label_map(str(label_map_path))
    arr = sitk.GetArrayFromImage(label_map)
    mean, _ = label_map_intensity_tables(np.random.RandomState(seed), "T1")
    mean[EXTRA_CEREBRAL_MIN_LABEL:] = 0.0
    image = sitk.GetImageFromArray(ndimage.gaussian_filter(mean[arr], 0.7).astype(np.float32))
    image.CopyInformation(label_map)
    return register_to_mni(image, seed=seed, moving_spacing_mm=2.0)


def affine_to_list(tfm: sitk.AffineTransform) -> list[float]:
    """An affine as 15 numbers (matrix, translation, centre), for JSON and worker jobs."""
    return [*tfm.GetMatrix(), *tfm.GetTranslation(), *tfm.GetCenter()]


def affine_from_list(values) -> sitk.AffineTransform:
    """Inverse of :func:`affine_to_list`."""
    tfm = sitk.AffineTransform(3)
    tfm.SetMatrix([float(v) for v in values[:9]])
    tfm.SetTranslation([float(v) for v in values[9:12]])
    tfm.SetCenter([float(v) for v in values[12:15]])
    return tfm


def make_registered_label_map_case(label_map_path: str | os.PathLike, mni_to_map: sitk.AffineTransform, seed: int,
                                   random_contrast_probability: float = RANDOM_CONTRAST_PROBABILITY,
                                   cortex_rim: bool = False, cortex_folia: bool = False
                                   ) -> tuple[sitk.Image, sitk.Image, LabelMapSubject]:
    """A training case as the preprocessing leaves it (128 × 128 × 96 MNI crop, equalized) and its 0/1/2 labels.

    The map is deformed, carried to MNI by its own registration (``mni_to_map``, see
    :func:`map_to_mni_registration`) plus a random residual affine (up to 4°, 4 mm, ±4 %: an imperfect registration),
    skull-stripped with the template mask, equalized and cropped by the pipeline's own functions. ``cortex_rim``,
    ``cortex_folia``: see :func:`render_subject_map`.

    Example:
        >>> tfm = map_to_mni_registration("training_seg_01.nii.gz")  # doctest: +SKIP
        >>> image, labels, subject = make_registered_label_map_case("training_seg_01.nii.gz", tfm, 0)  # doctest: +SKIP
    """
    rs, subject = draw_label_map_subject(seed, label_map_path)
    label_map = load_label_map(str(label_map_path))
    labels, intensity = render_subject_map(label_map, subject, rs, random_contrast_probability,
                                           cortex_rim=cortex_rim, cortex_folia=cortex_folia)
    deform = random_map_deformation(label_map, rs, subject.deformation_mm)
    template, _ = load_mni_template(with_brain_mask=False)
    cerebellum_index = np.argwhere(np.isin(sitk.GetArrayViewFromImage(label_map), CEREBELLUM_LABELS_ASEG)).mean(0)
    centre = np.array(mni_to_map.GetInverse().TransformPoint(
        label_map.TransformContinuousIndexToPhysicalPoint(cerebellum_index[::-1].tolist())))
    residual = random_affine(centre, rs, 4.0, 4.0, (0.96, 1.04), anisotropy=0.02)
    transform = sitk.CompositeTransform([deform, mni_to_map, residual])
    crop_labels = crop_reference()
    image, target = _resample_pair(labels, intensity, template, transform, label_reference=crop_labels)
    image, subject.appearance["acquisition"] = acquisition_artefacts(image, rs)
    image_mni = sitk.GetImageFromArray(image)
    image_mni.CopyInformation(template)
    strip_mask = brain_mask_mni()
    image_mni = rescale_and_equalize(sitk.Mask(image_mni, strip_mask, 0), strip_mask)
    target_image = sitk.GetImageFromArray(aseg_to_targets(target))
    target_image.CopyInformation(crop_labels)
    return crop_to_box(image_mni), target_image, subject


def make_native_label_map_subject(label_map_path: str | os.PathLike, seed: int, *, atrophy: str | None = None,
                                  skull: bool | None = None, random_contrast_probability: float = 0.25,
                                  thick_slice_probability: float = 0.3, t1_like_shell: bool = True,
                                  cortex_rim: bool = False, cortex_folia: bool = False
                                  ) -> tuple[sitk.Image, sitk.Image, LabelMapSubject]:
    """A held-out subject in native space: T1 (float32) and 0/1/2 labels on a random scanner grid.

    With ``t1_like_shell`` a T1-like subject shows the skull and meninges around the brain dark, as a T1 scan does
    (:func:`extra_cerebral_shell_labels`); random-contrast subjects draw them at random either way. ``cortex_rim``,
    ``cortex_folia``: see :func:`render_subject_map` (their own random streams: every other draw is the same with
    them on or off).

    Pose: rotation up to 12° about each axis, scale ×0.95-1.05, a shift up to 10 mm about the map's brain centre,
    a random orientation (LPS, RAS, LIA, ASL) and voxel size; a share of the subjects is acquired with thick slices.

    Example:
        >>> t1, labels, subject = make_native_label_map_subject("training_seg_04.nii.gz", 100000)  # doctest: +SKIP
    """
    rs, subject = draw_label_map_subject(seed, label_map_path, atrophy, skull)
    label_map = load_label_map(str(label_map_path))
    shell = extra_cerebral_shell_labels(str(label_map_path)) if t1_like_shell else ()
    labels, intensity = render_subject_map(label_map, subject, rs, random_contrast_probability, shell, cortex_rim,
                                           cortex_folia)
    deform = random_map_deformation(label_map, rs, subject.deformation_mm)
    arr = sitk.GetArrayViewFromImage(label_map)
    brain_idx = np.argwhere((arr > 0) & (arr < EXTRA_CEREBRAL_MIN_LABEL)).mean(0)[::-1]
    centre = np.array(label_map.TransformContinuousIndexToPhysicalPoint(brain_idx.tolist()))
    pose = random_affine(centre, rs, 12.0, 10.0, (0.95, 1.05), anisotropy=0.02)  # native -> map
    ref, orientation = native_grid(np.array(pose.GetInverse().TransformPoint(centre.tolist())), rs)
    image, target = _resample_pair(labels, intensity, ref, sitk.CompositeTransform([deform, pose]))
    image, acquisition = acquisition_artefacts(image, rs, tuple(ref.GetSpacing()[::-1]), thick_slice_probability)
    subject.appearance.update(acquisition=acquisition, orientation=orientation, spacing=list(ref.GetSpacing()))
    t1 = sitk.GetImageFromArray(image)
    t1.CopyInformation(ref)
    truth = sitk.GetImageFromArray(aseg_to_targets(target))
    truth.CopyInformation(ref)
    return t1, truth, subject

