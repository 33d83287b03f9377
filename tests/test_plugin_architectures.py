"""M1 / M2: exact parameter counts, shapes, size checks, gradients, and construction from nnU-Net plans."""
import pytest
import torch

from nnunet_ataxia.architectures import InceptionBlock3d, M1UNet, M2InceptionUNet, PatchSizeError


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_parameter_counts_match_the_paper():
    assert n_params(M1UNet(input_channels=1, num_classes=1)) == 372_521
    assert n_params(M2InceptionUNet(input_channels=1, num_classes=1)) == 550_097


def test_inception_block_parameter_formula():
    # 2 c n + 54 n^2 + 4 n, e.g. the decoder's I(32) on 160 channels = 65,664 (docs/explanation/design.md)
    for c, n in ((1, 4), (160, 32), (96, 16), (24, 4)):
        assert n_params(InceptionBlock3d(c, n)) == 2 * c * n + 54 * n * n + 4 * n
    assert n_params(InceptionBlock3d(160, 32)) == 65_664


def test_output_heads_change_only_the_last_layer():
    # nnU-Net mode: one output per segmentation head; the body is unchanged
    assert n_params(M1UNet(1, 3)) - n_params(M1UNet(1, 1)) == 2 * (27 * 4 + 1)
    assert n_params(M2InceptionUNet(1, 3)) - n_params(M2InceptionUNet(1, 1)) == 2 * (16 + 1)


@pytest.mark.parametrize("network_class,spatial", [
    (M1UNet, (8, 16, 24)), (M1UNet, (32, 16, 8)), (M2InceptionUNet, (16, 32, 48)), (M2InceptionUNet, (32, 16, 16)),
])
@pytest.mark.parametrize("channels,classes", [(1, 1), (2, 3)])
def test_forward_shapes(network_class, spatial, channels, classes):
    net = network_class(input_channels=channels, num_classes=classes).eval()
    with torch.no_grad():
        out = net(torch.randn(2, channels, *spatial))
    assert out.shape == (2, classes, *spatial)


@pytest.mark.parametrize("network_class,bad,divisor", [(M1UNet, (12, 16, 16), 8), (M2InceptionUNet, (16, 24, 16), 16)])
def test_bad_size_is_refused_with_the_size_and_divisor(network_class, bad, divisor):
    with pytest.raises(PatchSizeError) as e:
        network_class(1, 2)(torch.zeros(1, 1, *bad))
    assert str(bad) in str(e.value) and f"divisible by {divisor}" in str(e.value)


def test_deep_supervision_is_rejected_clearly():
    for cls in (M1UNet, M2InceptionUNet):
        with pytest.raises(ValueError, match="no deep supervision"):
            cls(input_channels=1, num_classes=2, deep_supervision=True)


@pytest.mark.parametrize("network_class", [M1UNet, M2InceptionUNet])
def test_every_parameter_receives_a_gradient(network_class):
    # DDP (nnU-Net's -num_gpus) requires that no parameter is unused
    torch.manual_seed(0)
    net = network_class(1, 2)
    net(torch.randn(1, 1, 16, 16, 16)).square().mean().backward()
    missing = [name for name, p in net.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert missing == []


def test_dropout_is_0_2_before_the_output_layer_and_off_in_eval():
    for cls in (M1UNet, M2InceptionUNet):
        net = cls(1, 2)
        assert net.dropout.p == 0.2
        net.eval()
        x = torch.randn(1, 1, 16, 16, 16)
        with torch.no_grad():
            assert torch.equal(net(x), net(x))


def test_nnunet_builds_the_networks_from_a_plans_entry():
    # nnU-Net's get_network_from_plans resolves the class name with pydoc.locate
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    for name, count in (("nnunet_ataxia.architectures.M1UNet", 372_521),
                        ("nnunet_ataxia.architectures.M2InceptionUNet", 550_097)):
        net = get_network_from_plans(name, {}, [], 1, 1, allow_init=True, deep_supervision=False)
        assert n_params(net) == count


def test_m2_result_does_not_depend_on_the_parameter_layout():
    # M2 runs channels-last inside; tests/test_fast_architectures.py compares it with the plain layers
    torch.manual_seed(0)
    net = M2InceptionUNet(2, 3).eval()
    x = torch.randn(1, 2, 32, 16, 48)
    with torch.no_grad():
        fast = net(x)
        net.to(memory_format=torch.contiguous_format)
        plain = net(x)
    assert fast.is_contiguous()
    assert torch.allclose(fast, plain, atol=1e-5)
