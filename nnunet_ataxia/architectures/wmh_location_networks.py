"""Location-sensitive multi-scale 2D networks of Ghafoorian et al. (SS, MSEF, MSIW, MSWS, each +/- location).

One module holds the weights and offers two forms of the same function:

* the patch classifier :meth:`WMHLocationNet.forward_patches` (32x32 patches at one or three scales + the location
  vector -> class logits), as trained in the paper;
* the dense form :meth:`WMHLocationNet.forward_dense` / :meth:`WMHLocationNet.forward` (a whole slice -> logits at
  every pixel). Fully connected layers become convolutions (FC1 an 18x18 convolution, FC2/FC3 1x1
  convolutions); scale ``s`` becomes stride-1 ``s x s`` averaging followed by convolutions dilated by
  ``s``. For slices large enough (and no gradient needed) FC1 runs in the frequency domain on the ``s x s``
  polyphase grids (:mod:`nnunet_ataxia.architectures.wmh_fft_conv`): same result, ~10x cheaper. MSEF has no such
  form (its channel-stacked scales do not share a spatial grid), so its dense form evaluates the patch classifier on
  every pixel.

``forward(x)`` takes nnU-Net's (B, 10, H, W) input: channel 0 T1, 1 FLAIR, 2-9 location features (ignored when
``use_location`` is False) and returns (B, num_classes, H, W) logits. FLAIR-only datasets give (B, 9, H, W):
channel 0 FLAIR, 1-8 location features (``num_image_channels=1``; :func:`image_channel_count` tells which).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nnunet_ataxia.architectures.wmh_fft_conv import (
    DEFAULT_TILE,
    KernelSpectrumCache,
    conv2d_fft,
    polyphase_merge,
    polyphase_split,
)
from nnunet_ataxia.architectures.wmh_patches import PATCH_SIZE, SCALE_FACTORS, extract_multiscale_patches, scale_padding
from nnunet_ataxia.io.constants import WMH_IMAGE_CHANNEL_NAMES, WMH_LOCATION_CHANNEL_NAMES

CONV_LAYERS = ((20, 7), (40, 5), (80, 3), (110, 3))   # (filters, kernel size), valid padding, ReLU, no pooling
CONV_OUT_SIZE = PATCH_SIZE - sum(k - 1 for _, k in CONV_LAYERS)  # 18
CONV_FEATURES = CONV_LAYERS[-1][0] * CONV_OUT_SIZE ** 2          # 35,640
FC_SIZES = (300, 200)
VARIANTS = ("SS", "MSEF", "MSIW", "MSWS")
INJECTIONS = ("last_conv", "first_fc", "second_fc")
NUM_IMAGE_CHANNELS = len(WMH_IMAGE_CHANNEL_NAMES)         # T1 + FLAIR (the paper); FLAIR-only datasets have 1
NUM_LOCATION_FEATURES = len(WMH_LOCATION_CHANNEL_NAMES)


def image_channel_count(num_input_channels: int) -> int:
    """Image channels (T1 + FLAIR: 2, FLAIR-only: 1) of a WMH input with ``num_input_channels`` channels.

    Inputs with the eight location features have 10 (T1, FLAIR, 8 features) or 9 (FLAIR, 8 features) channels.
    Fewer than 9 channels (inputs without the features, toy inputs) keep the paper's layout: T1 and FLAIR first
    (1 channel: FLAIR only).

    Example:
        >>> image_channel_count(10), image_channel_count(9), image_channel_count(2), image_channel_count(1)
        (2, 1, 2, 1)
    """
    if not (1 <= num_input_channels <= NUM_IMAGE_CHANNELS + NUM_LOCATION_FEATURES):
        raise ValueError(f"a WMH input has 1-2 image channels + up to {NUM_LOCATION_FEATURES} location features, "
                         f"got {num_input_channels} channels")
    if num_input_channels > NUM_LOCATION_FEATURES:
        return num_input_channels - NUM_LOCATION_FEATURES
    return min(num_input_channels, NUM_IMAGE_CHANNELS)


class WMHConvStack(nn.Module):
    """The four valid convolutions 20@7x7, 40@5x5, 80@3x3, 110@3x3 with ReLU; ``dilation`` gives the dense form."""

    def __init__(self, in_channels: int):
        super().__init__()
        layers, c = [], in_channels
        for filters, k in CONV_LAYERS:
            layers.append(nn.Conv2d(c, filters, k))
            c = filters
        self.convs = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor, dilation: int = 1) -> torch.Tensor:
        """Without autograd in the channels-last layout with ReLU in place (oneDNN's fast path; same numbers)."""
        if torch.is_grad_enabled():
            for conv in self.convs:
                x = F.relu(F.conv2d(x, conv.weight, conv.bias, dilation=dilation))
            return x
        x = x.contiguous(memory_format=torch.channels_last)
        for conv in self.convs:
            x = F.conv2d(x, conv.weight, conv.bias, dilation=dilation).relu_()
        return x


class WMHLocationNet(nn.Module):
    """SS / MSEF / MSIW / MSWS network of Ghafoorian et al., optionally with the 8 location features.

    Args:
        variant: "SS", "MSEF", "MSIW" or "MSWS".
        use_location: concatenate ``location_alpha`` * the 8 location features at ``location_injection``.
        location_alpha: scaling alpha of the location features (stored as a buffer, so it travels in checkpoints).
        location_injection: "first_fc" (paper's best: with the outputs of the first FC layer), "last_conv" (with the
            flattened last conv responses) or "second_fc" (with the outputs of the second FC layer).
        num_classes: output classes (2 in the paper).
        dropout: dropout probability on the input of every fully connected layer.
        input_channels: channels of nnU-Net's input (>= 2, >= 10 with location); extra channels are ignored.
        num_image_channels: image channels at the front of the input: 2 (T1, FLAIR; the paper) or 1 (FLAIR-only).

    Example:
        >>> net = WMHLocationNet("MSWS", use_location=True).eval()
        >>> net(torch.rand(1, 10, 20, 24)).shape
        torch.Size([1, 2, 20, 24])
    """

    dense_fc1_method = "auto"        # "auto", "fft" or "direct": how forward_dense computes FC1 (same result)
    fft_min_outputs = 16              # auto: FFT when each s x s phase grid has >= this many output pixels
    fft_tile = DEFAULT_TILE           # overlap-save output tile (FFT size tile + 17); spectrum memory ~ tile**2

    def __init__(self, variant: str = "MSWS", use_location: bool = True, location_alpha: float = 1.0,
                 location_injection: str = "first_fc", num_classes: int = 2, dropout: float = 0.3,
                 input_channels: int | None = None, num_image_channels: int = NUM_IMAGE_CHANNELS):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        if location_injection not in INJECTIONS:
            raise ValueError(f"location_injection must be one of {INJECTIONS}")
        if num_image_channels not in (1, 2):
            raise ValueError(f"num_image_channels must be 1 (FLAIR) or 2 (T1, FLAIR), "
                             f"got {num_image_channels}")
        self.num_image_channels = num_image_channels
        needed = num_image_channels + (NUM_LOCATION_FEATURES if use_location else 0)
        if not (input_channels is None or input_channels >= needed):
            raise ValueError(f"{variant}{'+Loc' if use_location else ''} needs >= {needed} input channels, "
                             f"got {input_channels}")
        self.variant, self.use_location, self.location_injection = variant, use_location, location_injection
        self.num_classes = num_classes
        self.scale_factors: tuple[int, ...] = (1,) if variant == "SS" else SCALE_FACTORS
        self.register_buffer("location_alpha", torch.tensor(float(location_alpha)))
        n_loc = NUM_LOCATION_FEATURES if use_location else 0
        stack_in = num_image_channels * (3 if variant == "MSEF" else 1)
        self.conv_stacks = nn.ModuleList([WMHConvStack(stack_in) for _ in range(3 if variant == "MSIW" else 1)])
        n_streams = 3 if variant in ("MSIW", "MSWS") else 1
        fc1_in = CONV_FEATURES + (n_loc if location_injection == "last_conv" else 0)
        self.fc1 = nn.ModuleList([nn.Linear(fc1_in, FC_SIZES[0]) for _ in range(n_streams)])
        self.fc2 = nn.Linear(FC_SIZES[0] * n_streams + (n_loc if location_injection == "first_fc" else 0), FC_SIZES[1])
        self.fc3 = nn.Linear(FC_SIZES[1] + (n_loc if location_injection == "second_fc" else 0), num_classes)
        self.dropout = nn.Dropout(dropout)
        self._fc1_spectra: KernelSpectrumCache | None = None   # FC1 kernel spectra of the FFT dense path (no state)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Glorot (Xavier) uniform weights, zero biases."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    # ------------------------------------------------------------------ shared head
    def _inject(self, h: torch.Tensor, where: str, location: torch.Tensor | None, dim: int) -> torch.Tensor:
        if self.use_location and self.location_injection == where:
            if location is None:
                raise ValueError(f"{self.variant}+Loc needs the location features")
            return torch.cat([h, location * self.location_alpha.to(h.dtype)], dim)
        return h

    def _head(self, fc1_out: list[torch.Tensor], location: torch.Tensor | None, dense: bool) -> torch.Tensor:
        """FC1 outputs (per stream, pre-activation) -> logits; 1x1 convolutions when ``dense``."""
        dim = 1
        h = self.dropout(torch.cat([F.relu(t) for t in fc1_out], dim))
        h = F.relu(self._linear(self.fc2, self._inject(h, "first_fc", location, dim), dense))
        h = self._inject(self.dropout(h), "second_fc", location, dim)
        return self._linear(self.fc3, h, dense)

    @staticmethod
    def _linear(layer: nn.Linear, h: torch.Tensor, dense: bool) -> torch.Tensor:
        if not dense:
            return layer(h)
        return F.conv2d(h, layer.weight[:, :, None, None], layer.bias)

    def _fc1_location_weight(self, stream: int) -> torch.Tensor | None:
        if self.use_location and self.location_injection == "last_conv":
            return self.fc1[stream].weight[:, CONV_FEATURES:]
        return None

    # ------------------------------------------------------------------ patch classifier
    def forward_patches(self, patches: Sequence[torch.Tensor], location: torch.Tensor | None = None) -> torch.Tensor:
        """Patch classifier: one (N, C, 32, 32) tensor per scale (C = ``num_image_channels``) (1 for SS, 3
        otherwise) + (N, 8) location -> logits.

        Example:
            >>> net = WMHLocationNet("SS", use_location=False).eval()
            >>> net.forward_patches([torch.rand(4, 2, 32, 32)]).shape
            torch.Size([4, 2])
        """
        if len(patches) != len(self.scale_factors):
            raise ValueError(f"{self.variant} takes {len(self.scale_factors)} scale(s), got {len(patches)}")
        for p in patches:
            if not (p.shape[1:] == (self.num_image_channels, PATCH_SIZE, PATCH_SIZE)):
                raise ValueError(f"bad patch shape {tuple(p.shape)}")
        if self.variant == "MSEF":
            features = [self.conv_stacks[0](torch.cat(list(patches), 1))]
        elif self.variant == "MSIW":
            features = [stack(p) for stack, p in zip(self.conv_stacks, patches, strict=False)]
        else:
            features = [self.conv_stacks[0](p) for p in patches]
        return self._patch_head_from_features([f.flatten(1) for f in features], location)

    def _patch_head_from_features(self, flat: list[torch.Tensor], location: torch.Tensor | None) -> torch.Tensor:
        fc1_out = []
        for k, f in enumerate(flat):
            f = self._inject(self.dropout(f), "last_conv", location, 1)
            fc1_out.append(self.fc1[k](f))
        return self._head(fc1_out, location, dense=False)

    # ------------------------------------------------------------------ dense form
    def _dense_conv_features(self, images: torch.Tensor) -> list[tuple[torch.Tensor, int]]:
        """Per stream: (last conv responses on the padded, stride-1 averaged slice, dilation)."""
        return [(self._dense_stream_features(images, k, s), s) for k, s in enumerate(self.scale_factors)]

    def _dense_stream_features(self, images: torch.Tensor, stream: int, s: int) -> torch.Tensor:
        before, after = scale_padding(s)
        a = F.pad(images, (before, after, before, after))
        if s > 1:
            a = F.avg_pool2d(a, kernel_size=s, stride=1)
        return self.conv_stacks[stream if self.variant == "MSIW" else 0](a, dilation=s)

    def forward_dense(self, images: torch.Tensor, location: torch.Tensor | None = None) -> torch.Tensor:
        """Dense form: (B, C, H, W) images + (B, 8, H, W) location maps -> (B, num_classes, H, W) logits.

        The output at pixel (i, j) equals ``forward_patches`` on the patches centred at (i, j) with the location
        vector ``location[:, :, i, j]`` (eval mode; zero padding outside the slice).
        """
        if not (images.ndim == 4 and images.shape[1] == self.num_image_channels):
            raise ValueError(f"bad image shape {tuple(images.shape)}")
        if self.use_location:
            if not (location is not None and location.shape[1] == NUM_LOCATION_FEATURES
                    and location.shape[2:] == images.shape[2:]):
                raise ValueError("location maps must be (B, 8, H, W) like the images")
        if self.variant == "MSEF":
            return self.forward_patchwise(images, location)
        fc1_out = []
        for k, s in enumerate(self.scale_factors):
            if self._use_fft_fc1(images, s):
                h = self._dense_fc1_fft(images, k, s)
            else:
                feat = self._dense_stream_features(images, k, s)
                h = F.conv2d(self.dropout(feat), self._fc1_kernel(k), self.fc1[k].bias, dilation=s)
            w_loc = self._fc1_location_weight(k)
            if w_loc is not None:
                h = h + F.conv2d(location * self.location_alpha.to(h.dtype), w_loc[:, :, None, None])
            fc1_out.append(h)
        if self.training or torch.is_grad_enabled():
            return self._head(fc1_out, location, dense=True)
        return self._dense_head_inference(fc1_out, location)

    def _dense_head_inference(self, fc1_out: list[torch.Tensor], location: torch.Tensor | None) -> torch.Tensor:
        """:meth:`_head` (eval mode, no autograd) with every pixel a row: FC2 and FC3 as matrix products over the
        channels-last channel axis, accumulated part by part, so no concatenation of the (B, 900+, H, W) features
        is built (same numbers to float rounding)."""
        b, _, h, w = fc1_out[0].shape

        def rows(t: torch.Tensor) -> torch.Tensor:                   # (B, C, H, W) -> (B * H * W, C)
            return t.permute(0, 2, 3, 1).reshape(-1, t.shape[1])

        def linear(layer: nn.Linear, parts: list[torch.Tensor]) -> torch.Tensor:
            out, start = None, 0
            for part in parts:
                weight = layer.weight[:, start:start + part.shape[1]].t()
                start += part.shape[1]
                out = torch.addmm(layer.bias, part, weight) if out is None else out.addmm_(part, weight)
            return out

        loc = None if location is None else rows(location * self.location_alpha.to(location.dtype))
        parts = [rows(t).relu_() for t in fc1_out]
        hidden = linear(self.fc2, parts + ([loc] if self.location_injection == "first_fc" and loc is not None else []))
        hidden = [hidden.relu_()] + ([loc] if self.location_injection == "second_fc" and loc is not None else [])
        return linear(self.fc3, hidden).view(b, h, w, -1).permute(0, 3, 1, 2)

    def _fc1_kernel(self, stream: int) -> torch.Tensor:
        """FC1 weights of one stream (without location columns) as an 18x18 kernel: (300, 110, 18, 18)."""
        return self.fc1[stream].weight[:, :CONV_FEATURES].reshape(FC_SIZES[0], CONV_LAYERS[-1][0],
                                                                   CONV_OUT_SIZE, CONV_OUT_SIZE)

    def _use_fft_fc1(self, images: torch.Tensor, s: int) -> bool:
        """FC1 of the scale-``s`` stream in the frequency domain? ``dense_fc1_method`` "fft" / "direct", or "auto":
        when no gradient is needed (the cached kernel spectrum is detached) and each of the ``s x s`` phase grids has
        >= ``fft_min_outputs`` output pixels."""
        method = self.dense_fc1_method
        if method not in ("auto", "fft", "direct"):
            raise ValueError(f"dense_fc1_method must be auto/fft/direct, got {method!r}")
        if method != "auto":
            return method == "fft"
        if torch.is_grad_enabled() and any(p.requires_grad for p in self.fc1.parameters()):
            return False
        h, w = images.shape[2:]
        return math.ceil(h / s) * math.ceil(w / s) >= self.fft_min_outputs

    def _dense_fc1_fft(self, images: torch.Tensor, stream: int, s: int) -> torch.Tensor:
        """FC1 pre-activations (B, 300, H, W) of one stream: the padded, averaged slice is split into its ``s x s``
        phase grids (batch axis), the conv stack and FC1 run undilated on them (FC1 through FFTs), then merged."""
        h, w = images.shape[2:]
        before, after = scale_padding(s)
        a = F.pad(images, (before, after, before, after))
        if s > 1:
            a = F.avg_pool2d(a, kernel_size=s, stride=1)
            a = polyphase_split(a, s, (h, w), PATCH_SIZE)
        feat = self.dropout(self.conv_stacks[stream if self.variant == "MSIW" else 0](a))
        if self._fc1_spectra is None:
            self._fc1_spectra = KernelSpectrumCache()
        out = conv2d_fft(feat, self._fc1_kernel(stream), self.fc1[stream].bias, dilation=1,
                         cache=self._fc1_spectra, max_tile=self.fft_tile, cache_owner=self.fc1[stream].weight)
        return polyphase_merge(out, s, (h, w)) if s > 1 else out

    def forward_patchwise(self, images: torch.Tensor, location: torch.Tensor | None,
                          chunk: int = 1024) -> torch.Tensor:
        """The paper's way: the patch classifier on the patches centred at every pixel, ``chunk`` pixels per pass.

        Same input and output as :meth:`forward_dense` (logits); MSEF's dense form is this.
        """
        b, _, h, w = images.shape
        out = images.new_empty(b, self.num_classes, h, w)
        rows, cols = torch.meshgrid(torch.arange(h, device=images.device), torch.arange(w, device=images.device),
                                    indexing="ij")
        rows, cols = rows.flatten(), cols.flatten()
        for bi in range(b):
            for start in range(0, rows.numel(), chunk):
                r, c = rows[start:start + chunk], cols[start:start + chunk]
                loc = location[bi][:, r, c].T if self.use_location else None
                logits = self.forward_patches(extract_multiscale_patches(images[bi], r, c, self.scale_factors), loc)
                out[bi][:, r, c] = logits.T
        return out

    def forward_at(self, x: torch.Tensor, batch_idx: torch.Tensor, rows: torch.Tensor,
                   cols: torch.Tensor) -> torch.Tensor:
        """Logits at selected pixels of nnU-Net input ``x`` (training on a pixel sample): (N, num_classes).

        Uses the dense conv responses of the whole slice and applies the FC layers to the 18x18 windows at the
        sampled pixels only (MSEF: the patches at those pixels).
        """
        images, location = self._split_input(x)
        loc = location[batch_idx, :, rows, cols] if self.use_location else None
        if self.variant == "MSEF":
            parts = []
            for bi in torch.unique(batch_idx).tolist():
                sel = batch_idx == bi
                parts.append((sel, self.forward_patches(
                    extract_multiscale_patches(images[bi], rows[sel], cols[sel], self.scale_factors),
                    loc[sel] if loc is not None else None)))
            out = x.new_empty(rows.numel(), self.num_classes)
            for sel, logits in parts:
                out[sel] = logits
            return out
        flat = []
        u = torch.arange(CONV_OUT_SIZE, device=x.device)
        for feat, s in self._dense_conv_features(images):
            r = rows[:, None] + s * u[None]
            c = cols[:, None] + s * u[None]
            win = feat[batch_idx[:, None, None], :, r[:, :, None], c[:, None, :]]   # (N, 18, 18, 110)
            flat.append(win.permute(0, 3, 1, 2).flatten(1))
        return self._patch_head_from_features(flat, loc)

    def _split_input(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if x.ndim != 4:
            raise ValueError(f"expected (B, C, H, W) input, got shape {tuple(x.shape)}")
        n_img = self.num_image_channels
        needed = n_img + (NUM_LOCATION_FEATURES if self.use_location else 0)
        if x.shape[1] < needed:
            raise ValueError(f"input has {x.shape[1]} channels, this network needs {needed}")
        images = x[:, :n_img]
        location = x[:, n_img:n_img + NUM_LOCATION_FEATURES] if self.use_location else None
        return images, location

    def forward(self, x: torch.Tensor, pixels: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
                ) -> torch.Tensor:
        """nnU-Net entry point: (B, 10, H, W) -> (B, num_classes, H, W) logits (dense form).

        With ``pixels = (batch_idx, rows, cols)`` returns only the (N, num_classes) logits at those pixels
        (:meth:`forward_at`; going through ``forward`` keeps DDP's gradient hooks working in training).
        """
        if pixels is not None:
            return self.forward_at(x, *pixels)
        return self.forward_dense(*self._split_input(x))


def expected_parameter_count(variant: str, use_location: bool, location_injection: str = "first_fc",
                             num_classes: int = 2, num_image_channels: int = 2) -> int:
    """Parameter count derived from the paper's layer sizes (weights + biases), independent of the module.

    Example:
        >>> expected_parameter_count("SS", False)
        10883112
    """
    def conv_stack(c_in: int) -> int:
        return (7 * 7 * c_in * 20 + 20) + (5 * 5 * 20 * 40 + 40) + (3 * 3 * 40 * 80 + 80) + (3 * 3 * 80 * 110 + 110)

    n_loc = 8 if use_location else 0
    streams = 3 if variant in ("MSIW", "MSWS") else 1
    c = num_image_channels
    convs = {"SS": conv_stack(c), "MSEF": conv_stack(3 * c), "MSIW": 3 * conv_stack(c), "MSWS": conv_stack(c)}[variant]
    fc1_in = 18 * 18 * 110 + (n_loc if location_injection == "last_conv" else 0)
    fc1 = streams * (fc1_in * 300 + 300)
    fc2 = (300 * streams + (n_loc if location_injection == "first_fc" else 0)) * 200 + 200
    fc3 = (200 + (n_loc if location_injection == "second_fc" else 0)) * num_classes + num_classes
    return convs + fc1 + fc2 + fc3
