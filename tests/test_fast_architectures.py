"""The fast M1/M2 (channels-last, oneDNN, no concatenation copies, separable pooling) against plain reference layers.

The reference classes below are the networks as they were written before the speed work (plain ``nn.Conv3d`` calls,
``torch.cat``, ``F.max_pool3d``); checkpoints trained with them must load into the new classes and predict the same.
"""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nnunet_ataxia.architectures import M1UNet, M2InceptionUNet, common
from nnunet_ataxia.architectures.common import (
    LEGACY_OUTPUT_PREFIX,
    SEG_LAYERS_PREFIX,
    conv1x1,
    conv3d,
    make_dropout,
    max_pool3x3,
)
from nnunet_ataxia.architectures.m2_inception_unet import _SamePadMaxPool3d


class RefInception(nn.Module):
    def __init__(self, c, n):
        super().__init__()
        self.t1 = nn.Conv3d(c, n, 1)
        self.t2 = nn.Conv3d(n, n, 3, padding=1)
        self.t3 = nn.Conv3d(n, n, 3, padding=1)
        self.pool = nn.MaxPool3d(3, 1, 1)
        self.t4 = nn.Conv3d(c, n, 1)

    def forward(self, x):
        t1 = F.relu(self.t1(x))
        t2 = F.relu(self.t2(t1))
        t3 = F.relu(self.t3(t2))
        return torch.cat([t1, t2, t3, F.relu(self.t4(self.pool(x)))], dim=1)


