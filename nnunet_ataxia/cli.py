"""``nnunet-ataxia``: one console script with sub-commands.

Each sub-command lives in its own module (``nnunet_ataxia.commands.<name>``) that defines
``add_arguments(parser)`` and ``run(args) -> int``. Modules are imported lazily so that ``nnunet-ataxia --help``
stays fast and a broken optional part cannot break the others.
"""
from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from collections.abc import Sequence

from nnunet_ataxia.errors import InputError, one_line, os_error_message

# sub-command name -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "trainer-path": ("nnunet_ataxia.commands.trainer_path",
                     "print the folder to put in nnUNet_extTrainer so nnU-Net finds this plugin's trainers"),
    "plan": ("nnunet_ataxia.commands.plan",
             "plan and preprocess a dataset with the fixed 1 mm / 128x128x96 planner (nnUNetFixed128Plans)"),
    "preprocess-mri": ("nnunet_ataxia.commands.preprocess_mri",
                       "the paper's MRI preprocessing: N4, MNI registration, skull strip, equalize, crop"),
    "to-native": ("nnunet_ataxia.commands.to_native",
                  "map predictions made on preprocessed (MNI-cropped) images back to native space"),
    "convert-hammers": ("nnunet_ataxia.commands.convert_hammers",
                        "convert the Hammers n30r95 atlas into an nnU-Net raw dataset"),
    "convert-sca2": ("nnunet_ataxia.commands.convert_sca2",
                     "convert a BIDS-like SCA2 cohort with ACAPULCO outputs into an nnU-Net raw dataset"),
    "convert-data2": ("nnunet_ataxia.commands.convert_data2",
                      "merge Hammers (cerebellum only) and the SCA2 cohort into the paper's Data2"),
    "make-demo": ("nnunet_ataxia.commands.make_demo",
                  "generate demo subjects from real MNI anatomy shipped in PyPI packages"),
    "convert-wmh": ("nnunet_ataxia.commands.convert_wmh",
                    "convert T1+FLAIR+WMH data (plain or MICCAI-WMH-2017 layout) with location features"),
    "wmh-threshold": ("nnunet_ataxia.commands.wmh_threshold",
                      "find the Dice-maximizing threshold on validation probabilities and apply it"),
    "evaluate": ("nnunet_ataxia.commands.evaluate",
                 "per-case metrics, summary.json and a paper-style table for a prediction folder"),
    "compare-volumes": ("nnunet_ataxia.commands.compare_volumes",
                        "whole-cerebellum volumes: ground truth vs model vs ACAPULCO (the paper's Table 4)"),
    "wmh-tune-alpha": ("nnunet_ataxia.commands.wmh_tune_alpha",
                       "tune the WMH location-feature weight alpha on a fold's validation cases (best AUC)"),
    "wmh-random-forest": ("nnunet_ataxia.commands.wmh_random_forest", "the paper's random-forest WMH baseline"),
    "select-structure": ("nnunet_ataxia.commands.select_structure", "one-structure dataset from a 3-class one"),
    "wmh-stats": ("nnunet_ataxia.commands.wmh_stats",
                  "WMH threshold sweep, ROC/AUC and patient-level bootstrap comparison"),
    "report": ("nnunet_ataxia.commands.report", "gather an experiment's results into one Markdown/HTML page"),
    "train-pretrained": ("nnunet_ataxia.commands.train_pretrained",
                         "reproduce the pretrained M2: generate data, plan, train (resumable chunks), export"),
    "demo": ("nnunet_ataxia.commands.demo", "the main job: build the demo, convert, plan, train, predict, report"),
    "wmh-demo": ("nnunet_ataxia.commands.wmh_demo",
                 "WMH demo: SS vs SS+Loc (paper recipe) on generated data, threshold, ROC, bootstrap p-value, report"),
    "segment": ("nnunet_ataxia.commands.segment",
                "segment cerebellum and brainstem in native T1 images (pretrained M2): masks, volumes, QC"),
    "install-pretrained": ("nnunet_ataxia.commands.install_pretrained",
                           "install the shipped pretrained M2 into nnUNet_results (nnUNetv2_predict, fine-tuning)"),
}


class _OneLineParser(argparse.ArgumentParser):
    """argparse parser whose usage errors are one line ``error: <command>: <problem>`` (exit status 2)."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {one_line(message)} (see {self.prog} --help)\n")


def build_parser(available_only: bool = True) -> argparse.ArgumentParser:
    """Build the top-level parser with one sub-parser per sub-command module that can be imported."""
    parser = _OneLineParser(
        prog="nnunet-ataxia",
        description="nnU-Net v2 plugin for cerebellum/brainstem (SCA2) and WMH segmentation.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if available_only and e.name == module_name:
                continue  # sub-command not part of this installation yet
            raise
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def _fail(message: str, code: int) -> int:
    print(f"error: {one_line(message)}", file=sys.stderr)
    return code


_HANDLER_PID: int | None = None  # the process whose SIGTERM handler turns SIGTERM into Ctrl-C


def _sigterm(signum, frame) -> None:
    if os.getpid() != _HANDLER_PID:  # a forked child (a multiprocessing pool's worker) inherited the handler: die as
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # SIGTERM normally makes it, which Pool.terminate relies on
        os.kill(os.getpid(), signal.SIGTERM)
        return
    raise KeyboardInterrupt


def _terminate_like_ctrl_c() -> bool:
    """SIGTERM (``kill``, a batch system's time limit) ends a command as Ctrl-C does: the same one-line message,
    status 130, worker processes stopped, nothing half-written. Only from the main thread (signal's rule) and only
    over the default handler; True when installed (the default is to be restored). A forked child that inherits
    the handler (nnU-Net's fork pools) still dies on SIGTERM at once."""
    import threading

    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        return False
    global _HANDLER_PID
    _HANDLER_PID = os.getpid()
    signal.signal(signal.SIGTERM, _sigterm)
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``nnunet-ataxia`` console script.

    Every failure ends in one line ``error: <file or case>: <problem>`` on stderr and a non-zero exit status:
    1 for bad input and OS errors (permissions, read-only file system, disk full), 2 for a wrong command line,
    130 for Ctrl-C and SIGTERM. Set ``NNUNET_ATAXIA_TRACEBACK=1`` to get the traceback of an unexpected error.
    """
    installed = _terminate_like_ctrl_c()
    try:
        return _main(argv)
    finally:
        if installed:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _main(argv: Sequence[str] | None) -> int:
    try:  # importing the sub-commands (torch, nnU-Net) takes seconds: Ctrl-C there is one line too
        parser = build_parser()
        args = parser.parse_args(argv)
    except KeyboardInterrupt:
        return _fail("nnunet-ataxia: interrupted while starting; nothing was written", 130)
    try:
        code = args._run(args)
    except InputError as e:
        return _fail(str(e), 1)
    except KeyboardInterrupt as e:
        return _fail(str(e) or f"{args.command}: interrupted; outputs are written atomically, nothing half-written "
                               f"was left behind", 130)
    except OSError as e:
        return _fail(os_error_message(e), 1)
    except MemoryError:
        return _fail(f"{args.command}: out of memory (use fewer processes, or a machine with more memory)", 1)
    except Exception as e:  # a bug, not the user's fault: still one line, the traceback on request
        if os.environ.get("NNUNET_ATAXIA_TRACEBACK"):
            raise
        return _fail(f"{args.command}: unexpected {type(e).__name__}: {e} (this is a bug; re-run with "
                     f"NNUNET_ATAXIA_TRACEBACK=1 and report the traceback)", 1)
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
