"""End to end on a toy WMH dataset (5 cases 3x24x24, T1/FLAIR scaled like convert-wmh's output):
nnUNetv2_plan_and_preprocess -c 2d, nnUNetv2_train -tr WMHSSLocTrainer_paper_smoke, nnunet-ataxia wmh-tune-alpha,
nnUNetv2_predict -chk checkpoint_best.pth; plus the pool of the real trainer on the preprocessed data."""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from nnunet_helpers import nnunet_env, plan_and_preprocess_2d, run_checked
from wmh_toy_data import make_toy_wmh_case, write_image

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

DATASET_ID, DATASET_NAME = 986, "Dataset986_WMHPaperToy"
TRAINER = "WMHSSLocTrainer_paper_smoke"
ALPHAS = ("0", "0.5", "3")


def make_dataset(raw_root: Path, n_cases: int = 5, seed: int = 1) -> Path:
    """Toy cases with T1/FLAIR normalized per case to [0, 1] inside the brain, 0 outside (convert-wmh's output)."""
    from nnunet_ataxia.preprocessing.wmh_pipeline import normalize_intensity
    rng = np.random.default_rng(seed)
    root = raw_root / DATASET_NAME
    for sub in ("imagesTr", "labelsTr"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n_cases):
        channels, labels = make_toy_wmh_case(rng)
        brain = np.stack(channels[2:]).max(0) > 0
        channels[:2] = [normalize_intensity(c, brain, (1.0, 99.0)) for c in channels[:2]]
        for c, arr in enumerate(channels):
            write_image(arr, root / "imagesTr" / f"wmh_{i:03d}_{c:04d}.nii.gz")
        write_image(labels, root / "labelsTr" / f"wmh_{i:03d}.nii.gz")
    names = {"0": "T1", "1": "FLAIR", **{str(c): "noNorm" for c in range(2, 10)}}
    (root / "dataset.json").write_text(json.dumps({"channel_names": names, "file_ending": ".nii.gz",
                                                   "labels": {"background": 0, "wmh": 1, "ignore": 2},
                                                   "numTraining": n_cases}))
    return root


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wmh_paper")
    env = nnunet_env(tmp, OMP_NUM_THREADS="2")
    raw = make_dataset(tmp / "nnUNet_raw")
    plan_and_preprocess_2d(DATASET_ID, env)
    run_checked(["nnUNetv2_train", str(DATASET_ID), "2d", "0", "-tr", TRAINER, "-device", "cpu"], env)
    fold = tmp / "nnUNet_results" / DATASET_NAME / f"{TRAINER}__nnUNetPlans__2d" / "fold_0"
    history = torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)["logging"]
    run_checked(["nnunet-ataxia", "wmh-tune-alpha", "-d", str(DATASET_ID), "-tr", TRAINER, "-f", "0", "-chk",
                 "checkpoint_best.pth", "--alphas", *ALPHAS, "-device", "cpu"], env)
    val_case = json.loads((tmp / "nnUNet_preprocessed" / DATASET_NAME / "splits_final.json").read_text())[0]["val"][0]
    (tmp / "val_images").mkdir()
    for f in (raw / "imagesTr").glob(f"{val_case}_*.nii.gz"):
        shutil.copy(f, tmp / "val_images" / f.name)
    run_checked(["nnUNetv2_predict", "-d", str(DATASET_ID), "-c", "2d", "-tr", TRAINER, "-f", "0", "-chk",
                 "checkpoint_best.pth", "-i", str(tmp / "val_images"), "-o", str(tmp / "pred"),
                 "--save_probabilities", "-device", "cpu", "-npp", "1", "-nps", "1"], env)
    return dict(tmp=tmp, env=env, raw=raw, fold=fold, history=history, val_case=val_case)


def test_checkpoint_best_is_the_epoch_with_the_best_validation_auc(run):
    aucs = run["history"]["val_auc"]
    assert len(aucs) == 3 and all(0 <= a <= 1 for a in aucs), aucs
    best = torch.load(run["fold"] / "checkpoint_best.pth", map_location="cpu", weights_only=False)
    assert best["current_epoch"] - 1 == int(np.argmax(aucs)), f"best checkpoint of epoch {best['current_epoch'] - 1}"
    assert best["trainer_name"] == TRAINER
    assert best["inference_allowed_mirroring_axes"] is None, "no test-time mirroring"
    log = "".join(p.read_text() for p in run["fold"].glob("training_log_*.txt"))
    assert "training pool:" in log and "new best validation AUC" in log


