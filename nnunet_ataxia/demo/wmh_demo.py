"""The WMH demo: does location help? SS against SS+Loc (Ghafoorian et al.) on generated data whose lesion frequency
depends on location, with the paper's training recipe, threshold and patient-level bootstrap.

Steps (each one the project's or nnU-Net's own command, run as a subprocess with the nnU-Net environment pointing
into the output folder): generated cases (:mod:`nnunet_ataxia.demo.wmh_data`) -> ``convert-wmh`` -> fingerprint +
``nnUNetv2_plan_and_preprocess -c 2d`` -> ``nnUNetv2_train`` SS and SS+Loc (paper recipe, fold 0, nnU-Net's
validation with ``checkpoint_best.pth`` and ``--npz``) -> ``nnUNetv2_predict --save_probabilities`` ->
``wmh-threshold`` -> ``wmh-stats`` -> ``report``. A re-run skips every step whose output exists.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from nnunet_ataxia.demo.steps import ataxia_command, run_step, step
from nnunet_ataxia.io.nnunet_env import nnunet_subprocess_env

__all__ = ["DATASET_ID", "DATASET_NAME", "METHODS", "DemoSize", "demo_size", "run_wmh_demo", "verdict"]

DATASET_ID, DATASET_NAME = 504, "Dataset504_WMHDemo"
#: method name in the report -> trainer stem (``<stem>_demo`` or, with ``quick``, ``<stem>_smoke``)
METHODS = {"SS": "WMHSSTrainer_paper", "SS+Loc": "WMHSSLocTrainer_paper"}
CONVERT_OPTIONS = ("--registration", "affine", "--mni-spacing", "2", "--no-n4", "--prior-fold", "0")
FINGERPRINT_SCRIPT = """
import sys
from nnunetv2.experiment_planning.dataset_fingerprint.fingerprint_extractor import DatasetFingerprintExtractor
if __name__ == "__main__":
    fe = DatasetFingerprintExtractor(int(sys.argv[1]), num_processes=int(sys.argv[2]))
    fe.num_foreground_voxels_for_intensitystats = 1e6   # nnU-Net's 1e8 per channel needs GBs with ten channels
    fe.run()
