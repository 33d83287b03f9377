"""Bad-input cases of tests/test_bad_inputs.py, part 2: label values, image values and geometry."""
from __future__ import annotations

import numpy as np
from bad_input_data import (
    GEOMETRY,
    INTEGER,
    Bad,
    case,
    evaluate_argv,
    evaluation_inputs,
    hammers_inputs,
    label_map,
    prediction_on_preprocessed_grid,
    save_probabilities,
    sca2_inputs,
    t1_like,
    transform_folder,
    volume_inputs,
    volumes_argv,
    wmh_case_inputs,
    wmh_inputs,
    write,
)


# ------------------------------------------------------------------------------- 2a. label maps: integer values
def _float_labels(values_at_block: float):
    a = label_map(0).astype(np.float32)
    a[1:3, 2:4, 2:4] = values_at_block
    return a


@case
def evaluate_prediction_saved_as_probabilities(t, mp):
    d = evaluation_inputs(t)
    write(_float_labels(0.6), d["pred"] / "c1.nii.gz")
    return Bad(evaluate_argv(d, t / "eval"), "c1.nii.gz", INTEGER)


@case
def evaluate_reference_resampled_linearly(t, mp):
    d = evaluation_inputs(t)
    write(_float_labels(1.5), d["ref"] / "c2.nii.gz")
    return Bad(evaluate_argv(d, t / "eval"), "c2.nii.gz", INTEGER)


@case
def evaluate_prediction_label_not_in_dataset_json(t, mp):
    d = evaluation_inputs(t)
    a = label_map(0)
    a[0, 0, 0] = 7
    write(a, d["pred"] / "c1.nii.gz")
    return Bad(evaluate_argv(d, t / "eval"), "c1.nii.gz", ("declared", "[7]"))


@case
def evaluate_negative_label(t, mp):
    d = evaluation_inputs(t)
    a = label_map(0).astype(np.int16)
    a[0, 0, 0] = -1
    write(a, d["pred"] / "c1.nii.gz")
    return Bad(evaluate_argv(d, t / "eval"), "c1.nii.gz", ("negative",))


@case
def compare_volumes_float_prediction(t, mp):
    d = volume_inputs(t)
    write((label_map(0) == 1) * np.float32(0.7), d["pred"] / "s1.nii.gz", spacing=(0.9, 0.9, 1.2))
    return Bad(volumes_argv(d, t / "vol"), "s1.nii.gz", INTEGER)


@case
def to_native_float_prediction(t, mp):
    prediction_on_preprocessed_grid(t / "pred" / "sub01.nii.gz", value_dtype=np.float32)
    write(np.full((8, 8, 8), 0.4, np.float32), t / "pred" / "sub01.nii.gz")
    transform_folder(t / "transforms" / "sub01")
    return Bad(["to-native", "-i", str(t / "pred"), "-t", str(t / "transforms"), "-o", str(t / "native")],
               "sub01.nii.gz", INTEGER)


@case
def preprocess_mri_label_not_integer(t, mp):
    write(t1_like(), t / "t1" / "sub01.nii.gz")
    write(_float_labels(0.25), t / "labels" / "sub01.nii.gz")
    return Bad(["preprocess-mri", "-i", str(t / "t1"), "--labels", str(t / "labels"), "-o", str(t / "pre")],
               "sub01.nii.gz", INTEGER)


@case
def convert_hammers_seg_not_integer(t, mp):
    root = hammers_inputs(t / "hammers")
    seg = np.zeros((8, 10, 12), np.float32)
    seg[1:5, 2:7, 2:10] = 17.5
    write(seg, root / "a02-seg.nii.gz")
    return Bad(["convert-hammers", "-i", str(root), "-o", str(t / "raw" / "Dataset501_H")], "a02-seg.nii.gz",
               INTEGER)


@case
def convert_sca2_mask_not_integer(t, mp):
    root = sca2_inputs(t / "cohort")
    write(_float_labels(0.5), root / "derivatives" / "manual" / "sub-02" / "anat" /
          "sub-02_desc-cerebellum_mask.nii.gz")
    return Bad(["convert-sca2", "-i", str(root), "-o", str(t / "raw" / "Dataset502_S")],
               "sub-02_desc-cerebellum_mask.nii.gz", INTEGER)


@case
def convert_wmh_label_not_integer(t, mp):
    root = wmh_case_inputs(t / "wmh")
    lab = np.zeros((4, 16, 16), np.float32)
    lab[1:3, 6:9, 6:9] = 0.5
    write(lab, root / "c01" / "wmh.nii.gz", spacing=(1.0, 1.0, 3.0))
    return Bad(["convert-wmh", "-i", str(root), "-o", str(t / "raw" / "Dataset504_W")], "wmh.nii.gz", INTEGER)


