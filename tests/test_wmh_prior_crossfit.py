"""The WMH prior channel: cross-fitted by default (no training case's prior holds its own labels), pooled on request,
or a fixed external prior; built by the converter's own prior step on constructed cases."""
from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_ataxia.dataset_conversion.Dataset504_WMH import _write_prior_channels
from nnunet_ataxia.errors import InputError
from nnunet_ataxia.preprocessing.wmh_mni_map import MNIMap
from nnunet_ataxia.preprocessing.wmh_pipeline import WMHOptions
from nnunet_ataxia.preprocessing.wmh_prior import prior_sources, read_external_prior

SHAPE = (16, 28, 20)   # (z, y, x) at 4 mm, inside the MNI template's box
OPTIONS = WMHOptions(prior_grid_mm=4.0, prior_sigma_mm=3.0)
N_TRAIN, N_TEST = 60, 60
N_LESIONS = 8


def _reference() -> sitk.Image:
    ref = sitk.Image(SHAPE[::-1], sitk.sitkUInt8)
    ref.SetSpacing((4.0, 4.0, 4.0))
    ref.SetOrigin((-40.0, 60.0, -20.0))
    ref.SetDirection((1, 0, 0, 0, -1, 0, 0, 0, 1))   # as the MNI152 template
    return ref


def _lesions(rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[slice, ...]]]:
    """Small lesions, half near one "periventricular" spot, half anywhere in the brain; and each lesion's box."""
    label = np.zeros(SHAPE, np.uint8)
    hot = np.array([8, 14, 10])
    boxes = []
    for i in range(N_LESIONS):
        if i % 2 == 0:
            centre = np.clip(np.rint(hot + rng.normal(0, 2.0, 3)), 2, np.array(SHAPE) - 3).astype(int)
        else:
            centre = np.array([rng.integers(2, n - 2) for n in SHAPE])
        z, y, x = centre
        boxes.append((slice(z - 1, z + 1), slice(y - 1, y + 2), slice(x - 1, x + 2)))
        label[boxes[-1]] = 1
    return label, boxes


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """40 training + 20 test cases on one grid, identity FLAIR->MNI maps."""
    out = tmp_path_factory.mktemp("prior")
    ref = _reference()
    rng = np.random.default_rng(0)
    roles = {f"tr{i:02d}": "Tr" for i in range(N_TRAIN)} | {f"ts{i:02d}": "Ts" for i in range(N_TEST)}
    brain = np.zeros(SHAPE, np.uint8)
    brain[1:-1, 1:-1, 1:-1] = 1
    for sub in ("labelsTr", "labelsTs", "imagesTr", "imagesTs", "brainmasks"):
        (out / sub).mkdir()
    boxes = {}
    for cid, role in roles.items():
        label, boxes[cid] = _lesions(rng)
        for name, arr in ((f"labels{role}/{cid}", label), (f"brainmasks/{cid}", brain)):
            img = sitk.GetImageFromArray(arr)
            img.CopyInformation(ref)
            sitk.WriteImage(img, str(out / f"{name}.nii.gz"))
        MNIMap(np.eye(4)).save(out / "transforms" / cid)
    return out, roles, boxes


def _prior_at_lesions(dataset, role: str) -> np.ndarray:
    """The mean prior channel over every generated lesion of the cases of one role."""
    out, roles, boxes = dataset
    values = []
    for cid in (c for c, r in roles.items() if r == role):
        prior = sitk.GetArrayFromImage(sitk.ReadImage(str(out / f"images{role}/{cid}_0009.nii.gz")))
        values += [float(prior[box].mean()) for box in boxes[cid]]
    return np.asarray(values)


def _write(out, roles, mode):
    train = [c for c, r in roles.items() if r == "Tr"]
    sources = prior_sources(train, [c for c, r in roles.items() if r == "Ts"], mode, num_folds=5)
    _write_prior_channels(out, sources, roles, OPTIONS, {"mode": mode}, prior_channel=9)
    return sources


