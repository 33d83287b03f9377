"""The whole-brain registration check of convert-wmh: what scores as a registered head, what is refused, and the
one-line refusal of a FLAIR that is not a head."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_ataxia.cli import main as cli_main
from nnunet_ataxia.errors import InputError
from nnunet_ataxia.preprocessing.registration_check import (
    MIN_BRAIN_SIMILARITY,
    brain_registration_similarity,
    check_brain_registration,
    rank_mutual_information,
    registration_similarity,
)
from nnunet_ataxia.preprocessing.wmh_pipeline import mni_template

pytestmark = pytest.mark.usefixtures("sitk_one_thread")


@pytest.fixture(scope="module")
def template_3mm() -> tuple[sitk.Image, sitk.Image]:
    return mni_template(3.0)


def _shifted(mm: tuple[float, float, float]) -> sitk.Transform:
    return sitk.TranslationTransform(3, mm)


def test_rank_mutual_information_is_contrast_agnostic_and_zero_without_information():
    rs = np.random.RandomState(0)
    tissue = rs.randint(0, 4, 20000)
    template = np.array([10.0, 40.0, 70.0, 100.0])[tissue] + rs.normal(0, 3, tissue.size)
    t1_like = np.array([5.0, 30.0, 60.0, 90.0])[tissue] + rs.normal(0, 3, tissue.size)
    flair_like = np.array([5.0, 90.0, 60.0, 30.0])[tissue] + rs.normal(0, 3, tissue.size)  # not monotone
    a, b = rank_mutual_information(t1_like, template), rank_mutual_information(flair_like, template)
    assert a > 0.5 and abs(a - b) < 0.02
    assert rank_mutual_information(rs.normal(size=tissue.size), template) < 0.01


def test_the_t1_check_is_the_shared_measure_on_the_cerebellum_crop():
    # the T1 check's similarity of an image equals the shared function on its brain voxels (one implementation)
    from nnunet_ataxia.preprocessing.mri_pipeline import crop_to_box
    from nnunet_ataxia.preprocessing.registration import load_mni_template
    from nnunet_ataxia.preprocessing.registration_check import _template_crop

    crop = crop_to_box(load_mni_template(with_brain_mask=False)[0])
    template, brain = _template_crop()
    values = sitk.GetArrayFromImage(crop)[brain]
    assert registration_similarity(crop) == pytest.approx(rank_mutual_information(values[::5], template[::5]))
    assert registration_similarity(crop) > 0.9   # the template against itself


def test_a_registered_head_scores_high_and_a_misregistered_one_or_noise_below_the_threshold(template_3mm):
    template, mask = template_3mm
    inverted = sitk.Cast(mask, sitk.sitkFloat32) * (200.0 - template)   # another contrast, skull-stripped
    assert brain_registration_similarity(template, sitk.Transform(3, sitk.sitkIdentity), template, mask) > 0.5
    assert brain_registration_similarity(inverted, sitk.Transform(3, sitk.sitkIdentity), template, mask) > 0.3
    for mm in ((20.0, 0.0, 0.0), (0.0, 0.0, 40.0)):
        assert brain_registration_similarity(inverted, _shifted(mm), template, mask) < MIN_BRAIN_SIMILARITY
    noise = sitk.AdditiveGaussianNoise(sitk.Image(template.GetSize(), sitk.sitkFloat32) + 100.0, 20.0, 0.0, 3)
    noise.CopyInformation(template)
    assert brain_registration_similarity(noise, sitk.Transform(3, sitk.sitkIdentity), template, mask) < 0.01


def test_only_the_brain_inside_the_field_of_view_counts(template_3mm):
    template, mask = template_3mm
    identity = sitk.Transform(3, sitk.sitkIdentity)
    size = list(template.GetSize())
    upper = sitk.RegionOfInterest(template, [size[0], size[1], size[2] // 2], [0, 0, size[2] - size[2] // 2])
    full = brain_registration_similarity(template, identity, template, mask)
    assert brain_registration_similarity(upper, identity, template, mask) > 0.8 * full
    # the same half with the other half blank (zeros inside the field of view): the blank brain counts against it
    blank = sitk.GetArrayFromImage(template)
    blank[: size[2] - size[2] // 2] = 0.0
    blank_image = sitk.GetImageFromArray(blank)
    blank_image.CopyInformation(template)
    assert brain_registration_similarity(blank_image, identity, template, mask) < 0.8 * full


def test_check_names_the_file_and_returns_the_similarity(template_3mm):
    template, mask = template_3mm
    assert check_brain_registration("x.nii.gz", template, sitk.Transform(3, sitk.sitkIdentity), template,
                                    mask) >= MIN_BRAIN_SIMILARITY
    with pytest.raises(InputError, match=r"^sub-07_FLAIR.nii.gz: registration to MNI failed: no brain anatomy"):
        check_brain_registration("sub-07_FLAIR.nii.gz", template, _shifted((0.0, 40.0, 0.0)), template, mask)


@pytest.mark.slow
def test_convert_wmh_refuses_a_flair_that_is_not_a_head_in_one_line_and_writes_nothing(tmp_path, capsys):
    from nnunet_ataxia.synthesis.wmh_cases import make_synthetic_case

    case = make_synthetic_case(seed=0, flair_spacing=(1.8, 1.8, 5.0))
    rs = np.random.RandomState(0)
    noise = sitk.GetImageFromArray(rs.rand(*sitk.GetArrayFromImage(case["flair"]).shape).astype(np.float32) * 300)
    noise.CopyInformation(case["flair"])
    for cid, flair in (("c01", case["flair"]), ("c02", noise)):
        (tmp_path / "in" / cid).mkdir(parents=True)
        sitk.WriteImage(flair, str(tmp_path / "in" / cid / "FLAIR.nii.gz"))
        sitk.WriteImage(case["label"], str(tmp_path / "in" / cid / "wmh.nii.gz"))
    out = tmp_path / "raw" / "Dataset504_WMH"
    code = cli_main(["convert-wmh", "-i", str(tmp_path / "in"), "-o", str(out), "--flair-only", "--no-n4",
                     "--registration", "affine", "-np", "1"])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("error: ") and err.count("\n") == 1, err
    assert f"{tmp_path / 'in' / 'c02' / 'FLAIR.nii.gz'}: registration to MNI failed" in err
    assert not out.exists()
