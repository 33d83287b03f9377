"""``nnunet-ataxia preprocess-mri`` and ``nnunet-ataxia to-native`` end to end on small generated data."""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from nnunet_ataxia.cli import main
from nnunet_ataxia.preprocessing.native_space import label_volumes_mm3
from nnunet_ataxia.synthesis.template_subjects import make_native_subject


@pytest.fixture(scope="module")
def native_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("native")
    (root / "images").mkdir()
    (root / "labels").mkdir()
    t1, labels, _ = make_native_subject(3.0, bias_strength=0.3, seed=2)
    sitk.WriteImage(t1, str(root / "images" / "s01_0000.nii.gz"))
    sitk.WriteImage(labels, str(root / "labels" / "s01.nii.gz"))
    return root, labels


def test_preprocess_mri_then_to_native_round_trip(native_folder, tmp_path, capsys):
    root, native_labels = native_folder
    out = tmp_path / "pre"
    code = main(["preprocess-mri", "-i", str(root / "images"), "-o", str(out), "--labels", str(root / "labels"),
                 "--no-skull-strip", "--registration-template-mm", "3"])
    assert code == 0
    image = sitk.ReadImage(str(out / "s01_0000.nii.gz"))
    assert image.GetSize() == (128, 128, 96)
    assert (out / "labels" / "s01.nii.gz").is_file()  # case id without nnU-Net's _0000 channel suffix
    assert (out / "transforms" / "s01" / "mni_to_native.tfm").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left

    # nnUNetv2_predict -i <out> finds the case by nnU-Net's own naming rule and names its prediction <id>.nii.gz
    from nnunetv2.utilities.utils import get_identifiers_from_splitted_dataset_folder
    [identifier] = get_identifiers_from_splitted_dataset_folder(str(out), ".nii.gz")
    assert identifier == "s01"

    # the preprocessed labels play the part of a prediction: map them back and compare volumes
    preds = tmp_path / "preds"
    preds.mkdir()
    os.replace(out / "labels" / "s01.nii.gz", preds / f"{identifier}.nii.gz")
    native_out = tmp_path / "native"
    assert main(["to-native", "-i", str(preds), "-t", str(out / "transforms"), "-o", str(native_out)]) == 0
    back = sitk.ReadImage(str(native_out / "s01.nii.gz"))
    assert back.GetSize() == native_labels.GetSize()
    assert np.allclose(back.GetOrigin(), native_labels.GetOrigin())
    table = pd.read_csv(native_out / "volumes_native.tsv", sep="\t")
    assert list(table.columns) == ["case_id", "label", "volume_mni_mm3", "volume_native_mm3",
                                   "volume_native_from_determinant_mm3"]
    truth = label_volumes_mm3(native_labels)
    for row in table.itertuples():
        assert row.volume_native_mm3 == pytest.approx(truth[row.label], rel=0.02)
        assert row.volume_native_from_determinant_mm3 == pytest.approx(truth[row.label], rel=0.03)


def test_preprocess_mri_bad_input_exits_1_and_leaves_nothing(native_folder, tmp_path, capsys):
    root, _ = native_folder
    bad = tmp_path / "in"
    bad.mkdir()
    (bad / "s02.nii.gz").write_bytes(b"definitely not nifti")
    out = tmp_path / "pre"
    assert main(["preprocess-mri", "-i", str(bad), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "s02.nii.gz: unreadable image" in err
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["in"]
    # a label folder that lacks the image's label
    assert main(["preprocess-mri", "-i", str(root / "images"), "-o", str(out), "--labels", str(bad)]) == 1
    assert "s01_0000.nii.gz: no label map named s01" in capsys.readouterr().err
    # to-native without transforms for a prediction
    assert main(["to-native", "-i", str(root / "labels"), "-t", str(bad), "-o", str(tmp_path / "n")]) == 1
    assert "no transform folder" in capsys.readouterr().err
