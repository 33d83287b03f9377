"""``nnunet-ataxia segment`` and ``install-pretrained`` end to end (CPU), with the real nnU-Net commands.

A tiny Dataset510-like dataset (generated subjects already on the MNI crop) is planned with ``nnunet-ataxia plan``
and trained for one smoke epoch: that model stands in for the shipped pretrained model where the package does not
hold the zip yet. Native test subjects come from the same generator (random pose, orientation, voxel size),
down-sampled to 2 mm to keep the registration quick.
"""
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import torch
from nnunet_helpers import nnunet_env
from nnunet_helpers import run_checked as _run

from nnunet_ataxia.architectures.common import SEG_LAYERS_PREFIX, upgrade_output_keys
from nnunet_ataxia.dataset_conversion.Dataset510_SynthCerebellumBrainstem import HELD_OUT_SEED_OFFSET
from nnunet_ataxia.inference.qc_flags import qc_flags
from nnunet_ataxia.inference.subject import probabilities_to_native
from nnunet_ataxia.io.cases import subject_id_of
from nnunet_ataxia.io.images import read_image
from nnunet_ataxia.io.participants import read_participants
from nnunet_ataxia.preprocessing.mri_pipeline import crop_reference, preprocess_t1_case
from nnunet_ataxia.preprocessing.native_space import load_case_transform, map_to_native
from nnunet_ataxia.preprocessing.registration import downsample_isotropic, load_mni_template
from nnunet_ataxia.preprocessing.registration_check import MIN_REGISTRATION_SIMILARITY, registration_similarity
from nnunet_ataxia.pretrained import release
from nnunet_ataxia.synthesis.synthetic_subjects import make_native_subject

PLANS = release.PLANS
SMOKE = "M2InceptionTrainer_pretrained_smoke"
FAST = ["--registration-template-mm", "3"]  # hidden option: register against a 3 mm template (tests only)
SHIPPED_ZIP = release.PACKAGE_DATA / release.ZIP_NAME


@pytest.fixture(scope="module")
def workspace(standin_workspace):
    """A raw Dataset510-like dataset: 2 training + 1 validation subjects on the MNI crop, labels 0/1/2
    (tests/conftest.py, shared with the demo's test)."""
    return standin_workspace


@pytest.fixture(scope="module")
def smoke_model(standin_model):
    """The stand-in for the shipped model (only built while the package has no zip; tests/conftest.py)."""
    return standin_model


