"""Side-by-side CPU benchmark: M1, M2 and nnU-Net's default 3d_fullres U-Net on the papers' 96×128×128 patch.

The default network is built from the plans that nnU-Net's own default planner (``ExperimentPlanner``) writes for a
generated 1 mm dataset of that size. For each network, in a fresh subprocess (so peak memory is its own): parameters,
seconds per training step (batch 2: forward, loss, backward, optimizer step), seconds per inference pass (batch 1,
no grad), and the peak resident memory. Prints a Markdown table with ratios to the default network.

M1/M2 are timed in float32 and, where the CPU has native bf16 (or with ``--bf16``), also with the trainers' bf16
autocast (``nnunet_ataxia.trainers.cpu_speed``); nnU-Net's default network runs in float32, as nnU-Net runs it on a
CPU (it autocasts only on CUDA). Threads: PyTorch's default (all cores), as ``nnUNetv2_train -device cpu``.

    python benchmarks/bench_networks.py            # 1 warm-up + best of 2 timed steps per network
    python benchmarks/bench_networks.py --repeats 1 --bf16
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PATCH = (96, 128, 128)
NETWORKS = ("M1UNet", "M2InceptionUNet", "nnU-Net default 3d_fullres")
DEFAULT = NETWORKS[-1]


def default_plans_architecture(workdir: Path) -> dict:
    """Plan a generated 1 mm dataset of 96×128×128 images with nnU-Net's default ExperimentPlanner."""
    os.environ.update(nnUNet_raw=str(workdir / "raw"), nnUNet_preprocessed=str(workdir / "pre"),
                      nnUNet_results=str(workdir / "res"))
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from nnunetv2.experiment_planning.plan_and_preprocess_api import (
        extract_fingerprint_dataset,
        plan_experiment_dataset,
    )
    from synthetic_data import write_toy_cerebellum_dataset

    write_toy_cerebellum_dataset(workdir / "raw", 989, n_cases=3, shape_zyx=PATCH, name="BenchDefault")
    extract_fingerprint_dataset(989, num_processes=1, verbose=False, show_progress_bar=False)
    plans, _ = plan_experiment_dataset(989)
    return plans["configurations"]["3d_fullres"]


def measure(network: str, config_file: str, repeats: int, precision: str = "fp32") -> dict:
    import torch

    torch.manual_seed(0)
    if network == "M1UNet":
        from nnunet_ataxia.architectures import M1UNet as cls
        net, deep_supervision = cls(1, 3), False
    elif network == "M2InceptionUNet":
        from nnunet_ataxia.architectures import M2InceptionUNet as cls
        net, deep_supervision = cls(1, 3), False
    else:
        from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
        config = json.loads(Path(config_file).read_text())
        arch = config["architecture"]
        net = get_network_from_plans(arch["network_class_name"], arch["arch_kwargs"], arch["_kw_requires_import"],
                                     1, 3, allow_init=True, deep_supervision=True)
        deep_supervision = True
    params = sum(p.numel() for p in net.parameters())
    if precision == "bf16":
        from nnunet_ataxia.trainers.cpu_speed import autocast_forward_bf16

        autocast_forward_bf16(net)
    optimizer = torch.optim.SGD(net.parameters(), lr=1e-2, momentum=0.99, nesterov=True)
    x = torch.randn(2, 1, *PATCH)
    y = torch.randint(0, 3, (2, *PATCH))
    ce = torch.nn.CrossEntropyLoss()

    def train_step():
        optimizer.zero_grad(set_to_none=True)
        out = net(x)
        out = out[0] if deep_supervision else out  # full-resolution head (the others are tiny)
        ce(out, y).backward()
        optimizer.step()

    def best(fn) -> float:
        fn()  # warm-up
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    net.train()
    train_s = best(train_step)
    net.eval()
    with torch.no_grad():
        infer_s = best(lambda: net(x[:1]))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"network": network, "precision": precision, "parameters": params, "train_step_s": train_s,
            "inference_s": infer_s, "peak_memory_mb": peak_mb, "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--bf16", action="store_true",
                        help="also time M1/M2 with bf16 autocast on a CPU without native bf16 (emulated, slow)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="fp32", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(args.worker, args.config, args.repeats, args.precision)))
        return
    from nnunet_ataxia.trainers.cpu_speed import cpu_has_native_bf16

    native_bf16 = cpu_has_native_bf16()
    runs = [(n, "fp32") for n in NETWORKS]
    if native_bf16 or args.bf16:
        runs[2:2] = [(n, "bf16") for n in NETWORKS[:2]]
    with tempfile.TemporaryDirectory() as tmp:
        config = default_plans_architecture(Path(tmp))
        config_file = Path(tmp) / "config.json"
        config_file.write_text(json.dumps(config))
        rows = []
        for network, precision in runs:
            out = subprocess.run([sys.executable, __file__, "--worker", network, "--config", str(config_file),
                                  "--repeats", str(args.repeats), "--precision", precision],
                                 capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    ref = rows[-1]
    print(f"\nCPU, {rows[0]['threads']} threads, native bf16: {native_bf16}; patch {PATCH} (z, y, x), 3 output "
          f"classes; default plans patch {config['patch_size']}; timings: best of {args.repeats} after one "
          f"warm-up\n")
    print("| network | precision | parameters | train step (batch 2) | speed-up vs default | inference (batch 1) "
          "| speed-up vs default | peak memory |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['network']} | {r['precision']} | {r['parameters']:,} | {r['train_step_s']:.2f} s | "
              f"{ref['train_step_s'] / r['train_step_s']:.1f}× | {r['inference_s']:.2f} s | "
              f"{ref['inference_s'] / r['inference_s']:.1f}× | {r['peak_memory_mb']:,.0f} MB |")


if __name__ == "__main__":
    main()