"""


class DemoSize:
    """Size of a demo run: cases, FLAIR voxel size, trainer suffix."""

    def __init__(self, n_train: int, n_test: int, flair_spacing: tuple[float, float, float], suffix: str):
        self.n_train, self.n_test, self.flair_spacing, self.suffix = n_train, n_test, flair_spacing, suffix

    def trainer(self, method: str) -> str:
        return f"{METHODS[method]}_{self.suffix}"


def demo_size(quick: bool) -> DemoSize:
    """The full demo (20 training + 12 test cases, FLAIR 2.4 x 2.4 x 5 mm, ``_demo`` trainers) or the quick one
    (6 + 3 cases, 3 x 3 x 6 mm, ``_smoke`` trainers; for the tests).

    Example:
        >>> demo_size(True).trainer("SS+Loc")
        'WMHSSLocTrainer_paper_smoke'
    """
    return DemoSize(6, 3, (3.0, 3.0, 6.0), "smoke") if quick else DemoSize(20, 12, (2.4, 2.4, 5.0), "demo")


def _run(cmd: list, env: dict) -> None:
    run_step(cmd, env, "wmh-demo")


def verdict(summary: dict, better: str = "SS+Loc", baseline: str = "SS", level: float = 0.05) -> str:
    """One sentence: does ``better`` beat ``baseline`` on the test set (wmh-stats' ``wmh_summary.json``)?

    Example:
        >>> s = {"methods": {"A": {"test_dice": 0.8}, "B": {"test_dice": 0.7}},
        ...      "bootstrap": {"A": {"B": {"p_value": 0.0, "n_bootstrap": 100}}}}
        >>> verdict(s, "A", "B")[:22]
        '**A beats B** on this '
    """
    a, b = summary["methods"][better]["test_dice"], summary["methods"][baseline]["test_dice"]
    boot = summary["bootstrap"][better][baseline]
    p, n = boot["p_value"], boot["n_bootstrap"]
    p_text = f"p < {1 / n:.3g}" if p == 0 else f"p = {p:.3f}"
    head = (f"**{better} beats {baseline}** on this data" if p < level
            else f"**{better} does not beat {baseline}** on this data (at the {level:g} level)")
    return (f"{head}: test Dice {a:.3f} ({better}) vs {b:.3f} ({baseline}); patient-level bootstrap, {n} resamples "
            f"of the test patients, H0 '{better} is no better than {baseline}': {p_text}.")


def run_wmh_demo(out_dir: str | os.PathLike, quick: bool = False, num_processes: int = 2, seed: int = 0,
                 n_bootstrap: int = 100, overwrite: bool = False) -> Path:
    """Run the WMH demo into ``out_dir`` and return the report folder (``report.html``, ``report.md``).

    Args:
        out_dir: output folder: new, empty, or an earlier ``wmh-demo`` folder (its finished steps are skipped).
        quick: tiny run for the tests (:func:`demo_size`).
        num_processes: processes for the conversion and nnU-Net's preprocessing.
        seed: seed of the generated cases and of the training (``NNUNET_ATAXIA_SEED``: a repeatable run).
        n_bootstrap: bootstrap resamples of the test patients (the paper: 100).
        overwrite: run in an existing non-empty folder that is not a wmh-demo folder (nothing in it is deleted).

    Example:
        >>> run_wmh_demo("wmh_demo")  # doctest: +SKIP
    """
    from nnunet_ataxia.io.output_folders import check_output_folder, read_marker, write_marker

    started = time.time()
    check_output_folder(out_dir, "wmh-demo", overwrite=overwrite)
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if read_marker(out) is None:
        write_marker(out, "wmh-demo", {"quick": quick, "seed": seed})  # resumable: marked from the start
    size = demo_size(quick)
    env = nnunet_subprocess_env(out, num_processes, seed=seed)  # repeatable training for the same seed
    np_ = str(max(1, num_processes))
    raw = out / "nnUNet_raw" / DATASET_NAME
    timings: dict = {}

    def timed(key: str, fn, *args) -> None:  # wall and CPU seconds (this process + its commands) per step
        t0, c0 = time.time(), _cpu_seconds()
        fn(*args)
        timings[key] = {"wall_s": round(time.time() - t0, 1), "cpu_s": round(_cpu_seconds() - c0, 1)}

    data = out / "demo_data"
    if not step(f"1/8 generate {size.n_train} training + {size.n_test} test cases (MNI152 anatomy; WMH mostly "
                 f"periventricular, WMH-like mimics mostly next to the cortex)", data):
        timed("generate", _generate, data, size, seed, num_processes)

    if not step("2/8 convert-wmh: T1 + FLAIR + the eight location features (affine MNI registration)",
                 raw / "dataset.json"):
        timed("convert", _run, ataxia_command("convert-wmh", "-i", data / "train", "-t", data / "test", "-d", DATASET_ID,
                                       "--name", DATASET_NAME.split("_", 1)[1], *CONVERT_OPTIONS, "-np", np_), env)

    plans = out / "nnUNet_preprocessed" / DATASET_NAME / "nnUNetPlans_2d"
    if not step("3/8 nnU-Net fingerprint, plan and preprocess (2d)", plans):
        plan_env = dict(env, nnUNet_n_proc_DA="1")  # nnU-Net 2.8.1's planner calls torch.set_num_threads(n_proc_DA)
        timed("plan", _plan, plan_env, np_)

    results = out / "nnUNet_results" / DATASET_NAME
    folds = {m: results / f"{size.trainer(m)}__nnUNetPlans__2d" / "fold_0" for m in METHODS}
    for k, method in enumerate(METHODS):
        if not step(f"{4 + k}/8 train {method} ({size.trainer(method)}: the paper's recipe), fold 0; nnU-Net's "
                     f"validation with checkpoint_best.pth (best validation AUC)",
                     folds[method] / "validation" / "summary.json"):
            timed(f"train {method}", _run, ["nnUNetv2_train", DATASET_ID, "2d", 0, "-tr", size.trainer(method),
                                            "--npz", "--val_best", "--c", "-device", "cpu"], env)

    step("6/8 nnUNetv2_predict the test cases with probabilities (--save_probabilities, checkpoint_best.pth)")
    predictions = {m: out / "predictions" / m.replace("+", "_") for m in METHODS}
    for method, folder in predictions.items():
        if folder.exists():
            print(f"{method}: already done ({folder} exists)")
            continue
        partial = folder.with_name(folder.name + ".partial")  # moved into place when complete
        timed(f"predict {method}", _run, ["nnUNetv2_predict", "-i", raw / "imagesTs", "-o", partial, "-d", DATASET_ID,
                                          "-c", "2d", "-tr", size.trainer(method), "-f", 0,
                                          "-chk", "checkpoint_best.pth", "--save_probabilities", "-device", "cpu",
                                          "-npp", 1, "-nps", 1, "--continue_prediction"], env)
        partial.rename(folder)

    step("7/8 wmh-threshold (Dice-maximizing threshold on the validation cases) and wmh-stats (Dice, ROC/AUC, "
          f"patient-level bootstrap, {n_bootstrap} resamples)")
    ref = ["--ref", raw / "labelsTr", raw / "labelsTs", "--brain-masks", raw / "brainmasks"]
    for method, folder in predictions.items():
        masks = out / "masks" / folder.name
        if (masks / "threshold.json").exists():
            print(f"{method}: already done ({masks} exists)")
        else:
            timed(f"threshold {method}", _run, ataxia_command("wmh-threshold", "--val", folds[method] / "validation",
                                                       *ref, "--test", folder, "--out", masks), env)
    stats = out / "wmh_stats"
    if (stats / "wmh_summary.json").exists():
        print(f"wmh-stats: already done ({stats} exists)")
    else:
        specs = [a for m in METHODS for a in ("--val", f"{m}={folds[m] / 'validation'}", "--test",
                                              f"{m}={predictions[m]}")]
        timed("wmh-stats", _run, ataxia_command("wmh-stats", *specs, *ref, "--n-bootstrap", n_bootstrap, "--seed", seed,
                                         "--max-roc-voxels", 50_000_000, "--out", stats), env)

    report = out / "report"
    summary = json.loads((stats / "wmh_summary.json").read_text())
    if not step("8/8 report", report / "report.html"):
        timed("report", _run, ataxia_command("report", "--out", report, "--title",
                                      "nnunet-ataxia WMH demo: does location help? SS vs SS+Loc",
                                      "--wmh", stats, "--notes", _notes(summary, size, n_bootstrap)), env)
    _record_timings(out, timings)
    print(f"\n{verdict(summary).replace('**', '')}")
    print(f"\nDone in {(time.time() - started) / 60:.1f} min. Report: {report / 'report.html'} "
          f"(Markdown: {report / 'report.md'})")
    return report


def _generate(data: Path, size: DemoSize, seed: int, num_processes: int) -> None:
    from nnunet_ataxia.demo.wmh_data import write_location_dataset
    from nnunet_ataxia.io.atomic import atomic_output_dir

    with atomic_output_dir(data) as tmp:
        write_location_dataset(tmp, size.n_train, size.n_test, seed, size.flair_spacing, num_processes)


def _plan(env: dict, np_: str) -> None:
    _run([sys.executable, "-c", FINGERPRINT_SCRIPT, DATASET_ID, np_], env)
    # no --clean: nnU-Net reuses the fingerprint just written
    _run(["nnUNetv2_plan_and_preprocess", "-d", DATASET_ID, "-c", "2d", "-np", np_, "-npfp", np_], env)


def _notes(summary: dict, size: DemoSize, n_bootstrap: int) -> str:
    from nnunet_ataxia.trainers import wmh_paper_recipe as recipe

    trainer = getattr(recipe, size.trainer("SS"))
    epochs = trainer.schedule.num_epochs if trainer.schedule is not None else trainer.paper_num_epochs
    return (f"{verdict(summary)} "
            f"Data: {size.n_train} training and {size.n_test} test cases generated from the MNI152 template "
            f"(T1 + FLAIR {' x '.join(f'{s:g}' for s in size.flair_spacing)} mm). Bright FLAIR blobs of one "
            "appearance are WMH (label 1) mostly next to the lateral ventricles (placement probability "
            "exp(-distance to the ventricles / 10 mm)) and WMH-like mimics (label 0) mostly next to the cortex "
            "(exp(-distance to the cortex / 6 mm)), so whether a bright spot is WMH depends on where it is. "
            f"Models: {size.trainer('SS')} and {size.trainer('SS+Loc')}, the paper's recipe (balanced voxel pool, "
            f"RMSprop, no augmentation, best validation AUC) shortened to {epochs} epochs, fold 0 of nnU-Net's "
            "5-fold split, CPU; location weight alpha = 1 (not tuned). The threshold of each model maximizes the "
            "pooled Dice of its fold-0 validation cases and is applied to the test cases; p-values come from "
            f"{n_bootstrap} bootstrap resamples of the test patients. convert-wmh ran with --registration affine "
            "--mni-spacing 2 --no-n4 (for speed; the generated cases have no bias field) and --prior-fold 0 (the "
            "WMH prior channel is built without the validation cases). A CPU demonstration on generated data: its "
            "numbers are not those of the paper's converged models on real scans.")


def _cpu_seconds() -> float:
    import resource

    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                  resource.getrusage(resource.RUSAGE_CHILDREN)))


def _record_timings(out: Path, timings: dict) -> None:
    if not timings:
        return
    path = out / "timings.json"
    old = json.loads(path.read_text()) if path.is_file() else {}
    old.update(timings)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(old, indent=1))
    tmp.replace(path)
