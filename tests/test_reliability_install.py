"""``install-pretrained`` never replaces an installed file that differs from the zip's unless told to."""
from __future__ import annotations

import zipfile

import pytest
from bad_input_data import snapshot

from nnunet_ataxia.cli import main
from nnunet_ataxia.pretrained import release

MODEL = f"{release.RELEASED_DATASET_NAME}/{release.model_dir_name()}"
FILES = {f"{MODEL}/plans.json": b"{}", f"{MODEL}/dataset.json": b'{"labels": {}}',
         f"{MODEL}/fold_{release.FOLD}/checkpoint_final.pth": b"shipped weights"}


@pytest.fixture
def release_zip(tmp_path, monkeypatch):
    path = tmp_path / "model.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in FILES.items():
            zf.writestr(name, data)

    def unpack(args, results):  # nnUNetv2_install_pretrained_model_from_zip, in-process
        zipfile.ZipFile(args[-1]).extractall(results)

    monkeypatch.setattr(release, "_nnunet", unpack)
    return path


def _install(capsys, results, zip_file, *extra):
    capsys.readouterr()
    rc = main(["install-pretrained", "--results", str(results), "--zip", str(zip_file), *extra])
    return rc, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def test_a_modified_installed_checkpoint_is_kept_unless_overwrite(tmp_path, release_zip, capsys):
    results = tmp_path / "results"
    assert _install(capsys, results, release_zip)[0] == 0
    assert _install(capsys, results, release_zip)[0] == 0  # same files: re-running is safe
    checkpoint = results / MODEL / f"fold_{release.FOLD}" / "checkpoint_final.pth"
    checkpoint.write_bytes(b"fine-tuned weights")
    before = snapshot(tmp_path)
    rc, err = _install(capsys, results, release_zip)
    assert rc == 1 and len(err) == 1, err
    assert err[0].startswith(f"error: {checkpoint}: differ") and "--overwrite" in err[0], err
    assert snapshot(tmp_path) == before
    assert _install(capsys, results, release_zip, "--overwrite")[0] == 0
    assert checkpoint.read_bytes() == b"shipped weights"


def test_a_missing_zip_is_no_such_file(tmp_path, release_zip, capsys):
    before = snapshot(tmp_path)
    rc, err = _install(capsys, tmp_path / "results", tmp_path / "nothing.zip")
    assert rc == 1 and err == [f"error: {tmp_path / 'nothing.zip'}: no such file"], err
    assert snapshot(tmp_path) == before


def test_the_printed_predict_line_names_the_installed_zips_own_model(tmp_path, release_zip, capsys):
    """``--zip`` with another model (here one laid out as model v1's) prints that model's dataset, trainer, plans and
    configuration, not the shipped model's."""
    other = tmp_path / "v1.zip"
    folder = f"{release.DATASET_NAME}/{release.model_dir_name(release.V1_TRAINER)}"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr(f"{folder}/fold_{release.FOLD}/checkpoint_final.pth", b"v1 weights")
    capsys.readouterr()
    assert main(["install-pretrained", "--results", str(tmp_path / "results"), "--zip", str(other)]) == 0
    out = capsys.readouterr().out
    assert f"installed the pretrained model in {tmp_path / 'results' / folder}" in out
    assert (f"-d {release.DATASET_ID} -c {release.CONFIGURATION} -tr {release.V1_TRAINER} -p {release.PLANS} "
            f"-f {release.FOLD}") in out
    assert main(["install-pretrained", "--results", str(tmp_path / "shipped"), "--zip", str(release_zip)]) == 0
    assert (f"-d {release.RELEASED_DATASET_ID} -c {release.CONFIGURATION} -tr {release.RELEASED_TRAINER} "
            f"-p {release.PLANS} -f {release.FOLD}") in capsys.readouterr().out
