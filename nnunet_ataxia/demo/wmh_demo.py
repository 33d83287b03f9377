"""The WMH demo: does location help? SS against SS+Loc (Ghafoorian et al.) on generated data whose WMH are told from
same-looking hard negatives by where they are, over several training seeds, with the paper's training recipe, alpha
tuned on the validation cases, the paper's threshold and patient-level bootstrap.

Steps (each one the project's or nnU-Net's own command, run as a subprocess with the nnU-Net environment pointing
into the output folder): generated cases (:mod:`nnunet_ataxia.demo.wmh_data`) -> ``convert-wmh`` -> fingerprint +
``nnUNetv2_plan_and_preprocess -c 2d`` -> a location-only classifier (what location can tell;
:mod:`nnunet_ataxia.evaluation.wmh_location_only`) -> per training seed: ``nnUNetv2_train`` SS and SS+Loc (paper
recipe, fold 0, ``checkpoint_best.pth``) -> ``wmh-tune-alpha`` for SS+Loc (validation AUC) and its validation
re-run -> ``nnUNetv2_predict --save_probabilities`` -> ``wmh-threshold`` -> one ``wmh-stats`` over all seeds ->
``report``. Each seed has its own ``nnUNet_results/seed<k>``. A re-run into the same folder skips a step only when
its record (``steps.json``, :class:`~nnunet_ataxia.io.step_records.StepRecords`) matches this run's options and its
output is there; otherwise the step and every step after it are redone.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from nnunet_ataxia.demo.steps import ataxia_command, run_step, step
from nnunet_ataxia.io.nnunet_env import SEED_VARIABLE, nnunet_subprocess_env
from nnunet_ataxia.io.step_records import StepRecords

__all__ = ["DATASET_ID", "DATASET_NAME", "METHODS", "ALPHAS", "DemoSize", "demo_size", "run_wmh_demo", "verdict",
           "seed_verdicts"]

DATASET_ID, DATASET_NAME = 504, "Dataset504_WMHDemo"
#: method -> trainer stem (``<stem>_demo`` or, with ``quick``, ``<stem>_smoke``)
METHODS = {"SS": "WMHSSTrainer_paper", "SS+Loc": "WMHSSLocTrainer_paper"}
#: alpha values tried for SS+Loc (``wmh-tune-alpha``, best validation AUC; the trained alpha 1 is always tried too)
ALPHAS = (0.3, 3.0)
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
    """Size of a demo run: cases, training seeds, trainer suffix.

    Example:
        >>> DemoSize(6, 3, (0,), "smoke").name("SS+Loc", 0)
        'SS+Loc s0'
    """

    def __init__(self, n_train: int, n_test: int, seeds: tuple[int, ...], suffix: str):
        self.n_train, self.n_test, self.seeds, self.suffix = n_train, n_test, tuple(seeds), suffix

    def trainer(self, method: str) -> str:
        return f"{METHODS[method]}_{self.suffix}"

    @staticmethod
    def name(method: str, seed: int) -> str:
        """The method's name in wmh-stats and the report for one training seed."""
        return f"{method} s{seed}"

    @staticmethod
    def folder(method: str, seed: int) -> str:
        """The method's sub-folder of ``predictions/`` and ``masks/``."""
        return f"s{seed}/{method.replace('+', '_')}"


def demo_size(quick: bool, seed: int = 0) -> DemoSize:
    """The full demo (10 training + 6 test cases, training seeds ``seed``..``seed + 2``, ``_demo`` trainers) or the
    quick one (6 + 3 cases, one training seed, ``_smoke`` trainers; for the tests). The cases are those of
    :func:`nnunet_ataxia.demo.wmh_data.make_location_case` (FLAIR 1 x 1 x 5 mm, 6 slices) in both.

    Example:
        >>> demo_size(True).trainer("SS+Loc"), demo_size(False, 4).seeds
        ('WMHSSLocTrainer_paper_smoke', (4, 5, 6))
    """
    return DemoSize(6, 3, (seed,), "smoke") if quick else DemoSize(10, 6, (seed, seed + 1, seed + 2), "demo")


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


def seed_verdicts(summary: dict, seeds: tuple[int, ...], level: float = 0.05) -> str:
    """Per seed, :func:`verdict` of SS+Loc against SS, then how many seeds SS+Loc won.

    Example:
        >>> s = {"methods": {"SS+Loc s0": {"test_dice": 0.8}, "SS s0": {"test_dice": 0.7}},
        ...      "bootstrap": {"SS+Loc s0": {"SS s0": {"p_value": 0.01, "n_bootstrap": 100}}}}
        >>> seed_verdicts(s, (0,)).splitlines()[-1]
        'Found: SS+Loc beats SS (p < 0.05) for 1 of 1 training seed(s).'
    """
    lines, wins = [], 0
    for s in seeds:
        better, baseline = DemoSize.name("SS+Loc", s), DemoSize.name("SS", s)
        lines.append(f"Seed {s}: {verdict(summary, better, baseline, level)}")
        wins += summary["bootstrap"][better][baseline]["p_value"] < level
    lines.append(f"Found: SS+Loc beats SS (p < {level:g}) for {wins} of {len(seeds)} training seed(s).")
    return "\n".join(lines)


