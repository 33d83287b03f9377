"""Checks and fast CPU building blocks shared by the plugin's architectures."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class PatchSizeError(ValueError):
    """A spatial size that a network cannot process (not divisible by its down-sampling factor)."""


def check_spatial_divisibility(spatial_shape: Sequence[int], divisor: int, network_name: str) -> None:
    """Raise :class:`PatchSizeError` unless every spatial axis is divisible by ``divisor``.

    Args:
        spatial_shape: the spatial size (e.g. ``(96, 128, 128)``).
        divisor: required divisor per axis (8 for M1, 16 for M2).
        network_name: used in the message.

    Example:
        >>> check_spatial_divisibility((96, 128, 128), 16, "M2InceptionUNet")
    """
    bad = [s for s in spatial_shape if s % divisor != 0]
    if bad or len(spatial_shape) != 3:
        raise PatchSizeError(
            f"{network_name} cannot process spatial size {tuple(int(s) for s in spatial_shape)}: it needs a 3D size "
            f"whose every axis is divisible by {divisor} (offending: {bad or 'not 3D'}); "
            f"use a patch size such as {tuple(int(-(-max(s, 1) // divisor) * divisor) for s in spatial_shape)}")


def round_up_to_multiple(spatial_shape: Sequence[int], divisor: int) -> list[int]:
    """Round each axis up to the next multiple of ``divisor``.

    Example:
        >>> round_up_to_multiple([40, 56, 40], 16)
        [48, 64, 48]
    """
    return [int(-(-int(s) // divisor) * divisor) for s in spatial_shape]


#: the memory layout M1/M2 run in on the CPU: oneDNN's channels-last 3D convolutions and PyTorch's channels-last max
#: pooling are several times faster than their channels-first versions for these small channel counts
#: (``benchmarks/bench_networks.py``); the numbers are the same (tested)
CHANNELS_LAST = torch.channels_last_3d


def to_channels_last(x: torch.Tensor) -> torch.Tensor:
    """``x`` in the channels-last 3D layout (no copy when it already is).

    Example:
        >>> to_channels_last(torch.zeros(1, 2, 4, 4, 4)).is_contiguous(memory_format=CHANNELS_LAST)
        True
    """
    return x.contiguous(memory_format=CHANNELS_LAST)


def global_forward_hooks_registered() -> bool:
    """True when ``torch.nn.modules.module.register_module_forward_hook`` (or ``..._pre_hook``) hooks are active."""
    from torch.nn.modules import module

    return bool(getattr(module, "_global_forward_hooks", None) or getattr(module, "_global_forward_pre_hooks", None))


def _autocast_or_compiling() -> bool:
    try:  # torch >= 2.4; older versions: the CPU autocast flag has its own function
        autocast = torch.is_autocast_enabled("cpu")
    except TypeError:
        autocast = torch.is_autocast_cpu_enabled()
    compiler = getattr(torch, "compiler", None)
    return autocast or bool(compiler is not None and getattr(compiler, "is_compiling", lambda: False)())


def _onednn_applies(x: torch.Tensor, weight: torch.Tensor) -> bool:
    return (x.device.type == "cpu" and x.dtype == weight.dtype and x.dtype in (torch.float32, torch.bfloat16)
            and torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled
            and hasattr(torch.ops.aten, "mkldnn_convolution") and not _autocast_or_compiling())


def conv3d(conv: nn.Conv3d, x: torch.Tensor) -> torch.Tensor:
    """``conv(x)``, on the CPU through oneDNN directly and in the channels-last layout.

    PyTorch's own dispatch sends small batch-1 inputs (every inference patch of the lower levels) to its slow
    reference convolution; oneDNN is 10–20× faster there. The result equals ``conv(x)`` (to float rounding), autograd
    included; elsewhere (GPU, autocast, ``torch.compile``, no oneDNN) this is plain ``conv(x)``.

    Example:
        >>> conv = nn.Conv3d(2, 4, 3, padding=1)
        >>> conv3d(conv, torch.zeros(1, 2, 8, 8, 8)).shape
        torch.Size([1, 4, 8, 8, 8])
    """
    if not _onednn_applies(x, conv.weight) or isinstance(conv.padding, str):
        return conv(x)
    out = torch.ops.aten.mkldnn_convolution(x, conv.weight, conv.bias, list(conv.padding), list(conv.stride),
                                            list(conv.dilation), conv.groups)
    return to_channels_last(out)


def conv1x1(conv: nn.Conv3d, *parts: torch.Tensor) -> torch.Tensor:
    """The 1×1×1 convolution ``conv(torch.cat(parts, dim=1))``, as matrix products over the channels-last channel axis.

    Each part is multiplied by its slice of the weights and the products are accumulated in place, so a concatenation
    that only feeds this convolution is never built. On the CPU the backward pass is several times faster than
    oneDNN's for the few channels of M1/M2, and the result is channels-last (no layout copies). The weights stay
    ``conv``'s, so checkpoints are unchanged.

    Example:
        >>> conv = nn.Conv3d(6, 2, 1)
        >>> a, b = torch.randn(1, 4, 4, 4, 4), torch.randn(1, 2, 4, 4, 4)
        >>> torch.allclose(conv1x1(conv, a, b), conv(torch.cat([a, b], dim=1)), atol=1e-6)
        True
    """
    assert conv.kernel_size == (1, 1, 1) and conv.stride == (1, 1, 1) and conv.groups == 1, conv
    assert sum(p.shape[1] for p in parts) == conv.in_channels, (conv, [tuple(p.shape) for p in parts])
    weight = conv.weight.flatten(1)
    n, _, *spatial = parts[0].shape
    out, start = None, 0
    for part in parts:
        rows = to_channels_last(part).permute(0, 2, 3, 4, 1).reshape(-1, part.shape[1])
        # a contiguous slice: autograd then computes the weight gradient as grad^T @ rows, 10x faster on the CPU
        # than rows^T @ grad for these shapes (PyTorch's mm_mat2_backward picks the order from the strides)
        w = weight[:, start:start + part.shape[1]].contiguous().t()
        start += part.shape[1]
        if out is None:
            out = rows @ w if conv.bias is None else torch.addmm(conv.bias, rows, w)
        else:  # in place: autocast does not apply, so match the dtype of the first product (bf16 under autocast)
            out = out.addmm_(rows.to(out.dtype), w.to(out.dtype))
    return out.view(n, *spatial, conv.out_channels).permute(0, 4, 1, 2, 3)


#: bytes of one working buffer of :func:`max_pool3x3` (a few depth slices): small enough to be re-used from the heap
#: instead of fresh memory-mapped pages, whose page faults cost more than the maxima themselves
POOL_TILE_BYTES = 16 * 2 ** 20


def _max3_along(x: torch.Tensor, axis: int, out: torch.Tensor) -> torch.Tensor:
    """``out[i] = max(x[i-1], x[i], x[i+1])`` along ``axis`` (edges clipped); ``out`` has ``x``'s shape."""
    size = x.shape[axis]
    if size == 1:
        return out.copy_(x)
    torch.maximum(x.narrow(axis, 0, size - 1), x.narrow(axis, 1, size - 1), out=out.narrow(axis, 0, size - 1))
    out.narrow(axis, size - 1, 1).copy_(x.narrow(axis, size - 1, 1))
    after = out.narrow(axis, 1, size - 1)
    return torch.maximum(after, x.narrow(axis, 0, size - 1), out=after)


