"""M2: the inception 3D U-Net of Cabeza-Ruiz et al. (550,097 parameters for 1 input and 1 output channel)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nnunet_ataxia.architectures.common import (
    CHANNELS_LAST,
    OutputHead,
    check_spatial_divisibility,
    check_unet_arguments,
    conv1x1,
    conv3d,
    global_forward_hooks_registered,
    load_legacy_output_keys,
    make_dropout,
    output_head,
    pooled_conv1x1,
    to_channels_last,
)


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
        if in_channels < 1 or n < 1:
            raise ValueError(f"in_channels and n must be >= 1, got {in_channels}, {n}")
        self.t1 = nn.Conv3d(in_channels, n, kernel_size=1)
        self.t2 = nn.Conv3d(n, n, kernel_size=3, padding=1)
        self.t3 = nn.Conv3d(n, n, kernel_size=3, padding=1)
        # the layer of the module tree (no state); forward applies the same pooling through common.max_pool3x3
        self.pool = nn.MaxPool3d(kernel_size=3, stride=1, padding=1)
        self.t4 = nn.Conv3d(in_channels, n, kernel_size=1)
        self.out_channels = 4 * n

    def forward(self, *parts: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """The block applied to ``torch.cat(parts, dim=1)``; the concatenation itself is never built.

        Computed in the channels-last layout: the 1×1 branches as matrix products over channels, accumulated part by
        part (``common.conv1x1``), the 3×3×3 ones through oneDNN (``common.conv3d``), max pooling per part (it acts
        on each channel alone), ReLU in place. The same function and parameters as the plain layers (tested).

        Args:
            parts: the input, split along the channels.
            out: without autograd only: a channels-last tensor of the output's shape to write the result into, read
                no more once the branches are computed, so it may be one of ``parts`` (M2's decoder re-uses its skip
                input's memory: fresh large allocations page-fault, which costs more than filling them).
        """
        parts = [to_channels_last(p) for p in parts]
        t1 = F.relu(conv1x1(self.t1, *parts), inplace=True)
        t4 = F.relu(pooled_conv1x1(self.t4, *parts), inplace=True)       # = conv1x1(t4, maxpool(x))
        t2 = F.relu(conv3d(self.t2, t1), inplace=True)
        t3 = F.relu(conv3d(self.t3, t2), inplace=True)
        if out is None:
            return torch.cat([t1, t2, t3, t4], dim=1)
        assert not torch.is_grad_enabled() or not any(t.requires_grad for t in (t1, t4, out)), \
            "InceptionBlock3d(out=...) is for inference only (no autograd)"
        assert out.shape == (t1.shape[0], self.out_channels, *t1.shape[2:]) and out.is_contiguous(
            memory_format=CHANNELS_LAST), f"out must be a channels-last {self.out_channels}-channel tensor"
        n = t1.shape[1]
        for i, branch in enumerate((t1, t2, t3, t4)):
            out[:, i * n:(i + 1) * n].copy_(branch)
        return out


class _SamePadMaxPool3d(nn.Module):
    """Max pooling, kernel 3, stride 2, with TensorFlow's ``same`` padding (output = ceil(input / 2)).

    For even sizes (always the case inside M2, whose input is divisible by 16) TensorFlow pads one voxel at the end,
    which is exactly PyTorch's ``ceil_mode`` window: no padded copy of the input is made.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if all(size % 2 == 0 for size in x.shape[2:]):
            if torch.is_grad_enabled() and x.requires_grad:
                return F.max_pool3d(x, kernel_size=3, stride=2, ceil_mode=True)
            # no gradient needed: separably, out[i] = max(x[2i], x[2i+1], x[2i+2]) one axis after the other
            for axis in range(2, x.ndim):
                even, odd = x[_every_other(x.ndim, axis, 0)], x[_every_other(x.ndim, axis, 1)]
                out = torch.maximum(even, odd)
                head = out.narrow(axis, 0, out.shape[axis] - 1)
                torch.maximum(head, even.narrow(axis, 1, even.shape[axis] - 1), out=head)
                x = out
            return x
        pads = []
        for size in reversed(x.shape[2:]):
            total = max(3 - (2 if size % 2 == 0 else 1), 0)
            pads += [total // 2, total - total // 2]
        return F.max_pool3d(F.pad(x, pads, value=float("-inf")), kernel_size=3, stride=2)


def _every_other(ndim: int, axis: int, start: int) -> tuple:
    """Index taking every other element of ``axis``, from ``start``."""
    return tuple(slice(start, None, 2) if a == axis else slice(None) for a in range(ndim))


class M2InceptionUNet(nn.Module):
    """Model M2 of Cabeza-Ruiz et al.: a four-level 3D U-Net whose convolutions are inception blocks.

    Encoder ``I(4)`` then four times [max-pool 3 stride 2 ``same`` → ``I(n)``], n = 8, 16, 32, 32; bottom ``I(32)``;
    decoder four times [transposed conv 3×3×3 stride 2 + ReLU → concat the encoder output of that resolution →
    ``I(n)``], n = 32, 16, 8, 4; dropout 0.2; 1×1×1 output convolution (logits;
    ``head.seg_layers``, see :class:`~nnunet_ataxia.architectures.common.OutputHead`). With ``input_channels=1,
    num_classes=1`` it has exactly 550,097 parameters, the paper's figure. Every spatial axis must be divisible by 16.

    Args:
        input_channels: number of image channels.
        num_classes: number of output channels (nnU-Net passes the number of segmentation heads).
        deep_supervision: accepted for nnU-Net's ``get_network_from_plans``; only ``False`` is allowed.
        dropout: dropout probability (0.2 in the paper).
        dropout_placement: ``"features"`` (channel-wise dropout of the 16 feature maps before the output convolution)
            or ``"output"`` (element-wise dropout of the output convolution's result, as the paper and the authors'
            Keras code do); see :func:`~nnunet_ataxia.architectures.common.make_dropout`.

    Example:
        >>> net = M2InceptionUNet(input_channels=1, num_classes=3)
        >>> net(torch.zeros(1, 1, 32, 32, 16)).shape
        torch.Size([1, 3, 32, 32, 16])
    """

    divisor: int = 16

    def __init__(self, input_channels: int, num_classes: int, deep_supervision: bool = False,
                 dropout: float = 0.2, dropout_placement: str = "features") -> None:
        super().__init__()
        check_unet_arguments("M2InceptionUNet", "M2InceptionTrainer", input_channels, num_classes, deep_supervision)
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
        self.dropout_placement = dropout_placement
        self.dropout = make_dropout(dropout, dropout_placement)
        self.head = OutputHead(nn.Conv3d(16, num_classes, kernel_size=1))   # keys head.seg_layers.* (see common)
        self.register_load_state_dict_pre_hook(load_legacy_output_keys)
        self.to(memory_format=CHANNELS_LAST)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_spatial_divisibility(tuple(x.shape[2:]), self.divisor, type(self).__name__)
        x = to_channels_last(x)
        skips = []
        for i, block in enumerate(self.encoder):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        x = self.bottom(x)
        # skips[-1] is the bottom's input (same resolution), the decoder uses skips[3], [2], [1], [0]
        reuse = self._may_overwrite_skips()
        for up, block, skip in zip(self.up, self.decoder, reversed(skips[:-1]), strict=False):
            # = block(concat[up, skip]), without the copy; without autograd written over the skip's memory, which
            # nothing reads afterwards (every decoder output has its skip's shape)
            into = skip if reuse and skip.is_contiguous(memory_format=CHANNELS_LAST) else None
            x = block(F.relu(up(x), inplace=True), skip, out=into)
        return output_head(x, self.dropout, self.dropout_placement, self.head.seg_layers, conv1x1)

    def _may_overwrite_skips(self) -> bool:
        """True without autograd and without forward hooks (a hook may keep an encoder output or a decoder input)."""
        if torch.is_grad_enabled():   # even with frozen weights: the input may need a gradient (saliency maps)
            return False
        hooked = any(m._forward_hooks or m._forward_pre_hooks for m in self.modules())
        return not (hooked or global_forward_hooks_registered())
