"""model v2's training options (stages, refusals before any work) and where a fine-tuning run's starting checkpoint
comes from (a checkpoint, or a model zip whose extracted checkpoint is removed after use)."""
import pytest

from nnunet_ataxia.errors import InputError
from nnunet_ataxia.pretrained import release
from nnunet_ataxia.pretrained.training_run import train_pretrained


def test_the_model_v2_options_pick_its_stages():
    from nnunet_ataxia.pretrained.training_run import default_stages

    assert default_stages(False) == default_stages(True, from_scratch=True) == release.TRAINING_STAGES
    assert default_stages(True) == release.LABEL_MAP_STAGES
    assert default_stages(True, cortex_rim=True) == release.LABEL_MAP_RIM_STAGES
    assert default_stages(True, cortex_folia=True) == default_stages(True, cortex_rim=True, cortex_folia=True) \
        == release.LABEL_MAP_FOLIA_STAGES
    assert default_stages(True, no_dropout=True) == release.LABEL_MAP_NO_DROPOUT_STAGES


@pytest.mark.parametrize("option", ["cortex_rim", "cortex_folia", "from_scratch", "no_dropout"])
def test_a_model_v2_option_without_label_maps_is_refused_before_any_work(tmp_path, option):
    with pytest.raises(InputError, match=f"--{option.replace('_', '-')} is an option of model v2; it needs"):
        train_pretrained(tmp_path / "work", **{option: True})
    assert not (tmp_path / "work").exists()


def _empty_label_map_folder(tmp_path):
    # the 20 file names the label-map lister expects (their content is never read before the refusal)
    maps = tmp_path / "maps"
    maps.mkdir()
    for i in range(1, 21):
        (maps / f"training_seg_{i:02d}.nii.gz").write_bytes(b"")
    return maps


def test_from_scratch_with_initial_weights_is_refused_before_any_work(tmp_path):
    maps = _empty_label_map_folder(tmp_path)
    with pytest.raises(InputError, match="--from-scratch .* cannot be combined with --initial-weights"):
        train_pretrained(tmp_path / "work", label_maps=maps, from_scratch=True, initial_weights=tmp_path / "w.pth")
    assert not (tmp_path / "work").exists()


@pytest.mark.parametrize("other", ["cortex_rim", "cortex_folia", "from_scratch"])
def test_no_dropout_with_another_stage_option_is_refused_before_any_work(tmp_path, other):
    maps = _empty_label_map_folder(tmp_path)
    with pytest.raises(InputError, match="--no-dropout is a stage of its own; it cannot be combined with"):
        train_pretrained(tmp_path / "work", label_maps=maps, no_dropout=True, **{other: True})
    assert not (tmp_path / "work").exists()


def test_initial_weights_in_a_zip_without_a_fold_0_checkpoint_are_refused_before_any_work(tmp_path):
    import zipfile

    maps = _empty_label_map_folder(tmp_path)
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("Dataset511_X/plans.json", "{}")
    with pytest.raises(InputError, match="other.zip: no fold_0/checkpoint_final.pth in this zip; neither"):
        train_pretrained(tmp_path / "work", label_maps=maps, initial_weights=other)
    assert not (tmp_path / "work").exists()


def _model_zip_with_checkpoint(path, content: bytes = b"weights"):
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("Dataset511_X/M2__plans__3d_fullres/fold_0/checkpoint_final.pth", content)
    return path


def test_the_checkpoint_extracted_from_a_model_zip_is_removed_after_use_also_on_an_error(tmp_path):
    import torch

    model_zip = _model_zip_with_checkpoint(tmp_path / "model.zip")
    with release.start_checkpoint(model_zip) as checkpoint:
        assert checkpoint.name == "checkpoint_final.pth" and checkpoint.read_bytes() == b"weights"
        assert checkpoint.parent != tmp_path
    assert not checkpoint.parent.exists()
    with pytest.raises(RuntimeError, match="inside"), release.start_checkpoint(model_zip) as checkpoint:
        raise RuntimeError("inside")
    assert not checkpoint.parent.exists()
    # a PyTorch checkpoint is used where it lies, and kept
    torch.save({"network_weights": {}}, tmp_path / "plain.pth")
    with release.start_checkpoint(tmp_path / "plain.pth") as checkpoint:
        assert checkpoint == tmp_path / "plain.pth"
    assert checkpoint.is_file()


def test_a_refused_run_leaves_no_extracted_checkpoint_behind(tmp_path, monkeypatch):
    import tempfile

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    maps = _empty_label_map_folder(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    (work / "notes.txt").write_text("someone else's")
    with pytest.raises(InputError, match="is not an earlier output of 'nnunet-ataxia train-pretrained'"):
        train_pretrained(work, label_maps=maps, initial_weights=_model_zip_with_checkpoint(tmp_path / "m.zip"))
    assert list(scratch.iterdir()) == [] and [p.name for p in work.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize("option, flag", [("cortex_folia", "--cortex-folia"), ("cortex_rim", "--cortex-rim"),
                                          ("no_dropout", "--no-dropout")])
def test_a_continuation_stage_without_initial_weights_is_refused_before_any_work(tmp_path, option, flag):
    """The folia, rim and no-dropout stages continue a trained model v2; without ``--initial-weights`` they would
    silently start from model v1 (the default start of model v2 itself), a recipe that made no released model."""
    maps = _empty_label_map_folder(tmp_path)
    with pytest.raises(InputError, match=f"{flag} continues a trained model v2: give its zip with --initial-weights"):
        train_pretrained(tmp_path / "work", label_maps=maps, **{option: True})
    assert not (tmp_path / "work").exists()
