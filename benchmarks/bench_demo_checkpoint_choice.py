"""Which network the README demo's short training should deliver: the last epoch's, or the best of its last epochs.

Trains the demo's trainer (``M2InceptionTrainer_paperWDA_demo``) again on a finished demo's preprocessed data, once
per training seed, through a subclass that also saves the network of each of the last ``--last`` epochs; then
predicts the demo's test split with each of them and with ``checkpoint_best.pth`` (the schedule's choice), and prints
per epoch the validation pseudo-Dice that nnU-Net logged and the test cerebellum Dice and volume error (MNI crop, the
demo's first accuracy section). A row per seed compares the last epoch with ``checkpoint_best.pth``.

Run (about 15 minutes per seed on 2 cores, after ``nnunet-ataxia demo --out nnunet_ataxia_demo`` has run at least to
its planning step):
    python benchmarks/bench_demo_checkpoint_choice.py --demo nnunet_ataxia_demo --work /tmp/demo_choice --seeds 0 1
"""
from __future__ import annotations

import argparse
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk
import torch

from nnunet_ataxia.demo.main_job import DATASET_ID, DATASET_NAME
from nnunet_ataxia.evaluation.metrics import dice
from nnunet_ataxia.io.images import read_image
from nnunet_ataxia.io.nnunet_env import ext_trainer_path, nnunet_subprocess_env
from nnunet_ataxia.trainers.cerebellum_trainers import DEMO

TRAINER = "M2InceptionTrainer_paperWDA_demo_everyEpoch"
TRAINER_MODULE = f'''
"""The demo's trainer, also saving the network of each of its last {{n}} epochs (benchmark only)."""
import os

from nnunet_ataxia.trainers.cerebellum_trainers import M2InceptionTrainer_paperWDA_demo


class {TRAINER}(M2InceptionTrainer_paperWDA_demo):
    def on_epoch_end(self):
        epoch = self.current_epoch
        if epoch >= self.num_epochs - {{n}}:  # saved before nnU-Net counts the epoch, as its own checkpoints are
            self.save_checkpoint(os.path.join(self.output_folder, f"checkpoint_epoch{{{{epoch:02d}}}}.pth"))
        super().on_epoch_end()
'''


def _run(cmd: list, env: dict) -> None:
    subprocess.run([str(c) for c in cmd], env=env, check=True, stdout=subprocess.DEVNULL)


def _test_scores(pred: Path, labels: Path) -> tuple[float, float]:
    """Mean cerebellum (label 1) Dice and mean signed volume error (%) over the test cases."""
    dices, errors = [], []
    for ref_file in sorted(labels.glob("*.nii.gz")):
        ref = sitk.GetArrayFromImage(read_image(ref_file)) == 1
        got = sitk.GetArrayFromImage(read_image(pred / ref_file.name)) == 1
        dices.append(dice(ref, got))
        errors.append(100.0 * (got.sum() / ref.sum() - 1.0))
    return float(np.mean(dices)), float(np.mean(errors))


def run_seed(demo: Path, work: Path, seed: int, last: int, trainers: Path) -> pd.DataFrame:
    """Train one seed (skipped when its final checkpoint exists), predict with every kept network, score them."""
    env = nnunet_subprocess_env(work / f"seed{seed}", num_processes=1, seed=seed)
    env.update(nnUNet_raw=str(demo / "nnUNet_raw"), nnUNet_preprocessed=str(demo / "nnUNet_preprocessed"))
    env["nnUNet_extTrainer"] = ext_trainer_path(str(trainers))
    fold = Path(env["nnUNet_results"]) / DATASET_NAME / f"{TRAINER}__nnUNetFixed128Plans__3d_fullres" / "fold_0"
    if not (fold / "checkpoint_final.pth").is_file():
        _run(["nnUNetv2_train", DATASET_ID, "3d_fullres", 0, "-p", "nnUNetFixed128Plans", "-tr", TRAINER,
              "-device", "cpu"], env)
    final = torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    pseudo_dice = final["logging"]["mean_fg_dice"]
    raw = demo / "nnUNet_raw" / DATASET_NAME
    rows = []
    names = [f"checkpoint_epoch{e:02d}" for e in range(DEMO.num_epochs - last, DEMO.num_epochs)] + ["checkpoint_best"]
    for name in names:
        pred = work / f"seed{seed}" / "predictions" / name
        if not pred.is_dir():
            _run(["nnUNetv2_predict", "-i", raw / "imagesTs", "-o", pred, "-d", DATASET_ID, "-c", "3d_fullres",
                  "-p", "nnUNetFixed128Plans", "-tr", TRAINER, "-f", 0, "-chk", f"{name}.pth", "-device", "cpu",
                  "-npp", 1, "-nps", 1], env)
        test_dice, volume_error = _test_scores(pred, raw / "labelsTs")
        if name == "checkpoint_best":
            best = torch.load(fold / f"{name}.pth", map_location="cpu", weights_only=False)
            epoch = int(best["current_epoch"]) - 1  # nnU-Net stores the next epoch
        else:
            epoch = int(name[-2:])
        rows.append({"seed": seed, "network": name, "epoch": epoch, "validation_pseudo_dice": pseudo_dice[epoch],
                     "test_dice": test_dice, "test_volume_error_pct": volume_error})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", required=True, type=Path, help="a demo output folder (after its planning step)")
    parser.add_argument("--work", required=True, type=Path, help="folder for the runs and predictions")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--last", type=int, default=DEMO.best_of_last_epochs, help="epochs to keep and score")
    parser.add_argument("--csv", type=Path, help="write the per-network table here")
    args = parser.parse_args()
    demo, work = args.demo.resolve(), args.work.resolve()
    trainers = work / "trainers"
    trainers.mkdir(parents=True, exist_ok=True)
    (trainers / "demo_every_epoch.py").write_text(textwrap.dedent(TRAINER_MODULE.format(n=args.last)))
    table = pd.concat([run_seed(demo, work, s, args.last, trainers) for s in args.seeds], ignore_index=True)
    pd.set_option("display.width", 160)
    print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    epochs = table[table.network != "checkpoint_best"]
    print(f"\ncorrelation of validation pseudo-Dice and test Dice over the kept epochs: "
          f"{np.corrcoef(epochs.validation_pseudo_dice, epochs.test_dice)[0, 1]:.2f}; median |difference| "
          f"{np.median(np.abs(epochs.validation_pseudo_dice - epochs.test_dice)):.3f}")
    for seed, group in table.groupby("seed"):
        last = group[group.epoch == DEMO.num_epochs - 1].iloc[0]
        best = group[group.network == "checkpoint_best"].iloc[0]
        print(f"seed {seed}: last epoch test Dice {last.test_dice:.3f} (volume {last.test_volume_error_pct:+.1f} %); "
              f"checkpoint_best (epoch {int(best.epoch)}) {best.test_dice:.3f} "
              f"(volume {best.test_volume_error_pct:+.1f} %); kept epochs {group.test_dice.iloc[:-1].min():.3f}-"
              f"{group.test_dice.iloc[:-1].max():.3f}")
    if args.csv:
        table.to_csv(args.csv, index=False)


if __name__ == "__main__":
    main()
