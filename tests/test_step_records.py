"""StepRecords: a step of a resumable run is skipped only when its record matches this run and its outputs exist."""
from __future__ import annotations

import json

import pytest

from nnunet_ataxia.errors import InputError
from nnunet_ataxia.io.step_records import RECORD_FILE, StepRecords


def _finish(records, key, folder, after=()):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "out.txt").write_text(key)
    records.done(key, after=after)


def _two_steps(run, identity):
    records = StepRecords(run, identity)
    assert not records.check("data", [run / "data"])
    _finish(records, "data", run / "data")
    assert not records.check("train", [run / "train"], after=["data"])
    _finish(records, "train", run / "train", after=["data"])
    return records


def test_same_options_and_outputs_skip_every_step(tmp_path):
    _two_steps(tmp_path, {"seed": 0})
    again = StepRecords(tmp_path, {"seed": 0})
    assert again.check("data", [tmp_path / "data"])
    assert again.check("train", [tmp_path / "train"], after=["data"])
    assert again.skipped == ["data", "train"] and again.redone == {}
    assert again.summary() == "2 step(s) done before with the same options, skipped"


def test_other_options_redo_every_step_and_remove_its_outputs(tmp_path):
    _two_steps(tmp_path, {"seed": 0, "quick": True})
    again = StepRecords(tmp_path, {"seed": 5, "quick": True})
    assert not again.check("data", [tmp_path / "data"])
    assert not (tmp_path / "data").exists()              # the stale output is gone before the step runs
    _finish(again, "data", tmp_path / "data")
    assert not again.check("train", [tmp_path / "train"], after=["data"])
    assert again.redone == {"data": "options changed (seed 0 -> 5)", "train": "options changed (seed 0 -> 5)"}
    assert again.summary() == "2 redone: options changed (seed 0 -> 5): data, train"


def test_a_missing_output_redoes_the_step_and_the_steps_after_it(tmp_path):
    _two_steps(tmp_path, {"seed": 0})
    (tmp_path / "data" / "out.txt").unlink()
    again = StepRecords(tmp_path, {"seed": 0})
    assert not again.check("data", [tmp_path / "data" / "out.txt"], clear=[tmp_path / "data"])
    assert again.redone == {"data": "out.txt missing"}
    _finish(again, "data", tmp_path / "data")
    assert (tmp_path / "train" / "out.txt").is_file()     # present, but built on the old data
    assert not again.check("train", [tmp_path / "train"], after=["data"])
    assert again.redone["train"] == "an earlier step was redone"
    assert not (tmp_path / "train").exists()


def test_outputs_without_a_record_are_redone(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "old.txt").write_text("from a version without records")
    records = StepRecords(tmp_path, {"seed": 0})
    assert not records.check("data", [tmp_path / "data"])
    assert records.redone == {"data": "no record of the earlier run's options"}
    assert not (tmp_path / "data").exists()


def test_refuse_keeps_long_work_and_names_the_change(tmp_path):
    _two_steps(tmp_path, {"n_train": 180})
    before = json.loads((tmp_path / RECORD_FILE).read_text())
    again = StepRecords(tmp_path, {"n_train": 100})
    with pytest.raises(InputError) as e:
        again.check("train", [tmp_path / "train"], refuse=True)
    message = str(e.value)
    assert len(message.splitlines()) == 1
    assert str(tmp_path) in message and "n_train 180 -> 100" in message
    assert (tmp_path / "train" / "out.txt").read_text() == "train"
    assert json.loads((tmp_path / RECORD_FILE).read_text()) == before


def test_refuse_adopts_work_done_before_records_were_kept(tmp_path, capsys):
    (tmp_path / "train").mkdir()
    records = StepRecords(tmp_path, {"n_train": 180})
    assert records.check("train", [tmp_path / "train"], refuse=True)
    assert "taken as made with these options" in capsys.readouterr().out
    assert StepRecords(tmp_path, {"n_train": 180}).check("train", [tmp_path / "train"])


def test_nothing_outside_the_run_folder_is_removed(tmp_path):
    run, outside = tmp_path / "run", tmp_path / "mine"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    records = StepRecords(run, {"seed": 0})
    with pytest.raises(ValueError):
        records.check("data", [outside])
    assert (outside / "keep.txt").read_text() == "keep"