@case
def wmh_stats_reference_unknown_label(t, mp):
    d = wmh_inputs(t)
    ref = np.zeros((4, 10, 10), np.uint8)
    ref[1:3, 2:6, 2:6] = 3
    write(ref, d["ref"] / "w2.nii.gz")
    return Bad(["wmh-stats", "--test", f"A={d['prob_A']}", "--ref", str(d["ref"]), "--out", str(t / "stats"),
                "--n-bootstrap", "100"], "w2.nii.gz", ("declared", "[3]"))


@case
def wmh_threshold_reference_not_integer(t, mp):
    d = wmh_inputs(t)
    write(np.full((4, 10, 10), 0.5, np.float32), d["ref"] / "w1.nii.gz")
    return Bad(["wmh-threshold", "--val", str(d["prob_A"]), "--ref", str(d["ref"]), "--test", str(d["prob_A"]),
                "--out", str(t / "masks")], "w1.nii.gz", INTEGER)


# -------------------------------------------------------------------------- 2b. images: finite, not constant
@case
def preprocess_mri_all_nan_t1(t, mp):
    write(np.full((8, 10, 12), np.nan, np.float32), t / "t1" / "sub01.nii.gz")
    return Bad(["preprocess-mri", "-i", str(t / "t1"), "-o", str(t / "pre")], "sub01.nii.gz", ("nan",))


@case
def preprocess_mri_constant_t1(t, mp):
    write(np.zeros((8, 10, 12), np.float32), t / "t1" / "sub01_0000.nii.gz")
    return Bad(["preprocess-mri", "-i", str(t / "t1" / "sub01_0000.nii.gz"), "-o", str(t / "pre")],
               "sub01_0000.nii.gz", ("constant",))


@case
def preprocess_mri_t1_with_infinity(t, mp):
    a = t1_like()
    a[3, 3, 3] = np.inf
    write(a, t / "t1" / "sub01.nii.gz")
    return Bad(["preprocess-mri", "-i", str(t / "t1"), "-o", str(t / "pre")], "sub01.nii.gz", ("infinite", "nan"))


@case
def convert_hammers_all_nan_t1(t, mp):
    root = hammers_inputs(t / "hammers")
    write(np.full((8, 10, 12), np.nan, np.float32), root / "a01.nii.gz")
    return Bad(["convert-hammers", "-i", str(root), "-o", str(t / "raw" / "Dataset501_H")], "a01.nii.gz", ("nan",))


@case
def convert_sca2_constant_t1(t, mp):
    root = sca2_inputs(t / "cohort")
    write(np.full((8, 10, 12), 7, np.float32), root / "sub-01" / "anat" / "sub-01_T1w.nii.gz")
    return Bad(["convert-sca2", "-i", str(root), "-o", str(t / "raw" / "Dataset502_S")], "sub-01_T1w.nii.gz",
               ("constant",))


@case
def convert_wmh_flair_with_nan(t, mp):
    root = wmh_case_inputs(t / "wmh")
    a = np.random.default_rng(0).normal(80, 10, (4, 16, 16)).astype(np.float32)
    a[2, 5, 5] = np.nan
    write(a, root / "c01" / "FLAIR.nii.gz", spacing=(1.0, 1.0, 3.0))
    return Bad(["convert-wmh", "-i", str(root), "-o", str(t / "raw" / "Dataset504_W")], "FLAIR.nii.gz", ("nan",))


@case
def evaluate_prediction_with_nan(t, mp):
    d = evaluation_inputs(t)
    a = label_map(1).astype(np.float32)
    a[0, 0, 0] = np.nan
    write(a, d["pred"] / "c2.nii.gz")
    return Bad(evaluate_argv(d, t / "eval"), "c2.nii.gz", ("nan",))


@case
def wmh_stats_probabilities_with_nan(t, mp):
    d = wmh_inputs(t)
    p = np.full((4, 10, 10), 0.2, np.float32)
    p[0, 1, 1] = np.nan
    save_probabilities(d["prob_A"] / "w1.npz", p)
    return Bad(["wmh-stats", "--test", f"A={d['prob_A']}", "--ref", str(d["ref"]), "--out", str(t / "stats"),
                "--n-bootstrap", "100"], "w1.npz", ("nan",))


@case
def wmh_threshold_logits_instead_of_probabilities(t, mp):
    d = wmh_inputs(t)
    save_probabilities(d["prob_A"] / "w2.npz", np.full((4, 10, 10), 3.5, np.float32))
    return Bad(["wmh-threshold", "--threshold", "0.5", "--test", str(d["prob_A"]), "--out", str(t / "masks")],
               "w2.npz", ("[0, 1]", "logit"))


# -------------------------------------------------------------------------------------------- 2c. geometry
@case
def evaluate_prediction_other_spacing(t, mp):
    d = evaluation_inputs(t)
    write(label_map(0), d["pred"] / "c1.nii.gz", spacing=(1.0, 1.0, 2.0))
    return Bad(evaluate_argv(d, t / "eval"), "c1.nii.gz", GEOMETRY)


