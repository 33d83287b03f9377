"""`nnunet-ataxia segment`'s options reach the library call: test-time mirroring on by default, as nnUNetv2_predict."""
import argparse

import pytest

from nnunet_ataxia.commands import segment as command
from nnunet_ataxia.inference import segment as library


@pytest.mark.parametrize("extra, mirror", [([], True), (["--mirror"], True), (["--disable_tta"], False),
                                           (["--no-mirror"], False)])
def test_segment_mirrors_unless_told_not_to(monkeypatch, tmp_path, extra, mirror):
    seen = {}

    def fake_segment_images(source, output, **kwargs):
        seen.update(kwargs)
        return library.SegmentResult(rows=[{"case": "a"}], failed={}, skipped=[])

    monkeypatch.setattr(library, "segment_images", fake_segment_images)
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    args = parser.parse_args(["-i", str(tmp_path / "t1.nii.gz"), "-o", str(tmp_path / "out")] + extra)
    assert command.run(args) == 0
    assert seen["mirror"] is mirror


def test_library_default_is_mirroring():
    import inspect

    assert inspect.signature(library.segment_images).parameters["mirror"].default is True
