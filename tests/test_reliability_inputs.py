"""Arguments checked before any work, error lines that name the real culprit, inputs that are not what they claim,
and a report that cannot carry script or a damaged picture. Each case: exit status, the one line, nothing changed."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from bad_input_data import (
    hammers_inputs,
    label_map,
    prediction_on_preprocessed_grid,
    snapshot,
    t1_like,
    transform_folder,
    volume_inputs,
    write,
)

from nnunet_ataxia.cli import main


def _run(capsys, argv):
    capsys.readouterr()
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as e:  # argparse's usage errors
        rc = e.code
    captured = capsys.readouterr()
    return rc, [line for line in captured.err.splitlines() if line.strip()], captured.out


def _t1_folder(root, n=1, shape=(16, 16, 16)):
    for i in range(n):
        write(t1_like(i, shape), root / f"sub0{i + 1}.nii.gz")
    return root


@pytest.mark.parametrize("argv, culprit", [
    (["preprocess-mri", "-i", "{t}/in", "-o", "{t}/out", "--registration-template-mm", "0"],
     "--registration-template-mm"),
    (["preprocess-mri", "-i", "{t}/in", "-o", "{t}/out", "-np", "0"], "-np/--num-processes"),
    (["plan", "-d", "501", "-np", "0"], "-np/--num-processes"),
    (["plan", "-d", "501", "-np", "two"], "-np/--num-processes"),
    (["convert-hammers", "-i", "{t}/in", "-o", "{t}/raw/Dataset501_H", "-d", "1000"], "--dataset-id"),
    (["make-demo", "-o", "{t}/demo", "--size", "-2"], "--size"),
])
def test_impossible_arguments_are_usage_errors_before_any_work(tmp_path, capsys, argv, culprit):
    _t1_folder(tmp_path / "in")
    before = snapshot(tmp_path)
    rc, err, _ = _run(capsys, [a.format(t=tmp_path) for a in argv])
    assert rc == 2 and len(err) == 1 and culprit in err[0], err
    assert snapshot(tmp_path) == before


def test_cv5_with_too_few_cases_is_refused_up_front(tmp_path, capsys, nnunet_environ):
    hammers_inputs(tmp_path / "in", n=2)
    before = snapshot(tmp_path)
    rc, err, _ = _run(capsys, ["convert-hammers", "-i", tmp_path / "in", "-o", tmp_path / "raw" / "Dataset501_H",
                               "--split", "cv5"])
    assert rc == 1 and len(err) == 1 and err[0].startswith(f"error: {tmp_path / 'in'}: --split cv5 needs"), err
    assert snapshot(tmp_path) == before


def test_ctrl_c_while_starting_is_one_line(monkeypatch, capsys):
    from nnunet_ataxia import cli

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)
    rc, err, _ = _run(capsys, ["segment", "-i", "x", "-o", "y"])
    assert rc == 130 and len(err) == 1 and "interrupted while starting" in err[0], err


_SLEEPY_COMMAND = """
import argparse, os, sys, time
from pathlib import Path
from nnunet_ataxia import cli
from nnunet_ataxia.io.parallel import run_cases

def run(args):
    run_cases(time.sleep, [60, 60, 60], num_processes=2, desc="sleep", progress=False)
    Path(sys.argv[1], "finished").write_text("")

class Parser:
    def parse_args(self, argv):
        return argparse.Namespace(command="sleepy", _run=run)

cli.build_parser = Parser
sys.exit(cli.main([]))
"""


def _stat(pid: int) -> list[str]:
    """(state, parent pid, ...) of a process from /proc, [] when it is gone (Linux)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _alive(pid: int) -> bool:
    fields = _stat(pid)
    return bool(fields) and fields[0] != "Z"


