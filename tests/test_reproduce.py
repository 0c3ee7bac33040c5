"""``sod-train reproduce``: the recorded build re-run at its commit gives the same bytes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import REPO
from sod_train.cli.main import main
from sod_train.errors import UserInputError
from sod_train.release.reproduce import plan

SHA = "0" * 64


def _doc(command: str, commit: str | None = "abc123") -> dict:
    return {"build": {"command": command, "commit": commit}, "onnx": {"sha256": SHA}}


def test_plan_points_every_output_into_the_worktree(tmp_path):
    run = plan(
        _doc(
            "python ai/scripts/train_saliency_student.py --duts-root data/DUTS-TR "
            "--output /home/me/model.onnx --metrics-out /home/me/m.json --preset release"
        ),
        tmp_path / "m.json",
        duts_root=tmp_path / "here",
    )
    assert run.argv[:2] == [sys.executable, "ai/scripts/train_saliency_student.py"]
    args = run.argv[2:]
    assert args[args.index("--output") + 1] == "reproduced/output/model.onnx"
    assert args[args.index("--metrics-out") + 1] == "reproduced/metrics-out/m.json"
    assert args[args.index("--duts-root") + 1] == str((tmp_path / "here").resolve())
    assert "/home/me" not in " ".join(args)  # nothing of the user's is written
    assert run.produced == Path("reproduced/output/model.onnx") and run.commit == "abc123"
    quick = plan(_doc("sod-train quickstart --quiet"), tmp_path / "m.json")
    assert quick.argv[1:3] == ["-m", "sod_train.cli.main"]
    assert quick.argv[3:] == ["quickstart", "--quiet", "--out", "reproduced/out"]
    assert quick.produced == Path("reproduced/out/quickstart_demo.onnx")


@pytest.mark.parametrize(
    ("doc", "words"),
    [
        ({"onnx": {"sha256": SHA}}, "no build.command"),
        (_doc("sod-train quickstart", commit=None), "no commit"),
        (_doc("rm -rf /"), "not a sod-train command"),
        (_doc("sod-train train --duts-root d"), "names no --output"),
    ],
)
def test_plan_refuses_what_cannot_be_rerun(tmp_path, doc, words):
    with pytest.raises(UserInputError, match=words):
        plan(doc, tmp_path / "m.json")


def test_command_without_a_build_is_exit_2(tmp_path):
    metrics = tmp_path / "m.json"
    metrics.write_text(json.dumps({"onnx": {"sha256": SHA}}))
    result = CliRunner().invoke(main, ["reproduce", str(metrics)])
    assert result.exit_code == 2 and "no build.command" in result.output


def _git(*args: str, cwd: Path = REPO) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.mark.slow
def test_quickstart_records_its_build_and_reproduces_bit_exactly(tmp_path):
    """Train the quickstart at HEAD in a worktree (as a user would), then `reproduce` it."""
    if not (REPO / ".git").exists():
        pytest.skip(
            "needs the git checkout (reproduce checks out the recorded commit): "
            "run the tests in a git clone"
        )
    head = _git("rev-parse", "HEAD")
    tree = tmp_path / "tree"
    _git("worktree", "add", "--detach", str(tree), head)
    try:
        env = {**os.environ, "PYTHONPATH": str(tree / "ai" / "src")}
        cmd = [sys.executable, "-m", "sod_train.cli.main", "quickstart", "--out", "q", "--quiet"]
        done = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        metrics = tree / "q" / "quickstart_demo.metrics.json"
        build = json.loads(metrics.read_text())["build"]
        assert build["command"] == "sod-train quickstart --out q --quiet"
        assert build["commit"] == head and build["reproduced"].startswith("not checked")
        assert "cores" in build["machine"] and build["threads"] >= 1

        result = CliRunner().invoke(main, ["reproduce", str(metrics), "--record", "--quiet"])
        assert result.exit_code == 0, result.output
        assert "same sha256" in result.output
        recorded = json.loads(metrics.read_text())["build"]["reproduced"]
        assert recorded.startswith("yes:") and head[:12] in recorded
    finally:
        _git("worktree", "remove", "--force", str(tree))
