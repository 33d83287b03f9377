"""A cohort segmented in parts (``segment --num-parts N --part-id I``) and merged (``segment --merge``) gives the output
of one run; parts that do not fit together are refused; segment's subjects run through the project's one process
pool (``io/parallel.run_cases``). The network is replaced by tests/segment_fakes.py (seconds, not minutes).
"""
from __future__ import annotations

import json

import pytest
from bad_input_data import snapshot
from segment_fakes import fake_model, install_fakes, remember, with_state, write_t1

from nnunet_ataxia.cli import main
from nnunet_ataxia.inference.parts import select_part
from nnunet_ataxia.io.parallel import run_cases

CASES = ["s07", "s01", "s03", "s10", "s02", "s05", "s04"]  # s04 is constant: it fails, in one part as in one run


@pytest.fixture
def cohort(tmp_path, monkeypatch):
    install_fakes(monkeypatch)
    inputs = tmp_path / "in"
    for i, case in enumerate(CASES):
        write_t1(inputs / f"{case}.nii.gz", 0 if case == "s04" else 20 + 7 * i)
    return inputs, fake_model(tmp_path)


def _segment(capsys, *args):
    code = main(["segment", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, [line for line in captured.err.splitlines() if line.strip()]


def _files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()
                  and p.name != ".nnunet-ataxia-output.json" and p.name != "segment_part.json")


def test_split_is_nnunets_strided_split_of_the_sorted_cases():
    cases = sorted(CASES)
    parts = [select_part(CASES, 3, i) for i in range(3)]
    assert parts == [cases[0::3], cases[1::3], cases[2::3]]
    assert sorted(sum(parts, [])) == cases and select_part(["a"], 4, 3) == []


def test_three_parts_merged_give_the_single_runs_tables_and_qc_index(tmp_path, cohort, capsys):
    inputs, model = cohort
    code, _, err = _segment(capsys, "-i", inputs, "-o", tmp_path / "one", "-m", model)
    assert code == 1 and err[-1] == "error: 1 subject(s) failed: s04", err
    for i in range(3):
        code, out, _ = _segment(capsys, "-i", inputs, "-o", tmp_path / f"part{i}", "-m", model,
                                "--num-parts", 3, "--part-id", i)
        part = json.loads((tmp_path / f"part{i}" / "segment_part.json").read_text())
        assert part["cases"] == sorted(CASES)[i::3], part
        assert (code == 1) == ("s04" in part["cases"])
    code, out, err = _segment(capsys, "--merge", *(tmp_path / f"part{i}" for i in (2, 0, 1)),
                              "-o", tmp_path / "merged")
    assert code == 1 and "s04" in err[-1], err  # the failed subject is still reported
    one, merged = tmp_path / "one", tmp_path / "merged"
    assert (merged / "volumes.csv").read_bytes() == (one / "volumes.csv").read_bytes()
    assert (merged / "qc" / "index.html").read_bytes() == (one / "qc" / "index.html").read_bytes()
    assert _files(merged) == _files(one)
    text = (merged / "volumes.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in text[1:]] == sorted(CASES)
    assert "qc" in text[0].split(",") and "implausible" in text[0].split(",")
    # the merged folder is a segment output: a later run into it redoes nothing
    code, out, _ = _segment(capsys, "-i", inputs, "-o", merged, "-m", model)
    assert "6 done before" in out and (merged / "volumes.csv").read_bytes() == (one / "volumes.csv").read_bytes()


def test_merge_refuses_parts_that_do_not_fit_and_writes_nothing(tmp_path, cohort, capsys):
    inputs, model = cohort
    for n, i in ((3, 0), (3, 1), (3, 2), (2, 0)):
        _segment(capsys, "-i", inputs, "-o", tmp_path / f"p{n}{i}", "-m", model, "--num-parts", n, "--part-id", i)
    _segment(capsys, "-i", inputs, "-o", tmp_path / "whole", "-m", model)
    unfinished = tmp_path / "unfinished"
    _segment(capsys, "-i", inputs, "-o", unfinished, "-m", model, "--num-parts", 3, "--part-id", 2)
    (unfinished / "segment_part.json").unlink()
    p = [tmp_path / f"p3{i}" for i in range(3)]
    cases = [([p[0], p[1]], "part(s) 2 of 3 missing"),
             ([p[0], p[1], p[2], p[1]], f"{p[1]}: part 1 of 3 again"),
             ([p[0], p[1], tmp_path / "p20"], f"{tmp_path / 'p20'}: does not fit with {p[0]}"),
             ([p[0], p[1], tmp_path / "whole"], f"{tmp_path / 'whole'}: not a finished part"),
             ([p[0], p[1], unfinished], f"{unfinished}: not a finished part"),
             ([p[0], p[1], tmp_path / "nothing"], f"{tmp_path / 'nothing'}: not a segment output folder")]
    before = snapshot(tmp_path)
    for folders, message in cases:
        code, _, err = _segment(capsys, "--merge", *folders, "-o", tmp_path / "merged")
        assert code == 1 and len(err) == 1 and message in err[0], (message, err)
    code, _, err = _segment(capsys, "--merge", *p, "-o", tmp_path / "whole")  # a run's folder is not replaced
    assert code == 1 and "not an earlier merge" in err[0], err
    assert snapshot(tmp_path) == before


def test_a_part_folder_takes_only_its_own_part(tmp_path, cohort, capsys):
    inputs, model = cohort
    _segment(capsys, "-i", inputs, "-o", tmp_path / "p", "-m", model, "--num-parts", 3, "--part-id", 0)
    code, _, err = _segment(capsys, "-i", inputs, "-o", tmp_path / "p", "-m", model, "--num-parts", 3, "--part-id", 1)
    assert code == 1 and err == [f"error: {tmp_path / 'p'}: holds part 0 of 3 of a split run, this is part 1 of 3; "
                                 f"use another output folder"], err


@pytest.mark.parametrize("extra, culprit", [(["--num-parts", "3", "--part-id", "3"], "--part-id 3"),
                                            (["--part-id", "1"], "--num-parts and --part-id go together"),
                                            (["--merge", "a", "b"], "--merge takes the part folders and -o only")])
def test_part_options_that_cannot_work_are_usage_errors(tmp_path, cohort, capsys, extra, culprit):
    inputs, model = cohort
    before = snapshot(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(["segment", "-i", str(inputs), "-o", str(tmp_path / "out"), "-m", str(model), *extra])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert e.value.code == 2 and len(err) == 1 and culprit in err[0], err
    assert snapshot(tmp_path) == before


def test_pool_initializes_workers_reports_each_result_and_survives_a_dead_worker():
    seen = []
    results = run_cases(with_state, ["a", "bad", "die"], 2, "test", initializer=remember, initargs=("model",),
                        on_result=lambda case, result: seen.append(case),
                        on_error=lambda case, e: ("failed", type(e).__name__), progress=False)
    assert results[1] == ("failed", "ValueError") and results[2] == ("failed", "BrokenProcessPool"), results
    assert results[0] in (("a", "model"), ("failed", "BrokenProcessPool"))  # a dead worker breaks the pool
    assert sorted(seen) == ["a", "bad", "die"]
    # in this process the initializer is not run (the caller sets up its own process), results keep their order
    assert run_cases(with_state, ["x", "y"], 1, "test", initializer=remember, initargs=("m",)) == \
        [("x", None), ("y", None)]
    with pytest.raises(ValueError, match="bad case"):
        run_cases(with_state, ["x", "bad"], 1, "test")
