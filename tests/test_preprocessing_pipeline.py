"""The preprocessing steps, the crop box, a whole case, and mapping back to native space (volumes within 2 %)."""
from __future__ import annotations

import json
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_ataxia.errors import InputError
from nnunet_ataxia.io.constants import BRAINSTEM_LABEL_ASEG, CEREBELLUM_LABELS_ASEG
from nnunet_ataxia.io.templates import desikan_killiany_atlas
from nnunet_ataxia.preprocessing.mri_pipeline import (
    CROP_SIZE,
    CROP_START_INDEX,
    crop_reference,
    crop_to_box,
    preprocess_t1_case,
    rescale_and_equalize,
)
from nnunet_ataxia.preprocessing.native_space import label_volumes_mm3, map_to_native, native_volumes_mm3
from nnunet_ataxia.preprocessing.registration import load_mni_template
from nnunet_ataxia.preprocessing.registration_check import MIN_CONFIDENT_SIMILARITY
from nnunet_ataxia.synthesis.template_subjects import cerebellum_brainstem_labels_mni, make_native_subject


def test_crop_box_holds_every_cerebellum_and_brainstem_voxel_of_the_atlas():
    atlas = desikan_killiany_atlas()
    wanted = np.isin(sitk.GetArrayViewFromImage(atlas), CEREBELLUM_LABELS_ASEG + (BRAINSTEM_LABEL_ASEG,))
    n_atlas = int(wanted.sum())
    assert n_atlas > 150_000  # ~ cerebellum + brainstem, 1 mm voxels
    # the atlas's own voxels, as physical points, all fall inside the box (index space of the crop grid)
    ref = crop_reference()
    idx = np.argwhere(wanted)[:, ::-1]  # (x, y, z)
    phys = np.array([atlas.TransformIndexToPhysicalPoint([int(v) for v in p]) for p in idx[::7]])
    d = np.array(ref.GetDirection()).reshape(3, 3)
    box_idx = (phys - np.array(ref.GetOrigin())) @ d / np.array(ref.GetSpacing())
    assert (box_idx >= 0).all() and (box_idx <= np.array(CROP_SIZE) - 1).all()
    # and resampling the atlas onto the box loses none of them
    in_box = sitk.Resample(atlas, ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0, atlas.GetPixelID())
    assert int(np.isin(sitk.GetArrayViewFromImage(in_box), CEREBELLUM_LABELS_ASEG + (BRAINSTEM_LABEL_ASEG,)).sum()) \
        == n_atlas
    # margin: at least 5 voxels in x and y on both sides (z starts at the template's lowest slice)
    lo, hi = box_idx.min(0), box_idx.max(0)
    assert (lo[:2] >= 5).all() and (np.array(CROP_SIZE)[:2] - 1 - hi[:2] >= 5).all() and CROP_SIZE[2] - 1 - hi[2] >= 5


def test_crop_box_is_the_stated_index_box_of_the_template():
    template, _ = load_mni_template(with_brain_mask=False)
    cropped = crop_to_box(template)
    assert cropped.GetSize() == (128, 128, 96)
    assert np.allclose(cropped.GetOrigin(), template.TransformIndexToPhysicalPoint(CROP_START_INDEX))
    x0, y0, z0 = CROP_START_INDEX
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(cropped),
                                  sitk.GetArrayViewFromImage(template)[z0:z0 + 96, y0:y0 + 128, x0:x0 + 128])
    assert sitk.GetArrayViewFromImage(cropped).shape == (96, 128, 128)  # nnU-Net patch_size [96, 128, 128]


def test_rescale_and_equalize_flattens_the_histogram_inside_the_mask_only():
    rng = np.random.default_rng(0)
    arr = rng.gamma(2.0, 300.0, size=(20, 30, 40)).astype(np.float32)
    mask_arr = np.zeros(arr.shape, np.uint8)
    mask_arr[2:18, 3:27, 4:36] = 1
    image, mask = sitk.GetImageFromArray(arr), sitk.GetImageFromArray(mask_arr)
    out = sitk.GetArrayFromImage(rescale_and_equalize(image, mask))
    inside = out[mask_arr > 0]
    assert out[mask_arr == 0].max() == 0.0
    assert 0.0 <= inside.min() and inside.max() == pytest.approx(255.0)
    # equalized: the quantiles of the output are (close to) evenly spaced on [0, 255]
    q = np.quantile(inside, [0.1, 0.25, 0.5, 0.75, 0.9])
    np.testing.assert_allclose(q, 255 * np.array([0.1, 0.25, 0.5, 0.75, 0.9]), atol=4.0)
    # monotone: intensity order is kept
    order = np.argsort(arr[mask_arr > 0])
    assert np.all(np.diff(inside[order]) >= -1e-3)


@pytest.fixture(scope="module")
def preprocessed_case(tmp_path_factory):
    """One 2 mm native subject (known affine, bias) run through the whole pipeline."""
    root = tmp_path_factory.mktemp("case")
    t1, labels, true = make_native_subject(2.0, bias_strength=0.6, seed=5)
    sitk.WriteImage(t1, str(root / "sub01_T1w.nii.gz"))
    sitk.WriteImage(labels, str(root / "sub01_seg.nii.gz"))
    info = preprocess_t1_case(root / "sub01_T1w.nii.gz", root / "out" / "sub01_0000.nii.gz",
                              label_paths=[root / "sub01_seg.nii.gz"], out_label_paths=[root / "out" / "sub01.nii.gz"],
                              transform_dir=root / "transforms" / "sub01", registration_template_spacing_mm=2.0)
    return root, info, t1, labels, true