@pytest.fixture(scope="module")
def subject(tmp_path_factory):
    """A generated native subject (2 mm, random pose/orientation) and its native labels."""
    folder = tmp_path_factory.mktemp("subject")
    t1, labels, params = make_native_subject(HELD_OUT_SEED_OFFSET + 3)
    t1 = downsample_isotropic(t1, 2.0)
    labels = sitk.Resample(labels, t1, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    (folder / "in").mkdir()
    sitk.WriteImage(t1, str(folder / "in" / "sub-01_T1w.nii.gz"))
    sitk.WriteImage(labels, str(folder / "labels.nii.gz"))
    return folder, folder / "in" / "sub-01_T1w.nii.gz", labels


def _model_args(request) -> list:
    """The shipped pretrained model (default, nothing to pass) when the package has it, else the smoke model."""
    return [] if SHIPPED_ZIP.is_file() else ["-m", request.getfixturevalue("smoke_model")]


@pytest.fixture(scope="module")
def segmented(workspace, subject, tmp_path_factory, request):
    root, _, _ = workspace
    folder, t1_path, _ = subject
    out = tmp_path_factory.mktemp("seg") / "out"
    env = nnunet_env(root, results=False, OMP_NUM_THREADS="1")  # segment must not need nnUNet_results
    model = _model_args(request)
    _run(["nnunet-ataxia", "segment", "-i", t1_path, "-o", out, *FAST, *model], env)
    return out, env, model


@pytest.mark.slow
@pytest.mark.e2e
def test_segment_writes_native_masks_volumes_and_qc(segmented, subject):
    out, env, model = segmented
    _, t1_path, _ = subject
    case = "sub-01_T1w"
    t1 = sitk.ReadImage(str(t1_path))
    seg = sitk.ReadImage(str(out / case / f"{case}_seg.nii.gz"))
    masks = {n: sitk.ReadImage(str(out / case / f"{case}_{n}.nii.gz")) for n in ("cerebellum", "brainstem")}
    for image in [seg, *masks.values()]:  # the input's native grid
        assert image.GetSize() == t1.GetSize()
        np.testing.assert_allclose(image.GetSpacing(), t1.GetSpacing(), atol=1e-5)
        np.testing.assert_allclose(image.GetOrigin(), t1.GetOrigin(), atol=1e-4)
        np.testing.assert_allclose(image.GetDirection(), t1.GetDirection(), atol=1e-6)
    seg_arr = sitk.GetArrayFromImage(seg)
    assert set(np.unique(seg_arr)) <= {0, 1, 2}
    for value, name in ((1, "cerebellum"), (2, "brainstem")):
        np.testing.assert_array_equal(sitk.GetArrayFromImage(masks[name]), (seg_arr == value).astype(np.uint8))
    assert (out / case / "mni" / f"{case}_t1_mni.nii.gz").is_file()
    assert sitk.ReadImage(str(out / case / "mni" / f"{case}_seg_mni.nii.gz")).GetSize() == crop_reference().GetSize()
    tfm, meta = load_case_transform(out / case / "transform")

    table = pd.read_csv(out / "volumes.csv")
    assert list(table["case"]) == [case] and list(table["status"]) == ["ok"]
    voxel = float(np.prod(t1.GetSpacing()))
    mni = sitk.GetArrayFromImage(sitk.ReadImage(str(out / case / "mni" / f"{case}_seg_mni.nii.gz")))
    for value, name in ((1, "cerebellum"), (2, "brainstem")):
        assert table.loc[0, f"{name}_native_mm3"] == pytest.approx(np.count_nonzero(seg_arr == value) * voxel)
        assert table.loc[0, f"{name}_mni_mm3"] == pytest.approx(np.count_nonzero(mni == value))
    assert table.loc[0, "scale_factor"] == pytest.approx(meta["linear_determinant"])
    # the QC flags: the record keeps what they were computed from; the table's qc column says ok or the reasons
    record = json.loads((out / case / "segment.json").read_text())
    expected = qc_flags(similarity=record["registration_similarity"], volumes_mni_mm3=record["volumes_mni_mm3"],
                        confidence=record["mask_confidence"], pieces=record["large_pieces"])
    assert table.loc[0, "qc"] == record["qc"] == ("; ".join(expected) or "ok")
    assert all(0.0 <= v <= 1.0 for v in record["mask_confidence"].values() if v == v)
    if not model:  # the real pretrained model finds both structures
        assert table.loc[0, "cerebellum_native_mm3"] > 50_000 and table.loc[0, "brainstem_native_mm3"] > 10_000

    assert (out / "qc" / f"{case}.png").stat().st_size > 10_000
    index = (out / "qc" / "index.html").read_text()
    assert "data:image/png;base64," in index and case in index
    marker = json.loads((out / ".nnunet-ataxia-output.json").read_text())
    assert marker["command"] == "segment"
    if not model:
        assert (out / ".model" / release.RELEASED_DATASET_NAME).is_dir()  # private copy, nnUNet_raw/results not needed

    # re-run: the finished subject is skipped, nothing is rewritten
    stamp = (out / case / f"{case}_seg.nii.gz").stat().st_mtime_ns
    again = _run(["nnunet-ataxia", "segment", "-i", t1_path, "-o", out, *FAST, *model], env)
    assert "1 done before with the same input, model and options, skipped" in again.stdout
    assert (out / case / f"{case}_seg.nii.gz").stat().st_mtime_ns == stamp
    assert pd.read_csv(out / "volumes.csv").equals(table)
    # --participants adds the group (BIDS ids match the case sub-01_T1w)
    tsv = out.parent / "participants.tsv"
    tsv.write_text("participant_id\tgroup\nsub-01\tsca2\nsub-02\tcontrol\n")
    _run(["nnunet-ataxia", "segment", "-i", t1_path, "-o", out, "--participants", tsv, *FAST, *model], env)
    grouped = pd.read_csv(out / "volumes.csv")
    assert list(grouped["group"]) == ["sca2"] and grouped.drop(columns="group").equals(table)


def _write_mgz(src: Path, dst: Path) -> None:
    image = nib.load(str(src))
    nib.save(nib.MGHImage(np.asarray(image.dataobj, dtype=np.float32), image.affine), str(dst))


def _bad_inputs(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"unreadable": folder / "garbage.nii.gz", "4D": folder / "series.nii.gz",
             "2D": folder / "slice.nii.gz", "non-brain": folder / "noise.nii.gz"}
    paths["unreadable"].write_bytes(b"\x1f\x8b not really a gzipped nifti")
    vol = sitk.Image([40, 40, 40], sitk.sitkFloat32) + 1.0
    sitk.WriteImage(sitk.JoinSeries([vol, vol * 2, vol * 3]), str(paths["4D"]))
    sitk.WriteImage(sitk.Image([64, 64], sitk.sitkFloat32) + 1.0, str(paths["2D"]))
    noise = sitk.GetImageFromArray(np.random.RandomState(0).uniform(0, 100, (90, 110, 95)).astype(np.float32))
    noise.SetSpacing((2.0, 2.0, 2.0))
    sitk.WriteImage(noise, str(paths["non-brain"]))
    return paths


@pytest.mark.slow
@pytest.mark.e2e
def test_folder_with_mgz_and_broken_files(segmented, subject, tmp_path):
    out_nii, env, _ = segmented
    _, t1_path, _ = subject
    model = ["-m", json.loads((out_nii / "sub-01_T1w" / "segment.json").read_text())["model_folder"]]
    src = tmp_path / "in"
    bad = _bad_inputs(src)
    shutil.copy(t1_path, src / "as_nifti.nii.gz")
    _write_mgz(t1_path, src / "as_mgz.mgz")
    (src / "notes.txt").write_text("not an image: ignored")
    out = tmp_path / "out"
    result = _run(["nnunet-ataxia", "segment", "-i", src, "-o", out, "-np", 2, *FAST, *model], env, expect_ok=False)
    assert result.returncode == 1
    text = result.stdout + result.stderr
    assert "Traceback" not in text
    for kind, path in bad.items():
        lines = [line for line in text.splitlines() if str(path) in line]
        assert len(lines) == 1, (kind, text)
    assert sorted(result.stderr.strip().splitlines()[-1].split(": ")[-1].split(", ")) == \
        ["garbage", "noise", "series", "slice"]
    table = pd.read_csv(out / "volumes.csv").set_index("case")
    assert list(table.index) == ["as_mgz", "as_nifti", "garbage", "noise", "series", "slice"]
    assert (table.loc[["as_mgz", "as_nifti"], "status"] == "ok").all()
    assert (table.drop(index=["as_mgz", "as_nifti"])["status"] == "failed").all()
    assert not (out / "noise").exists() and not list(out.glob(".noise*"))  # nothing half-written

    # the .mgz is read as exactly the same image as the .nii.gz, and gives the same result in the same run
    from_mgz, from_nii = read_image(src / "as_mgz.mgz"), read_image(t1_path)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(from_mgz), sitk.GetArrayFromImage(from_nii))
    for get in ("GetSize", "GetSpacing", "GetOrigin", "GetDirection"):
        np.testing.assert_allclose(getattr(from_mgz, get)(), getattr(from_nii, get)(), atol=1e-5)
    a = sitk.ReadImage(str(out / "as_mgz" / "as_mgz_seg.nii.gz"))
    b = sitk.ReadImage(str(out / "as_nifti" / "as_nifti_seg.nii.gz"))
    assert a.GetSize() == b.GetSize()
    np.testing.assert_allclose(a.GetOrigin(), b.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(a.GetDirection(), b.GetDirection(), atol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(a), sitk.GetArrayFromImage(b))
    for column in ("cerebellum_native_mm3", "brainstem_native_mm3", "scale_factor"):
        assert table.loc["as_mgz", column] == pytest.approx(table.loc["as_nifti", column], rel=1e-6)

    # one bad file on its own: exactly one line naming it
    single = _run(["nnunet-ataxia", "segment", "-i", bad["unreadable"], "-o", tmp_path / "single", *model], env,
                  expect_ok=False)
    assert single.returncode == 1
    assert single.stderr.strip().splitlines() == [single.stderr.strip()]
    assert str(bad["unreadable"]) in single.stderr and single.stderr.startswith("error: ")


@pytest.mark.slow
def test_output_folder_rules(subject, tmp_path):
    _, t1_path, _ = subject
    env = nnunet_env(tmp_path, results=False, OMP_NUM_THREADS="1")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.docx").write_text("precious")
    for out, words in ((foreign, "not an earlier output"), (t1_path.parent, "input"),
                       (t1_path.parent / "sub", "inside the input")):
        result = _run(["nnunet-ataxia", "segment", "-i", t1_path.parent, "-o", out], env, expect_ok=False)
        assert result.returncode == 1 and words in result.stderr and str(out) in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert (foreign / "thesis.docx").read_text() == "precious"


def test_mgz_is_read_with_the_geometry_of_the_same_nifti(tmp_path):
    """An oblique, FreeSurfer-like (LIA) .mgz and the NIfTI with the same affine read as the same image."""
    rotation = sitk.Euler3DTransform((0, 0, 0), 0.2, -0.1, 0.3)
    lia = np.array([[-1, 0, 0], [0, 0, 1], [0, -1, 0]], float)  # RAS affine columns of FreeSurfer's conformed space
    affine = np.eye(4)
    affine[:3, :3] = np.array(rotation.GetMatrix()).reshape(3, 3) @ lia @ np.diag([1.0, 1.2, 0.9])
    affine[:3, 3] = [12.5, -30.0, 7.0]
    data = np.random.RandomState(0).uniform(0, 100, (20, 24, 18)).astype(np.float32)
    nib.save(nib.MGHImage(data, affine), str(tmp_path / "t1.mgz"))
    nib.save(nib.Nifti1Image(data, affine), str(tmp_path / "t1.nii.gz"))
    a, b = read_image(tmp_path / "t1.mgz"), sitk.ReadImage(str(tmp_path / "t1.nii.gz"))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(a), sitk.GetArrayFromImage(b))
    for get in ("GetSize", "GetSpacing", "GetOrigin", "GetDirection"):
        np.testing.assert_allclose(getattr(a, get)(), getattr(b, get)(), atol=1e-4)
    # the physical position of a voxel: nibabel's RAS affine, with x and y negated for ITK's LPS
    ras = affine @ np.array([3, 5, 7, 1.0])
    np.testing.assert_allclose(a.TransformIndexToPhysicalPoint((3, 5, 7)), [-ras[0], -ras[1], ras[2]], atol=1e-4)


