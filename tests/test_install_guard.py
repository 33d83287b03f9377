"""The shipped model is never installed over a training run of the same model (found when `segment`, run with
nnUNet_results pointing at a train-pretrained work folder, replaced the run's files and made it look finished)."""
from __future__ import annotations

import pytest

from nnunet_ataxia.errors import InputError
from nnunet_ataxia.inference.model import resolve_model
from nnunet_ataxia.pretrained import release


def _training_run(results):
    fold = release.installed_model_folder(results) / f"fold_{release.FOLD}"
    fold.mkdir(parents=True)
    (fold / "checkpoint_latest.pth").write_bytes(b"run state")
    (fold / "training_log_x.txt").write_text("epoch 3")
    return fold


def test_install_refuses_a_training_run_and_touches_nothing(tmp_path):
    fold = _training_run(tmp_path / "results")
    with pytest.raises(InputError, match="holds a training run of this model .*checkpoint_latest.pth"):
        release.install_pretrained(tmp_path / "results")
    assert sorted(p.name for p in fold.iterdir()) == ["checkpoint_latest.pth", "training_log_x.txt"]
    assert (fold / "checkpoint_latest.pth").read_bytes() == b"run state"
    assert release.training_run_in(fold.parent) == "fold_0/checkpoint_latest.pth"
    assert release.training_run_in(tmp_path / "nothing") is None


def _ships_zip() -> bool:
    try:
        return release.pretrained_zip_path().is_file()
    except InputError:
        return False


@pytest.mark.skipif(not _ships_zip(), reason="the package ships no pretrained zip")
def test_segment_model_goes_to_its_private_copy_next_to_a_training_run(tmp_path, monkeypatch, capsys,
                                                                      nnunet_environ):
    results = tmp_path / "results"
    fold = _training_run(results)
    monkeypatch.setenv("nnUNet_results", str(results))
    spec = resolve_model(cache_dir=tmp_path / "cache")
    assert spec.folder == release.installed_model_folder(tmp_path / "cache")
    assert (spec.folder / f"fold_{release.FOLD}" / "checkpoint_final.pth").is_file()
    assert sorted(p.name for p in fold.iterdir()) == ["checkpoint_latest.pth", "training_log_x.txt"]
    assert "left alone" in capsys.readouterr().out
    with pytest.raises(InputError, match="holds a training run"):
        resolve_model()      # no private folder to go to: one clear error, nothing overwritten
    assert not (fold / "checkpoint_final.pth").exists()


@pytest.mark.skipif(not _ships_zip(), reason="the package ships no pretrained zip")
def test_shipped_zip_holds_the_release_trainers_model():
    """`release.RELEASED_TRAINER` names the model in the zip (install, segment and the printed nnUNetv2_predict line
    use it)."""
    import zipfile

    marker = f"/fold_{release.FOLD}/checkpoint_final.pth"
    models = {n[: -len(marker)] for n in zipfile.ZipFile(release.pretrained_zip_path()).namelist()
              if n.endswith(marker)}
    assert models == {f"{release.RELEASED_DATASET_NAME}/{release.model_dir_name()}"}


@pytest.mark.skipif(not _ships_zip(), reason="the package ships no pretrained zip")
def test_model_v2_training_starts_from_the_model_v1_shipped_beside_the_model():
    """The package ships model v1 beside the model: ``train-pretrained --label-maps`` (``start_checkpoint(None)``)
    starts from it, not from the shipped model, which was itself fine-tuned from model v2."""
    import zipfile

    import torch

    marker = f"/fold_{release.FOLD}/checkpoint_final.pth"
    models = {n[: -len(marker)] for n in zipfile.ZipFile(release.pretrained_zip_path(v1=True)).namelist()
              if n.endswith(marker)}
    assert models == {f"{release.DATASET_NAME}/{release.model_dir_name(release.V1_TRAINER)}"}
    with release.start_checkpoint(None) as checkpoint:
        assert torch.load(checkpoint, map_location="cpu", weights_only=False)["trainer_name"] == release.V1_TRAINER
    with zipfile.ZipFile(release.pretrained_zip_path()) as zf:
        name = next(n for n in zf.namelist() if n.endswith(marker))
        with zf.open(name) as f:
            assert torch.load(f, map_location="cpu", weights_only=False)["trainer_name"] == release.RELEASED_TRAINER


def test_a_missing_model_v1_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(release, "V1_ZIP_NAME", "no_such_model_v1.zip")
    with pytest.raises(InputError, match="model v1 is missing .*--initial-weights"):
        release.pretrained_zip_path(v1=True)
