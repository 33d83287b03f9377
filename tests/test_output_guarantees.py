"""What the guarantees allow: re-runs, --overwrite, earlier outputs, both single-subject namings, staged plan."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import SimpleITK as sitk
from bad_input_data import (
    evaluate_argv,
    evaluation_inputs,
    foreign_folder,
    label_map,
    snapshot,
    t1_like,
    transform_folder,
    write,
)

from nnunet_ataxia.cli import main
from nnunet_ataxia.io.output_folders import MARKER_NAME


def _dice(out):
    return json.loads((out / "summary.json").read_text())["per_method"]["nnU-Net"]["mean"]["cerebellum"]["Dice"]


def test_rerun_replaces_own_output_and_leaves_a_marker(tmp_path):
    d = evaluation_inputs(tmp_path)
    out = tmp_path / "eval"
    assert main(evaluate_argv(d, out)) == 0
    first = (out / "summary.json").read_text()
    assert json.loads((out / MARKER_NAME).read_text())["command"] == "evaluate"
    assert main(evaluate_argv(d, out)) == 0  # idempotent re-run into its own output
    assert (out / "summary.json").read_text() == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataset.json", "eval", "labelsTr", "participants.tsv",
                                                          "pred"]


def test_an_output_folder_gets_the_permissions_of_mkdir_not_mkdtemp(tmp_path):
    """A command's output folder is readable by whoever the user's umask allows (mkdtemp's staging folder is 0700)."""
    d = evaluation_inputs(tmp_path)
    (tmp_path / "by_mkdir").mkdir()
    assert main(evaluate_argv(d, tmp_path / "eval")) == 0
    umask = os.umask(0o022)
    os.umask(umask)
    assert umask & 0o070 != 0o070, "the test needs a umask that lets the group read"
    mode = (tmp_path / "eval").stat().st_mode & 0o777
    assert mode == (tmp_path / "by_mkdir").stat().st_mode & 0o777 == 0o777 & ~umask


def test_overwrite_replaces_a_foreign_folder_but_never_an_input(tmp_path, capsys):
    d = evaluation_inputs(tmp_path)
    mine = foreign_folder(tmp_path / "mine")
    assert main(evaluate_argv(d, mine)) == 1
    assert (mine / "thesis.tex").is_file()
    assert main(evaluate_argv(d, mine, "--overwrite")) == 0
    assert not (mine / "thesis.tex").exists() and (mine / "summary.json").is_file()
    before = snapshot(tmp_path)
    assert main(evaluate_argv(d, d["pred"], "--overwrite")) == 1  # the prediction folder is an input
    assert "input" in capsys.readouterr().err and snapshot(tmp_path) == before


def test_output_of_an_older_version_without_marker_is_recognized(tmp_path):
    d = evaluation_inputs(tmp_path)
    out = tmp_path / "eval"
    assert main(evaluate_argv(d, out)) == 0
    (out / MARKER_NAME).unlink()  # as written before the marker existed: summary.json, table.md, per_case.csv
    assert main(evaluate_argv(d, out)) == 0 and (out / MARKER_NAME).is_file()


def test_empty_existing_folder_is_accepted(tmp_path):
    d = evaluation_inputs(tmp_path)
    (tmp_path / "empty").mkdir()
    assert main(evaluate_argv(d, tmp_path / "empty")) == 0


def test_float_labels_within_tolerance_give_exact_metrics(tmp_path):
    d = evaluation_inputs(tmp_path)
    for i, c in enumerate(("c1", "c2")):  # a prediction saved as float with rounding noise, not truncated to 0
        noisy = label_map(i).astype(np.float32) + np.float32(4e-4) * (-1) ** i
        write(noisy, d["pred"] / f"{c}.nii.gz")
    assert main(evaluate_argv(d, tmp_path / "eval")) == 0
    assert _dice(tmp_path / "eval") == 1.0


@pytest.mark.parametrize("prediction, transforms", [("sub01", "sub01"), ("sub01_0000", "sub01"),
                                                    ("sub01", "sub01_0000")])
def test_to_native_accepts_both_single_subject_namings(tmp_path, prediction, transforms):
    a = np.zeros((8, 8, 8), np.uint8)
    a[2:6, 2:6, 2:6] = 1
    write(a, tmp_path / "pred" / f"{prediction}.nii.gz")
    transform_folder(tmp_path / "pre" / "transforms" / transforms, native_size=(8, 8, 8), native_spacing=1.0)
    assert main(["to-native", "-i", str(tmp_path / "pred"), "-t", str(tmp_path / "pre" / "transforms"), "-o",
                 str(tmp_path / "native")]) == 0
    back = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "native" / "sub01.nii.gz")))
    np.testing.assert_array_equal(back, a)  # identity transform, same grid: the mask comes back unchanged


@pytest.mark.parametrize("image_name", ["sub01.nii.gz", "sub01_0000.nii.gz"])
def test_preprocess_mri_case_id_drops_the_channel_suffix(tmp_path, image_name):
    from nnunet_ataxia.io.cases import subject_id_of
    from nnunet_ataxia.preprocessing.mri_batch import find_t1_inputs as _find_inputs

    write(t1_like(), tmp_path / "t1" / image_name)
    write(label_map(0), tmp_path / "labels" / "sub01.nii.gz")
    assert subject_id_of(tmp_path / "t1" / image_name) == "sub01"
    [(case_id, image, label)] = _find_inputs(tmp_path / "t1", tmp_path / "labels")
    assert (case_id, image.name, label.name) == ("sub01", image_name, "sub01.nii.gz")


