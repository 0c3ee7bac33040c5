"""Where a result came from: library versions, device and git commit."""

from __future__ import annotations

import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


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