def ref_same_pool(x):
    pads = []
    for size in reversed(x.shape[2:]):
        total = max(3 - (2 if size % 2 == 0 else 1), 0)
        pads += [total // 2, total - total // 2]
    return F.max_pool3d(F.pad(x, pads, value=float("-inf")), 3, 2)


class RefM2(nn.Module):
    def __init__(self, c, classes):
        super().__init__()
        self.encoder = nn.ModuleList([RefInception(c, 4)])
        ch = 16
        for n in (8, 16, 32, 32):
            self.encoder.append(RefInception(ch, n))
            ch = 4 * n
        self.bottom = RefInception(ch, 32)
        self.up, self.decoder = nn.ModuleList(), nn.ModuleList()
        for n_in, n_t, skip, n in ((128, 32, 128, 32), (128, 32, 64, 16), (64, 16, 32, 8), (32, 8, 16, 4)):
            self.up.append(nn.ConvTranspose3d(n_in, n_t, 3, stride=2, padding=1, output_padding=1))
            self.decoder.append(RefInception(n_t + skip, n))
        self.dropout = nn.Dropout3d(0.2)
        self.output_conv = nn.Conv3d(16, classes, 1)

    def forward(self, x):
        skips = []
        for i, block in enumerate(self.encoder):
            x = block(x if i == 0 else ref_same_pool(x))
            skips.append(x)
        x = self.bottom(x)
        for up, block, skip in zip(self.up, self.decoder, reversed(skips[:-1]), strict=False):
            x = block(torch.cat([F.relu(up(x)), skip], dim=1))
        return self.output_conv(self.dropout(x))


def _conv(c, n, d=1):
    return nn.Sequential(nn.Conv3d(c, n, 3, padding=d, dilation=d), nn.ReLU())


class RefM1(nn.Module):
    def __init__(self, c, classes):
        super().__init__()
        self.enc1 = nn.Sequential(_conv(c, 8), _conv(8, 8, 2))
        self.enc2 = nn.Sequential(_conv(8, 16), _conv(16, 16, 2))
        self.enc3 = nn.Sequential(_conv(16, 32), _conv(32, 32, 2), _conv(32, 32, 3))
        self.bottom = nn.Sequential(_conv(32, 64), _conv(64, 64))
        self.up3 = nn.Sequential(nn.ConvTranspose3d(64, 32, 2, 2), nn.ReLU())
        self.dec3 = nn.Sequential(_conv(64, 32), _conv(32, 32))
        self.up2 = nn.Sequential(nn.ConvTranspose3d(32, 16, 2, 2), nn.ReLU())
        self.dec2 = nn.Sequential(_conv(32, 16), _conv(16, 16))
        self.up1 = nn.Sequential(nn.ConvTranspose3d(16, 4, 2, 2), nn.ReLU())
        self.dropout = nn.Dropout3d(0.2)
        self.output_conv = nn.Conv3d(4, classes, 3, padding=1)

    def forward(self, x):
        e1 = self.enc1(x)
        a = self.enc2(F.max_pool3d(e1, 2))
        b = self.enc3(F.max_pool3d(a, 2))
        d3 = self.dec3(torch.cat([self.up3(self.bottom(F.max_pool3d(b, 2))), b], 1))
        d2 = self.dec2(torch.cat([self.up2(d3), a], 1))
        return self.output_conv(self.dropout(self.up1(d2)))


@pytest.mark.parametrize("ref_class,new_class,spatial", [(RefM2, M2InceptionUNet, (32, 48, 16)),
                                                          (RefM1, M1UNet, (16, 24, 32))])
def test_checkpoint_of_the_plain_network_loads_and_predicts_the_same(tmp_path, ref_class, new_class, spatial):
    torch.manual_seed(0)
    ref = ref_class(2, 3)
    torch.save(ref.state_dict(), tmp_path / "checkpoint.pth")
    new = new_class(2, 3)
    new.load_state_dict(torch.load(tmp_path / "checkpoint.pth"), strict=True)  # same keys (output layer renamed)
    renamed = [(k.replace(LEGACY_OUTPUT_PREFIX, SEG_LAYERS_PREFIX), v.shape) for k, v in ref.state_dict().items()]
    assert renamed == [(k, v.shape) for k, v in new.state_dict().items()]
    assert [k for k in new.state_dict() if ".seg_layers." in k] == ["head.seg_layers.weight", "head.seg_layers.bias"]
    ref.eval(), new.eval()
    for batch in (1, 2):  # batch 1 takes other oneDNN paths than batch 2
        x = torch.randn(batch, 2, *spatial)
        with torch.no_grad():
            expected, got = ref(x), new(x)
        assert got.shape == expected.shape and got.is_contiguous()
        assert torch.allclose(got, expected, atol=1e-5), (got - expected).abs().max()


@pytest.mark.parametrize("ref_class,new_class", [(RefM2, M2InceptionUNet), (RefM1, M1UNet)])
def test_training_gradients_equal_the_plain_network(ref_class, new_class):
    torch.manual_seed(1)
    ref, new = ref_class(1, 2), new_class(1, 2)
    new.load_state_dict(ref.state_dict())
    ref.dropout.p = new.dropout.p = 0.0
    x = torch.randn(2, 1, 16, 32, 16)
    target = torch.randint(0, 2, (2, 16, 32, 16))
    for net in (ref, new):
        F.cross_entropy(net(x), target).backward()
    for (name, p), q in zip(ref.named_parameters(), new.parameters(), strict=False):
        scale = p.grad.abs().max().item() + 1e-12
        assert (p.grad - q.grad).abs().max().item() <= 1e-4 * scale, name


def test_the_inception_block_takes_its_input_in_parts():
    torch.manual_seed(2)
    ref = RefInception(24, 4)
    from nnunet_ataxia.architectures import InceptionBlock3d

    new = InceptionBlock3d(24, 4)
    new.load_state_dict(ref.state_dict())
    up, skip = torch.rand(1, 8, 8, 12, 10), torch.rand(1, 16, 8, 12, 10)
    with torch.no_grad():
        expected = ref(torch.cat([up, skip], dim=1))
        assert torch.allclose(new(up, skip), expected, atol=1e-6)
        assert torch.allclose(new(torch.cat([up, skip], dim=1)), expected, atol=1e-6)


def test_the_inception_block_writes_over_its_skip_input_when_asked():
    from nnunet_ataxia.architectures import InceptionBlock3d

    torch.manual_seed(3)
    block = InceptionBlock3d(24, 4)
    cl = torch.channels_last_3d
    up, skip = torch.rand(1, 8, 8, 12, 10).to(memory_format=cl), torch.rand(1, 16, 8, 12, 10).to(memory_format=cl)
    with torch.no_grad():
        expected = block(up, skip)
        got = block(up, skip, out=skip)          # the output has the skip's shape and takes its memory
    assert got.data_ptr() == skip.data_ptr() and torch.equal(got, expected)
    with pytest.raises(AssertionError, match="inference only"):
        block(up.requires_grad_(True), skip, out=skip)


def test_m2_inference_reuses_skip_memory_only_where_nothing_else_can_see_it():
    torch.manual_seed(4)
    net = M2InceptionUNet(1, 3).eval()
    x = torch.randn(1, 1, 32, 32, 16)
    with torch.no_grad():
        assert net._may_overwrite_skips()
        fast = net(x)
        kept = []
        handle = net.encoder[0].register_forward_hook(lambda m, i, o: kept.append((o, o.clone())))
        assert not net._may_overwrite_skips()
        hooked = net(x)
        handle.remove()
    assert torch.equal(fast, hooked)
    assert torch.equal(kept[0][0], kept[0][1])   # the encoder output a hook kept was not overwritten
    assert not net._may_overwrite_skips()        # with autograd never, even with frozen weights:
    net.requires_grad_(False)
    x.requires_grad_(True)
    net(x)[:, 1].sum().backward()                # a saliency map of the input works
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_conv1x1_over_parts_equals_the_convolution_of_the_concatenation():
    torch.manual_seed(3)
    conv = nn.Conv3d(7, 3, 1)
    a = torch.randn(2, 4, 5, 6, 3, requires_grad=True)
    b = torch.randn(2, 3, 5, 6, 3, requires_grad=True)
    got = conv1x1(conv, a, b)
    expected = conv(torch.cat([a, b], dim=1))
    assert torch.allclose(got, expected, atol=1e-6)
    assert got.is_contiguous(memory_format=torch.channels_last_3d)
    grads = torch.autograd.grad(got.square().sum(), [a, b, conv.weight, conv.bias])
    expected_grads = torch.autograd.grad(expected.square().sum(), [a, b, conv.weight, conv.bias])
    for g, e in zip(grads, expected_grads, strict=False):
        assert torch.allclose(g, e, atol=1e-4)


def test_conv3d_through_onednn_equals_the_module_call():
    torch.manual_seed(4)
    conv = nn.Conv3d(16, 8, 3, padding=2, dilation=2)
    x = torch.randn(1, 16, 6, 8, 10, requires_grad=True)  # batch 1, small: PyTorch's slow path otherwise
    got, expected = conv3d(conv, x), conv(x)
    assert torch.allclose(got, expected, atol=1e-5)
    assert got.is_contiguous(memory_format=torch.channels_last_3d)
    g = torch.autograd.grad(got.sum(), [x, conv.weight])
    e = torch.autograd.grad(expected.sum(), [x, conv.weight])
    assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(g, e, strict=False))


