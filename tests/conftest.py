"""Fixtures shared by several test modules (imports inside the fixtures: collecting other tests stays cheap)."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


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