def test_registration_similarity_separates_anatomy_from_non_brain_images():
    crop = crop_reference()
    template = sitk.Resample(load_mni_template(with_brain_mask=False)[0], crop, sitk.Transform(), sitk.sitkLinear,
                             0.0, sitk.sitkFloat32)
    noise = sitk.GetImageFromArray(np.random.RandomState(1).uniform(0, 255, (96, 128, 128)).astype(np.float32))
    box = sitk.GetImageFromArray(np.full((96, 128, 128), 200.0, np.float32))
    for image in (noise, box):
        image.CopyInformation(crop)
    inverted = sitk.InvertIntensity(template, 10000.0)  # contrast-agnostic: an inverted T1 is still anatomy
    assert registration_similarity(template) > 0.9 and registration_similarity(inverted) > 0.9
    assert registration_similarity(noise) < 0.01 and registration_similarity(box) == 0.0
    assert registration_similarity(noise) < MIN_REGISTRATION_SIMILARITY


def test_case_ids_and_participant_groups(tmp_path):
    assert [subject_id_of(n) for n in ("sub-01_0000.nii.gz", "sub-02_T1w.mgz", "a.b.nii", "x_0000")] == \
        ["sub-01", "sub-02_T1w", "a.b", "x"]
    tsv = tmp_path / "participants.tsv"
    tsv.write_text("participant_id\tgroup\nsub-01\tsca2\nsub-02\tcontrol\n")
    assert read_participants(tsv, ["sub-01_T1w", "sub-02", "sub-03"], known_groups=None) == \
        {"sub-01_T1w": "sca2", "sub-02": "control", "sub-03": ""}


