"""``nnunet-ataxia segment``: native T1 file(s) -> cerebellum and brainstem masks on the native grid, volumes, QC.

One library call: :func:`nnunet_ataxia.inference.segment.segment_images`, or with ``--merge``
:func:`nnunet_ataxia.inference.parts.merge_parts`.
"""
from __future__ import annotations

import argparse

from nnunet_ataxia.io.arguments import nonnegative_int, positive_float, positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", "--input", default=None,
                        help="a T1 image (.nii, .nii.gz, .mgz, ...), a folder of T1 images (any orientation, with or "
                             "without skull), or a BIDS dataset root (its sub-*/[ses-*/]anat/*_T1w.nii[.gz]; the "
                             "output is then also a BIDS-derivatives dataset)")
    parser.add_argument("-o", "--output", required=True,
                        help="output folder (created; an existing non-empty one must be a previous segment output)")
    model = parser.add_argument_group("model (default: the pretrained M2 shipped with the package)")
    model.add_argument("-m", "--model-folder", default=None,
                       help="an nnU-Net model folder (Trainer__Plans__configuration)")
    model.add_argument("-d", "--dataset", default=None, help="dataset id or name in $nnUNet_results")
    model.add_argument("-tr", "--trainer", default=None,
                       help="trainer of the -d model (default: the pretrained model's, "
                            "M2InceptionTrainer_pretrainedLabelMapsFolia)")
    model.add_argument("-p", "--plans", default=None, help="plans of the -d model (default nnUNetFixed128Plans)")
    model.add_argument("-c", "--configuration", default=None, help="configuration of the -d model (default 3d_fullres)")
    model.add_argument("-f", "--folds", nargs="+", default=None,
                       help="folds to ensemble (default: every fold with the checkpoint; the pretrained model: 0)")
    model.add_argument("-chk", "--checkpoint", default="checkpoint_final.pth", help="checkpoint file name")
    parser.add_argument("--disable_tta", "--no-mirror", dest="disable_tta", action="store_true",
                        help="no test-time mirroring (as nnUNetv2_predict's --disable_tta; by default the prediction "
                             "is averaged over the mirrorings the trainer allows: left-right for the pretrained model)")
    parser.add_argument("--mirror", action="store_true", help=argparse.SUPPRESS)  # the default; older scripts pass it
    parser.add_argument("-device", "--device", choices=("cuda", "cpu"), default=None,
                        help="default: cuda when available, else cpu")
    parser.add_argument("-np", "--num-processes", type=positive_int, default=1,
                        help="subjects processed in parallel (each process uses cores // N threads)")
    parser.add_argument("--participants", default=None,
                        help="TSV with columns case (or participant_id) and group: adds a group column")
    parser.add_argument("--native-mapping", choices=("probabilities", "labels"), default="probabilities",
                        help="back to native space: interpolate class probabilities then argmax (default), or "
                             "nearest-neighbour labels")
    parser.add_argument("--no-qc", action="store_true", help="skip the QC pictures")
    parser.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the registration's metric sampling")
    bids = parser.add_argument_group("BIDS input (-i is a BIDS dataset root)")
    bids.add_argument("--participant-label", "--participant_label", nargs="+", default=None, metavar="LABEL",
                      help="participants to segment (01 or sub-01; default: all)")
    bids.add_argument("--session-label", "--session_label", nargs="+", default=None, metavar="LABEL",
                      help="sessions to segment (1 or ses-1; default: all)")
    cohort = parser.add_argument_group("cohorts across machines (as nnUNetv2_predict -num_parts/-part_id)")
    cohort.add_argument("--num-parts", "-num_parts", type=positive_int, default=None, metavar="N",
                        help="split the sorted cases into N parts and segment one of them (--part-id)")
    cohort.add_argument("--part-id", "-part_id", type=nonnegative_int, default=None, metavar="I",
                        help="the part to segment, 0 to N-1: cases I, I+N, I+2N, ... of the sorted cases")
    cohort.add_argument("--merge", nargs="+", default=None, metavar="PART_DIR",
                        help="merge the parts' output folders into -o (one volumes.csv and QC index, as one run); "
                             "no -i")
    # advanced, for tests: register against a coarser template (faster, less accurate)
    parser.add_argument("--registration-template-mm", type=positive_float, default=1.0, help=argparse.SUPPRESS)
    parser.set_defaults(_segment_parser=parser)