@case
def evaluate_prediction_other_origin(t, mp):
    d = evaluation_inputs(t)
    write(label_map(1), d["pred"] / "c2.nii.gz", origin=(0.0, 5.0, 0.0))
    return Bad(evaluate_argv(d, t / "eval"), "c2.nii.gz", GEOMETRY)


@case
def evaluate_prediction_other_direction(t, mp):
    d = evaluation_inputs(t)
    write(label_map(0), d["pred"] / "c1.nii.gz", direction=(-1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0))
    return Bad(evaluate_argv(d, t / "eval"), "c1.nii.gz", GEOMETRY)


@case
def evaluate_brain_mask_other_grid(t, mp):
    d = evaluation_inputs(t)
    write(np.ones((8, 10, 12), np.uint8), t / "brain" / "c1.nii.gz")
    write(np.ones((8, 10, 10), np.uint8), t / "brain" / "c2.nii.gz")
    return Bad(evaluate_argv(d, t / "eval", "--brain-masks", t / "brain"), "c2.nii.gz", GEOMETRY)


@case
def compare_volumes_prediction_other_spacing(t, mp):
    d = volume_inputs(t)
    write((label_map(0) == 1).astype(np.uint8), d["pred"] / "s1.nii.gz", spacing=(1.0, 1.0, 1.0))
    return Bad(volumes_argv(d, t / "vol"), "s1.nii.gz", GEOMETRY)


@case
def compare_volumes_mni_prediction_vs_native_reference(t, mp):
    d = volume_inputs(t)
    a = np.zeros((96, 128, 128), np.uint8)
    a[40:60, 50:80, 50:80] = 1
    write(a, d["pred"] / "s2.nii.gz", origin=(-65.0, 116.0, -72.0))
    return Bad(volumes_argv(d, t / "vol"), "s2.nii.gz", ("to-native", "mni"))


@case
def convert_hammers_seg_other_grid(t, mp):
    root = hammers_inputs(t / "hammers")
    seg = np.zeros((8, 10, 12), np.uint8)
    seg[1:5, 2:7, 2:10] = 17
    write(seg, root / "a01-seg.nii.gz", spacing=(1.0, 1.0, 1.5))
    return Bad(["convert-hammers", "-i", str(root), "-o", str(t / "raw" / "Dataset501_H")], "a01-seg.nii.gz",
               GEOMETRY)


@case
def convert_wmh_label_not_on_flair_grid(t, mp):
    root = wmh_case_inputs(t / "wmh")
    write(np.zeros((4, 16, 16), np.uint8), root / "c01" / "wmh.nii.gz", spacing=(1.0, 1.0, 1.0))
    return Bad(["convert-wmh", "-i", str(root), "-o", str(t / "raw" / "Dataset504_W")], "wmh.nii.gz",
               ("flair grid", "geometry"))


@case
def preprocess_mri_label_other_grid(t, mp):
    write(t1_like(), t / "t1" / "sub01_0000.nii.gz")
    write(label_map(0), t / "labels" / "sub01.nii.gz", spacing=(2.0, 1.0, 1.0))
    return Bad(["preprocess-mri", "-i", str(t / "t1"), "--labels", str(t / "labels"), "-o", str(t / "pre")],
               "sub01.nii.gz", GEOMETRY)


@case
def to_native_prediction_already_native(t, mp):
    write(np.ones((10, 10, 10), np.uint8), t / "pred" / "sub01.nii.gz", spacing=(1.2, 1.2, 1.2))
    transform_folder(t / "transforms" / "sub01")
    return Bad(["to-native", "-i", str(t / "pred"), "-t", str(t / "transforms"), "-o", str(t / "native")],
               "sub01.nii.gz", ("native grid", "geometry"))


@case
def wmh_stats_probabilities_other_shape(t, mp):
    d = wmh_inputs(t)
    save_probabilities(d["prob_A"] / "w1.npz", np.zeros((4, 10, 12), np.float32))
    return Bad(["wmh-stats", "--test", f"A={d['prob_A']}", "--ref", str(d["ref"]), "--out", str(t / "stats"),
                "--n-bootstrap", "100"], "w1.npz", ("shape",))


@case
def plan_training_image_with_nan(t, mp):
    from synthetic_data import write_toy_cerebellum_dataset
    folder = write_toy_cerebellum_dataset(t / "raw", 995, n_cases=2, shape_zyx=(8, 8, 8))
    write(np.full((8, 8, 8), np.nan, np.float32), folder / "imagesTr" / "toy_001_0000.nii.gz")
    mp.setenv("nnUNet_raw", str(t / "raw"))
    mp.setenv("nnUNet_preprocessed", str(t / "pre"))
    return Bad(["plan", "-d", "995"], "toy_001_0000.nii.gz", ("nan",))