def _children(pid: int) -> set[int]:
    """Live processes whose parent is ``pid``."""
    return {int(p.name) for p in Path("/proc").glob("[0-9]*") if (f := _stat(int(p.name))) and f[0] != "Z"
            and int(f[1]) == pid}


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads worker processes from /proc (Linux)")
def test_sigterm_ends_a_command_like_ctrl_c_and_stops_its_workers(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-c", _SLEEPY_COMMAND, str(tmp_path)], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(workers := _children(proc.pid)) < 2 and time.monotonic() < deadline:  # the pool's two workers
        time.sleep(0.2)
    assert len(workers) >= 2, "the worker processes did not start"
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert proc.returncode == 130 and lines == [lines[-1]] and "sleepy: interrupted" in lines[-1], stderr
    time.sleep(0.5)
    assert not [pid for pid in workers if _alive(pid)], "a worker process outlived the command"
    assert not (tmp_path / "finished").exists()


_FORKED_CHILD_COMMAND = """
import argparse, multiprocessing, sys, time
from nnunet_ataxia import cli

def run(args):  # as nnU-Net's fork pools do on exit: terminate a worker that is busy
    child = multiprocessing.get_context("fork").Process(target=time.sleep, args=(60,))
    child.start()
    time.sleep(1.0)
    child.terminate()
    child.join(20)
    print(child.exitcode)

class Parser:
    def parse_args(self, argv):
        return argparse.Namespace(command="forks", _run=run)

cli.build_parser = Parser
sys.exit(cli.main([]))
"""


def test_a_forked_child_still_dies_on_sigterm():
    import signal
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", _FORKED_CHILD_COMMAND], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(-signal.SIGTERM)], result.stdout + result.stderr


def test_a_label_map_given_as_t1_is_refused(tmp_path, capsys):
    from nnunet_ataxia.errors import InputError
    from nnunet_ataxia.inference.subject import load_native_t1

    seg = np.zeros((16, 16, 16), np.uint8)
    seg[2:8, 2:9, 2:10] = 8
    seg[8:12, 4:8, 4:8] = 16  # an aseg-like map: 3 values
    write(seg, tmp_path / "in" / "sub01.nii.gz")
    before = snapshot(tmp_path)
    rc, err, _ = _run(capsys, ["preprocess-mri", "-i", tmp_path / "in", "-o", tmp_path / "out"])
    assert rc == 1 and len(err) == 1, err
    assert err[0].startswith(f"error: {tmp_path / 'in' / 'sub01.nii.gz'}: looks like a label map"), err
    assert snapshot(tmp_path) == before
    with pytest.raises(InputError, match="looks like a label map"):  # segment reads the T1 the same way
        load_native_t1(tmp_path / "in" / "sub01.nii.gz")
    write(t1_like(0, (16, 16, 16)), tmp_path / "t1.nii.gz")
    load_native_t1(tmp_path / "t1.nii.gz")  # a real intensity image passes


def test_pure_noise_given_as_t1_is_refused_after_registration(tmp_path, capsys):
    rng = np.random.default_rng(0)
    noise = rng.normal(100.0, 30.0, (48, 56, 48)).astype(np.float32)
    write(noise, tmp_path / "in" / "sub01.nii.gz", spacing=(4.0, 4.0, 4.0))
    before = snapshot(tmp_path)
    rc, err, _ = _run(capsys, ["preprocess-mri", "-i", tmp_path / "in", "-o", tmp_path / "out",
                               "--registration-template-mm", "4"])
    assert rc == 1 and len(err) == 1, err
    assert err[0].startswith(f"error: {tmp_path / 'in' / 'sub01.nii.gz'}: registration to MNI failed"), err
    assert "is this a T1 image of a head?" in err[0]
    assert snapshot(tmp_path) == before           # no output folder, nothing half-written


def test_to_native_refuses_another_cases_transform_folder(tmp_path, capsys):
    for case in ("sub01", "sub02"):
        prediction_on_preprocessed_grid(tmp_path / "pred" / f"{case}.nii.gz")
        folder = transform_folder(tmp_path / "transforms" / case)
    meta = json.loads((folder / "preprocessing.json").read_text())  # sub02's folder made from sub01's scan
    meta["source_image"] = "/data/t1/sub01.nii.gz"
    (folder / "preprocessing.json").write_text(json.dumps(meta))
    before = snapshot(tmp_path)
    rc, err, _ = _run(capsys, ["to-native", "-i", tmp_path / "pred", "-t", tmp_path / "transforms", "-o",
                               tmp_path / "native"])
    assert rc == 1 and len(err) == 1, err
    assert err[0].startswith(f"error: {tmp_path / 'pred' / 'sub02.nii.gz'}: its transform folder") and \
        "made from case 'sub01'" in err[0], err
    assert snapshot(tmp_path) == before


def test_convert_hammers_names_duplicate_files_and_unknown_labels(tmp_path, capsys, nnunet_environ):
    root = hammers_inputs(tmp_path / "in", n=2)
    write(t1_like(2), root / "a02.nii")  # a02.nii next to a02.nii.gz
    before = snapshot(tmp_path)
    rc, err, _ = _run(capsys, ["convert-hammers", "-i", root, "-o", tmp_path / "raw" / "Dataset501_H",
                               "--split", "none"])
    assert rc == 1 and len(err) == 1 and "a02.nii" in err[0] and "same image" in err[0], err
    assert snapshot(tmp_path) == before

    (root / "a02.nii").unlink()
    seg = (label_map(1) > 0).astype(np.uint16) * 17
    seg[0, 0, 0] = 999  # not a Hammers region
    write(seg, root / "a02-seg.nii.gz")
    before = snapshot(tmp_path)
    rc, err, _ = _run(capsys, ["convert-hammers", "-i", root, "-o", tmp_path / "raw" / "Dataset501_H",
                               "--split", "none"])
    assert rc == 1 and len(err) == 1 and "a02-seg.nii.gz" in err[0] and "999" in err[0], err
    assert snapshot(tmp_path) == before


def test_convert_hammers_reports_a_t1_without_labels(tmp_path, capsys, nnunet_environ):
    root = hammers_inputs(tmp_path / "in", n=2)
    write(t1_like(3), root / "a03.nii.gz")  # no a03-seg
    rc, err, _ = _run(capsys, ["convert-hammers", "-i", root, "-o", tmp_path / "raw" / "Dataset501_H",
                               "--split", "none"])
    assert rc == 0 and len(err) == 1, err
    assert err[0].startswith(f"warning: {root}: 1 image(s) without a label map") and "a03.nii.gz" in err[0]


def test_a_dataset_id_in_use_by_another_dataset_is_refused(tmp_path, capsys, nnunet_environ):
    root = hammers_inputs(tmp_path / "in", n=2)
    raw = tmp_path / "nnunet" / "nnUNet_raw"
    (raw / "Dataset502_SCA2Cohort").mkdir(parents=True)
    (raw / "Dataset502_SCA2Cohort" / "dataset.json").write_text("{}")
    before = snapshot(tmp_path)
    rc, err, _ = _run(capsys, ["convert-hammers", "-i", root, "-d", "502", "--split", "none"])
    assert rc == 1 and len(err) == 1 and "dataset id 502 is already used by" in err[0], err
    assert err[0].startswith(f"error: {raw / 'Dataset502_HammersN30R95'}"), err
    assert snapshot(tmp_path) == before


def _volumes_output(tmp_path, capsys):
    d = volume_inputs(tmp_path)
    assert _run(capsys, ["compare-volumes", "--volumes-csv", d["csv"], "--out", tmp_path / "vol"])[0] == 0
    return tmp_path / "vol"


def test_report_shows_notes_as_text_never_as_html(tmp_path, capsys):
    vol = _volumes_output(tmp_path, capsys)
    notes = "<script>alert('x')</script> see [this](javascript:alert(1)) and **bold**"
    rc, err, _ = _run(capsys, ["report", "--out", tmp_path / "report", "--volumes", vol, "--notes", notes])
    assert rc == 0, err
    page = (tmp_path / "report" / "report.html").read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "javascript:" not in page and "<strong>bold</strong>" in page


def test_report_refuses_a_truncated_png(tmp_path, capsys):
    vol = _volumes_output(tmp_path, capsys)
    png = (vol / "scatter.png").read_bytes()
    (vol / "scatter.png").write_bytes(png[: len(png) // 2])  # the signature is fine, the rest is cut
    before = snapshot(tmp_path)
    rc, err, _ = _run(capsys, ["report", "--out", tmp_path / "report", "--volumes", vol])
    assert rc == 1 and len(err) == 1, err
    assert err[0].startswith(f"error: {vol / 'scatter.png'}: damaged PNG image"), err
    assert snapshot(tmp_path) == before
