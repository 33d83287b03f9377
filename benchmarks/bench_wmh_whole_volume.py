"""Whole-volume inference cost of the eight Ghafoorian WMH networks (SS ... MSWS+Loc), the way a user gets it.

For each network (random weights, eval mode) and one generated brain-like volume (Z slices of H x W, 10 channels:
T1, FLAIR, 8 location maps; zeros outside an ellipsoidal brain), first cropped the way ``nnUNetv2_predict``'s
preprocessing crops every case (nnU-Net's ``crop_to_nonzero``: the bounding box of the voxels where any channel is
non-zero; ``--no-crop`` skips it), two timings, each in its own subprocess (so that the peak memory is that
network's alone and no cache is shared):

* ``dense``: the network's dense form (``WMHLocationNet.forward``) over all slices, ``--batch`` slices per pass,
  after a one-slice warm-up that builds the cached FC1 kernel spectra (its cost is printed apart: ``first``);
* ``nnunet``: nnU-Net's own predictor, ``nnUNetPredictor.predict_logits_from_preprocessed_data`` on the
  preprocessed (C, Z, H, W) array with a ``2d`` configuration whose patch is the whole H x W slice (what
  ``nnUNetv2_plan_and_preprocess`` plans for H x W slices: the 2d patch starts at the median in-plane shape, clipped
  to a 2048**2-pixel budget). This is ``nnUNetv2_predict``'s network part: one tile per slice, batch 1, Gaussian
  weighting (a no-op with a single tile, up to float16 rounding), the state dict loaded once per volume (the FC1
  spectra, built once in this fresh process, are included), test-time mirroring only with ``--tta`` (4 network
  passes per slice). Reading, the rest of preprocessing and export of the files are not included.

MSEF / MSEF+Loc have no dense form (the patch classifier runs at every pixel): only ``--msef-slices`` slices are
timed and the per-volume figure is extrapolated (marked ``*``). Peak memory: the subprocess's peak resident set
(``ru_maxrss``) and its increase during inference (CPU), or ``torch.cuda.max_memory_allocated`` (CUDA).
Both forms' outputs are compared: the logits must agree within nnU-Net's float16 rounding (it weights them by its
Gaussian map and accumulates in float16; checked where those products stay normal float16 numbers, i.e. all but the
slice's outer corners), and the max difference of the probabilities over every pixel (max |dp|) is printed.

    python benchmarks/bench_wmh_whole_volume.py                              # 256x256x48, 2 CPU threads, all eight
    python benchmarks/bench_wmh_whole_volume.py --device cuda --batch 16
    python benchmarks/bench_wmh_whole_volume.py --networks MSWS+Loc SS --slices 4 --modes dense
    python benchmarks/bench_wmh_whole_volume.py --networks MSWS+Loc --fft-tile 25       # the earlier tile, to compare
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

import numpy as np
import torch

from nnunet_ataxia.architectures.wmh_location_networks import NUM_LOCATION_FEATURES, WMHLocationNet

NETWORKS = ("SS", "SS+Loc", "MSEF", "MSEF+Loc", "MSIW", "MSIW+Loc", "MSWS", "MSWS+Loc")
TARGET_NETWORK, TARGET_S = "MSWS+Loc", 60.0


def brain_volume(z: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """(Z, 10, H, W) float32: z-scored T1 and FLAIR with a few bright lesions and 8 smooth location maps in [0, 1],
    all zero outside an ellipsoidal brain (semi-axes 0.45 H, 0.38 W, 0.48 Z of the volume)."""
    rng = np.random.default_rng(seed)
    centres = [(np.arange(n) + 0.5) / n * 2 - 1 for n in (z, h, w)]          # voxel centres in (-1, 1)
    zz, yy, xx = np.meshgrid(*centres, indexing="ij")
    r = np.sqrt((zz / 0.96) ** 2 + (yy / 0.9) ** 2 + (xx / 0.76) ** 2)
    brain = r < 1
    t1 = 1.0 - 0.3 * r + 0.05 * rng.standard_normal(r.shape)
    flair = 0.6 + 0.2 * r + 0.05 * rng.standard_normal(r.shape)
    for _ in range(12):                                   # periventricular-ish bright blobs on FLAIR
        c = rng.uniform(-0.5, 0.5, 3)
        flair += 0.8 * np.exp(-(((zz - c[0]) / 0.1) ** 2 + ((yy - c[1]) / 0.05) ** 2 + ((xx - c[2]) / 0.05) ** 2))
    images = [t1, flair]
    images = [np.where(brain, (a - a[brain].mean()) / a[brain].std(), 0) for a in images]
    loc = [(xx + 1) / 2, (yy + 1) / 2, (zz + 1) / 2, 1 - r, np.abs(xx), np.abs(yy - 0.2), 1 - np.abs(zz), r ** 2]
    assert len(loc) == NUM_LOCATION_FEATURES
    loc = [np.where(brain, np.clip(a, 0, 1), 0) for a in loc]
    return torch.from_numpy(np.stack(images + loc, 1).astype(np.float32))   # (Z, 10, H, W)


def _network(name: str) -> WMHLocationNet:
    """Random-weight network in eval mode (seed 0), its last layer scaled so that probabilities vary."""
    torch.manual_seed(0)
    net = WMHLocationNet(name.split("+")[0], use_location=name.endswith("+Loc")).eval()
    with torch.no_grad():    # Glorot weights with zero biases give p ~ 0.5 everywhere: spread the outputs
        net.fc3.weight.mul_(5)
        net.fc3.bias.uniform_(-1, 1)
    return net


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def _timed(fn, device: torch.device):
    _sync(device)
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    _sync(device)
    return out, time.perf_counter() - wall, time.process_time() - cpu


def _dense(net: WMHLocationNet, vol: torch.Tensor, batch: int) -> torch.Tensor:
    return torch.cat([net(vol[z:z + batch]) for z in range(0, vol.shape[0], batch)])    # logits (Z, classes, H, W)


def _nnunet_predictor(net: WMHLocationNet, shape: tuple[int, int, int], tta: bool, device: torch.device):
    """nnU-Net's predictor around ``net`` with a 2d whole-slice configuration (as planned for H x W slices)."""
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
    z, h, w = shape
    n_img = net.num_image_channels
    channels = ["T1", "FLAIR"][2 - n_img:] + (["noNorm"] * NUM_LOCATION_FEATURES if net.use_location else [])
    config = {"data_identifier": "nnUNetPlans_2d", "preprocessor_name": "DefaultPreprocessor", "batch_size": 12,
              "patch_size": [h, w], "median_image_size_in_voxels": [h, w], "spacing": [1.0, 1.0],
              "normalization_schemes": ["ZScoreNormalization"] * n_img + ["NoNormalization"] * (len(channels) - n_img),
              "use_mask_for_norm": [False] * len(channels), "resampling_fn_data": "resample_data_or_seg_to_shape",
              "resampling_fn_seg": "resample_data_or_seg_to_shape", "resampling_fn_data_kwargs": {},
              "resampling_fn_seg_kwargs": {}, "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
              "resampling_fn_probabilities_kwargs": {}, "batch_dice": True,
              "architecture": {"network_class_name": "nnunet_ataxia.architectures.WMHLocationNet",
                               "arch_kwargs": {}, "_kw_requires_import": []}}
    plans = {"dataset_name": "Dataset999_WMHBench", "plans_name": "nnUNetPlans",
             "original_median_spacing_after_transp": [3.0, 1.0, 1.0], "original_median_shape_after_transp": [z, h, w],
             "image_reader_writer": "SimpleITKIO", "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
             "configurations": {"2d": config}, "experiment_planner_used": "ExperimentPlanner",
             "label_manager": "LabelManager", "foreground_intensity_properties_per_channel": {}}
    dataset_json = {"channel_names": {str(i): c for i, c in enumerate(channels)},
                    "labels": {"background": 0, "WMH": 1}, "numTraining": 1, "file_ending": ".nii.gz"}
    plans_manager = PlansManager(plans)
    predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=tta,
                                perform_everything_on_device=True, device=device, verbose=False,
                                verbose_preprocessing=False, allow_tqdm=False)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    predictor.manual_initialization(net, plans_manager, plans_manager.get_configuration("2d"), [state],
                                    dataset_json, "WMHLocationTrainer", (0, 1) if tta else None)
    return predictor


