"""``nnunet-ataxia train-pretrained``: reproduce the released pretrained M2 from scratch (resumable).

Generates the domain-randomized subjects, plans them with the fixed 1 mm / 128x128x96 planner, trains
``M2InceptionTrainer_pretrained`` (fold 0) with ``nnUNetv2_train`` and exports it with ``nnUNetv2_export_model_to_zip``.
``--contrast-finetune`` adds 80 random-contrast subjects and a second stage,
``M2InceptionTrainer_pretrainedContrastFinetune``; ``--contrast-finetune 2`` 160 and a third stage after it,
``M2InceptionTrainer_pretrainedContrastFinetune2`` (model v1); the last stage is exported.
``--label-maps DIR`` trains the shipped model instead, from pseudo-subjects rendered from the real whole-head label
maps in DIR (SynthSeg's ``data/training_label_maps``; five of them are held out): two runs,
``M2InceptionTrainer_pretrainedLabelMaps`` (model v2, fine-tuning model v1 or ``--initial-weights``) and then
``M2InceptionTrainer_pretrainedLabelMapsFolia`` from it (:mod:`nnunet_ataxia.pretrained.released_recipe`);
with ``--model-v2-only`` only the first;
with ``--cortex-rim`` the subjects are rendered with a partial-volume rim on the cortex and the stage is
``M2InceptionTrainer_pretrainedLabelMapsRim``, a shorter fine-tuning meant to start from a trained model v2;
with ``--cortex-folia`` the cerebellar cortex gets thin sulci drawn at 0.5 mm and the stage is
``M2InceptionTrainer_pretrainedLabelMapsFolia`` (16 epochs, from a trained model v2: the shipped model);
with ``--no-dropout`` the stage is ``M2InceptionTrainer_pretrainedLabelMapsNoDropout`` (the same data, no dropout,
16 epochs, also from a trained model v2);
with ``--from-scratch`` the model v2 is trained from random weights with the first stage of model v1
(``M2InceptionTrainer_pretrained``, 120 epochs) instead.
Run it again with the same ``--work`` to continue: finished steps are skipped and training resumes with ``--c``.
"""
from __future__ import annotations

import argparse

from nnunet_ataxia.io.arguments import positive_float, positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--work", required=True, help="work folder (nnUNet_raw/_preprocessed/_results inside)")
    parser.add_argument("--hours", type=positive_float, default=None,
                        help="end this training chunk at the first epoch end after H hours (resume by re-running)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--label-maps", default=None, metavar="DIR",
                        help="train the shipped model (model v2, then its folia fine-tuning) on subjects rendered "
                             "from the label maps in DIR (SynthSeg's data/training_label_maps, "
                             "training_seg_01..20.nii.gz)")
    parser.add_argument("--model-v2-only", action="store_true",
                        help="with --label-maps: train model v2 only (one run, M2InceptionTrainer_pretrained"
                             "LabelMaps), not its folia fine-tuning after it")
    parser.add_argument("--cortex-rim", action="store_true",
                        help="with --label-maps: render the subjects with the outer cortex layers blended towards "
                             "CSF and fine-tune with M2InceptionTrainer_pretrainedLabelMapsRim (24 epochs; needs "
                             "--initial-weights: a model v2 zip)")
    parser.add_argument("--cortex-folia", action="store_true",
                        help="with --label-maps: render thin sulci between the cerebellar folia (drawn at 0.5 mm, "
                             "averaged back) and fine-tune with M2InceptionTrainer_pretrainedLabelMapsFolia (16 "
                             "epochs; needs --initial-weights: a model v2 zip)")
    parser.add_argument("--no-dropout", action="store_true",
                        help="with --label-maps: fine-tune without dropout, M2InceptionTrainer_pretrainedLabelMaps"
                             "NoDropout (16 epochs; needs --initial-weights: a model v2 zip)")
    parser.add_argument("--from-scratch", action="store_true",
                        help="with --label-maps: train from random weights (M2InceptionTrainer_pretrained, 120 "
                             "epochs) instead of fine-tuning model v1")
    parser.add_argument("--initial-weights", default=None,
                        help="with --label-maps: the model zip or checkpoint to fine-tune (default: model v1, shipped "
                             "in the package for this)")
    parser.add_argument("--n-train", type=positive_int, default=None,
                        help="generated training subjects (default 160; 180 with --label-maps)")
    parser.add_argument("--n-val", type=positive_int, default=None,
                        help="generated validation subjects (default 12; 15 with --label-maps)")
    parser.add_argument("--contrast-finetune", type=int, nargs="?", const=1, default=0, choices=(0, 1, 2),
                        metavar="N",
                        help="also generate random-contrast subjects and fine-tune on them in N more stages: 1 (the "
                             "flag alone): 80 subjects, M2InceptionTrainer_pretrainedContrastFinetune; 2: then 80 "
                             "more and M2InceptionTrainer_pretrainedContrastFinetune2 from it")
    parser.add_argument("-np", "--num-processes", type=positive_int, default=2,
                        help="processes for data generation/planning")
    parser.add_argument("--resume-state", default=None,
                        help="folder saved by --save-state in an earlier session (e.g. ~/m2_state)")
    parser.add_argument("--save-state", default=None, help="copy the resumable training state here afterwards")
    parser.add_argument("--export", default=None, help="write the model's nnU-Net zip here afterwards")
    parser.add_argument("--overwrite", action="store_true",
                        help="allow a non-empty --work/--save-state folder that is not an earlier output of this run")
    parser.add_argument("--export-checkpoint", default=None,
                        help="checkpoint to export (default: checkpoint_final.pth if finished, else the latest)")


