"""The machine a result was measured or built on: CPU model, ISA features, cores.

Reproducibility claims name the CPU features they hold for (bf16 kernels differ between
AVX512-BF16 and AMX-BF16), and every timing names its machine; both read it here.
Reads /proc/cpuinfo only: no torch, so bench and check can use it.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
# The ISA features that decide which oneDNN / onnxruntime kernels run.
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")
# What ``--cpu-isa`` sets: each kernel library torch trains with, held to code every CPU
# of that class runs alike. oneDNN (convolutions) and ATen (vectorised ops) to AVX2; MKL
# (the GEMM of small convolutions) to its COMPATIBLE CNR branch, the only fixed branch it
# offers on AMD as well as Intel (MKL_CBWR=AVX2 falls back to per-CPU AUTO off Intel).
# Each library reads its variable once, at its first kernel: set before torch runs an op.
ISA_PINS: dict[str, dict[str, str]] = {
    "native": {},
    "avx2": {
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "ATEN_CPU_CAPABILITY": "avx2",
        "MKL_CBWR": "COMPATIBLE",
    },
}
ISA_ENV = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "MKL_CBWR")


def _field(name: str, cpuinfo: Path = CPUINFO) -> str | None:
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith(name):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_flags(cpuinfo: Path = CPUINFO) -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    flags = _field("flags", cpuinfo)
    return set(flags.split()) if flags else set()


def cpu_model(cpuinfo: Path = CPUINFO) -> str:
    """The CPU's model name (/proc/cpuinfo), else what the platform says."""
    return _field("model name", cpuinfo) or platform.processor() or platform.machine()


def available_cores() -> int:
    """Cores this process may run on (its affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def isa_features(cpuinfo: Path = CPUINFO) -> list[str]:
    """Which of :data:`ISA_FLAGS` the CPU has, in that order."""
    flags = cpu_flags(cpuinfo)
    return [flag for flag in ISA_FLAGS if flag in flags]


def describe(cpuinfo: Path = CPUINFO) -> str:
    """One line for a figure or a build record: model, cores, ISA features."""
    features = ", ".join(isa_features(cpuinfo)) or "none of " + "/".join(ISA_FLAGS)
    return f"{cpu_model(cpuinfo)}, {available_cores()} cores ({features})"


def pin_cpu_isa(isa: str) -> None:
    """Hold torch's kernel libraries to ``isa`` (:data:`ISA_PINS`); "native" leaves them be.

    Takes effect only before torch runs its first op; ``train.cpu.apply_isa_pin`` checks.
    """
    os.environ.update(ISA_PINS[isa])


def isa_env() -> dict[str, str | None]:
    """The kernel-choice variables (:data:`ISA_ENV`) as this process sees them."""
    return {name: os.environ.get(name) for name in ISA_ENV}
