"""M2: the inception 3D U-Net of Cabeza-Ruiz et al. (550,097 parameters for 1 input and 1 output channel)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nnunet_ataxia.architectures.common import check_spatial_divisibility


class InceptionBlock3d(nn.Module):
    """The paper's small inception circuit I(n): four branches concatenated into ``4 n`` channels.

    ``t1 = conv1x1(x)``, ``t2 = conv3x3x3(t1)``, ``t3 = conv3x3x3(t2)``, ``t4 = conv1x1(maxpool3_stride1(x))``; every
    convolution has a bias and is followed by ReLU. Parameters: ``2 c n + 54 n² + 4 n`` for ``c`` input channels.

    Args:
        in_channels: ``c``.
        n: filters per branch.

    Example:
        >>> InceptionBlock3d(1, 4)(torch.zeros(1, 1, 8, 8, 8)).shape
        torch.Size([1, 16, 8, 8, 8])
    """

    def __init__(self, in_channels: int, n: int) -> None:
        super().__init__()
        assert in_channels >= 1 and n >= 1, f"in_channels and n must be >= 1, got {in_channels}, {n}"
        self.t1 = nn.Conv3d(in_channels, n, kernel_size=1)
        self.t2 = nn.Conv3d(n, n, kernel_size=3, padding=1)
        self.t3 = nn.Conv3d(n, n, kernel_size=3, padding=1)
        self.pool = nn.MaxPool3d(kernel_size=3, stride=1, padding=1)
        self.t4 = nn.Conv3d(in_channels, n, kernel_size=1)
        self.out_channels = 4 * n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t1 = F.relu(self.t1(x))
        t2 = F.relu(self.t2(t1))
        t3 = F.relu(self.t3(t2))
        t4 = F.relu(self.t4(self.pool(x)))
        return torch.cat([t1, t2, t3, t4], dim=1)


class _SamePadMaxPool3d(nn.Module):
    """Max pooling, kernel 3, stride 2, with TensorFlow's ``same`` padding (output = ceil(input / 2))."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size in reversed(x.shape[2:]):
            total = max(3 - (2 if size % 2 == 0 else 1), 0)
            pads += [total // 2, total - total // 2]
        return F.max_pool3d(F.pad(x, pads, value=float("-inf")), kernel_size=3, stride=2)


class M2InceptionUNet(nn.Module):
    """Model M2 of Cabeza-Ruiz et al.: a four-level 3D U-Net whose convolutions are inception blocks.

    Encoder ``I(4)`` then four times [max-pool 3 stride 2 ``same`` → ``I(n)``], n = 8, 16, 32, 32; bottom ``I(32)``;
    decoder four times [transposed conv 3×3×3 stride 2 + ReLU → concat the encoder output of that resolution →
    ``I(n)``], n = 32, 16, 8, 4; dropout 0.2; 1×1×1 output convolution (logits). With ``input_channels=1,
    num_classes=1`` it has exactly 550,097 parameters, the paper's figure. Every spatial axis must be divisible by 16.

    Args:
        input_channels: number of image channels.
        num_classes: number of output channels (nnU-Net passes the number of segmentation heads).
        deep_supervision: accepted for nnU-Net's ``get_network_from_plans``; only ``False`` is allowed.
        dropout: dropout probability before the output convolution (0.2 in the paper).

    Example:
        >>> net = M2InceptionUNet(input_channels=1, num_classes=3)
        >>> net(torch.zeros(1, 1, 32, 32, 16)).shape
        torch.Size([1, 3, 32, 32, 16])
    """

    divisor: int = 16
    #: memory layout used inside the network: channels-last makes oneDNN's CPU convolutions and max-pooling markedly
    #: faster (``benchmarks/bench_networks.py``); the result is the same (tested), set ``contiguous_format`` to compare
    memory_format: torch.memory_format = torch.channels_last_3d

    def __init__(self, input_channels: int, num_classes: int, deep_supervision: bool = False,
                 dropout: float = 0.2) -> None:
        super().__init__()
        assert input_channels >= 1, f"input_channels must be >= 1, got {input_channels}"
        assert num_classes >= 1, f"num_classes must be >= 1, got {num_classes}"
        assert not deep_supervision, (
            "M2InceptionUNet has no deep supervision outputs: build it with deep_supervision=False "
            "(use M2InceptionTrainer, which switches nnU-Net's deep supervision off)")
        self.input_channels = input_channels
        self.num_classes = num_classes
        self.pool = _SamePadMaxPool3d()
        self.encoder = nn.ModuleList([InceptionBlock3d(input_channels, 4)])
        channels = 16
        for n in (8, 16, 32, 32):
            self.encoder.append(InceptionBlock3d(channels, n))
            channels = 4 * n
        self.bottom = InceptionBlock3d(channels, 32)
        # (transposed-conv input, transposed-conv output, skip channels, inception n)
        decoder_spec = ((128, 32, 128, 32), (128, 32, 64, 16), (64, 16, 32, 8), (32, 8, 16, 4))
        self.up = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for n_in, n_t, skip, n in decoder_spec:
            self.up.append(nn.ConvTranspose3d(n_in, n_t, kernel_size=3, stride=2, padding=1, output_padding=1))
            self.decoder.append(InceptionBlock3d(n_t + skip, n))
        self.dropout = nn.Dropout3d(p=dropout) if dropout > 0 else nn.Identity()
        self.output_conv = nn.Conv3d(16, num_classes, kernel_size=1)
        self.to(memory_format=self.memory_format)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_spatial_divisibility(tuple(x.shape[2:]), self.divisor, type(self).__name__)
        x = x.contiguous(memory_format=self.memory_format)
        skips = []
        for i, block in enumerate(self.encoder):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        x = self.bottom(x)
        # skips[-1] is the bottom's input (same resolution), the decoder uses skips[3], [2], [1], [0]
        for up, block, skip in zip(self.up, self.decoder, reversed(skips[:-1])):
            x = block(torch.cat([F.relu(up(x)), skip], dim=1))
        return self.output_conv(self.dropout(x)).contiguous()
