"""``segment`` on a BIDS dataset: which T1w images it takes (``--participant-label``, ``--session-label``), the
BIDS-derivatives dataset it writes (checked by the BIDS validator, ``bids-validator-deno``), groups from the dataset's
``participants.tsv``, and the same derivatives from parts merged. The network is replaced by tests/segment_fakes.py
except in the one end-to-end test.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pandas as pd
import pytest
from bad_input_data import snapshot
from segment_fakes import fake_model, install_fakes, write_t1

from nnunet_ataxia.cli import main
from nnunet_ataxia.errors import InputError
from nnunet_ataxia.inference.bids import find_bids_images


def _bids(root, images, groups=None):
    """A BIDS dataset with the given T1w files (paths relative to ``root``)."""
    root.mkdir(parents=True)
    (root / "dataset_description.json").write_text(json.dumps({"Name": "test", "BIDSVersion": "1.10.0"}))
    for i, rel in enumerate(images):
        write_t1(root / rel, 30 + 9 * i, size=16)
    if groups:
        (root / "participants.tsv").write_text("participant_id\tage\tgroup\n" + "".join(
            f"{pid}\t40\t{group}\n" for pid, group in groups.items()))
    return root


IMAGES = ["sub-01/ses-1/anat/sub-01_ses-1_T1w.nii.gz", "sub-01/ses-2/anat/sub-01_ses-2_run-1_T1w.nii.gz",
          "sub-02/anat/sub-02_T1w.nii", "sub-03/anat/sub-03_acq-fast_T1w.nii.gz"]


def validator_errors(root) -> list[dict]:
    """The errors the BIDS validator reports for ``root`` (warnings left out)."""
    proc = subprocess.run([sys.executable, "-c", "from bids_validator_deno import cli; cli()", str(root),
                           "--format", "json"], capture_output=True, text=True, timeout=300)
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        pytest.fail(f"the BIDS validator gave no report (exit {proc.returncode}): {proc.stderr[-2000:]}")
    return [{k: i.get(k) for k in ("code", "subCode", "location", "issueMessage")}
            for i in report["issues"]["issues"] if i["severity"] == "error"]


def test_finds_t1w_images_by_participant_and_session_labels(tmp_path):
    root = _bids(tmp_path / "bids", IMAGES)
    (root / "sub-04" / "anat").mkdir(parents=True)  # a participant without a T1w: nothing to do
    (root / "sub-02" / "anat" / "sub-02_T2w.nii.gz").write_bytes(b"")  # not a T1w
    assert [i.case for i in find_bids_images(root)] == ["sub-01_ses-1_T1w", "sub-01_ses-2_run-1_T1w", "sub-02_T1w",
                                                        "sub-03_acq-fast_T1w"]
    chosen = find_bids_images(root, ["sub-01", "03"], ["2"])
    assert [(i.case, i.subject, i.session, i.prefix) for i in chosen] == [
        ("sub-01_ses-2_run-1_T1w", "01", "2", "sub-01_ses-2_run-1")]
    assert str(chosen[0].anat) == "sub-01/ses-2/anat"
    assert [i.case for i in find_bids_images(root, ["02"])] == ["sub-02_T1w"]


@pytest.mark.parametrize("labels, sessions, message", [
    (["05"], None, "no participant sub-05 in this dataset (participants: sub-01, sub-02)"),
    (["01"], ["ses-9"], "no session ses-9 in the selected participants"),
    (["sub-0_1"], None, "--participant-label sub-0_1: a BIDS label is letters and digits only"),
    (["02"], ["1"], "no session ses-1 in the selected participants")])
def test_unknown_labels_are_refused_in_one_line(tmp_path, labels, sessions, message):
    root = _bids(tmp_path / "bids", IMAGES[:3])
    with pytest.raises(InputError, match=re.escape(message)):
        find_bids_images(root, labels, sessions)


def test_not_a_bids_dataset_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    install_fakes(monkeypatch)
    model = fake_model(tmp_path)
    plain = tmp_path / "plain"
    write_t1(plain / "a.nii.gz", 20)
    nodesc = tmp_path / "nodesc"
    write_t1(nodesc / "sub-01" / "anat" / "sub-01_T1w.nii.gz", 20)
    misnamed = _bids(tmp_path / "misnamed", ["sub-01/anat/sub-02_T1w.nii.gz"])
    before = snapshot(tmp_path)
    for source, extra, message in (
            (plain, ["--participant-label", "01"], f"{plain}: not a BIDS dataset root (no dataset_description.json)"),
            (nodesc, [], f"{nodesc}: has sub-* folders but no dataset_description.json"),
            (misnamed, [], f"{misnamed / 'sub-01/anat/sub-02_T1w.nii.gz'}: a T1w file in sub-01/anat must be named")):
        code = main(["segment", "-i", str(source), "-o", str(tmp_path / "out"), "-m", str(model), *extra])
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert code == 1 and len(err) == 1 and err[0].startswith(f"error: {message}"), err
    assert snapshot(tmp_path) == before


def test_writes_a_valid_bids_derivatives_dataset_and_parts_merge_to_it(tmp_path, capsys, monkeypatch):
    install_fakes(monkeypatch)
    model = fake_model(tmp_path)
    root = _bids(tmp_path / "bids", IMAGES, groups={"sub-01": "SCA2", "sub-02": "control", "sub-03": "control"})
    out = root / "derivatives" / "nnunet_ataxia"  # BIDS Apps' place for it, inside the dataset
    args = ["-m", str(model), "--participant-label", "sub-01", "02"]
    assert main(["segment", "-i", str(root), "-o", str(out), *args]) == 0, capsys.readouterr().err

    prefix = out / "sub-01" / "ses-2" / "anat" / "sub-01_ses-2_run-1"
    for suffix in ("_dseg.nii.gz", "_dseg.json", "_label-cerebellum_mask.nii.gz", "_label-brainstem_mask.nii.gz",
                   "_label-cerebellum_mask.json"):
        assert prefix.with_name(prefix.name + suffix).is_file(), suffix
    assert prefix.with_name(prefix.name + "_dseg.tsv").read_text() == "index\tname\n1\tcerebellum\n2\tbrainstem\n"
    assert (out / "sub-02" / "figures" / "sub-02_dseg.png").read_bytes() == b"\x89PNG fake sub-02_T1w"
    assert not (out / "sub-03").exists()  # not selected
    volumes = pd.read_csv(prefix.with_name(prefix.name + "_volumes.tsv"), sep="\t")
    table = pd.read_csv(out / "volumes.csv")
    assert list(volumes.columns[:2]) == ["participant_id", "session_id"]
    assert {"group", "qc", "implausible"} <= set(volumes.columns)
    row = table.set_index("case").loc["sub-01_ses-2_run-1_T1w"]
    assert volumes.loc[0, "cerebellum_native_mm3"] == row["cerebellum_native_mm3"] > 0
    assert dict(zip(table["case"], table["group"], strict=True)) == {
        "sub-01_ses-1_T1w": "sca2", "sub-01_ses-2_run-1_T1w": "sca2", "sub-02_T1w": "control"}
    description = json.loads((out / "dataset_description.json").read_text())
    from nnunet_ataxia import __version__

    assert description["DatasetType"] == "derivative"
    assert description["GeneratedBy"][0]["Version"] == __version__
    assert description["GeneratedBy"][0]["Model"]["name"] == "model"
    assert validator_errors(out) == []

    for i in range(2):
        assert main(["segment", "-i", str(root), "-o", str(tmp_path / f"part{i}"), *args, "--num-parts", "2",
                     "--part-id", str(i)]) == 0
    assert main(["segment", "--merge", str(tmp_path / "part0"), str(tmp_path / "part1"),
                 "-o", str(tmp_path / "merged")]) == 0
    merged = tmp_path / "merged"
    assert (merged / "volumes.csv").read_bytes() == (out / "volumes.csv").read_bytes()
    assert (merged / "qc" / "index.html").read_bytes() == (out / "qc" / "index.html").read_bytes()
    assert snapshot(merged / "sub-01") == snapshot(out / "sub-01")
    assert (merged / "dataset_description.json").read_bytes() == (out / "dataset_description.json").read_bytes()
    assert validator_errors(merged) == []


@pytest.mark.slow
@pytest.mark.e2e
def test_real_segment_of_a_bids_dataset_in_two_parts(tmp_path, request):
    """The real pipeline (the stand-in model where the package ships none) on two generated 2 mm subjects."""
    import SimpleITK as sitk
    from nnunet_helpers import nnunet_env, run_checked

    from nnunet_ataxia.dataset_conversion.Dataset510_SynthCerebellumBrainstem import HELD_OUT_SEED_OFFSET
    from nnunet_ataxia.preprocessing.registration import downsample_isotropic
    from nnunet_ataxia.pretrained import release
    from nnunet_ataxia.synthesis.synthetic_subjects import make_native_subject

    root = _bids(tmp_path / "bids", [], groups={"sub-01": "control", "sub-02": "sca2"})
    for i, subject in enumerate(("01", "02")):
        t1, _, _ = make_native_subject(HELD_OUT_SEED_OFFSET + 3 + i)
        (root / f"sub-{subject}" / "anat").mkdir(parents=True)
        anat = root / f"sub-{subject}" / "anat"
        sitk.WriteImage(downsample_isotropic(t1, 2.0), str(anat / f"sub-{subject}_T1w.nii.gz"))
    shipped = release.PACKAGE_DATA / release.ZIP_NAME
    model = [] if shipped.is_file() else ["-m", request.getfixturevalue("standin_model")]
    env = nnunet_env(tmp_path / "nnunet", results=False, OMP_NUM_THREADS="1")
    for i in range(2):
        run_checked(["nnunet-ataxia", "segment", "-i", root, "-o", tmp_path / f"part{i}", *model, "--num-parts", 2,
                     "--part-id", i, "--registration-template-mm", 3], env)
    run_checked(["nnunet-ataxia", "segment", "--merge", tmp_path / "part0", tmp_path / "part1", "-o",
                 tmp_path / "merged"], env)
    table = pd.read_csv(tmp_path / "merged" / "volumes.csv")
    assert list(table["case"]) == ["sub-01_T1w", "sub-02_T1w"] and list(table["status"]) == ["ok", "ok"]
    assert list(table["group"]) == ["control", "sca2"] and (table["cerebellum_native_mm3"] > 0).all()
    assert (tmp_path / "merged" / "sub-02" / "anat" / "sub-02_label-cerebellum_mask.nii.gz").is_file()
    assert validator_errors(tmp_path / "merged") == []
