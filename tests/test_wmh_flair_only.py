"""FLAIR-only convert-wmh on generated clinical-style scans (16 slices of 8 mm), bad-input messages, and the real FLAIR
of ../shared/real_scans when present (skipped cleanly otherwise)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_ataxia.cli import main as cli_main
from nnunet_ataxia.preprocessing.affine_matrices import lps_to_ras
from nnunet_ataxia.preprocessing.wmh_pipeline import WMHOptions
from nnunet_ataxia.synthesis.wmh_cases import make_synthetic_case

FAST = WMHOptions(n4_iterations=(20, 20), mni_spacing_mm=3.0, mni_iterations=100, bspline_mesh_mm=40.0,
                  bspline_levels_mm=(6.0, 3.0), bspline_iterations=15, bspline_samples=3000)
THICK = dict(flair_spacing=(0.9, 0.9, 8.0), flair_extent_mm=(150.0, 185.0, 128.0))  # 167 x 206 x 16 voxels
REAL_FLAIR = Path(__file__).resolve().parents[2] / "shared" / "real_scans" / "flair_1mm.nii.gz"


pytestmark = pytest.mark.usefixtures("sitk_one_thread")


def mni_template_mask() -> sitk.Image:
    from nnunet_ataxia.preprocessing.wmh_pipeline import mni_template

    return mni_template(1.0)[1]


def _arr(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def _write_flair_case(folder: Path, case: dict, with_label: bool = True) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(case["flair"], str(folder / "FLAIR.nii.gz"), useCompression=True)
    if with_label:
        sitk.WriteImage(case["label"], str(folder / "wmh.nii.gz"), useCompression=True)


@pytest.fixture(scope="module")
def thick(tmp_path_factory):
    """Two FLAIR-only training cases and one test case of 16 slices of 8 mm (a mild non-linear warp), converted."""
    from nnunet_ataxia.dataset_conversion.Dataset504_WMH import convert_wmh_dataset

    root = tmp_path_factory.mktemp("wmh_flair_only")
    truth = {}
    for seed, where in ((0, "train/c00"), (1, "train/c01"), (5, "test/c05")):
        # c01 is not skull-stripped: a bright 6 mm scalp/skull shell and background noise around the brain
        case = make_synthetic_case(seed=seed, warp_mm=2.0, skull_mm=6.0 if seed == 1 else 0.0, **THICK)
        _write_flair_case(root / where, case, with_label=seed != 5)
        truth[Path(where).name] = case
    out = convert_wmh_dataset(root / "train", root / "raw" / "Dataset504_WMH", test_dir=root / "test",
                              options=FAST, num_processes=1)
    return root, out, truth


@pytest.mark.slow
def test_flair_only_dataset_has_flair_and_location_channels(thick):
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    from nnunet_ataxia.evaluation.wmh_statistics import brain_mask_for_case

    _, out, truth = thick
    verify_dataset_integrity(str(out), num_processes=1)
    ds = json.loads((out / "dataset.json").read_text())
    assert ds["channel_names"] == {"0": "FLAIR", **{str(i): "noNorm" for i in range(1, 9)}}
    assert ds["image_channels"] == ["FLAIR"] and ds["mni_registration"] == "bspline" and ds["numTraining"] == 2
    assert sorted(p.name for p in (out / "imagesTs").iterdir()) == [f"c05_{c:04d}.nii.gz" for c in range(9)]
    assert sorted(p.name for p in (out / "transforms" / "c00").iterdir()) == [
        "flair_to_mni.txt", "mni_warp.nii.gz", "mni_warp_inverse.nii.gz"]  # no T1, no flair_to_t1.tfm
    manifest = json.loads((out / "conversion_manifest.json").read_text())
    assert {v["info"]["registration"] for v in manifest.values()} == {"bspline"}
    for cid, role in (("c00", "Tr"), ("c05", "Ts")):
        chans = np.stack([_arr(out / f"images{role}/{cid}_{c:04d}.nii.gz") for c in range(9)])
        brain = _arr(out / f"brainmasks/{cid}.nii.gz") > 0
        flair = truth[cid]["flair"]
        assert chans.shape[1:] == brain.shape == (16, 206, 167) == sitk.GetArrayFromImage(flair).shape
        assert _arr(out / f"images{role}/{cid}_0000.nii.gz").shape == brain.shape
        img = sitk.ReadImage(str(out / f"images{role}/{cid}_0005.nii.gz"))
        assert img.GetSpacing() == pytest.approx(flair.GetSpacing())  # FLAIR grid kept: acquisition-plane slices
        assert 0.3 < brain.mean() < 0.8
        for c in range(9):
            assert chans[c][brain].min() >= 0 and chans[c][brain].max() == pytest.approx(1.0) and \
                (chans[c][~brain] == 0).all(), c
        assert ((chans[1:] > 0).any(axis=0) == brain).all()
        # the evaluation finds the brain mask in the FLAIR-only channel layout (_0001.._0008)
        assert (brain_mask_for_case(cid, image_dirs=[out / f"images{role}"]) == brain).all()
        # channel 0 is the FLAIR: lesions are bright in it
        lesion = sitk.GetArrayFromImage(truth[cid]["label"]) == 1
        assert chans[0][lesion & brain].mean() > chans[0][brain & ~lesion].mean() + 0.2


@pytest.mark.slow
def test_flair_only_features_are_sane_on_thick_slices(thick):
    from nnunet_ataxia.preprocessing.wmh_location_features import distance_to_boundary_mm
    from nnunet_ataxia.preprocessing.wmh_mni_map import MNIMap
    from nnunet_ataxia.preprocessing.wmh_ventricles import warp_atlas_ventricles

    _, out, truth = thick
    cid = "c01"
    flair = truth[cid]["flair"]
    brain = _arr(out / f"brainmasks/{cid}.nii.gz") > 0
    ch = {c: _arr(out / f"imagesTr/{cid}_{c:04d}.nii.gz") for c in range(1, 9)}
    # MNI coordinates: min-max scaled true coordinates (RAS: x right, y anterior, z superior)
    displacement = sitk.GetArrayFromImage(sitk.TransformToDisplacementField(
        truth[cid]["flair_to_mni"], sitk.sitkVectorFloat64, flair.GetSize(), flair.GetOrigin(), flair.GetSpacing(),
        flair.GetDirection()))
    mni = lps_to_ras(MNIMap(np.eye(4)).mni_points(flair) + np.moveaxis(displacement, -1, 0))
    for c, axis in ((1, 0), (2, 1), (3, 2)):
        v = mni[axis][brain]
        expected = (v - v.min()) / (v.max() - v.min())
        assert np.abs(ch[c][brain] - expected).mean() < 0.03, c
    assert np.corrcoef(ch[3][brain], np.nonzero(brain)[0])[0, 1] > 0.95  # z grows with the slice index (superior)
    # in-plane distances in mm within each 8 mm slice: the cortex distance is the 2D one (not the 3D one)
    raw = distance_to_boundary_mm(brain, tuple(reversed(flair.GetSpacing())))
    np.testing.assert_allclose(ch[6][brain], raw[brain] / raw[brain].max(), atol=1e-6)
    # ventricle distances: ~0 on the true ventricles, larger far from them; midsagittal distance ~ |x|
    left, right = warp_atlas_ventricles(flair, truth[cid]["flair_to_mni"])
    assert ch[4][left & brain].mean() < 0.05 and ch[5][right & brain].mean() < 0.05
    assert ch[4][right & brain].mean() > 0.1 and ch[5][left & brain].mean() > 0.1
    absx = np.abs(mni[0][brain])
    assert np.corrcoef(ch[7][brain], absx)[0, 1] > 0.95
    # not skull-stripped: the brain mask (template mask carried by the registration) leaves the skull shell out
    true_brain = sitk.GetArrayFromImage(sitk.Resample(mni_template_mask(), flair, truth[cid]["flair_to_mni"],
                                                      sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)) > 0
    values = sitk.GetArrayFromImage(truth[cid]["flair"])
    skull = (values > 650) & (values < 800) & ~true_brain  # the shell is 700 + |noise|; lesions (900) lie in the brain
    assert skull.sum() > 1000 and (brain & skull).sum() < 0.01 * skull.sum()
    assert 2 * (brain & true_brain).sum() / (brain.sum() + true_brain.sum()) > 0.9
    # the prior is highest where the training lesions are
    lesion = _arr(out / f"labelsTr/{cid}.nii.gz") == 1
    assert ch[8][lesion].mean() > 3 * ch[8][brain & ~lesion].mean()


@pytest.mark.slow
def test_flair_only_qc_picture(thick, tmp_path):
    from nnunet_ataxia.dataset_conversion.wmh_qc import dataset_case_qc

    _, out, _ = thick
    png = dataset_case_qc(out, "c05", tmp_path / "c05.png")
    assert png.stat().st_size > 10_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_flair_only_flag_ignores_t1_and_bad_inputs_name_the_file(tmp_path, capsys):
    small = sitk.Image([16, 16, 8], sitk.sitkFloat32) + 1.0
    small.SetSpacing((1.0, 1.0, 5.0))
    noise = sitk.AdditiveGaussianNoise(small, 1.0, 0.0, 1)
    lab = sitk.Image([16, 16, 8], sitk.sitkUInt8)
    lab.CopyInformation(small)
    for cid in ("a", "b"):
        (tmp_path / "in" / cid).mkdir(parents=True)
        sitk.WriteImage(noise, str(tmp_path / "in" / cid / "FLAIR.nii.gz"))
        sitk.WriteImage(lab, str(tmp_path / "in" / cid / "wmh.nii.gz"))
    sitk.WriteImage(noise, str(tmp_path / "in" / "a" / "T1.nii.gz"))
    out = tmp_path / "raw" / "Dataset504_WMH"

    def fails(*expected: str, extra: tuple = ()) -> None:
        assert cli_main(["convert-wmh", "-i", str(tmp_path / "in"), "-o", str(out), *extra]) == 1
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, err
        for part in expected:
            assert part in err, err
        assert not out.exists()

    # T1 for case a but not for case b
    fails(str(tmp_path / "in" / "b"), "no T1 image", str(tmp_path / "in" / "a" / "T1.nii.gz"), "--flair-only")
    # with --flair-only the T1 is ignored; now a 2D FLAIR is the problem, named
    flat = sitk.Image([64, 64], sitk.sitkFloat32) + 1.0
    sitk.WriteImage(flat, str(tmp_path / "in" / "b" / "FLAIR.nii.gz"))
    fails(str(tmp_path / "in" / "b" / "FLAIR.nii.gz"), "2D", extra=("--flair-only",))
    # a single-slice 3D FLAIR (64 x 64 x 2): too few slices for any registration
    thin = sitk.Image([64, 64, 2], sitk.sitkFloat32) + 1.0
    sitk.WriteImage(thin, str(tmp_path / "in" / "b" / "FLAIR.nii.gz"))
    fails(str(tmp_path / "in" / "b" / "FLAIR.nii.gz"), "at least 4", extra=("--flair-only",))


@pytest.mark.skipif(not REAL_FLAIR.is_file(), reason="../shared/real_scans/flair_1mm.nii.gz not present")
def test_real_flair_only_case_is_anatomically_oriented(tmp_path):
    """The real FLAIR (oblique 1 mm) in FLAIR-only mode, fast settings: coordinates grow towards the subject's right,
    front and top; the brain and the ventricles have plausible sizes; ventricle distances are 0 on the ventricles."""
    from dataclasses import replace

    from nnunet_ataxia.dataset_conversion.wmh_layouts import WMHCaseFiles
    from nnunet_ataxia.preprocessing.wmh_pipeline import preprocess_case

    case = WMHCaseFiles("real", str(REAL_FLAIR.parent), "plain", None, str(REAL_FLAIR))
    pre = preprocess_case(case, replace(FAST, n4=False, registration="affine"))
    brain, f = pre.brain, pre.features
    voxel_ml = float(np.prod(pre.reference.GetSpacing())) / 1000.0
    assert 700 < brain.sum() * voxel_ml < 1300  # the skull-stripped scan holds ~1070 ml of non-zero voxels
    # physical RAS positions of the voxels (the scan's own header) vs the MNI coordinate channels
    from nnunet_ataxia.preprocessing.affine_matrices import grid_points

    ras = lps_to_ras(grid_points(pre.reference))
    for name, axis in (("x_mni", 0), ("y_mni", 1), ("z_mni", 2)):
        assert np.corrcoef(f[name][brain], ras[axis][brain])[0, 1] > 0.9, name
    near = f["dist_left_ventricle"][brain] == 0
    assert 3 < near.sum() * voxel_ml < 80  # the left lateral ventricle: a few to tens of ml
    assert f["dist_right_ventricle"][brain][near].min() > 0
