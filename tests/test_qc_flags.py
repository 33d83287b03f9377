"""``segment``'s automatic QC flags, each on a constructed case, and the flagged-first QC index."""
import numpy as np
import pytest

from nnunet_ataxia.inference import qc_flags as Q
from nnunet_ataxia.inference.qc import write_index
from nnunet_ataxia.io.plausibility import PLAUSIBLE_MNI_VOLUME_CM3

GOOD = {"similarity": 0.10, "volumes_mni_mm3": {"cerebellum": 140_000.0, "brainstem": 24_000.0},
        "confidence": {"cerebellum": 0.97, "brainstem": 0.95}, "pieces": {"cerebellum": 1, "brainstem": 1}}


def _flags(**changes):
    args = {k: dict(v) if isinstance(v, dict) else v for k, v in GOOD.items()}
    for key, value in changes.items():
        if isinstance(value, dict):
            args[key].update(value)
        else:
            args[key] = value
    return Q.qc_flags(**args)


def test_a_good_subject_is_ok():
    assert _flags() == []
    assert Q.qc_text([]) == "ok"


def test_weak_registration_is_flagged():
    flags = _flags(similarity=Q.MIN_CONFIDENT_SIMILARITY - 0.005)
    assert len(flags) == 1 and flags[0].startswith("registration uncertain")


@pytest.mark.parametrize("structure", ["cerebellum", "brainstem"])
@pytest.mark.parametrize("side", [0, 1])
def test_implausible_volume_is_flagged(structure, side):
    low, high = PLAUSIBLE_MNI_VOLUME_CM3[structure]
    outside = (low * 0.9, high * 1.1)[side] * 1000.0
    flags = _flags(volumes_mni_mm3={structure: outside})
    assert flags == [f"{structure} volume implausible ({outside / 1000:.0f} cm³ on the MNI crop, plausible "
                     f"{low:g}-{high:g})"]
    inside = (low * 1.01, high * 0.99)[side] * 1000.0
    assert _flags(volumes_mni_mm3={structure: inside}) == []


def test_unsure_network_is_flagged():
    flags = _flags(confidence={"brainstem": Q.MIN_MEAN_CONFIDENCE - 0.01})
    assert len(flags) == 1 and flags[0].startswith("brainstem unsure")
    assert _flags(confidence={"brainstem": float("nan")}) == []   # an empty mask has no confidence


def test_mask_confidence_is_the_mean_top_probability_inside_the_mask():
    rng = np.random.default_rng(0)
    p = rng.dirichlet([1, 1, 1], size=(6, 7, 8)).transpose(3, 0, 1, 2).astype(np.float32)
    seg = p.argmax(0)
    conf = Q.mask_confidence(p, seg, {"cerebellum": 1, "brainstem": 2})
    for name, value in (("cerebellum", 1), ("brainstem", 2)):
        assert conf[name] == pytest.approx(float(p.max(0)[seg == value].mean()), rel=1e-6)
    assert np.isnan(Q.mask_confidence(p, np.zeros_like(seg), {"cerebellum": 1})["cerebellum"])


def test_a_mask_in_two_large_pieces_is_flagged_but_specks_are_not():
    mask = np.zeros((20, 20, 60), np.uint8)
    mask[2:18, 2:18, 2:30] = 1
    mask[0, 0, 59] = 1                        # a speck: far below 5 % of the volume
    assert Q.large_pieces(mask) == 1
    mask[2:18, 2:18, 40:50] = 1               # a second piece of 10 slices: about 26 % of the volume
    assert Q.large_pieces(mask) == 2
    assert _flags(pieces={"cerebellum": 2}) == ["cerebellum in 2 pieces"]
    assert Q.large_pieces(np.zeros((4, 4, 4), np.uint8)) == 0


def test_index_lists_flagged_subjects_first_and_highlights_them(tmp_path):
    rows = [{"case": "a", "status": "ok", "qc": "ok"}, {"case": "b", "status": "ok", "qc": "brainstem unsure"},
            {"case": "c", "status": "ok", "qc": "ok"}]
    pngs = {}
    for r in rows:   # a minimal valid PNG per case
        from PIL import Image

        pngs[r["case"]] = tmp_path / f"{r['case']}.png"
        Image.new("RGB", (2, 2)).save(pngs[r["case"]])
    page = write_index(tmp_path / "index.html", rows, ["case", "qc"], pngs).read_text()
    assert page.index("<td>b</td>") < page.index("<td>a</td>") < page.index("<td>c</td>")
    assert page.count('class="flagged"') == 1 and '<tr class="flagged"><td>b</td>' in page
    assert page.index('id="b"') < page.index('id="a"')


def test_qc_picture_zooms_its_second_row_on_the_cerebellum(tmp_path):
    import matplotlib.image as mpimg
    import SimpleITK as sitk

    from nnunet_ataxia.inference.qc import LABEL_COLOURS, qc_picture

    t1 = np.zeros((120, 160, 160), np.float32)
    t1[10:110, 20:140, 20:140] = 100.0                       # a head
    seg = np.zeros(t1.shape, np.uint8)
    seg[20:40, 100:125, 60:100] = 1                          # a small cerebellum
    images = [sitk.GetImageFromArray(a) for a in (t1, seg)]
    png = qc_picture(images[0], images[1], {"cerebellum": 1}, tmp_path / "qc.png", title="case")
    picture = mpimg.imread(png)[..., :3]
    orange = np.array([int(LABEL_COLOURS[0][i:i + 2], 16) / 255 for i in (1, 3, 5)])
    outline = np.abs(picture - orange).max(-1) < 0.08
    outline = outline[: int(picture.shape[0] * 0.93)]        # the legend's orange patch is below
    half = picture.shape[0] // 2

    def height(part: np.ndarray) -> int:
        rows = np.flatnonzero(part.any(1))
        return int(rows.max() - rows.min()) if rows.size else 0

    # the zoomed row draws the same outlines several times taller
    assert height(outline[half:]) > 2 * height(outline[:half]) > 0
