"""SCA2-cohort and Data2 converters on a constructed BIDS-like cohort with ACAPULCO outputs."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from hammers_atlas import make_atlas

from nnunet_ataxia.cli import main
from nnunet_ataxia.dataset_conversion.Dataset502_SCA2Cohort import convert_sca2
from nnunet_ataxia.dataset_conversion.Dataset503_Data2 import convert_data2, table1_split
from nnunet_ataxia.errors import InputError
from nnunet_ataxia.io.acapulco import read_acapulco_volumes_csv

SHAPE = (12, 14, 16)
# the 28 values, typed here from docs/explanation/design.md independently of the package's constant
LOBULES = [12, 33, 36, 43, 46, 53, 56, 60, 63, 66, 70, 73, 74, 75, 76, 77, 78, 80, 83, 84, 86, 87, 90, 93, 96,
           100, 103, 106]
DISTRACTORS = [1, 5, 34, 101, 200]  # values ACAPULCO-like files may hold that are not cerebellum


def _img(arr, spacing=(1.0, 1.0, 1.0)):
    im = sitk.GetImageFromArray(arr)
    im.SetSpacing(spacing)
    return im


def make_cohort(root: Path, groups=("control",) * 5 + ("presymptomatic",) * 5 + ("sca2",) * 4, seed=0):
    """Subjects cycle through label sources: manual mask, native ACAPULCO parcellation, MNI-only ACAPULCO."""
    rs = np.random.RandomState(seed)
    subjects = [f"sub-{i + 1:02d}" for i in range(len(groups))]
    root.mkdir(parents=True)
    pd.DataFrame({"participant_id": subjects, "group": groups, "age": 40}).to_csv(
        root / "participants.tsv", sep="\t", index=False)
    truth = {}
    for i, sub in enumerate(subjects):
        anat = root / sub / "anat"
        anat.mkdir(parents=True)
        sitk.WriteImage(_img(rs.uniform(0, 100, SHAPE).astype(np.float32)), str(anat / f"{sub}_T1w.nii.gz"))
        parc = rs.choice(LOBULES + DISTRACTORS + [0] * 10, size=SHAPE).astype(np.uint8)
        parc_dir = root / "derivatives" / "acapulco" / sub / "out" / "parc"
        parc_dir.mkdir(parents=True)
        kind = ("manual", "native", "mni")[i % 3]
        if kind == "manual":
            manual = (rs.uniform(size=SHAPE) > 0.7).astype(np.uint8)
            mdir = root / "derivatives" / "manual" / sub / "anat"
            mdir.mkdir(parents=True)
            sitk.WriteImage(_img(manual * 255), str(mdir / f"{sub}_desc-cerebellum_mask.nii.gz"))
            truth[sub] = manual.astype(bool)
            sitk.WriteImage(_img(parc), str(parc_dir / f"{sub}_T1w_n4_mni_seg_post_inverse.nii.gz"))
        elif kind == "native":
            sitk.WriteImage(_img(parc), str(parc_dir / f"{sub}_T1w_n4_mni_seg_post_inverse.nii.gz"))
            truth[sub] = np.isin(parc, LOBULES)
        else:
            mni_dir = root / "derivatives" / "acapulco" / sub / "out" / "mni"
            mni_dir.mkdir(parents=True)
            sitk.WriteImage(_img(rs.uniform(0, 1, SHAPE).astype(np.float32), (1.5, 1.5, 1.5)),
                            str(mni_dir / f"{sub}_T1w_n4_mni.nii.gz"))
            sitk.WriteImage(_img(parc, (1.5, 1.5, 1.5)), str(parc_dir / f"{sub}_T1w_n4_mni_seg_post.nii.gz"))
            truth[sub] = np.isin(parc, LOBULES)
            (parc_dir / f"{sub}_T1w_n4_mni_seg_post_volumes.csv").write_text(
                "name,volume\nBackground,1000\nCorpus Medullare,10.5\nRigt IV,4\nLeft IV,3\nVermis X,2\n")
    return root, truth


@pytest.mark.slow
def test_sca2_labels_groups_and_acapulco_union(tmp_path):
    root, truth = make_cohort(tmp_path / "cohort")
    out = convert_sca2(root, tmp_path / "raw" / "Dataset502_SCA2Cohort", split="cv5", num_processes=2)
    ds = json.loads((out / "dataset.json").read_text())
    assert ds["labels"] == {"background": 0, "cerebellum": 1} and ds["numTraining"] == 14
    for sub, mask in truth.items():
        lab = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "labelsTr" / f"sca2_{sub[4:]}.nii.gz")))
        assert set(np.unique(lab)) <= {0, 1}
        assert np.array_equal(lab.astype(bool), mask), sub
    part = pd.read_csv(out / "participants.tsv", sep="\t")
    assert list(part.columns[:4]) == ["case_id", "group", "source", "subject"]
    assert part.groupby("group").size().to_dict() == {"control": 5, "presymptomatic": 5, "sca2": 4}
    assert part.set_index("subject").loc["sub-13", "group"] == "sca2"
    folds = json.loads((out / "splits_final.json").read_text())
    assert sorted(c for f in folds for c in f["val"]) == sorted(part["case_id"])
    for f in folds:  # stratified: every group appears in at most ceil(n_group / 5) per fold
        groups = part.set_index("case_id").loc[f["val"], "group"].value_counts()
        assert groups.max() <= 1
    vols = pd.read_csv(out / "acapulco_volumes.tsv", sep="\t").set_index("subject")
    assert vols.loc["sub-03", "acapulco_csv_mni_mm3"] == pytest.approx(19.5)
    assert vols.loc["sub-02", "acapulco_native_mm3"] == pytest.approx(truth["sub-02"].sum())


def test_volumes_csv_by_value(tmp_path):
    from nnunet_ataxia.io.acapulco import (
        ACAPULCO_LOBULE_LABELS,
        acapulco_whole_cerebellum_mask,
        acapulco_whole_cerebellum_volume,
    )
    assert sorted(ACAPULCO_LOBULE_LABELS) == LOBULES
    arr = np.array([0, 12, 1, 106, 200, 60, 5])
    assert acapulco_whole_cerebellum_mask(arr).tolist() == [False, True, False, True, False, True, False]
    p = tmp_path / "sub-01_T1w_n4_mni_seg_post_volumes.csv"
    p.write_text("name,volume\nBackground,5000\nCorpus Medullare,100\nRigt IV,7.5\nLeft Crus II,2\nVermis X,1\n")
    df = read_acapulco_volumes_csv(p)
    assert df["label"].tolist() == [0, 12, 46, 74, 100]
    assert acapulco_whole_cerebellum_volume(df) == pytest.approx(110.5)
    p.write_text("label,volume\n1,3\n")
    with pytest.raises(InputError, match="volumes.csv: expected columns 'name' and 'volume'"):
        read_acapulco_volumes_csv(p)


def test_data2_table1_split(tmp_path):
    groups = {**{f"hammers_a{i:02d}": "atlas" for i in range(1, 31)},
              **{f"sca2_{i:02d}": g for i, g in enumerate(["control"] * 5 + ["presymptomatic"] * 5
                                                          + ["sca2"] * 4, 1)}}
    train, val, test = table1_split(groups, seed=1)
    stratum = {"atlas": "healthy", "control": "healthy", "presymptomatic": "presymptomatic", "sca2": "sca2"}
    for part, expected in ((train, (21, 3, 1)), (val, (7, 1, 1)), (test, (7, 1, 2))):
        got = pd.Series([stratum[groups[c]] for c in part]).value_counts()
        assert (got.get("healthy", 0), got.get("presymptomatic", 0), got.get("sca2", 0)) == expected
    assert sorted(train + val + test) == sorted(groups)

    hammers = make_atlas(tmp_path / "hammers", n=30)
    root, truth = make_cohort(tmp_path / "cohort")
    out = convert_data2(hammers, root, tmp_path / "raw" / "Dataset503_Data2", seed=1)
    split = json.loads((out / "splits_final.json").read_text())
    assert (len(split[0]["train"]), len(split[0]["val"])) == (25, 9)
    assert (split[0]["train"], split[0]["val"]) == (train, val)
    assert sorted(p.name[:-7] for p in (out / "labelsTs").glob("*.nii.gz")) == test
    hl = sitk.GetArrayFromImage(sitk.ReadImage(str(next((out / "labelsTr").glob("hammers_*.nii.gz")))))
    assert dict(zip(*[a.tolist() for a in np.unique(hl, return_counts=True)], strict=False)) == {0: 4032 - 84, 1: 84}
    part = pd.read_csv(out / "participants.tsv", sep="\t")
    assert (part["source"] == "hammers").sum() == 30 and set(part.loc[part.source == "hammers", "group"]) == {"atlas"}


def _fails(tmp_path, root, match, capsys):
    out = tmp_path / "raw" / "Dataset502_SCA2Cohort"
    with pytest.raises(InputError, match=match):
        convert_sca2(root, out)
    capsys.readouterr()
    assert main(["convert-sca2", "-i", str(root), "-o", str(out)]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line.lower()]
    assert len(err) == 1 and err[0].startswith("error: ")
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_bad_cohorts(tmp_path, capsys):
    groups = ("control", "presymptomatic", "sca2")
    root, _ = make_cohort(tmp_path / "group", groups)
    (root / "participants.tsv").write_text("participant_id\tgroup\nsub-01\tcontrol\nsub-02\tpatient\nsub-03\tsca2\n")
    _fails(tmp_path, root, r"participants.tsv: unknown group 'patient' for sub-02", capsys)

    root, _ = make_cohort(tmp_path / "missing", groups)
    (root / "sub-02" / "anat" / "sub-02_T1w.nii.gz").unlink()
    _fails(tmp_path, root, r"sub-02_T1w.nii.gz: T1 of sub-02 \(listed in participants.tsv\) not found", capsys)

    root, _ = make_cohort(tmp_path / "dup", groups)
    (root / "participants.tsv").write_text("participant_id\tgroup\nsub-01\tcontrol\nsub-02\tsca2\n"
                                           "sub-03\tsca2\n02\tcontrol\n")
    _fails(tmp_path, root, r"participants.tsv: duplicate subject 'sub-02'", capsys)

    root, _ = make_cohort(tmp_path / "geom", groups)
    p = root / "derivatives" / "acapulco" / "sub-02" / "out" / "parc" / "sub-02_T1w_n4_mni_seg_post_inverse.nii.gz"
    sitk.WriteImage(_img(np.zeros((5, 5, 5), np.uint8)), str(p))
    _fails(tmp_path, root, r"sub-02_T1w_n4_mni_seg_post_inverse.nii.gz: label map geometry differs", capsys)

    root, _ = make_cohort(tmp_path / "unreadable", groups)
    (root / "derivatives" / "manual" / "sub-01" / "anat" / "sub-01_desc-cerebellum_mask.nii.gz").write_bytes(b"x")
    _fails(tmp_path, root, r"sub-01_desc-cerebellum_mask.nii.gz: unreadable image", capsys)

    root, _ = make_cohort(tmp_path / "unlisted", groups)
    (root / "sub-09" / "anat").mkdir(parents=True)
    _fails(tmp_path, root, r"sub-09: subject folder not listed", capsys)
