"""Did two runs of a demo (``nnunet-ataxia demo`` or ``wmh-demo``) repeat? Compare two demo folders file by file.

Images, pictures and predictions are compared byte for byte; text files (tables, JSON, Markdown) byte for byte
after each folder's own path is replaced by one placeholder; nnU-Net's preprocessed arrays (``.b2nd``, whose
compressed bytes may differ) by their values; checkpoints (``.pth``) by their network weights and logged validation
figures. Files that record timings or time stamps by design (output markers, ``steps.json``, ``segment.json``,
``preprocessing.json``, manifests, nnU-Net's logs, ``debug.json``, ``progress.png``, the report, the prediction
arguments, the WMH demo's ``timings.json``) are counted apart and not compared. Prints one line per differing file
and a count per kind; exits 1 when a compared file differs.

    python benchmarks/compare_demo_runs.py nnunet_ataxia_demo nnunet_ataxia_demo_b
    python benchmarks/compare_demo_runs.py nnunet_ataxia_wmh_demo nnunet_ataxia_wmh_demo_b
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

#: names of files that record paths, timings or time stamps (not compared)
VOLATILE_NAMES = {".nnunet-ataxia-output.json", "steps.json", "segment.json", "preprocessing.json",
                  "conversion_manifest.json", "debug.json", "progress.png", "report.html", "report.md",
                  "predict_from_raw_data_args.json", "timings.json"}
TEXT_SUFFIXES = {".csv", ".tsv", ".json", ".md", ".txt"}


def _volatile(path: Path) -> bool:
    return path.name in VOLATILE_NAMES or path.name.startswith("training_log_")


def same_content(a: Path, b: Path, first: Path, second: Path) -> bool:
    """True when the two files hold the same content (arrays by value, checkpoints by weights and logged Dice, text
    with the folders' own paths ``first`` and ``second`` replaced by one placeholder)."""
    if a.suffix == ".b2nd":
        import blosc2

        return bool(np.array_equal(blosc2.open(str(a))[:], blosc2.open(str(b))[:]))
    if a.suffix == ".pth":
        import torch

        x, y = (torch.load(p, map_location="cpu", weights_only=False) for p in (a, b))
        wx, wy = x["network_weights"], y["network_weights"]
        return (wx.keys() == wy.keys() and all(torch.equal(wx[k], wy[k]) for k in wx)
                and x.get("logging", {}).get("mean_fg_dice") == y.get("logging", {}).get("mean_fg_dice"))
    if a.suffix in TEXT_SUFFIXES:
        return (a.read_text().replace(str(first.resolve()), "<demo>")
                == b.read_text().replace(str(second.resolve()), "<demo>"))
    return a.read_bytes() == b.read_bytes()


def compare(first: Path, second: Path) -> dict[str, list[str]]:
    """``{"same": [...], "different": [...], "missing": [...], "not compared": [...]}``, paths relative to ``first``."""
    result: dict[str, list[str]] = {"same": [], "different": [], "missing": [], "not compared": []}
    for a in sorted(p for p in first.rglob("*") if p.is_file()):
        rel = a.relative_to(first)
        b = second / rel
        if _volatile(a):
            result["not compared"].append(str(rel))
        elif not b.is_file():
            result["missing"].append(str(rel))
        else:
            result["same" if same_content(a, b, first, second) else "different"].append(str(rel))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    args = parser.parse_args()
    for folder in (args.first, args.second):
        if not (folder / "steps.json").is_file():
            raise SystemExit(f"error: {folder}: not a demo output folder (no steps.json)")
    result = compare(args.first, args.second)
    for kind in ("different", "missing"):
        for rel in result[kind]:
            print(f"{kind}: {rel}")
    print(", ".join(f"{len(v)} {k}" for k, v in result.items()))
    sys.exit(1 if result["different"] or result["missing"] else 0)


if __name__ == "__main__":
    main()