def _usage(args: argparse.Namespace) -> None:
    """Usage errors that argparse cannot see alone: one line, exit status 2."""
    parser = args._segment_parser
    if args.merge is not None:
        extra = [name for name, value in (("-i", args.input), ("--num-parts", args.num_parts),
                                          ("--part-id", args.part_id), ("--participant-label", args.participant_label),
                                          ("--session-label", args.session_label)) if value is not None]
        if extra:
            parser.error(f"--merge takes the part folders and -o only, not {', '.join(extra)}")
        return
    if args.input is None:
        parser.error("the following arguments are required: -i/--input (or --merge PART_DIR...)")
    if (args.num_parts is None) != (args.part_id is None):
        parser.error("--num-parts and --part-id go together")
    if args.num_parts is not None and args.part_id >= args.num_parts:
        parser.error(f"--part-id {args.part_id}: must be below --num-parts {args.num_parts} (parts are 0 to N-1)")


def _run_merge(args: argparse.Namespace) -> int:
    import sys

    from nnunet_ataxia.inference.parts import merge_parts

    result = merge_parts(args.merge, args.output)
    print(f"merged {len(args.merge)} part(s), {len(result.rows)} subject(s): {args.output}/volumes.csv, "
          f"{args.output}/qc/index.html")
    if result.failed:
        print(f"error: {len(result.failed)} subject(s) failed in the parts: {', '.join(result.failed)}",
              file=sys.stderr)
        return 1
    return 0


def run(args: argparse.Namespace) -> int:
    _usage(args)
    if args.merge is not None:
        return _run_merge(args)
    from nnunet_ataxia.inference.segment import segment_images
    from nnunet_ataxia.inference.subject import SubjectOptions

    options = SubjectOptions(native_mapping=args.native_mapping, seed=args.seed, qc=not args.no_qc,
                             registration_template_spacing_mm=args.registration_template_mm)
    result = segment_images(args.input, args.output, model_folder=args.model_folder, dataset=args.dataset,
                            trainer=args.trainer, plans=args.plans, configuration=args.configuration,
                            folds=args.folds, checkpoint=args.checkpoint, mirror=not args.disable_tta,
                            device=args.device,
                            num_processes=args.num_processes, participants=args.participants, options=options,
                            participant_labels=args.participant_label, session_labels=args.session_label,
                            num_parts=args.num_parts, part_id=args.part_id or 0)
    import sys

    if len(result.rows) == 1 and result.failed:  # one input file: its problem is the message
        print(f"error: {next(iter(result.failed.values()))}", file=sys.stderr)
        return 1
    done = len(result.rows) - len(result.failed)
    notes = [f"{len(result.skipped)} done before with the same input, model and options, skipped"] \
        if result.skipped else []
    redone = getattr(result, "redone", {})
    if redone:
        reasons: dict[str, list[str]] = {}
        for case, reason in sorted(redone.items()):
            reasons.setdefault(reason, []).append(case)
        notes.append(f"{len(redone)} redone: " + "; ".join(f"{reason}: {', '.join(cases)}"
                                                           for reason, cases in reasons.items()))
    notes_text = f" ({'; '.join(notes)})" if notes else ""
    part = f" (part {args.part_id} of {args.num_parts})" if args.num_parts is not None else ""
    bids = f", BIDS derivatives ({args.output}/dataset_description.json)" \
        if getattr(result, "bids_derivatives", False) else ""
    print(f"segmented {done} of {len(result.rows)} subject(s){part}{notes_text}: {args.output}/volumes.csv, "
          f"{args.output}/qc/index.html{bids}")
    flagged = [f"{r['case']} ({r['implausible']})" for r in result.rows if r.get("implausible")]
    if flagged:
        print(f"warning: {args.output}/volumes.csv: {len(flagged)} subject(s) with a volume outside its plausible "
              f"range (column 'implausible'; check their QC pictures): {'; '.join(flagged[:5])}", file=sys.stderr)
    if result.failed:
        print(f"error: {len(result.failed)} subject(s) failed: {', '.join(sorted(result.failed))}", file=sys.stderr)
        return 1
    return 0
