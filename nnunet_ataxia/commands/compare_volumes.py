"""``nnunet-ataxia compare-volumes``: whole-cerebellum volumes, ground truth vs model vs ACAPULCO (Table 4)."""
from __future__ import annotations

import argparse

from nnunet_ataxia.io.output_folders import add_overwrite_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", "-o", required=True,
                        help="output folder (written atomically; an existing folder must be an earlier "
                             "compare-volumes output)")
    parser.add_argument("--volumes-csv", help="already-computed volumes: case_id, group, ground_truth, model"
                                              "[, acapulco] in mm³ (e.g. the paper's Table 4)")
    parser.add_argument("--ref", help="native-space ground-truth masks <case>.nii.gz")
    parser.add_argument("--pred", help="native-space model masks <case>.nii.gz (run 'nnunet-ataxia to-native' "
                                       "first for predictions on the MNI-cropped grid)")
    parser.add_argument("--labels", type=int, nargs="+",
                        help="label values forming the cerebellum in --ref/--pred (default: 'cerebellum' from "
                             "--dataset-json, else every non-zero voxel)")
    parser.add_argument("--dataset-json", help="dataset.json to find the 'cerebellum' label")
    parser.add_argument("--acapulco", help="folder of ACAPULCO outputs: <case>/ subfolders or files named "
                                           "<case>_... (_seg_post_inverse.nii.gz preferred, then "
                                           "_seg_post_volumes.csv, then MNI-space _seg_post.nii.gz)")
    parser.add_argument("--acapulco-transform",
                        help="MNI<->native transform for MNI-space parcellations: a pattern with {case} or a folder "
                             "with <case>/<one transform file> (e.g. <raw dataset>/transforms)")
    parser.add_argument("--transform-direction", choices=("mni_to_native", "native_to_mni"),
                        default="mni_to_native", help="what the stored transform maps (ITK convention: "
                                                      "mni_to_native when MNI was the fixed image)")
    parser.add_argument("--participants", help="participants.tsv (case_id, group, subject)")
    parser.add_argument("--model-name", default="model", help="name of the model column (e.g. WDA)")
    add_overwrite_argument(parser)


def run(args: argparse.Namespace) -> int:
    from nnunet_ataxia.evaluation.volume_comparison import volume_comparison

    table = volume_comparison(args.out, volumes_csv=args.volumes_csv, ref=args.ref, pred=args.pred,
                              labels=args.labels, dataset_json=args.dataset_json, acapulco=args.acapulco,
                              acapulco_transform=args.acapulco_transform,
                              transform_direction=args.transform_direction, participants=args.participants,
                              model_name=args.model_name, overwrite=args.overwrite)
    print(f"compared volumes of {len(table)} subjects -> {args.out}")
    return 0
