"""One page per experiment: the evaluate / compare-volumes / wmh-stats outputs (and segment's QC pictures) gathered
into Markdown and HTML.

The Markdown links the figures (copied to ``figures/``); the HTML embeds them (base64), so ``report.html`` can be
mailed or archived as a single file.
"""
from __future__ import annotations

import base64
import datetime as _dt
import html
import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from nnunet_ataxia.errors import InputError
from nnunet_ataxia.io.files import dataframe_markdown

#: (section title, the table file each command writes, its figures)
SECTIONS = {
    "evaluation": ("Segmentation accuracy", "table.md", ()),
    "volumes": ("Cerebellar volumes", "volumes_table.md", ("scatter.png", "bland_altman.png")),
    "wmh": ("White matter hyperintensities", "wmh_table.md",
            ("dice_vs_threshold_validation.png", "dice_vs_threshold_test.png", "roc_test.png")),
}
#: the JSON summary each command writes next to its table (checked even where the page does not use it)
SUMMARIES = {"evaluation": "summary.json", "volumes": "volumes_summary.json", "wmh": "wmh_summary.json"}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _section_markdown(kind: str, folder: Path, figures_dir: Path) -> list[str]:
    from nnunet_ataxia.io.files import read_json, read_text

    title, table_file, figures = SECTIONS[kind]
    if not (folder / table_file).is_file():
        raise InputError(f"{folder}: no {table_file}; is this the output folder of the matching command?")
    body = read_text(folder / table_file, table_file).strip()
    if not re.search(r"^\|.*\|\s*$", body, flags=re.M):
        raise InputError(f"{folder / table_file}: holds no Markdown table (corrupt or not written by nnunet-ataxia)")
    if (folder / SUMMARIES[kind]).exists():
        read_json(folder / SUMMARIES[kind], SUMMARIES[kind])
    body = re.sub(r"^(#+) ", lambda m: "#" * (len(m.group(1)) + 1) + " ", body, flags=re.M)  # demote headings
    lines = [f"## {title}", "", f"Source: `{folder}`", "", body, ""]
    for fig in figures:
        if (folder / fig).is_file():
            check_png(folder / fig, "figure")
            target = figures_dir / f"{kind}_{fig}"
            n = 2
            while target.exists():  # several folders of one kind: volumes_scatter.png, volumes2_scatter.png, ...
                target, n = figures_dir / f"{kind}{n}_{fig}", n + 1
            shutil.copyfile(folder / fig, target)
            lines += [f"![{kind}: {fig[:-4].replace('_', ' ')}](figures/{target.name})", ""]
    return lines


def check_png(path: str | os.PathLike, what: str = "figure") -> None:
    """Refuse a file that is not a complete PNG image (wrong signature, truncated, bad chunk checksums).

    Args:
        path: the file.
        what: what it is, for the message.

    Raises:
        InputError: naming the file.

    Example:
        >>> check_png("eval/scatter.png")  # doctest: +SKIP
    """
    from PIL import Image

    with open(path, "rb") as f:
        if f.read(len(_PNG_SIGNATURE)) != _PNG_SIGNATURE:
            raise InputError(f"{path}: not a PNG image (corrupt {what}?)")
    try:
        with Image.open(path) as image:
            image.verify()  # chunk checksums and the end of the file
        with Image.open(path) as image:
            image.load()  # every pixel decodes (a truncated image data stream fails here)
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError... for damaged files
        raise InputError(f"{path}: damaged PNG image (truncated or corrupt {what}: {type(e).__name__})") from None