def max_pool3x3(x: torch.Tensor) -> torch.Tensor:
    """Max pooling, kernel 3, stride 1, padding 1 (``same``): ``F.max_pool3d(x, 3, 1, 1)``.

    When no gradient is needed for ``x`` (inference, or the network's input image) it is computed separably (max is
    separable) and in tiles of a few depth slices: along x and y into two small buffers re-used from tile to tile,
    then along z straight into the result. Same numbers; on the CPU 1.5–15× faster than ``F.max_pool3d`` and, by
    allocating one full-size tensor instead of three, faster again where fresh large allocations page-fault
    (``benchmarks/bench_networks.py``).

    Example:
        >>> x = torch.randn(1, 2, 5, 6, 7)
        >>> torch.equal(max_pool3x3(x), F.max_pool3d(x, 3, 1, 1))
        True
    """
    if (torch.is_grad_enabled() and x.requires_grad) or x.ndim != 5:
        return F.max_pool3d(x, kernel_size=3, stride=1, padding=1)
    fmt = CHANNELS_LAST if x.is_contiguous(memory_format=CHANNELS_LAST) else torch.contiguous_format
    out = torch.empty(x.shape, dtype=x.dtype, device=x.device, memory_format=fmt)
    step, buffers = _pool_tiling([x], fmt)
    for start in range(0, x.shape[2], step):
        m = min(step, x.shape[2] - start)
        _pool_depth_tile(x, start, m, buffers[0], out.narrow(2, start, m))
    return out