def run_wmh_demo(out_dir: str | os.PathLike, quick: bool = False, num_processes: int = 2, seed: int = 0,
                 n_bootstrap: int = 100, overwrite: bool = False) -> Path:
    """Run the WMH demo into ``out_dir`` and return the report folder (``report.html``, ``report.md``).

    Args:
        out_dir: output folder: new, empty, or an earlier ``wmh-demo`` folder (its finished steps are skipped).
        quick: tiny run for the tests (:func:`demo_size`).
        num_processes: processes for the generation, the conversion and nnU-Net's preprocessing.
        seed: seed of the generated cases and of the bootstrap; the training seeds are ``seed``, ``seed + 1``, ...
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
    size = demo_size(quick, seed)
    env = nnunet_subprocess_env(out, num_processes, seed=seed)
    np_ = str(max(1, num_processes))
    raw = out / "nnUNet_raw" / DATASET_NAME
    timings: dict = {}

    def timed(key: str, fn, *args) -> None:  # wall and CPU seconds (this process + its commands) per step
        t0, c0 = time.time(), _cpu_seconds()
        fn(*args)
        timings[key] = {"wall_s": round(time.time() - t0, 1), "cpu_s": round(_cpu_seconds() - c0, 1)}

    from nnunet_ataxia import __version__

    records = StepRecords(out, {"quick": quick, "seed": seed, "n_bootstrap": n_bootstrap, "version": __version__})

    data = out / "demo_data"
    if not step(f"1/10 generate {size.n_train} training + {size.n_test} test cases (MNI152 anatomy, FLAIR 1 x 1 x 5 "
                f"mm; periventricular WMH behind MNI y = 0, same-looking frontal caps in front, septum, "
                f"juxtacortical spots)", data, records=records, key="generate"):
        timed("generate", _generate, data, size, seed, num_processes)
        records.done("generate")

    if not step("2/10 convert-wmh: T1 + FLAIR + the eight location features (affine MNI registration)",
                raw / "dataset.json", records=records, key="convert", after=["generate"], clear=[raw]):
        timed("convert", _run, ataxia_command("convert-wmh", "-i", data / "train", "-t", data / "test", "-d",
                                              DATASET_ID, "--name", DATASET_NAME.split("_", 1)[1],
                                              *CONVERT_OPTIONS, "-np", np_), env)
        records.done("convert", after=["generate"])

    preprocessed = out / "nnUNet_preprocessed" / DATASET_NAME
    if not step("3/10 nnU-Net fingerprint, plan and preprocess (2d)", preprocessed / "nnUNetPlans_2d",
                records=records, key="plan", after=["convert"], clear=[preprocessed]):
        plan_env = dict(env, nnUNet_n_proc_DA="1")  # nnU-Net 2.8.1's planner calls torch.set_num_threads(n_proc_DA)
        timed("plan", _plan, plan_env, np_)
        records.done("plan", after=["convert"])

    location = out / "location_only.json"
    if not step("4/10 what location alone can tell: a location-only classifier, trained on the training cases, "
                "AUC on the test cases", location, records=records, key="location-only", after=["convert"]):
        timed("location-only", _location_only, raw, data, location, seed)
        records.done("location-only", after=["convert"])

    envs = {s: _seed_env(env, out, s) for s in size.seeds}
    folds = {(m, s): out / "nnUNet_results" / f"seed{s}" / DATASET_NAME / f"{size.trainer(m)}__nnUNetPlans__2d"
             / "fold_0" for m in METHODS for s in size.seeds}
    trained = {(m, s): f"train {m} s{s}" for m in METHODS for s in size.seeds}
    for k, method in enumerate(METHODS):
        for s in size.seeds:
            if not step(f"{5 + k}/10 train {method}, seed {s} ({size.trainer(method)}: the paper's recipe), fold 0; "
                        f"nnU-Net's validation with checkpoint_best.pth (best validation AUC)",
                        folds[method, s] / "validation" / "summary.json", records=records, key=trained[method, s],
                        after=["plan"], clear=[folds[method, s]]):
                timed(trained[method, s], _run, ["nnUNetv2_train", DATASET_ID, "2d", 0, "-tr",
                                                 size.trainer(method), "--npz", "--val_best", "--c", "-device",
                                                 "cpu"], envs[s])
                records.done(trained[method, s], after=["plan"])

    # the model a method's predictions and validation come from: SS+Loc's is the alpha-tuned one
    model_step = {(m, s): (f"alpha s{s}" if m == "SS+Loc" else trained[m, s]) for m in METHODS for s in size.seeds}
    for s in size.seeds:
        tuned = out / "alpha" / f"seed{s}.json"
        if not step(f"7/10 SS+Loc seed {s}: tune alpha on the validation cases (wmh-tune-alpha, alpha in "
                    f"{{{', '.join(f'{a:g}' for a in sorted({*ALPHAS, 1.0}))}}}, best validation AUC), then nnU-Net's "
                    "validation again with it", tuned, records=records, key=f"alpha s{s}",
                    after=[trained["SS+Loc", s]]):
            timed(f"alpha s{s}", _tune_alpha, size, envs[s], folds["SS+Loc", s], tuned)
            records.done(f"alpha s{s}", after=[trained["SS+Loc", s]])

    step("8/10 nnUNetv2_predict the test cases with probabilities (--save_probabilities, checkpoint_best.pth)")
    predictions = {(m, s): out / "predictions" / DemoSize.folder(m, s) for m in METHODS for s in size.seeds}
    for (method, s), folder in predictions.items():
        key = f"predict {method} s{s}"
        partial = folder.with_name(folder.name + ".partial")  # moved into place when complete
        if records.check(key, [folder], after=[model_step[method, s]], clear=[folder, partial]):
            continue
        timed(key, _run, [
            "nnUNetv2_predict", "-i", raw / "imagesTs", "-o", partial, "-d", DATASET_ID, "-c", "2d", "-tr",
            size.trainer(method), "-f", 0, "-chk", "checkpoint_best.pth", "--save_probabilities", "-device", "cpu",
            "-npp", 1, "-nps", 1, "--continue_prediction"], envs[s])
        partial.rename(folder)
        records.done(key, after=[model_step[method, s]])

    step("9/10 wmh-threshold (Dice-maximizing threshold on the validation cases) and wmh-stats (Dice, ROC/AUC, "
         f"patient-level bootstrap, {n_bootstrap} resamples)")
    ref = ["--ref", raw / "labelsTr", raw / "labelsTs", "--brain-masks", raw / "brainmasks"]
    thresholds = []
    for (method, s), folder in predictions.items():
        masks, key = out / "masks" / DemoSize.folder(method, s), f"threshold {method} s{s}"
        thresholds.append(key)
        if not records.check(key, [masks / "threshold.json"], after=[f"predict {method} s{s}"], clear=[masks]):
            timed(key, _run, ataxia_command(
                "wmh-threshold", "--val", folds[method, s] / "validation", *ref, "--test", folder, "--out", masks),
                env)
            records.done(key, after=[f"predict {method} s{s}"])
    stats = out / "wmh_stats"
    if not records.check("wmh-stats", [stats / "wmh_summary.json"], after=thresholds, clear=[stats]):
        specs = [a for (m, s) in predictions for a in ("--val", f"{DemoSize.name(m, s)}={folds[m, s] / 'validation'}",
                                                       "--test", f"{DemoSize.name(m, s)}={predictions[m, s]}")]
        timed("wmh-stats", _run, ataxia_command("wmh-stats", *specs, *ref, "--n-bootstrap", n_bootstrap, "--seed",
                                                seed, "--max-roc-voxels", 50_000_000, "--out", stats), env)
        records.done("wmh-stats", after=thresholds)

    report = out / "report"
    summary = json.loads((stats / "wmh_summary.json").read_text())
    notes = _notes(summary, size, n_bootstrap, json.loads(location.read_text()), out)
    if not step("10/10 report", report / "report.html", records=records, key="report",
                after=["wmh-stats", "location-only"], clear=[report]):
        timed("report", _run, ataxia_command("report", "--out", report, "--title",
                                             "nnunet-ataxia WMH demo: does location help? SS vs SS+Loc",
                                             "--wmh", stats, "--notes", notes), env)
        records.done("report", after=["wmh-stats", "location-only"])
    _record_timings(out, timings)
    print(f"\n{seed_verdicts(summary, size.seeds).replace('**', '')}")
    resumed = records.summary()
    print(f"\nDone in {(time.time() - started) / 60:.1f} min{f' ({resumed})' if resumed else ''}. Report: "
          f"{report / 'report.html'} (Markdown: {report / 'report.md'})")
    return report


def _seed_env(env: dict, out: Path, seed: int) -> dict:
    results = out / "nnUNet_results" / f"seed{seed}"
    results.mkdir(parents=True, exist_ok=True)
    return dict(env, nnUNet_results=str(results), **{SEED_VARIABLE: str(seed)})


def _generate(data: Path, size: DemoSize, seed: int, num_processes: int) -> None:
    from nnunet_ataxia.demo.wmh_data import write_location_dataset
    from nnunet_ataxia.io.atomic import atomic_output_dir

    with atomic_output_dir(data) as tmp:
        write_location_dataset(tmp, size.n_train, size.n_test, seed, num_processes)


def _plan(env: dict, np_: str) -> None:
    _run([sys.executable, "-c", FINGERPRINT_SCRIPT, DATASET_ID, np_], env)
    # no --clean: nnU-Net reuses the fingerprint just written
    _run(["nnUNetv2_plan_and_preprocess", "-d", DATASET_ID, "-c", "2d", "-np", np_, "-npfp", np_], env)


def _location_only(raw: Path, data: Path, out_json: Path, seed: int) -> None:
    from nnunet_ataxia.evaluation.wmh_location_only import location_only_auc

    ids = {part: sorted(p.name for p in (data / part).iterdir() if p.is_dir()) for part in ("train", "test")}
    mimics = {c: data / part / c / "mimics.nii.gz" for part, cases in ids.items() for c in cases}
    r = location_only_auc(raw / "imagesTr", raw / "labelsTr", raw / "imagesTs", raw / "labelsTs", mimics,
                          ids["train"], ids["test"], seed=seed, out_json=out_json)
    print(f"location only: AUC {r['wmh_vs_hard_negatives']:.3f} (WMH vs hard negatives), "
          f"{r['wmh_vs_normal']:.3f} (WMH vs all normal brain voxels) on the test cases")


def _tune_alpha(size: DemoSize, env: dict, fold: Path, record: Path) -> None:
    _run(ataxia_command("wmh-tune-alpha", "-d", DATASET_ID, "-tr", size.trainer("SS+Loc"), "-f", 0, "-chk",
                        "checkpoint_best.pth", "-device", "cpu", "--alphas", *ALPHAS), env)
    _run(["nnUNetv2_train", DATASET_ID, "2d", 0, "-tr", size.trainer("SS+Loc"), "--val", "--npz", "--val_best",
          "-device", "cpu"], env)
    record.parent.mkdir(parents=True, exist_ok=True)
    tmp = record.with_suffix(".json.tmp")
    tmp.write_text((fold / "location_alpha.json").read_text())
    tmp.replace(record)


def _notes(summary: dict, size: DemoSize, n_bootstrap: int, location: dict, out: Path) -> str:
    from nnunet_ataxia.trainers import wmh_paper_recipe as recipe

    trainer = getattr(recipe, size.trainer("SS"))
    schedule = trainer.schedule
    alphas = []
    for s in size.seeds:
        path = out / "alpha" / f"seed{s}.json"
        alphas.append(f"seed {s}: {json.loads(path.read_text())['alpha']:g}" if path.is_file() else f"seed {s}: -")
    return (f"What location alone can tell on these test cases: a location-only classifier (gradient-boosted trees "
            f"on the eight location channels, trained on the training cases) separates WMH from the hard negatives "
            f"with AUC {location['wmh_vs_hard_negatives']:.3f}, and WMH from all normal brain voxels with AUC "
            f"{location['wmh_vs_normal']:.3f}. {seed_verdicts(summary, size.seeds)} "
            f"Data: {size.n_train} training and {size.n_test} test cases generated from the MNI152 template (T1 2 mm; "
            "FLAIR 1 x 1 x 5 mm on a 30 mm slab through the lateral ventricles, so the 32-pixel window spans 32 mm). "
            "All bright structures look alike: WMH (label 1) are the periventricular band behind MNI y = 0 and a few "
            "deep blobs; hard negatives (label 0) are the same band in front of that plane (frontal caps), a bright "
            "septum pellucidum and juxtacortical spots, a few per cent of the brain's voxels, so that the paper's "
            "balanced pool (normal samples drawn uniformly) holds that share of them. "
            f"Models: {size.trainer('SS')} and {size.trainer('SS+Loc')}, the paper's recipe (balanced voxel pool, "
            f"RMSprop, no augmentation, best validation AUC) shortened to {schedule.num_epochs} epochs over a pool of "
            f"at most {schedule.max_lesion_samples} lesion + as many normal samples, fold 0 of nnU-Net's 5-fold split, "
            f"CPU, training seeds {', '.join(map(str, size.seeds))}; SS+Loc's alpha tuned on the validation cases "
            f"by wmh-tune-alpha (re-weighting the trained network, best validation AUC; {'; '.join(alphas)}). "
            "The threshold of each model maximizes the pooled Dice of its fold-0 validation cases and is applied to "
            f"the test cases; p-values come from {n_bootstrap} bootstrap resamples of the test patients. "
            "A CPU demonstration on generated data: its numbers are not those of the paper's converged models on "
            "real scans.")


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