def test_crossfitted_prior_has_the_same_distribution_at_training_and_test_lesions(dataset):
    out, roles, _ = dataset
    sources = _write(out, roles, "crossfit")
    for cid, role in roles.items():
        assert cid not in sources[cid]   # no case's own labels in its prior
        assert len(sources[cid]) == (N_TRAIN * 4 // 5 if role == "Tr" else N_TRAIN)
    # lesion-level values: the lesions of both roles are drawn from one distribution
    train, test = _prior_at_lesions(dataset, "Tr"), _prior_at_lesions(dataset, "Ts")
    # same distribution within noise: medians and quartiles agree, and a KS test does not separate them
    from scipy.stats import ks_2samp

    for q in (25, 50, 75):
        assert np.percentile(train, q) == pytest.approx(np.percentile(test, q), rel=0.25), q
    assert ks_2samp(train, test).pvalue > 0.01
    info = json.loads((out / "wmh_prior.json").read_text())
    assert info["mode"] == "crossfit" and info["built_from"] == sorted(c for c in roles if c.startswith("tr"))
    assert len(info["left_out_per_prior"]) == 5 and info["prior_of_case"]["ts00"] == "pool"


def test_pooled_prior_leaks_training_labels_which_the_same_comparison_detects(dataset):
    out, roles, _ = dataset
    _write(out, roles, "pooled")
    train, test = _prior_at_lesions(dataset, "Tr"), _prior_at_lesions(dataset, "Ts")
    # a training case's own lesions lift its prior where the other cases have none (the lower quartile)
    assert np.percentile(train, 25) > 1.25 * np.percentile(test, 25)
    from scipy.stats import ks_2samp

    assert ks_2samp(train, test).pvalue < 1e-3


def test_external_prior_is_used_for_every_case_and_checked_up_front(dataset, tmp_path):
    out, roles, _ = dataset
    grid = sitk.Image((60, 70, 50), sitk.sitkFloat32)
    grid.SetSpacing((3.0, 3.0, 3.0))
    grid.SetOrigin((-90.0, 126.0, -72.0))
    grid.SetDirection((1, 0, 0, 0, -1, 0, 0, 0, 1))
    arr = np.zeros((50, 70, 60), np.float32)
    arr[:, :, :30] = 0.2   # left half of MNI x
    arr[:, :, 30:] = 0.8
    img = sitk.GetImageFromArray(arr)
    img.CopyInformation(grid)
    sitk.WriteImage(img, str(tmp_path / "prior.nii.gz"))
    external = read_external_prior(tmp_path / "prior.nii.gz")
    _write_prior_channels(out, {}, roles, OPTIONS, {"mode": "file"}, prior_channel=9, external=external)
    for cid in ("tr00", "ts00"):
        role = "Tr" if cid.startswith("tr") else "Ts"
        ch = sitk.GetArrayFromImage(sitk.ReadImage(str(out / f"images{role}/{cid}_0009.nii.gz")))
        assert ch[8, 14, 2] == pytest.approx(0.25) and ch[8, 14, 17] == pytest.approx(1.0)
    arr[0, 0, 0] = 1.5
    bad = sitk.GetImageFromArray(arr)
    sitk.WriteImage(bad, str(tmp_path / "bad.nii.gz"))
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        read_external_prior(tmp_path / "bad.nii.gz")
    with pytest.raises(InputError, match="no such prior file"):
        read_external_prior(tmp_path / "missing.nii.gz")


def test_prior_sources_refuse_too_few_cases_and_overlaps():
    with pytest.raises(ValueError, match="at least 2"):
        prior_sources(["a"], ["b"])
    with pytest.raises(ValueError, match="both"):
        prior_sources(["a", "b"], ["b"])
    small = prior_sources(["a", "b", "c"], num_folds=5)   # fewer cases than folds: leave one out
    assert small == {"a": ("b", "c"), "b": ("a", "c"), "c": ("a", "b")}
