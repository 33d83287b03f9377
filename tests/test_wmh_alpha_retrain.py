"""wmh-tune-alpha --retrain: one network per alpha, the best validation AUC selected, resumable (training stubbed;
the sweep, the record and the selection are the real code)."""
from __future__ import annotations

import json

import pytest

from nnunet_ataxia.cli import main as cli_main
from nnunet_ataxia.errors import InputError
from nnunet_ataxia.evaluation.wmh_alpha_retrain import run_alpha_sweep, select_best_alpha

AUC = {0.25: 0.912, 1.0: 0.951, 4.0: 0.933, 10.0: 0.6}
IDENTITY = {"trainer": "WMHSSLocTrainer_paper", "plans": "nnUNetPlans", "configuration": "2d"}


class Stub:
    """A 'training' that writes a results tree, and a validation AUC per alpha; fails on request."""

    def __init__(self, fail_on: float | None = None):
        self.trained, self.fail_on = [], fail_on

    def train(self, alpha, root):
        if alpha == self.fail_on:
            raise KeyboardInterrupt
        self.trained.append(alpha)
        (root / "fold_0").mkdir(parents=True, exist_ok=True)

    def score(self, alpha, root):
        assert (root / "fold_0").is_dir()   # scored after its own training
        return AUC[alpha]


def test_selected_alpha_is_the_argmax_of_validation_auc(tmp_path):
    stub = Stub()
    record = run_alpha_sweep(tmp_path, 0, [4.0, 0.25, 1.0, 10.0], IDENTITY, stub.train, stub.score)
    assert stub.trained == [0.25, 1.0, 4.0, 10.0]
    assert record["alpha"] == max(AUC, key=AUC.get) == 1.0
    assert [r["auc"] for r in record["sweep"]] == [AUC[a] for a in (0.25, 1.0, 4.0, 10.0)]
    on_disk = json.loads((tmp_path / "alpha_retrain_fold_0.json").read_text())
    assert on_disk["alpha"] == 1.0 and on_disk["model"] == str(tmp_path / "alpha_1")


def test_sweep_resumes_after_an_interruption_and_reuses_only_matching_records(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        run_alpha_sweep(tmp_path, 0, [0.25, 1.0, 4.0], IDENTITY, Stub(fail_on=4.0).train, Stub().score)
    partial = json.loads((tmp_path / "alpha_retrain_fold_0.json").read_text())
    assert partial["alpha"] is None and [r["alpha"] for r in partial["sweep"]] == [0.25, 1.0]
    again = Stub()
    record = run_alpha_sweep(tmp_path, 0, [0.25, 1.0, 4.0], IDENTITY, again.train, again.score)
    assert again.trained == [4.0] and record["alpha"] == 1.0
    other = Stub()   # another trainer: nothing reused
    run_alpha_sweep(tmp_path, 0, [0.25, 1.0], {**IDENTITY, "trainer": "WMHMSWSLocTrainer_paper"}, other.train,
                    other.score)
    assert other.trained == [0.25, 1.0]


def test_ties_go_to_the_smallest_alpha_and_nan_is_never_selected():
    rows = [{"alpha": 2.0, "auc": 0.9}, {"alpha": 0.5, "auc": 0.9}, {"alpha": 1.0, "auc": float("nan")}]
    assert select_best_alpha(rows)["alpha"] == 0.5
    with pytest.raises(InputError):
        select_best_alpha([{"alpha": 1.0, "auc": float("nan")}])


@pytest.mark.parametrize("argv, message", [
    (["-f", "abc"], "-f/--fold: 'abc' is not an integer"),
    (["-f", "-1"], "-f/--fold: -1 must be >= 0"),
    (["-f", "0", "--alphas", "-2"], "--alphas: -2 must be >= 0"),
])
def test_bad_arguments_are_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        cli_main(["wmh-tune-alpha", "-d", "504", "-tr", "WMHSSLocTrainer_paper", *argv])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
