"""Where the dense WMH forward spends its time on one slice, and what the FC1 FFT tile changes, in CPU seconds.

For one random (1, 10, N, N) slice and a random-weight network in eval mode (default MSWS+Loc, 256 x 256, 1 thread):

* the whole dense forward (``WMHLocationNet.forward``, FC1 spectra already cached) for each FFT tile given
  (``--tiles``; ``WMHLocationNet.fft_tile``, the largest FC1 output tile), measured side by side in one run, with the
  ratio to the first tile;
* with the library's default tile, per scale stream: the conv stack on its phase grids and conv stack + FC1
  (``_dense_fc1_fft``), and the time to build one FC1 kernel spectrum.

CPU seconds of this process (``time.process_time``) are used so that a machine shared with other jobs still gives
figures close to what a free core needs (wall time is printed too). Best of ``--repeat`` runs.

    python benchmarks/bench_wmh_slice_parts.py                        # MSWS+Loc, 256x256, tiles 25 and 32
    python benchmarks/bench_wmh_slice_parts.py --size 96 --tiles 25 32 47
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from nnunet_ataxia.architectures.wmh_fft_conv import fft_tile, kernel_spectrum, polyphase_split
from nnunet_ataxia.architectures.wmh_location_networks import WMHLocationNet
from nnunet_ataxia.architectures.wmh_patches import PATCH_SIZE, scale_padding


def _timed(fn, repeat: int) -> tuple[float, float]:
    """Best (CPU s, wall s) of ``repeat`` calls."""
    best = (float("inf"), float("inf"))
    for _ in range(repeat):
        c, w = time.process_time(), time.perf_counter()
        fn()
        best = min(best, (time.process_time() - c, time.perf_counter() - w))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--network", default="MSWS+Loc", help="SS, SS+Loc, MSIW(+Loc), MSWS(+Loc) (default MSWS+Loc)")
    parser.add_argument("--size", type=int, default=256, help="slice side N (default 256)")
    parser.add_argument("--tiles", type=int, nargs="+", default=[25, 32], help="FC1 FFT tiles to compare")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    variant, use_location = args.network.split("+")[0], args.network.endswith("+Loc")
    assert variant != "MSEF", "MSEF has no dense form (the patch classifier runs at every pixel)"
    net = WMHLocationNet(variant, use_location=use_location).eval()
    x = torch.rand(1, 10, args.size, args.size)
    default_tile = WMHLocationNet.fft_tile
    print(f"{args.network}, one {args.size}x{args.size} slice, {args.threads} thread(s), best of {args.repeat}")

    first = None
    with torch.no_grad():
        for tile in args.tiles:
            net.fft_tile = tile
            net(x)                                   # builds and caches the FC1 spectra for this tile
            cpu, wall = _timed(lambda: net(x), args.repeat)
            first = first or cpu
            grids = sorted({fft_tile((-(-args.size // s),) * 2, 18, tile)[0] for s in net.scale_factors})
            print(f"  FC1 tile <= {tile:3d} (tiles used {grids}): {cpu:6.2f} CPU s ({wall:6.2f} s wall), "
                  f"{first / cpu:4.2f}x the first")

        net.fft_tile = default_tile
        net(x)
        images = x[:, :net.num_image_channels]
        print(f"  per stream, library default tile {default_tile}:")
        for k, s in enumerate(net.scale_factors):
            before, after = scale_padding(s)
            a = F.pad(images, (before, after, before, after))
            if s > 1:
                a = polyphase_split(F.avg_pool2d(a, kernel_size=s, stride=1), s, (args.size, args.size), PATCH_SIZE)
            stack = net.conv_stacks[k if variant == "MSIW" else 0]
            conv, _ = _timed(lambda stack=stack, a=a: stack(a), args.repeat)
            both, _ = _timed(lambda k=k, s=s: net._dense_fc1_fft(images, k, s), args.repeat)
            print(f"    s = {s}: phase grids {tuple(a.shape)}: conv stack {conv:.2f} CPU s, conv stack + FC1 "
                  f"{both:.2f} CPU s")
        n = fft_tile((args.size,) * 2, 18, default_tile)[0] + 18 - 1      # FFT size: tile + kernel - 1
        spec, _ = _timed(lambda: kernel_spectrum(net._fc1_kernel(0), (n, n), torch.float32), 1)
        print(f"  one FC1 kernel spectrum (N = {n}): {spec:.2f} CPU s (built once per stream, kept while the "
              f"weights' values stay the same)")


if __name__ == "__main__":
    main()