@pytest.mark.parametrize("tile_bytes", [1, 600, 10 ** 9])  # one slice per tile, a few slices, the whole volume
@pytest.mark.parametrize("shape", [(1, 1, 9, 10, 11), (2, 24, 6, 8, 4), (1, 3, 1, 5, 2), (1, 4, 17, 5, 6)])
def test_separable_max_pool_equals_max_pool3d(shape, tile_bytes, monkeypatch):
    monkeypatch.setattr(common, "POOL_TILE_BYTES", tile_bytes)
    x = torch.randn(shape)
    expected = F.max_pool3d(x, 3, 1, 1)
    with torch.no_grad():
        assert torch.equal(max_pool3x3(x), expected)
        got = max_pool3x3(x.contiguous(memory_format=torch.channels_last_3d))
        assert torch.equal(got, expected) and got.is_contiguous(memory_format=torch.channels_last_3d)
    # with a gradient to compute it is F.max_pool3d itself
    y = max_pool3x3(x.clone().requires_grad_(True))
    assert torch.equal(y, expected) and y.grad_fn is not None


@pytest.mark.parametrize("tile_bytes", [1, 700, 10 ** 9])
@pytest.mark.parametrize("bias", [True, False])
def test_pooled_conv1x1_equals_pooling_then_conv1x1(tile_bytes, bias, monkeypatch):
    monkeypatch.setattr(common, "POOL_TILE_BYTES", tile_bytes)
    torch.manual_seed(8)
    conv = nn.Conv3d(7, 3, 1, bias=bias)
    cl = torch.channels_last_3d
    a, b = torch.randn(1, 4, 9, 6, 5).to(memory_format=cl), torch.randn(1, 3, 9, 6, 5).to(memory_format=cl)
    with torch.no_grad():
        expected = conv(F.max_pool3d(torch.cat([a, b], 1), 3, 1, 1))
        got = common.pooled_conv1x1(conv, a, b)                              # tiled, no pooled tensors
        assert got.is_contiguous(memory_format=cl)
        assert torch.allclose(got, expected, atol=1e-6)
        batch2 = common.pooled_conv1x1(conv, torch.cat([a, a]), torch.cat([b, b]))   # the two-step path
        assert torch.allclose(batch2, torch.cat([expected, expected]), atol=1e-6)
    x = torch.cat([a, b], 1).requires_grad_(True)
    y = common.pooled_conv1x1(conv, x)                                       # with autograd: the two-step path
    y.sum().backward()
    assert torch.allclose(y, expected, atol=1e-6) and x.grad is not None


