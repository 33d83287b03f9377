"""Writers of the two real input layouts that the converters read, and the demo builder.

* Hammers n30r95 layout: ``<root>/aNN.nii.gz`` (T1), ``<root>/aNN-seg.nii.gz`` (label map: 17 right cerebellum,
  18 left cerebellum, 19 brainstem, a few coarse other regions), ``<root>/Hammers_mith-n30r95-label-names.csv``.
* SCA2 layout: ``participants.tsv``, ``sub-XX/anat/sub-XX_T1w.nii.gz``, ACAPULCO's outputs under
  ``derivatives/acapulco/sub-XX/out/{mni,parc}/`` and the manual mask
  ``derivatives/manual/sub-XX/anat/sub-XX_desc-cerebellum_mask.nii.gz``.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from nnunet_ataxia.io.acapulco import ACAPULCO_LOBULE_LABELS, acapulco_whole_cerebellum_mask, write_acapulco_volumes_csv
from nnunet_ataxia.io.constants import BRAINSTEM_LABEL_ASEG, CEREBELLUM_LEFT_LABELS_ASEG, CEREBELLUM_RIGHT_LABELS_ASEG

#: aseg value(s) -> Hammers-like region value (17/18/19 as in the paper; the others only coarse)
ASEG_TO_HAMMERS = {CEREBELLUM_RIGHT_LABELS_ASEG: 17, CEREBELLUM_LEFT_LABELS_ASEG: 18, (BRAINSTEM_LABEL_ASEG,): 19,
                   (17,): 2, (53,): 1, (18,): 4, (54,): 3, (10,): 40,
                   (49,): 41, (11,): 34, (50,): 35, (12,): 38, (51,): 39, (4, 5): 46, (43, 44): 45, (14,): 49,
                   (2,): 21, (41,): 20}
HAMMERS_DEMO_NAMES = {17: "Cerebellum_R", 18: "Cerebellum_L", 19: "Brainstem", 1: "Hippocampus_R",
                      2: "Hippocampus_L", 3: "Amygdala_R", 4: "Amygdala_L", 20: "Rest_of_hemisphere_R",
                      21: "Rest_of_hemisphere_L", 34: "Caudate_nucleus_R", 35: "Caudate_nucleus_L",
                      38: "Putamen_R", 39: "Putamen_L", 40: "Thalamus_R", 41: "Thalamus_L",
                      45: "Lateral_ventricle_R", 46: "Lateral_ventricle_L", 49: "Third_ventricle",
                      50: "Cortex_R", 51: "Cortex_L"}


def aseg_to_hammers(aseg: np.ndarray) -> np.ndarray:
    """Hammers-like 95-region-style map from FreeSurfer aseg values (cortex 1000s -> 51 left, 2000s -> 50 right)."""
    out = np.zeros(aseg.shape, np.uint8)
    for src, dst in ASEG_TO_HAMMERS.items():
        out[np.isin(aseg, src)] = dst
    out[(aseg >= 1000) & (aseg < 2000)] = 51
    out[(aseg >= 2000) & (aseg < 3000)] = 50
    return out


def _write(array: np.ndarray, ref: sitk.Image, path: Path, dtype=None) -> Path:
    img = sitk.GetImageFromArray(array if dtype is None else array.astype(dtype))
    img.CopyInformation(ref)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(img, str(path), useCompression=True)
    return path


def write_hammers_subject(root: str | os.PathLike, subject: str, t1: sitk.Image, seg: np.ndarray) -> tuple[Path, Path]:
    """Write ``<root>/<subject>.nii.gz`` and ``<root>/<subject>-seg.nii.gz`` (seg on the T1's grid)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    t1_path = root / f"{subject}.nii.gz"
    sitk.WriteImage(t1, str(t1_path), useCompression=True)
    return t1_path, _write(seg, t1, root / f"{subject}-seg.nii.gz", np.uint8)


def write_hammers_label_list(root: str | os.PathLike, names: dict[int, str] = HAMMERS_DEMO_NAMES) -> Path:
    """The atlas's label list (``index,name``) that the converter reads for cerebellum sides."""
    path = Path(root) / "Hammers_mith-n30r95-label-names.csv"
    pd.DataFrame({"index": list(names), "name": list(names.values())}).sort_values("index").to_csv(path, index=False)
    return path


def write_sca2_subject(root: str | os.PathLike, subject: str, t1: sitk.Image, parcellation: np.ndarray | None = None,
                       t1_mni: sitk.Image | None = None, parcellation_mni: np.ndarray | None = None,
                       manual_mask: np.ndarray | None = None) -> dict[str, Path]:
    """Write one SCA2-cohort subject (``subject`` = ``sub-XX``) with whatever ACAPULCO/manual files are given.

    ``parcellation`` is on ``t1``'s grid (ACAPULCO's ``_seg_post_inverse``), ``parcellation_mni`` on ``t1_mni``'s
    (``_seg_post``; with it the volumes CSV is written from the MNI-space parcellation, as ACAPULCO does).
    """
    root = Path(root)
    paths = {"t1": root / subject / "anat" / f"{subject}_T1w.nii.gz"}
    paths["t1"].parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(t1, str(paths["t1"]), useCompression=True)
    aca = root / "derivatives" / "acapulco" / subject / "out"
    stem = f"{subject}_T1w_n4_mni"
    if parcellation is not None:
        paths["native"] = _write(parcellation, t1, aca / "parc" / f"{stem}_seg_post_inverse.nii.gz", np.uint8)
    if t1_mni is not None and parcellation_mni is not None:
        paths["mni_image"] = aca / "mni" / f"{stem}.nii.gz"
        paths["mni_image"].parent.mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(t1_mni, str(paths["mni_image"]), useCompression=True)
        paths["mni"] = _write(parcellation_mni, t1_mni, aca / "parc" / f"{stem}_seg_post.nii.gz", np.uint8)
        paths["volumes"] = aca / "parc" / f"{stem}_seg_post_volumes.csv"
        write_acapulco_volumes_csv(parcellation_mni, float(np.prod(t1_mni.GetSpacing())), paths["volumes"])
    if manual_mask is not None:
        paths["manual"] = _write(manual_mask, t1, root / "derivatives" / "manual" / subject / "anat"
                                 / f"{subject}_desc-cerebellum_mask.nii.gz", np.uint8)
    return paths


def write_participants(root: str | os.PathLike, subjects: Sequence[str], groups: Sequence[str]) -> Path:
    """BIDS ``participants.tsv`` with ``participant_id`` and ``group``."""
    path = Path(root) / "participants.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"participant_id": list(subjects), "group": list(groups)}).to_csv(path, sep="\t", index=False)
    return path


def imperfect_acapulco(lobules: np.ndarray, rs: np.random.RandomState) -> np.ndarray:
    """ACAPULCO-like output: the lobules with part of the cerebellar border eroded by one voxel (ACAPULCO tends to
    under-segment, Table 4 of the paper); the manual mask is the uneroded union."""
    from scipy.ndimage import binary_erosion, gaussian_filter

    mask = acapulco_whole_cerebellum_mask(lobules)
    border = mask & ~binary_erosion(mask)
    patchy = gaussian_filter(rs.normal(size=mask.shape), 3) > 0
    out = lobules.copy()
    out[border & patchy] = 0
    return out


def cohort_groups(n: int) -> list[str]:
    """Groups of an ``n``-subject demo cohort: control, presymptomatic, sca2 in turn (14 -> 5/5/4 as the paper)."""
    return [("control", "presymptomatic", "sca2")[i % 3] for i in range(n)]


def _make_one(job: dict) -> str:
    from nnunet_ataxia.demo.anatomy import make_pseudo_subject

    rs = np.random.RandomState(job["seed"] + 7919)
    s = make_pseudo_subject(job["seed"], job["group"], job["voxel_mm"])
    aseg = sitk.GetArrayFromImage(s.aseg)
    if job["kind"] == "hammers":
        write_hammers_subject(job["root"], job["subject"], s.t1, aseg_to_hammers(aseg))
    else:
        lob = sitk.GetArrayFromImage(s.lobules)
        write_sca2_subject(job["root"], job["subject"], s.t1, imperfect_acapulco(lob, rs), s.t1_mni,
                           imperfect_acapulco(sitk.GetArrayFromImage(s.lobules_mni), rs),
                           acapulco_whole_cerebellum_mask(lob).astype(np.uint8) if job["manual"] else None)
    return job["subject"]


def make_demo(out_dir: str | os.PathLike, n_hammers: int = 6, n_sca2: int = 6, seed: int = 0,
              voxel_mm: float = 2.0, manual_masks: bool = True, num_processes: int = 1,
              overwrite: bool = False) -> Path:
    """Generate demo data from real MNI anatomy: ``<out_dir>/hammers`` (Hammers layout) and ``<out_dir>/sca2``.

    Args:
        out_dir: output folder (written atomically; an existing folder is replaced only when it is an earlier
            make-demo output or empty, or with ``overwrite``).
        n_hammers: subjects in the Hammers layout (healthy).
        n_sca2: subjects in the SCA2 layout (control, presymptomatic, sca2 in turn; patients get cerebellar atrophy).
        seed: random seed (same seed -> same data).
        voxel_mm: isotropic voxel size (2 mm: ~91x109x91 voxels, a few seconds per subject).
        manual_masks: also write manually corrected masks (the ACAPULCO union without its border errors).
        num_processes: subjects generated in parallel.
        overwrite: replace an existing non-empty folder that is not an earlier make-demo output.

    Example:
        >>> make_demo("demo_data", n_hammers=6, n_sca2=6, seed=0)  # doctest: +SKIP
    """
    from nnunet_ataxia.demo.anatomy import load_mni_anatomy
    from nnunet_ataxia.io.output_folders import check_output_folder, output_folder
    from nnunet_ataxia.io.parallel import run_cases

    check_output_folder(out_dir, "make-demo", overwrite=overwrite, recognize=("hammers", "sca2"))
    load_mni_anatomy(voxel_mm)  # fail early (InputError) if the template is missing
    with output_folder(out_dir, "make-demo", overwrite=overwrite, recognize=("hammers", "sca2")) as tmp:
        jobs = [{"kind": "hammers", "root": str(tmp / "hammers"), "subject": f"a{i + 1:02d}", "group": "control",
                 "seed": seed * 1000 + i, "voxel_mm": voxel_mm} for i in range(n_hammers)]
        groups = cohort_groups(n_sca2)
        subjects = [f"sub-{i + 1:02d}" for i in range(n_sca2)]
        jobs += [{"kind": "sca2", "root": str(tmp / "sca2"), "subject": s, "group": g, "manual": manual_masks,
                  "seed": seed * 1000 + 500 + i, "voxel_mm": voxel_mm}
                 for i, (s, g) in enumerate(zip(subjects, groups, strict=True))]
        if n_hammers:
            (tmp / "hammers").mkdir(parents=True, exist_ok=True)
            write_hammers_label_list(tmp / "hammers")
        if n_sca2:
            write_participants(tmp / "sca2", subjects, groups)
        run_cases(_make_one, jobs, num_processes, "make demo subjects")
    return Path(out_dir)


__all__ = ["make_demo", "write_hammers_subject", "write_hammers_label_list", "write_sca2_subject",
           "write_participants", "aseg_to_hammers", "imperfect_acapulco", "cohort_groups", "ACAPULCO_LOBULE_LABELS"]