def _pool_tiling(parts: Sequence[torch.Tensor], fmt) -> tuple[int, list[list[torch.Tensor]]]:
    """Depth slices per tile (so that one part's tile buffer stays under :data:`POOL_TILE_BYTES`) and, per part, the
    two working buffers of :func:`_pool_depth_tile` (a tile's slices + 2 halo slices)."""
    depth = parts[0].shape[2]
    slice_bytes = max(p[:, :, :1].numel() * p.element_size() for p in parts)
    rows = min(depth, max(3, POOL_TILE_BYTES // max(1, slice_bytes)))
    step = max(1, rows - 2) if rows < depth else depth
    buffers = [[torch.empty((*p.shape[:2], rows, *p.shape[3:]), dtype=p.dtype, device=p.device, memory_format=fmt)
                for _ in range(2)] for p in parts]
    return step, buffers


def _pool_depth_tile(x: torch.Tensor, start: int, m: int, buffers: list[torch.Tensor], o: torch.Tensor) -> None:
    """Write slices ``start .. start + m - 1`` of ``max_pool3x3(x)`` into ``o`` (m slices): separably, along x and y
    into the two buffers (with one halo slice each side), then along z into ``o``."""
    depth = x.shape[2]
    lo, hi = max(start - 1, 0), min(start + m + 1, depth)
    a, b = (buf.narrow(2, 0, hi - lo) for buf in buffers)
    _max3_along(x.narrow(2, lo, hi - lo), 4, a)
    _max3_along(a, 3, b)
    # along z: o[d] = max(b[d-1], b[d], b[d+1]) for the tile's slices d (b's index j = d - lo), clipped
    j = start - lo
    with_next = min(m, hi - lo - j - 1)
    if with_next > 0:
        torch.maximum(b.narrow(2, j, with_next), b.narrow(2, j + 1, with_next), out=o.narrow(2, 0, with_next))
    if with_next < m:  # the volume's last slice
        o.narrow(2, with_next, m - with_next).copy_(b.narrow(2, j + with_next, m - with_next))
    first = 1 if j == 0 else 0  # the volume's first slice has no previous one
    if m > first:
        tail = o.narrow(2, first, m - first)
        torch.maximum(tail, b.narrow(2, j + first - 1, m - first), out=tail)


def pooled_conv1x1(conv: nn.Conv3d, *parts: torch.Tensor) -> torch.Tensor:
    """``conv1x1(conv, *[max_pool3x3(p) for p in parts])`` (the inception block's pooled branch) without building
    the pooled parts.

    Without autograd or autocast, for one channels-last volume (inference): depth tile by depth tile, each part's
    pooled tile goes into a small buffer and is multiplied straight into the result's rows for that tile; the
    full-size pooled tensors (150 MB at M2's top decoder level) are never allocated. Otherwise the two steps as
    written above. Equal to float rounding (tested).

    Example:
        >>> conv = nn.Conv3d(3, 2, 1)
        >>> x = torch.randn(1, 3, 5, 6, 7).contiguous(memory_format=CHANNELS_LAST)
        >>> with torch.no_grad():
        ...     torch.allclose(pooled_conv1x1(conv, x), conv(F.max_pool3d(x, 3, 1, 1)), atol=1e-6)
        True
    """
    fast = (not torch.is_grad_enabled() and not _autocast_or_compiling() and parts[0].ndim == 5
            and parts[0].shape[0] == 1 and all(p.is_contiguous(memory_format=CHANNELS_LAST) for p in parts)
            and all(p.dtype == conv.weight.dtype for p in parts))
    if not fast:
        return conv1x1(conv, *[max_pool3x3(p) for p in parts])
    _, _, depth, h, w = parts[0].shape
    out = torch.empty((depth * h * w, conv.out_channels), dtype=parts[0].dtype, device=parts[0].device)
    weight = conv.weight.flatten(1)
    step, buffers = _pool_tiling(parts, CHANNELS_LAST)
    tiles = [torch.empty_like(buf[0]) for buf in buffers]          # one pooled tile per part
    for start in range(0, depth, step):
        m = min(step, depth - start)
        rows = out[start * h * w:(start + m) * h * w]
        c0 = 0
        for part, buf, tile in zip(parts, buffers, tiles, strict=False):
            pooled = tile.narrow(2, 0, m)
            _pool_depth_tile(part, start, m, buf, pooled)
            c = part.shape[1]
            w_part = weight[:, c0:c0 + c].t()
            pooled_rows = pooled.permute(0, 2, 3, 4, 1).reshape(-1, c)
            if c0 == 0 and conv.bias is None:
                torch.mm(pooled_rows, w_part, out=rows)
            elif c0 == 0:
                torch.addmm(conv.bias, pooled_rows, w_part, out=rows)
            else:
                rows.addmm_(pooled_rows, w_part)
            c0 += c
    return out.view(1, depth, h, w, conv.out_channels).permute(0, 4, 1, 2, 3)


#: where M1/M2 apply their dropout (see :func:`make_dropout`)
DROPOUT_PLACEMENTS = ("features", "output")


def make_dropout(p: float, placement: str) -> nn.Module:
    """The dropout module of M1/M2 for ``placement``.

    ``"features"``: channel-wise ``Dropout3d`` of the feature maps that enter the output convolution (the nnU-Net
    recipe trainers and the released pretrained model). ``"output"``: element-wise ``Dropout`` of the output
    convolution's result — "a dropout of 0.2 after the last convolutional layer" in the paper, Keras ``Dropout(0.2)``
    after the output ``Conv3D`` in the authors' code (used by the ``_paperWDA`` / ``_paperNDA`` trainers).
    Dropout has no parameters, so the placement does not change checkpoints or inference.

    Example:
        >>> make_dropout(0.2, "output")
        Dropout(p=0.2, inplace=False)
    """
    if placement not in DROPOUT_PLACEMENTS:
        raise ValueError(f"dropout placement must be one of {DROPOUT_PLACEMENTS}, got {placement!r}")
    if p <= 0:
        return nn.Identity()
    return nn.Dropout3d(p=p) if placement == "features" else nn.Dropout(p=p)


WEIGHT_INITS = ("pytorch", "keras")


def init_weights_(network: nn.Module, scheme: str) -> nn.Module:
    """Initialize the convolutions of ``network`` in place with ``scheme`` and return it.

    ``"pytorch"``: leave PyTorch's default (``kaiming_uniform_(a=sqrt(5))``: weight variance 1/(3 fan_in), bias
    uniform in ±1/sqrt(fan_in)). ``"keras"``: Keras' defaults, as in the papers' Keras code (``glorot_uniform``
    kernels, variance 2/(fan_in + fan_out), three times PyTorch's for a square layer; zero biases).

    Args:
        network: any module; every ``Conv``/``ConvTranspose`` in it is (re)initialized.
        scheme: one of :data:`WEIGHT_INITS`.

    Example:
        >>> conv = init_weights_(nn.Conv3d(2, 4, 3), "keras")
        >>> float(conv.bias.abs().sum()), bool(conv.weight.abs().max() <= (6 / ((2 + 4) * 27)) ** 0.5)
        (0.0, True)
    """
    if scheme not in WEIGHT_INITS:
        raise ValueError(f"weight initialization must be one of {WEIGHT_INITS}, got {scheme!r}")
    if scheme == "keras":
        for module in network.modules():
            if isinstance(module, nn.modules.conv._ConvNd):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
    return network


def check_unet_arguments(network: str, trainer: str, input_channels: int, num_classes: int,
                         deep_supervision: bool) -> None:
    """The constructor checks that M1 and M2 share (explicit messages, as dynamic-network-architectures' asserts).

    Example:
        >>> check_unet_arguments("M2InceptionUNet", "M2InceptionTrainer", 1, 3, False)
    """
    if input_channels < 1:
        raise ValueError(f"input_channels must be >= 1, got {input_channels}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if deep_supervision:
        raise ValueError(f"{network} has no deep supervision outputs: build it with deep_supervision=False "
                         f"(use {trainer}, which switches nnU-Net's deep supervision off)")


#: state-dict prefix of the M1/M2 output convolution. nnU-Net's ``load_pretrained_weights`` transfers every weight
#: except those whose key contains ``.seg_layers.`` (nnU-Net's own networks' segmentation layers), so with this name
#: ``-pretrained_weights`` works for a dataset with another label set (the output layer starts fresh, as in nnU-Net)
SEG_LAYERS_PREFIX = "head.seg_layers."
#: the prefix that checkpoints written before that change use (still loaded: :func:`upgrade_output_keys`)
LEGACY_OUTPUT_PREFIX = "output_conv."


class OutputHead(nn.Module):
    """Holder of the M1/M2 output convolution, registered as ``head`` so that its keys read ``head.seg_layers.*``.

    Args:
        seg_layers: the output convolution (features -> logits).

    Example:
        >>> list(OutputHead(nn.Conv3d(4, 2, kernel_size=1)).state_dict())
        ['seg_layers.weight', 'seg_layers.bias']
    """

    def __init__(self, seg_layers: nn.Conv3d) -> None:
        super().__init__()
        self.seg_layers = seg_layers


def upgrade_output_keys(state_dict: dict, prefix: str = "") -> dict:
    """Rename, in place, a checkpoint's ``{prefix}output_conv.*`` keys (M1/M2 saved before the output layer became
    ``head.seg_layers``) to ``{prefix}head.seg_layers.*``; other keys and the order of all keys are kept.

    Example:
        >>> list(upgrade_output_keys({"up.0.weight": 1, "output_conv.weight": 2, "output_conv.bias": 3}))
        ['up.0.weight', 'head.seg_layers.weight', 'head.seg_layers.bias']
    """
    old = prefix + LEGACY_OUTPUT_PREFIX
    if any(k.startswith(old) for k in state_dict):
        items = list(state_dict.items())
        state_dict.clear()
        for k, v in items:
            state_dict[prefix + SEG_LAYERS_PREFIX + k[len(old):] if k.startswith(old) else k] = v
    return state_dict


def load_legacy_output_keys(module: nn.Module, state_dict: dict, prefix: str, *args) -> None:
    """``load_state_dict`` pre-hook of M1/M2: checkpoints with the old output-layer keys load unchanged."""
    upgrade_output_keys(state_dict, prefix)


def output_head(x: torch.Tensor, dropout: nn.Module, placement: str, output_conv: nn.Conv3d, conv_fn) -> torch.Tensor:
    """Dropout (before or after, see :func:`make_dropout`) around the output convolution ``conv_fn(output_conv, x)``.

    Example:
        >>> conv = nn.Conv3d(4, 2, kernel_size=1)
        >>> output_head(torch.zeros(1, 4, 2, 2, 2), nn.Identity(), "features", conv, conv1x1).shape
        torch.Size([1, 2, 2, 2, 2])
    """
    if placement == "features":
        x = dropout(x)
    out = conv_fn(output_conv, x)
    if placement == "output":
        out = dropout(out)
    return out.contiguous()

