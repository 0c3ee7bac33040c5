"""What the CPU can do, and the trainer's fast-path choices that follow from it.

bf16 autocast pays only where the CPU multiplies bf16 natively (AVX512-BF16 or
AMX-BF16); elsewhere oneDNN emulates it and fp32 is faster, so ``--amp`` defaults
to on exactly there. Thread count is part of the determinism promise (reduction
order in oneDNN kernels depends on it), so it is chosen once and recorded.
"""

from __future__ import annotations

from pathlib import Path

import torch

from sod_train.machine import BF16_FLAGS, CPUINFO, cpu_flags, isa_features


def bf16_features(cpuinfo: Path = CPUINFO) -> list[str]:
    """The native-bf16 features present: the /proc/cpuinfo flags, else what torch reports."""
    found = sorted(set(BF16_FLAGS) & cpu_flags(cpuinfo))
    if not found and torch.backends.mkldnn.is_available():
        try:
            if torch.ops.mkldnn._is_mkldnn_bf16_supported():
                found = ["mkldnn_bf16"]
        except (AttributeError, RuntimeError):
            pass
    return found


def cpu_environment(amp: bool, threads: int) -> dict:
    """The metrics JSON's record of the CPU fast path."""
    return {
        "amp": amp,
        "amp_dtype": "bfloat16" if amp else None,
        "threads": threads,
        "cpu_bf16_features": bf16_features(),
        "cpu_isa_features": isa_features(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "channels_last": True,
    }
