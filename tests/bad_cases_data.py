"""Bad-input cases of tests/test_bad_inputs.py, part 3: case sets, tables and corrupt or missing files."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from bad_input_data import (
    Bad,
    case,
    evaluate_argv,
    evaluation_inputs,
    label_map,
    prediction_on_preprocessed_grid,
    sca2_inputs,
    t1_like,
    transform_folder,
    volume_inputs,
    volumes_argv,
    wmh_inputs,
    write,
)

from nnunet_ataxia.cli import main


# ------------------------------------------------------------------------------------------- 2d. case sets
@case
def evaluate_prediction_missing_a_case(t, mp):
    d = evaluation_inputs(t)
    (d["pred"] / "c2.nii.gz").unlink()
    return Bad(evaluate_argv(d, t / "eval"), "c2", ("no prediction", "missing"))


@case
def evaluate_extra_prediction(t, mp):
    d = evaluation_inputs(t)
    write(label_map(0), d["pred"] / "c9.nii.gz")
    return Bad(evaluate_argv(d, t / "eval"), "c9", ("no counterpart", "no reference"))


@case
def evaluate_case_in_two_merged_folds(t, mp):
    d = evaluation_inputs(t)
    write(label_map(0), t / "fold_0" / "c1.nii.gz")
    write(label_map(0), t / "fold_1" / "c1.nii.gz")
    write(label_map(1), t / "fold_1" / "c2.nii.gz")
    argv = evaluate_argv(d, t / "eval")
    argv[argv.index(str(d["pred"]))] = f"{t}/fold_*"
    return Bad(argv, "c1", ("twice",))


@case
def compare_volumes_prediction_missing_a_subject(t, mp):
    d = volume_inputs(t)
    (d["pred"] / "s2.nii.gz").unlink()
    return Bad(volumes_argv(d, t / "vol"), "s2", ("missing",))


@case
def compare_volumes_extra_prediction(t, mp):
    d = volume_inputs(t)
    write((label_map(0) == 1).astype(np.uint8), d["pred"] / "s7.nii.gz", spacing=(0.9, 0.9, 1.2))
    return Bad(volumes_argv(d, t / "vol"), "s7", ("no counterpart",))


@case
def compare_volumes_empty_ground_truth(t, mp):
    d = volume_inputs(t)
    write(np.zeros((8, 10, 12), np.uint8), d["gt"] / "s1.nii.gz", spacing=(0.9, 0.9, 1.2))
    return Bad(volumes_argv(d, t / "vol"), "s1.nii.gz", ("empty",))


@case
def wmh_stats_methods_with_different_test_cases(t, mp):
    d = wmh_inputs(t, methods=("A", "B"))
    (d["prob_B"] / "w2.npz").unlink()
    return Bad(["wmh-stats", "--test", f"A={d['prob_A']}", "--test", f"B={d['prob_B']}", "--ref", str(d["ref"]),
                "--out", str(t / "stats"), "--n-bootstrap", "100"], "w2", ("missing",))


@case
def wmh_stats_same_method_name_twice(t, mp):
    d = wmh_inputs(t, methods=("A", "B"))
    return Bad(["wmh-stats", "--test", f"M={d['prob_A']}", "--test", f"M={d['prob_B']}", "--ref", str(d["ref"]),
                "--out", str(t / "stats"), "--n-bootstrap", "100"], "prob_B", ("twice",))


@case
def to_native_prediction_without_transforms(t, mp):
    prediction_on_preprocessed_grid(t / "pred" / "sub02.nii.gz")
    transform_folder(t / "transforms" / "sub01")
    return Bad(["to-native", "-i", str(t / "pred"), "-t", str(t / "transforms"), "-o", str(t / "native")],
               "sub02.nii.gz", ("transform",))


@case
def to_native_same_case_twice(t, mp):
    prediction_on_preprocessed_grid(t / "pred" / "sub01.nii.gz")
    prediction_on_preprocessed_grid(t / "pred" / "sub01_0000.nii.gz")
    transform_folder(t / "transforms" / "sub01")
    return Bad(["to-native", "-i", str(t / "pred"), "-t", str(t / "transforms"), "-o", str(t / "native")],
               "sub01", ("twice",))


@case
def preprocess_mri_two_images_of_one_case(t, mp):
    write(t1_like(), t / "t1" / "sub01.nii.gz")
    write(t1_like(), t / "t1" / "sub01_0000.nii.gz")
    return Bad(["preprocess-mri", "-i", str(t / "t1"), "-o", str(t / "pre")], "sub01", ("several",))


@case
def convert_sca2_subject_not_listed(t, mp):
    root = sca2_inputs(t / "cohort")
    write(t1_like(), root / "sub-03" / "anat" / "sub-03_T1w.nii.gz")
    return Bad(["convert-sca2", "-i", str(root), "-o", str(t / "raw" / "Dataset502_S")], "sub-03", ("not listed",))


# ------------------------------------------------------------------------------------------ 2e. CSV / TSV
def _volumes_csv(t, edit) -> Path:
    d = volume_inputs(t)
    df = pd.read_csv(d["csv"], dtype=str)
    df = edit(df)
    df.to_csv(d["csv"], index=False)
    return d["csv"]


def _csv_case(t, edit, keywords):
    csv = _volumes_csv(t, edit)
    return Bad(["compare-volumes", "--volumes-csv", str(csv), "--out", str(t / "vol")], "volumes.csv", keywords)


@case
def volumes_csv_missing_column(t, mp):
    return _csv_case(t, lambda df: df.drop(columns=["model"]), ("column",))


@case
def volumes_csv_non_numeric_volume(t, mp):
    return _csv_case(t, lambda df: df.assign(model=["141000", "n/a?", "125000"]), ("numeric",))


@case
def volumes_csv_negative_volume(t, mp):
    return _csv_case(t, lambda df: df.assign(ground_truth=["140000", "-150000", "120000"]), ("positive",))


@case
def volumes_csv_empty_volume(t, mp):
    return _csv_case(t, lambda df: df.assign(model=["141000", "", "125000"]), ("positive",))


@case
def volumes_csv_duplicated_subject(t, mp):
    return _csv_case(t, lambda df: df.assign(case_id=["1", "2", "1"]), ("twice", "duplicat"))


@case
def volumes_csv_unknown_group(t, mp):
    return _csv_case(t, lambda df: df.assign(group=["control", "sca-2", "sca2"]), ("group",))


@case
def volumes_csv_binary_garbage(t, mp):
    csv = _volumes_csv(t, lambda df: df)
    csv.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe garbage")
    return Bad(["compare-volumes", "--volumes-csv", str(csv), "--out", str(t / "vol")], "volumes.csv",
               ("utf-8", "binary", "corrupt"))


@case
def evaluate_participants_duplicated_case(t, mp):
    d = evaluation_inputs(t)
    pd.DataFrame({"case_id": ["c1", "c1"], "group": ["control", "sca2"]}).to_csv(d["participants"], sep="\t",
                                                                                  index=False)
    return Bad(evaluate_argv(d, t / "eval", "--participants", d["participants"]), "participants.tsv",
               ("twice", "duplicat"))


@case
def evaluate_participants_unknown_group(t, mp):
    d = evaluation_inputs(t)
    pd.DataFrame({"case_id": ["c1", "c2"], "group": ["control", "patients"]}).to_csv(d["participants"], sep="\t",
                                                                                      index=False)
    return Bad(evaluate_argv(d, t / "eval", "--participants", d["participants"]), "participants.tsv", ("group",))


@case
def compare_volumes_participants_without_group_column(t, mp):
    d = volume_inputs(t)
    pd.DataFrame({"case_id": ["s1", "s2"]}).to_csv(t / "participants.tsv", sep="\t", index=False)
    return Bad(volumes_argv(d, t / "vol", "--participants", t / "participants.tsv"), "participants.tsv",
               ("column",))


@case
def convert_sca2_participants_unknown_group(t, mp):
    root = sca2_inputs(t / "cohort")
    pd.DataFrame({"participant_id": ["sub-01", "sub-02"], "group": ["control", "ataxia"]}).to_csv(
        root / "participants.tsv", sep="\t", index=False)
    return Bad(["convert-sca2", "-i", str(root), "-o", str(t / "raw" / "Dataset502_S")], "participants.tsv",
               ("group",))


# ----------------------------------------------------------------- 3. corrupt, missing and truncated inputs
@case
def evaluate_missing_reference_folder(t, mp):
    d = evaluation_inputs(t)
    d["ref"] = t / "labelsTs"
    return Bad(evaluate_argv(d, t / "eval"), "labelsTs", ("not found",))


@case
def evaluate_corrupt_dataset_json(t, mp):
    d = evaluation_inputs(t)
    d["dj"].write_text('{"labels": {"background": 0, "cerebellum"')
    return Bad(evaluate_argv(d, t / "eval"), "dataset.json", ("json",))


@case
def evaluate_dataset_json_label_not_integer(t, mp):
    d = evaluation_inputs(t)
    d["dj"].write_text(json.dumps({"labels": {"background": 0, "cerebellum": "one"}}))
    return Bad(evaluate_argv(d, t / "eval"), "dataset.json", ("integer",))


@case
def evaluate_dataset_json_is_a_folder(t, mp):
    d = evaluation_inputs(t)
    d["dj"] = d["ref"]
    return Bad(evaluate_argv(d, t / "eval"), "labelsTr", ("folder",))


@case
def evaluate_truncated_prediction(t, mp):
    d = evaluation_inputs(t)
    data = (d["pred"] / "c1.nii.gz").read_bytes()
    (d["pred"] / "c1.nii.gz").write_bytes(data[: len(data) // 2])
    return Bad(evaluate_argv(d, t / "eval"), "c1.nii.gz", ("unreadable", "truncated", "corrupt"))


@case
def wmh_stats_truncated_npz(t, mp):
    d = wmh_inputs(t)
    data = (d["prob_A"] / "w2.npz").read_bytes()
    (d["prob_A"] / "w2.npz").write_bytes(data[: len(data) // 2])
    return Bad(["wmh-stats", "--test", f"A={d['prob_A']}", "--ref", str(d["ref"]), "--out", str(t / "stats"),
                "--n-bootstrap", "100"], "w2.npz", ("truncated", "corrupt"))


@case
def wmh_threshold_npz_without_probabilities(t, mp):
    d = wmh_inputs(t)
    np.savez(d["prob_A"] / "w1.npz", softmax=np.zeros((2, 4, 10, 10), np.float32))
    return Bad(["wmh-threshold", "--threshold", "0.5", "--test", str(d["prob_A"]), "--out", str(t / "masks")],
               "w1.npz", ("probabilities",))


@case
def wmh_threshold_corrupt_pkl(t, mp):
    d = wmh_inputs(t)
    for f in d["prob_A"].glob("*.nii.gz"):
        f.unlink()
    (d["prob_A"] / "w1.pkl").write_bytes(b"\x80\x04\x95 truncated")
    return Bad(["wmh-threshold", "--threshold", "0.5", "--test", str(d["prob_A"]), "--out", str(t / "masks")],
               "w1.pkl", ("corrupt", "truncated"))


def _evaluation_output(t) -> Path:
    d = evaluation_inputs(t)
    assert main(evaluate_argv(d, t / "eval")) == 0
    return t / "eval"


@case
def report_corrupt_summary_json(t, mp):
    ev = _evaluation_output(t)
    (ev / "summary.json").write_text('{"methods": ["nnU-Net"], "per_')
    return Bad(["report", "--out", str(t / "report"), "--evaluation", str(ev)], "summary.json", ("json",))


@case
def report_binary_table_md(t, mp):
    ev = _evaluation_output(t)
    (ev / "table.md").write_bytes(bytes(range(256)))
    return Bad(["report", "--out", str(t / "report"), "--evaluation", str(ev)], "table.md",
               ("utf-8", "binary", "corrupt"))


@case
def report_truncated_volumes_summary(t, mp):
    d = volume_inputs(t)
    assert main(["compare-volumes", "--volumes-csv", str(d["csv"]), "--out", str(t / "vol")]) == 0
    text = (t / "vol" / "volumes_summary.json").read_text()
    (t / "vol" / "volumes_summary.json").write_text(text[: len(text) // 3])
    return Bad(["report", "--out", str(t / "report"), "--volumes", str(t / "vol")], "volumes_summary.json",
               ("json",))


@case
def report_corrupt_figure(t, mp):
    d = volume_inputs(t)
    assert main(["compare-volumes", "--volumes-csv", str(d["csv"]), "--out", str(t / "vol")]) == 0
    (t / "vol" / "scatter.png").write_text("not an image")
    return Bad(["report", "--out", str(t / "report"), "--volumes", str(t / "vol")], "scatter.png", ("png",))


@case
def to_native_corrupt_preprocessing_json(t, mp):
    prediction_on_preprocessed_grid(t / "pred" / "sub01.nii.gz")
    folder = transform_folder(t / "transforms" / "sub01")
    (folder / "preprocessing.json").write_text('{"transform_file": "mni_to_native.tfm", "native_geometry": {"si')
    return Bad(["to-native", "-i", str(t / "pred"), "-t", str(t / "transforms"), "-o", str(t / "native")],
               "preprocessing.json", ("json",))


@case
def preprocess_mri_unreadable_image(t, mp):
    (t / "t1").mkdir()
    (t / "t1" / "sub01.nii.gz").write_bytes(b"\x1f\x8b not really gzip")
    return Bad(["preprocess-mri", "-i", str(t / "t1"), "-o", str(t / "pre")], "sub01.nii.gz", ("unreadable",))


@case
def plan_corrupt_dataset_json(t, mp):
    from synthetic_data import write_toy_cerebellum_dataset
    folder = write_toy_cerebellum_dataset(t / "raw", 993, n_cases=2, shape_zyx=(8, 8, 8))
    (folder / "dataset.json").write_text('{"channel_names": {"0": "T1"}, "labels": {')
    mp.setenv("nnUNet_raw", str(t / "raw"))
    mp.setenv("nnUNet_preprocessed", str(t / "pre"))
    return Bad(["plan", "-d", "993"], "dataset.json", ("json",))


@case
def plan_unknown_dataset(t, mp):
    (t / "raw").mkdir()
    mp.setenv("nnUNet_raw", str(t / "raw"))
    mp.setenv("nnUNet_preprocessed", str(t / "pre"))
    return Bad(["plan", "-d", "987"], "987", ("no such dataset",))


@case
def convert_hammers_missing_input(t, mp):
    return Bad(["convert-hammers", "-i", str(t / "Hammers_mith-n30r95"), "-o", str(t / "raw" / "D")],
               "Hammers_mith-n30r95", ("not found",))
