"""``nnunet-ataxia compare-volumes``: whole-cerebellum volumes, ground truth vs model vs ACAPULCO (Table 4)."""
from __future__ import annotations

import argparse

from nnunet_ataxia.utils.output_folders import add_overwrite_argument

#: files that identify an output folder of this command written before the marker file existed
LEGACY_OUTPUT_FILES = ("volumes.csv", "volumes_summary.json")


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


def _groups_and_subjects(path):
    if not path:
        return {}, {}
    from nnunet_ataxia.utils.checked_io import read_table
    df = read_table(path, what="participants table", sep="\t", required=("case_id", "group"), id_column="case_id",
                    group_column="group")
    subjects = dict(zip(df["case_id"], df["subject"])) if "subject" in df.columns else {}
    return dict(zip(df["case_id"], df["group"])), subjects


def _mask_rows(args, groups, subjects, sources) -> list[dict]:
    from nnunet_ataxia.errors import InputError
    from nnunet_ataxia.evaluation.io import list_cases, load_dataset_labels
    from nnunet_ataxia.evaluation.volumes import acapulco_case_volume, case_volumes
    from nnunet_ataxia.utils.checked_io import check_case_sets

    labels = args.labels
    if labels is None and args.dataset_json:
        structures, _, _ = load_dataset_labels(args.dataset_json)
        if "cerebellum" not in structures:
            raise InputError(f"{args.dataset_json}: no label named 'cerebellum'; pass --labels")
        labels = list(structures["cerebellum"])
    refs = list_cases([args.ref])
    preds = list_cases([args.pred])
    if not refs:
        raise InputError(f"{args.ref}: no ground-truth masks (.nii.gz) in this folder")
    if not preds:
        raise InputError(f"{args.pred}: no prediction images found")
    check_case_sets(refs, preds, f"the ground truth in {args.ref}", args.pred, what="subject")
    rows = []
    for case in sorted(preds):
        gt, model = case_volumes(refs[case], preds[case], labels)
        row = {"case_id": case, "group": groups.get(case, ""), "ground_truth": gt, "model": model}
        if args.acapulco:
            row["acapulco"], sources[case] = acapulco_case_volume(
                args.acapulco, case, subjects.get(case), args.acapulco_transform, args.transform_direction)
        rows.append(row)
    return rows


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from nnunet_ataxia.errors import InputError
    from nnunet_ataxia.evaluation.io import dataframe_markdown
    from nnunet_ataxia.evaluation.plots import bland_altman_plot, scatter_plot
    from nnunet_ataxia.evaluation.segmentation_eval import write_json
    from nnunet_ataxia.evaluation.volumes import group_summaries, compare_volumes, paired_statistics, \
        read_volumes_csv, volumes_table_markdown
    from nnunet_ataxia.utils.output_folders import check_output_folder, output_folder

    transform_folder = None if not args.acapulco_transform or "{case}" in args.acapulco_transform \
        else args.acapulco_transform
    guard = dict(inputs=[args.volumes_csv, args.ref, args.pred, args.dataset_json, args.acapulco, transform_folder,
                         args.participants], overwrite=args.overwrite, recognize=LEGACY_OUTPUT_FILES)
    check_output_folder(args.out, "compare-volumes", **guard)
    groups, subjects = _groups_and_subjects(args.participants)
    sources: dict[str, str] = {}
    if args.volumes_csv:
        df = read_volumes_csv(args.volumes_csv)
        if groups:
            df["group"] = [groups.get(c, g) for c, g in zip(df["case_id"], df["group"])]
    else:
        if not (args.ref and args.pred):
            raise InputError("compare-volumes: give --volumes-csv, or --ref and --pred (native-space masks)")
        df = pd.DataFrame(_mask_rows(args, groups, subjects, sources))
    if df.empty:
        raise InputError("compare-volumes: no subject to compare")

    table = compare_volumes(df)
    summary = group_summaries(table)
    stats = paired_statistics(table)
    stats["acapulco_source"] = sources
    stats["model_name"] = args.model_name
    methods = {args.model_name: table["model"].to_numpy()}
    if "acapulco" in table.columns:
        methods["ACAPULCO"] = table["acapulco"].to_numpy()

    with output_folder(args.out, "compare-volumes", **guard) as tmp:
        table.to_csv(tmp / "volumes.csv", index=False)
        summary.to_csv(tmp / "volumes_by_group.csv", index=False)
        write_json({"statistics": stats, "by_group": summary.to_dict(orient="records")}, tmp / "volumes_summary.json")
        md = ["## Whole-cerebellum volumes (native space, mm³)", "",
              volumes_table_markdown(table, args.model_name), "", "### By group", "",
              dataframe_markdown(summary.rename(columns=lambda c: c.replace("model", args.model_name).replace(
                  "acapulco", "ACAPULCO").replace("ground_truth", "GT"))), ""]
        if "closer" in table.columns:
            c = stats["closer_counts"]
            md += [f"{args.model_name} is closer to the ground truth on {c['model']} of {len(table)} subjects, "
                   f"ACAPULCO on {c['acapulco']} (ties: {c['tie']}).", ""]
        (tmp / "volumes_table.md").write_text("\n".join(md))
        bland_altman_plot(table["ground_truth"], methods, tmp / "bland_altman.png", labels=list(table["case_id"]))
        scatter_plot(table["ground_truth"], methods, tmp / "scatter.png", groups=list(table["group"]))
    print(f"compared volumes of {len(table)} subjects -> {args.out}")
    return 0

