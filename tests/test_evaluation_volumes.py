"""compare-volumes: the paper's Table 4 and ACAPULCO outputs in their real file formats."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from markdown_tables import tables_with_header

from nnunet_ataxia.cli import main
from nnunet_ataxia.evaluation.volumes import (
    acapulco_volume_from_csv,
    acapulco_volume_from_parcellation,
    compare_volumes,
    read_volumes_csv,
    transform_volume_scale,
)

FIXTURE = Path(__file__).parent / "fixtures" / "cabeza_ruiz_table4.csv"
# the 28 ACAPULCO label values, typed from the ACAPULCO documentation (independent of the package's constant)
LOBULES = [12, 33, 36, 43, 46, 53, 56, 60, 63, 66, 70, 73, 74, 75, 76, 77, 78, 80, 83, 84, 86, 87, 90, 93, 96,
           100, 103, 106]


def write(arr, path, spacing):
    img = sitk.GetImageFromArray(np.asarray(arr))
    img.SetSpacing(spacing)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(img, str(path))


def parcellation(seed):
    """A (z, y, x) parcellation with all 28 lobule labels plus a few non-cerebellar values (brainstem 5...)."""
    rng = np.random.default_rng(seed)
    values = np.array([0, 0, 0, 5, 200] + LOBULES)
    return values[rng.integers(0, len(values), size=(12, 14, 16))].astype(np.int16)


def test_table4_fixture_each_method_closer_on_five(tmp_path):
    table = compare_volumes(read_volumes_csv(FIXTURE))
    assert (table["closer"] == "model").sum() == 5 and (table["closer"] == "acapulco").sum() == 5
    # the paper: WDA got the two SCA2 patients right, ACAPULCO the presymptomatic carrier and four controls
    assert set(table.loc[table["group"] == "sca2", "closer"]) == {"model"}
    assert list(table.loc[table["group"] == "presymptomatic", "closer"]) == ["acapulco"]
    assert ((table["group"] == "control") & (table["closer"] == "acapulco")).sum() == 4
    # "in most of samples, ACAPULCO predictions were smaller than the ground truth"; WDA mainly greater
    assert (table["acapulco"] < table["ground_truth"]).sum() >= 6
    assert (table["model"] > table["ground_truth"]).sum() >= 6
    out = tmp_path / "vol"
    assert main(["compare-volumes", "--volumes-csv", str(FIXTURE), "--model-name", "WDA", "--out", str(out)]) == 0
    stats = json.loads((out / "volumes_summary.json").read_text())
    assert stats["statistics"]["closer_counts"] == {"model": 5, "acapulco": 5, "tie": 0}
    by_group = {r["group"]: r for r in stats["by_group"]}
    assert by_group["sca2"]["n"] == 2 and by_group["presymptomatic"]["n"] == 1 and by_group["all"]["n"] == 10
    assert by_group["sca2"]["ground_truth_mean"] == pytest.approx((126190 + 161586) / 2)
    md = (out / "volumes_table.md").read_text()
    rows = {cells[0]: cells for cells in tables_with_header(md, "Subject", "Ground truth")[0][1:]}
    assert rows["9 **"][1:4] == ["126190", "128265", "112160"] and rows["8 *"][1] == "140691"
    assert "closer to the ground truth on 5 of 10 subjects, ACAPULCO on 5" in md
    assert (out / "bland_altman.png").stat().st_size > 1000 and (out / "scatter.png").stat().st_size > 1000
    w = stats["statistics"]["model"]["wilcoxon_vs_ground_truth"]
    assert 0 < w["p_value"] < 0.05  # WDA is larger than the ground truth on 9 of 10 subjects


def test_acapulco_parcellation_and_volumes_csv_against_independent_count(tmp_path):
    parc = parcellation(0)
    spacing = (0.9, 1.1, 1.3)  # x, y, z
    voxel = 0.9 * 1.1 * 1.3
    expected = sum(int((parc == v).sum()) for v in LOBULES) * voxel
    f = tmp_path / "sub-01_T1w_n4_mni_seg_post_inverse.nii.gz"
    write(parc, f, spacing)
    assert acapulco_volume_from_parcellation(f) == pytest.approx(expected)
    # the volumes CSV in ACAPULCO's real layout: long format, name + volume, a Background row, typo'd names
    names = {12: "Corpus Medullare", 33: "Left I-III", 36: "Rigt I-III", 43: "Left IV", 46: "Rigt IV",
             53: "Left V", 56: "Right V", 60: "Vermis VI", 63: "Left VI", 66: "Right VI", 70: "Vermis VII",
             73: "Left Crus I", 74: "Left Crus II", 75: "Left VIIB", 76: "Right Crus I", 77: "Right Crus II",
             78: "Right VIIB", 80: "Vermis VIII", 83: "Left VIIIA", 84: "Left VIIIB", 86: "Right VIIIA",
             87: "Right VIIIB", 90: "Vermis IX", 93: "Left IX", 96: "Right IX", 100: "Vermis X", 103: "Left X",
             106: "Right X"}
    rows = [{"name": "Background", "volume": 1.0e6}] + \
        [{"name": names[v], "volume": float((parc == v).sum()) * voxel} for v in LOBULES]
    csv = tmp_path / "sub-01_T1w_n4_mni_seg_post_volumes.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    assert acapulco_volume_from_csv(csv) == pytest.approx(expected)
    # a name that cannot be matched to a value: fall back to the sum of every non-Background row
    rows[5]["name"] = "Lft IV-ish"
    pd.DataFrame(rows).to_csv(csv, index=False)
    assert acapulco_volume_from_csv(csv) == pytest.approx(expected)


def test_mni_space_parcellation_scaled_by_transform_determinant(tmp_path):
    parc = parcellation(1)
    f = tmp_path / "sub-01_n4_mni_seg_post.nii.gz"
    write(parc, f, (1.0, 1.0, 1.0))
    mni_volume = sum(int((parc == v).sum()) for v in LOBULES)
    tr = sitk.AffineTransform(3)
    tr.SetMatrix([1.1, 0.0, 0.0, 0.0, 0.95, 0.1, 0.0, 0.0, 1.2])  # det = 1.1 * 0.95 * 1.2
    sitk.WriteTransform(tr, str(tmp_path / "mni_to_native.tfm"))
    assert transform_volume_scale(tmp_path / "mni_to_native.tfm") == pytest.approx(1.254)
    assert acapulco_volume_from_parcellation(f, tmp_path / "mni_to_native.tfm") == pytest.approx(mni_volume * 1.254)
    # the preprocessing's layout <raw>/transforms/<case>/mni_to_native.tfm (+ preprocessing.json) is found
    from nnunet_ataxia.evaluation.volumes import find_case_transform
    (tmp_path / "transforms" / "c1").mkdir(parents=True)
    sitk.WriteTransform(tr, str(tmp_path / "transforms" / "c1" / "mni_to_native.tfm"))
    (tmp_path / "transforms" / "c1" / "preprocessing.json").write_text("{}")
    assert find_case_transform(str(tmp_path / "transforms"), "c1").name == "mni_to_native.tfm"
    np.savetxt(tmp_path / "native_to_mni.txt", np.diag([2.0, 1.0, 1.0, 1.0]))
    assert transform_volume_scale(tmp_path / "native_to_mni.txt", "native_to_mni") == pytest.approx(0.5)


def test_compare_volumes_from_masks_and_acapulco_folders(tmp_path):
    spacing = (1.0, 1.0, 2.0)
    cases = {"sca2_001": "control", "sca2_002": "sca2"}
    for _i, case in enumerate(cases):
        gt = np.zeros((8, 10, 10), np.uint8)
        gt[1:7, 2:8, 2:8] = 1                        # 216 voxels = 432 mm^3
        pred = gt.copy()
        pred[1:7, 2:5, 8] = 1                         # +18 voxels
        write(gt, tmp_path / "gt" / f"{case}.nii.gz", spacing)
        write(pred, tmp_path / "pred" / f"{case}.nii.gz", spacing)
        aca = np.zeros_like(gt, dtype=np.int16)
        aca[1:7, 2:8, 2:6] = 63                       # 144 voxels in two lobules
        aca[1:7, 2:8, 6:7] = 12
        aca[0, 0, 0] = 5                              # not cerebellum
        folder = tmp_path / "acapulco" / case / "out" / "parc"
        write(aca, folder / f"{case}_T1w_n4_mni_seg_post_inverse.nii.gz", spacing)
    pd.DataFrame({"case_id": list(cases), "group": list(cases.values())}).to_csv(
        tmp_path / "participants.tsv", sep="\t", index=False)
    out = tmp_path / "vol"
    assert main(["compare-volumes", "--ref", str(tmp_path / "gt"), "--pred", str(tmp_path / "pred"),
                 "--acapulco", str(tmp_path / "acapulco"), "--participants", str(tmp_path / "participants.tsv"),
                 "--out", str(out)]) == 0
    t = pd.read_csv(out / "volumes.csv")
    assert list(t["ground_truth"]) == [432.0, 432.0]
    assert list(t["model"]) == [468.0, 468.0]
    assert list(t["acapulco"]) == [(144 + 36) * 2.0] * 2
    assert list(t["group"]) == ["control", "sca2"] and list(t["closer"]) == ["model", "model"]
    # a case without ACAPULCO output is one clear error and nothing is written
    write(np.ones((2, 2, 2), np.uint8), tmp_path / "gt" / "sca2_003.nii.gz", spacing)
    write(np.ones((2, 2, 2), np.uint8), tmp_path / "pred" / "sca2_003.nii.gz", spacing)
    assert main(["compare-volumes", "--ref", str(tmp_path / "gt"), "--pred", str(tmp_path / "pred"),
                 "--acapulco", str(tmp_path / "acapulco"), "--out", str(tmp_path / "vol2")]) == 1
    assert not (tmp_path / "vol2").exists()
