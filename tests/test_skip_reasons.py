"""Every skip in the suite says why and what to do (issue 24: 27 silent skips)."""

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
SKIPS = {"skip", "skipif", "importorskip"}
# A reason names a remedy: something to install, data to get (README 'Test data'), or
# how to run the tests.
REMEDIES = ("install", "README 'Test data'", "run ", "run the tests")


def _text(node: ast.AST, constants: dict[str, str]) -> str:
    """The literal text of a reason (f-string parts, or a module-level constant)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(_text(v, constants) for v in node.values if isinstance(v, ast.Constant))
    if isinstance(node, ast.Name):
        return constants.get(node.id, "")
    return ""


def _skip_calls(tree: ast.AST):
    for node in ast.walk(tree):
        func = node.func if isinstance(node, ast.Call) else None
        owner = ast.unparse(func.value) if isinstance(func, ast.Attribute) else ""
        if owner in ("pytest", "pytest.mark") and func.attr in SKIPS:
            yield node


def test_every_skip_names_its_reason_and_a_remedy():
    checked = 0
    for path in sorted(TESTS.glob("*.py")):
        tree = ast.parse(path.read_text())
        constants = {
            t.id: _text(n.value, {})
            for n in tree.body
            if isinstance(n, ast.Assign)
            for t in n.targets
            if isinstance(t, ast.Name)
        }
        for call in _skip_calls(tree):
            where = f"{path.name}:{call.lineno}"
            kw = {k.arg: k.value for k in call.keywords}
            if call.func.attr == "skip":
                reason = call.args[0] if call.args else kw.get("reason")
            else:
                reason = kw.get("reason")
            assert reason is not None, f"{where}: {call.func.attr} without a reason"
            text = _text(reason, constants)
            assert any(r in text for r in REMEDIES), f"{where}: reason {text!r} names no remedy"
            checked += 1
    assert checked >= 20  # the walk found the suite's skips
