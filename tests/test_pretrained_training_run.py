"""The pretrained model's data generator and its reproduce-from-scratch run (chunks, resume, export, install).

The run is the real one (`train_pretrained`: generate -> `nnunet-ataxia plan` -> `nnUNetv2_train` -> export with
`nnUNetv2_export_model_to_zip` -> `nnUNetv2_install_pretrained_model_from_zip` -> `nnUNetv2_predict`) on three
generated subjects with a two-epoch test trainer.
"""
import os
import shutil
import subprocess
import textwrap
import zipfile

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_ataxia.errors import InputError
from nnunet_ataxia.io.images import Geometry
from nnunet_ataxia.preprocessing.mri_pipeline import crop_reference
from nnunet_ataxia.pretrained import release
from nnunet_ataxia.pretrained.training_run import (
    TrainingRunPaths,
    epochs_done,
    restore_state,
    save_state,
    train_pretrained,
)
from nnunet_ataxia.synthesis.synthetic_subjects import make_registered_case
from nnunet_ataxia.synthesis.tissue_contrast import label_intensity_tables, thick_slices

BASE_TEST_TRAINER = "M2InceptionTrainer_pretrained_twoEpochTest"
TEST_TRAINER = "M2InceptionTrainer_pretrainedContrastFinetune_twoEpochTest"


@pytest.mark.slow
def test_registered_case_is_deterministic_and_on_the_crop_grid():
    image, labels, params = make_registered_case(7)
    image2, labels2, params2 = make_registered_case(7)
    other, _, _ = make_registered_case(8)
    a = sitk.GetArrayFromImage(image)
    np.testing.assert_array_equal(a, sitk.GetArrayFromImage(image2))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(labels), sitk.GetArrayFromImage(labels2))
    assert params == params2
    assert not np.array_equal(a, sitk.GetArrayFromImage(other))
    crop = Geometry.of(crop_reference())
    assert Geometry.of(image).matches(crop) and Geometry.of(labels).matches(crop)
    lab = sitk.GetArrayFromImage(labels)
    assert set(np.unique(lab)) == {0, 1, 2}
    assert 0.0 <= a.min() and a.max() <= 255.0
    # the brainstem lies below-in-front of the cerebellum's centre, every label has voxels in the brain
    counts = np.bincount(lab.ravel())
    assert counts[1] > 80_000 and counts[2] > 10_000
    # random_contrast_probability decides the contrast mode only: the anatomy of a seed stays; seed 7 draws the random
    # mode by default, so forcing it (the fine-tuning stage's cases) reproduces the default case exactly
    forced_t1, t1_labels, t1_params = make_registered_case(7, random_contrast_probability=0.0)
    forced_random, random_labels, random_params = make_registered_case(7, random_contrast_probability=1.0)
    assert (params.appearance["mode"], t1_params.appearance["mode"], random_params.appearance["mode"]) == \
        ("random", "T1", "random")
    np.testing.assert_array_equal(sitk.GetArrayFromImage(t1_labels), lab)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(random_labels), lab)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(forced_random), a)
    assert not np.array_equal(sitk.GetArrayFromImage(forced_t1), a)


def test_t1_contrast_keeps_tissue_order_and_random_contrast_does_not_always():
    orders = [label_intensity_tables(np.random.RandomState(s), "T1")[0] for s in range(20)]
    assert all(m[2] > m[3] > m[4] and m[41] > m[8] > m[24] for m in orders)  # WM > cortex > CSF
    randoms = [label_intensity_tables(np.random.RandomState(s), "random")[0] for s in range(20)]
    assert any(not (m[2] > m[3] > m[4]) for m in randoms)


def test_thick_slices_blur_only_along_their_axis():
    image = np.zeros((20, 20, 20), np.float32)
    image[:, :, 10:] = 1.0  # an edge across axis 2
    np.testing.assert_allclose(thick_slices(image, 0, 4.0), image, atol=1e-6)  # axis 0 is constant: unchanged
    blurred = thick_slices(image, 2, 4.0)
    assert 0.05 < blurred[5, 5, 9] < 0.95 and blurred.shape == image.shape


