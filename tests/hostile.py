"""Helpers for the hostile-input tests (imported by tests/test_hostile_*.py, not a conftest).

Everything hostile is generated here: tiny ONNX models built with onnx.helper (no
training), small data folders, PNG headers that declare huge sizes, FIFOs, sockets, deep
JSON. ``cli`` runs the real command line in-process under an alarm, so a command that
would hang fails the test instead of stalling the suite, and checks the rules every
refusal must follow: the exit code, one ``error:`` line naming the file and the problem,
no traceback, and inputs left byte-identical.

``sod`` runs the real ``sod-train`` in a child process, for what only a process can
show: closed, full or cut standard streams, a file size limit, non-UTF-8 arguments,
dropped file permissions. ``one_line`` checks its stderr: exactly one line, no
traceback, no raw warning.
"""

from __future__ import annotations

import contextlib
import io
import os
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import onnx
from click.testing import CliRunner, Result
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from sod_train.cli.main import main


class Hung(Exception):
    """A command ran past its alarm (it would have hung)."""


@contextlib.contextmanager
def alarm(seconds: int) -> Iterator[None]:
    """Raise Hung in the main thread after ``seconds`` (blocking opens are interrupted)."""

    def fire(signum: int, frame: object) -> None:
        raise Hung(f"command still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def cli(*args: object, timeout: int = 60) -> Result:
    """Invoke ``sod-train ARGS`` in-process; never a traceback, never an unhandled exception."""
    with alarm(timeout):
        result = CliRunner().invoke(main, [str(a) for a in args])
    if isinstance(result.exception, Hung):
        raise AssertionError(f"sod-train {' '.join(map(str, args))}: hung")
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"sod-train {' '.join(map(str, args))} raised {result.exception!r}\n{result.output}"
    )
    assert "Traceback" not in result.output, result.output
    assert "Warning:" not in result.output, result.output  # no raw Python warning lines
    return result


def error_line(result: Result) -> str:
    """The one ``error: ...`` line of stderr (asserting there is exactly one)."""
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def refused(result: Result, code: int, path: object, *words: str) -> str:
    """Assert exit ``code`` and one error line naming ``path`` and every word; return it."""
    assert result.exit_code == code, (result.exit_code, result.output)
    line = error_line(result)
    assert str(path) in line, (str(path), line)
    for word in words:
        assert word.lower() in line.lower(), (word, line)
    return line


class Snapshot:
    """The bytes of some files now, to prove later that nothing changed them."""

    def __init__(self, paths: Iterable[Path]) -> None:
        self.saved = {Path(p): Path(p).read_bytes() for p in paths}

    def unchanged(self) -> None:
        for path, data in self.saved.items():
            assert path.is_file(), f"{path} is gone"
            assert path.read_bytes() == data, f"{path} was changed"


# -- models -------------------------------------------------------------------------------


def build_model(
    nodes: list[onnx.NodeProto] | None = None,
    inits: list[onnx.TensorProto] | None = None,
    in_shape: tuple = (1, 3, "H", "W"),
    out_shape: tuple = (1, 1, "H", "W"),
    in_name: str = "input",
    out_name: str = "saliency_map",
    out_type: int = TensorProto.FLOAT,
    opsets: tuple[tuple[str, int], ...] = (("", 17),),
) -> onnx.ModelProto:
    """A model; by default the contract's tiny any-size Conv 3->1 k3 + Sigmoid."""
    if nodes is None:
        nodes = [
            helper.make_node("Conv", [in_name, "w", "b"], ["conv"], pads=[1, 1, 1, 1], name="c"),
            helper.make_node("Sigmoid", ["conv"], [out_name], name="s"),
        ]
    if inits is None:
        w = np.random.default_rng(0).standard_normal((1, 3, 3, 3)).astype(np.float32) * 0.2
        inits = [
            numpy_helper.from_array(w, "w"),
            numpy_helper.from_array(np.zeros(1, np.float32), "b"),
        ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(in_name, TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info(out_name, out_type, out_shape)],
        inits,
    )
    opset_ids = [helper.make_opsetid(domain, version) for domain, version in opsets]
    return helper.make_model(graph, opset_imports=opset_ids, ir_version=8)


