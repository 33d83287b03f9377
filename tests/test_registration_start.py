"""Where the MNI registration starts: a head whose field of view holds a large, bright neck below the brain."""
from __future__ import annotations

import json
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_ataxia.preprocessing.mri_pipeline import preprocess_t1_case
from nnunet_ataxia.preprocessing.registration import affine_register_to_mni, load_mni_template
from nnunet_ataxia.preprocessing.registration_check import MIN_CONFIDENT_SIMILARITY, MIN_REGISTRATION_SIMILARITY
from nnunet_ataxia.preprocessing.registration_start import head_top_start, moments_start
from nnunet_ataxia.synthesis.template_subjects import cerebellum_brainstem_labels_mni, known_affine, make_native_subject

SPACING_MM = 2.5
NECK_MM = 140.0


def _cerebellum_displacements(est: sitk.Transform, true: sitk.Transform) -> np.ndarray:
    labels = cerebellum_brainstem_labels_mni()
    points = [labels.TransformIndexToPhysicalPoint([int(i) for i in p[::-1]])
              for p in np.argwhere(sitk.GetArrayViewFromImage(labels) == 1)[::50]]
    return np.array([np.linalg.norm(np.subtract(est.TransformPoint(p), true.TransformPoint(p))) for p in points])


@pytest.fixture(scope="module")
def head_with_neck() -> tuple[sitk.Image, sitk.Transform]:
    """The template brain in a field of view extended 140 mm downwards, with a block 1.5 times as bright as the
    brightest brain voxel filling the neck and face region below it (fat and muscle on a T1 scan)."""
    true = known_affine(rotation_deg=(6.0, -4.0, 8.0), scale=(1.0, 1.0, 1.0), translation_mm=(0.0, 0.0, 0.0))
    brain, _, _ = make_native_subject(SPACING_MM, mni_to_native=true, bias_strength=0.0)
    pad = int(round(NECK_MM / SPACING_MM))
    size = brain.GetSize()
    ref = sitk.Image([size[0], size[1], size[2] + pad], sitk.sitkFloat32)
    ref.SetSpacing(brain.GetSpacing())
    ref.SetOrigin((np.array(brain.GetOrigin()) - [0.0, 0.0, pad * SPACING_MM]).tolist())
    arr = sitk.GetArrayFromImage(sitk.Resample(brain, ref, sitk.Transform(), sitk.sitkLinear, 0.0))
    ny, nx = arr.shape[1:]
    neck = (slice(0, pad + int(round(10 / SPACING_MM))), slice(int(ny * 0.15), int(ny * 0.75)),
            slice(int(nx * 0.2), int(nx * 0.8)))
    arr[neck] = np.maximum(arr[neck], 1.5 * arr.max())
    head = sitk.GetImageFromArray(arr)
    head.CopyInformation(ref)
    return head, true


def test_head_top_start_places_the_template_brain_where_it_is():
    template, mask = load_mni_template(spacing_mm=3.0)
    shift = (5.0, -8.0, 12.0)
    moved = sitk.Resample(template, template, sitk.TranslationTransform(3, [-v for v in shift]), sitk.sitkLinear, 0.0)
    start = head_top_start(template, mask, moved)
    assert np.allclose(start.GetTranslation(), shift, atol=4.0), start.GetTranslation()
    assert np.allclose(start.GetMatrix(), np.eye(3).ravel())


def test_a_bright_neck_misleads_the_moments_start_but_not_the_head_top_start(head_with_neck):
    head, true = head_with_neck
    template, mask = load_mni_template(spacing_mm=3.0)
    centre_error = np.subtract(moments_start(template, head).GetTranslation(), true.GetTranslation())
    assert np.linalg.norm(centre_error) > 40.0  # pulled down into the neck, beyond the exhaustive search's ±12 mm
    from_moments = affine_register_to_mni(head, template=template, template_mask=mask, seed=0)
    assert _cerebellum_displacements(from_moments, true).mean() > 20.0
    from_top = affine_register_to_mni(head, template=template, template_mask=mask, seed=0, start="head-top")
    d = _cerebellum_displacements(from_top, true)
    assert d.max() < 1.5, f"mean {d.mean():.2f} mm, max {d.max():.2f} mm"


def test_preprocessing_retries_from_the_head_top_and_keeps_the_better_registration(head_with_neck, tmp_path):
    head, _ = head_with_neck
    sitk.WriteImage(head, str(tmp_path / "neck_T1w.nii.gz"))
    info = preprocess_t1_case(tmp_path / "neck_T1w.nii.gz", tmp_path / "out" / "neck_0000.nii.gz",
                              transform_dir=tmp_path / "tr", registration_template_spacing_mm=3.0)
    meta = json.loads((tmp_path / "tr" / "preprocessing.json").read_text())
    attempts = {a["start"]: a["similarity"] for a in meta["registration_attempts"]}
    assert list(attempts) == ["moments", "head-top"]
    assert attempts["moments"] < MIN_REGISTRATION_SIMILARITY  # refused without the retry
    assert attempts["head-top"] >= MIN_CONFIDENT_SIMILARITY
    assert meta["registration_start"] == "head-top"
    assert info["registration_similarity"] == pytest.approx(attempts["head-top"], abs=1e-4)


def test_an_unknown_start_is_refused():
    template, mask = load_mni_template(spacing_mm=3.0)
    with pytest.raises(ValueError, match="start 'centre'"):
        affine_register_to_mni(template, template=template, template_mask=mask, start="centre")


def test_a_failed_retry_keeps_the_first_registration(head_with_neck, tmp_path, monkeypatch):
    import nnunet_ataxia.preprocessing.mri_pipeline as pipeline
    from nnunet_ataxia.errors import InputError

    register = pipeline.register_to_mni

    def head_top_fails(image, **kwargs):
        if kwargs.get("start") == "head-top":
            raise InputError("MNI affine registration: registration failed (constructed)")
        return register(image, **kwargs)

    monkeypatch.setattr(pipeline, "register_to_mni", head_top_fails)
    head, _ = head_with_neck
    sitk.WriteImage(head, str(tmp_path / "neck_T1w.nii.gz"))
    info = preprocess_t1_case(tmp_path / "neck_T1w.nii.gz", tmp_path / "out" / "neck_0000.nii.gz",
                              transform_dir=tmp_path / "tr", registration_template_spacing_mm=3.0)
    meta = json.loads((tmp_path / "tr" / "preprocessing.json").read_text())
    assert [a["start"] for a in meta["registration_attempts"]] == ["moments"]
    assert meta["registration_start"] == "moments"
    assert info["registration_similarity"] < MIN_REGISTRATION_SIMILARITY  # the check will refuse it, as before
    assert (tmp_path / "out" / "neck_0000.nii.gz").is_file()
