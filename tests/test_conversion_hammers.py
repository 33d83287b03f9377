"""Hammers n30r95 converter on a constructed atlas in the real download layout (aNN.nii.gz + aNN-seg.nii.gz)."""
import json
import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from hammers_atlas import BOXES, SHAPE, SPACING, make_atlas

from nnunet_ataxia.cli import main
from nnunet_ataxia.dataset_conversion.Dataset501_HammersN30R95 import convert_hammers, paper_split
from nnunet_ataxia.errors import InputError


@pytest.fixture(scope="module")
def atlas(tmp_path_factory):
    return make_atlas(tmp_path_factory.mktemp("hammers") / "Hammers_mith-n30r95")


def _cases(folder: Path):
    return sorted(p.name[: -len(".nii.gz")] for p in folder.glob("*.nii.gz"))


def test_paper_split_labels_and_counts(atlas, tmp_path):
    out = convert_hammers(atlas, tmp_path / "Dataset501_HammersN30R95", split="paper", seed=3)
    ds = json.loads((out / "dataset.json").read_text())
    assert ds["labels"] == {"background": 0, "cerebellum": 1, "brainstem": 2}
    assert ds["numTraining"] == 24 and ds["channel_names"] == {"0": "T1"}
    test = _cases(out / "labelsTs")
    assert len(test) == 6 and len(_cases(out / "imagesTs")) == 6
    splits = json.loads((out / "splits_final.json").read_text())
    assert len(splits) == 1 and len(splits[0]["train"]) == 18 and len(splits[0]["val"]) == 6
    tr = set(splits[0]["train"]) | set(splits[0]["val"])
    assert tr == set(_cases(out / "labelsTr")) and not tr & set(test)
    lab = sitk.ReadImage(str(out / "labelsTr" / f"{splits[0]['val'][0]}.nii.gz"))
    values, counts = np.unique(sitk.GetArrayFromImage(lab), return_counts=True)
    assert dict(zip(values.tolist(), counts.tolist(), strict=False)) == {0: int(np.prod(SHAPE)) - 96, 1: 84, 2: 12}
    assert np.allclose(lab.GetSpacing(), SPACING)
    # the image is the input T1, unchanged
    case = test[0]
    src = sitk.GetArrayFromImage(sitk.ReadImage(str(atlas / f"{case.split('_')[1]}.nii.gz")))
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(out / "imagesTs" / f"{case}_0000.nii.gz"))), src)
    # same seed -> same split; the participants table carries the split
    ids = [f"hammers_a{i:02d}" for i in range(1, 31)]
    assert paper_split(ids, seed=3) == (splits[0]["train"], splits[0]["val"], test) == paper_split(ids[::-1], seed=3)
    tsv = (out / "participants.tsv").read_text().splitlines()
    assert tsv[0].split("\t")[:4] == ["case_id", "group", "source", "subject"] and len(tsv) == 31


@pytest.mark.slow
def test_cv5_and_hemispheres_from_label_list(atlas, tmp_path):
    paper = convert_hammers(atlas, tmp_path / "paper", split="paper", seed=7)
    # the atlas's own label list says 17 is LEFT here: the converter must follow it, not the paper's default
    (atlas / "Hammers_mith-n30r95-label-names.csv").write_text(
        "index,name\n17,Cerebellum_L\n18,Cerebellum_R\n19,Brainstem\n46,Lateral_ventricle_L\n")
    try:
        out = convert_hammers(atlas, tmp_path / "cv", split="cv5", seed=7, split_hemispheres=True)
    finally:
        (atlas / "Hammers_mith-n30r95-label-names.csv").unlink()
    assert _cases(out / "labelsTs") == _cases(paper / "labelsTs")
    folds = json.loads((out / "splits_final.json").read_text())
    assert len(folds) == 5
    vals = [c for f in folds for c in f["val"]]
    assert sorted(vals) == _cases(out / "labelsTr") and len(vals) == 24 and len(set(vals)) == 24
    assert all(not set(f["train"]) & set(f["val"]) and len(f["train"]) + len(f["val"]) == 24 for f in folds)
    ds = json.loads((out / "dataset.json").read_text())
    assert ds["labels"] == {"background": 0, "cerebellum_left": 1, "cerebellum_right": 2, "brainstem": 3}
    arr = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "labelsTr" / f"{vals[0]}.nii.gz")))
    assert [(arr == v).sum() for v in (1, 2, 3)] == [60, 24, 12]
    # without a label list: the paper's reading, 17 = right, 18 = left
    out2 = convert_hammers(atlas, tmp_path / "paperlr", split="none", split_hemispheres=True)
    arr = sitk.GetArrayFromImage(sitk.ReadImage(str(out2 / "labelsTr" / "hammers_a01.nii.gz")))
    assert [(arr == v).sum() for v in (1, 2, 3)] == [24, 60, 12]
    assert not (out2 / "splits_final.json").exists() and len(_cases(out2 / "labelsTr")) == 30


