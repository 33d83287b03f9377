"""``nnunet-ataxia report``: one Markdown + HTML page from the evaluate / compare-volumes / wmh-stats outputs."""
from __future__ import annotations

import argparse

from nnunet_ataxia.io.output_folders import add_overwrite_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", "-o", required=True,
                        help="report folder (report.md, report.html, figures/; written atomically, an existing "
                             "folder must be an earlier report)")
    parser.add_argument("--title", default="nnunet-ataxia experiment", help="page title")
    parser.add_argument("--evaluation", nargs="*", default=[], help="output folder(s) of 'nnunet-ataxia evaluate'")
    parser.add_argument("--volumes", nargs="*", default=[],
                        help="output folder(s) of 'nnunet-ataxia compare-volumes'")
    parser.add_argument("--wmh", nargs="*", default=[], help="output folder(s) of 'nnunet-ataxia wmh-stats'")
    parser.add_argument("--qc", nargs="*", default=[], metavar="[NAME=]FOLDER",
                        help="folder(s) of QC pictures <case>.png (e.g. segment's <out>/qc), one per model: each "
                             "case's pictures are shown side by side")
    parser.add_argument("--notes", help="free text placed under the title")
    add_overwrite_argument(parser)


def run(args: argparse.Namespace) -> int:
    from nnunet_ataxia.evaluation.report import build_report
    from nnunet_ataxia.io.cases import parse_named
    from nnunet_ataxia.io.output_folders import output_folder

    qc = [parse_named(spec, f"model {i + 1}") for i, spec in enumerate(args.qc)]
    with output_folder(args.out, "report", inputs=[*args.evaluation, *args.volumes, *args.wmh, *(f for _, f in qc)],
                       overwrite=args.overwrite, recognize=("report.md", "report.html")) as tmp:
        build_report(tmp, args.title, args.evaluation, args.volumes, args.wmh, args.notes, qc=qc)
    print(f"report -> {args.out}/report.html")
    return 0
