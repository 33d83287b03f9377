"""Ghafoorian et al. WMH networks: dense form == patch classifier, parameter counts, shapes, location handling."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nnunet_ataxia.architectures.wmh_fft_conv import KernelSpectrumCache, conv2d_fft, polyphase_merge, polyphase_split
from nnunet_ataxia.architectures.wmh_location_networks import VARIANTS, WMHLocationNet, expected_parameter_count
from nnunet_ataxia.architectures.wmh_patches import extract_multiscale_patches

torch.set_num_threads(1)


def _random_input(b: int, h: int, w: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, 10, h, w, generator=g) * 2
    x[:, 2:] = torch.rand(b, 8, h, w, generator=g)
    return x


def _patch_classifier_everywhere(net: WMHLocationNet, x: torch.Tensor) -> torch.Tensor:
    """Logits of the patch classifier for the patches centred at every pixel: (B, K, H, W)."""
    b, _, h, w = x.shape
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    rows, cols = rows.flatten(), cols.flatten()
    out = torch.empty(b, net.num_classes, h, w)
    for bi in range(b):
        patches = extract_multiscale_patches(x[bi, :2], rows, cols, net.scale_factors)
        loc = x[bi, 2:, rows, cols].T if net.use_location else None
        out[bi][:, rows, cols] = net.forward_patches(patches, loc).T
    return out


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("use_location", [False, True])
@pytest.mark.parametrize("fc1_method", ["direct", "fft"])
def test_dense_equals_patch_classifier(variant, use_location, fc1_method):
    torch.manual_seed(1)
    net = WMHLocationNet(variant, use_location=use_location, location_alpha=3.0).eval()
    net.dense_fc1_method = fc1_method
    with torch.no_grad():   # larger biases/weights than Glorot so that the probabilities are far from 0.5
        net.fc3.weight.mul_(20)
        net.fc3.bias.uniform_(-1, 1)
        x = _random_input(2, 7, 5, seed=2)
        dense = net(x)
        patch = _patch_classifier_everywhere(net, x)
    assert dense.shape == (2, 2, 7, 5)
    p_dense, p_patch = torch.softmax(dense, 1), torch.softmax(patch, 1)
    assert (p_dense - p_patch).abs().max().item() <= 1e-5
    assert (dense - patch).abs().max().item() <= 1e-4
    assert p_dense[:, 1].max() - p_dense[:, 1].min() > 0.05, "outputs must vary over the slice for a real test"


@pytest.mark.parametrize("injection", ["last_conv", "second_fc"])
def test_dense_equals_patch_classifier_other_injections(injection):
    torch.manual_seed(3)
    net = WMHLocationNet("MSWS", use_location=True, location_injection=injection, location_alpha=2.0).eval()
    with torch.no_grad():
        x = _random_input(1, 4, 6, seed=4)
        assert (torch.softmax(net(x), 1) - torch.softmax(_patch_classifier_everywhere(net, x), 1)).abs().max() <= 1e-5


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("use_location", [False, True])
def test_parameter_count_matches_paper_layer_sizes(variant, use_location):
    net = WMHLocationNet(variant, use_location=use_location)
    assert sum(p.numel() for p in net.parameters()) == expected_parameter_count(variant, use_location)


def test_hand_derived_counts():
    # conv stack on T1+FLAIR: 7*7*2*20+20 + 5*5*20*40+40 + 3*3*40*80+80 + 3*3*80*110+110 = 130,210
    # FC1 35,640 -> 300: 10,692,300; FC2 300 -> 200: 60,200; FC3 200 -> 2: 402
    assert expected_parameter_count("SS", False) == 130_210 + 10_692_300 + 60_200 + 402 == 10_883_112
    assert expected_parameter_count("SS", True) == 10_883_112 + 8 * 200
    assert expected_parameter_count("MSEF", False) == 10_883_112 + 7 * 7 * 4 * 20
    assert expected_parameter_count("MSWS", False) == 130_210 + 3 * 10_692_300 + (900 * 200 + 200) + 402
    assert expected_parameter_count("MSIW", False) == expected_parameter_count("MSWS", False) + 2 * 130_210
    assert expected_parameter_count("SS", True, "last_conv") == 10_883_112 + 8 * 300
    assert expected_parameter_count("SS", True, "second_fc") == 10_883_112 + 8 * 2


@pytest.mark.parametrize("hw", [(1, 1), (5, 17), (33, 20)])
def test_output_shape_for_several_slice_sizes(hw):
    net = WMHLocationNet("SS", use_location=True, num_classes=3).eval()
    with torch.no_grad():
        y = net(torch.rand(2, 10, *hw))
    assert y.shape == (2, 3, *hw)


def test_forward_at_sampled_pixels_equals_dense():
    torch.manual_seed(5)
    for variant in ("SS", "MSEF", "MSWS"):
        net = WMHLocationNet(variant, use_location=True).eval()
        x = _random_input(2, 6, 5, seed=6)
        b, r, c = torch.tensor([0, 1, 1, 0]), torch.tensor([0, 5, 2, 3]), torch.tensor([4, 0, 2, 1])
        with torch.no_grad():
            dense = net(x)
            sampled = net(x, (b, r, c))
        assert torch.allclose(sampled, dense[b, :, r, c], atol=1e-5), variant


def test_location_channels_used_only_by_loc_variants():
    torch.manual_seed(7)
    x = _random_input(1, 4, 4, seed=8)
    x2 = x.clone()
    x2[:, 2:] = torch.rand(1, 8, 4, 4)
    for use_location in (False, True):
        net = WMHLocationNet("SS", use_location=use_location).eval()
        with torch.no_grad():
            same = torch.equal(net(x), net(x2))
        assert same is (not use_location)


def test_alpha_scales_location_and_travels_in_state_dict():
    torch.manual_seed(9)
    a = WMHLocationNet("SS", use_location=True, location_alpha=2.0).eval()
    b = WMHLocationNet("SS", use_location=True, location_alpha=1.0).eval()
    b.load_state_dict(a.state_dict())
    assert float(b.location_alpha) == 2.0
    x = _random_input(1, 3, 3, seed=10)
    x_double = x.clone()
    x_double[:, 2:] *= 2
    c = WMHLocationNet("SS", use_location=True, location_alpha=1.0).eval()
    c.load_state_dict({k: v for k, v in a.state_dict().items() if k != "location_alpha"}, strict=False)
    with torch.no_grad():
        assert torch.allclose(a(x), c(x_double), atol=1e-6), "alpha * loc must equal 1 * (alpha loc)"


def test_patch_extraction_conventions():
    img = torch.arange(2 * 70 * 70, dtype=torch.float32).reshape(2, 70, 70)
    s1, s2, s3 = extract_multiscale_patches(img, torch.tensor([35]), torch.tensor([35]))
    # s1: rows 19..50 (centre at index 16)
    assert torch.equal(s1[0, 0], img[0, 19:51, 19:51])
    # s2: 64x64 from row 3, 2x2 block means
    assert torch.allclose(s2[0, 1, 0, 0], img[1, 3:5, 3:5].mean())
    # s3: 128x128 from row -29: the first block lies outside (zero padding), block (8, 8) covers rows 3..6
    assert s3[0, 0, 0, 0] == 0
    assert torch.allclose(s3[0, 0, 8, 8], img[0, 3:7, 3:7].mean())


def test_bad_input_channel_count_is_rejected():
    with pytest.raises(ValueError, match="needs >= 10 input channels"):
        WMHLocationNet("SS", use_location=True, input_channels=2)
    net = WMHLocationNet("SS", use_location=False, input_channels=2).eval()
    with torch.no_grad():
        assert net(torch.rand(1, 2, 3, 3)).shape == (1, 2, 3, 3)


def test_polyphase_split_merge_reproduce_dilated_convolution():
    g = torch.Generator().manual_seed(11)
    x, w = torch.randn(2, 3, 23, 19, generator=g, dtype=torch.float64), torch.randn(4, 3, 3, 3, generator=g,
                                                                                    dtype=torch.float64)
    ref = F.conv2d(x, w, dilation=3)                                      # (2, 4, 17, 13)
    phases = polyphase_split(x, 3, tuple(ref.shape[2:]), 3)
    assert phases.shape == (2 * 9, 3, 6 + 2, 5 + 2)
    assert torch.equal(phases[1 * 3 + 2, :, :8, :6], x[0, :, 1::3, 2::3])   # phase (a, b) = x[a::s, b::s]
    merged = polyphase_merge(F.conv2d(phases, w), 3, tuple(ref.shape[2:]))
    assert torch.allclose(merged, ref, atol=1e-12)


@pytest.mark.parametrize("dilation, out_side", [(1, 9), (2, 14), (4, 16)])
def test_fft_fc1_equals_direct_convolution(dilation, out_side):
    """FC1's real shape (110 -> 300, 18x18): FFT (overlap-save, polyphase for s > 1) == F.conv2d(dilation=s)."""
    g = torch.Generator().manual_seed(dilation)
    w = (torch.rand(300, 110, 18, 18, generator=g) - 0.5) * 0.02
    b = torch.rand(300, generator=g)
    side = out_side + 17 * dilation
    x = torch.relu(torch.randn(1, 110, side, side + dilation, generator=g))
    with torch.no_grad():
        direct = F.conv2d(x, w, b, dilation=dilation)
        exact = F.conv2d(x.double(), w.double(), b.double(), dilation=dilation)
        cache = KernelSpectrumCache()
        fft = conv2d_fft(x, w, b, dilation, cache=cache, max_tile=6)      # several tiles per phase grid
        assert len(cache) == 1 and torch.equal(conv2d_fft(x, w, b, dilation, cache=cache, max_tile=6), fft)
    assert fft.shape == direct.shape == (1, 300, out_side, out_side + dilation)
    scale = exact.abs().max().item()
    assert (fft - direct).abs().max().item() <= 1e-5 * scale
    assert (fft.double() - exact).abs().max().item() <= 1e-6 * scale