@pytest.mark.slow
def test_probability_mapping_beats_nearest_labels(tmp_path):
    """Mapping class probabilities back (linear, argmax) recovers the native truth better than nearest labels.

    The crop-space probabilities of an ideal model are the native labels' one-hot maps resampled onto the crop
    (partial volumes); its label map is their argmax. Both are mapped back with the case's real transform.
    """
    t1, labels, _ = make_native_subject(HELD_OUT_SEED_OFFSET + 5)
    path = tmp_path / "t1.nii.gz"
    sitk.WriteImage(t1, str(path))
    preprocess_t1_case(path, tmp_path / "pre.nii.gz", transform_dir=tmp_path / "tr",
                       registration_template_spacing_mm=3.0)
    tfm, _ = load_case_transform(tmp_path / "tr")
    crop = crop_reference()
    probs = np.stack([sitk.GetArrayFromImage(sitk.Resample(sitk.Cast(labels == c, sitk.sitkFloat32), crop, tfm,
                                                           sitk.sitkLinear, float(c == 0), sitk.sitkFloat32))
                      for c in range(3)])
    probs /= probs.sum(0, keepdims=True)
    hard = sitk.GetImageFromArray(probs.argmax(0).astype(np.uint8))
    hard.CopyInformation(crop)
    truth = sitk.GetArrayFromImage(labels)
    by_probs = sitk.GetArrayFromImage(probabilities_to_native(probs, crop, tfm, t1))
    by_labels = sitk.GetArrayFromImage(map_to_native(hard, tmp_path / "tr", interpolation="nearest"))

    def dice(a, b, v):
        return 2 * np.count_nonzero((a == v) & (b == v)) / (np.count_nonzero(a == v) + np.count_nonzero(b == v))

    for v in (1, 2):
        assert dice(by_probs, truth, v) > dice(by_labels, truth, v) > 0.8


