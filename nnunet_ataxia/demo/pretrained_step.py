"""The demo's pretrained-model steps: segment the test subjects' native T1 scans with the pretrained M2 first, then
compare it with the M2 that the demo trains (native-space Dice and volumes against the native ground truth, QC).

Both steps run the project's own commands (``install-pretrained``, ``segment``, ``evaluate``, ``compare-volumes``)
through the callable that :func:`nnunet_ataxia.demo.main_job.run_demo` gives them, so the demo exercises exactly what
a user types. Layout under the demo folder::

    pretrained/t1_native/<case>.nii.gz       the test subjects' native T1 scans (copies, named by Data2 case id)
    pretrained/segment/                      segment's output: <case>/ masks, volumes.csv, qc/<case>.png, qc/index.html
    pretrained/cerebellum_native/<case>.nii.gz   the pretrained model's cerebellum (label 1) only, for the comparison
    evaluation_native/                       evaluate: both models against the native ground truth
    volumes_pretrained/                      compare-volumes of the pretrained model (SCA2 test subjects, with ACAPULCO)
    qc_trained/<case>.png                    QC pictures of the trained model's native predictions
"""
from __future__ import annotations

import os
import shutil
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

from nnunet_ataxia.errors import InputError
from nnunet_ataxia.io.atomic import atomic_output_dir
from nnunet_ataxia.pretrained import release

__all__ = ["PRETRAINED_NAME", "TRAINED_NAME", "demo_test_subjects", "segment_test_subjects", "compare_with_trained"]

#: method names in the report's tables and pictures
PRETRAINED_NAME = "pretrained M2"
TRAINED_NAME = "trained M2"
#: a project command run by the demo: ``ataxia("segment", "-i", ...)``
Ataxia = Callable[..., None]


def demo_test_subjects(demo_data: str | os.PathLike) -> dict[str, Path]:
    """``{Data2 case id: native T1}`` of the test split that ``convert-data2`` draws from the demo data.

    The same readers and the same seeded Table 1 split as :func:`convert_data2` (its default seed), so the test
    subjects are known before the conversion runs.

    Args:
        demo_data: the ``make-demo`` folder (``hammers/`` and ``sca2/``).

    Example:
        >>> sorted(demo_test_subjects("nnunet_ataxia_demo/demo_data"))  # doctest: +SKIP
        ['hammers_a01', 'hammers_a08', 'sca2_02', 'sca2_03', 'sca2_06']
    """
    from nnunet_ataxia.dataset_conversion.Dataset501_HammersN30R95 import find_hammers_cases
    from nnunet_ataxia.dataset_conversion.Dataset502_SCA2Cohort import find_sca2_cases, sca2_case_id
    from nnunet_ataxia.dataset_conversion.Dataset503_Data2 import table1_split

    demo_data = Path(demo_data)
    t1s, groups = {}, {}
    for c in find_hammers_cases(demo_data / "hammers"):
        t1s[f"hammers_{c['subject']}"], groups[f"hammers_{c['subject']}"] = Path(c["image"]), "atlas"
    for c in find_sca2_cases(demo_data / "sca2"):
        t1s[sca2_case_id(c["subject"])], groups[sca2_case_id(c["subject"])] = Path(c["native_t1"]), c["group"]
    _, _, test = table1_split(groups)
    return {case: t1s[case] for case in test}


def _model_in_zip(zip_file: Path) -> str:
    """``Dataset.../Trainer__Plans__configuration`` of the one model in an exported nnU-Net zip."""
    marker = f"/fold_{release.FOLD}/checkpoint_final.pth"
    try:
        names = zipfile.ZipFile(zip_file).namelist()
    except (OSError, zipfile.BadZipFile) as e:
        raise InputError(f"{zip_file}: not a readable zip file ({e})") from None
    models = sorted({n[: -len(marker)] for n in names if n.endswith(marker)})
    if len(models) != 1:
        raise InputError(f"{zip_file}: expected one nnU-Net model with fold_{release.FOLD}/checkpoint_final.pth, "
                         f"found {len(models)}")
    return models[0]


