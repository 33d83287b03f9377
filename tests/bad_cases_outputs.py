"""Bad-input cases of tests/test_bad_inputs.py, part 1: output folders, OS errors and interrupted runs."""
from __future__ import annotations

import errno
import os

from bad_input_data import (
    OVERLAP,
    OVERWRITE,
    Bad,
    case,
    evaluate_argv,
    evaluation_inputs,
    foreign_folder,
    hammers_inputs,
    prediction_on_preprocessed_grid,
    sca2_inputs,
    t1_like,
    transform_folder,
    volume_inputs,
    wmh_case_inputs,
    wmh_inputs,
    write,
)

from nnunet_ataxia.cli import main


# ---------------------------------------------------------------------------------------- 1. output folders
@case
def evaluate_out_is_prediction_folder(t, mp):
    d = evaluation_inputs(t)
    return Bad(evaluate_argv(d, d["pred"]), "pred", OVERLAP)


@case
def evaluate_out_contains_reference(t, mp):
    d = evaluation_inputs(t / "proj")
    return Bad(evaluate_argv(d, t / "proj"), "proj", OVERLAP)


@case
def evaluate_out_inside_prediction_folder(t, mp):
    d = evaluation_inputs(t)
    return Bad(evaluate_argv(d, d["pred"] / "eval"), "eval", OVERLAP)


@case
def evaluate_out_is_foreign_folder(t, mp):
    d = evaluation_inputs(t)
    return Bad(evaluate_argv(d, foreign_folder(t / "mine")), "mine", OVERWRITE)


@case
def evaluate_out_is_a_file(t, mp):
    d = evaluation_inputs(t)
    (t / "notes.txt").write_text("keep")
    return Bad(evaluate_argv(d, t / "notes.txt"), "notes.txt", ("not a folder",))


@case
def evaluate_out_is_other_commands_output(t, mp):
    d = evaluation_inputs(t)
    assert main(["compare-volumes", "--volumes-csv", str(volume_inputs(t / "v")["csv"]), "--out",
                 str(t / "vol")]) == 0
    return Bad(evaluate_argv(d, t / "vol"), "vol", ("compare-volumes", "overwrite"))


@case
def evaluate_out_under_a_file(t, mp):
    d = evaluation_inputs(t)
    (t / "file").write_text("x")
    return Bad(evaluate_argv(d, t / "file" / "eval"), "eval", ("cannot create", "exists", "not a directory"))


@case
def evaluate_disk_full_keeps_earlier_output(t, mp):
    d = evaluation_inputs(t)
    assert main(evaluate_argv(d, t / "eval")) == 0

    def full(obj, path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    mp.setattr("nnunet_ataxia.evaluation.evaluate_folders.write_json", full)
    return Bad(evaluate_argv(d, t / "eval"), "eval", ("space",))


@case
def compare_volumes_read_only_location(t, mp):
    d = volume_inputs(t)

    def read_only(*a, **k):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), k.get("dir"))
    mp.setattr("tempfile.mkdtemp", read_only)
    return Bad(["compare-volumes", "--volumes-csv", str(d["csv"]), "--out", str(t / "vol")], "vol", ("read-only",))


@case
def evaluate_interrupted_keeps_earlier_output(t, mp):
    d = evaluation_inputs(t)
    assert main(evaluate_argv(d, t / "eval")) == 0

    def interrupt(obj, path):
        raise KeyboardInterrupt
    mp.setattr("nnunet_ataxia.evaluation.evaluate_folders.write_json", interrupt)
    return Bad(evaluate_argv(d, t / "eval"), "eval", ("interrupted",), code=130)


@case
def compare_volumes_out_contains_csv(t, mp):
    d = volume_inputs(t / "proj")
    return Bad(["compare-volumes", "--volumes-csv", str(d["csv"]), "--out", str(t / "proj")], "proj", OVERLAP)


@case
def compare_volumes_out_is_foreign_folder(t, mp):
    d = volume_inputs(t)
    return Bad(["compare-volumes", "--volumes-csv", str(d["csv"]), "--out", str(foreign_folder(t / "docs"))],
               "docs", OVERWRITE)


@case
def wmh_stats_out_is_test_folder(t, mp):
    d = wmh_inputs(t)
    return Bad(["wmh-stats", "--test", f"A={d['prob_A']}", "--ref", str(d["ref"]), "--out", str(d["prob_A"]),
                "--n-bootstrap", "100"], "prob_A", OVERLAP)


@case
def wmh_threshold_out_is_test_folder(t, mp):
    d = wmh_inputs(t)
    return Bad(["wmh-threshold", "--threshold", "0.5", "--test", str(d["prob_A"]), "--out", str(d["prob_A"])],
               "prob_A", OVERLAP)


@case
def wmh_threshold_out_is_foreign_folder(t, mp):
    d = wmh_inputs(t)
    return Bad(["wmh-threshold", "--threshold", "0.5", "--test", str(d["prob_A"]), "--out",
                str(foreign_folder(t / "masks"))], "masks", OVERWRITE)


@case
def report_out_is_evaluation_folder(t, mp):
    d = evaluation_inputs(t)
    assert main(evaluate_argv(d, t / "eval")) == 0
    return Bad(["report", "--out", str(t / "eval"), "--evaluation", str(t / "eval")], "eval", OVERLAP)


@case
def report_out_is_foreign_folder(t, mp):
    d = evaluation_inputs(t)
    assert main(evaluate_argv(d, t / "eval")) == 0
    return Bad(["report", "--out", str(foreign_folder(t / "www")), "--evaluation", str(t / "eval")], "www", OVERWRITE)


