"""``nnunet-ataxia segment``: native T1 file(s) -> cerebellum and brainstem masks on the native grid, volumes, QC.

One library call: :func:`nnunet_ataxia.inference.segment.segment_images`.
"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", "--input", required=True,
                        help="a T1 image (.nii, .nii.gz, .mgz, ...) or a folder of T1 images, any orientation, "
                             "with or without skull")
    parser.add_argument("-o", "--output", required=True,
                        help="output folder (created; an existing non-empty one must be a previous segment output)")
    model = parser.add_argument_group("model (default: the pretrained M2 shipped with the package)")
    model.add_argument("-m", "--model-folder", default=None,
                       help="an nnU-Net model folder (Trainer__Plans__configuration)")
    model.add_argument("-d", "--dataset", default=None, help="dataset id or name in $nnUNet_results")
    model.add_argument("-tr", "--trainer", default=None,
                       help="trainer of the -d model (default: the pretrained model's, "
                            "M2InceptionTrainer_pretrainedContrastFinetune2)")
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
    parser.add_argument("-np", "--num-processes", type=int, default=1,
                        help="subjects processed in parallel (each process uses cores // N threads)")
    parser.add_argument("--participants", default=None,
                        help="TSV with columns case (or participant_id) and group: adds a group column")
    parser.add_argument("--native-mapping", choices=("probabilities", "labels"), default="probabilities",
                        help="back to native space: interpolate class probabilities then argmax (default), or "
                             "nearest-neighbour labels")
    parser.add_argument("--no-qc", action="store_true", help="skip the QC pictures")
    parser.add_argument("--seed", type=int, default=0, help="seed of the registration's metric sampling")
    # advanced, for tests: register against a coarser template (faster, less accurate)
    parser.add_argument("--registration-template-mm", type=float, default=1.0, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    from nnunet_ataxia.inference.segment import segment_images
    from nnunet_ataxia.inference.subject import SubjectOptions

    options = SubjectOptions(native_mapping=args.native_mapping, seed=args.seed, qc=not args.no_qc,
                             registration_template_spacing_mm=args.registration_template_mm)
    result = segment_images(args.input, args.output, model_folder=args.model_folder, dataset=args.dataset,
                            trainer=args.trainer, plans=args.plans, configuration=args.configuration,
                            folds=args.folds, checkpoint=args.checkpoint, mirror=not args.disable_tta,
                            device=args.device,
                            num_processes=args.num_processes, participants=args.participants, options=options)
    import sys

    if len(result.rows) == 1 and result.failed:  # one input file: its problem is the message
        print(f"error: {next(iter(result.failed.values()))}", file=sys.stderr)
        return 1
    done = len(result.rows) - len(result.failed)
    skipped = f" ({len(result.skipped)} done before, skipped)" if result.skipped else ""
    print(f"segmented {done} of {len(result.rows)} subject(s){skipped}: {args.output}/volumes.csv, "
          f"{args.output}/qc/index.html")
    if result.failed:
        print(f"error: {len(result.failed)} subject(s) failed: {', '.join(sorted(result.failed))}", file=sys.stderr)
        return 1
    return 0