def _image_suffix(path: Path) -> str:
    return ".nii.gz" if path.name.endswith(".nii.gz") else path.suffix


def segment_test_subjects(out: str | os.PathLike, demo_data: str | os.PathLike, results: str | os.PathLike,
                          ataxia: Ataxia, *, enabled: bool = True, zip_file: str | os.PathLike | None = None,
                          num_processes: int = 1) -> Path | None:
    """The demo's first step: install the pretrained M2 and ``segment`` the test subjects' native T1 scans.

    Prints one line and returns None when the step is switched off (``enabled=False``, ``--no-pretrained``) or when
    no model is available (this version ships no zip and none is given); the demo then goes on without it.

    Args:
        out: the demo folder.
        demo_data: the ``make-demo`` folder.
        results: the demo's ``nnUNet_results`` (the model is installed there with ``install-pretrained``).
        ataxia: runs one project command (``ataxia("segment", "-i", ...)``), raising on failure.
        enabled: False skips the step.
        zip_file: an exported model zip (``release.export_release``) instead of the one shipped in the package.
        num_processes: subjects segmented in parallel.

    Returns:
        The folder of the pretrained model's native cerebellum masks ``<case>.nii.gz`` (values 0/1), or None.

    Example:
        >>> segment_test_subjects("demo", "demo/demo_data", "demo/nnUNet_results", ataxia)  # doctest: +SKIP
        PosixPath('demo/pretrained/cerebellum_native')
    """
    base = Path(out) / "pretrained"
    masks = base / "cerebellum_native"
    if not enabled:
        print("skipped (--no-pretrained)", flush=True)
        return None
    if zip_file is None:
        try:
            zip_file = release.pretrained_zip_path()
        except InputError as e:  # the reason, without segment's advice about -m / -d
            print(f"skipped: {str(e).split(';')[0]}; the demo goes on with the training workflow "
                  f"(demo --pretrained-zip ZIP uses a model exported by train-pretrained)", flush=True)
            return None
        if release.release_note():
            print(release.release_note(), flush=True)
    zip_file = Path(zip_file)
    if not zip_file.is_file():
        raise InputError(f"{zip_file}: no such model zip (--pretrained-zip)")
    model = Path(results) / _model_in_zip(zip_file)

    subjects = demo_test_subjects(demo_data)
    t1_dir = base / "t1_native"
    t1_dir.mkdir(parents=True, exist_ok=True)
    for case, path in subjects.items():
        target = t1_dir / f"{case}{_image_suffix(path)}"
        if not target.is_file():
            shutil.copyfile(path, target)
    ataxia("install-pretrained", "--results", results, "--zip", zip_file)
    ataxia("segment", "-i", t1_dir, "-o", base / "segment", "-m", model, "-np", num_processes)
    with atomic_output_dir(masks) as tmp:
        for case in sorted(subjects):
            mask = base / "segment" / case / f"{case}_cerebellum.nii.gz"
            if not mask.is_file():
                raise InputError(f"{mask}: segment wrote no cerebellum mask (does {model} have a 'cerebellum' "
                                 f"label?)")
            shutil.copyfile(mask, tmp / f"{case}.nii.gz")
    return masks


def _trained_qc(t1s: dict[str, Path], predictions: Path, out: Path) -> Path:
    """QC pictures of the trained model's native cerebellum masks, as ``segment`` draws them."""
    import numpy as np
    import SimpleITK as sitk

    from nnunet_ataxia.inference.qc import qc_picture

    with atomic_output_dir(out) as tmp:
        for case, t1_path in sorted(t1s.items()):
            seg = sitk.ReadImage(str(predictions / f"{case}.nii.gz"))
            volume = np.count_nonzero(sitk.GetArrayViewFromImage(seg) == 1) * float(np.prod(seg.GetSpacing()))
            qc_picture(sitk.ReadImage(str(t1_path)), seg, {"cerebellum": 1}, tmp / f"{case}.png",
                       title=f"{case}: {TRAINED_NAME}", subtitle=f"cerebellum {volume / 1000:.1f} cm³ (native)")
    return out