def test_model_plans_scale_t1_flair_to_unit_range(run):
    plans = json.loads((run["fold"].parent / "plans.json").read_text())["configurations"]["2d"]
    pre = json.loads((run["tmp"] / "nnUNet_preprocessed" / DATASET_NAME / "nnUNetPlans.json").read_text())[
        "configurations"]["2d"]
    assert plans["normalization_schemes"][:2] == ["RescaleTo01Normalization"] * 2
    assert plans["normalization_schemes"][2:] == pre["normalization_schemes"][2:]
    assert pre["normalization_schemes"][:2] == ["ZScoreNormalization"] * 2


def test_real_trainer_pool_and_scaling_on_preprocessed_data(run, monkeypatch):
    for k, v in run["env"].items():
        if k.startswith("nnUNet"):
            monkeypatch.setenv(k, v)
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunet_ataxia.trainers.wmh_paper_recipe import WMHSSLocTrainer_paper
    pre = run["tmp"] / "nnUNet_preprocessed" / DATASET_NAME
    plans = json.loads((pre / "nnUNetPlans.json").read_text())
    dataset_json = json.loads((pre / "dataset.json").read_text())
    trainer = WMHSSLocTrainer_paper(dict(plans, continue_training=False), "2d", 0, dataset_json, torch.device("cpu"))
    train, val = trainer.get_dataloaders()
    assert trainer.inference_allowed_mirroring_axes is None
    tr_keys, val_keys = trainer.do_split()
    lesion = sum(int((sitk.GetArrayFromImage(sitk.ReadImage(str(run["raw"] / "labelsTr" / f"{k}.nii.gz"))) == 1)
                     .sum()) for k in tr_keys)
    pool = trainer.train_pool
    assert pool.lesion_voxels == lesion
    assert (pool.label == 1).sum() == (pool.label == 0).sum() == math.ceil(lesion / 2)
    assert trainer.num_iterations_per_epoch == math.ceil(len(pool) / 128) == len(train)
    assert trainer.num_val_iterations_per_epoch == len(val) and trainer.val_pool.case_ids == val_keys
    snapshot = [a.copy() for a in (pool.case, pool.y, pool.x, pool.label)]
    for _ in range(2 * len(train) + 1):
        batch = next(train)
        assert batch["patches"][0].shape[1:] == (2, 32, 32) and batch["location"].shape[1] == 8
    again = WMHSSLocTrainer_paper(dict(plans, continue_training=False), "2d", 0, dataset_json, torch.device("cpu"))
    again.get_dataloaders()
    for a, b, c in zip(snapshot, (pool.case, pool.y, pool.x, pool.label),
                       (again.train_pool.case, again.train_pool.y, again.train_pool.x, again.train_pool.label),
                       strict=True):
        assert np.array_equal(a, b) and np.array_equal(a, c), "the pool is built once and rebuilt identically"
    # what the network sees in training == what nnUNetv2_predict feeds it (the model's plans.json)
    case = val_keys[0]
    scaled = np.asarray(trainer.dataset_class(trainer.preprocessed_dataset_folder, [case]).load_case(case)[0])
    model_plans = PlansManager(json.loads((run["fold"].parent / "plans.json").read_text()))
    cm = model_plans.get_configuration("2d")
    images = sorted(str(p) for p in (run["raw"] / "imagesTr").glob(f"{case}_*.nii.gz"))
    data, _, _ = cm.preprocessor_class(verbose=False).run_case(images, None, model_plans, cm, dataset_json)
    assert scaled.shape == data.shape
    assert np.allclose(scaled[:2], data[:2], atol=1e-5) and np.array_equal(scaled[2:], data[2:])
    zscored = np.asarray(trainer.pool_dataset_class(trainer.preprocessed_dataset_folder, [case]).load_case(case)[0])
    assert not np.allclose(zscored[:2], data[:2], atol=1e-2)