def test_dense_fft_path_equals_direct_path_all_scales():
    """MSWS+Loc on a 16x16 slice: auto picks the FFT for FC1 at s = 1, 2, 4; outputs equal the direct path."""
    torch.manual_seed(12)
    net = WMHLocationNet("MSWS", use_location=True, location_alpha=2.0).eval()
    x = _random_input(1, 16, 16, seed=13)
    with torch.no_grad():
        net.fc3.weight.mul_(20)
        assert all(net._use_fft_fc1(x, s) for s in (1, 2, 4))
        fft = torch.softmax(net(x), 1)
        net.dense_fc1_method = "direct"
        direct = torch.softmax(net(x), 1)
        assert (fft - direct).abs().max().item() <= 1e-5
        assert fft[:, 1].max() - fft[:, 1].min() > 0.05, "outputs must vary over the slice for a real test"
        net.dense_fc1_method = "auto"
        net.fc1[1].weight.mul_(-1.5)            # in-place update (as an optimizer step): cached spectrum is stale
        fft2, direct2 = torch.softmax(net(x), 1), None
        net.dense_fc1_method = "direct"
        direct2 = torch.softmax(net(x), 1)
    assert (fft2 - direct2).abs().max().item() <= 1e-5
    assert (fft2 - fft).abs().max().item() > 1e-3