@case
def to_native_out_is_prediction_folder(t, mp):
    prediction_on_preprocessed_grid(t / "pred" / "sub01.nii.gz")
    transform_folder(t / "pre" / "transforms" / "sub01")
    return Bad(["to-native", "-i", str(t / "pred"), "-t", str(t / "pre" / "transforms"), "-o", str(t / "pred")],
               "pred", OVERLAP)


@case
def to_native_out_contains_transforms(t, mp):
    prediction_on_preprocessed_grid(t / "pred" / "sub01.nii.gz")
    transform_folder(t / "pre" / "transforms" / "sub01")
    return Bad(["to-native", "-i", str(t / "pred"), "-t", str(t / "pre" / "transforms"), "-o", str(t / "pre")],
               "pre", OVERLAP)


@case
def preprocess_mri_out_is_input_folder(t, mp):
    write(t1_like(), t / "t1" / "sub01.nii.gz")
    return Bad(["preprocess-mri", "-i", str(t / "t1"), "-o", str(t / "t1")], "t1", OVERLAP)


@case
def preprocess_mri_out_is_foreign_folder(t, mp):
    write(t1_like(), t / "t1" / "sub01.nii.gz")
    return Bad(["preprocess-mri", "-i", str(t / "t1"), "-o", str(foreign_folder(t / "home_stuff"))], "home_stuff",
               OVERWRITE)


@case
def convert_hammers_out_contains_input(t, mp):
    hammers_inputs(t / "proj" / "hammers")
    return Bad(["convert-hammers", "-i", str(t / "proj" / "hammers"), "-o", str(t / "proj")], "proj", OVERLAP)


@case
def convert_hammers_out_is_foreign_folder(t, mp):
    hammers_inputs(t / "hammers")
    return Bad(["convert-hammers", "-i", str(t / "hammers"), "-o", str(foreign_folder(t / "Dataset501_Mine"))],
               "Dataset501_Mine", OVERWRITE)


@case
def convert_sca2_out_is_input(t, mp):
    sca2_inputs(t / "cohort")
    return Bad(["convert-sca2", "-i", str(t / "cohort"), "-o", str(t / "cohort")], "cohort", OVERLAP)


@case
def convert_data2_out_inside_input(t, mp):
    hammers_inputs(t / "hammers")
    sca2_inputs(t / "cohort")
    return Bad(["convert-data2", "--hammers", str(t / "hammers"), "--sca2", str(t / "cohort"), "-o",
                str(t / "hammers" / "Dataset503_Data2")], "Dataset503_Data2", OVERLAP)


@case
def convert_wmh_out_inside_input(t, mp):
    wmh_case_inputs(t / "wmh")
    return Bad(["convert-wmh", "-i", str(t / "wmh"), "-o", str(t / "wmh" / "Dataset504_WMH")], "Dataset504_WMH",
               OVERLAP)


@case
def make_demo_into_foreign_folder(t, mp):
    return Bad(["make-demo", str(foreign_folder(t / "somedir")), "--n-hammers", "1", "--n-sca2", "0"], "somedir",
               OVERWRITE)


@case
def make_demo_into_working_folder(t, mp):
    mp.chdir(foreign_folder(t / "work"))
    return Bad(["make-demo", ".", "--overwrite", "--n-hammers", "1", "--n-sca2", "0"], ".", ("working",))


@case
def demo_into_foreign_folder(t, mp):
    return Bad(["demo", "--out", str(foreign_folder(t / "papers")), "--quick"], "papers", OVERWRITE)


@case
def plan_preprocessed_is_raw_folder(t, mp):
    from synthetic_data import write_toy_cerebellum_dataset
    write_toy_cerebellum_dataset(t / "raw", 991, n_cases=2, shape_zyx=(8, 8, 8))
    for k in ("nnUNet_raw", "nnUNet_preprocessed"):
        mp.setenv(k, str(t / "raw"))
    return Bad(["plan", "-d", "991", "--no-integrity-check"], "Dataset991_ToyCerebellum", OVERLAP)


@case
def plan_interrupted_leaves_preprocessed_folder_unchanged(t, mp):
    from synthetic_data import write_toy_cerebellum_dataset
    write_toy_cerebellum_dataset(t / "raw", 992, n_cases=2, shape_zyx=(8, 8, 8))
    earlier = foreign_folder(t / "pre" / "Dataset992_ToyCerebellum")
    (earlier / "nnUNetFixed128Plans.json").write_text("{}")
    mp.setenv("nnUNet_raw", str(t / "raw"))
    mp.setenv("nnUNet_preprocessed", str(t / "pre"))

    from nnunet_ataxia.planners import plan_and_preprocess as planning

    half_written_then_ctrl_c = (  # nnU-Net's fingerprint in the planning child: half written, then Ctrl-C
        "import os\n"
        "from pathlib import Path\n"
        "from nnunetv2.experiment_planning import plan_and_preprocess_api as api\n"
        "def half_written_then_ctrl_c(dataset_id, **kwargs):\n"
        "    staged = Path(os.environ['nnUNet_preprocessed']) / 'Dataset992_ToyCerebellum'\n"
        "    (staged / 'dataset_fingerprint.json').write_text('{\"half\": ')\n"
        "    raise KeyboardInterrupt\n"
        "api.extract_fingerprint_dataset = half_written_then_ctrl_c\n")
    mp.setattr(planning, "_CHILD_SCRIPT", half_written_then_ctrl_c + planning._CHILD_SCRIPT)
    return Bad(["plan", "-d", "992", "--no-integrity-check"], "Dataset992_ToyCerebellum", ("interrupted",),
               code=130)