def compare_with_trained(out: str | os.PathLike, raw: str | os.PathLike, demo_data: str | os.PathLike,
                         test_cases: Sequence[str], reference: str | os.PathLike,
                         sca2_reference: str | os.PathLike | None, pretrained: str | os.PathLike,
                         trained: str | os.PathLike, ataxia: Ataxia) -> dict[str, list]:
    """Both models against the native ground truth: Dice and volumes (``evaluate``), the SCA2 subjects' volumes
    with ACAPULCO (``compare-volumes``), and QC pictures of both.

    Args:
        out: the demo folder.
        raw: the Data2 raw dataset (``dataset.json``, ``participants.tsv``).
        demo_data: the ``make-demo`` folder (native T1s, ACAPULCO outputs).
        test_cases: the test split's case ids.
        reference: native ground-truth cerebellum masks of every test case.
        sca2_reference: the same for the SCA2 test subjects only (None when the split has none).
        pretrained: the pretrained model's native cerebellum masks (:func:`segment_test_subjects`).
        trained: the trained model's native predictions (``to-native``).
        ataxia: runs one project command, raising on failure.

    Returns:
        Extra arguments for ``report``: ``{"evaluation": [...], "volumes": [...], "qc": ["NAME=FOLDER", ...]}``.

    Example:
        >>> compare_with_trained("demo", raw, "demo/demo_data", cases, "demo/reference_native_test",  # doctest: +SKIP
        ...                      "demo/reference_native", "demo/pretrained/cerebellum_native",
        ...                      "demo/predictions_native", ataxia)
    """
    out, raw, pretrained, trained = Path(out), Path(raw), Path(pretrained), Path(trained)
    segmented = sorted(p.name[: -len(".nii.gz")] for p in pretrained.glob("*.nii.gz"))
    if segmented != sorted(test_cases):
        raise InputError(f"{pretrained}: the pretrained model segmented {segmented}, but the test split is "
                         f"{sorted(test_cases)}; delete {pretrained.parent} and re-run the demo")
    evaluation = out / "evaluation_native"
    ataxia("evaluate", "--pred", f"{PRETRAINED_NAME}={pretrained}", "--pred", f"{TRAINED_NAME}={trained}",
           "--ref", reference, "--dataset-json", raw / "dataset.json", "--participants", raw / "participants.tsv",
           "--out", evaluation)
    extra: dict[str, list] = {"evaluation": [evaluation], "volumes": [], "qc": []}
    if sca2_reference is not None:
        sca2_cases = sorted(p.name[: -len(".nii.gz")] for p in Path(sca2_reference).glob("*.nii.gz"))
        sca2_pred = pretrained.parent / "cerebellum_native_sca2"
        sca2_pred.mkdir(exist_ok=True)
        for case in sca2_cases:
            shutil.copy2(pretrained / f"{case}.nii.gz", sca2_pred / f"{case}.nii.gz")
        volumes = out / "volumes_pretrained"
        ataxia("compare-volumes", "--ref", sca2_reference, "--pred", sca2_pred, "--labels", 1,
               "--acapulco", Path(demo_data) / "sca2" / "derivatives" / "acapulco",
               "--participants", raw / "participants.tsv", "--model-name", PRETRAINED_NAME, "--out", volumes)
        extra["volumes"].append(volumes)
    t1s = demo_test_subjects(demo_data)
    qc_trained = _trained_qc({c: t1s[c] for c in test_cases}, trained, out / "qc_trained")
    extra["qc"] = [f"{PRETRAINED_NAME}={pretrained.parent / 'segment' / 'qc'}", f"{TRAINED_NAME}={qc_trained}"]
    return extra
