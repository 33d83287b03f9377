"""Demo subjects from real MNI anatomy, and the README's path: make-demo -> the real converters."""
import json

import numpy as np
import pandas as pd
import SimpleITK as sitk

from nnunet_ataxia.cli import main
from nnunet_ataxia.demo.anatomy import load_mni_anatomy, make_pseudo_subject

CEREB = (7, 8, 46, 47)


def test_template_and_labels_line_up():
    t1, aseg, lobules = load_mni_anatomy(2.0)
    t, a = sitk.GetArrayFromImage(t1), sitk.GetArrayFromImage(aseg)
    ventricles, cortex = t[np.isin(a, (4, 43))].mean(), t[np.isin(a, (8, 47))].mean()
    white = t[np.isin(a, (2, 41))].mean()
    assert ventricles < 0.5 * cortex and cortex < white  # T1 contrast: CSF < grey < white
    lob = sitk.GetArrayFromImage(lobules)
    assert len(set(np.unique(lob)) - {0}) == 28 and np.array_equal(lob > 0, np.isin(a, CEREB))


def test_atrophy_and_pose():
    control = make_pseudo_subject(11, "control", voxel_mm=4.0)
    patient = make_pseudo_subject(11, "sca2", voxel_mm=4.0)  # same seed: same deformation, plus atrophy
    def vol(img, labels):
        return np.isin(sitk.GetArrayFromImage(img), labels).sum()
    ratio = vol(patient.aseg_mni, CEREB) / vol(control.aseg_mni, CEREB)
    assert patient.atrophy < 0.9 and ratio < 0.85
    assert abs(vol(patient.aseg_mni, (2, 41)) / vol(control.aseg_mni, (2, 41)) - 1) < 0.05  # cerebrum unchanged
    # native space is not MNI: the same anatomy sits elsewhere on the grid
    nat = np.isin(sitk.GetArrayFromImage(control.aseg), CEREB)
    mni = np.isin(sitk.GetArrayFromImage(control.aseg_mni), CEREB)
    assert 2 * (nat & mni).sum() / (nat.sum() + mni.sum()) < 0.8
    assert 0.85 < nat.sum() / mni.sum() < 1.18  # a pose, not a shrink


def test_make_demo_then_convert(tmp_path, capsys):
    demo = tmp_path / "demo"
    assert main(["make-demo", str(demo), "--n-hammers", "2", "--n-sca2", "3", "--seed", "2", "--size", "4"]) == 0
    assert sorted(p.name for p in (demo / "hammers").iterdir()) == [
        "Hammers_mith-n30r95-label-names.csv", "a01-seg.nii.gz", "a01.nii.gz", "a02-seg.nii.gz", "a02.nii.gz"]
    part = pd.read_csv(demo / "sca2" / "participants.tsv", sep="\t")
    assert part["group"].tolist() == ["control", "presymptomatic", "sca2"]
    seg = sitk.GetArrayFromImage(sitk.ReadImage(str(demo / "hammers" / "a01-seg.nii.gz")))
    assert {17, 18, 19} <= set(np.unique(seg).tolist())
    out = tmp_path / "raw" / "Dataset503_Data2"
    assert main(["convert-data2", "--hammers", str(demo / "hammers"), "--sca2", str(demo / "sca2"),
                 "-o", str(out)]) == 0
    ds = json.loads((out / "dataset.json").read_text())
    assert ds["labels"] == {"background": 0, "cerebellum": 1}
    n_cases = len(list((out / "labelsTr").glob("*.nii.gz"))) + len(list((out / "labelsTs").glob("*.nii.gz")))
    assert ds["numTraining"] + len(list((out / "labelsTs").glob("*.nii.gz"))) == n_cases == 5
    # the manual masks (union of the true lobules) are the labels; ACAPULCO's eroded output is smaller
    vols = pd.read_csv(out / "acapulco_volumes.tsv", sep="\t").set_index("case_id")
    counts = pd.read_csv(out / "label_voxel_counts.tsv", sep="\t").set_index("case_id")
    for case in vols.index:
        gt = counts.loc[case, "cerebellum_voxels"] * counts.loc[case, "voxel_volume_mm3"]
        assert vols.loc[case, "acapulco_native_mm3"] < gt
