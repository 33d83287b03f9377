"""The project's process pool shares the cores out: SimpleITK threads per case, and results that repeat bit for bit."""
from __future__ import annotations

import hashlib

import SimpleITK as sitk

from nnunet_ataxia.cli import main
from nnunet_ataxia.io import parallel
from nnunet_ataxia.io.parallel import available_cores, run_cases, threads_per_process
from nnunet_ataxia.synthesis.template_subjects import make_native_subject

ITK_THREADS_ENV = "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"


def itk_threads(_case) -> int:
    """What a case sees (module level: the spawned workers import it)."""
    return sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()


def test_threads_per_process_shares_the_cores_out():
    cores = available_cores()
    assert threads_per_process(1) == cores
    assert threads_per_process(cores) == 1
    assert threads_per_process(2 * cores + 1) == 1   # never zero
    assert threads_per_process(2) == max(1, cores // 2)


def test_each_worker_gets_its_share_of_simpleitk_threads(monkeypatch):
    monkeypatch.delenv(ITK_THREADS_ENV, raising=False)
    assert run_cases(itk_threads, [0, 1, 2], 2, "threads", progress=False) == [threads_per_process(2)] * 3


def test_a_lower_itk_thread_setting_is_kept(monkeypatch):
    monkeypatch.setattr(parallel, "available_cores", lambda: 8)   # 2 processes would get 4 threads each
    monkeypatch.setenv(ITK_THREADS_ENV, "1")                      # ... but the user asked ITK for one
    assert run_cases(itk_threads, [0, 1], 2, "threads", progress=False) == [1, 1]

    before = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    try:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
        assert run_cases(itk_threads, [0], 1, "threads", progress=False) == [1]   # in this process: kept too
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(3)
        assert run_cases(itk_threads, [0], 1, "threads", progress=False) == [3]   # 8 cores, 1 process: 3 < 8
        assert run_cases(itk_threads, [0], 4, "threads", progress=False) == [2]   # one case, -np 4: 8 // 4
        assert sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() == 3          # restored afterwards
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(before)


def test_preprocessing_repeats_bit_for_bit_with_one_process_per_core(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for seed in (2, 3):
        t1, _, _ = make_native_subject(3.0, bias_strength=0.3, seed=seed)
        sitk.WriteImage(t1, str(images / f"s{seed:02d}_0000.nii.gz"))
    digests = []
    for run in ("first", "second"):
        out = tmp_path / run
        assert main(["preprocess-mri", "-i", str(images), "-o", str(out), "--no-skull-strip",
                     "--registration-template-mm", "3", "-np", str(available_cores())]) == 0
        digests.append({str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
                        for p in sorted(out.glob("*.nii.gz")) + sorted(out.glob("transforms/*/*.tfm"))})
    assert len(digests[0]) == 4   # two images, two transforms
    assert digests[0] == digests[1]
