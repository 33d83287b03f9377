"""``nnunet-ataxia install-pretrained``: put the shipped pretrained M2 into ``nnUNet_results`` (re-running is safe;
installed files that differ from the shipped ones are replaced only with ``--overwrite``).

Afterwards the stock ``nnUNetv2_predict -d 510 ...`` finds it, and ``-pretrained_weights`` can point at its
checkpoint for fine-tuning.
"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", default=None,
                        help="the nnUNet_results folder to install into (default: $nnUNet_results)")
    parser.add_argument("--zip", default=None,
                        help="install another exported release zip instead of the one shipped in the package")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace installed files that differ from the zip's (a fine-tuned checkpoint, edited "
                             "plans); without it such files are never replaced")


def run(args: argparse.Namespace) -> int:
    from nnunet_ataxia.pretrained import release

    folder = release.install_pretrained(args.results, zip_file=args.zip, overwrite=args.overwrite)
    print(f"installed the pretrained model in {folder}")
    from nnunetv2.utilities.dataset_name_id_conversion import convert_dataset_name_to_id
    from nnunetv2.utilities.file_path_utilities import convert_identifier_to_trainer_plans_config

    dataset_id = convert_dataset_name_to_id(folder.parent.name)   # the installed model's own identity
    trainer, plans, configuration = convert_identifier_to_trainer_plans_config(folder.name)
    print(f"predict with: nnUNetv2_predict -i INPUT -o OUTPUT -d {dataset_id} -c {configuration} "
          f"-tr {trainer} -p {plans} -f {release.FOLD}")
    print("  (INPUT: images preprocessed with 'nnunet-ataxia preprocess-mri'; or run 'nnunet-ataxia segment' on "
          "native T1s; nnUNet_extTrainer must be set, see 'nnunet-ataxia trainer-path')")
    return 0
