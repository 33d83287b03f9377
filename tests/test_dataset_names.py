"""Dataset ids resolve the way nnU-Net's own commands resolve them (nnU-Net's maybe_convert_to_dataset_name), with
its errors as one line."""
from __future__ import annotations

import pytest

from nnunet_ataxia.errors import InputError
from nnunet_ataxia.io.nnunet_env import dataset_name, resolve_raw_dataset


@pytest.fixture
def folders(tmp_path, monkeypatch):
    out = {k: tmp_path / k for k in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}
    for key, folder in out.items():
        folder.mkdir()
        monkeypatch.setenv(key, str(folder))
    return out


def test_an_id_is_found_in_any_of_nnunets_folders(folders):
    (folders["nnUNet_results"] / "Dataset510_Synth").mkdir()
    assert dataset_name(510) == dataset_name("510") == "Dataset510_Synth"
    assert dataset_name("Dataset777_Anything") == "Dataset777_Anything"  # a name is nnU-Net's as given


def test_unknown_ambiguous_and_malformed_ids_are_one_line_errors(folders):
    with pytest.raises(InputError, match=r"^dataset '987': no such dataset in nnUNet_raw=") as e:
        dataset_name(987)
    assert "\n" not in str(e.value)
    (folders["nnUNet_raw"] / "Dataset501_A").mkdir()
    (folders["nnUNet_results"] / "Dataset501_B").mkdir()  # nnU-Net refuses this too (it looks in all three)
    with pytest.raises(InputError, match=r"several datasets share this id \(Dataset501_A, Dataset501_B\)"):
        dataset_name("501")
    with pytest.raises(InputError, match="give a numeric id"):
        dataset_name("hammers")


def test_raw_dataset_needs_its_folder_and_dataset_json(folders):
    (folders["nnUNet_preprocessed"] / "Dataset502_X").mkdir()
    with pytest.raises(InputError, match="no such dataset in nnUNet_raw .*Dataset502_X is not there"):
        resolve_raw_dataset(502)
    (folders["nnUNet_raw"] / "Dataset502_X").mkdir()
    with pytest.raises(InputError, match="dataset.json: missing"):
        resolve_raw_dataset(502)
    (folders["nnUNet_raw"] / "Dataset502_X" / "dataset.json").write_text(
        '{"labels": {"background": 0}, "channel_names": {"0": "T1"}, "file_ending": ".nii.gz"}')
    name, folder = resolve_raw_dataset("502")
    assert name == "Dataset502_X" and folder == folders["nnUNet_raw"] / "Dataset502_X"


@pytest.mark.parametrize("labels,message", [
    ({"background": 0, "ignore": 1, "wmh": 2}, "ignore label it must have the highest"),
    ({"cerebellum": 1}, "Background label not declared"),
    ({"background": 0, "whole": [1, 2], "core": 2}, "regions_class_order"),
])
def test_labels_nnunet_would_refuse_are_refused_in_one_line(tmp_path, labels, message):
    import json

    from nnunet_ataxia.io.cases import load_dataset_labels
    path = tmp_path / "dataset.json"
    path.write_text(json.dumps({"labels": labels}))
    with pytest.raises(InputError, match=f"dataset.json: nnU-Net refuses these labels: .*{message}") as e:
        load_dataset_labels(path)
    assert "\n" not in str(e.value)
    path.write_text(json.dumps({"labels": {"background": 0, "whole": [1, 2], "core": 2},
                                "regions_class_order": [1, 2]}))
    assert load_dataset_labels(path) == ({"whole": (1, 2), "core": (2,)}, None, {0, 1, 2})
