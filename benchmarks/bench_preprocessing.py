"""Seconds per case of the paper's MRI preprocessing: N4, MNI registration and the rest, side by side.

Cases are demo pseudo-subjects (``nnunet_ataxia.demo.anatomy.make_pseudo_subject``: real MNI152 anatomy with a
random smooth deformation, pose, bias field, noise and contrast) at 1 mm, or, if the demo package is missing, the
template warped by a known affine and bias-corrupted (``nnunet_ataxia.synthesis.template_subjects``). Registration runs
against the full 1 mm template and, for comparison, a 2 mm one.

Run:  OMP_NUM_THREADS=1 python benchmarks/bench_preprocessing.py --cases 2 --voxel-mm 1
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk


def make_case(seed: int, voxel_mm: float) -> sitk.Image:
    try:
        from nnunet_ataxia.demo.anatomy import make_pseudo_subject
        return make_pseudo_subject(seed, "sca2" if seed % 2 else "control", voxel_mm=voxel_mm).t1
    except ImportError:
        from nnunet_ataxia.synthesis.template_subjects import known_affine, make_native_subject
        rs = np.random.default_rng(seed)
        tfm = known_affine(rotation_deg=rs.uniform(-10, 10, 3), translation_mm=rs.uniform(-8, 8, 3))
        return make_native_subject(voxel_mm, mni_to_native=tfm, bias_strength=0.5, noise_sd=50.0, seed=seed)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=2)
    parser.add_argument("--voxel-mm", type=float, default=1.0, help="voxel size of the generated native T1s")
    parser.add_argument("--threads", type=int, default=2, help="SimpleITK threads")
    args = parser.parse_args()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(args.threads)

    from nnunet_ataxia.preprocessing.mri_pipeline import preprocess_t1_case

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for seed in range(args.cases):
            t1 = make_case(seed, args.voxel_mm)
            path = tmp / f"case{seed}.nii.gz"
            sitk.WriteImage(t1, str(path))
            for template_mm in (1.0, 2.0):
                t0 = time.perf_counter()
                info = preprocess_t1_case(path, tmp / f"out{seed}.nii.gz", transform_dir=tmp / f"tr{seed}",
                                          registration_template_spacing_mm=template_mm, skull_strip=True)
                total = time.perf_counter() - t0
                t = info["timings_s"]
                rows.append((seed, t1.GetSize(), template_mm, t["n4"], t["registration"], t["rest"], total))
    print(f"{'case':>4} {'native size':>16} {'template':>8} {'N4 s':>7} {'regist. s':>9} {'rest s':>7} {'total s':>8}")
    for seed, size, tmm, n4, reg, rest, total in rows:
        print(f"{seed:>4} {str(size):>16} {tmm:>6.0f}mm {n4:>7.1f} {reg:>9.1f} {rest:>7.1f} {total:>8.1f}")
    full = [r for r in rows if r[2] == 1.0]
    fast = [r for r in rows if r[2] == 2.0]
    mean = lambda rs, i: float(np.mean([r[i] for r in rs]))  # noqa: E731
    print(f"mean per case, 1 mm template: N4 {mean(full, 3):.1f} s | registration {mean(full, 4):.1f} s | "
          f"rest {mean(full, 5):.1f} s | total {mean(full, 6):.1f} s")
    print(f"registration 2 mm template / 1 mm template: {mean(fast, 4) / mean(full, 4):.2f}x the time")


if __name__ == "__main__":
    main()
