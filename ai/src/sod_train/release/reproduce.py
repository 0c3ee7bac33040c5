"""Re-run a model's recorded build and compare the bytes: ``sod-train reproduce METRICS``.

The metrics JSON's ``build`` (written by the trainer, :func:`sod_train.provenance.
build_record`) names the command and the commit. This checks out that commit in a fresh
``git worktree`` beside nothing else, runs the command there with that checkout's code,
writes every output inside the worktree (``--output``, ``--out``, ``--metrics-out`` and
``--checkpoint-dir`` are pointed into it, so no file of the user's is touched), and
compares the new file's sha256 with the recorded one. A release run takes as long as
its training; the quickstart recipe takes a minute. The variables that choose torch's
CPU kernels (``environment.isa_env``: oneDNN's and ATen's ISA, MKL's branch) are set as
recorded and the others cleared, so the re-run picks the kernels the build picked; a
``--cpu-isa`` pin is part of the command and is re-applied by it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sod_train import machine
from sod_train.errors import UserInputError, display, first_line
from sod_train.guards import read_json_object
from sod_train.paths import REPO_ROOT

# Options whose value is written: pointed inside the worktree.
OUTPUT_OPTIONS = ("--output", "--out", "--metrics-out", "--checkpoint-dir")
QUICKSTART_OUT = "runs/quickstart"
# The only commands that build a model, and so the only ones a recorded build may name:
# any other command (predict, video, evaluate --record, fetch --dest ...) writes through
# options or arguments that are not pointed into the worktree.
BUILD_COMMANDS = ("train", "export", "normalise", "quickstart")
# What ``git rev-parse HEAD`` records: hex only, so a commit can never be read as an option.
COMMIT_PATTERN = re.compile(r"[0-9a-f]{4,64}")
# A recorded kernel-choice value (AVX2, avx512, BRANCH=AVX2): nothing else is set from a file.
ISA_VALUE = re.compile(r"[A-Za-z0-9_=.]{1,40}")


@dataclass(frozen=True)
class Plan:
    """What will run: the argv (in the worktree), the file it makes, and what is expected."""

    commit: str
    argv: list[str]
    produced: Path  # relative to the worktree
    expected_sha256: str
    # The kernel-choice variables (machine.ISA_ENV) as recorded; any not here are cleared.
    isa_env: dict[str, str] = field(default_factory=dict)

    def env(self, base: dict[str, str]) -> dict[str, str]:
        """``base`` with the kernel-choice variables replaced by the recorded ones."""
        kept = {k: v for k, v in base.items() if k not in machine.ISA_ENV}
        return {**kept, **self.isa_env}


def plan(doc: dict[str, Any], source: Path, duts_root: Path | None = None) -> Plan:
    """The run that rebuilds the model of metrics ``doc`` (read from ``source``)."""
    build = doc.get("build")
    if not isinstance(build, dict) or not isinstance(build.get("command"), str):
        raise UserInputError(f"{source}: no build.command recorded; nothing to reproduce")
    commit = build.get("commit") or (doc.get("environment") or {}).get("git_commit")
    if not isinstance(commit, str) or not commit:
        raise UserInputError(f"{source}: no commit recorded (build.commit); cannot check it out")
    if not COMMIT_PATTERN.fullmatch(commit):
        raise UserInputError(
            f"{source}: build.commit is not a commit id (4 to 64 lowercase hex digits): "
            f"{display(commit[:80])}"
        )
    expected = (doc.get("onnx") or {}).get("sha256")
    if not isinstance(expected, str):
        raise UserInputError(f"{source}: no onnx.sha256 recorded to compare with")
    try:
        words = shlex.split(build["command"])
    except ValueError as exc:
        raise UserInputError(f"{source}: build.command does not parse ({exc})") from None
    # ``--opt=value`` is click's other spelling of ``--opt value``: split it, so an output
    # option written that way is pointed into the worktree like any other.
    words = [part for word in words for part in _split_option(word)]
    if words[:1] == ["sod-train"]:
        argv, args = [sys.executable, "-m", "sod_train.cli.main"], words[1:]
        if args[:1] and args[0] not in BUILD_COMMANDS:
            raise UserInputError(
                f"{source}: build.command runs `sod-train {display(args[0][:40])}`, which "
                f"builds no model; only {', '.join(BUILD_COMMANDS)} can be reproduced"
            )
    elif words[:2] == ["python", "ai/scripts/train_saliency_student.py"]:
        argv, args = [sys.executable, "ai/scripts/train_saliency_student.py"], words[2:]
    else:
        raise UserInputError(
            f"{source}: build.command is not a sod-train command: {display(str(words[:2]))}"
        )
    produced: Path | None = None
    out_args: list[str] = []
    i = 0
    while i < len(args):
        word = args[i]
        value = args[i + 1] if i + 1 < len(args) else None
        if word in OUTPUT_OPTIONS and value is not None:
            inside = Path("reproduced") / word.lstrip("-") / Path(value).name
            if word == "--output":
                produced = inside
            if word == "--out":
                inside = Path("reproduced") / "out"
            out_args += [word, str(inside)]
            i += 2
        elif word == "--duts-root" and value is not None:
            root = duts_root or Path(value)
            out_args += [word, str(Path(root).resolve())]
            i += 2
        else:
            out_args.append(word)
            i += 1
    if args[:1] == ["quickstart"]:
        if "--out" not in args:
            out_args += ["--out", "reproduced/out"]
        produced = Path("reproduced/out/quickstart_demo.onnx")
    if produced is None:
        raise UserInputError(f"{source}: build.command names no --output; cannot find its file")
    recorded = (doc.get("environment") or {}).get("isa_env") or {}
    if not isinstance(recorded, dict):
        raise UserInputError(f"{source}: environment.isa_env is not an object")
    isa_env = {}
    for name, value in recorded.items():
        if name not in machine.ISA_ENV or value is None:
            continue
        if not isinstance(value, str) or not ISA_VALUE.fullmatch(value):
            raise UserInputError(
                f"{source}: environment.isa_env.{display(str(name)[:40])} is not a kernel "
                f"setting: {display(str(value)[:40])}"
            )
        isa_env[name] = value
    return Plan(commit, argv + out_args, produced, expected, isa_env)


def _split_option(word: str) -> list[str]:
    """``--opt=value`` -> [``--opt``, ``value``]; any other word unchanged."""
    if word.startswith("--") and "=" in word:
        name, value = word.split("=", 1)
        return [name, value]
    return [word]


def _git(*args: str, cwd: Path = REPO_ROOT) -> str:
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=600, check=True
        )
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        raise UserInputError(
            f"git {' '.join(args[:2])}: {first_line(RuntimeError(detail))}"
        ) from None
    return done.stdout


def reproduce(
    metrics_path: Path, duts_root: Path | None = None, quiet: bool = False, keep: bool = False
) -> dict[str, Any]:
    """Re-run the recorded build at its commit; {same, expected, got, commit, seconds, ...}.

    UserInputError (exit 2) if nothing can be run; the caller decides what a mismatch means.
    """
    doc = read_json_object(metrics_path, "the metrics JSON")
    run = plan(doc, metrics_path, duts_root)
    work = Path(tempfile.mkdtemp(prefix="sod-train-reproduce-"))
    tree = work / "tree"
    _git("worktree", "add", "--detach", str(tree), "--end-of-options", run.commit)
    started = time.time()
    try:
        env = {**run.env(dict(os.environ)), "PYTHONPATH": str(tree / "ai" / "src")}
        done = subprocess.run(
            run.argv,
            cwd=tree,
            env=env,
            stdout=subprocess.DEVNULL if quiet else sys.stderr,
            stderr=subprocess.DEVNULL if quiet else None,
        )
        if done.returncode != 0:
            raise UserInputError(
                f"{metrics_path}: the recorded command failed at {run.commit[:12]} "
                f"(exit {done.returncode}): {shlex.join(run.argv)}"
            )
        produced = tree / run.produced
        got = hashlib.sha256(produced.read_bytes()).hexdigest()
    finally:
        if not keep:
            _git("worktree", "remove", "--force", str(tree))
    return {
        "same": got == run.expected_sha256,
        "expected": run.expected_sha256,
        "got": got,
        "commit": run.commit,
        "command": shlex.join(run.argv),
        "seconds": round(time.time() - started, 1),
        "machine": machine.describe(),
        "kept": str(tree) if keep else None,
    }


def reproduced_text(result: dict[str, Any]) -> str:
    """The sentence ``--record`` stores as ``build.reproduced``."""
    when = time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime())
    verdict = "yes" if result["same"] else "NO"
    tail = "the same sha256" if result["same"] else f"sha256 {result['got']} instead"
    return (
        f"{verdict}: `sod-train reproduce` re-ran the command at commit {result['commit'][:12]} "
        f"in a fresh worktree on {result['machine']}, {when} ({result['seconds'] / 60:.1f} min): "
        f"{tail}"
    )
