"""The demo's pretrained-model step when no model is available, and ``report --qc`` (fast; the step with a model
runs inside the quick demo of tests/test_demo_main_job.py)."""

import numpy as np
import pytest
from markdown_tables import header_position

from nnunet_ataxia.cli import main
from nnunet_ataxia.demo.pretrained_step import segment_test_subjects
from nnunet_ataxia.pretrained import release


def _never(*args):
    raise AssertionError(f"no command may run: {args}")


def test_without_a_shipped_model_the_step_says_why_in_one_line(tmp_path, monkeypatch, capsys):
    # the package as if it shipped nothing (the real pretrained_zip_path, pointed at a folder without the zip)
    monkeypatch.setattr(release, "PACKAGE_DATA", tmp_path / "package" / "data" / "pretrained")
    missing = tmp_path / "package" / "data" / "pretrained" / release.ZIP_NAME
    out = tmp_path / "demo"
    assert segment_test_subjects(out, tmp_path / "no_demo_data", tmp_path / "results", _never) is None
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("skipped: ")
    assert str(missing) in lines[0] and "ships no pretrained model" in lines[0]
    assert "--pretrained-zip" in lines[0] and "-m <" not in lines[0]  # the demo's advice, not segment's
    assert not out.exists()

    assert segment_test_subjects(out, tmp_path, tmp_path, _never, enabled=False) is None
    assert capsys.readouterr().out.strip() == "skipped (--no-pretrained)"
    with pytest.raises(Exception, match="no such model zip"):  # a given zip must exist
        segment_test_subjects(out, tmp_path, tmp_path, _never, zip_file=tmp_path / "nothing.zip")


def test_demo_command_passes_the_pretrained_options(tmp_path, monkeypatch):
    import nnunet_ataxia.demo.main_job as main_job

    seen = []
    monkeypatch.setattr(main_job, "run_demo", lambda out, **kw: seen.append(kw))
    assert main(["demo", "--out", str(tmp_path / "a"), "--quick", "--no-pretrained"]) == 0
    assert main(["demo", "--out", str(tmp_path / "b"), "--pretrained-zip", "m.zip"]) == 0
    assert (seen[0]["pretrained"], seen[0]["pretrained_zip"]) == (False, None)
    assert (seen[1]["pretrained"], seen[1]["pretrained_zip"]) == (True, "m.zip")


def _png(path, value):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    plt.imsave(path, np.full((4, 6), value, np.float32), vmin=0, vmax=1)


def test_report_puts_each_cases_qc_pictures_side_by_side(tmp_path):
    for folder, value in (("seg/qc", 0.2), ("trained", 0.8)):
        for case in ("b_case", "a_case"):
            _png(tmp_path / folder / f"{case}.png", value)
    (tmp_path / "seg" / "qc" / "index.html").write_text("<html></html>")
    out = tmp_path / "report"
    assert main(["report", "--out", str(out), "--qc", f"pretrained M2={tmp_path / 'seg' / 'qc'}",
                 f"trained M2={tmp_path / 'trained'}"]) == 0
    md = (out / "report.md").read_text()
    figures = [line for line in md.splitlines() if line.startswith("![")]
    assert figures == [f"![{c}: {m}](figures/qc_{m.replace(' ', '_')}_{c}.png)"
                       for c in ("a_case", "b_case") for m in ("pretrained M2", "trained M2")]
    for c in ("a_case", "b_case"):  # the pictures themselves, copied
        for m, folder in (("pretrained_M2", "seg/qc"), ("trained_M2", "trained")):
            assert (out / "figures" / f"qc_{m}_{c}.png").read_bytes() == (tmp_path / folder / f"{c}.png").read_bytes()
    assert "index.html" in md.split("![")[0] and md.count("index.html") == 1  # only the segment folder has one
    assert (out / "report.html").read_text().count("data:image/png;base64,") == 4

    (tmp_path / "trained" / "a_case.png").write_text("not a picture")
    assert main(["report", "--out", str(tmp_path / "r2"), "--qc", str(tmp_path / "trained")]) == 1
    assert not (tmp_path / "r2").exists()
    assert main(["report", "--out", str(tmp_path / "r3"), "--qc", str(tmp_path)]) == 1  # no pictures there


def test_report_keeps_the_figures_of_two_volume_comparisons_apart(tmp_path):
    """The demo's report has two compare-volumes folders (trained and pretrained model): each keeps its own plots."""
    from pathlib import Path

    table4 = Path(__file__).parent / "fixtures" / "cabeza_ruiz_table4.csv"
    for name in ("WDA", "other"):
        assert main(["compare-volumes", "--volumes-csv", str(table4), "--model-name", name,
                     "--out", str(tmp_path / name)]) == 0
    out = tmp_path / "report"
    assert main(["report", "--out", str(out), "--volumes", str(tmp_path / "WDA"), str(tmp_path / "other")]) == 0
    md = (out / "report.md").read_text()
    for prefix, name in (("volumes", "WDA"), ("volumes2", "other")):
        for fig in ("scatter.png", "bland_altman.png"):
            assert f"(figures/{prefix}_{fig})" in md
            assert (out / "figures" / f"{prefix}_{fig}").read_bytes() == (tmp_path / name / fig).read_bytes()
    assert md.index("(figures/volumes_scatter.png)") < header_position(md, "Subject", "Ground truth", "other") < \
        md.index("(figures/volumes2_scatter.png)")
