"""``nnunet-ataxia to-native``: map predictions on the preprocessed (MNI, cropped) grid back to native space.

For every ``<case>.nii.gz`` in the prediction folder (``nnUNetv2_predict``'s naming; ``<case>_0000.nii.gz`` is read as
``<case>`` too), reads ``<transforms>/<case>/`` (written by ``preprocess-mri`` or a converter run with
``--preprocess``), writes the native-space mask ``<output>/<case>.nii.gz``
and a table ``<output>/volumes_native.tsv`` with, per case and label, the volume in MNI mm³ (preprocessed grid),
in native mm³ measured on the mapped-back mask, and in native mm³ estimated as MNI volume × |det A|.
"""
from __future__ import annotations

import argparse

from nnunet_ataxia.utils.output_folders import add_overwrite_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", "--input", required=True, help="folder of predictions (<case>.nii.gz)")
    parser.add_argument("-t", "--transforms", required=True,
                        help="folder holding one transform folder per case (<dataset>/transforms)")
    parser.add_argument("-o", "--output", required=True,
                        help="output folder (written atomically; an existing folder must be an earlier to-native "
                             "output)")
    parser.add_argument("--interpolation", choices=("nearest", "linear"), default="nearest",
                        help="nearest neighbour, or label-wise linear interpolation of one-hot maps then argmax")
    add_overwrite_argument(parser)


def _cases(pred_dir, tr_dir):
    """(case id, prediction file, transform folder) per prediction; ``<case>_0000`` names are read as ``<case>``."""
    from nnunet_ataxia.commands.preprocess_mri import case_id_of, subject_id_of
    from nnunet_ataxia.errors import InputError
    from nnunet_ataxia.utils.checked_io import require_folder

    require_folder(pred_dir, "prediction folder")
    require_folder(tr_dir, "transform folder")
    preds = sorted(p for p in pred_dir.iterdir() if p.is_file() and p.name.endswith((".nii.gz", ".nii")))
    if not preds:
        raise InputError(f"{pred_dir}: no .nii.gz predictions")
    cases, seen = [], {}
    for p in preds:
        case = subject_id_of(p)
        if case in seen:
            raise InputError(f"{p}: case '{case}' is predicted twice (also {seen[case].name})")
        seen[case] = p
        folder = next((tr_dir / n for n in dict.fromkeys((case, case_id_of(p), f"{case}_0000"))
                       if (tr_dir / n).is_dir()), None)
        if folder is None:
            raise InputError(f"{p}: no transform folder {tr_dir / case} (preprocess-mri writes transforms/<case>/)")
        cases.append((case, p, folder))
    return cases


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import pandas as pd
    import SimpleITK as sitk
    from tqdm import tqdm

    from nnunet_ataxia.preprocessing.native_space import label_volumes_mm3, load_case_transform, map_to_native
    from nnunet_ataxia.preprocessing.registration import read_image
    from nnunet_ataxia.utils.checked_io import check_label_values
    from nnunet_ataxia.utils.output_folders import check_output_folder, output_folder

    pred_dir, tr_dir = Path(args.input), Path(args.transforms)
    check_output_folder(args.output, "to-native", inputs=[pred_dir, tr_dir], overwrite=args.overwrite)
    cases = _cases(pred_dir, tr_dir)
    rows = []
    with output_folder(args.output, "to-native", inputs=[pred_dir, tr_dir], overwrite=args.overwrite) as tmp:
        for case_id, p, folder in tqdm(cases, desc="to-native", unit="case", disable=None):
            pred = read_image(p)
            labels = check_label_values(sitk.GetArrayViewFromImage(pred), p, what="prediction")
            pred_int = sitk.GetImageFromArray(labels)
            pred_int.CopyInformation(pred)
            native = map_to_native(pred_int, folder, interpolation=args.interpolation, name=str(p))
            sitk.WriteImage(native, str(tmp / f"{case_id}.nii.gz"), useCompression=True)
            _, meta = load_case_transform(folder)
            mni = label_volumes_mm3(pred_int)
            nat = label_volumes_mm3(native, list(mni))
            for label, v in mni.items():
                rows.append({"case_id": case_id, "label": label, "volume_mni_mm3": v,
                             "volume_native_mm3": nat[label],
                             "volume_native_from_determinant_mm3": v * float(meta["linear_determinant"])})
        pd.DataFrame(rows, columns=["case_id", "label", "volume_mni_mm3", "volume_native_mm3",
                                    "volume_native_from_determinant_mm3"]).to_csv(
            tmp / "volumes_native.tsv", sep="\t", index=False)
    print(f"wrote {len(cases)} native-space mask(s) and volumes_native.tsv to {args.output}")
    return 0