def run(args: argparse.Namespace) -> int:
    from nnunet_ataxia.errors import InputError
    from nnunet_ataxia.pretrained import release
    from nnunet_ataxia.pretrained.released_recipe import train_released_model
    from nnunet_ataxia.pretrained.training_run import train_pretrained

    variant = next((f"--{name.replace('_', '-')}" for name in ("cortex_rim", "cortex_folia", "from_scratch",
                                                                "no_dropout", "contrast_finetune")
                    if getattr(args, name)), None)
    if args.model_v2_only and (args.label_maps is None or variant):
        raise InputError(f"--model-v2-only trains the first of the two --label-maps runs; "
                         f"{'it cannot be combined with ' + variant if variant else 'it needs --label-maps'}")

    stages, n_contrast = {0: (release.TRAINING_STAGES, 0),
                          1: (release.CONTRAST_FINETUNE_STAGES, release.CONTRAST_FINETUNE_SUBJECTS),
                          2: (release.CONTRAST_FINETUNE2_STAGES, release.CONTRAST_FINETUNE2_SUBJECTS)}[
        args.contrast_finetune]
    if args.label_maps is not None:   # the model v2's stages follow from its options (training_run.default_stages)
        stages = None
    defaults = (180, 15) if args.label_maps is not None else (160, 12)
    n_train = defaults[0] if args.n_train is None else args.n_train
    n_val = defaults[1] if args.n_val is None else args.n_val
    if args.label_maps is not None and not (variant or args.model_v2_only):   # the shipped model's two runs
        result = train_released_model(args.work, args.label_maps, n_train=n_train, n_val=n_val, hours=args.hours,
                                      device=args.device, num_processes=args.num_processes,
                                      initial_weights=args.initial_weights, resume_state=args.resume_state,
                                      save_state_to=args.save_state, export_to=args.export,
                                      export_checkpoint=args.export_checkpoint, overwrite=args.overwrite)
    else:
        result = train_pretrained(args.work, n_train=n_train, n_val=n_val, n_contrast=n_contrast,
                                  stages=stages, hours=args.hours, label_maps=args.label_maps,
                                  initial_weights=args.initial_weights, cortex_rim=args.cortex_rim,
                                  cortex_folia=args.cortex_folia, from_scratch=args.from_scratch,
                                  no_dropout=args.no_dropout, device=args.device,
                                  num_processes=args.num_processes, resume_state=args.resume_state,
                                  save_state_to=args.save_state, export_to=args.export,
                                  export_checkpoint=args.export_checkpoint, overwrite=args.overwrite)
    state = "finished" if result["finished"] else "not finished (re-run the same command to continue)"
    done = ", ".join(f"{trainer} {n}" for trainer, n in result["epochs_done"].items())
    print(f"training {state}: epochs done: {done}"
          + (f"; exported {result['exported']}" if result["exported"] else ""))
    return 0
