"""``segment`` re-runs: a subject is skipped only when input, model, options and outputs are those of its record;
reserved case names and impossible settings are refused before any work.

The network and the preprocessing are replaced by a stand-in ``segment_subject`` whose "cerebellum" is every voxel
above the image's mean: the volumes then follow the input's content, which is what a re-run must not lose.
"""
from __future__ import annotations

import json

import pandas as pd
import pytest
from bad_input_data import snapshot
from segment_fakes import fake_model, install_fakes
from segment_fakes import write_t1 as _t1

from nnunet_ataxia.cli import main
from nnunet_ataxia.inference.subject import RECORD_FILE

LABELS = {"background": 0, "cerebellum": 1}


@pytest.fixture
def fake(tmp_path, monkeypatch):
    install_fakes(monkeypatch)
    return fake_model(tmp_path, LABELS)


def _run(capsys, source, out, model, *extra):
    capsys.readouterr()
    rc = main(["segment", "-i", str(source), "-o", str(out), "-m", str(model), *map(str, extra)])
    captured = capsys.readouterr()
    return rc, captured.out, [line for line in captured.err.splitlines() if line.strip()]


def _volumes(out) -> pd.DataFrame:
    return pd.read_csv(out / "volumes.csv").set_index("case")


def test_rerun_skips_only_when_input_model_options_and_outputs_match(tmp_path, fake, capsys):
    first, out = tmp_path / "first", tmp_path / "out"
    _t1(first / "sub-01.nii.gz", 10)
    _t1(first / "sub-02.nii.gz", 20)
    assert _run(capsys, first, out, fake)[0] == 0
    assert _volumes(out).loc["sub-01", "cerebellum_native_mm3"] == 10

    rc, stdout, err = _run(capsys, first, out, fake)  # nothing changed: both skipped
    assert rc == 0 and "2 done before" in stdout and "redone" not in stdout
    # the stand-in's volumes (a few mm³) are far below the documented range: one warning line, and a column
    assert len(err) == 1 and err[0].startswith(f"warning: {out}/volumes.csv: 2 subject(s) with a volume outside")
    assert _volumes(out).loc["sub-01", "implausible"] == "cerebellum 10 mm³ < 50,000"

    # another folder whose scan has the same file name: redone with the new scan's numbers
    _t1(tmp_path / "second" / "sub-01.nii.gz", 30)
    rc, stdout, err = _run(capsys, tmp_path / "second", out, fake)
    assert rc == 0 and "1 redone: other input file: sub-01" in stdout
    table = _volumes(out)
    assert table.loc["sub-01", "cerebellum_native_mm3"] == 30
    assert table.loc["sub-01", "input"] == str(tmp_path / "second" / "sub-01.nii.gz")

    _t1(first / "sub-02.nii.gz", 40)  # same path, new content
    rc, stdout, _ = _run(capsys, first, out, fake)
    assert rc == 0 and "input changed: sub-02" in stdout and "other input file: sub-01" in stdout
    assert _volumes(out).loc["sub-02", "cerebellum_native_mm3"] == 40

    rc, stdout, _ = _run(capsys, first, out, fake, "--native-mapping", "labels")
    assert rc == 0 and "2 redone: other options (native_mapping)" in stdout
    rc, stdout, _ = _run(capsys, first, out, fake, "--native-mapping", "labels", "--disable_tta")
    assert rc == 0 and "2 redone: other options (mirror)" in stdout

    (out / "sub-01" / "sub-01_cerebellum.nii.gz").unlink()  # a deleted mask is written again
    rc, stdout, _ = _run(capsys, first, out, fake, "--native-mapping", "labels", "--disable_tta")
    assert rc == 0 and "1 redone: output missing (sub-01/sub-01_cerebellum.nii.gz)" in stdout
    assert (out / "sub-01" / "sub-01_cerebellum.nii.gz").is_file()

    (fake / "fold_0" / "checkpoint_final.pth").write_bytes(b"weights v2")  # retrained model
    rc, stdout, _ = _run(capsys, first, out, fake, "--native-mapping", "labels", "--disable_tta")
    assert rc == 0 and "2 redone: other model" in stdout


def test_segment_json_records_what_makes_the_result(tmp_path, fake, capsys):
    _t1(tmp_path / "in" / "sub-01.nii.gz", 10)
    assert _run(capsys, tmp_path / "in", tmp_path / "out", fake)[0] == 0
    record = json.loads((tmp_path / "out" / "sub-01" / RECORD_FILE).read_text())
    assert record["identity"]["input"]["path"] == str((tmp_path / "in" / "sub-01.nii.gz").resolve())
    assert len(record["identity"]["input"]["sha256"]) == 64
    assert record["identity"]["model"]["files"]["fold_0/checkpoint_final.pth"]["size"] == len(b"weights v1")
    assert record["identity"]["options"]["mirror"] is True
    assert "qc/sub-01.png" in record["outputs"] and "sub-01/sub-01_seg.nii.gz" in record["outputs"]


@pytest.mark.parametrize("name, case", [("qc.nii.gz", "qc"), ("volumes.csv.nii.gz", "volumes.csv"),
                                        ("QC_0000.nii.gz", "QC")])
def test_case_named_like_a_run_output_is_refused_up_front(tmp_path, fake, capsys, name, case):
    inputs, out = tmp_path / "in", tmp_path / "out"
    _t1(inputs / "sub-01.nii.gz", 10)
    assert _run(capsys, inputs, out, fake)[0] == 0  # an earlier run with its qc/ pictures
    _t1(inputs / name, 12)
    before = snapshot(tmp_path)
    rc, stdout, err = _run(capsys, inputs, out, fake)
    assert rc == 1 and len(err) == 1, err
    assert err[0].startswith(f"error: {inputs / name}: case id '{case}' is reserved"), err
    assert snapshot(tmp_path) == before


def test_cuda_without_cuda_is_refused_once_before_any_work(tmp_path, fake, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    inputs = tmp_path / "in"
    for i in range(3):
        _t1(inputs / f"sub-0{i}.nii.gz", 10 + i)
    before = snapshot(tmp_path)
    rc, stdout, err = _run(capsys, inputs, tmp_path / "out", fake, "-device", "cuda")
    assert rc == 1 and len(err) == 1 and err[0].startswith("error: -device cuda: CUDA is not available"), err
    assert snapshot(tmp_path) == before and not (tmp_path / "out").exists()


@pytest.mark.parametrize("extra, culprit", [(["-np", "0"], "-np/--num-processes"),
                                            (["--registration-template-mm", "0"], "--registration-template-mm"),
                                            (["--seed", "-1"], "--seed")])
def test_impossible_settings_are_usage_errors(tmp_path, fake, capsys, extra, culprit):
    _t1(tmp_path / "in" / "sub-01.nii.gz", 10)
    before = snapshot(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(["segment", "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-m", str(fake), *extra])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert e.value.code == 2 and len(err) == 1 and culprit in err[0], err
    assert snapshot(tmp_path) == before
