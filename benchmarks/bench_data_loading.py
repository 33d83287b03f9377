"""Side-by-side CPU benchmark: data loading + the paper's augmentation against the bare training step.

Builds a generated dataset of 96×128×128 images (the papers' crop), plans it with the plugin's fixed 128 planner and,
for each paper trainer (``M1Trainer_paperWDA``, ``M2InceptionTrainer_paperWDA``: batch 1, rotation+shift
augmentation on 10 of 11 samples), in a fresh subprocess and through nnU-Net's own trainer and data loader:

- the paper's rotation+shift augmentation alone, per sample;
- one batch from nnU-Net's data loader in the main process (load, crop, augment: ``nnUNet_n_proc_DA=0``);
- the bare training step (forward, loss, backward, optimizer step) on a batch already in memory;
- a training iteration with data loading: ``nnUNet_n_proc_DA=0`` (in the main process, before each step) and
  ``nnUNet_n_proc_DA=N`` (nnU-Net's background workers, one thread each, beside the step).

Prints a Markdown table with the iteration / bare step ratio.

    python benchmarks/bench_data_loading.py                 # 3 timed iterations per setting, workers 0 and 1
    python benchmarks/bench_data_loading.py --workers 0 2 --iterations 5
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TRAINERS = ("M1Trainer_paperWDA", "M2InceptionTrainer_paperWDA")
DATASET_ID = 988


def prepare(workdir: Path) -> dict:
    """Write and plan a 6-case dataset of 96×128×128 images; return the environment for nnU-Net."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from synthetic_data import write_toy_cerebellum_dataset

    write_toy_cerebellum_dataset(workdir / "raw", DATASET_ID, n_cases=6, shape_zyx=(96, 128, 128),
                                 name="BenchLoading")
    folder = subprocess.run(["nnunet-ataxia", "trainer-path"], capture_output=True, text=True,
                            check=True).stdout.strip()
    env = dict(os.environ, nnUNet_raw=str(workdir / "raw"), nnUNet_preprocessed=str(workdir / "pre"),
               nnUNet_results=str(workdir / "res"), nnUNet_extTrainer=folder, nnUNet_compile="false")
    subprocess.run(["nnunet-ataxia", "plan", "-d", str(DATASET_ID), "-np", "1"], env=env, check=True,
                   capture_output=True)
    return env


def _mean_time(fn, repeats: int) -> float:
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def measure(trainer_name: str, iterations: int) -> dict:
    """Run in a subprocess whose environment sets nnUNet_n_proc_DA."""
    import torch
    from nnunetv2.run.run_training import get_trainer_from_args

    from nnunet_ataxia.trainers.paper_augmentation import RandomAxisRotationShiftTransform

    torch.set_num_threads(os.cpu_count())  # as nnUNetv2_train does on the CPU
    trainer = get_trainer_from_args(str(DATASET_ID), "3d_fullres", 0, trainer_name, "nnUNetFixed128Plans",
                                    device=torch.device("cpu"))
    trainer.on_train_start()
    loader = trainer.dataloader_train
    batch = next(loader)
    trainer.train_step(batch)  # warm-up
    workers = int(os.environ["nnUNet_n_proc_DA"])
    result = {"trainer": trainer_name, "workers": workers, "batch": list(batch["data"].shape),
              "threads": torch.get_num_threads()}
    if workers == 0:
        augment = RandomAxisRotationShiftTransform()
        image, seg = batch["data"][0], batch["target"][0]
        result["augment_s"] = _mean_time(lambda: augment(image=image.clone(), segmentation=seg.clone()), 5)
        result["data_s"] = _mean_time(lambda: next(loader), iterations)
    # alternate bare steps and iterations, so that a change in machine load affects both alike
    bare, iteration = [], []
    for _ in range(iterations):
        bare.append(_mean_time(lambda: trainer.train_step(batch), 1))
        iteration.append(_mean_time(lambda: trainer.train_step(next(loader)), 1))
    result["bare_step_s"], result["iteration_s"] = sum(bare) / iterations, sum(iteration) / iterations
    print(json.dumps(result), flush=True)
    for augmenter in (trainer.dataloader_train, trainer.dataloader_val):
        if hasattr(augmenter, "_finish"):  # nnU-Net's background workers (as in its on_train_end)
            augmenter._finish()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--trainers", nargs="+", default=list(TRAINERS))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        measure(args.worker, args.iterations)
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        env = prepare(Path(tmp))
        for trainer in args.trainers:
            for workers in args.workers:
                out = subprocess.run([sys.executable, __file__, "--worker", trainer, "--iterations",
                                      str(args.iterations)], env=dict(env, nnUNet_n_proc_DA=str(workers)),
                                     capture_output=True, text=True, timeout=3600)
                if out.returncode != 0:
                    raise SystemExit(f"{trainer} with {workers} workers failed:\n{out.stderr[-3000:]}")
                rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"\nCPU, {rows[0]['threads']} threads, batch {rows[0]['batch']}; timings: mean of {args.iterations} "
          f"after one warm-up\n")
    print("| trainer | DA workers | augmentation / sample | data loading / batch | bare step | iteration with data "
          "| iteration / bare step |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        aug = f"{r['augment_s']:.2f} s" if "augment_s" in r else "beside the step"
        data = f"{r['data_s']:.2f} s" if "data_s" in r else "beside the step"
        print(f"| {r['trainer']} | {r['workers']} | {aug} | {data} | {r['bare_step_s']:.2f} s | "
              f"{r['iteration_s']:.2f} s | {r['iteration_s'] / r['bare_step_s']:.2f}× |")


if __name__ == "__main__":
    main()
