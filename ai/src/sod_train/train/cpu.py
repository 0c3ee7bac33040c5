"""What the CPU can do, and the trainer's fast-path choices that follow from it.

bf16 autocast pays only where the CPU multiplies bf16 natively (AVX512-BF16 or
AMX-BF16); elsewhere oneDNN emulates it and fp32 is faster, so ``--amp`` defaults
to on exactly there. Thread count is part of the determinism promise (reduction
order in oneDNN kernels depends on it), so it is chosen once and recorded.

The kernels themselves follow the CPU: oneDNN and ATen pick AVX-512 or AMX code where
it exists, so the same command gives other bytes on other CPUs. ``--cpu-isa avx2``
holds them to AVX2 + FMA code (and bf16 autocast off), so every AVX2 CPU can run the
same kernels; docs/training.md ("Reproducibility across CPUs") says what was verified.
"""

from __future__ import annotations

from pathlib import Path

import torch

from sod_train.errors import UserInputError
from sod_train.machine import (
    BF16_FLAGS,
    CPUINFO,
    ISA_PINS,
    cpu_flags,
    isa_env,
    isa_features,
    pin_cpu_isa,
)

ISA_CHOICES = tuple(ISA_PINS)


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


def apply_isa_pin(isa: str, cpuinfo: Path = CPUINFO) -> None:
    """Pin torch's CPU kernels to ``isa`` and check that ATen took it.

    The pin is read once per process, at torch's first kernel: a pin set after that
    (torch already ran an op in this process) is refused rather than recorded falsely.
    oneDNN cannot be asked; the CLI sets both before torch is imported.
    """
    if isa not in ISA_PINS:
        raise UserInputError(f"cpu_isa '{isa}': expected one of {', '.join(ISA_CHOICES)}")
    if isa == "native":
        return
    flags = cpu_flags(cpuinfo)
    missing = [flag for flag in ("avx2", "fma") if flags and flag not in flags]
    if missing:
        raise UserInputError(f"--cpu-isa {isa}: this CPU lacks {', '.join(missing)}")
    pin_cpu_isa(isa)
    got = torch.backends.cpu.get_cpu_capability()
    if got != ISA_PINS[isa]["ATEN_CPU_CAPABILITY"].upper():
        raise UserInputError(
            f"--cpu-isa {isa}: torch already chose its {got} kernels in this process; "
            "pin before torch runs any op (the train command does)"
        )


def cpu_environment(amp: bool, threads: int, isa: str = "native") -> dict:
    """The metrics JSON's record of the CPU fast path and of what chose its kernels."""
    return {
        "cpu_isa": isa,
        "isa_env": isa_env(),
        "amp": amp,
        "amp_dtype": "bfloat16" if amp else None,
        "threads": threads,
        "cpu_bf16_features": bf16_features(),
        "cpu_isa_features": isa_features(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "channels_last": True,
    }
