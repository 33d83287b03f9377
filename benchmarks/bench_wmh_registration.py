"""Affine vs affine + B-spline MNI registration of the WMH pipeline: time per case and accuracy on generated data.

Each generated case is a FLAIR whose anatomy is the MNI152 template moved by a known affine and a known smooth
non-linear deformation (``make_synthetic_case(warp_mm=...)``). Both registrations run side by side on the same case
(FLAIR-only mode: the FLAIR itself is registered, as for clinical scans), with the pipeline's default settings unless
told otherwise. Printed per case and in total: wall and CPU seconds (CPU = this process's user + system time, the
honest figure on a shared machine), the error of the FLAIR->MNI map against the truth over the brain (mean and 95th
percentile, mm) and the Dice of the atlas lateral ventricles carried to the FLAIR by the found vs the true map.

Run (niced on a shared machine):
    OMP_NUM_THREADS=1 nice -n 19 python benchmarks/bench_wmh_registration.py --cases 3 --threads 1
"""
from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace

import numpy as np
import SimpleITK as sitk

from nnunet_ataxia.preprocessing.wmh_mni_map import MNIMap
from nnunet_ataxia.preprocessing.wmh_pipeline import WMHOptions, mni_template, register_to_mni
from nnunet_ataxia.preprocessing.wmh_ventricles import warp_atlas_ventricles
from nnunet_ataxia.synthesis.wmh_cases import make_synthetic_case


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / max(1.0, float(a.sum() + b.sum()))


def _timed(fn):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="SimpleITK threads")
    parser.add_argument("--mni-spacing", type=float, default=WMHOptions().mni_spacing_mm)
    parser.add_argument("--warp-mm", type=float, default=4.0, help="size of the generated deformation")
    parser.add_argument("--spacing", type=float, nargs=3, default=(1.0, 1.0, 3.0), help="FLAIR voxel size (x y z)")
    defaults = WMHOptions()
    parser.add_argument("--mesh", type=float, default=defaults.bspline_mesh_mm, help="B-spline control spacing (mm)")
    parser.add_argument("--samples", type=int, default=defaults.bspline_samples, help="B-spline metric samples")
    parser.add_argument("--iterations", type=int, default=defaults.bspline_iterations, help="B-spline iterations")
    parser.add_argument("--levels", type=float, nargs="+", default=defaults.bspline_levels_mm,
                        help="B-spline pyramid: template resolution per level (mm)")
    args = parser.parse_args()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(args.threads)
    options = WMHOptions(mni_spacing_mm=args.mni_spacing, bspline_mesh_mm=args.mesh, bspline_samples=args.samples,
                         bspline_iterations=args.iterations, bspline_levels_mm=tuple(args.levels))
    print(f"load average before: {os.getloadavg()}  cpus: {os.cpu_count()}  SimpleITK threads: {args.threads}")
    print(f"FLAIR {tuple(args.spacing)} mm, warp {args.warp_mm} mm, template {args.mni_spacing} mm, "
          f"B-spline mesh {options.bspline_mesh_mm} mm, levels {options.bspline_levels_mm} mm, "
          f"{options.bspline_iterations} iterations, {options.bspline_samples} samples")
    mask = mni_template(1.0)[1]
    header = f"{'case':>4} {'method':>8} {'wall s':>8} {'cpu s':>8} {'err mean':>9} {'err p95':>8} {'vent Dice':>9}"
    print(header)
    totals = {"affine": [], "bspline": []}
    for seed in range(args.cases):
        case = make_synthetic_case(seed=100 + seed, flair_spacing=tuple(args.spacing), warp_mm=args.warp_mm)
        flair, truth = case["flair"], case["flair_to_mni"]
        brain = sitk.GetArrayFromImage(sitk.Resample(mask, flair, truth, sitk.sitkNearestNeighbor, 0)) > 0
        field = sitk.TransformToDisplacementField(truth, sitk.sitkVectorFloat64, flair.GetSize(), flair.GetOrigin(),
                                                  flair.GetSpacing(), flair.GetDirection())
        true_pts = MNIMap(np.eye(4)).mni_points(flair) + np.moveaxis(sitk.GetArrayFromImage(field), -1, 0)
        true_l, true_r = warp_atlas_ventricles(flair, truth)
        for method in ("affine", "bspline"):
            (mni_map, kind), wall, cpu = _timed(
                lambda flair=flair, method=method: register_to_mni(flair, replace(options, registration=method)))
            err = np.linalg.norm(mni_map.mni_points(flair)[:, brain] - true_pts[:, brain], axis=0)
            left, right = warp_atlas_ventricles(flair, mni_map.to_mni())
            dice = (_dice(left, true_l) + _dice(right, true_r)) / 2
            totals[method].append((wall, cpu, err.mean(), np.percentile(err, 95), dice))
            print(f"{seed:>4} {kind:>8} {wall:8.1f} {cpu:8.1f} {err.mean():9.2f} {np.percentile(err, 95):8.2f} "
                  f"{dice:9.3f}", flush=True)
    a, b = (np.array(totals[m]) for m in ("affine", "bspline"))
    print(f"mean over {args.cases} case(s):")
    for name, t in (("affine", a), ("bspline", b)):
        print(f"  {name:>8}: wall {t[:, 0].mean():.1f} s, cpu {t[:, 1].mean():.1f} s per case; error mean "
              f"{t[:, 2].mean():.2f} mm, p95 {t[:, 3].mean():.2f} mm; ventricle Dice {t[:, 4].mean():.3f}")
    print(f"  B-spline / affine: cpu time x{b[:, 1].mean() / a[:, 1].mean():.2f}, "
          f"mean error x{b[:, 2].mean() / a[:, 2].mean():.2f}")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