@pytest.mark.slow
@pytest.mark.e2e
def test_install_pretrained_then_stock_predict_finds_it(workspace, tmp_path, request):
    root, raw, env = workspace
    results = tmp_path / "results"
    if SHIPPED_ZIP.is_file():
        zip_args = []
    else:  # the stand-in: the smoke model exported as a release zip
        zip_args = ["--zip", release.export_release(request.getfixturevalue("smoke_model"), tmp_path / "release.zip",
                                                    validate=False)]
    for _ in range(2):  # re-running is safe
        out = _run(["nnunet-ataxia", "install-pretrained", "--results", results, *zip_args], env)
    folder = results / release.RELEASED_DATASET_NAME / release.model_dir_name()
    assert str(folder) in out.stdout
    assert f"nnUNetv2_predict -i INPUT -o OUTPUT -d {release.RELEASED_DATASET_ID} -c 3d_fullres " \
           f"-tr {release.RELEASED_TRAINER} " \
           "-p nnUNetFixed128Plans -f 0" in out.stdout
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(raw / "imagesTr" / "synth_050000_0000.nii.gz", images)
    pred = tmp_path / "pred"
    _run(["nnUNetv2_predict", "-i", images, "-o", pred, "-d", release.RELEASED_DATASET_ID, "-c", "3d_fullres",
          "-tr", release.RELEASED_TRAINER, "-p", PLANS, "-f", 0, "-device", "cpu", "--disable_tta", "-npp", 1,
          "-nps", 1],
         dict(env, nnUNet_results=str(results)))
    seg = sitk.GetArrayFromImage(sitk.ReadImage(str(pred / "synth_050000.nii.gz")))
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(raw / "labelsTr" / "synth_050000.nii.gz")))
    assert seg.shape == truth.shape and set(np.unique(seg)) <= {0, 1, 2}
    for v in (1, 2) if SHIPPED_ZIP.is_file() else ():  # the real model segments a generated subject well
        assert 2 * np.count_nonzero((seg == v) & (truth == v)) / (np.count_nonzero(seg == v) +
                                                                  np.count_nonzero(truth == v)) > 0.8


