"""A one-structure dataset derived from a converted cerebellum/brainstem dataset (label filter).

Cabeza-Ruiz et al. train one network per structure, each with one sigmoid output (372,521 parameters for M1,
550,097 for M2). The project's default is one joint 3-class softmax network (background, cerebellum, brainstem).
:func:`select_structure` writes a dataset with the structure as its only, region-based label
(``{"background": 0, "<structure>": [1, 1]}``, ``regions_class_order [1]``): nnU-Net then builds the network with
one output channel and predicts with a sigmoid (nnU-Net treats a label as a region only when it lists more than one
value, so the region names label 1 twice; its voxels are those of label 1), which the ``*_oneStructure`` trainers
(:mod:`nnunet_ataxia.trainers.single_structure_trainers`) train with the paper's soft-Dice loss. Images are hard
links (copies across file systems) of the source's; labels are 1 on the structure, 0 elsewhere; ``splits_final.json``
and ``participants.tsv`` are carried over when present.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from nnunet_ataxia.errors import InputError
from nnunet_ataxia.io.constants import CEREBELLUM_BRAINSTEM_LABELS

__all__ = ["STRUCTURES", "one_structure_labels", "select_structure"]

STRUCTURES = tuple(k for k in CEREBELLUM_BRAINSTEM_LABELS if k != "background")


def one_structure_labels(structure: str) -> dict:
    """dataset.json ``labels`` of a one-structure dataset (region-based: one sigmoid output).

    Example:
        >>> one_structure_labels("cerebellum")
        {'background': 0, 'cerebellum': [1, 1]}
    """
    return {"background": 0, structure: [1, 1]}


def _link(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def select_structure(source: str | os.PathLike, structure: str, output: str | os.PathLike,
                     overwrite: bool = False) -> Path:
    """Write the one-structure dataset of ``structure`` from the 3-class dataset ``source`` (atomically).

    Args:
        source: a converted dataset folder (``dataset.json`` labels background/cerebellum/brainstem).
        structure: ``cerebellum`` or ``brainstem``.
        output: the new dataset folder (e.g. ``$nnUNet_raw/Dataset511_Cerebellum``).
        overwrite: replace an existing folder that is not an earlier output of this command.

    Returns:
        The output folder.

    Example:
        >>> select_structure("nnUNet_raw/Dataset501_HammersN30R95", "cerebellum",
        ...                  "nnUNet_raw/Dataset511_HammersCerebellum")  # doctest: +SKIP
    """
    from nnunet_ataxia.io.files import read_json
    from nnunet_ataxia.io.output_folders import output_folder

    source = Path(source)
    if structure not in STRUCTURES:
        raise InputError(f"structure {structure!r}: choose one of {', '.join(STRUCTURES)}")
    info = read_json(source / "dataset.json", "dataset.json")
    value = info.get("labels", {}).get(structure)
    if not isinstance(value, int) or isinstance(value, bool):
        raise InputError(f"{source / 'dataset.json'}: no integer label '{structure}' "
                         f"(labels {info.get('labels')}); give a cerebellum/brainstem dataset")
    ending = info.get("file_ending", ".nii.gz")
    n_channels = len(info.get("channel_names", {}))
    with output_folder(output, "select-structure", inputs=[source], overwrite=overwrite) as tmp:
        n_cases = 0
        for role in ("Tr", "Ts"):
            images, labels = source / f"images{role}", source / f"labels{role}"
            if images.is_dir():
                (tmp / f"images{role}").mkdir()
                for f in sorted(images.iterdir()):
                    _link(f, tmp / f"images{role}" / f.name)
            if labels.is_dir():
                (tmp / f"labels{role}").mkdir()
                for f in sorted(p for p in labels.iterdir() if p.name.endswith(ending)):
                    img = sitk.ReadImage(str(f))
                    out = sitk.GetImageFromArray((sitk.GetArrayFromImage(img) == value).astype(np.uint8))
                    out.CopyInformation(img)
                    sitk.WriteImage(out, str(tmp / f"labels{role}" / f.name), useCompression=True)
                    n_cases += role == "Tr"
        for extra in ("splits_final.json", "participants.tsv"):
            if (source / extra).is_file():
                shutil.copy2(source / extra, tmp / extra)
        new = {**info, "labels": one_structure_labels(structure), "regions_class_order": [1],
               "numTraining": n_cases, "derived_from": {"dataset": str(source), "structure": structure,
                                                        "label_value": value}}
        new["description"] = f"{structure} only (label {value} of {source.name}); {n_channels} channel(s)"
        (tmp / "dataset.json").write_text(json.dumps(new, indent=2))
    return Path(output)
