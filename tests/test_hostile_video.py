"""Hostile inputs for the video, ``--short-side`` and scale-normaliser surfaces (issue 25).

Each case found by the adversarial pass (``adv_video.py``, report in the issue) runs the
real CLI in a child process (:func:`hostile.sod`) and checks the refusal rules: the exit
code, one ``error:`` line naming the file and the problem, and nothing written outside
the named output or at it.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import hostile
import pytest

from conftest import REPO
from sod_train.release.reproduce import plan

TINY = REPO / "model" / "tiny" / "sod_tiny_smoke_cpu_v0.onnx"
SHA = "0" * 64


def _metrics(tmp_path: Path, command: str, commit: object) -> Path:
    path = tmp_path / "m.json"
    doc = {"build": {"command": command, "commit": commit}, "onnx": {"sha256": SHA}}
    path.write_text(json.dumps(doc))
    return path


def _head() -> str:
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()


# -- reproduce: a hostile build record runs nothing but a model build, inside its worktree --


def test_reproduce_output_option_with_equals_is_pointed_into_the_worktree(tmp_path):
    victim = tmp_path / "victim.json"
    run = plan(
        {
            "build": {
                "command": f"sod-train normalise m.onnx --working-size 64 --output x.onnx "
                f"--metrics-out={victim} --output={tmp_path}/y.onnx",
                "commit": "abc1234",
            },
            "onnx": {"sha256": SHA},
        },
        tmp_path / "m.json",
    )
    assert str(tmp_path) not in " ".join(run.argv)
    args = run.argv[3:]
    assert args[args.index("--metrics-out") + 1] == "reproduced/metrics-out/victim.json"
    assert run.produced == Path("reproduced/output/y.onnx")


@pytest.mark.parametrize(
    "command",
    [
        "sod-train video clip.y4m --csv {victim} --output x.onnx",
        "sod-train evaluate m.onnx --data d --record {victim} --output x.onnx",
        "sod-train predict m.onnx in.png {victim} --output x.onnx",
        "sod-train fetch duts-te --dest {victim} --output x.onnx",
    ],
)
def test_reproduce_refuses_a_command_that_builds_no_model(tmp_path, command):
    victim = tmp_path / "victim"
    victim.write_text("{}")
    metrics = _metrics(tmp_path, command.format(victim=victim), _head())
    line = hostile.one_line(hostile.sod("reproduce", metrics, "--quiet"), 2)
    assert str(metrics) in line and "builds no model" in line
    assert victim.read_text() == "{}"


@pytest.mark.parametrize("commit", ["--help", "-bevil", "--orphan=evil", "abc\n--force", "HEAD~1"])
def test_reproduce_refuses_a_commit_that_is_not_a_commit_id(tmp_path, commit):
    metrics = _metrics(tmp_path, "sod-train normalise m.onnx --output x.onnx", commit)
    line = hostile.one_line(hostile.sod("reproduce", metrics, "--quiet"), 2)
    assert str(metrics) in line and "build.commit is not a commit id" in line
    assert "\n" not in line


# -- --short-side: a long thin picture must not become terabytes -------------------------------


@pytest.mark.parametrize("command", ["evaluate", "fold-iou"])
def test_short_side_past_the_run_size_range_is_one_line_naming_the_picture(tmp_path, command):
    from PIL import Image

    data = tmp_path / "thin"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir(parents=True)
    # 3000 x 1 at short side 4096: 12,288,000 x 4096 pixels (150 GB of float input).
    # fold-iou scores a fold of at least 64 pairs: 130 at --val-fraction 0.5.
    for i in range(130 if command == "fold-iou" else 1):
        Image.new("RGB", (3000, 1)).save(data / "images" / f"thin{i}.png")
        Image.new("L", (3000, 1)).save(data / "masks" / f"thin{i}.png")
    if command == "evaluate":
        args = ["evaluate", TINY, "--data", data, "--short-side", "4096"]
    else:
        args = [
            "fold-iou",
            TINY,
            "--duts-root",
            data,
            "--val-fraction",
            "0.5",
            "--short-side",
            "4096",
        ]
    line = hostile.one_line(hostile.sod(*args, timeout=60), 2)
    assert "/thin" in line and ".png" in line and "over the run-size range" in line, line


# -- video: `-` is stdout, odd header numbers are ignored or refused, never a traceback ------


def _y4m(path: Path, header: bytes, frames: int = 2) -> Path:
    path.write_bytes(header + b"\n" + (b"FRAME\n" + bytes(16 * 16 * 3 // 2)) * frames)
    return path


@pytest.mark.parametrize("flag", ["--csv", "--json"])
def test_video_dash_is_stdout_never_a_file_named_dash(tmp_path, flag):
    clip = _y4m(tmp_path / "clip.y4m", b"YUV4MPEG2 W16 H16 F25:1")
    result = hostile.sod("video", clip, "--model", TINY, flag, "-", "--quiet", cwd=tmp_path)
    assert result.returncode == 0 and not result.stderr, result.stderr
    assert not (tmp_path / "-").exists()
    text = result.stdout.decode()
    assert text.startswith("frame,pts") if flag == "--csv" else json.loads(text)["frames"] == 2
    with open("/dev/full", "wb") as sink:
        failed = hostile.sod("video", clip, "--model", TINY, flag, "-", "--quiet", stdout=sink)
    assert "stdout: cannot write (no space left on device)" in hostile.one_line(failed, 1)


@pytest.mark.parametrize(
    "options", [("--csv", "-", "--json", "-"), ("--report", "-"), ("--maps", "-")]
)
def test_video_outputs_that_cannot_go_to_stdout_are_refused(tmp_path, options):
    clip = _y4m(tmp_path / "clip.y4m", b"YUV4MPEG2 W16 H16")
    result = hostile.sod("video", clip, "--model", TINY, *options, "--quiet", cwd=tmp_path)
    assert "only one of --csv and --json can go to stdout" in hostile.one_line(result, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.y4m"]


def test_video_a_400_digit_frame_rate_is_ignored_not_a_crash(tmp_path):
    clip = _y4m(tmp_path / "clip.y4m", b"YUV4MPEG2 W16 H16 F" + b"9" * 400 + b":1")
    out = tmp_path / "out.json"
    result = hostile.sod("video", clip, "--model", TINY, "--json", out, "--quiet")
    assert result.returncode == 0, result.stderr
    doc = json.loads(out.read_text())
    assert doc["frames"] == 2 and doc["rows"][0]["pts"] is None


@pytest.mark.parametrize("size", ["²x16", "16x１６"])
def test_raw_yuv_size_takes_ascii_digits_only(tmp_path, size):
    raw = tmp_path / "clip.yuv"
    raw.write_bytes(bytes(16 * 16 * 3 // 2 * 2))
    result = hostile.sod("video", raw, "--model", TINY, "--size", size, "--pix-fmt", "yuv420p")
    assert "expected WIDTHxHEIGHT" in hostile.one_line(result, 2)


# -- normalise: an output that names no file, a metrics JSON of the wrong shape ---------------


def test_normalise_output_that_names_no_file_is_one_line(tmp_path):
    result = hostile.sod("normalise", TINY, "--output", "", "--working-size", "64")
    assert "the path names no file" in hostile.one_line(result, 2)


@pytest.mark.parametrize("doc", [{"onnx": "x"}, {"config": [1], "onnx": {}}])
def test_normalise_metrics_sections_of_the_wrong_type_are_refused(tmp_path, doc):
    metrics = tmp_path / "m.json"
    metrics.write_text(json.dumps(doc))
    out = tmp_path / "out" / "w.onnx"
    out.parent.mkdir()
    result = hostile.sod(
        "normalise", TINY, "--output", out, "--working-size", "64", "--metrics", metrics
    )
    line = hostile.one_line(result, 2)
    assert str(metrics) in line and "expected an object" in line
    assert hostile.all_files(out.parent) == []


# -- the Python API: pictures of no pixels or of absurd size are UserInputError ---------------


@pytest.mark.parametrize(
    "shape", [(0, 0, 3), (0, 5), (100_000, 100_000, 3)], ids=["0x0", "5x0", "huge-view"]
)
def test_api_refuses_empty_and_huge_pictures(shape):
    import numpy as np

    import sod_train
    from sod_train.errors import UserInputError

    # A zero-stride view: 30 GB as an array, 3 bytes of memory.
    picture = np.lib.stride_tricks.as_strided(np.zeros(3, np.uint8), shape, (0,) * len(shape))
    model = sod_train.open_model(TINY)
    with pytest.raises(UserInputError, match="at least 1x1") as info:
        model.map(picture)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("size", [0, -3, 10**9, float("nan"), 2.5, True])
def test_api_refuses_a_run_size_out_of_range(size):
    import sod_train
    from sod_train.errors import UserInputError

    with pytest.raises(UserInputError, match=r"size must be an int in 1\.\.4096"):
        sod_train.open_model(TINY, size=size)


# -- a cut pipe under PYTHONUNBUFFERED: one large write cut short is a failure, not exit 0 ------


def test_cut_pipe_of_one_large_write_is_a_failure_even_unbuffered(tmp_path):
    """``--json -`` writes 300 kB at once; unbuffered, the raw write came back short when
    the reader left and the rest was dropped with exit 0."""
    import os
    import sys

    clip = _y4m(tmp_path / "clip.y4m", b"YUV4MPEG2 W16 H16", frames=2000)
    env = {**os.environ, "PYTHONPATH": str(hostile.SRC), "PYTHONUNBUFFERED": "1"}
    args = ["video", str(clip), "--model", str(TINY), "--json", "-", "--quiet"]
    child = subprocess.Popen(
        [sys.executable, "-m", "sod_train.cli.main", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert child.stdout is not None and child.stdout.read(1) == b"{"
    child.stdout.close()  # the reader goes away after one byte (`| head -c1`)
    _, err = child.communicate(timeout=120)
    result = subprocess.CompletedProcess(args, child.returncode, b"", err)
    assert "stdout: cannot write" in hostile.one_line(result, 1)
