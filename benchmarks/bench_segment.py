"""Per-stage time of ``nnunet-ataxia segment`` on generated 1 mm native subjects (CPU, no mirroring), with Dice.

Each subject is a held-out pseudo-subject of :func:`nnunet_ataxia.synthesis.synthetic_subjects.make_native_subject`
(random pose, head size, orientation, voxel size; ground truth in native space). The subject goes through the real
:func:`nnunet_ataxia.inference.subject.segment_subject` once per setting; its stages are timed by wrapping the
functions it calls (wall and CPU seconds; CPU = all threads of this process):

    read, n4, registration, rest of preprocessing (resample, skull strip, equalize, crop, write, registration
    check), prediction, mapping back (probabilities -> native labels), qc, writing (masks, MNI prediction, record)

Settings compared side by side on the same subjects: ``segment`` (its defaults: N4 fitted on the image shrunk 6x,
the registration aligns a 2 mm copy of the T1) and ``paper`` (``preprocess-mri``'s: shrink 4, the full-resolution
T1). Dice is measured against the native ground truth, for the default mapping back (class probabilities) and for
nearest-neighbour labels.

    python benchmarks/bench_segment.py --cases 2 --threads 2            # the shipped pretrained model
    python benchmarks/bench_segment.py -m MODEL_FOLDER --settings segment
"""
from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import time
from pathlib import Path


def _dice(a, b, value) -> float:
    import numpy as np

    x, y = a == value, b == value
    denom = np.count_nonzero(x) + np.count_nonzero(y)
    return 2.0 * np.count_nonzero(x & y) / denom if denom else 1.0


