"""Small helpers around nnU-Net's environment variables and dataset names, with clear errors."""
from __future__ import annotations

import os
from pathlib import Path

from nnunet_ataxia.errors import InputError


def nnunet_folder(variable: str) -> Path:
    """The folder in the nnU-Net environment variable ``variable`` (``nnUNet_raw``, ...), or a clear error.

    Example:
        >>> nnunet_folder("nnUNet_raw")  # doctest: +SKIP
        PosixPath('/data/nnUNet_raw')
    """
    value = os.environ.get(variable)
    if not value:
        raise InputError(f"environment variable {variable} is not set: nnU-Net needs nnUNet_raw, "
                         f"nnUNet_preprocessed and nnUNet_results (see the README)")
    return Path(value)


def resolve_raw_dataset(dataset: str | int) -> tuple[str, Path]:
    """Find ``DatasetXXX_Name`` in ``$nnUNet_raw`` from an id or name; check that its dataset.json exists.

    Args:
        dataset: an integer id (``501``), its string form, or the full name.

    Returns:
        The dataset name and its raw folder.

    Example:
        >>> resolve_raw_dataset(501)  # doctest: +SKIP
        ('Dataset501_HammersN30R95', PosixPath('/data/nnUNet_raw/Dataset501_HammersN30R95'))
    """
    raw = nnunet_folder("nnUNet_raw")
    text = str(dataset)
    if text.startswith("Dataset"):
        candidates = [raw / text] if (raw / text).is_dir() else []
    else:
        try:
            dataset_id = int(text)
        except ValueError:
            raise InputError(f"dataset '{text}': give a numeric id (e.g. 501) or a name like Dataset501_Hammers")
        prefix = f"Dataset{dataset_id:03d}_"
        candidates = sorted(p for p in raw.iterdir() if p.is_dir() and p.name.startswith(prefix)) \
            if raw.is_dir() else []
    if not candidates:
        raise InputError(f"dataset '{text}': no such dataset in nnUNet_raw ({raw})")
    if len(candidates) > 1:
        raise InputError(f"dataset '{text}': several datasets share this id in {raw}: "
                         f"{', '.join(p.name for p in candidates)}")
    folder = candidates[0]
    if not (folder / "dataset.json").is_file():
        raise InputError(f"{folder / 'dataset.json'}: missing; every nnU-Net raw dataset needs a dataset.json")
    return folder.name, folder
