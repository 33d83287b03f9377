"""Implausible and undefined numbers are flagged, never passed in silence: volumes outside the documented ranges,
HD95 of a structure missing from a mask, means that cover fewer cases, subjects without a group."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from bad_input_data import evaluation_inputs, label_map, snapshot, volume_inputs, write

from nnunet_ataxia.cli import main
from nnunet_ataxia.io.plausibility import PLAUSIBLE_VOLUME_MM3, implausible_volume


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_ranges_cover_real_volumes_and_flag_unit_errors():
    assert implausible_volume("cerebellum", 140_000) == "" and implausible_volume("brainstem", 25_000) == ""
    assert implausible_volume("cerebellum", 70_000) == ""  # severe SCA2 atrophy stays plausible
    assert implausible_volume("cerebellum", 140.0).startswith("cerebellum 140 mm³ <")  # cm³ given as mm³
    assert implausible_volume("brainstem", 2.5e6).startswith("brainstem 2500000 mm³ >")
    assert implausible_volume("wmh", 1.0) == "" and implausible_volume("cerebellum", float("nan")) == ""
    assert all(low < high for low, high in PLAUSIBLE_VOLUME_MM3.values())


def test_compare_volumes_flags_an_implausible_acapulco_volume(tmp_path, capsys):
    d = volume_inputs(tmp_path)
    df = pd.read_csv(d["csv"])
    df["acapulco"] = [139000.0, 125.0, 121000.0]  # subject 2's ACAPULCO volume: 125 mm³
    df.to_csv(d["csv"], index=False)
    before = snapshot(tmp_path)
    out = tmp_path / "vol"
    capsys.readouterr()
    assert main(["compare-volumes", "--volumes-csv", str(d["csv"]), "--out", str(out)]) == 0
    err = _lines(capsys.readouterr().err)
    assert len(err) == 1 and err[0].startswith(f"warning: {out}/volumes.csv: 1 of 3 subject(s)"), err
    assert "2 (acapulco: cerebellum 125 mm³ < 50,000)" in err[0]
    table = pd.read_csv(out / "volumes.csv", dtype={"case_id": str}, keep_default_na=False).set_index("case_id")
    assert table.loc["2", "implausible"] == "acapulco: cerebellum 125 mm³ < 50,000"
    assert table.loc["1", "implausible"] == ""
    assert "implausible" in (out / "volumes_table.md").read_text()
    summary = json.loads((out / "volumes_summary.json").read_text())
    assert summary["statistics"]["implausible"] == {"2": "acapulco: cerebellum 125 mm³ < 50,000"}
    # inputs untouched
    assert {k: v for k, v in snapshot(tmp_path).items() if not k.startswith("vol/") and k != "vol"} == before


def test_compare_volumes_reports_subjects_missing_from_participants(tmp_path, capsys):
    d = volume_inputs(tmp_path)
    pd.DataFrame({"case_id": ["s1"], "group": ["control"]}).to_csv(tmp_path / "participants.tsv", sep="\t",
                                                                   index=False)
    out = tmp_path / "vol"
    capsys.readouterr()
    rc = main(["compare-volumes", "--ref", str(d["gt"]), "--pred", str(d["pred"]), "--labels", "1", "--out",
               str(out), "--participants", str(tmp_path / "participants.tsv")])
    err = _lines(capsys.readouterr().err)
    assert rc == 0
    missing = [line for line in err if "not listed" in line]
    assert len(missing) == 1 and missing[0].startswith(f"warning: {tmp_path / 'participants.tsv'}: 1 subject(s)")
    assert missing[0].endswith(": s2")
    summary = json.loads((out / "volumes_summary.json").read_text())
    assert summary["statistics"]["cases_without_group"] == ["s2"]
    assert "Not in" in (out / "volumes_table.md").read_text()


def test_hd95_of_a_missing_structure_is_undefined_and_means_say_how_many_cases(tmp_path, capsys):
    d = evaluation_inputs(tmp_path)
    pred = label_map(0)
    pred[pred == 2] = 0  # c1's prediction misses the brainstem
    write(pred, d["pred"] / "c1.nii.gz")
    pd.DataFrame({"case_id": ["c2"], "group": ["sca2"]}).to_csv(d["participants"], sep="\t", index=False)
    before = snapshot(tmp_path)
    out = tmp_path / "eval"
    capsys.readouterr()
    rc = main(["evaluate", "--pred", str(d["pred"]), "--ref", str(d["ref"]), "--dataset-json", str(d["dj"]),
               "--out", str(out), "--participants", str(d["participants"])])
    err = _lines(capsys.readouterr().err)
    assert rc == 0
    assert len(err) == 1 and err[0].startswith(f"warning: {d['participants']}: 1 evaluated case(s) not listed"), err
    per_case = pd.read_csv(out / "per_case.csv").set_index(["case_id", "structure"])
    assert math.isnan(per_case.loc[("c1", "brainstem"), "HD95_mm"])
    assert per_case.loc[("c2", "brainstem"), "HD95_mm"] == 0.0  # a perfect prediction: a real 0
    summary = json.loads((out / "summary.json").read_text())["per_method"]["nnU-Net"]
    assert summary["metric_per_case"][0]["metrics"]["brainstem"]["HD95_mm"] is None  # JSON null, not 0
    assert summary["n"] == 2 and summary["n_defined"]["brainstem"]["HD95_mm"] == 1
    assert summary["cases_without_group"] == ["c1"]
    table = (out / "table.md").read_text()
    assert "(1/2)" in table  # the HD95 mean covers 1 of 2 cases
    assert "Not in" in table
    assert {k: v for k, v in snapshot(tmp_path).items() if not k.startswith("eval")} == before


def test_hd95_undefined_everywhere_prints_n_a(tmp_path, capsys):
    d = evaluation_inputs(tmp_path)
    for i, c in enumerate(("c1", "c2")):
        pred = label_map(i)
        pred[pred == 2] = 0
        write(pred, d["pred"] / f"{c}.nii.gz")
    out = tmp_path / "eval"
    assert main(["evaluate", "--pred", str(d["pred"]), "--ref", str(d["ref"]), "--dataset-json", str(d["dj"]),
                 "--out", str(out)]) == 0
    rows = [line for line in (out / "table.md").read_text().splitlines() if "brainstem" in line.lower()]
    hd95_rows = [line for line in rows if "n/a (0/2)" in line]
    assert hd95_rows, rows


@pytest.mark.parametrize("volume, flagged", [(140.0, True), (140_000.0, False)])
def test_volume_flag_follows_the_documented_range(volume, flagged):
    from nnunet_ataxia.evaluation.volumes import compare_volumes

    t = compare_volumes(pd.DataFrame({"case_id": ["s"], "group": [""], "ground_truth": [140_000.0],
                                      "model": [volume]}))
    assert bool(t.loc[0, "implausible"]) is flagged
    assert np.isfinite(t.loc[0, "model_rel_error_pct"])
