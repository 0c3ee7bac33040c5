#!/usr/bin/env python3
"""Runtime matrix: do the shipped models match their golden vectors in every runtime?

    python scripts/runtime_matrix.py [MODEL.onnx ...] [--old 1.15.0] [--new latest]

For each model (default: every model in model/tiny/registry.json) this verifies
``<stem>.golden.json`` in:

* the oldest onnxruntime with a Python 3.11 wheel that runs opset 17: 1.15.0.
  onnxruntime implements opset 17 since 1.13, but the package index carries
  cp311 wheels only from 1.15.0 on (``pip index versions onnxruntime``), so
  1.15.0 is the oldest a Python 3.11 host can install;
* the newest onnxruntime on the package index;
* ``onnx.reference``, the ONNX project's independent pure-Python implementation
  of the spec, in the current environment (slow: seconds per model).

Each onnxruntime gets a fresh temporary virtual environment (stdlib ``venv`` +
pip, so this needs the package index and takes a few minutes) holding only
numpy and onnxruntime; the check itself is ``sod_train.check.golden`` imported from
the source tree. Prints a table; exits 1 on any mismatch, 2 on a setup failure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "ai" / "src"
REGISTRY = REPO / "model" / "tiny" / "registry.json"
OLDEST_ORT = "1.15.0"
# onnxruntime wheels before 1.19 are built against numpy 1.x and break under numpy 2.
NUMPY2_FROM = (1, 19)

CHILD = r"""
import json, sys
from sod_train.check.golden import (
    default_golden_path, reference_runner, run_golden_with, verify_golden,
)
mode, models = sys.argv[1], sys.argv[2:]
if mode == "ort":
    import onnxruntime
    version = onnxruntime.__version__
else:
    import onnx
    version = "onnx " + onnx.__version__
for model in models:
    try:
        if mode == "ort":
            problems = verify_golden(model)
        else:
            problems = run_golden_with(reference_runner(model), default_golden_path(model))
    except Exception as exc:
        problems = [f"{type(exc).__name__}: {exc}".splitlines()[0]]
    print(json.dumps({"model": model, "version": version, "problems": problems}), flush=True)
"""


def registry_models() -> list[Path]:
    """The ONNX files listed in the registry (paths relative to the repository root)."""
    try:
        entries = json.loads(REGISTRY.read_text()).get("models", [])
    except (OSError, json.JSONDecodeError) as exc:
        sys.exit(f"error: {REGISTRY}: cannot read the model registry ({exc})")
    return [REPO / entry["onnx"] for entry in entries]


def numpy_spec(ort_version: str) -> str:
    """The numpy requirement an onnxruntime release works with."""
    if ort_version == "latest":
        return "numpy"
    major_minor = tuple(int(p) for p in ort_version.split(".")[:2])
    return "numpy<2" if major_minor < NUMPY2_FROM else "numpy"


def make_env(root: Path, name: str, ort_version: str) -> Path:
    """A fresh venv under ``root`` with onnxruntime ``ort_version`` (or the newest) and numpy."""
    env_dir = root / name
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    python = env_dir / "bin" / "python"
    ort_spec = "onnxruntime" if ort_version == "latest" else f"onnxruntime=={ort_version}"
    cmd = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    print(f"[{name}] pip install {ort_spec} {numpy_spec(ort_version)}", file=sys.stderr, flush=True)
    done = subprocess.run(
        [*cmd, ort_spec, numpy_spec(ort_version)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        raise RuntimeError(f"pip install {ort_spec} failed: {tail}")
    return python


def run_child(python: str | Path, mode: str, models: list[Path]) -> list[dict]:
    """Verify every model with ``python`` (``mode`` 'ort' or 'reference'); one dict per model."""
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [str(python), "-c", CHILD, mode, *map(str, models)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    seen = {row["model"] for row in rows}
    error = " | ".join(done.stderr.strip().splitlines()[-2:]) or f"exit {done.returncode}"
    for model in models:
        if str(model) not in seen:
            rows.append({"model": str(model), "version": "?", "problems": [error]})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="*", type=Path, help="ONNX files (default: registry)")
    parser.add_argument("--old", default=OLDEST_ORT, help="oldest onnxruntime version")
    parser.add_argument("--new", default="latest", help="newest onnxruntime version")
    parser.add_argument("--no-reference", action="store_true", help="skip onnx.reference")
    args = parser.parse_args(argv)

    models = [m.resolve() for m in (args.models or registry_models())]
    if not models:
        print(f"error: no models given and none listed in {REGISTRY}", file=sys.stderr)
        return 2
    missing = [m for m in models if not m.is_file()]
    if missing:
        print(f"error: {missing[0]}: no such model file", file=sys.stderr)
        return 2

    results: list[tuple[str, dict]] = []
    with tempfile.TemporaryDirectory(prefix="sod-runtime-matrix-") as tmp:
        for name, version in (("oldest", args.old), ("newest", args.new)):
            try:
                python = make_env(Path(tmp), name, version)
            except (RuntimeError, OSError) as exc:
                print(f"error: [{name}] {exc}", file=sys.stderr)
                return 2
            results += [(f"onnxruntime {name}", row) for row in run_child(python, "ort", models)]
    if not args.no_reference:
        print("[reference] onnx.reference in this environment", file=sys.stderr, flush=True)
        results += [
            ("onnx.reference", row) for row in run_child(sys.executable, "reference", models)
        ]

    width = max(len(Path(row["model"]).name) for _, row in results)
    print(f"{'model':<{width}}  {'runtime':<18}  {'version':<14}  result")
    for runtime, row in sorted(results, key=lambda r: r[1]["model"]):
        verdict = "PASS" if not row["problems"] else "FAIL " + "; ".join(row["problems"][:2])
        name = Path(row["model"]).name
        print(f"{name:<{width}}  {runtime:<18}  {row['version']:<14}  {verdict}")
    failed = sum(bool(row["problems"]) for _, row in results)
    print(
        f"{len(results) - failed} of {len(results)} model/runtime pairs match their golden vectors"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