def test_case_outputs_and_transform_folder(preprocessed_case):
    root, info, t1, _, _ = preprocessed_case
    image = sitk.ReadImage(str(root / "out" / "sub01_0000.nii.gz"))
    label = sitk.ReadImage(str(root / "out" / "sub01.nii.gz"))
    assert image.GetSize() == label.GetSize() == (128, 128, 96)
    assert np.allclose(image.GetOrigin(), crop_reference().GetOrigin())
    arr = sitk.GetArrayViewFromImage(image)
    assert arr.min() >= 0 and arr.max() == pytest.approx(255.0, abs=0.5)
    assert set(np.unique(sitk.GetArrayViewFromImage(label))) == {0, 1, 2}
    meta = json.loads((root / "transforms" / "sub01" / "preprocessing.json").read_text())
    assert meta["native_geometry"]["size"] == list(t1.GetSize())
    assert meta["preprocessed_geometry"]["size"] == [128, 128, 96]
    assert (root / "transforms" / "sub01" / "mni_to_native.tfm").is_file()
    assert set(info["timings_s"]) == {"n4", "registration", "rest"}
    # a good registration runs once, from the centres of mass
    assert meta["registration_start"] == "moments"
    assert [a["start"] for a in meta["registration_attempts"]] == ["moments"]
    assert info["registration_similarity"] >= MIN_CONFIDENT_SIMILARITY


def test_skull_strip_zeroes_everything_outside_the_brain(preprocessed_case):
    root, _, _, _, _ = preprocessed_case
    image = sitk.GetArrayFromImage(sitk.ReadImage(str(root / "out" / "sub01_0000.nii.gz")))
    _, mask = load_mni_template()
    mask_box = sitk.GetArrayFromImage(crop_to_box(sitk.BinaryDilate(mask, [2] * 3)))
    assert image[mask_box == 0].max() == 0.0
    assert np.count_nonzero(image[mask_box > 0]) > 0.9 * np.count_nonzero(mask_box)


def test_mni_mask_mapped_back_matches_native_ground_truth_volume_within_2_percent(preprocessed_case):
    root, info, _, native_labels, _ = preprocessed_case
    truth = label_volumes_mm3(native_labels)
    # the atlas labels themselves, on the crop grid in MNI space (independent of the case's own label map)
    atlas_box = crop_to_box(cerebellum_brainstem_labels_mni())
    tr = root / "transforms" / "sub01"
    for interpolation in ("nearest", "linear"):
        vols = native_volumes_mm3(atlas_box, tr, interpolation=interpolation)
        for label in (1, 2):
            assert vols[label]["native_mm3"] == pytest.approx(truth[label], rel=0.02), (interpolation, label)
            assert vols[label]["native_from_determinant_mm3"] == pytest.approx(truth[label], rel=0.02)
    # the volume in MNI mm³ differs from the native one by the registration's scale (det ~1.05 here)
    assert vols[1]["mni_mm3"] < 0.97 * truth[1]
    assert info["linear_determinant"] == pytest.approx(1.06 * 0.96 * 1.03, rel=0.01)
    # the case's own label map, preprocessed then mapped back, lands on the native grid with its volume kept
    back = map_to_native(root / "out" / "sub01.nii.gz", tr)
    assert back.GetSize() == native_labels.GetSize()
    for label, v in label_volumes_mm3(back).items():
        assert v == pytest.approx(truth[label], rel=0.02)


def test_no_crop_keeps_the_full_mni_grid(tmp_path):
    t1, _, _ = make_native_subject(3.0, bias_strength=0.0)
    sitk.WriteImage(t1, str(tmp_path / "t1.nii.gz"))
    preprocess_t1_case(tmp_path / "t1.nii.gz", tmp_path / "out.nii.gz", transform_dir=tmp_path / "tr",
                       crop=False, skull_strip=False, registration_template_spacing_mm=3.0)
    out = sitk.ReadImage(str(tmp_path / "out.nii.gz"))
    assert out.GetSize() == (182, 218, 182)
    pred = sitk.Cast(out > 100, sitk.sitkUInt8)
    assert map_to_native(pred, tmp_path / "tr").GetSize() == t1.GetSize()


def test_bad_inputs_raise_input_error_naming_the_file(tmp_path):
    t1, labels, _ = make_native_subject(3.0, bias_strength=0.0)
    sitk.WriteImage(t1, str(tmp_path / "t1.nii.gz"))
    shifted = sitk.Image(labels)
    shifted.SetOrigin([o + 5.0 for o in labels.GetOrigin()])
    sitk.WriteImage(shifted, str(tmp_path / "shifted_seg.nii.gz"))
    with pytest.raises(InputError, match="shifted_seg.nii.gz: label map geometry differs"):
        preprocess_t1_case(tmp_path / "t1.nii.gz", tmp_path / "o.nii.gz", label_paths=[tmp_path / "shifted_seg.nii.gz"],
                           out_label_paths=[tmp_path / "o_seg.nii.gz"], transform_dir=tmp_path / "tr")
    (tmp_path / "garbage.nii.gz").write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(InputError, match="garbage.nii.gz: unreadable image"):
        preprocess_t1_case(tmp_path / "garbage.nii.gz", tmp_path / "o.nii.gz", transform_dir=tmp_path / "tr")
    assert not (tmp_path / "o.nii.gz").exists() and not (tmp_path / "tr").exists()


def test_mask_on_the_wrong_grid_is_refused(preprocessed_case):
    root = preprocessed_case[0]
    with pytest.raises(InputError, match="geometry differs from the preprocessed grid"):
        map_to_native(sitk.Image([10, 10, 10], sitk.sitkUInt8), root / "transforms" / "sub01")
    with pytest.raises(InputError, match="preprocessing.json: missing"):
        map_to_native(root / "out" / "sub01.nii.gz", root)
