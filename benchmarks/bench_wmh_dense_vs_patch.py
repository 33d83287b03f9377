"""Dense (fully convolutional) vs patch-by-patch inference of the same Ghafoorian WMH network on the same case.

Prints seconds per case side by side from one run for the dense form with FC1 in the frequency domain (the default
for slices this size), the dense form with FC1 as a direct 18x18 convolution, and patch-by-patch classification of
every pixel (the paper's way, large batches); asserts identical outputs (max |dp| <= 1e-5), and lists every variant's
parameter count next to the count derived by hand from the paper's layer sizes.

    python benchmarks/bench_wmh_dense_vs_patch.py                      # GPU: 8x128x128 case; CPU: 1x96x96
    python benchmarks/bench_wmh_dense_vs_patch.py --shape 2 96 96 --variant MSWS --loc --threads 2
"""
from __future__ import annotations

import argparse
import time

import torch

from nnunet_ataxia.architectures.wmh_location_networks import VARIANTS, WMHLocationNet, expected_parameter_count


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def dense_inference(net: WMHLocationNet, case: torch.Tensor, fc1_method: str = "auto") -> torch.Tensor:
    """(Z, 10, H, W) case -> (Z, K, H, W) probabilities, one dense pass per slice; FC1 by ``fc1_method``."""
    net.dense_fc1_method = fc1_method
    try:
        return torch.cat([torch.softmax(net(case[z:z + 1]), 1) for z in range(case.shape[0])])
    finally:
        net.dense_fc1_method = "auto"


def _timed(fn, device: torch.device) -> tuple[torch.Tensor, float]:
    _sync(device)
    t0 = time.perf_counter()
    out = fn()
    _sync(device)
    return out, time.perf_counter() - t0


def patch_inference(net: WMHLocationNet, case: torch.Tensor, batch: int) -> torch.Tensor:
    """The paper's way (``WMHLocationNet.forward_patchwise``): ``batch`` pixels' patches per forward pass."""
    location = case[:, 2:10] if net.use_location else None
    return torch.softmax(net.forward_patchwise(case[:, :2], location, chunk=batch), 1)


def main() -> int:
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", type=int, nargs=3, default=[8, 128, 128] if cuda else [1, 96, 96],
                        metavar=("Z", "H", "W"), help="case size (slices, rows, columns)")
    parser.add_argument("--variant", default="MSWS", choices=VARIANTS)
    parser.add_argument("--loc", action=argparse.BooleanOptionalAction, default=True, help="+Loc variant")
    parser.add_argument("--patch-batch", type=int, default=2048 if cuda else 1024)
    parser.add_argument("--direct", action=argparse.BooleanOptionalAction, default=True,
                        help="also time the dense form with FC1 as a direct convolution")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if cuda else "cpu")

    print("parameter counts (module vs hand-derived from the paper's layer sizes)")
    print(f"{'variant':<10}{'module':>14}{'hand':>14}")
    for variant in VARIANTS:
        for loc in (False, True):
            n = sum(p.numel() for p in WMHLocationNet(variant, use_location=loc).parameters())
            hand = expected_parameter_count(variant, loc)
            assert n == hand, f"{variant}: module {n} != hand {hand}"
            print(f"{variant + ('+Loc' if loc else ''):<10}{n:>14,}{hand:>14,}")

    torch.manual_seed(0)
    net = WMHLocationNet(args.variant, use_location=args.loc).to(device).eval()
    z, h, w = args.shape
    case = torch.randn(z, 10, h, w, device=device)
    case[:, 2:] = torch.rand(z, 8, h, w, device=device)
    name = args.variant + ("+Loc" if args.loc else "")
    with torch.no_grad():
        dense_inference(net, case[:1])            # warm-up; builds and caches the FC1 kernel spectra
        fft_used = any(net._use_fft_fc1(case[:1, :2], s) for s in net.scale_factors)
        dense, t_dense = _timed(lambda: dense_inference(net, case), device)
        rows = [(f"dense, FC1 {'FFT' if fft_used else 'direct'} (auto)", t_dense, dense)]
        if args.direct and fft_used:
            direct, t_direct = _timed(lambda: dense_inference(net, case, "direct"), device)
            rows.append(("dense, FC1 direct conv", t_direct, direct))
        patch, t_patch = _timed(lambda: patch_inference(net, case, args.patch_batch), device)
    print(f"\n{name} on a {z}x{h}x{w} case ({device.type}, {torch.get_num_threads()} CPU threads, "
          f"patch batch {args.patch_batch})")
    print(f"{'form':<30}{'s/case':>10}{'patch / form':>14}{'max |p - p_patch|':>20}")
    for label, t, probs in rows + [("patch-by-patch", t_patch, patch)]:
        diff = (probs - patch).abs().max().item()
        print(f"{label:<30}{t:>10.2f}{t_patch / t:>13.1f}x{diff:>20.2e}")
        assert diff <= 1e-5, f"{label} and patch-by-patch outputs differ by {diff}"
    print(f"speed-up dense vs patch-by-patch: {t_patch / t_dense:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