@pytest.mark.slow
def test_rerun_skips_converted_cases(tmp_path, capsys):
    atlas = make_atlas(tmp_path / "atlas", n=4)
    out = tmp_path / "raw" / "Dataset501_HammersN30R95"
    convert_hammers(atlas, out, split="none")
    inode = os.stat(out / "labelsTr" / "hammers_a02.nii.gz").st_ino
    seg = sitk.ReadImage(str(atlas / "a03-seg.nii.gz"))
    arr = sitk.GetArrayFromImage(seg)
    arr[BOXES[19]] = 0  # a03 changes: only it is converted again
    new = sitk.GetImageFromArray(arr)
    new.CopyInformation(seg)
    sitk.WriteImage(new, str(atlas / "a03-seg.nii.gz"))
    capsys.readouterr()
    convert_hammers(atlas, out, split="none", num_processes=2)
    assert "3 case(s) already converted, 1 to do (1 with changed inputs or options)" in capsys.readouterr().out
    assert os.stat(out / "labelsTr" / "hammers_a02.nii.gz").st_ino == inode
    a03 = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "labelsTr" / "hammers_a03.nii.gz")))
    assert (a03 == 2).sum() == 0 and (a03 == 1).sum() == 84
    assert [p.name for p in out.parent.iterdir()] == [out.name]
    (out / "labelsTr" / "hammers_a02.nii.gz").unlink()   # a deleted output: that case is converted again
    convert_hammers(atlas, out, split="none")
    assert "3 case(s) already converted, 1 to do (1 with outputs missing)" in capsys.readouterr().out
    assert (out / "labelsTr" / "hammers_a02.nii.gz").is_file()


def _expect_failure(tmp_path, atlas, match, capsys):
    out = tmp_path / "raw" / "Dataset501_HammersN30R95"
    with pytest.raises(InputError, match=match):
        convert_hammers(atlas, out, split="paper", num_processes=2)
    capsys.readouterr()
    assert main(["convert-hammers", "-i", str(atlas), "-o", str(out)]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line.lower()]
    assert len(err) == 1 and err[0].startswith("error: ")
    assert not out.parent.exists() or list(out.parent.iterdir()) == []
    return err


def test_bad_inputs(tmp_path, capsys):
    atlas = make_atlas(tmp_path / "missing", n=5)
    (atlas / "a04.nii.gz").unlink()
    err = _expect_failure(tmp_path, atlas, "a04-seg.nii.gz: no T1 image", capsys)
    assert "a04-seg.nii.gz" in err[0]

    atlas = make_atlas(tmp_path / "geometry", n=5)
    seg = sitk.ReadImage(str(atlas / "a02-seg.nii.gz"))
    seg.SetSpacing((1.0, 1.0, 1.0))
    sitk.WriteImage(seg, str(atlas / "a02-seg.nii.gz"))
    _expect_failure(tmp_path, atlas, r"a02-seg.nii.gz: label map geometry differs from .*a02.nii.gz", capsys)

    atlas = make_atlas(tmp_path / "unreadable", n=5)
    (atlas / "a03.nii.gz").write_bytes(b"this is not a nifti file")
    _expect_failure(tmp_path, atlas, r"a03.nii.gz: unreadable image", capsys)

    atlas = make_atlas(tmp_path / "duplicate", n=5)
    (atlas / "copy").mkdir()
    for name in ("a02.nii.gz", "a02-seg.nii.gz"):
        (atlas / "copy" / name).write_bytes((atlas / name).read_bytes())
    _expect_failure(tmp_path, atlas, "duplicate subject 'a02'", capsys)

    atlas = make_atlas(tmp_path / "nocerebellum", n=5)
    seg = sitk.ReadImage(str(atlas / "a05-seg.nii.gz"))
    arr = sitk.GetArrayFromImage(seg)
    arr[np.isin(arr, (17, 18))] = 0
    new = sitk.GetImageFromArray(arr)
    new.CopyInformation(seg)
    sitk.WriteImage(new, str(atlas / "a05-seg.nii.gz"))
    _expect_failure(tmp_path, atlas, "a05-seg.nii.gz: no voxels of the expected region", capsys)