def save(model: onnx.ModelProto, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())
    return path


def string_output_model() -> onnx.ModelProto:
    """A model whose ``saliency_map`` is a string tensor."""
    const = helper.make_tensor("t", TensorProto.STRING, [1, 1, 1, 1], [b"x"])
    nodes = [helper.make_node("Constant", [], ["saliency_map"], value=const)]
    return build_model(nodes, [], out_type=TensorProto.STRING, out_shape=(1, 1, 1, 1))


def string_constant_model() -> onnx.ModelProto:
    """A model that declares a float output but feeds it a string constant."""
    const = helper.make_tensor("t", TensorProto.STRING, [1, 1, 1, 1], [b"x"])
    nodes = [helper.make_node("Constant", [], ["saliency_map"], value=const)]
    return build_model(nodes, [])


def bad_utf8_bytes(model: onnx.ModelProto, name: bytes = b"input") -> bytes:
    """The serialized model with every ``name`` replaced by invalid UTF-8 of equal length."""
    bad = name[:-2] + b"\xff" + name[-1:]
    return model.SerializeToString().replace(name, bad)


def weightless_conv_model() -> onnx.ModelProto:
    nodes = [
        helper.make_node("Conv", ["input"], ["conv"], name="c"),
        helper.make_node("Sigmoid", ["conv"], ["saliency_map"], name="s"),
    ]
    return build_model(nodes, [])


def nan_model() -> onnx.ModelProto:
    """A model whose map is NaN everywhere (input * NaN)."""
    nan = numpy_helper.from_array(np.array([np.nan], np.float32), "nan")
    nodes = [
        helper.make_node("Mul", ["input", "nan"], ["m"]),
        helper.make_node("ReduceMean", ["m"], ["saliency_map"], axes=[1], keepdims=1),
    ]
    return build_model(nodes, [nan])


def external_data_model(folder: Path, name: str = "ext.onnx", keep_data: bool = False) -> Path:
    """A model whose weights live in an external file (removed unless ``keep_data``)."""
    path = folder / name
    onnx.save_model(
        build_model(), path, save_as_external_data=True, location=f"{name}.bin", size_threshold=0
    )
    if not keep_data:
        (folder / f"{name}.bin").unlink()
    return path


# -- pictures and data folders ------------------------------------------------------------


