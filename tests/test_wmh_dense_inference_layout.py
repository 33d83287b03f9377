"""The WMH dense form's inference layout: channels-last FC1 outputs, re-used FFT working memory,
the head as per-part matrix products. Same numbers as the plain computations, autograd untouched."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from nnunet_ataxia.architectures import wmh_fft_conv
from nnunet_ataxia.architectures.wmh_fft_conv import conv2d_fft, fft_tile
from nnunet_ataxia.architectures.wmh_location_networks import WMHLocationNet

torch.set_num_threads(1)


@pytest.mark.parametrize("dilation", [1, 2, 3])
def test_fft_conv_in_many_chunks_equals_direct_and_is_channels_last(dilation, monkeypatch):
    g = torch.Generator().manual_seed(dilation)
    x = torch.randn(2, 5, 31 + 4 * dilation, 27 + 4 * dilation, generator=g, dtype=torch.float64)
    w = torch.randn(7, 5, 5, 5, generator=g, dtype=torch.float64)
    b = torch.randn(7, generator=g, dtype=torch.float64)
    with torch.no_grad():
        whole = conv2d_fft(x, w, b, dilation, max_tile=6, dtype=torch.float64)
        # 7 tiles per chunk: many chunks re-using the same scratch buffers, the last one partial
        ho, wo = (size - 4 * dilation for size in x.shape[2:])
        th, tw = fft_tile((math.ceil(ho / dilation), math.ceil(wo / dilation)), 5, 6)
        n_tiles = 2 * dilation ** 2 * math.ceil(ho / dilation / th) * math.ceil(wo / dilation / tw)
        assert n_tiles > 7 and n_tiles % 7 != 0
        bytes_per_tile = (th + 4) * ((tw + 4) // 2 + 1) * (5 + 7) * 16 * 2
        monkeypatch.setattr(wmh_fft_conv, "MAX_WORK_BYTES", 7 * bytes_per_tile)
        calls = []
        rfft2 = torch.fft.rfft2

        def counting_rfft2(t, *args, **kwargs):        # input tiles per chunk (the kernel's spectrum has s=...)
            if "s" not in kwargs:
                calls.append(t.shape[0])
            return rfft2(t, *args, **kwargs)

        monkeypatch.setattr(torch.fft, "rfft2", counting_rfft2)
        chunked = conv2d_fft(x, w, b, dilation, max_tile=6, dtype=torch.float64)
    assert calls == [7] * (n_tiles // 7) + [n_tiles % 7]
    expected = F.conv2d(x, w, b, dilation=dilation)
    assert chunked.shape == expected.shape
    assert torch.allclose(chunked, expected, atol=1e-10) and torch.allclose(whole, expected, atol=1e-10)
    assert chunked.is_contiguous(memory_format=torch.channels_last)


def test_fft_conv_still_differentiable():
    g = torch.Generator().manual_seed(7)
    x = torch.randn(1, 3, 20, 18, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 3, 5, 5, generator=g, dtype=torch.float64, requires_grad=True)
    fft = conv2d_fft(x, w, None, 2, max_tile=4, dtype=torch.float64)
    direct = F.conv2d(x, w, dilation=2)
    grads = torch.autograd.grad((fft * direct.detach()).sum(), [x, w])
    expected = torch.autograd.grad((direct * direct.detach()).sum(), [x, w])
    assert all(torch.allclose(a, e, atol=1e-9) for a, e in zip(grads, expected, strict=False))


@pytest.mark.parametrize("variant, use_location, injection", [("SS", False, "first_fc"), ("MSWS", True, "first_fc"),
                                                              ("MSIW", True, "second_fc"), ("MSWS", True, "last_conv")])
def test_dense_inference_head_equals_the_concatenating_head(variant, use_location, injection):
    torch.manual_seed(11)
    net = WMHLocationNet(variant, use_location=use_location, location_injection=injection, location_alpha=2.0).eval()
    net.dense_fc1_method = "direct"       # both runs the same FC1: only the head differs
    with torch.no_grad():
        net.fc3.weight.mul_(10)
    g = torch.Generator().manual_seed(12)
    x = torch.randn(2, 10, 9, 7, generator=g)
    x[:, 2:] = torch.rand(2, 8, 9, 7, generator=g)
    with torch.no_grad():
        fast = net(x)                      # eval, no autograd: the per-part matrix products
    plain = net(x).detach()                # autograd on: the concatenations and 1x1 convolutions of _head
    assert fast.shape == plain.shape == (2, 2, 9, 7)
    assert (fast - plain).abs().max().item() <= 1e-5 * plain.abs().max().item()
    assert plain[:, 1].std() > 1e-3, "outputs must vary over the slice for a real test"
