"""How far apart good and failed registrations score in ``convert-wmh``'s registration check.

A real FLAIR (and variants of it: thick slices, strong noise, part of the brain blank or outside the field of view)
is registered to MNI as ``convert-wmh`` registers a FLAIR-only case (affine, the pipeline's default template and
efforts), and :func:`~nnunet_ataxia.preprocessing.registration_check.brain_registration_similarity` is printed; then
the good registration is moved on purpose (shifts, rotations), and images that are not heads (noise, smooth noise, a
box) and the FLAIR with a wrong header (its voxel array upside down) are registered the same way. Optionally a real
T1 too. The refusal threshold :data:`~nnunet_ataxia.preprocessing.registration_check.MIN_BRAIN_SIMILARITY` should lie
between the two groups.

Run:
    python benchmarks/bench_wmh_registration_check.py --flair ../shared/real_scans/flair_1mm.nii.gz \
        [--t1 ../shared/real_scans/fs_subject_brainmask.mgz]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import SimpleITK as sitk

from nnunet_ataxia.io.images import read_image
from nnunet_ataxia.preprocessing.registration import affine_register_to_mni
from nnunet_ataxia.preprocessing.registration_check import MIN_BRAIN_SIMILARITY, brain_registration_similarity
from nnunet_ataxia.preprocessing.wmh_pipeline import WMHOptions, mni_template
from nnunet_ataxia.synthesis.tissue_contrast import thick_slices


def _like(array: np.ndarray, reference: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(array.astype(np.float32))
    image.CopyInformation(reference)
    return image


def _moved(transform: sitk.Transform, shift_mm: tuple[float, float, float], angle_deg: float) -> sitk.Transform:
    """The registration followed by a rotation about the left-right axis through the brain centre and a shift."""
    error = sitk.Euler3DTransform()
    error.SetCenter((0.0, -18.0, 18.0))
    error.SetRotation(np.radians(angle_deg), 0.0, 0.0)
    error.SetTranslation(shift_mm)
    return sitk.CompositeTransform([transform, error])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flair", required=True, help="a real FLAIR scan (whole brain in the field of view)")
    parser.add_argument("--t1", help="a real T1 scan, scored the same way")
    args = parser.parse_args()

    options = WMHOptions()
    template, mask = mni_template(options.mni_spacing_mm)
    rows: list[tuple[str, str, float, float]] = []

    def register(image: sitk.Image) -> sitk.Transform:
        return affine_register_to_mni(image, template=template, template_mask=mask, seed=options.seed,
                                      iterations=options.mni_iterations, exhaustive_init=options.mni_exhaustive_init)

    def score(group: str, name: str, image: sitk.Image, transform: sitk.Transform | None = None) -> sitk.Transform:
        t0 = time.perf_counter()
        transform = transform or register(image)
        rows.append((group, name, brain_registration_similarity(image, transform, template, mask),
                     time.perf_counter() - t0))
        print(f"{group:8s} {name:48s} {rows[-1][2]:.3f}  ({rows[-1][3]:.1f} s)", flush=True)
        return transform

    flair = read_image(args.flair, sitk.sitkFloat32)
    array = sitk.GetArrayFromImage(flair)
    good = score("good", "real FLAIR", flair)
    for mm in (3.0, 5.0, 8.0):
        score("good", f"real FLAIR, {mm:.0f} mm slices", _like(thick_slices(array, 0, mm), flair))
    median = float(np.median(array[array > 0]))
    noisy = np.abs(array + np.random.RandomState(1).normal(0.0, 0.3 * median, array.shape))
    score("good", "real FLAIR + noise (SD 0.3 of its median)", _like(noisy, flair))
    for share in (0.25, 0.4):
        n = int(share * array.shape[0])
        for where, rows_blank in (("first", slice(0, n)), ("last", slice(array.shape[0] - n, None))):
            blank = array.copy()
            blank[rows_blank] = 0.0
            score("good", f"real FLAIR, {where} {share:.0%} of its slices blank", _like(blank, flair))
        size = list(flair.GetSize())
        kept = sitk.RegionOfInterest(flair, size[:2] + [size[2] - n], [0, 0, 0])
        score("good", f"real FLAIR, last {share:.0%} of its slices cut off", kept)
    if args.t1:
        score("good", "real T1", read_image(args.t1, sitk.sitkFloat32))
    for label, shift, angle in (("moved 10 mm", (10.0, 0.0, 0.0), 0.0), ("moved 20 mm", (20.0, 0.0, 0.0), 0.0),
                                ("moved 40 mm", (0.0, 40.0, 0.0), 0.0), ("rotated 15 deg", (0.0, 0.0, 0.0), 15.0),
                                ("rotated 30 deg", (0.0, 0.0, 0.0), 30.0), ("rotated 90 deg", (0.0, 0.0, 0.0), 90.0),
                                ("rotated 180 deg", (0.0, 0.0, 0.0), 180.0)):
        score("failed", f"real FLAIR, registration {label}", flair, _moved(good, shift, angle))
    score("failed", "real FLAIR upside down (wrong header)", _like(array[::-1], flair))
    rs = np.random.RandomState(2)
    noise = _like(rs.rand(*array.shape), flair)
    score("failed", "uniform noise", noise)
    score("failed", "smooth noise (8 mm)", sitk.SmoothingRecursiveGaussian(noise, 8.0))
    box = np.zeros(array.shape, np.float32)
    box[20:-20, 30:-30, 30:-30] = 1.0
    score("failed", "box phantom", _like(box, flair))

    good_scores = [r[2] for r in rows if r[0] == "good"]
    failed_scores = [r[2] for r in rows if r[0] == "failed"]
    print(f"\nthreshold {MIN_BRAIN_SIMILARITY}: good {min(good_scores):.3f}-{max(good_scores):.3f} "
          f"({sum(s < MIN_BRAIN_SIMILARITY for s in good_scores)} of {len(good_scores)} below), failed "
          f"{min(failed_scores):.3f}-{max(failed_scores):.3f} "
          f"({sum(s >= MIN_BRAIN_SIMILARITY for s in failed_scores)} of {len(failed_scores)} at or above)")


if __name__ == "__main__":
    main()