def _wrap(module, name: str, key: str, log: dict) -> None:
    original = getattr(module, name)

    @functools.wraps(original)
    def timed(*args, **kwargs):
        w, c = time.perf_counter(), time.process_time()
        try:
            return original(*args, **kwargs)
        finally:
            wall, cpu = log.setdefault(key, [0.0, 0.0])
            log[key] = [wall + time.perf_counter() - w, cpu + time.process_time() - c]

    setattr(module, name, timed)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1, help="generated subjects")
    parser.add_argument("--first-seed", type=int, default=None, help="default: the held-out seed range")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (torch and SimpleITK)")
    parser.add_argument("-m", "--model-folder", default=None, help="default: the shipped pretrained model")
    parser.add_argument("--settings", nargs="+", default=["segment", "paper"], choices=["segment", "paper"])
    args = parser.parse_args(argv)

    import numpy as np
    import SimpleITK as sitk
    import torch

    from nnunet_ataxia.dataset_conversion.Dataset510_SynthCerebellumBrainstem import HELD_OUT_SEED_OFFSET
    from nnunet_ataxia.inference import subject as subj
    from nnunet_ataxia.inference.model import load_predictor, model_labels, resolve_model
    from nnunet_ataxia.io.templates import desikan_killiany_atlas
    from nnunet_ataxia.preprocessing import mri_pipeline
    from nnunet_ataxia.preprocessing.native_space import load_case_transform, map_to_native
    from nnunet_ataxia.synthesis.synthetic_subjects import aseg_to_targets, make_native_subject

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(args.threads)
    torch.set_num_threads(args.threads)
    log: dict = {}
    _wrap(subj, "load_native_t1", "read", log)
    _wrap(mri_pipeline, "bias_correct", "n4", log)
    _wrap(mri_pipeline, "register_to_mni", "registration", log)
    _wrap(subj, "preprocess_t1_case", "preprocessing", log)
    _wrap(subj, "check_case_registration", "check", log)
    _wrap(subj, "predict_probabilities", "prediction", log)
    _wrap(subj, "probabilities_to_native", "mapping", log)
    _wrap(subj, "qc_picture", "qc", log)

    tmp = Path(tempfile.mkdtemp(prefix="bench_segment_"))
    w, c = time.perf_counter(), time.process_time()
    spec = resolve_model(model_folder=args.model_folder, cache_dir=tmp / "model")
    predictor = load_predictor(spec, mirror=False, device="cpu")
    labels = model_labels(spec.folder)
    load_wall, _load_cpu = time.perf_counter() - w, time.process_time() - c
    settings = {"segment": subj.SubjectOptions(),
                "paper": subj.SubjectOptions(n4_shrink_factor=4, moving_spacing_mm=None)}
    # registration accuracy without a model: the subject's true labels brought onto the crop by the registration,
    # against the template's own labels there (limited by the subject's random deformation, equal for all settings)
    crop = mri_pipeline.crop_reference()
    atlas = aseg_to_targets(sitk.GetArrayFromImage(sitk.Resample(
        desikan_killiany_atlas(), crop, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt16)))
    first = HELD_OUT_SEED_OFFSET + 900 if args.first_seed is None else args.first_seed
    stages = ["read", "n4", "registration", "rest", "prediction", "mapping", "qc", "writing"]
    rows = {name: [] for name in args.settings}
    for i in range(args.cases):
        t1, truth, params = make_native_subject(first + i)
        path = tmp / f"subject_{i}.nii.gz"
        sitk.WriteImage(t1, str(path))
        truth_arr = sitk.GetArrayFromImage(truth)
        print(f"subject {i}: seed {first + i}, size {t1.GetSize()}, spacing {t1.GetSpacing()}, "
              f"{params.appearance['orientation']}, {'with' if params.skull else 'without'} skull, "
              f"group {params.group}", flush=True)
        for name in args.settings:
            log.clear()
            w, c = time.perf_counter(), time.process_time()
            case_dir = tmp / name / f"subject_{i}"
            subj.segment_subject(path, f"subject_{i}", case_dir, predictor, labels, settings[name])
            total = [time.perf_counter() - w, time.process_time() - c]
            seg = sitk.GetArrayFromImage(sitk.ReadImage(str(case_dir / f"subject_{i}_seg.nii.gz")))
            nearest = sitk.GetArrayFromImage(map_to_native(case_dir / "mni" / f"subject_{i}_seg_mni.nii.gz",
                                                           case_dir / "transform"))
            times = {k: log.get(k, [0.0, 0.0]) for k in stages}
            pre = log["preprocessing"]
            times["rest"] = [pre[j] - log["n4"][j] - log["registration"][j] + log["check"][j] for j in (0, 1)]
            timed = [sum(times[k][j] for k in stages if k != "writing") for j in (0, 1)]
            times["writing"] = [total[j] - timed[j] for j in (0, 1)]  # masks, MNI prediction, segment.json
            tfm, _ = load_case_transform(case_dir / "transform")
            on_crop = sitk.GetArrayFromImage(sitk.Resample(truth, crop, tfm, sitk.sitkNearestNeighbor, 0,
                                                           sitk.sitkUInt8))
            rows[name].append({"times": times, "total": total,
                               "dice_registration": [_dice(on_crop, atlas, 1), _dice(on_crop, atlas, 2)],
                               "dice": [_dice(seg, truth_arr, 1), _dice(seg, truth_arr, 2)],
                               "dice_nearest": [_dice(nearest, truth_arr, 1), _dice(nearest, truth_arr, 2)]})
            r = rows[name][-1]
            print(f"  {name}: {total[0]:.1f} s wall, {total[1]:.1f} s CPU; Dice cerebellum {r['dice'][0]:.3f}, "
                  f"brainstem {r['dice'][1]:.3f}", flush=True)

    load = os.getloadavg()
    print(f"\nCPU, {args.threads} threads, {args.cases} generated 1 mm subject(s), no mirroring; model "
          f"{spec.folder.name} loaded once in {load_wall:.1f} s; load average {load[0]:.1f} at the end\n")
    header = "| stage | " + " | ".join(f"{n} wall | {n} CPU" for n in args.settings) + " |"
    print(header)
    print("|---" + "|---:" * (2 * len(args.settings)) + "|")
    for stage in stages + ["total"]:
        cells = []
        for name in args.settings:
            vals = [r["total"] if stage == "total" else r["times"][stage] for r in rows[name]]
            cells += [f"{np.mean([v[0] for v in vals]):.1f} s", f"{np.mean([v[1] for v in vals]):.1f} s"]
        print(f"| {stage} | " + " | ".join(cells) + " |")
    print("\n| Dice cerebellum / brainstem (mean) | " + " | ".join(args.settings) + " |")
    print("|---" + "|---:" * len(args.settings) + "|")
    for key, what in (("dice", "native masks vs native truth (probabilities mapped back, default)"),
                      ("dice_nearest", "native masks vs native truth (nearest-neighbour labels)"),
                      ("dice_registration", "registration only: truth on the crop vs the template's labels")):
        cells = []
        for name in args.settings:
            d = np.mean([r[key] for r in rows[name]], axis=0)
            cells.append(f"{d[0]:.3f} / {d[1]:.3f}")
        print(f"| {what} | " + " | ".join(cells) + " |")
    print(f"\n(outputs in {tmp})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
