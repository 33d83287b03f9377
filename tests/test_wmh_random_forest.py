"""The random-forest baseline: hand-made features, trained on a tiny pixel pool, compared by wmh-stats."""
from __future__ import annotations

import json

import numpy as np
import SimpleITK as sitk

from nnunet_ataxia.cli import main
from nnunet_ataxia.evaluation.wmh_random_forest import feature_names, hand_crafted_features, run_random_forest_baseline

SHAPE = (3, 24, 24)


def _write(arr, path):
    img = sitk.GetImageFromArray(np.asarray(arr))
    img.SetSpacing((1.0, 1.0, 3.0))
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(img, str(path))


def _dataset(root, n_train=4, n_test=2):
    """T1 + FLAIR + 8 location channels; lesions are bright FLAIR blobs, "mimics" are bright blobs outside the WMH
    region (x >= 16) that only location tells apart."""
    rng = np.random.default_rng(0)
    brain = np.zeros(SHAPE, bool)
    brain[:, 2:-2, 2:-2] = True
    zz, yy, xx = np.mgrid[:SHAPE[0], :SHAPE[1], :SHAPE[2]].astype(float)
    for role, n in (("Tr", n_train), ("Ts", n_test)):
        for i in range(n):
            cid = f"{role.lower()}{i}"
            flair = np.where(brain, 0.4 + 0.05 * rng.standard_normal(SHAPE), 0).clip(0, 1)
            label = np.zeros(SHAPE, np.uint8)
            for _ in range(3):
                cy, cx = rng.integers(5, 19), rng.integers(4, 12)
                blob = ((yy - cy) ** 2 + (xx - cx) ** 2 <= 4) & (zz == rng.integers(0, 3))
                flair[blob], label[blob] = 0.9, 1
            cy = rng.integers(5, 19)
            flair[((yy - cy) ** 2 + (xx - 19) ** 2 <= 4) & (zz == 1)] = 0.9        # a mimic
            t1 = np.where(brain, 0.6, 0)
            location = [np.where(brain, (c + 1) / 30.0, 0) for c in (xx, yy, zz)] + [np.where(brain, 0.5, 0)] * 5
            for c, arr in enumerate([t1, flair, *location]):
                _write(arr.astype(np.float32), root / f"images{role}/{cid}_{c:04d}.nii.gz")
            _write(label, root / f"labels{role}/{cid}.nii.gz")
    (root / "dataset.json").write_text(json.dumps({"channel_names": {str(c): "x" for c in range(10)},
                                                   "labels": {"background": 0, "wmh": 1, "ignore": 2}}))
    (root / "splits_final.json").write_text(json.dumps([{"train": ["tr0", "tr1", "tr2"], "val": ["tr3"]}]))
    return brain


def test_features_follow_the_paper_list():
    names = feature_names(True)
    assert len(names) == 22 and names[:2] == ["FLAIR", "T1"] and names[-1] == "wmh_prior"
    f = hand_crafted_features(np.random.rand(1, 2, 20, 20), np.random.rand(8, 2, 20, 20), (3.0, 1.0, 1.0))
    assert f.shape == (21, 2, 20, 20) and np.isfinite(f).all()
    # a bright blob: negative LoG at its centre, positive annular contrast
    img = np.zeros((1, 1, 21, 21), np.float32)
    img[0, 0, 8:13, 8:13] = 1
    f = hand_crafted_features(img, np.zeros((8, 1, 21, 21)), (3.0, 1.0, 1.0))
    names = feature_names(False)
    assert f[names.index("LoG_2mm"), 0, 10, 10] < 0 and f[names.index("annular_2mm"), 0, 10, 10] > 0


def test_forest_on_a_tiny_pool_is_compared_by_wmh_stats(tmp_path, capsys):
    raw = tmp_path / "Dataset504_WMH"
    _dataset(raw)
    record = run_random_forest_baseline(raw, tmp_path / "rf", fold=0, n_trees=10)
    assert record["training_cases"] == ["tr0", "tr1", "tr2"] and record["validation_cases"] == ["tr3"]
    assert len(record["features"]) == 22 and record["n_pool_samples"] > 0
    prob = np.load(tmp_path / "rf" / "test" / "ts0.npz")["probabilities"]
    label = sitk.GetArrayFromImage(sitk.ReadImage(str(raw / "labelsTs/ts0.nii.gz")))
    assert prob.shape == (2, *SHAPE) and np.allclose(prob.sum(0), 1)
    assert prob[1][label == 1].mean() > 0.7 > prob[1][label == 0].mean() + 0.5
    # a "network" that only sees brightness, beside the forest in wmh-stats
    (tmp_path / "bright").mkdir()
    for cid in ("ts0", "ts1"):
        flair = sitk.GetArrayFromImage(sitk.ReadImage(str(raw / f"imagesTs/{cid}_0001.nii.gz")))
        np.savez_compressed(tmp_path / "bright" / f"{cid}.npz", probabilities=np.stack([1 - flair, flair]))
    rc = main(["wmh-stats", "--test", f"rf={tmp_path}/rf/test", "--val", f"rf={tmp_path}/rf/validation",
               "--test", f"bright={tmp_path}/bright", "--ref", str(raw / "labelsTs"), str(raw / "labelsTr"),
               "--images", str(raw / "imagesTs"), str(raw / "imagesTr"), "--n-bootstrap", "100",
               "--out", str(tmp_path / "stats")])
    assert rc == 0, capsys.readouterr().err
    s = json.loads((tmp_path / "stats" / "wmh_summary.json").read_text())
    assert s["methods"]["rf"]["threshold_source"] == "validation"
    assert s["methods"]["rf"]["test_auc"] > s["methods"]["bright"]["test_auc"]   # location separates the mimics


def test_wmh_stats_adds_a_caveat_below_the_documented_minimum(tmp_path, capsys):
    from nnunet_ataxia.evaluation.wmh_comparison import MIN_CASES_FOR_STATISTICS

    raw = tmp_path / "Dataset504_WMH"
    _dataset(raw, n_train=1, n_test=2)
    (tmp_path / "p").mkdir()
    for cid in ("ts0", "ts1"):
        flair = sitk.GetArrayFromImage(sitk.ReadImage(str(raw / f"imagesTs/{cid}_0001.nii.gz")))
        np.savez_compressed(tmp_path / "p" / f"{cid}.npz", probabilities=np.stack([1 - flair, flair]))
    rc = main(["wmh-stats", "--test", f"a={tmp_path}/p", "--ref", str(raw / "labelsTs"), "--images",
               str(raw / "imagesTs"), "--n-bootstrap", "100", "--out", str(tmp_path / "stats")])
    err = capsys.readouterr().err
    assert rc == 0 and MIN_CASES_FOR_STATISTICS > 2
    assert err.count("caveat") == 1 and "only 2 test case(s)" in err
    s = json.loads((tmp_path / "stats" / "wmh_summary.json").read_text())
    assert len(s["caveats"]) == 1 and "Caveat" in (tmp_path / "stats" / "wmh_table.md").read_text()
