"""MkDocs hook: writes the command-line reference from the parser itself, so it never drifts from ``--help``.

A page that contains the line ``<!-- cli-reference -->`` gets, in its place, one section per sub-command of
``nnunet-ataxia`` with its one-line summary and its ``--help`` text (argparse's own formatting, 100 columns).
"""

from __future__ import annotations

import argparse
import os

MARKER = "<!-- cli-reference -->"


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse keeps sub-parsers only here
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def cli_reference_markdown() -> str:
    """Markdown of every sub-command's ``--help``, in the order of ``nnunet-ataxia --help``."""
    os.environ.setdefault("COLUMNS", "100")  # argparse wraps help text at $COLUMNS
    from nnunet_ataxia.cli import SUBCOMMANDS, build_parser

    parser = build_parser(available_only=True)
    parser.prog = "nnunet-ataxia"
    parts = ["```text", parser.format_help().rstrip(), "```", ""]
    for name, sub in _subparsers(parser).items():
        summary = SUBCOMMANDS.get(name, ("", ""))[1]
        parts += [f"## `{name}`", "", summary + ("." if summary and not summary.endswith(".") else ""), "",
                  "```text", sub.format_help().rstrip(), "```", ""]
    return "\n".join(parts)


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ARG001 (MkDocs hook signature)
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, cli_reference_markdown())
