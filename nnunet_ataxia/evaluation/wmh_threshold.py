"""The Dice-maximizing threshold of WMH probabilities, searched on validation cases and applied to a test set.

Ghafoorian et al. §3.2.5 pick the operating threshold that maximizes the Dice on validation data. The test masks are
written with nnU-Net's own ``SimpleITKIO.write_seg`` on the geometry nnU-Net recorded for each case (its ``.pkl``
properties, its own ``.nii.gz`` prediction, or a reference image).
"""
from __future__ import annotations

import os
import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nnunet_ataxia.errors import InputError
from nnunet_ataxia.evaluation.segmentation_eval import write_json
from nnunet_ataxia.evaluation.wmh_statistics import (
    best_threshold,
    brain_mask_for_case,
    dice_curve,
    list_probability_files,
    load_case,
    read_probabilities,
    threshold_counts,
    threshold_grid,
)
from nnunet_ataxia.io.cases import expand_folders
from nnunet_ataxia.io.images import Geometry, read_image
from nnunet_ataxia.io.output_folders import check_output_folder, output_folder

__all__ = ["validation_counts", "output_properties", "apply_wmh_threshold"]


def validation_counts(val_specs: Sequence[str], ref_dirs: Sequence[str], brain_mask_dirs: Sequence[str],
                      image_dirs: Sequence[str], thresholds: Sequence[float]) -> tuple[np.ndarray, list[str]]:
    """Per-case threshold counts ``(N, T, 3)`` and the case ids of merged validation probability folders.

    Example:
        >>> counts, cases = validation_counts(["results/fold_*/validation"], ["labelsTr"], [], ["imagesTr"],
        ...                                   threshold_grid(101))  # doctest: +SKIP
    """
    from tqdm import tqdm

    files = list_probability_files(expand_folders(val_specs))
    if not files:
        raise InputError(f"{', '.join(val_specs)}: no .npz probability files (train with --npz or predict "
                         f"with --save_probabilities)")
    counts = []
    for case, f in tqdm(sorted(files.items()), desc="threshold counts", disable=None):
        p, g, v = load_case(case, f, ref_dirs, brain_mask_dirs, image_dirs)
        counts.append(threshold_counts(p, g, thresholds, v))
    return np.stack(counts), sorted(files)


def _image_properties(path: Path) -> tuple[dict, Geometry]:
    image = read_image(path, what="reference image")
    geometry = Geometry.of(image)
    return {"sitk_stuff": {"spacing": geometry.spacing, "origin": geometry.origin,
                           "direction": geometry.direction}}, geometry


def output_properties(case: str, test_dir: str | os.PathLike,
                      reference_images: str | os.PathLike | None = None) -> tuple[dict, Geometry]:
    """nnU-Net's image properties (``sitk_stuff``) of a test case's output grid, and that grid's geometry.

    Looked up in this order: nnU-Net's own prediction ``<test>/<case>.nii.gz``, its properties file
    ``<test>/<case>.pkl`` (``nnUNetv2_predict --save_probabilities`` writes it), a reference image
    ``<reference_images>/<case>[_0000].nii.gz``.

    Example:
        >>> props, geometry = output_properties("case01", "predictions/")  # doctest: +SKIP
    """
    nii, pkl = Path(test_dir) / f"{case}.nii.gz", Path(test_dir) / f"{case}.pkl"
    if nii.is_file():
        return _image_properties(nii)
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
            return props, Geometry(tuple(int(x) for x in shape[::-1]), tuple(s["spacing"]), tuple(s["origin"]),
                                   tuple(s["direction"]))
    if reference_images:
        for name in (f"{case}.nii.gz", f"{case}_0000.nii.gz"):
            if (Path(reference_images) / name).is_file():
                return _image_properties(Path(reference_images) / name)
    raise InputError(f"{case}: no geometry for the output mask (no {nii.name} or {pkl.name} in {test_dir}"
                     + (f", no image in {reference_images})" if reference_images else "; give --reference-images)"))


def apply_wmh_threshold(test: str | os.PathLike, out: str | os.PathLike, *, threshold: float | None = None,
                        val: Sequence[str] = (), ref: Sequence[str] = (), brain_masks: Sequence[str] = (),
                        images: Sequence[str] = (), reference_images: str | os.PathLike | None = None,
                        n_thresholds: int = 101, criterion: str = "pooled", overwrite: bool = False) -> dict:
    """Search the Dice-maximizing threshold on validation probabilities (or take ``threshold``) and write the test
    masks ``<out>/<case>.nii.gz`` and ``<out>/threshold.json``, atomically.

    Args:
        test: folder of test probabilities (``.npz``).
        out: the output folder (an existing one must be an earlier ``wmh-threshold`` output, or ``overwrite``).
        threshold: a given threshold in [0, 1] instead of the search.
        val, ref: validation probability folders (globs merged) and reference label folders (2 = ignore).
        brain_masks, images: where the brain masks come from (only voxels inside count and are labelled).
        reference_images: images giving the output geometry when ``test`` holds no ``.nii.gz``/``.pkl``.
        n_thresholds: thresholds 0..1 searched.
        criterion: ``"pooled"`` (overall Dice, as the paper) or ``"mean"`` (mean per-case Dice).
        overwrite: replace an existing folder that is not an earlier output of this command.

    Returns:
        What ``threshold.json`` holds (threshold, source, validation Dice and curve, test cases).

    Example:
        >>> apply_wmh_threshold("pred_ts/", "masks/", val=["fold_*/validation"], ref=["labelsTr"])  # doctest: +SKIP
    """
    inputs = [*(expand_folders(val) if val else []), *(ref or []), test, *brain_masks, *images, reference_images]
    guard = dict(inputs=inputs, overwrite=overwrite, recognize=("threshold.json",))
    check_output_folder(out, "wmh-threshold", **guard)
    info: dict = {"criterion": criterion}
    if threshold is not None:
        if not 0.0 <= threshold <= 1.0:
            raise InputError(f"--threshold {threshold}: a probability threshold lies in [0, 1]")
        info.update({"threshold": float(threshold), "source": "given"})
    else:
        if not val or not ref:
            raise InputError("wmh-threshold: give --val and --ref to search the threshold, or --threshold")
        if n_thresholds < 2:
            raise InputError(f"--n-thresholds {n_thresholds}: use at least 2 thresholds")
        thresholds = threshold_grid(n_thresholds)
        counts, cases = validation_counts(val, ref, brain_masks, images, thresholds)
        best, dice = best_threshold(counts, thresholds, criterion)
        info.update({"threshold": best, "validation_dice": dice, "source": "validation", "validation_cases": cases,
                     "thresholds": thresholds, "validation_dice_curve": dice_curve(counts, criterion)})
    files = list_probability_files([test])
    if not files:
        raise InputError(f"{test}: no .npz probability files")
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    with output_folder(out, "wmh-threshold", **guard) as tmp:
        for case, f in sorted(files.items()):
            prob = read_probabilities(f)
            props, geom = output_properties(case, test, reference_images)
            if tuple(geom.size[::-1]) != prob.shape:
                raise InputError(f"{f}: probabilities of shape {prob.shape} do not fit the output geometry "
                                 f"{geom.size[::-1]} of case {case}")
            mask = prob >= info["threshold"]
            brain = brain_mask_for_case(case, brain_masks, images, reference=(geom, f))
            if brain is not None:
                mask &= brain
            SimpleITKIO().write_seg(mask.astype(np.uint8), str(tmp / f"{case}.nii.gz"), props)
        info["test_cases"] = sorted(files)
        write_json(info, tmp / "threshold.json")
    return info
