"""Does CPU bf16 autocast hurt learning? fp32 vs bf16 training of M1 / M2, same data, seed and sample order.

Generates small cerebellum + brainstem volumes (``tests/synthetic_data.py``), trains the network with the paper's
recipe pieces (Adam with default settings, the soft-Dice loss of eq. 1, batch 1, dropout after the output layer) for
``--iterations`` steps once in float32 and once with the trainers' bf16 autocast (``cpu_speed.autocast_forward_bf16``:
forward pass in bf16, loss, gradients and optimizer in float32), then compares the hard Dice on held-out volumes.
The check passes when the two mean validation Dice values are within ``--tolerance`` (0.01).

bf16 is meant for CPUs with native bf16 (``avx512_bf16`` / ``amx_bf16``); elsewhere it is emulated and several times
slower, but the numbers are the same, so the comparison still runs (use fewer iterations).

    python benchmarks/bench_bf16_learning.py                          # M1, 300 iterations
    python benchmarks/bench_bf16_learning.py --network M2InceptionUNet --iterations 200
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

SHAPE = (32, 48, 48)  # divisible by 16 (M2)


def make_cases(n_cases: int, seed: int) -> list:
    """(image, label) tensors of generated T1-like volumes, intensities z-scored."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from synthetic_data import write_toy_cerebellum_dataset

    with tempfile.TemporaryDirectory() as tmp:
        folder = write_toy_cerebellum_dataset(Path(tmp), 987, n_cases=n_cases, shape_zyx=SHAPE, seed=seed)
        cases = []
        for i in range(n_cases):
            image = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "imagesTr" / f"toy_{i:03d}_0000.nii.gz")))
            label = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "labelsTr" / f"toy_{i:03d}.nii.gz")))
            image = (image - image.mean()) / image.std()
            cases.append((torch.from_numpy(image)[None, None].float(), torch.from_numpy(label)[None, None].long()))
    return cases


def hard_dice(logits: torch.Tensor, label: torch.Tensor, num_classes: int) -> float:
    """Mean Dice of the foreground classes of ``argmax(logits)``."""
    prediction = logits.argmax(1)
    scores = []
    for c in range(1, num_classes):
        p, g = prediction == c, label[:, 0] == c
        scores.append(2 * (p & g).sum().item() / max(p.sum().item() + g.sum().item(), 1))
    return float(np.mean(scores))


def train(network: str, precision: str, cases: list, n_train: int, iterations: int, seed: int) -> dict:
    from nnunet_ataxia import architectures
    from nnunet_ataxia.trainers.cpu_speed import autocast_forward_bf16
    from nnunet_ataxia.trainers.losses import PaperSoftDiceLoss

    torch.manual_seed(seed)
    net = getattr(architectures, network)(1, 3, dropout_placement="output")
    if precision == "bf16":
        autocast_forward_bf16(net)
    optimizer = torch.optim.Adam(net.parameters())
    loss_fn = PaperSoftDiceLoss()
    order = np.random.default_rng(seed).integers(0, n_train, iterations)
    net.train()
    t0 = time.perf_counter()
    for i in order:
        image, label = cases[i]
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(net(image), label)
        loss.backward()
        optimizer.step()
    seconds = (time.perf_counter() - t0) / iterations
    net.eval()
    with torch.no_grad():
        dice = [hard_dice(net(image), label, 3) for image, label in cases[n_train:]]
    return {"precision": precision, "s_per_iteration": seconds, "final_loss": float(loss.detach()),
            "val_dice": float(np.mean(dice))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--network", default="M1UNet", choices=["M1UNet", "M2InceptionUNet"])
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--cases", type=int, default=8, help="generated volumes; the last quarter validates")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tolerance", type=float, default=0.01)
    args = parser.parse_args()
    from nnunet_ataxia.trainers.cpu_speed import cpu_has_native_bf16

    cases = make_cases(args.cases, args.seed)
    n_train = args.cases - max(args.cases // 4, 1)
    rows = [train(args.network, p, cases, n_train, args.iterations, args.seed) for p in ("fp32", "bf16")]
    difference = abs(rows[0]["val_dice"] - rows[1]["val_dice"])
    print(f"\n{args.network}, {args.iterations} iterations of batch 1 on {n_train} generated {SHAPE} volumes, "
          f"{len(cases) - n_train} validation volumes, seed {args.seed}, {torch.get_num_threads()} threads, "
          f"native bf16: {cpu_has_native_bf16()}\n")
    print("| precision | s / iteration | final training loss | validation Dice (mean of 2 classes) |")
    print("|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['precision']} | {r['s_per_iteration']:.3f} | {r['final_loss']:.4f} | {r['val_dice']:.4f} |")
    verdict = "within" if difference <= args.tolerance else "NOT within"
    print(f"\n|Dice(bf16) - Dice(fp32)| = {difference:.4f}: {verdict} {args.tolerance}")
    raise SystemExit(0 if difference <= args.tolerance else 1)


if __name__ == "__main__":
    main()