@pytest.mark.parametrize("shape", [(1, 2, 4, 6, 8), (2, 3, 2, 2, 16), (1, 1, 5, 7, 9)])
def test_same_padded_stride_2_pool_without_padding_copy(shape):
    x = torch.randn(shape)
    pool = _SamePadMaxPool3d()
    with torch.no_grad():
        assert torch.equal(pool(x), ref_same_pool(x))  # separable path (even sizes) or padding fallback (odd)
    assert torch.equal(pool(x.clone().requires_grad_(True)), ref_same_pool(x))  # F.max_pool3d ceil_mode path


@pytest.mark.parametrize("network_class", [M1UNet, M2InceptionUNet])
def test_dropout_placement_output_is_elementwise_on_the_logits(network_class):
    torch.manual_seed(5)
    paper = network_class(1, 2, dropout_placement="output")
    assert isinstance(paper.dropout, nn.Dropout) and paper.dropout.p == 0.2
    features = network_class(1, 2)
    assert isinstance(features.dropout, nn.Dropout3d)
    features.load_state_dict(paper.state_dict())  # no parameters: same checkpoint
    x = torch.randn(1, 1, 16, 16, 32)
    paper.train()
    out = paper(x)
    zero = out == 0
    assert 0.15 < zero.float().mean().item() < 0.25  # element-wise: about 20 % of the logits
    assert zero.any(dim=1).float().mean() > zero.all(dim=1).float().mean()  # not whole voxels / channels
    with torch.no_grad():
        assert torch.equal(paper.eval()(x), features.eval()(x))  # dropout only acts in training
    with pytest.raises(ValueError, match="dropout placement"):
        make_dropout(0.2, "input")


@pytest.mark.parametrize("network_class", [M1UNet, M2InceptionUNet])
def test_without_onednn_the_fallback_gives_the_same_result(network_class):
    torch.manual_seed(6)
    net = network_class(1, 2).eval()
    x = torch.randn(1, 1, 16, 32, 16)
    with torch.no_grad():
        fast = net(x)
        torch.backends.mkldnn.enabled = False  # e.g. a PyTorch build without oneDNN
        try:
            plain = net(x)
        finally:
            torch.backends.mkldnn.enabled = True
    assert torch.allclose(fast, plain, atol=1e-5)


@pytest.mark.parametrize("new_class", [M2InceptionUNet, M1UNet])
@pytest.mark.parametrize("legacy_keys", [True, False])
def test_nnunet_pretrained_weights_transfer_all_but_the_output_layer(tmp_path, new_class, legacy_keys):
    """nnU-Net's own ``load_pretrained_weights`` (what ``nnUNetv2_train -pretrained_weights`` calls) fine-tunes M1/M2
    to another label set: every weight but the output layer comes from the checkpoint, the output layer keeps its
    fresh initialization, as for nnU-Net's own networks; checkpoints with the old ``output_conv`` keys work too."""
    from nnunetv2.run.load_pretrained_weights import load_pretrained_weights

    from nnunet_ataxia.architectures.common import upgrade_output_keys

    torch.manual_seed(3)
    pretrained = new_class(1, 3).state_dict()   # background, cerebellum, brainstem
    if legacy_keys:
        pretrained = {k.replace(SEG_LAYERS_PREFIX, LEGACY_OUTPUT_PREFIX): v for k, v in pretrained.items()}
        assert upgrade_output_keys(dict(pretrained)).keys() == new_class(1, 3).state_dict().keys()
    torch.save({"network_weights": pretrained}, tmp_path / "checkpoint_final.pth")
    for classes in (2, 3):   # cerebellum only; the same labels
        net = new_class(1, classes)
        fresh = {k: v.clone() for k, v in net.state_dict().items()}
        load_pretrained_weights(net, str(tmp_path / "checkpoint_final.pth"))
        for k, v in net.state_dict().items():
            if k.startswith(SEG_LAYERS_PREFIX):
                assert torch.equal(v, fresh[k]), k
            else:
                source = pretrained[k]
                assert torch.equal(v, source) and not torch.equal(v, fresh[k]), k
