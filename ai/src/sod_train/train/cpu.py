"""What the CPU can do, and the trainer's fast-path choices that follow from it.

bf16 autocast pays only where the CPU multiplies bf16 natively (AVX512-BF16 or
AMX-BF16); elsewhere oneDNN emulates it and fp32 is faster, so ``--amp`` defaults
to on exactly there. Thread count is part of the determinism promise (reduction
order in oneDNN kernels depends on it), so it is chosen once and recorded.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def bf16_features(cpuinfo: Path = Path("/proc/cpuinfo")) -> list[str]:
    """The native-bf16 features present: the /proc/cpuinfo flags, else what torch reports."""
    found = sorted(set(BF16_FLAGS) & cpu_flags(cpuinfo))
    if not found and torch.backends.mkldnn.is_available():
        try:
            if torch.ops.mkldnn._is_mkldnn_bf16_supported():
                found = ["mkldnn_bf16"]
        except (AttributeError, RuntimeError):
            pass
    return found


def available_cores() -> int:
    """Cores this process may run on (its affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def cpu_environment(amp: bool, threads: int) -> dict:
    """The metrics JSON's record of the CPU fast path."""
    return {
        "amp": amp,
        "amp_dtype": "bfloat16" if amp else None,
        "threads": threads,
        "cpu_bf16_features": bf16_features(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "channels_last": True,
    }
