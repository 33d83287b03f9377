"""nnU-Net's integrity check as this project runs it (``verify_raw_dataset``, used by the converters and ``plan``):
the raw-dataset file listing runs in threads, so the check forks nothing, finds the same files and the same faults,
and names the file at fault."""
from __future__ import annotations

import os

import pytest
from synthetic_data import add_undeclared_label, write_toy_cerebellum_dataset

from nnunet_ataxia.errors import InputError
from nnunet_ataxia.io.nnunet_integrity import verify_raw_dataset


@pytest.fixture
def forks():
    """Count the Python-level forks (multiprocessing's fork start method) while the test runs."""
    count = {"n": 0, "active": True}

    def before() -> None:
        if count["active"]:
            count["n"] += 1

    os.register_at_fork(before=before)
    yield count
    count["active"] = False


def test_listing_in_threads_finds_what_nnunet_finds(tmp_path):
    import multiprocessing.dummy

    import nnunetv2.utilities.utils as nnunet_utils

    folder = write_toy_cerebellum_dataset(tmp_path / "raw", 996, n_cases=4, shape_zyx=(8, 8, 8))
    images = str(folder / "imagesTr")
    identifiers = nnunet_utils.get_identifiers_from_splitted_dataset_folder(images, ".nii.gz")
    expected = [[os.path.join(images, f"{i}_0000.nii.gz")] for i in identifiers]
    verify_raw_dataset(folder)
    assert nnunet_utils.Pool is multiprocessing.dummy.Pool
    assert nnunet_utils.create_lists_from_splitted_dataset_folder(images, ".nii.gz", identifiers) == expected
    assert len(expected) == 4


def test_integrity_check_forks_nothing_and_still_refuses_a_bad_label(tmp_path, forks):
    folder = write_toy_cerebellum_dataset(tmp_path / "raw", 997, n_cases=3, shape_zyx=(8, 8, 8))
    verify_raw_dataset(folder, num_processes=2)
    assert forks["n"] == 0
    add_undeclared_label(folder, 7)
    with pytest.raises(InputError, match="integrity check failed"):
        verify_raw_dataset(folder, num_processes=2)
    assert forks["n"] == 0


def test_a_temporary_folder_is_shown_as_the_dataset_it_stands_for(tmp_path):
    folder = write_toy_cerebellum_dataset(tmp_path / "staging", 998, n_cases=3, shape_zyx=(8, 8, 8))
    bad = add_undeclared_label(folder, 5)
    final = tmp_path / "raw" / folder.name
    with pytest.raises(InputError) as refused:
        verify_raw_dataset(folder, shown_as=final)
    shown = final / bad.relative_to(folder)
    assert str(refused.value).startswith(f"{shown}: nnU-Net's dataset integrity check failed: ")
    assert "5" in str(refused.value).split("Found", 1)[1] and str(folder) not in str(refused.value)


def test_the_case_listing_of_the_wmh_commands_forks_nothing_and_lists_what_nnunet_lists(tmp_path, forks,
                                                                                       monkeypatch):
    import multiprocessing

    import nnunetv2.utilities.utils as nnunet_utils

    from nnunet_ataxia.io.nnunet_env import raw_dataset_files

    folder = write_toy_cerebellum_dataset(tmp_path / "raw", 995, n_cases=3, shape_zyx=(8, 8, 8))
    monkeypatch.setattr(nnunet_utils, "Pool", multiprocessing.Pool)   # nnU-Net's forked pool, as a fresh process has it
    cases = raw_dataset_files(folder)
    assert forks["n"] == 0
    ids = nnunet_utils.get_identifiers_from_splitted_dataset_folder(str(folder / "imagesTr"), ".nii.gz")
    assert sorted(cases) == sorted(ids) and len(ids) == 3
    for case in ids:
        assert cases[case] == {"images": [str(folder / "imagesTr" / f"{case}_0000.nii.gz")],
                               "label": str(folder / "labelsTr" / f"{case}.nii.gz")}