@pytest.mark.slow
@pytest.mark.e2e
def test_chunked_training_resumes_in_a_new_work_folder_then_exports_and_installs(tmp_path, monkeypatch,
                                                                                 nnunet_environ):
    trainer_dir = tmp_path / "trainers"
    trainer_dir.mkdir()
    (trainer_dir / "two_epoch_test_trainer.py").write_text(textwrap.dedent(f"""
        from nnunet_ataxia.trainers.pretrained_trainers import (M2InceptionTrainer_pretrained,
            M2InceptionTrainer_pretrainedContrastFinetune)
        from nnunet_ataxia.trainers.schedules import TrainingSchedule

        class {BASE_TEST_TRAINER}(M2InceptionTrainer_pretrained):
            schedule = TrainingSchedule(num_epochs=2, iterations_per_epoch=2, val_iterations_per_epoch=1)

        class {TEST_TRAINER}(M2InceptionTrainer_pretrainedContrastFinetune):
            schedule = TrainingSchedule(num_epochs=2, iterations_per_epoch=2, val_iterations_per_epoch=1)
            first_stage = "{BASE_TEST_TRAINER}"
        """))
    monkeypatch.setenv("nnUNet_extTrainer", os.pathsep.join([nnunet_environ["nnUNet_extTrainer"], str(trainer_dir)]))
    stages = (BASE_TEST_TRAINER, TEST_TRAINER)

    # chunk 1: the deadline has passed, so the first stage stops after its first epoch, resumable; the second waits
    first = tmp_path / "session1"
    state = tmp_path / "saved_state"
    out = train_pretrained(first, n_train=2, n_val=1, n_contrast=1, hours=0.0, num_processes=1, save_state_to=state,
                           stages=stages)
    fold = TrainingRunPaths(first, BASE_TEST_TRAINER).fold
    assert out["finished"] is False and out["epochs_done"] == {BASE_TEST_TRAINER: 1, TEST_TRAINER: 0}
    assert (fold / "checkpoint_latest.pth").is_file() and not (fold / "checkpoint_final.pth").exists()
    assert not TrainingRunPaths(first, TEST_TRAINER).fold.exists()
    saved = state / BASE_TEST_TRAINER
    assert (saved / "checkpoint_latest.pth").is_file() and list(saved.glob("training_log_*.txt"))
    raw = first / "nnUNet_raw" / release.DATASET_NAME
    assert len(list((raw / "labelsTr").glob("*.nii.gz"))) == 4   # 2 training + 1 validation + 1 random-contrast

    # chunk 2, in another session: a fresh work folder (same generated data) resumes from the saved state, finishes
    # the first stage and fine-tunes its final checkpoint in the second
    second = tmp_path / "session2"
    for sub in ("nnUNet_raw", "nnUNet_preprocessed"):
        shutil.copytree(first / sub, second / sub)
    zip_path = tmp_path / "model.zip"
    out = train_pretrained(second, n_train=2, n_val=1, n_contrast=1, num_processes=1, resume_state=state,
                           export_to=zip_path, stages=stages)
    assert out["finished"] is True and out["epochs_done"] == {BASE_TEST_TRAINER: 2, TEST_TRAINER: 2}
    base_fold = TrainingRunPaths(second, BASE_TEST_TRAINER).fold
    newest_log = sorted(base_fold.glob("training_log_*.txt"))[-1].read_text()
    assert "Epoch 1" in newest_log and "Epoch 0" not in newest_log  # continued, not restarted
    finetune_log = next(TrainingRunPaths(second, TEST_TRAINER).fold.glob("training_log_*.txt")).read_text()
    assert f"started from the whole network of {base_fold / 'checkpoint_final.pth'}" in finetune_log
    assert "except the 1 validation cases: 3 training cases" in finetune_log  # fold 0's 2 + the random-contrast one

    # the same work folder with other data options: refused before any generation, the trained folds untouched
    labels = sorted((second / "nnUNet_raw" / release.DATASET_NAME / "labelsTr").iterdir())
    checkpoints = {p: p.stat().st_mtime_ns for p in (second / "nnUNet_results").rglob("checkpoint_*.pth")}
    with pytest.raises(InputError, match=r"done with other settings \(options changed \(n_train 2 -> 3\)\)"):
        train_pretrained(second, n_train=3, n_val=1, n_contrast=1, num_processes=1, stages=stages)
    assert sorted((second / "nnUNet_raw" / release.DATASET_NAME / "labelsTr").iterdir()) == labels
    assert {p: p.stat().st_mtime_ns for p in (second / "nnUNet_results").rglob("checkpoint_*.pth")} == checkpoints

    # another list of stages (here the first alone) keeps the stages already trained: nothing refused, nothing redone
    out = train_pretrained(second, n_train=2, n_val=1, n_contrast=1, num_processes=1, stages=stages[:1])
    assert out["finished"] is True and out["epochs_done"] == {BASE_TEST_TRAINER: 2}
    assert {p: p.stat().st_mtime_ns for p in (second / "nnUNet_results").rglob("checkpoint_*.pth")} == checkpoints

    # the finished run's saved state keeps logs and progress.png only (the model is the zip)
    save_state(second, stages, state)
    assert not list(state.rglob("checkpoint_*.pth")) and (state / TEST_TRAINER / "progress.png").is_file()
    with pytest.raises(InputError, match="no checkpoint to resume from: the saved run ended"):
        restore_state(state, tmp_path / "session3", stages)

    # the exported zip: nnU-Net's layout, a checkpoint without optimizer state, the training logs kept
    import torch

    names = zipfile.ZipFile(zip_path).namelist()
    prefix = f"{release.DATASET_NAME}/{release.model_dir_name(TEST_TRAINER)}/"
    for member in ("plans.json", "dataset.json", "fold_0/checkpoint_final.pth", "fold_0/progress.png"):
        assert prefix + member in names
    assert any(n.startswith(prefix + "fold_0/training_log_") for n in names)
    with zipfile.ZipFile(zip_path) as zf:
        zf.extract(prefix + "fold_0/checkpoint_final.pth", tmp_path / "x")
    checkpoint = torch.load(tmp_path / "x" / prefix / "fold_0/checkpoint_final.pth", weights_only=False)
    assert "optimizer_state" not in checkpoint and checkpoint["trainer_name"] == TEST_TRAINER

    # installed the nnU-Net way into another nnUNet_results, the stock predictor finds and runs it
    results = tmp_path / "user_results"
    monkeypatch.setenv("nnUNet_results", str(results))
    installed = release.install_pretrained(results, zip_path)
    assert installed == results / release.DATASET_NAME / release.model_dir_name(TEST_TRAINER)
    assert (installed / "fold_0" / "checkpoint_final.pth").is_file()
    images = tmp_path / "images"
    images.mkdir()
    case = next((second / "nnUNet_raw" / release.DATASET_NAME / "imagesTr").glob("*_0000.nii.gz"))
    shutil.copy(case, images / case.name)
    pred = tmp_path / "pred"
    result = subprocess.run(["nnUNetv2_predict", "-i", str(images), "-o", str(pred), "-d", str(release.DATASET_ID),
                             "-c", release.CONFIGURATION, "-tr", TEST_TRAINER, "-p", release.PLANS, "-f", "0",
                             "-device", "cpu", "--disable_tta"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    predicted = sitk.ReadImage(str(pred / (case.name[: -len("_0000.nii.gz")] + ".nii.gz")))
    assert Geometry.of(predicted).matches(Geometry.of(crop_reference()))
    assert epochs_done(installed / "fold_0") == 2


def test_release_note_speaks_only_for_an_interim_model(monkeypatch):
    monkeypatch.setattr(release, "release_info", lambda: {})
    assert release.release_note() is None
    monkeypatch.setattr(release, "release_info", lambda: {"status": "final", "epochs_done": 120})
    assert release.release_note() is None
    monkeypatch.setattr(release, "release_info", lambda: {"status": "interim", "epochs_done": 14,
                                                          "epochs_planned": 120,
                                                          "heldout": {"cerebellum Dice": 0.91}})
    note = release.release_note()
    assert "interim" in note and "epoch 14 of 120" in note and "cerebellum Dice 0.91" in note


def test_stop_file_ends_a_run_at_the_epoch_end(tmp_path):
    from nnunet_ataxia.trainers import pretrained_trainers as ct

    class FakeTrainer:  # only what on_epoch_end's stop check reads
        output_folder, current_epoch, num_epochs = str(tmp_path), 5, 120
        logged = []

        def print_to_log_file(self, *args):
            self.logged.append(" ".join(map(str, args)))

    trainer, stop_if_asked = FakeTrainer(), ct.M2InceptionTrainer_pretrained._stop_if_asked
    stop_if_asked(trainer)  # no file, no deadline: goes on
    (tmp_path / ct.STOP_FILE).touch()
    with pytest.raises(SystemExit) as e:
        stop_if_asked(trainer)
    assert e.value.code == 0 and not (tmp_path / ct.STOP_FILE).exists()
    assert "stopping after epoch 4" in trainer.logged[-1]


def test_resuming_from_the_saved_state_of_a_finished_run_says_so(tmp_path):
    """The repository's release/training_state after the last epoch holds logs only: resuming names the reason."""
    from nnunet_ataxia.errors import InputError
    from nnunet_ataxia.io.output_folders import write_marker
    from nnunet_ataxia.pretrained.training_run import restore_state

    state = tmp_path / "training_state"
    for trainer in release.CONTRAST_FINETUNE_STAGES:
        (state / trainer).mkdir(parents=True)
        (state / trainer / "training_log_2026_1_1_00_00_00.txt").write_text("log")
    write_marker(state, "train-pretrained --save-state",
                 {"epochs_done": dict(zip(release.CONTRAST_FINETUNE_STAGES, (120, 15), strict=True)), "finished": True})
    with pytest.raises(InputError, match=r"ended \(epochs: M2InceptionTrainer_pretrained 120, "
                                         r"M2InceptionTrainer_pretrainedContrastFinetune 15; .* leave out "
                                         r"--resume-state") as error:
        restore_state(state, tmp_path / "work", release.CONTRAST_FINETUNE_STAGES)
    assert str(state) in str(error.value) and not (tmp_path / "work").exists()


def test_a_state_saved_with_the_one_stage_layout_resumes_as_the_first_stage(tmp_path):
    """Earlier versions saved the run's files directly in the state folder: they resume the first stage."""
    state = tmp_path / "old_state"
    state.mkdir()
    (state / "checkpoint_latest.pth").write_bytes(b"epoch 50")
    (state / "training_log_2026_1_1_00_00_00.txt").write_text("log")
    assert restore_state(state, tmp_path / "work", release.CONTRAST_FINETUNE_STAGES) == [release.TRAINER]
    fold = TrainingRunPaths(tmp_path / "work", release.TRAINER).fold
    assert sorted(p.name for p in fold.iterdir()) == ["checkpoint_latest.pth", "training_log_2026_1_1_00_00_00.txt"]
    assert (fold / "checkpoint_latest.pth").read_bytes() == b"epoch 50"
    assert not TrainingRunPaths(tmp_path / "work", release.CONTRAST_FINETUNE_STAGES[1]).fold.exists()


def test_each_finetuning_stage_starts_from_the_stage_before_it_and_trains_on_its_own_contrast_cases():
    from nnunet_ataxia import trainers
    from nnunet_ataxia.dataset_conversion import Dataset510_SynthCerebellumBrainstem as dataset510
    from nnunet_ataxia.trainers import pretrained_trainers
    from nnunet_ataxia.trainers.pretrained_trainers import _is_contrast_case

    assert pretrained_trainers.CONTRAST_SEED_OFFSET is dataset510.CONTRAST_SEED_OFFSET   # one definition (io.constants)
    assert _is_contrast_case(dataset510.synthetic_case_id(dataset510.CONTRAST_SEED_OFFSET))

    stages = release.CONTRAST_FINETUNE2_STAGES
    assert stages[:2] == release.CONTRAST_FINETUNE_STAGES
    for previous, stage in zip(stages, stages[1:], strict=False):
        assert getattr(trainers, stage).first_stage == previous
    assert getattr(trainers, stages[1]).contrast_subjects == release.CONTRAST_FINETUNE_SUBJECTS
    assert getattr(trainers, stages[2]).contrast_subjects == release.CONTRAST_FINETUNE2_SUBJECTS
    # the second stage, re-run on the third stage's larger dataset, still trains on the first 80 random contrasts only
    cases = ["synth_000007", "synth_100003", "synth_200000", "synth_200079", "synth_200080", "synth_200159"]
    kept = [c for c in cases if not _is_contrast_case(c, beyond=release.CONTRAST_FINETUNE_SUBJECTS)]
    assert kept == cases[:4]
    assert not any(_is_contrast_case(c, beyond=release.CONTRAST_FINETUNE2_SUBJECTS) for c in cases)


@pytest.mark.parametrize("argv, stages, n_contrast", [
    ([], release.TRAINING_STAGES, 0),
    (["--contrast-finetune"], release.CONTRAST_FINETUNE_STAGES, 80),
    (["--contrast-finetune", "2"], release.CONTRAST_FINETUNE2_STAGES, 160),
    (["--label-maps", "maps", "--model-v2-only"], None, 0),
    (["--label-maps", "maps", "--cortex-rim"], None, 0),
    (["--label-maps", "maps", "--cortex-folia"], None, 0),
    (["--label-maps", "maps", "--from-scratch"], None, 0),
    (["--label-maps", "maps", "--no-dropout"], None, 0)])
def test_train_pretrained_command_picks_the_stages_and_the_random_contrast_subjects(monkeypatch, tmp_path, argv,
                                                                                     stages, n_contrast):
    import argparse

    from nnunet_ataxia.commands import train_pretrained as command
    from nnunet_ataxia.pretrained import training_run

    seen = {}

    def fake_run(work, **kwargs):
        seen.update(kwargs)
        return {"finished": False, "epochs_done": {}, "exported": None}

    monkeypatch.setattr(training_run, "train_pretrained", fake_run)
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    assert command.run(parser.parse_args(["--work", str(tmp_path)] + argv)) == 0
    assert seen["stages"] == stages and seen["n_contrast"] == n_contrast
    assert seen["label_maps"] == ("maps" if "--label-maps" in argv else None)
    assert (seen["n_train"], seen["n_val"]) == ((180, 15) if "--label-maps" in argv else (160, 12))
    assert seen["cortex_rim"] is ("--cortex-rim" in argv) and seen["from_scratch"] is ("--from-scratch" in argv)
    assert seen["cortex_folia"] is ("--cortex-folia" in argv) and seen["no_dropout"] is ("--no-dropout" in argv)


def test_train_pretrained_command_with_label_maps_alone_runs_the_shipped_models_two_runs(monkeypatch, tmp_path):
    import argparse

    from nnunet_ataxia.commands import train_pretrained as command
    from nnunet_ataxia.pretrained import released_recipe, training_run

    seen = {}

    def fake_recipe(work, label_maps, **kwargs):
        seen.update(kwargs, work=work, label_maps=label_maps)
        return {"finished": True, "epochs_done": {}, "exported": "m.zip"}

    monkeypatch.setattr(released_recipe, "train_released_model", fake_recipe)
    monkeypatch.setattr(training_run, "train_pretrained", lambda *a, **k: pytest.fail("one run instead of two"))
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    argv = ["--work", str(tmp_path), "--label-maps", "maps", "--initial-weights", "w.zip", "--hours", "2",
            "--save-state", "s", "--export", "m.zip", "--n-train", "7"]
    assert command.run(parser.parse_args(argv)) == 0
    assert (seen["work"], seen["label_maps"], seen["initial_weights"], seen["hours"]) == (str(tmp_path), "maps",
                                                                                          "w.zip", 2.0)
    assert (seen["save_state_to"], seen["export_to"], seen["n_train"], seen["n_val"]) == ("s", "m.zip", 7, 15)


@pytest.mark.parametrize("argv, message", [
    (["--model-v2-only"], "it needs --label-maps"),
    (["--label-maps", "maps", "--model-v2-only", "--cortex-folia"], "it cannot be combined with --cortex-folia"),
    (["--label-maps", "maps", "--model-v2-only", "--from-scratch"], "it cannot be combined with --from-scratch")])
def test_model_v2_only_outside_a_plain_label_maps_run_is_refused_before_any_work(tmp_path, argv, message):
    import argparse

    from nnunet_ataxia.commands import train_pretrained as command

    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    with pytest.raises(InputError, match=f"--model-v2-only trains the first of the two --label-maps runs; {message}"):
        command.run(parser.parse_args(["--work", str(tmp_path / "work")] + argv))
    assert not (tmp_path / "work").exists()


def test_the_rim_and_folia_stages_fine_tune_like_the_model_v2_stage_with_their_own_schedules():
    from nnunet_ataxia import trainers

    rim, v2 = (getattr(trainers, s[0]) for s in (release.LABEL_MAP_RIM_STAGES, release.LABEL_MAP_STAGES))
    assert issubclass(rim, v2) and (rim.finetune_lr, rim.finetune_epochs) == (2e-4, 24)
    assert (v2.finetune_lr, v2.finetune_epochs) == (3e-4, 40)
    folia = getattr(trainers, release.LABEL_MAP_FOLIA_STAGES[0])
    assert issubclass(folia, rim) and (folia.finetune_lr, folia.finetune_epochs) == (2e-4, 16)
    no_dropout = getattr(trainers, release.LABEL_MAP_NO_DROPOUT_STAGES[0])
    assert issubclass(no_dropout, v2) and (no_dropout.finetune_lr, no_dropout.finetune_epochs) == (2e-4, 16)
    assert (no_dropout.dropout, v2.dropout) == (0.0, 0.2)