def worker(job: dict) -> dict:
    """One network, one mode, in a fresh process: times, CPU seconds, peak memory; probabilities saved to a file."""
    torch.set_num_threads(job["threads"])
    if job["fft_tile"]:
        WMHLocationNet.fft_tile = job["fft_tile"]     # overlap-save tile of the FC1 FFT path (dense and nnU-Net)
    device = torch.device(job["device"])
    z, h, w = job["shape"]
    name, mode = job["network"], job["mode"]
    vol = brain_volume(z, h, w)
    if job["crop"]:    # nnUNetv2_predict's preprocessing crops every case to the bounding box of its non-zero voxels
        from nnunetv2.preprocessing.cropping.cropping import crop_to_nonzero
        data, _, _ = crop_to_nonzero(vol.permute(1, 0, 2, 3).numpy())
        vol = torch.from_numpy(np.ascontiguousarray(data)).permute(1, 0, 2, 3).contiguous()
        z, h, w = vol.shape[0], vol.shape[2], vol.shape[3]
    net = _network(name).to(device)
    msef = name.startswith("MSEF")
    n_timed = min(z, job["msef_slices"]) if msef else z
    vol = vol[:n_timed].to(device)
    calls = [0]
    net.register_forward_pre_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    rss_before = _rss_mb()
    result = {"network": name, "mode": mode, "timed_slices": n_timed, "slices": z, "extrapolated": n_timed < z,
              "shape": [z, h, w]}
    with torch.inference_mode():
        if mode == "dense":
            if not msef:        # warm-up on one slice: builds the FC1 kernel spectra (nnU-Net pays it per volume)
                _, result["first_slice_s"], _ = _timed(lambda: net(vol[:1]), device)
            calls[0] = 0
            logits, wall, cpu = _timed(lambda: _dense(net, vol, job["batch"]), device)
        else:
            predictor = _nnunet_predictor(net, (z, h, w), job["tta"], device)
            data = vol.permute(1, 0, 2, 3).contiguous().cpu()                       # (C, Z, H, W) as nnU-Net has it
            logits, wall, cpu = _timed(lambda: predictor.predict_logits_from_preprocessed_data(data), device)
            logits = logits.permute(1, 0, 2, 3)                                       # (Z, classes, H, W)
    result.update(wall_s=wall, cpu_s=cpu, calls=calls[0], threads=torch.get_num_threads(),
                  peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, rss_before_mb=rss_before)
    if device.type == "cuda":
        result["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20
    np.save(job["logits_file"], logits.float().cpu().numpy())
    return result


def _run_worker(job: dict) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(job)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{job['network']} {job['mode']} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _compare_logits(dense: np.ndarray, nnunet: np.ndarray, tile: list[int]) -> dict:
    """Dense vs nnU-Net logits (Z, classes, H, W). nnU-Net multiplies the logits by its Gaussian importance map
    (float16, largest value 10), accumulates in float16 and divides by the map again: exact up to float16 rounding
    (a few 2**-11, relative) wherever logit x weight stays a normal float16 (>= 2**-14); in the slice's outer corners
    the weight is ~1e-6 and the products are subnormal, so nnU-Net's own output carries up to a few % of rounding
    there. The check covers the normal part; max |dp| (softmax) is over every pixel."""
    from nnunetv2.inference.sliding_window_prediction import compute_gaussian

    weight = compute_gaussian(tuple(tile), sigma_scale=1. / 8, value_scaling_factor=10, dtype=torch.float16,
                              device=torch.device("cpu")).float().numpy()
    normal = np.abs(dense) * weight >= 2 ** -14
    excess = np.abs(dense - nnunet) - (2 ** -9 * np.abs(dense) + 1e-4)
    dp = torch.softmax(torch.from_numpy(dense), 1) - torch.softmax(torch.from_numpy(nnunet), 1)
    return {"max_dp": float(dp.abs().max()), "logits_within_fp16": bool((excess[normal] <= 0).all()),
            "checked_fraction": float(normal.mean()), "max_logit": float(np.abs(dense).max())}


def _per_volume(r: dict) -> float:
    return r["wall_s"] * r["slices"] / r["timed_slices"]


def _memory(r: dict) -> str:
    if "cuda_peak_mb" in r:
        return f"{r['cuda_peak_mb']:.0f} (GPU)"
    return f"{r['peak_rss_mb']:.0f} (+{r['peak_rss_mb'] - r['rss_before_mb']:.0f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--networks", nargs="+", default=list(NETWORKS), choices=NETWORKS)
    parser.add_argument("--modes", nargs="+", default=["dense", "nnunet"], choices=["dense", "nnunet"])
    parser.add_argument("--slices", type=int, default=48, help="slices of the volume (Z)")
    parser.add_argument("--size", type=int, nargs=2, default=[256, 256], metavar=("H", "W"), help="slice size")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (torch.set_num_threads)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--batch", type=int, default=0, help="slices per dense pass (0: 4 on CPU, 16 on CUDA)")
    parser.add_argument("--msef-slices", type=int, default=1, help="slices timed for MSEF (then extrapolated)")
    parser.add_argument("--fft-tile", type=int, default=0,
                        help="WMHLocationNet.fft_tile (largest FC1 FFT output tile; 0: the library default, 32)")
    parser.add_argument("--tta", action="store_true", help="nnU-Net with test-time mirroring (axes 0, 1: x4)")
    parser.add_argument("--no-crop", dest="crop", action="store_false",
                        help="skip nnU-Net's crop to the non-zero bounding box (nnUNetv2_predict always crops)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device")
    batch = args.batch or (16 if args.device == "cuda" else 4)
    shape = (args.slices, *args.size)
    print(f"volume {shape[0]}x{shape[1]}x{shape[2]} (Z x H x W), 10 channels; device {args.device}, "
          f"{args.threads} CPU threads, dense batch {batch} slices, nnU-Net TTA {'on' if args.tta else 'off'}, "
          f"FC1 FFT tile {args.fft_tile or WMHLocationNet.fft_tile}; "
          f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)
    results: dict[tuple[str, str], dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.networks:
            for mode in args.modes:
                job = {"network": name, "mode": mode, "shape": shape, "threads": args.threads,
                       "device": args.device, "batch": batch, "msef_slices": args.msef_slices, "tta": args.tta,
                       "fft_tile": args.fft_tile, "crop": args.crop,
                       "logits_file": str(Path(tmp) / f"{name}_{mode}.npy")}
                r = results[name, mode] = _run_worker(job)
                if args.crop and len(results) == 1:
                    print(f"  nnU-Net's crop to the non-zero region: {shape[0]}x{shape[1]}x{shape[2]} -> "
                          f"{'x'.join(map(str, r['shape']))} (Z x H x W)", flush=True)
                print(f"  {name:<9} {mode:<6} {r['wall_s']:8.2f} s for {r['timed_slices']} slice(s) "
                      f"(cpu {r['cpu_s']:.1f} s, {r['calls']} network calls)", flush=True)
            if len(args.modes) == 2:
                a, b = (np.load(Path(tmp) / f"{name}_{m}.npy") for m in args.modes)
                results[name, "diff"] = _compare_logits(a, b, results[name, args.modes[0]]["shape"][1:])
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")

    ref = next((n for n in (TARGET_NETWORK, "SS") if (n, args.modes[0]) in results), None)
    print(f"\n{'network':<10}" + "".join(f"{m + ' s/vol':>14}{'x ' + ref:>14}{'peak MB (+inf.)':>18}"
                                         for m in args.modes)
          + f"{'first slice s':>15}" + (f"{'max |dp|':>11}" if len(args.modes) == 2 else ""))
    for name in args.networks:
        line = f"{name:<10}"
        for mode in args.modes:
            r = results[name, mode]
            t = _per_volume(r)
            line += f"{t:>13.1f}{'*' if r['extrapolated'] else ' '}{t / _per_volume(results[ref, mode]):>13.2f}x" \
                    f"{_memory(r):>18}"
        first = results.get((name, "dense"), {}).get("first_slice_s")
        line += f"{first:>15.2f}" if first is not None else f"{'-':>15}"
        if (name, "diff") in results:
            line += f"{results[name, 'diff']['max_dp']:>11.1e}"
        print(line)
    for name in args.networks:
        d = results.get((name, "diff"))
        if d is not None:
            print(f"{name}: dense vs nnU-Net logits within float16 rounding: "
                  f"{'yes' if d['logits_within_fp16'] else 'NO'} ({100 * d['checked_fraction']:.2f} % of the "
                  f"logits, where nnU-Net's float16 products stay normal; max |logit| {d['max_logit']:.1f})")
    if any(r.get("extrapolated") for r in results.values()):
        print(f"* extrapolated: MSEF has no dense form (patch classifier at every pixel); {args.msef_slices} of "
              f"{args.slices} slices timed, scaled linearly to the volume")
    print("first slice s: the dense form's first pass on one slice, which builds the cached FC1 kernel spectra "
          "(the nnU-Net form builds them in its first volume: included in its s/vol)")
    for mode in args.modes:
        r = results.get((TARGET_NETWORK, mode))
        if r is not None and args.device == "cpu" and tuple(args.size) == (256, 256):
            t = _per_volume(r) * 48 / args.slices
            verdict = "MET" if t <= TARGET_S else "MISSED"
            print(f"target {TARGET_NETWORK} <= {TARGET_S:.0f} s per 256x256x48 volume on {args.threads} CPU threads "
                  f"({mode}): {t:.1f} s{' (scaled from ' + str(args.slices) + ' slices)' if args.slices != 48 else ''}"
                  f" -> {verdict}")
    for name in args.networks:
        d = results.get((name, "diff"))
        assert d is None or d["logits_within_fp16"], \
            f"{name}: dense and nnU-Net logits differ by more than nnU-Net's float16 rounding (max |dp| {d['max_dp']})"
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