def png_bytes(size: tuple[int, int] = (12, 8), mode: str = "RGB", seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    if mode == "L":
        array = (rng.random((size[1], size[0])) > 0.5).astype(np.uint8) * 255
    else:
        array = (rng.random((size[1], size[0], 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "PNG")
    return buf.getvalue()


def jpeg_bytes(size: tuple[int, int] = (12, 8), seed: int = 0) -> bytes:
    array = (np.random.default_rng(seed).random((size[1], size[0], 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "JPEG")
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def bomb_png(width: int = 50_000, height: int = 50_000, mode: int = 0) -> bytes:
    """A tiny PNG whose header declares width x height 8-bit pixels (grey, or RGB: mode 2)."""
    header = struct.pack(">IIBBBBB", width, height, 8, mode, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", idat)
        + _chunk(b"IEND", b"")
    )


def data_folder(
    root: Path, n: int = 3, layout: str = "images", size: tuple[int, int] = (12, 8)
) -> Path:
    """``root`` with ``n`` good pairs in ``images/`` + ``masks/`` or ``L-Image/`` + ``L-Mask/``."""
    image_dir, mask_dir = (
        ("images", "masks") if layout == "images" else (layout + "-Image", layout + "-Mask")
    )
    (root / image_dir).mkdir(parents=True, exist_ok=True)
    (root / mask_dir).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (root / image_dir / f"img_{i:03d}.jpg").write_bytes(jpeg_bytes(size, seed=i))
        (root / mask_dir / f"img_{i:03d}.png").write_bytes(png_bytes(size, "L", seed=i))
    return root


def all_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


# -- special files ------------------------------------------------------------------------


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


@contextlib.contextmanager
def unix_socket(path: Path) -> Iterator[Path]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    try:
        yield path
    finally:
        sock.close()


def deep_json(depth: int = 100_000) -> str:
    return "[" * depth + "]" * depth


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def endless_loop_model(trips: int = 10**15) -> onnx.ModelProto:
    """A valid model that never finishes: a Loop of ``trips`` identity iterations."""
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Identity", ["v_in"], ["v_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_in", TensorProto.FLOAT, None),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_out", TensorProto.FLOAT, None),
        ],
    )
    nodes = [
        helper.make_node("Conv", ["input", "w", "b"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node("Loop", ["trips", "true", "conv"], ["looped"], body=body),
        helper.make_node("Sigmoid", ["looped"], ["saliency_map"]),
    ]
    inits = [
        *build_model().graph.initializer,
        numpy_helper.from_array(np.array(trips, np.int64), "trips"),
        numpy_helper.from_array(np.array(True), "true"),
    ]
    return build_model(nodes, inits)


# -- the real CLI in a child process --------------------------------------------------------

SRC = Path(__file__).resolve().parents[1] / "ai" / "src"
# Drops the capabilities that let root ignore file permissions, so a chmod 0 is a chmod 0.
NO_DAC = [
    "--inh-caps=-dac_override,-dac_read_search",
    "--bounding-set=-dac_override,-dac_read_search",
]


def can_drop_permissions() -> bool:
    """Whether unreadable files can be made: not root, or root with setpriv to drop caps."""
    return not is_root() or shutil.which("setpriv") is not None


def sod(
    *args: object,
    stdin: bytes | None = None,
    close: tuple[int, ...] = (),
    stdout: object = subprocess.PIPE,
    max_file: int | None = None,
    no_dac: bool = False,
    cwd: Path | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[bytes]:
    """``sod-train ARGS`` in a child process. ``close`` closes those descriptors (0: stdin,
    1: stdout) in the child before it starts; ``max_file`` sets its file size limit in
    bytes (``ulimit -f``); ``no_dac`` makes root obey file permissions. Arguments may be
    bytes (non-UTF-8 file names). Never waits past ``timeout``."""

    def prepare() -> None:
        if max_file is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (max_file, max_file))
        for fd in close:
            os.close(fd)

    argv = [a if isinstance(a, bytes) else os.fsencode(str(a)) for a in args]
    command = [os.fsencode(sys.executable), b"-m", b"sod_train.cli.main", *argv]
    if no_dac and is_root():
        command = [b"setpriv", *map(os.fsencode, NO_DAC), *command]
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    env.pop("SOD_TRAIN_TRACEBACK", None)
    return subprocess.run(
        command,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.PIPE,
        preexec_fn=prepare,
        env=env,
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


def one_line(result: subprocess.CompletedProcess[bytes], code: int | tuple[int, ...]) -> str:
    """Assert the exit code, exactly one stderr line (an ``error:`` one when failing), no
    traceback and no raw warning; return that line."""
    err = result.stderr.decode("utf-8", "replace")
    codes = code if isinstance(code, tuple) else (code,)
    assert result.returncode in codes, (result.returncode, err)
    assert "Traceback" not in err and "Exception ignored" not in err, err
    assert "Warning:" not in err and "internal error" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    if result.returncode:
        assert lines[0].startswith("error: "), err
    return lines[0]


def text_files(root: Path) -> dict[Path, bytes]:
    """Every regular file under ``root`` and its bytes (to prove nothing was written)."""
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
