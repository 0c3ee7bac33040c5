"""Where a result came from: library versions, device and git commit."""

from __future__ import annotations

import platform
import shlex
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from sod_train import machine

NOT_REPRODUCED = "not checked yet: run `sod-train reproduce METRICS`"
SCRIPT = "ai/scripts/train_saliency_student.py"


def package_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def git_commit(path: Path | None = None) -> str | None:
    """HEAD commit of the checkout holding this package (None outside git)."""
    cwd = path or Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def environment(device: str) -> dict:
    """Versions that decide whether two runs can be bit-identical."""
    return {
        "device": device,
        "python": platform.python_version(),
        "torch": package_version("torch"),
        "onnx": package_version("onnx"),
        "onnxruntime": package_version("onnxruntime"),
        "onnxsim": package_version("onnxsim"),
        "git_commit": git_commit(),
    }


def invocation(argv: list[str] | None = None) -> str:
    """The command line that is running, as a user types it (``sod-train ...`` or the script).

    ``python -m sod_train.cli.main`` and the console script both read ``sod-train``.
    """
    argv = list(sys.argv if argv is None else argv)
    head = f"python {SCRIPT}" if Path(argv[0]).name == Path(SCRIPT).name else "sod-train"
    return " ".join([head, *map(shlex.quote, argv[1:])])


def build_record(
    command: str, environment: dict[str, Any], wall_seconds: float | None
) -> dict[str, Any]:
    """The metrics JSON's ``build``: how the file is rebuilt and on what, written by code.

    ``command`` ran from a checkout of ``commit``; ``machine`` names the CPU and the ISA
    features the bit-exactness claim holds for, with the threads, amp and ``cpu_isa`` pin
    that decided the kernels; ``reproduced`` stays "not checked" until
    ``sod-train reproduce`` has re-run it.
    """
    return {
        "command": command,
        "commit": environment.get("git_commit"),
        "machine": machine.describe(),
        "cpu_isa_features": machine.isa_features(),
        "versions": {
            name: environment.get(name)
            for name in ("python", "torch", "onnx", "onnxruntime", "onnxsim")
        },
        "threads": environment.get("threads"),
        "amp": environment.get("amp"),
        "cpu_isa": environment.get("cpu_isa", "native"),
        "wall_seconds": None if wall_seconds is None else round(wall_seconds, 1),
        "reproduced": NOT_REPRODUCED,
    }
