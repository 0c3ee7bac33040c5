"""Hostile inputs, round 3, classes 1, 3 and 7: names from input, broken outputs, pictures.

Each case runs the real ``sod-train`` in a child process (:func:`hostile.sod`), because
only a process has closed, full or cut standard streams, a file size limit or non-UTF-8
arguments. Every refusal is one stderr line with its exit code, no traceback, and no
partial file at the output path.

* Names (file names, tensor names) are printed escaped: a newline cannot forge a report
  line, a non-UTF-8 byte shows as ``\\xff`` and works in every command.
* Output that does not arrive (``/dev/full``, ``ulimit -f``, a cut pipe, a closed
  stdout) is exit 1 or 2, never 0; a closed stdin is one line, exit 2.
* A corrupt EXIF block leaks no Pillow warning.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hostile import (
    build_model,
    data_folder,
    jpeg_bytes,
    one_line,
    save,
    sod,
    text_files,
)
from PIL import Image

from sod_train.errors import UserInputError, display

REPO = Path(__file__).resolve().parents[1]
METRICS = REPO / "model" / "tiny" / "sod_tiny_v1.metrics.json"


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("streams")
    save(build_model(), root / "m.onnx")
    data_folder(root / "D", n=3)
    (root / "p.jpg").write_bytes(jpeg_bytes((24, 16)))
    return root


# -- class 1: one rule for printing what came from input -----------------------------------


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("a\nb", "a\\nb"),
        ("a\rb\tc", "a\\rb\\tc"),
        ("\x1b[31mred", "\\x1b[31mred"),
        ("x\u202ey", "x\\u202ey"),
        ("img_\udcff.jpg", "img_\\xff.jpg"),
        ("\ud800", "\\ud800"),
        (b"bytes\xfe", "bytes\\xfe"),
        ("plain é ✓", "plain é ✓"),
    ],
)
def test_display_escapes_controls_and_unencodable_characters(raw, shown):
    assert display(raw) == shown
    assert "\n" not in display(raw)
    display(raw).encode("utf-8")  # always encodable


def test_error_details_are_separate_lines_each_escaped():
    exc = UserInputError("D: 2 bad file(s):", ["a\nerror: forged", "b"])
    assert str(exc) == "D: 2 bad file(s):\n  a\nerror: forged\n  b"
    assert exc.details == ("a\nerror: forged", "b")


def test_a_tensor_name_with_a_newline_cannot_forge_a_check_line(work):
    model = save(build_model(in_name="in\nPASS forged: ok"), work / "forge.onnx")
    result = sod("check", model)
    line = one_line(result, 1)
    assert "checks failed" in line
    report = result.stdout.decode().splitlines()
    assert not any(row.startswith("PASS forged") for row in report), report
    assert all(row.split(" ", 1)[0] in ("PASS", "FAIL", "SKIP") for row in report), report
    assert any("in\\nPASS forged" in row for row in report), report


def test_an_escape_sequence_in_a_path_is_printed_escaped(work):
    result = sod("check", work / "a\x1b[2Jb\nerror: forged.onnx")
    line = one_line(result, 2)
    assert "a\\x1b[2Jb\\nerror: forged.onnx" in line and "\x1b" not in line


@pytest.fixture(scope="module")
def non_utf8(work: Path) -> Path:
    """A data folder whose pair 1 is named ``img_\\xff\\xfe`` (not UTF-8) in both folders."""
    data = data_folder(work / "NU", n=3)
    for sub, ext in (("images", b".jpg"), ("masks", b".png")):
        old = data / sub / f"img_001{ext.decode()}"
        os.rename(old, os.fsencode(data / sub) + b"/img_\xff\xfe" + ext)
    return data


@pytest.mark.parametrize("command", ["evaluate", "verify-data", "build-cache", "report"])
def test_non_utf8_file_names_work_in_every_command(work, non_utf8, command, tmp_path):
    out = tmp_path / "out"
    args = {
        "evaluate": ["evaluate", work / "m.onnx", "--data", non_utf8, "--per-image",
                     out / "s.csv", "--json", out / "r.json", "--quiet"],
        "verify-data": ["verify-data", non_utf8, "--json", "--quiet"],
        "build-cache": ["build-cache", "--duts-root", non_utf8, "--out", out, "--quiet"],
        "report": ["report", work / "m.onnx", "--data", non_utf8, "--out", out / "r.html",
                   "--quiet"],
    }[command]  # fmt: skip
    result = sod(*args)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    err = result.stderr.decode(errors="replace")
    assert "Traceback" not in err and "internal error" not in err
    if command == "evaluate":  # the CSV keeps the file's own bytes
        assert b"img_\xff\xfe" in (out / "s.csv").read_bytes()
        assert (out / "r.json").is_file()
    if command == "verify-data":
        assert b'"pairs": 3' in result.stdout


def test_fold_iou_takes_non_utf8_names(work, tmp_path):
    data = data_folder(tmp_path / "F", n=66, size=(8, 8))
    os.rename(data / "images/img_005.jpg", os.fsencode(data / "images") + b"/img_\xff.jpg")
    os.rename(data / "masks/img_005.png", os.fsencode(data / "masks") + b"/img_\xff.png")
    result = sod("fold-iou", work / "m.onnx", "--duts-root", data, "--crop-size", 8, "--quiet")
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert b"Traceback" not in result.stderr


def test_a_bad_non_utf8_file_is_named_escaped(work, tmp_path):
    data = data_folder(tmp_path / "B", n=2)
    bad = os.fsencode(data / "images") + b"/img_\xff.jpg"
    Path(os.fsdecode(bad)).write_bytes(b"not a picture")
    Path(os.fsdecode(os.fsencode(data / "masks") + b"/img_\xff.png")).write_bytes(
        (data / "masks/img_000.png").read_bytes()
    )
    result = sod("evaluate", work / "m.onnx", "--data", data, "--quiet")
    err = result.stderr.decode()
    assert result.returncode == 2 and "Traceback" not in err
    assert err.count("error: ") == 1 and "img_\\xff.jpg: cannot decode" in err


# -- class 3: output that does not arrive ---------------------------------------------------


def _stdout_commands(work: Path) -> dict[str, list[object]]:
    return {
        "check": ["check", work / "m.onnx"],
        "diff": ["diff", METRICS, METRICS],
        "predict -": ["predict", work / "p.jpg", "-", "--model", work / "m.onnx"],
        "evaluate": ["evaluate", work / "m.onnx", "--data", work / "D", "--quiet"],
        "verify-data --json": ["verify-data", work / "D", "--json", "--quiet"],
    }


COMMANDS = ["check", "diff", "predict -", "evaluate", "verify-data --json"]


@pytest.mark.parametrize("name", COMMANDS)
def test_stdout_on_a_full_disk_is_one_line_exit_1(work, name):
    with open("/dev/full", "wb") as full:
        result = sod(*_stdout_commands(work)[name], stdout=full)
    line = one_line(result, 1)
    assert "stdout: cannot write (no space left on device)" in line


@pytest.mark.parametrize("name", COMMANDS)
def test_a_closed_stdout_is_one_line_exit_2_never_a_silent_0(work, name):
    line = one_line(sod(*_stdout_commands(work)[name], close=(1,)), 2)
    assert "stdout is closed" in line


@pytest.mark.parametrize("name", COMMANDS)
def test_a_cut_pipe_is_a_failure(work, name):
    args = [os.fsencode(str(a)) for a in _stdout_commands(work)[name]]
    env = {**os.environ, "PYTHONPATH": str(REPO / "ai" / "src"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sod_train.cli.main", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    proc.stdout.close()  # the reader is gone before the first byte
    err = proc.stderr.read().decode()
    assert proc.wait(120) == 1, err
    assert err.splitlines() == [err.strip()] and "broken pipe" in err, err
    assert "Traceback" not in err and "Exception ignored" not in err


def test_a_closed_stdin_is_one_line_exit_2(work, tmp_path):
    out = tmp_path / "o.png"
    line = one_line(sod("predict", "-", out, "--model", work / "m.onnx", close=(0,)), 2)
    assert "stdin is closed" in line
    assert not out.exists()


@pytest.mark.parametrize(
    ("option", "name"), [("--per-image", "s.csv"), ("--json", "r.json"), ("--record", None)]
)
def test_a_file_size_limit_leaves_no_partial_file(work, tmp_path, option, name):
    out = tmp_path / "out"
    out.mkdir()
    if name is None:  # --record rewrites an existing metrics file: it stays as it was
        target = out / "rec.metrics.json"
        target.write_bytes(METRICS.read_bytes())
    else:
        target = out / name
    before = text_files(out)
    result = sod(
        "evaluate", work / "m.onnx", "--data", work / "D", option, target, "--quiet",
        max_file=200,
    )  # fmt: skip
    line = one_line(result, 1)
    assert f"{target}: cannot write (file too large" in line
    assert text_files(out) == before  # no partial file, no temp file, the record unchanged


def test_a_png_too_large_for_the_limit_leaves_nothing(work, tmp_path):
    big = tmp_path / "big.png"
    Image.effect_noise((300, 300), 90).convert("RGB").save(big)
    out = tmp_path / "out.png"
    result = sod("predict", big, out, "--model", work / "m.onnx", max_file=4096)
    assert "cannot write (file too large" in one_line(result, 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.png"]


@pytest.mark.parametrize("output", ["", ".", "a/.."])
def test_an_output_path_that_names_no_file_is_exit_2(work, output, tmp_path):
    result = sod("train", "--duts-root", work / "D", "--output", output,
                 "--preset", "anchor", "--epochs", 1, cwd=tmp_path)  # fmt: skip
    assert "cannot write --output: the path names no file" in one_line(result, 2) or (
        "is a directory" in result.stderr.decode()
    )
    assert list(tmp_path.iterdir()) == []


def test_usage_errors_are_one_line_exit_2(work):
    line = one_line(sod("check", work / "m.onnx", "--max-mb", "nan"), 2)
    assert "--max-mb" in line and "--help" in line


# -- class 7: a corrupt EXIF block ------------------------------------------------------------


def _corrupt_exif_jpeg() -> bytes:
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 3  # orientation: rotate 180
    Image.new("RGB", (16, 12), (200, 10, 10)).save(buf, "JPEG", exif=exif.tobytes())
    raw = bytearray(buf.getvalue())
    at = raw.find(b"Exif\x00\x00")
    raw[at + 10 : at + 20] = b"\xff" * 10  # the IFD offset and count point nowhere
    return bytes(raw)


def test_a_corrupt_exif_block_leaks_no_warning(work, tmp_path):
    picture = tmp_path / "exif.jpg"
    picture.write_bytes(_corrupt_exif_jpeg())
    out = tmp_path / "o.png"
    result = sod("predict", picture, out, "--model", work / "m.onnx")
    assert one_line(result, 0).startswith("wrote mask 16x12 PNG")
    with Image.open(out) as im:
        assert im.size == (16, 12)