def markdown_to_html(md: str, base_dir: Path, title: str) -> str:
    """One HTML page from the report's Markdown (Python-Markdown with its ``tables`` extension), the figures it links
    (``figures/*.png`` under ``base_dir``) embedded as base64 so the page is a single file. Raw HTML in the Markdown
    is not passed through: it is shown as text (``--notes`` cannot put a script into a shared page).

    Example:
        >>> page = markdown_to_html("# Demo\\n\\n| a | b |\\n|---|---|\\n| 1 | 2 |", Path("."), "Demo")
        >>> "<h1>Demo</h1>" in page and "<td>2</td>" in page
        True
    """
    import markdown

    converter = markdown.Markdown(extensions=["tables"], output_format="html")
    converter.preprocessors.deregister("html_block")  # raw HTML (in --notes, case names...) shows as text
    converter.inlinePatterns.deregister("html")
    body = converter.convert(md)
    # links and pictures may only point at ordinary addresses (no javascript:, data: ... from user text)
    body = re.sub(r'(href|src)="\s*(?:javascript|vbscript|data|file):[^"]*"', r'\1="#"', body, flags=re.I)

    def embed(match: re.Match) -> str:
        data = base64.b64encode((base_dir / html.unescape(match.group(1))).read_bytes()).decode("ascii")
        return f'src="data:image/png;base64,{data}"'

    body = re.sub(r'src="(figures/[^"]+)"', embed, body)
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:1em 0;font-size:0.9em}"
             "td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}th{background:#eee}"
             "img{max-width:100%}p:has(> img){display:inline-block;margin:0.5em;max-width:48%;vertical-align:top}")
    return (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>\n{body}\n</body></html>\n")


def build_report(out_dir: str | os.PathLike, title: str = "nnunet-ataxia experiment",
                 evaluation: Sequence[str | os.PathLike] = (), volumes: Sequence[str | os.PathLike] = (),
                 wmh: Sequence[str | os.PathLike] = (), notes: str | None = None,
                 qc: Sequence[tuple[str, str | os.PathLike]] = ()) -> Path:
    """Write ``report.md``, ``report.html`` and ``figures/`` into ``out_dir`` (a folder being built, e.g. the
    temporary folder of ``atomic_output_dir``).

    Args:
        out_dir: the folder to write into.
        title: page title.
        evaluation, volumes, wmh: output folders of ``evaluate``, ``compare-volumes`` and ``wmh-stats``.
        notes: optional free text placed under the title.
        qc: ``(model name, folder of QC pictures <case>.png)`` pairs (e.g. ``segment``'s ``qc/``); the pictures of
            each case are placed side by side, one per model, in the given order.

    Example:
        >>> build_report("/tmp/rep", "Demo", evaluation=["/tmp/eval"])  # doctest: +SKIP
    """
    from nnunet_ataxia.io.files import require_folder

    out = Path(out_dir)
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    if not (evaluation or volumes or wmh or qc):
        raise InputError("report: give at least one of --evaluation, --volumes, --wmh, --qc")
    md = [f"# {title}", "", f"Generated by nnunet-ataxia on {_dt.datetime.now():%Y-%m-%d %H:%M}.", ""]
    if notes:
        md += [notes, ""]
    for kind, folders in (("evaluation", evaluation), ("volumes", volumes), ("wmh", wmh)):
        for folder in folders:
            folder = require_folder(folder, f"output folder of '{kind}'")
            md += _section_markdown(kind, folder, figures)
            if kind == "volumes" and (folder / "volumes_summary.json").is_file():
                md += _volume_statistics_lines(folder / "volumes_summary.json")
    if qc:
        md += _qc_markdown(qc, figures)
    text = "\n".join(md)
    (out / "report.md").write_text(text)
    (out / "report.html").write_text(markdown_to_html(text, out, title))
    return out / "report.md"


def _volume_statistics_lines(path: Path) -> list[str]:
    from nnunet_ataxia.io.files import read_json

    stats = read_json(path, "volumes_summary.json").get("statistics")
    if not isinstance(stats, dict):
        raise InputError(f"{path}: no 'statistics' in this compare-volumes summary (corrupt or edited?)")
    name = stats.get("model_name", "model")

    def g(d, *keys):
        for k in keys:
            d = d.get(k) if isinstance(d, dict) else None
        return "n/a" if d is None else (f"{d:.3g}" if isinstance(d, float) else str(d))

    rows = [[label, g(s, "mae"), g(s, "bland_altman", "bias"), g(s, "pearson", "statistic"),
             g(s, "paired_t_vs_ground_truth", "p_value"), g(s, "wilcoxon_vs_ground_truth", "p_value")]
            for key, label in (("model", name), ("acapulco", "ACAPULCO")) if key in stats for s in [stats[key]]]
    columns = ["method", "MAE (mm³)", "bias (mm³)", "Pearson r", "paired t p", "Wilcoxon p"]
    lines = ["### Paired statistics", "", dataframe_markdown(pd.DataFrame(rows, columns=columns))]
    if "model_vs_acapulco_abs_error" in stats:
        s = stats["model_vs_acapulco_abs_error"]
        lines += ["", f"Absolute errors {name} vs ACAPULCO: paired t p = {g(s, 'paired_t', 'p_value')}, "
                      f"Wilcoxon p = {g(s, 'wilcoxon', 'p_value')}."]
    return lines + [""]


def _qc_markdown(qc: Sequence[tuple[str, str | os.PathLike]], figures_dir: Path) -> list[str]:
    """The QC pictures of every case, one per model side by side (copied to ``figures/qc_<model>_<case>.png``)."""
    from nnunet_ataxia.io.files import require_folder

    lines = ["## Quality-control pictures", ""]
    pictures: dict[str, dict[str, Path]] = {}
    for name, folder in qc:
        folder = require_folder(folder, "folder of QC pictures")
        found = {p.name[: -len(".png")]: p for p in sorted(folder.glob("*.png"))}
        if not found:
            raise InputError(f"{folder}: no QC pictures (<case>.png) in this folder")
        index = " (all pictures and volumes: `index.html` there)" if (folder / "index.html").is_file() else ""
        lines += [f"{name}: `{folder}`{index}", ""]
        pictures[name] = found
    slugs = {name: re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_") or f"model{i + 1}"
             for i, name in enumerate(pictures)}
    for case in sorted({c for found in pictures.values() for c in found}):
        for name, found in pictures.items():
            if case not in found:
                continue
            check_png(found[case], "picture")
            target = figures_dir / f"qc_{slugs[name]}_{case}.png"
            shutil.copyfile(found[case], target)
            lines += [f"![{case}: {name}](figures/{target.name})", ""]
    return lines
