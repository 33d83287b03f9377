"""Registration, N4 and resampling on real MNI152 anatomy (down-sampled to 2-3 mm to stay fast)."""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_ataxia.errors import InputError
from nnunet_ataxia.io.images import read_image
from nnunet_ataxia.preprocessing.registration import (
    affine_register_to_mni,
    linear_part_determinant,
    load_mni_template,
    n4_bias_correction,
    resample_to,
    rigid_register,
)
from nnunet_ataxia.synthesis.template_subjects import cerebellum_brainstem_labels_mni, known_affine, make_native_subject


def _cerebellum_points(step: int = 20) -> list[tuple[float, float, float]]:
    labels = cerebellum_brainstem_labels_mni()
    idx = np.argwhere(sitk.GetArrayViewFromImage(labels) == 1)[::step]
    return [labels.TransformIndexToPhysicalPoint([int(i) for i in p[::-1]]) for p in idx]


def _displacements(est: sitk.Transform, true: sitk.Transform, points) -> np.ndarray:
    return np.array([np.linalg.norm(np.subtract(est.TransformPoint(p), true.TransformPoint(p))) for p in points])


def test_template_is_real_mni152_and_copies_are_independent():
    template, mask = load_mni_template()
    assert template.GetSize() == (182, 218, 182) and template.GetSpacing() == (1.0, 1.0, 1.0)
    brain_ml = np.count_nonzero(sitk.GetArrayViewFromImage(mask)) / 1000.0
    assert 1200 < brain_ml < 2000, brain_ml  # an adult brain, in ml
    template.SetOrigin((0.0, 0.0, 0.0))
    assert load_mni_template()[0].GetOrigin() == (-90.0, 126.0, -72.0)
    assert load_mni_template(with_brain_mask=False)[1] is None


def test_known_affine_is_recovered_within_1mm_at_the_cerebellum():
    template, mask = load_mni_template(spacing_mm=3.0)
    true = known_affine(rotation_deg=(12.0, -8.0, 14.0), scale=(1.07, 0.95, 1.03), translation_mm=(6.0, -9.0, 5.0))
    native, _, _ = make_native_subject(2.5, mni_to_native=true, bias_strength=0.0)
    est = affine_register_to_mni(native, template=template, template_mask=mask, seed=0)
    d = _displacements(est, true, _cerebellum_points())
    assert d.max() < 1.0, f"mean {d.mean():.2f} mm, max {d.max():.2f} mm"
    assert linear_part_determinant(est) == pytest.approx(linear_part_determinant(true), rel=0.01)


def test_exhaustive_initialization_recovers_a_large_rotation():
    # 30 degrees about two axes: beyond what the moments initialization + local optimizer alone capture
    template, mask = load_mni_template(spacing_mm=3.0)
    true = known_affine(rotation_deg=(28.0, 0.0, 30.0), scale=(1.0, 1.0, 1.0), translation_mm=(0.0, 0.0, 0.0))
    native, _, _ = make_native_subject(3.0, mni_to_native=true, bias_strength=0.0)
    points = _cerebellum_points(step=60)
    est = affine_register_to_mni(native, template=template, template_mask=mask, exhaustive_init=True)
    d_exhaustive = _displacements(est, true, points)
    assert d_exhaustive.max() < 1.5, f"max {d_exhaustive.max():.2f} mm"
    est_moments = affine_register_to_mni(native, template=template, template_mask=mask, exhaustive_init=False)
    assert _displacements(est_moments, true, points).max() > 5.0  # the search is what makes this work


def test_rigid_register_recovers_a_rigid_motion():
    template, _ = load_mni_template(spacing_mm=3.0)
    centre = template.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in template.GetSize()])
    true = sitk.Euler3DTransform(centre, np.radians(5.0), np.radians(-4.0), np.radians(6.0), (4.0, -3.0, 2.0))
    moving = sitk.Resample(template, template, true.GetInverse(), sitk.sitkLinear, 0.0)  # moving(true(p)) = fixed(p)
    est = rigid_register(template, moving, seed=1)
    d = _displacements(est, true, _cerebellum_points(step=60))
    assert d.max() < 1.0, f"max {d.max():.2f} mm"


def test_n4_removes_most_of_a_known_multiplicative_bias():
    clean, _, tfm = make_native_subject(2.5, bias_strength=0.0)
    biased, _, _ = make_native_subject(2.5, mni_to_native=tfm, bias_strength=1.0, seed=3)
    inside = sitk.GetArrayViewFromImage(clean) > 0.2 * float(sitk.GetArrayViewFromImage(clean).max())

    def log_bias_sd(image):  # spread of log(image / clean) inside the brain: 0 for a constant (removed) bias
        return float(np.std(np.log(sitk.GetArrayViewFromImage(image)[inside] /
                                   sitk.GetArrayViewFromImage(clean)[inside])))

    corrected, log_field = n4_bias_correction(biased, return_log_bias=True)
    before, after = log_bias_sd(biased), log_bias_sd(corrected)
    assert before > 0.08
    assert after < 0.4 * before, (before, after)
    assert corrected.GetSize() == biased.GetSize() and log_field.GetSize() == biased.GetSize()


def test_resample_to_keeps_label_values_and_identity_is_exact():
    labels = cerebellum_brainstem_labels_mni()
    same = resample_to(labels, labels, sitk.Transform(), is_label=True)
    assert same.GetPixelID() == labels.GetPixelID()
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(same), sitk.GetArrayViewFromImage(labels))
    shifted = resample_to(labels, labels, sitk.TranslationTransform(3, (0.4, 0.0, 0.0)), is_label=True)
    assert set(np.unique(sitk.GetArrayViewFromImage(shifted))) == {0, 1, 2}


def test_unreadable_and_missing_files_raise_input_error_naming_the_file(tmp_path):
    bad = tmp_path / "broken_T1w.nii.gz"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(InputError, match="broken_T1w.nii.gz"):
        read_image(bad)
    with pytest.raises(InputError, match="missing_T1w.nii.gz: image not found"):
        read_image(tmp_path / "missing_T1w.nii.gz")
