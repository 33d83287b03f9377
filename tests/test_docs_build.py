"""The documentation builds without a warning: ``mkdocs build --strict`` (a broken link or anchor, a page missing from
the navigation, a docstring reference that does not resolve, a CLI reference that cannot be generated all fail it)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # 8-12 s on the 2-core machine (imports, the API pages, the CLI reference)
def test_mkdocs_build_strict(tmp_path):
    site = tmp_path / "site"
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", PYTHONWARNINGS="ignore")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
                             "-d", str(site)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"
    assert (site / "index.html").is_file()
    cli = (site / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    assert "nnunet-ataxia segment" in cli and "<!-- cli-reference -->" not in cli  # generated from the parser
    assert (site / "api" / "inference" / "index.html").is_file()
