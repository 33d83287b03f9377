"""CPU mixed precision for the cerebellum trainers: bf16 autocast where the CPU computes bf16 natively.

nnU-Net autocasts only on CUDA. On a CPU with native bf16 instructions (x86 ``avx512_bf16`` / ``amx_bf16``, ARM
``bf16``) the plugin's trainers run the network's forward pass under ``torch.autocast("cpu", torch.bfloat16)``; the
output is returned in float32, so the loss, the backward pass's gradients and the optimizer stay float32. Elsewhere
bf16 would be emulated (slower, see the README), so it stays off. ``NNUNET_ATAXIA_CPU_BF16`` overrides the choice:
``auto`` (default), ``1`` (on, also without native support: for tests and measurements) or ``0`` (off).
"""
from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

#: environment variable: ``auto`` (default), ``1`` / ``on`` or ``0`` / ``off``
BF16_VARIABLE = "NNUNET_ATAXIA_CPU_BF16"
#: /proc/cpuinfo flags that mean native bf16 arithmetic (x86: AVX-512 BF16, AMX; aarch64: the ``bf16`` feature)
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})
_ON, _OFF = ("1", "on", "true", "yes"), ("0", "off", "false", "no")


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU feature flags listed in ``/proc/cpuinfo`` (``flags`` on x86, ``Features`` on ARM); empty elsewhere.

    Example:
        >>> isinstance(cpu_flags(), set)
        True
    """
    try:
        text = cpuinfo.read_text()
    except OSError:
        return set()
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    return flags


def cpu_has_native_bf16(flags: set[str] | None = None) -> bool:
    """Whether the CPU has native bf16 instructions (``flags`` defaults to :func:`cpu_flags`).

    Example:
        >>> cpu_has_native_bf16({"avx2", "avx512_bf16"}), cpu_has_native_bf16({"avx2"})
        (True, False)
    """
    return bool(NATIVE_BF16_FLAGS & (cpu_flags() if flags is None else flags))


def decide_cpu_bf16(device: torch.device, environ: Mapping[str, str] = os.environ,
                    flags: set[str] | None = None) -> tuple[bool, str]:
    """Whether the trainers use bf16 autocast on ``device``, and why (one line for the training log).

    Args:
        device: the training device; bf16 autocast is a CPU setting (nnU-Net autocasts on CUDA itself).
        environ: where ``NNUNET_ATAXIA_CPU_BF16`` is read.
        flags: CPU flags (default: :func:`cpu_flags`).

    Raises:
        ValueError: the variable holds something else than auto / on / off.

    Example:
        >>> decide_cpu_bf16(torch.device("cpu"), {"NNUNET_ATAXIA_CPU_BF16": "0"})
        (False, 'bf16 autocast off: NNUNET_ATAXIA_CPU_BF16=0')
    """
    value = environ.get(BF16_VARIABLE, "auto").strip().lower()
    if value not in _ON + _OFF + ("auto", ""):
        raise ValueError(f"{BF16_VARIABLE}={value!r}: use auto, 1 (on) or 0 (off)")
    if device.type != "cpu":
        return False, f"bf16 CPU autocast not used: device is {device.type} (nnU-Net's own autocast applies)"
    if value in _OFF:
        return False, f"bf16 autocast off: {BF16_VARIABLE}={value}"
    if value in _ON:
        return True, f"bf16 autocast on: {BF16_VARIABLE}={value}"
    if cpu_has_native_bf16(flags):
        return True, "bf16 autocast on: the CPU has native bf16 instructions (set NNUNET_ATAXIA_CPU_BF16=0 to disable)"
    return False, "bf16 autocast off: the CPU has no native bf16 instructions (NNUNET_ATAXIA_CPU_BF16=1 forces it)"


def autocast_forward_bf16(network: nn.Module) -> nn.Module:
    """Make ``network``'s forward pass run under CPU bf16 autocast and return float32 outputs (in place).

    Only the forward pass is autocast (PyTorch's recommendation); the loss and the optimizer see float32, parameters
    stay float32, the ``state_dict`` is unchanged. Returns ``network``.

    Example:
        >>> net = autocast_forward_bf16(nn.Conv3d(1, 2, 3, padding=1))
        >>> net(torch.zeros(1, 1, 4, 4, 4)).dtype
        torch.float32
    """
    forward = network.forward

    @functools.wraps(forward)
    def forward_bf16(*args, **kwargs):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            output = forward(*args, **kwargs)
        if isinstance(output, (list, tuple)):
            return type(output)(o.float() for o in output)
        return output.float()

    network.forward = forward_bf16
    network.autocast_bf16 = True
    return network
