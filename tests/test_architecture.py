"""The import rules of docs/architecture.md, enforced: cli -> stages -> core.

* core modules (the package's top level) import no stage and no command;
* no stage imports ``sod_train.cli``, and only ``cli/`` imports click;
* ``check/``, ``evaluate/``, ``predict/`` and ``video/`` never import torch, directly or through
  another module (a host-side venv with numpy + onnxruntime runs them);
* every ``__init__.py`` below the package is empty, so importing a stage costs nothing;
* stages import only earlier stages (:data:`STAGE_ORDER`): every arrow points forward;
* only ``runtime/`` builds an onnxruntime session.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ai" / "src" / "sod_train"
TORCH_FREE = ("runtime", "check", "evaluate", "predict", "video")
# The stages in pipeline order (docs/architecture.md); a stage may import earlier ones only.
STAGE_ORDER = (
    "data",
    "fetch",
    "model",
    "runtime",
    "check",
    "train",
    "export",
    "evaluate",
    "predict",
    "video",
    "release",
    "api",
    "cli",
)


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth of the file (lazy imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}: relative import; use sod_train.<stage>.<module>")
    return {name for name in found if not name.startswith("sod_train.") or name in MODULES}


def stage(name: str) -> str | None:
    """The stage folder of a module (None for a core module at the package's top)."""
    parts = name.split(".")
    return parts[1] if len(parts) > 2 else None


def test_core_modules_import_no_stage():
    for name, path in MODULES.items():
        if stage(name) is None and name != "sod_train":
            bad = sorted(i for i in imports(path) if i.startswith("sod_train.") and stage(i))
            assert not bad, f"{name} (core) imports stages: {bad}"


def test_only_cli_imports_click_and_no_stage_imports_cli():
    for name, path in MODULES.items():
        used = imports(path)
        if stage(name) != "cli":
            assert "click" not in used, f"{name} imports click; only sod_train.cli may"
            assert not any(i.startswith("sod_train.cli") for i in used), f"{name} imports cli"


def _closure(name: str) -> set[str]:
    seen, todo = set(), [name]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        if current in MODULES:
            todo += sorted(imports(MODULES[current]))
    return seen


@pytest.mark.parametrize("folder", TORCH_FREE)
def test_torch_free_stages_reach_no_torch_through_any_import(folder):
    for name in MODULES:
        if stage(name) == folder:
            reached = _closure(name)
            assert not any(m == "torch" or m.startswith("torch.") for m in reached), (
                f"{name} reaches torch through {sorted(m for m in reached if m in MODULES)}"
            )


def test_importing_every_torch_free_module_loads_no_torch():
    names = [n for n in MODULES if stage(n) in TORCH_FREE and not n.endswith("__init__")]
    code = f"import importlib, sys\nfor n in {names!r}: importlib.import_module(n)\n"
    code += "print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_stage_init_files_are_empty():
    for path in PACKAGE.rglob("__init__.py"):
        if path.parent != PACKAGE:
            assert path.read_text() == "", f"{path} is not empty"


def test_every_stage_is_in_the_order():
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders <= set(STAGE_ORDER), sorted(folders - set(STAGE_ORDER))


def test_no_stage_imports_a_later_stage():
    for name, path in MODULES.items():
        here = stage(name)
        if here is None:
            continue
        for target in imports(path):
            there = stage(target) if target.startswith("sod_train.") else None
            if there is not None and there != here:
                assert STAGE_ORDER.index(there) < STAGE_ORDER.index(here), (
                    f"{name} ({here}) imports {target} ({there}), a later stage"
                )


def test_only_runtime_builds_an_onnxruntime_session():
    for name, path in MODULES.items():
        if stage(name) == "runtime":
            continue
        for node in ast.walk(ast.parse(path.read_text())):  # calls, not text in a snippet
            if isinstance(node, ast.Call):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                assert called != "InferenceSession", f"{name} builds an onnxruntime session"
