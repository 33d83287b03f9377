"""``nnunet-ataxia to-native``: map predictions on the preprocessed (MNI, cropped) grid back to native space.

For every ``<case>.nii.gz`` in the prediction folder, reads ``<transforms>/<case>/`` (written by
``preprocess-mri`` or a converter run with ``--preprocess``), writes the native-space mask ``<output>/<case>.nii.gz``
and a table ``<output>/volumes_native.tsv`` with, per case and label, the volume in MNI mm³ (preprocessed grid),
in native mm³ measured on the mapped-back mask, and in native mm³ estimated as MNI volume × |det A|.
"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", "--input", required=True, help="folder of predictions (<case>.nii.gz)")
    parser.add_argument("-t", "--transforms", required=True,
                        help="folder holding one transform folder per case (<dataset>/transforms)")
    parser.add_argument("-o", "--output", required=True, help="output folder (replaced atomically)")
    parser.add_argument("--interpolation", choices=("nearest", "linear"), default="nearest",
                        help="nearest neighbour, or label-wise linear interpolation of one-hot maps then argmax")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import pandas as pd
    import SimpleITK as sitk
    from tqdm import tqdm

    from nnunet_ataxia.commands.preprocess_mri import case_id_of
    from nnunet_ataxia.errors import InputError
    from nnunet_ataxia.preprocessing.native_space import label_volumes_mm3, load_case_transform, map_to_native
    from nnunet_ataxia.preprocessing.registration import read_image
    from nnunet_ataxia.utils.atomic import atomic_output_dir

    pred_dir, tr_dir = Path(args.input), Path(args.transforms)
    if not pred_dir.is_dir():
        raise InputError(f"{pred_dir}: not a folder")
    preds = sorted(p for p in pred_dir.iterdir() if p.is_file() and p.name.endswith((".nii.gz", ".nii")))
    if not preds:
        raise InputError(f"{pred_dir}: no .nii.gz predictions")
    for p in preds:
        if not (tr_dir / case_id_of(p)).is_dir():
            raise InputError(f"{p}: no transform folder {tr_dir / case_id_of(p)}")
    rows = []
    with atomic_output_dir(args.output) as tmp:
        for p in tqdm(preds, desc="to-native", unit="case"):
            case_id = case_id_of(p)
            pred = read_image(p)
            native = map_to_native(pred, tr_dir / case_id, interpolation=args.interpolation)
            sitk.WriteImage(native, str(tmp / f"{case_id}.nii.gz"), useCompression=True)
            _, meta = load_case_transform(tr_dir / case_id)
            mni = label_volumes_mm3(pred)
            nat = label_volumes_mm3(native, list(mni))
            for label, v in mni.items():
                rows.append({"case_id": case_id, "label": label, "volume_mni_mm3": v,
                             "volume_native_mm3": nat[label],
                             "volume_native_from_determinant_mm3": v * float(meta["linear_determinant"])})
        pd.DataFrame(rows, columns=["case_id", "label", "volume_mni_mm3", "volume_native_mm3",
                                    "volume_native_from_determinant_mm3"]).to_csv(
            tmp / "volumes_native.tsv", sep="\t", index=False)
    print(f"wrote {len(preds)} native-space mask(s) and volumes_native.tsv to {args.output}")
    return 0