def test_tuned_alpha_is_the_sweep_argmax_and_read_back_by_the_predictor(run, monkeypatch):
    record = json.loads((run["fold"] / "location_alpha.json").read_text())
    sweep = record["sweep"]
    assert [r["alpha"] for r in sweep] == sorted({float(a) for a in ALPHAS} | {1.0})
    assert record["trained_alpha"] == 1.0 and record["checkpoint"] == "checkpoint_best.pth"
    assert record["validation_cases"] == [run["val_case"]]
    assert record["alpha"] == sweep[int(np.argmax([r["auc"] for r in sweep]))]["alpha"]
    ckpt = torch.load(run["fold"] / "checkpoint_best.pth", map_location="cpu", weights_only=False)
    assert float(ckpt["network_weights"]["location_alpha"]) == record["alpha"]
    mode = [(run["fold"] / f).stat().st_mode & 0o777 for f in ("checkpoint_best.pth", "checkpoint_final.pth")]
    assert mode[0] == mode[1], "the rewritten checkpoint keeps the permissions nnU-Net gave it"
    monkeypatch.setenv("nnUNet_extTrainer", run["env"]["nnUNet_extTrainer"])
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    predictor = nnUNetPredictor(device=torch.device("cpu"))
    predictor.initialize_from_trained_model_folder(str(run["fold"].parent), (0,), "checkpoint_best.pth")
    predictor.network.load_state_dict(predictor.list_of_parameters[0])
    assert float(predictor.network.location_alpha) == record["alpha"]
    # nnUNetv2_predict's probabilities (no extra flag) reproduce the sweep's AUC at the chosen alpha
    from nnunet_ataxia.evaluation.wmh_statistics import roc
    case, raw = run["val_case"], run["raw"]
    p = np.load(run["tmp"] / "pred" / f"{case}.npz")["probabilities"][1]
    ref = sitk.GetArrayFromImage(sitk.ReadImage(str(raw / "labelsTr" / f"{case}.nii.gz")))
    brain = np.stack([sitk.GetArrayFromImage(sitk.ReadImage(str(raw / "imagesTr" / f"{case}_{c:04d}.nii.gz")))
                      for c in range(2, 10)]).max(0) > 0
    auc = roc([p], [ref == 1], [brain & (ref != 2)], max_voxels=None)["auc"]
    chosen = next(r for r in sweep if r["alpha"] == record["alpha"])
    assert auc == pytest.approx(chosen["auc"], abs=1e-6)


def test_tuning_again_keeps_the_trained_alpha_and_errors_are_one_line(run, monkeypatch, capsys):
    for k, v in run["env"].items():
        if k.startswith("nnUNet"):
            monkeypatch.setenv(k, v)
    from nnunet_ataxia.cli import main
    first = json.loads((run["fold"] / "location_alpha.json").read_text())
    assert main(["wmh-tune-alpha", "-d", str(DATASET_ID), "-tr", TRAINER, "-f", "0", "-chk", "checkpoint_best.pth",
                 "--alphas", *ALPHAS, "-device", "cpu"]) == 0
    second = json.loads((run["fold"] / "location_alpha.json").read_text())
    assert second["trained_alpha"] == 1.0 and second["alpha"] == first["alpha"]
    assert [r["auc"] for r in second["sweep"]] == pytest.approx([r["auc"] for r in first["sweep"]], abs=1e-9)
    capsys.readouterr()
    for argv, message in ((["-f", "3"], "fold_3/checkpoint_best.pth: no such checkpoint"),
                          (["-f", "all"], "fold all: trained on every case")):
        rc = main(["wmh-tune-alpha", "-d", str(DATASET_ID), "-tr", TRAINER, "-chk", "checkpoint_best.pth", *argv])
        err = capsys.readouterr().err.strip()
        assert rc == 1 and message in err and len(err.splitlines()) == 1, err
    # a negative alpha is a usage error: argparse's exit status 2 and its message, before any work
    with pytest.raises(SystemExit) as usage:
        main(["wmh-tune-alpha", "-d", str(DATASET_ID), "-tr", TRAINER, "-f", "0", "--alphas", "-1"])
    err = capsys.readouterr().err.strip()
    assert usage.value.code == 2 and "-1 must be >= 0" in err.splitlines()[-1], err