#: run in nnU-Net's place by the planning child process: writes as nnU-Net would, into $nnUNet_preprocessed
FAKE_NNUNET_PLANNING = """
import os
from nnunetv2.experiment_planning import plan_and_preprocess_api as api

def staged():
    return os.path.join(os.environ["nnUNet_preprocessed"], "Dataset994_ToyCerebellum")

def fingerprint(dataset_id, **kw):
    assert os.environ["nnUNet_preprocessed"] != os.environ["REAL_PREPROCESSED"]  # the child writes to staging
    with open(os.path.join(staged(), "dataset_fingerprint.json"), "w") as f:
        f.write("{}")

def plans(dataset_id, planner):
    assert planner.__name__ == "FixedPatch128Planner"
    with open(os.path.join(staged(), "nnUNetFixed128Plans.json"), "w") as f:
        f.write('{"new": true}')
    return {}, "nnUNetFixed128Plans"

def preprocess(dataset_id, plans_identifier, **kw):
    os.makedirs(os.path.join(staged(), "nnUNetFixed128Plans_3d_fullres"))
    with open(os.path.join(staged(), "nnUNetFixed128Plans_3d_fullres", "toy_000.b2nd"), "w") as f:
        f.write("new")

api.extract_fingerprint_dataset, api.plan_experiment_dataset, api.preprocess_dataset = fingerprint, plans, preprocess
"""


def test_plan_merges_its_files_and_keeps_the_others(tmp_path, monkeypatch):
    import sys

    from synthetic_data import write_toy_cerebellum_dataset

    from nnunet_ataxia.planners import plan_and_preprocess as planning

    write_toy_cerebellum_dataset(tmp_path / "raw", 994, n_cases=2, shape_zyx=(8, 8, 8))
    monkeypatch.setenv("nnUNet_raw", str(tmp_path / "raw"))
    monkeypatch.setenv("nnUNet_preprocessed", str(tmp_path / "pre"))
    monkeypatch.setenv("REAL_PREPROCESSED", str(tmp_path / "pre"))
    final = foreign_folder(tmp_path / "pre" / "Dataset994_ToyCerebellum")
    (final / "nnUNetPlans.json").write_text("other plans")
    (final / "nnUNetFixed128Plans_3d_fullres").mkdir()
    (final / "nnUNetFixed128Plans_3d_fullres" / "stale.b2nd").write_text("old")
    monkeypatch.setattr(planning, "_CHILD_SCRIPT", FAKE_NNUNET_PLANNING + planning._CHILD_SCRIPT)
    nnunet_modules = {name for name in sys.modules if name.startswith("nnunetv2")}

    assert planning.plan_and_preprocess_fixed(994, check_integrity=False) == "nnUNetFixed128Plans"
    assert os.environ["nnUNet_preprocessed"] == str(tmp_path / "pre")
    # nnU-Net ran in the child: this process imported none of its planning modules
    assert not any(name.startswith("nnunetv2.experiment_planning") for name in set(sys.modules) - nnunet_modules)
    assert sorted(p.name for p in (tmp_path / "pre").iterdir()) == ["Dataset994_ToyCerebellum"]  # no staging left
    assert (final / "thesis.tex").is_file() and (final / "nnUNetPlans.json").read_text() == "other plans"
    assert (final / "nnUNetFixed128Plans.json").read_text() == '{"new": true}'
    assert sorted(p.name for p in (final / "nnUNetFixed128Plans_3d_fullres").iterdir()) == ["toy_000.b2nd"]


def test_plan_names_the_label_file_that_fails_nnunets_integrity_check(tmp_path, monkeypatch, capsys):
    from synthetic_data import add_undeclared_label, write_toy_cerebellum_dataset

    write_toy_cerebellum_dataset(tmp_path / "raw", 995, n_cases=3, shape_zyx=(8, 8, 8))
    bad = add_undeclared_label(tmp_path / "raw" / "Dataset995_ToyCerebellum", 7)
    monkeypatch.setenv("nnUNet_raw", str(tmp_path / "raw"))
    monkeypatch.setenv("nnUNet_preprocessed", str(tmp_path / "pre"))
    capsys.readouterr()
    assert main(["plan", "-d", "995", "-np", "1"]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith(f"error: {bad}: nnU-Net's dataset integrity check failed"), err
    assert "7" in err[0].split("Found", 1)[1]
    assert not (tmp_path / "pre" / "Dataset995_ToyCerebellum").exists()


def test_empty_prediction_is_a_measured_zero_volume(tmp_path):
    import pandas as pd
    from bad_input_data import volume_inputs, volumes_argv

    d = volume_inputs(tmp_path)
    write(np.zeros((8, 10, 12), np.uint8), d["pred"] / "s1.nii.gz", spacing=(0.9, 0.9, 1.2))  # a failed model
    assert main(volumes_argv(d, tmp_path / "vol")) == 0
    table = pd.read_csv(tmp_path / "vol" / "volumes.csv")
    assert list(table["model"])[0] == 0.0 and list(table["model_rel_error_pct"])[0] == -100.0
