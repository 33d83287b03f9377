"""``nnunet-ataxia wmh-threshold``: Dice-maximizing threshold on validation probabilities, applied to a test set."""
from __future__ import annotations

import argparse

from nnunet_ataxia.utils.output_folders import add_overwrite_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--val", nargs="+",
                        help="validation probability folders (.npz from --npz / --save_probabilities); globs "
                             "such as 'nnUNet_results/.../fold_*/validation' are merged")
    parser.add_argument("--ref", nargs="+", help="reference label folders (labelsTr, labelsTs); 2 = ignore")
    parser.add_argument("--threshold", type=float, help="use this threshold instead of searching one on --val")
    parser.add_argument("--test", required=True, help="test probability folder (nnUNetv2_predict "
                                                      "--save_probabilities output)")
    parser.add_argument("--out", "-o", required=True,
                        help="output folder for <case>.nii.gz masks (written atomically; an existing folder must be "
                             "an earlier wmh-threshold output)")
    parser.add_argument("--brain-masks", nargs="*", default=[], help="brain-mask folder(s) <case>.nii.gz; only "
                                                                     "voxels inside count and are labelled")
    parser.add_argument("--images", nargs="*", default=[],
                        help="nnU-Net image folder(s): brain mask = location channels _0002.._0009 > 0")
    parser.add_argument("--reference-images", help="folder with <case>.nii.gz or <case>_0000.nii.gz giving the "
                                                   "output geometry when the test folder holds no .nii.gz/.pkl")
    parser.add_argument("--n-thresholds", type=int, default=101, help="thresholds 0..1 searched (default 101)")
    parser.add_argument("--criterion", choices=("pooled", "mean"), default="pooled",
                        help="maximize the overall (pooled) Dice, as the paper, or the mean per-case Dice")
    add_overwrite_argument(parser)


def validation_counts(val_specs, ref_dirs, brain_mask_dirs, image_dirs, thresholds):
    """Per-case threshold counts (N, T, 3) and case ids of merged validation probability folders."""
    from tqdm import tqdm

    from nnunet_ataxia.errors import InputError
    from nnunet_ataxia.evaluation.io import expand_folders
    from nnunet_ataxia.evaluation.wmh_statistics import list_probability_files, load_case, threshold_counts
    import numpy as np

    files = list_probability_files(expand_folders(val_specs))
    if not files:
        raise InputError(f"{', '.join(val_specs)}: no .npz probability files (train with --npz or predict "
                         f"with --save_probabilities)")
    counts = []
    for case, f in tqdm(sorted(files.items()), desc="threshold counts", disable=None):
        p, g, v = load_case(case, f, ref_dirs, brain_mask_dirs, image_dirs)
        counts.append(threshold_counts(p, g, thresholds, v))
    return np.stack(counts), sorted(files)


def output_geometry(case: str, test_dir, reference_images):
    """Geometry of nnU-Net's own prediction of ``case`` (or its .pkl properties, or a reference image)."""
    import pickle
    from pathlib import Path

    from nnunet_ataxia.errors import InputError
    from nnunet_ataxia.evaluation.io import Geometry, read_image

    nii = Path(test_dir) / f"{case}.nii.gz"
    if nii.is_file():
        return read_image(nii)[1]
    pkl = Path(test_dir) / f"{case}.pkl"
    if pkl.is_file():
        try:
            with open(pkl, "rb") as f:
                props = pickle.load(f)
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError, ValueError, TypeError,
                KeyError, MemoryError, OverflowError) as e:
            raise InputError(f"{pkl}: cannot read nnU-Net's properties file (corrupt or truncated: "
                             f"{type(e).__name__})") from None
        s = props.get("sitk_stuff") if isinstance(props, dict) else None
        shape = props.get("shape_before_cropping") if isinstance(props, dict) else None
        if s and shape is not None:
            return Geometry(tuple(int(x) for x in shape[::-1]), tuple(s["spacing"]), tuple(s["origin"]),
                            tuple(s["direction"]))
    if reference_images:
        for name in (f"{case}.nii.gz", f"{case}_0000.nii.gz"):
            if (Path(reference_images) / name).is_file():
                return read_image(Path(reference_images) / name)[1]
    raise InputError(f"{case}: no geometry for the output mask (no {nii.name} or {pkl.name} in {test_dir}"
                     f"{', no image in ' + str(reference_images) if reference_images else '; give --reference-images'})")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from nnunet_ataxia.errors import InputError
    from nnunet_ataxia.evaluation.io import write_image
    from nnunet_ataxia.evaluation.segmentation_eval import write_json
    from nnunet_ataxia.evaluation.wmh_statistics import best_threshold, brain_mask_for_case, dice_curve, \
        list_probability_files, read_probabilities, threshold_grid
    from nnunet_ataxia.evaluation.io import expand_folders
    from nnunet_ataxia.utils.output_folders import check_output_folder, output_folder

    inputs = [*(expand_folders(args.val) if args.val else []), *(args.ref or []), args.test, *args.brain_masks,
              *args.images, args.reference_images]
    guard = dict(inputs=inputs, overwrite=args.overwrite, recognize=("threshold.json",))
    check_output_folder(args.out, "wmh-threshold", **guard)
    info: dict = {"criterion": args.criterion}
    if args.threshold is not None:
        if not 0.0 <= args.threshold <= 1.0:
            raise InputError(f"--threshold {args.threshold}: a probability threshold lies in [0, 1]")
        threshold = float(args.threshold)
        info.update({"threshold": threshold, "source": "given"})
    else:
        if not args.val or not args.ref:
            raise InputError("wmh-threshold: give --val and --ref to search the threshold, or --threshold")
        if args.n_thresholds < 2:
            raise InputError(f"--n-thresholds {args.n_thresholds}: use at least 2 thresholds")
        thresholds = threshold_grid(args.n_thresholds)
        counts, cases = validation_counts(args.val, args.ref, args.brain_masks, args.images, thresholds)
        threshold, dice = best_threshold(counts, thresholds, args.criterion)
        info.update({"threshold": threshold, "validation_dice": dice, "source": "validation",
                     "validation_cases": cases, "thresholds": thresholds,
                     "validation_dice_curve": dice_curve(counts, args.criterion)})
    test = list_probability_files([args.test])
    if not test:
        raise InputError(f"{args.test}: no .npz probability files")
    with output_folder(args.out, "wmh-threshold", **guard) as tmp:
        for case, f in sorted(test.items()):
            prob = read_probabilities(f)
            geom = output_geometry(case, args.test, args.reference_images)
            if tuple(geom.size[::-1]) != prob.shape:
                raise InputError(f"{f}: probabilities of shape {prob.shape} do not fit the output geometry "
                                 f"{geom.size[::-1]} of case {case}")
            mask = prob >= threshold
            brain = brain_mask_for_case(case, args.brain_masks, args.images, reference=(geom, f))
            if brain is not None:
                mask &= brain
            write_image(mask.astype(np.uint8), geom, tmp / f"{case}.nii.gz")
        info["test_cases"] = sorted(test)
        write_json(info, tmp / "threshold.json")
    print(f"threshold {threshold:.3f} applied to {len(test)} test case(s) -> {args.out}")
    return 0
