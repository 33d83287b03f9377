"""M1: the small dilated 3D U-Net of Cabeza-Ruiz et al. (372,521 parameters for 1 input and 1 output channel)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nnunet_ataxia.architectures.common import (
    CHANNELS_LAST,
    OutputHead,
    check_spatial_divisibility,
    check_unet_arguments,
    conv3d,
    load_legacy_output_keys,
    make_dropout,
    output_head,
    to_channels_last,
)


def _conv(in_channels: int, out_channels: int, dilation: int = 1) -> nn.Sequential:
    """3×3×3 convolution with bias, ``same`` padding and ReLU."""
    return nn.Sequential(
        nn.Conv3d(in_channels, out_channels, kernel_size=3, padding=dilation, dilation=dilation, bias=True),
        nn.ReLU(inplace=True),
    )


def _up(in_channels: int, out_channels: int) -> nn.Sequential:
    """Transposed convolution, kernel 2, stride 2, followed by ReLU."""
    return nn.Sequential(nn.ConvTranspose3d(in_channels, out_channels, kernel_size=2, stride=2, bias=True),
                         nn.ReLU(inplace=True))


class M1UNet(nn.Module):
    """Model M1 of Cabeza-Ruiz et al.: three down- and three up-sampling steps, dilated convolutions, no norm.

    Layers (all convolutions 3×3×3, bias, ``same`` padding, ReLU):
    encoder [8 (dil 1), 8 (dil 2)] → pool → [16 (dil 1), 16 (dil 2)] = skip A → pool →
    [32 (dil 1), 32 (dil 2), 32 (dil 3)] = skip B → pool → [64, 64]; decoder: up 32 → concat B → 32, 32 → up 16 →
    concat A → 16, 16 → up 4 (no skip) → dropout 0.2 → conv ``num_classes`` (3×3×3, logits;
    ``head.seg_layers``, see :class:`~nnunet_ataxia.architectures.common.OutputHead`).
    With ``input_channels=1, num_classes=1`` the network has exactly 372,521 parameters, the paper's figure.

    Args:
        input_channels: number of image channels.
        num_classes: number of output channels (nnU-Net passes the number of segmentation heads).
        deep_supervision: accepted for nnU-Net's ``get_network_from_plans``; M1 has no deep supervision, so only
            ``False`` is allowed.
        dropout: dropout probability (0.2 in the paper).
        dropout_placement: ``"features"`` (channel-wise dropout of the 4 feature maps before the output convolution)
            or ``"output"`` (element-wise dropout of the output convolution's result, as the paper and the authors'
            Keras code do); see :func:`~nnunet_ataxia.architectures.common.make_dropout`.

    On the CPU the network runs in the channels-last layout with oneDNN convolutions (``common.conv3d``); the
    function and the parameters are those of the plain layers.

    Example:
        >>> net = M1UNet(input_channels=1, num_classes=3)
        >>> net(torch.zeros(1, 1, 32, 32, 16)).shape
        torch.Size([1, 3, 32, 32, 16])
    """

    divisor: int = 8

    def __init__(self, input_channels: int, num_classes: int, deep_supervision: bool = False,
                 dropout: float = 0.2, dropout_placement: str = "features") -> None:
        super().__init__()
        check_unet_arguments("M1UNet", "M1Trainer", input_channels, num_classes, deep_supervision)
        self.input_channels = input_channels
        self.num_classes = num_classes
        self.enc1 = nn.Sequential(_conv(input_channels, 8, 1), _conv(8, 8, 2))
        self.enc2 = nn.Sequential(_conv(8, 16, 1), _conv(16, 16, 2))
        self.enc3 = nn.Sequential(_conv(16, 32, 1), _conv(32, 32, 2), _conv(32, 32, 3))
        self.bottom = nn.Sequential(_conv(32, 64), _conv(64, 64))
        self.pool = nn.MaxPool3d(kernel_size=2, stride=2)
        self.up3 = _up(64, 32)
        self.dec3 = nn.Sequential(_conv(64, 32), _conv(32, 32))
        self.up2 = _up(32, 16)
        self.dec2 = nn.Sequential(_conv(32, 16), _conv(16, 16))
        self.up1 = _up(16, 4)
        self.dropout_placement = dropout_placement
        self.dropout = make_dropout(dropout, dropout_placement)
        self.head = OutputHead(nn.Conv3d(4, num_classes, kernel_size=3, padding=1, bias=True))  # head.seg_layers.*
        self.register_load_state_dict_pre_hook(load_legacy_output_keys)
        self.to(memory_format=CHANNELS_LAST)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_spatial_divisibility(tuple(x.shape[2:]), self.divisor, type(self).__name__)
        e1 = _stage(self.enc1, to_channels_last(x))
        skip_a = _stage(self.enc2, self.pool(e1))
        skip_b = _stage(self.enc3, self.pool(skip_a))
        b = _stage(self.bottom, self.pool(skip_b))
        d3 = _stage(self.dec3, torch.cat([_upsample(self.up3, b), skip_b], dim=1))
        d2 = _stage(self.dec2, torch.cat([_upsample(self.up2, d3), skip_a], dim=1))
        x = _upsample(self.up1, d2)
        return output_head(x, self.dropout, self.dropout_placement, self.head.seg_layers, conv3d)


def _stage(layers: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """Run a sequence of ``_conv`` blocks (convolution + ReLU) in the channels-last layout."""
    for conv, _ in layers:
        x = F.relu(conv3d(conv, x), inplace=True)
    return x


def _upsample(up: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """Run an ``_up`` block (transposed convolution + ReLU), result channels-last."""
    return F.relu(to_channels_last(up[0](x)), inplace=True)
