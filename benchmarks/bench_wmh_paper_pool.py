"""Memory and speed of the paper recipe's balanced pool (``nnunet_ataxia/trainers/wmh_pixel_pool.py``).

Writes N generated preprocessed WMH cases of realistic size (10 channels, default 48x200x170 voxels after nnU-Net's
crop, ~1 % lesion voxels of the brain) with nnU-Net's own blosc2 writer and chunking (2d patch = one slice), then,
side by side in one run:

- builds the pool (two passes over the cases) and reports its size, bytes per sample, the peak memory traced while
  building (``tracemalloc``: numpy and blosc2 buffers), and the same layout for the paper's 3.88 M samples, next to
  what storing the patches themselves would take;
- reads mini-batches of 128 patches from the memory-mapped cases (SS: one scale; MSWS: three scales) and times one
  CPU training step (forward + backward + RMSprop) of the same network on the same batch: the ratio says whether
  reading the pool keeps up with the network.

    python benchmarks/bench_wmh_paper_pool.py                    # 6 cases, 10 timed batches
    python benchmarks/bench_wmh_paper_pool.py --cases 20 --shape 48 200 170 --batches 20
"""
from __future__ import annotations

import argparse
import math
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

PAPER_SAMPLES = 3_880_000   # Ghafoorian et al. §2.3: training samples drawn from 378 cases


def write_cases(folder: Path, n: int, shape: tuple[int, int, int], seed: int = 0) -> list[str]:
    from nnunetv2.training.dataloading.nnunet_dataset import comp_blosc2_params, nnUNetDatasetBlosc2

    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, s, dtype=np.float32) for s in shape], indexing="ij")
    brain = (y / 0.95) ** 2 + (x / 0.9) ** 2 + (z / 1.1) ** 2 <= 1
    ids = []
    for i in range(n):
        data = np.zeros((10, *shape), np.float32)
        for c in range(2):   # smooth anatomy-like contrast + noise, z-scored inside the brain
            smooth = ndimage.zoom(rng.normal(size=(6, 12, 12)), np.array(shape) / (6, 12, 12), order=1)
            img = smooth + 0.2 * rng.normal(size=shape)
            data[c] = np.where(brain, (img - img[brain].mean()) / img[brain].std(), 0)
        for c, f in enumerate((x, y, z, np.abs(x + 0.3), np.abs(x - 0.3), 1 - np.sqrt(x ** 2 + y ** 2),
                               np.abs(x), np.exp(-(x ** 2 + y ** 2) * 4))):
            data[2 + c] = np.where(brain, (f - f[brain].min()) / np.ptp(f[brain]) * 0.99 + 0.01, 0)
        seg = np.where(brain, 0, -1).astype(np.int16)[None]
        blobs = ndimage.gaussian_filter(rng.normal(size=shape), 2.0)
        seg[0][brain & (blobs > np.quantile(blobs[brain], 0.99))] = 1
        blocks, chunks = comp_blosc2_params(data.shape, shape[1:], 4)
        blocks_s, chunks_s = comp_blosc2_params(seg.shape, shape[1:], 2)
        cid = f"case_{i:03d}"
        nnUNetDatasetBlosc2.save_case(data, seg, {}, str(folder / cid), chunks=chunks, blocks=blocks,
                                      chunks_seg=chunks_s, blocks_seg=blocks_s)
        ids.append(cid)
    return ids


def step_seconds(net, batch: dict, repeats: int) -> float:
    opt = torch.optim.RMSprop(net.parameters(), lr=1e-4, alpha=0.9, eps=1e-6)
    loss_fn = torch.nn.CrossEntropyLoss()
    net.train()
    times = []
    for _ in range(repeats + 1):
        t = time.perf_counter()
        opt.zero_grad()
        loss = loss_fn(net.forward_patches(batch["patches"], batch["location"]), batch["target"])
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t)
    return float(np.median(times[1:]))


def main() -> None:
    from nnunetv2.training.dataloading.nnunet_dataset import nnUNetDatasetBlosc2

    from nnunet_ataxia.architectures.wmh_location_networks import WMHLocationNet
    from nnunet_ataxia.architectures.wmh_patches import SCALE_FACTORS
    from nnunet_ataxia.trainers.wmh_pixel_pool import PatchReader, PoolBatches, build_pixel_pool

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=6)
    ap.add_argument("--shape", type=int, nargs=3, default=(48, 200, 170), help="z y x of a cropped case")
    ap.add_argument("--batches", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        ids = write_cases(Path(tmp), args.cases, tuple(args.shape))
        print(f"wrote {args.cases} cases of 10x{'x'.join(map(str, args.shape))} in {time.perf_counter() - t:.1f} s")
        dataset = nnUNetDatasetBlosc2(tmp, ids)
        use_mask = [True, True] + [False] * 8
        tracemalloc.start()
        t = time.perf_counter()
        pool = build_pixel_pool(dataset, ids, None, use_mask, seed=0)
        build_s = time.perf_counter() - t
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        case_mb = 10 * math.prod(args.shape) * 4 / 2 ** 20
        per = pool.nbytes / len(pool)
        print(f"\npool: {len(pool):,} samples ({pool.lesion_voxels:,} lesion voxels in {args.cases} cases), "
              f"{pool.nbytes / 2 ** 20:.2f} MiB = {per:.0f} B/sample; built in {build_s:.1f} s "
              f"({build_s / args.cases:.2f} s/case); peak traced memory while building {peak / 2 ** 20:.0f} MiB "
              f"(one case = {case_mb:.0f} MiB)\n")
        print("| layout | bytes/sample | paper's 3.88 M samples |")
        print("| --- | ---: | ---: |")
        print(f"| coordinates (this pool) | {per:.0f} | {PAPER_SAMPLES * per / 2 ** 20:,.0f} MiB |")
        for name, scales in (("SS", 1), ("multi-scale", 3)):
            b = scales * 2 * 32 * 32 * 4 + 8 * 4
            print(f"| {name} patches, float32 | {b:,} | {PAPER_SAMPLES * b / 2 ** 30:,.1f} GiB |")
        print("\n| network | read 128 patches (s) | train step on them (s) | read / step |")
        print("| --- | ---: | ---: | ---: |")
        for variant, scales in (("SS", (1,)), ("MSWS", SCALE_FACTORS)):
            batches = PoolBatches(PatchReader(dataset, pool, scales, use_mask), 128, shuffle=True, seed=0)
            next(batches)   # open the memory-mapped cases once
            t = time.perf_counter()
            for _ in range(args.batches):
                batch = next(batches)
            read_s = (time.perf_counter() - t) / args.batches
            net = WMHLocationNet(variant, use_location=True)
            step_s = step_seconds(net, batch, repeats=3)
            print(f"| {variant}+Loc | {read_s:.3f} | {step_s:.3f} | {read_s / step_s:.2f} |")


if __name__ == "__main__":
    main()