@pytest.mark.slow
@pytest.mark.e2e
def test_fine_tune_from_pretrained_weights(workspace, tmp_path, request):
    """Fine-tuning with stock nnU-Net: a user dataset with the same labels, planned with ``nnunet-ataxia plan``."""
    root, raw, env = workspace
    if SHIPPED_ZIP.is_file():
        results = tmp_path / "installed"
        _run(["nnunet-ataxia", "install-pretrained", "--results", results], env)
        weights = results / release.RELEASED_DATASET_NAME / release.model_dir_name() / "fold_0" / "checkpoint_final.pth"
    else:  # the stand-in: the smoke model's checkpoint (same network, same labels)
        weights = request.getfixturevalue("smoke_model") / "fold_0" / "checkpoint_final.pth"
    user = root / "nnUNet_raw" / "Dataset911_MyCerebellum"
    if not user.exists():
        shutil.copytree(raw, user)
    _run(["nnunet-ataxia", "plan", "-d", 911, "-np", 1], env)
    run = _run(["nnUNetv2_train", 911, "3d_fullres", 0, "-p", PLANS, "-tr", SMOKE, "-device", "cpu",
                "-pretrained_weights", weights], env)
    assert "Loading pretrained weights" in run.stdout
    tuned = root / "nnUNet_results" / "Dataset911_MyCerebellum" / f"{SMOKE}__{PLANS}__3d_fullres" / "fold_0"
    after = torch.load(tuned / "checkpoint_final.pth", map_location="cpu", weights_only=False)["network_weights"]
    before = torch.load(weights, map_location="cpu", weights_only=False)["network_weights"]
    before = upgrade_output_keys(before)   # a checkpoint written before the output layer became head.seg_layers
    assert set(after) == set(before)
    diffs = {k: float((after[k].float() - before[k].float()).abs().max()) for k in before}
    body = [d for k, d in diffs.items() if not k.startswith(SEG_LAYERS_PREFIX)]
    # started from the pretrained weights (two Adam steps of lr 1e-3 move no weight far) and did train; the output
    # layer (head.seg_layers) starts fresh, as nnU-Net's own segmentation layers do
    assert max(body) < 0.02 and max(body) > 0
    assert diffs[SEG_LAYERS_PREFIX + "weight"] > 0.05


@pytest.mark.parametrize("labels, message", [
    ({"background": 0, "cerebellum": 1, "brainstem": 2}, None),
    ({"background": 0, "cerebellum": 1, "both": [1, 2]}, "region-based label 'both'"),
    ({"cerebellum": 1, "brainstem": 2}, "nnU-Net refuses these labels"),
])
def test_model_labels_are_read_the_way_nnunet_reads_them(tmp_path, labels, message):
    from nnunet_ataxia.errors import InputError
    from nnunet_ataxia.inference.model import model_labels

    dj = {"labels": labels, "regions_class_order": [1, 2]} if "both" in labels else {"labels": labels}
    (tmp_path / "dataset.json").write_text(json.dumps(dj))
    if message is None:
        assert model_labels(tmp_path) == labels
    else:
        with pytest.raises(InputError, match=message) as error:
            model_labels(tmp_path)
        assert str(tmp_path / "dataset.json") in str(error.value)
