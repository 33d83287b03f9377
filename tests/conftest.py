"""Fixtures shared by several test modules (imports inside the fixtures: collecting other tests stays cheap).

Plain helpers (no fixtures) live in helper modules next to the tests, importable because this folder is put on
``sys.path`` here: nnunet_helpers.py (nnU-Net environment, running commands), synthetic_data.py, wmh_toy_data.py,
hammers_atlas.py, pretrained_standin.py, bad_input_data.py. No test module imports another test module.

Markers (declared in pyproject.toml): ``slow`` (10 s or more, counting the setup of the fixtures it needs) and ``e2e``
(runs real nnU-Net commands end to end); every ``e2e`` test is also ``slow``, so ``-m "not slow"`` is the quick run.
"""
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects
def pytest_collection_modifyitems(config, items):
    """An ``e2e`` test is always ``slow`` too (it trains or predicts with nnU-Net), even if only marked ``e2e``.

    The modules with ``e2e`` tests (the long ones: minutes each) run first, so that the two xdist workers
    (``--dist loadfile --no-loadscope-reorder``) share the short modules at the end instead of one worker running a
    long module alone; the order within each group, and of the tests within a module, is kept.
    """
    for item in items:
        if item.get_closest_marker("e2e") and not item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.slow)
    long_modules = {item.nodeid.split("::")[0] for item in items if item.get_closest_marker("e2e")}
    items.sort(key=lambda item: item.nodeid.split("::")[0] not in long_modules)   # stable: False (long) first


@pytest.fixture(scope="module")
def sitk_one_thread():
    """SimpleITK on one thread for a module (2-core CI; also makes the registrations reproducible), restored after.

    Use it with ``pytestmark = pytest.mark.usefixtures("sitk_one_thread")``: it is set up before the module's own
    module-scoped fixtures, so their registrations run single-threaded too.
    """
    import SimpleITK as sitk

    previous = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    yield
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(previous)


@pytest.fixture
def nnunet_environ(tmp_path, monkeypatch) -> dict:
    """nnU-Net's environment for one test, in ``os.environ`` (undone after the test) and returned as a dict.

    The folders are ``tmp_path/nnunet/nnUNet_{raw,preprocessed,results}`` (created); the rest is
    ``nnunet_helpers.nnunet_env``: this package's trainer shim folder as ``nnUNet_extTrainer``, ``nnUNet_n_proc_DA=0``,
    ``nnUNet_def_n_proc=2``, ``nnUNet_compile=false``, ``MPLBACKEND=Agg``. For in-process calls (the CLI's ``main``,
    nnU-Net's trainer look-up); for subprocesses pass the returned dict as ``env``. nnunetv2.paths reads the three
    folders when it is first imported: a test that needs them inside nnU-Net itself runs nnU-Net as a subprocess.
    """
    from nnunet_helpers import nnunet_env

    env = nnunet_env(tmp_path / "nnunet")
    for key, value in env.items():
        if os.environ.get(key) != value:
            monkeypatch.setenv(key, value)
    return env


@pytest.fixture(scope="session")
def standin_workspace(tmp_path_factory):
    """``(root, raw dataset, env)``: nnU-Net folders with a tiny Dataset510-like dataset
    (tests/pretrained_standin.py)."""
    from pretrained_standin import build_workspace

    root = tmp_path_factory.mktemp("pretrained_standin")
    raw, env = build_workspace(root)
    return root, raw, env


@pytest.fixture(scope="session")
def standin_model(standin_workspace):
    """The stand-in for the shipped pretrained model: the model folder of one smoke epoch (built once per session)."""
    from pretrained_standin import train_standin

    root, _, env = standin_workspace
    return train_standin(root, env)


@pytest.fixture(scope="session")
def standin_zip(standin_model, tmp_path_factory):
    """The stand-in model exported as a release zip, laid out like the shipped one (release.export_release)."""
    from nnunet_ataxia.pretrained import release

    return release.export_release(standin_model, tmp_path_factory.mktemp("standin_zip") / release.ZIP_NAME,
                                  validate=False)


@pytest.fixture(scope="session")
def load_benchmark():
    """A loader of the scripts in ``benchmarks/`` (not a package): ``load_benchmark("bench_x.py")`` is the module."""
    import importlib.util

    def load(file_name: str):
        path = Path(__file__).resolve().parents[1] / "benchmarks" / file_name
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
