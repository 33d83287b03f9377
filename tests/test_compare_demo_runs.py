"""``benchmarks/compare_demo_runs.py`` on two constructed demo folders."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def compare_runs(load_benchmark):
    return load_benchmark("compare_demo_runs.py")


def _demo_folder(root, *, weight: float, volume: float, log_time: str):
    root.mkdir()
    (root / "steps.json").write_text(json.dumps({"time": log_time}))                 # not compared
    (root / "timings.json").write_text(json.dumps({"train": log_time}))              # the WMH demo's: not compared
    (root / "volumes").mkdir()
    (root / "volumes" / "volumes.csv").write_text(f"case,input,volume\na,{root}/t1/a.nii.gz,{volume}\n")
    fold = root / "results" / "fold_0"
    fold.mkdir(parents=True)
    (fold / f"training_log_{log_time}.txt").write_text(log_time)                     # not compared
    torch.save({"network_weights": {"w": torch.full((2,), weight)}, "logging": {"mean_fg_dice": [0.5]},
                "time": log_time}, fold / "checkpoint_final.pth")
    (root / "mask.bin").write_bytes(np.arange(4, dtype=np.uint8).tobytes())
    return root


def test_runs_that_repeat_are_the_same_despite_their_paths_and_times(compare_runs, tmp_path):
    a = _demo_folder(tmp_path / "run_a", weight=1.0, volume=10.0, log_time="18_00")
    b = _demo_folder(tmp_path / "run_b", weight=1.0, volume=10.0, log_time="19_00")
    result = compare_runs.compare(a, b)
    assert sorted(result["same"]) == ["mask.bin", "results/fold_0/checkpoint_final.pth", "volumes/volumes.csv"]
    assert result["different"] == [] and result["missing"] == []
    assert sorted(result["not compared"]) == ["results/fold_0/training_log_18_00.txt", "steps.json", "timings.json"]


def test_a_different_weight_or_volume_is_found(compare_runs, tmp_path):
    a = _demo_folder(tmp_path / "run_a", weight=1.0, volume=10.0, log_time="18_00")
    b = _demo_folder(tmp_path / "run_b", weight=1.0 + 1e-7, volume=10.5, log_time="18_00")
    (b / "mask.bin").unlink()
    result = compare_runs.compare(a, b)
    assert sorted(result["different"]) == ["results/fold_0/checkpoint_final.pth", "volumes/volumes.csv"]
    assert result["missing"] == ["mask.bin"]
