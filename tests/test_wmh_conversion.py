"""convert-wmh end to end on generated cases (plain and MICCAI layouts) made from the real MNI152 template."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from nnunet_ataxia.cli import main as cli_main
from nnunet_ataxia.preprocessing.affine_matrices import grid_points, lps_to_ras, matrix_from_transform
from nnunet_ataxia.preprocessing.wmh_pipeline import WMHOptions
from nnunet_ataxia.synthesis.wmh_cases import make_synthetic_case, write_miccai_case, write_plain_case

# affine MNI registration keeps these convention tests fast; the B-spline default is tested in
# test_wmh_nonlinear_registration.py and test_wmh_flair_only.py
FAST = WMHOptions(n4_iterations=(20, 20), rigid_iterations=100, mni_spacing_mm=3.0, mni_iterations=100,
                  registration="affine")
TRAIN_SEEDS, TEST_SEED = (0, 1, 2, 3), 10


pytestmark = pytest.mark.usefixtures("sitk_one_thread")


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """4 training + 1 test case in the plain layout, converted once."""
    from nnunet_ataxia.dataset_conversion.Dataset504_WMH import convert_wmh_dataset

    root = tmp_path_factory.mktemp("wmh_plain")
    truth = {}
    for seed in TRAIN_SEEDS + (TEST_SEED,):
        case = make_synthetic_case(seed=seed)
        where = root / ("test" if seed == TEST_SEED else "train") / f"sub{seed:02d}"
        write_plain_case(where, case)
        truth[f"sub{seed:02d}"] = case
    out = convert_wmh_dataset(root / "train", root / "raw" / "Dataset504_WMH", test_dir=root / "test",
                              options=FAST, num_processes=1)
    return root, out, truth


def _arr(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


@pytest.mark.slow
def test_plain_dataset_passes_nnunet_integrity_check_and_follows_conventions(plain):
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    _, out, truth = plain
    verify_dataset_integrity(str(out), num_processes=1)
    ds = json.loads((out / "dataset.json").read_text())
    assert ds["channel_names"] == {"0": "T1", "1": "FLAIR", **{str(i): "noNorm" for i in range(2, 10)}}
    assert ds["labels"] == {"background": 0, "wmh": 1, "ignore": 2} and ds["numTraining"] == 4
    assert sorted(p.name for p in (out / "imagesTs").iterdir()) == [f"sub10_{c:04d}.nii.gz" for c in range(10)]
    assert (out / "labelsTs" / "sub10.nii.gz").is_file()
    for cid in ("sub00", "sub10"):
        role = "Ts" if cid == "sub10" else "Tr"
        chans = np.stack([_arr(out / f"images{role}/{cid}_{c:04d}.nii.gz") for c in range(10)])
        brain = _arr(out / f"brainmasks/{cid}.nii.gz") > 0
        assert chans.shape[1:] == brain.shape == sitk.GetArrayFromImage(truth[cid]["flair"]).shape
        assert brain.sum() > 0.2 * brain.size
        for c in range(10):
            assert chans[c][brain].min() >= 0 and chans[c][brain].max() == pytest.approx(1.0) and \
                (chans[c][~brain] == 0).all(), c
        assert ((chans[2:] > 0).any(axis=0) == brain).all()
        label = _arr(out / f"labels{role}/{cid}.nii.gz")
        assert set(np.unique(label)) <= {0, 1, 2} and (label == 1).sum() > 0
        assert (label == sitk.GetArrayFromImage(truth[cid]["label"])).all()


@pytest.mark.slow
def test_rigid_offset_and_mni_registration_recovered(plain):
    _, out, truth = plain
    for cid in ("sub00", "sub01", "sub10"):
        flair = truth[cid]["flair"]
        brain = _arr(out / f"brainmasks/{cid}.nii.gz") > 0
        pts = grid_points(flair)[:, brain][:, ::50]  # FLAIR brain points, LPS
        hom = np.vstack([pts, np.ones(pts.shape[1])])
        found = matrix_from_transform(sitk.ReadTransform(str(out / f"transforms/{cid}/flair_to_t1.tfm")))
        expected = np.linalg.inv(truth[cid]["t1_to_flair"])
        err = np.abs(found @ hom - expected @ hom)[:3]
        sx, sy, _ = flair.GetSpacing()
        assert err[0].max() < sx and err[1].max() < sy, (cid, err.max(axis=1))  # within one FLAIR voxel in-plane
        to_mni = np.loadtxt(out / f"transforms/{cid}/flair_to_mni.txt")
        mni_err = np.linalg.norm((to_mni @ hom - truth[cid]["subject_to_mni"] @ hom)[:3], axis=0)
        assert mni_err.max() < 3.0, (cid, mni_err.max())


@pytest.mark.slow
def test_location_channels_match_ground_truth_anatomy(plain):
    from nnunet_ataxia.preprocessing.wmh_ventricles import warp_atlas_ventricles

    _, out, truth = plain
    cid = "sub01"
    flair = truth[cid]["flair"]
    brain = _arr(out / f"brainmasks/{cid}.nii.gz") > 0
    chans = {c: _arr(out / f"imagesTr/{cid}_{c:04d}.nii.gz") for c in range(2, 10)}
    mni = lps_to_ras(grid_points(flair, truth[cid]["subject_to_mni"]))
    for c, axis in ((2, 0), (3, 1), (4, 2)):  # x, y, z in MNI, min-max over the brain
        v = mni[axis][brain]
        np.testing.assert_allclose(chans[c][brain], (v - v.min()) / (v.max() - v.min()), atol=0.03)
    # midsagittal distance ~ |x_mni| scaled by its maximum over the brain (near-axial case, small rotation)
    absx = np.abs(mni[0][brain])
    assert np.abs(chans[8][brain] - absx / absx.max()).mean() < 0.03
    assert chans[8][brain & (np.abs(mni[0]) < 0.5)].max() < 0.05
    # ventricle distances: 0 on the true (atlas) ventricle where the image shows it (the refinement drops the
    # partial-volume rim of the 2.4 x 2.4 x 5 mm voxels, so most but not all true voxels), never outside it, and > 0
    # in the other ventricle
    left, right = warp_atlas_ventricles(flair, truth[cid]["subject_to_mni"])
    assert left.sum() > 20 and right.sum() > 20
    for channel, own, other in ((chans[5], left, right), (chans[6], right, left)):
        zero = brain & (channel == 0)
        assert (channel[own] == 0).mean() > 0.75 and (channel[other] > 0).all()
        assert (zero & ndimage.binary_dilation(own)).sum() >= 0.95 * zero.sum()
    # the prior is highest where the training lesions are
    lesion = _arr(out / f"labelsTr/{cid}.nii.gz") == 1
    assert chans[9][lesion].mean() > 3 * chans[9][brain & ~lesion].mean()


@pytest.mark.slow
def test_prior_ignores_test_labels_and_done_cases_are_reused(plain, capsys):
    from nnunet_ataxia.dataset_conversion.Dataset504_WMH import convert_wmh_dataset

    root, out, truth = plain
    info = json.loads((out / "wmh_prior.json").read_text())
    assert info["built_from"] == ["sub00", "sub01", "sub02", "sub03"]
    before = {p: _arr(out / p) for p in ("wmh_prior_mni.nii.gz", "imagesTr/sub00_0009.nii.gz",
                                         "imagesTs/sub10_0009.nii.gz", "labelsTs/sub10.nii.gz")}
    inode = os.stat(out / "imagesTr/sub02_0001.nii.gz").st_ino
    # give the test case a huge lesion: it must change nothing in the prior
    label = truth["sub10"]["label"]
    arr = sitk.GetArrayFromImage(label)
    arr[:, 20:60, 10:50] = 1
    big = sitk.GetImageFromArray(arr)
    big.CopyInformation(label)
    sitk.WriteImage(big, str(root / "test/sub10/wmh.nii.gz"))
    convert_wmh_dataset(root / "train", out, test_dir=root / "test", options=FAST, num_processes=1)
    assert "4 case(s) already converted, 1 to do (1 with changed inputs or options)" in capsys.readouterr().out
    assert os.stat(out / "imagesTr/sub02_0001.nii.gz").st_ino == inode  # hard link of the reused file
    assert (_arr(out / "labelsTs/sub10.nii.gz") != before["labelsTs/sub10.nii.gz"]).any()
    for p in ("wmh_prior_mni.nii.gz", "imagesTr/sub00_0009.nii.gz"):
        assert (_arr(out / p) == before[p]).all(), p
    # the test case itself was re-registered (its inputs changed): same prior, registration-level differences only
    np.testing.assert_allclose(_arr(out / "imagesTs/sub10_0009.nii.gz"), before["imagesTs/sub10_0009.nii.gz"],
                               atol=0.03)
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temporary folders left


@pytest.mark.slow
def test_miccai_layout_with_ignore_label(tmp_path):
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    layout = {"Utrecht/0": 0, "Amsterdam/GE3T/100": 1, "Amsterdam/Philips_VU/101": 2}
    for rel, seed in layout.items():
        write_miccai_case(tmp_path / "training" / rel, make_synthetic_case(seed=seed))
    write_miccai_case(tmp_path / "test" / "Singapore" / "60", make_synthetic_case(seed=TEST_SEED), with_label=False)
    out = tmp_path / "raw" / "Dataset504_WMH"
    code = cli_main(["convert-wmh", "-i", str(tmp_path / "training"), "-t", str(tmp_path / "test"), "-o", str(out),
                     "--mni-spacing", "3", "--registration", "affine", "--prior-fold", "0", "--num-folds", "3"])
    assert code == 0
    verify_dataset_integrity(str(out), num_processes=1)
    ids = sorted(p.name[:-7] for p in (out / "labelsTr").iterdir())
    assert ids == ["Amsterdam_GE3T_100", "Amsterdam_Philips-VU_101", "Utrecht_0"]
    assert sorted({p.name[:-12] for p in (out / "imagesTs").iterdir()}) == ["Singapore_60"]
    assert not (out / "labelsTs").exists()
    assert any((_arr(out / f"labelsTr/{i}.nii.gz") == 2).any() for i in ids)  # "other pathology" kept as ignore
    splits = json.loads((out / "splits_final.json").read_text())
    prior_cases = json.loads((out / "wmh_prior.json").read_text())["built_from"]
    assert prior_cases == splits[0]["train"] and not set(prior_cases) & set(splits[0]["val"])
    # pre/ T1 is already on the FLAIR grid: no registration, identity transform
    tfm = matrix_from_transform(sitk.ReadTransform(str(out / "transforms/Utrecht_0/flair_to_t1.tfm")))
    np.testing.assert_allclose(tfm, np.eye(4), atol=1e-9)


# --- bad input: one message naming the file and the problem, no dataset folder ------------------------------------

def _small_case(folder: Path) -> dict:
    flair = sitk.Image([16, 16, 4], sitk.sitkFloat32)
    flair.SetSpacing((1.2, 1.0, 5.0))
    t1 = sitk.Image([16, 16, 16], sitk.sitkFloat32)
    label = sitk.Image([16, 16, 4], sitk.sitkUInt8)
    label.SetSpacing((1.2, 1.0, 5.0))
    folder.mkdir(parents=True)
    for name, img in (("T1", t1), ("FLAIR", flair), ("wmh", label)):
        sitk.WriteImage(img, str(folder / f"{name}.nii.gz"))
    return {"flair": flair, "label": label}


@pytest.mark.parametrize("problem", ["no_t1", "mask_space", "empty_mask", "label_values"])
def test_bad_input_names_file_and_problem_and_leaves_no_dataset(tmp_path, capsys, problem):
    case = tmp_path / "in" / "c01"
    imgs = _small_case(case)
    if problem == "no_t1":  # T1 for another case but not for this one (FLAIR-only needs all cases without T1)
        other = tmp_path / "in" / "c02"
        other.mkdir()
        for name in ("T1", "FLAIR", "wmh"):
            (other / f"{name}.nii.gz").write_bytes((case / f"{name}.nii.gz").read_bytes())
        (case / "T1.nii.gz").unlink()
        expected = [str(case), "no T1 image", str(other / "T1.nii.gz"), "--flair-only"]
    elif problem == "mask_space":
        mask = sitk.Image([16, 16, 4], sitk.sitkUInt8) + 1
        mask.SetSpacing((1.0, 1.0, 1.0))
        sitk.WriteImage(mask, str(case / "brainmask.nii.gz"))
        expected = [str(case / "brainmask.nii.gz"), "not on the FLAIR grid", "spacing differs"]
    elif problem == "empty_mask":
        mask = sitk.Image([16, 16, 4], sitk.sitkUInt8)
        mask.CopyInformation(imgs["flair"])
        sitk.WriteImage(mask, str(case / "brainmask.nii.gz"))
        expected = [str(case / "brainmask.nii.gz"), "brain mask is empty"]
    else:
        arr = np.zeros((4, 16, 16), np.uint8)
        arr[1, 3, 3] = 3
        lab = sitk.GetImageFromArray(arr)
        lab.CopyInformation(imgs["label"])
        sitk.WriteImage(lab, str(case / "wmh.nii.gz"))
        expected = [str(case / "wmh.nii.gz"), "label values [3]"]
    out = tmp_path / "raw" / "Dataset504_WMH"
    assert cli_main(["convert-wmh", "-i", str(tmp_path / "in"), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for part in expected:
        assert part in err, err
    assert not out.exists()
    assert not (tmp_path / "raw").exists() or not any((tmp_path / "raw").iterdir())
