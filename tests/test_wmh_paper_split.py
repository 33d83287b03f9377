"""convert-wmh --split paper: a seeded fixed split in the paper's 378/42/46 proportions; argument checks up front."""
from __future__ import annotations

import pytest

from nnunet_ataxia.cli import main
from nnunet_ataxia.dataset_conversion.wmh_splits import paper_split, paper_split_sizes


@pytest.mark.parametrize("n, sizes", [(466, (378, 42, 46)), (20, (16, 2, 2)), (3, (1, 1, 1)), (100, (81, 9, 10))])
def test_paper_split_sizes_and_no_overlap(n, sizes):
    ids = [f"case{i:03d}" for i in range(n)]
    split = paper_split(ids, seed=7)
    assert tuple(len(split[k]) for k in ("train", "val", "test")) == sizes == paper_split_sizes(n)
    parts = [set(split[k]) for k in ("train", "val", "test")]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert set().union(*parts) == set(ids)
    assert paper_split(ids[::-1], seed=7) == split          # the seed fixes it, whatever the input order
    assert paper_split(ids, seed=8) != split or n == 3


def test_paper_split_refuses_too_few_cases():
    with pytest.raises(ValueError):
        paper_split(["a", "b"])


@pytest.mark.parametrize("argv, message", [
    (["--prior-sigma", "-1"], "--prior-sigma: -1 must be >= 0"),
    (["--mni-spacing", "0"], "--mni-spacing: 0 must be > 0"),
    (["--split", "fixed"], "--split: invalid choice"),
    (["--num-folds", "1"], "--num-folds: 1 must be >= 2"),
    (["--prior-fold", "x"], "--prior-fold: 'x' is not an integer"),
])
def test_convert_wmh_usage_errors_before_any_work(tmp_path, argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        main(["convert-wmh", "-i", str(tmp_path), "-o", str(tmp_path / "out"), *argv])
    err = capsys.readouterr().err
    assert e.value.code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_paper_split_with_a_test_folder_is_refused(tmp_path, capsys):
    rc = main(["convert-wmh", "-i", str(tmp_path), "-t", str(tmp_path / "t"), "-o", str(tmp_path / "out"),
               "--split", "paper"])
    assert rc != 0 and "--split paper takes its test cases from the input" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