def test_auto_uses_direct_fc1_when_gradients_are_needed():
    net = WMHLocationNet("SS", use_location=False).train()
    x = _random_input(1, 12, 12, seed=14)
    assert not net._use_fft_fc1(x, 1)
    net(x).sum().backward()
    assert net.fc1[0].weight.grad is not None and net._fc1_spectra is None
    with torch.no_grad():
        assert net._use_fft_fc1(x, 1)


def test_fc1_spectrum_cache_follows_the_weights_values():
    """The cached FC1 spectrum survives loading the same weights again (nnUNetv2_predict does it per volume) and is
    rebuilt when the values change (an optimizer step, other weights); outputs always equal the direct path."""
    torch.manual_seed(13)
    net = WMHLocationNet("SS", use_location=False).eval()
    net.dense_fc1_method = "fft"
    x = torch.rand(1, 2, 20, 20)
    state = {k: v.clone() for k, v in net.state_dict().items()}

    def spectrum():
        return next(iter(net._fc1_spectra._entries.values())).spectrum

    def check():
        with torch.no_grad():
            fft = net(x)
            net.dense_fc1_method = "direct"
            direct = net(x)
            net.dense_fc1_method = "fft"
        assert (fft - direct).abs().max().item() < 1e-4

    check()
    first = spectrum()
    net.load_state_dict(state)                       # same values, written in place (version bumped)
    check()
    assert spectrum() is first
    with torch.no_grad():
        net.fc1[0].weight.mul_(1.5)                  # an optimizer step: new values
    check()
    assert spectrum() is not first
    net.load_state_dict(state)                       # back to the first weights: rebuilt, not stale
    check()
    assert len(net._fc1_spectra) == 1
