"""Guards on everything a user hands a command: files it reads, paths it writes, numbers.

Every command follows the same rules, checked before any work starts, each failure one
:class:`~sod_train.errors.UserInputError` (exit 2) naming the path:

* **Read only regular files.** A path is ``stat``-ed, then opened non-blocking and
  ``fstat``-ed again, so a FIFO, ``/dev/zero``, a socket or a folder is refused at once
  instead of hanging or reading forever; every read has a byte limit.
* **Never write over an input**, nor two outputs onto one file. Paths are compared
  resolved (symlinks followed) and by ``(device, inode)``, so a symlink or a hard link
  to an input counts as the input.
* **An output's folder must be a writable folder** (or be creatable under one): a
  parent that is a file, or an output that is a folder or a special file, is refused.
* **JSON is bounded** in bytes and nesting depth and strict: no NaN/Infinity, no number
  a float cannot hold (``1e999``) or integer beyond 64 bits, no lone surrogate
  (``"\ud800"``) in a string or key; each refusal names the key path. Each file's
  schema is checked by its reader.
* **A path named inside a file stays inside the folder that holds it**
  (:func:`confined`): an absolute path, a ``..`` part, or a symlink that leads out is
  refused with the key that named it, so a registry or metrics file can never make a
  command read or write elsewhere.
* **Sizes, thread and count options have fixed ranges** (the constants below, shown in
  every ``--help``), so no option can ask for a huge allocation or a runaway thread pool.
* **A model run has a deadline** (:func:`stop_after`): a model that never finishes (a
  Loop with a huge trip count) is stopped after MAX_RUN_SECONDS of wall and CPU time,
  never waited on; a busy machine that starves a sound run does not trip it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from sod_train.errors import UserInputError

# Ranges of the size, thread and count options (documented in docs/refusals.md).
MAX_SIDE = 8192  # largest height or width a model is run at (bench --sizes, fixed dims)
MAX_PIXELS = 4096 * 4096  # largest H x W a model is run at (16.8 MP)
MAX_SQUARE = 4096  # largest N of --size N (N x N <= MAX_PIXELS)
MAX_THREADS = 64  # onnxruntime intra-op threads
MAX_RUNS = 10_000  # bench --runs
MAX_WARMUP = 1_000  # bench --warmup
MAX_LIST = 16  # items in bench --sizes / --threads, and models per bench
MAX_WORKERS = 64  # decoding processes
MAX_CROP = 4096  # fold-iou --crop-size; train --crop-size, --val-crop, --final-crop
MAX_EPOCHS = 10_000  # train --epochs, --final-epochs
MAX_BATCH_SIZE = 4096  # train --batch-size
MAX_TORCH_THREADS = 1024  # train --threads (torch intra-op)
MAX_JSON_BYTES = 64 << 20  # any JSON file we read
MAX_JSON_DEPTH = 64  # nesting of any JSON file we read (ours need 6)
MAX_TEXT_BYTES = 1 << 20  # small text inputs (the op allowlist)
MAX_MODEL_BYTES = 2**31 - 1  # protobuf's limit for one message
MAX_RUN_SECONDS = 120.0  # one model run, in wall and CPU seconds; then onnxruntime stops it


def _kind(mode: int) -> str:
    """What a non-regular file is, for a message: 'a FIFO (named pipe)', 'a folder', ..."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _not_regular(path: str | os.PathLike[str], what: str, mode: int) -> UserInputError:
    return UserInputError(f"{path}: cannot read {what}: it is {_kind(mode)}, not a regular file")


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    if isinstance(exc, NotADirectoryError):
        return "a parent folder is a file"
    return (exc.strerror or str(exc)).lower()


def require_regular_file(path: str | os.PathLike[str], what: str) -> os.stat_result:
    """``stat`` of ``path`` (symlinks followed) if it is a regular file; UserInputError if not.

    Never opens the file, so it cannot block on a FIFO.
    """
    try:
        st = os.stat(path)
    except (OSError, ValueError) as exc:
        reason = _os_reason(exc) if isinstance(exc, OSError) else str(exc)
        raise UserInputError(f"{path}: cannot read {what} ({reason})") from None
    if not stat.S_ISREG(st.st_mode):
        raise _not_regular(path, what, st.st_mode)
    return st


def open_regular(path: str | os.PathLike[str], what: str) -> BinaryIO:
    """Open the regular file ``path`` for binary reading; UserInputError if it is not one.

    Opened with O_NONBLOCK and checked with ``fstat`` after opening, so a path swapped
    for a FIFO or a device between the check and the open is refused too, never waited on.
    """
    require_regular_file(path, what)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise UserInputError(f"{path}: cannot read {what} ({_os_reason(exc)})") from None
    try:
        mode = os.fstat(fd).st_mode
    except OSError as exc:
        os.close(fd)
        raise UserInputError(f"{path}: cannot read {what} ({_os_reason(exc)})") from None
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise _not_regular(path, what, mode)
    return os.fdopen(fd, "rb")


def read_bytes(path: str | os.PathLike[str], what: str, max_bytes: int) -> bytes:
    """The bytes of the regular file ``path``, at most ``max_bytes``; UserInputError otherwise."""
    with open_regular(path, what) as fh:
        fd = fh.fileno()
        st = os.fstat(fd)
        if st.st_size > max_bytes:
            raise UserInputError(
                f"{path}: {what} is {st.st_size:,} bytes, more than the limit of {max_bytes:,}"
            )
        chunks, total = [], 0
        try:
            while block := os.read(fd, min(1 << 20, max_bytes + 1 - total)):
                chunks.append(block)
                total += len(block)
                if total > max_bytes:
                    raise UserInputError(f"{path}: {what} is more than {max_bytes:,} bytes")
        except OSError as exc:
            raise UserInputError(f"{path}: cannot read {what} ({_os_reason(exc)})") from None
        return b"".join(chunks)


def read_text(path: str | os.PathLike[str], what: str, max_bytes: int = MAX_TEXT_BYTES) -> str:
    """A regular file's UTF-8 text, at most ``max_bytes``; UserInputError otherwise."""
    data = read_bytes(path, what, max_bytes)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserInputError(f"{path}: {what} is not UTF-8 text (byte {exc.start})") from None


def plain_relative(value: object) -> str | None:
    """Why ``value`` is not a plain relative path (None if it is): the check a path named
    inside a file gets before it is joined to anything."""
    if not isinstance(value, str) or not value:
        return "not a non-empty string"
    if "\x00" in value or "\\" in value:
        return "holds a NUL or a backslash"
    if value.startswith("/") or os.path.isabs(value):
        return "is an absolute path"
    if ".." in value.split("/"):
        return "has a '..' part"
    return None


def confined(base: str | os.PathLike[str], rel: object, key: str, source: object) -> Path:
    """``base / rel``, if it stays inside ``base`` with every symlink followed.

    ``rel`` is a path read from the file ``source`` at ``key`` (e.g. ``models[0].card``);
    an absolute path, a ``..`` part, or a symlink that leaves ``base`` is a
    UserInputError (exit 2) naming the file and the key. Nothing is opened.
    """
    problem = plain_relative(rel)
    if problem is None:
        real_base = os.path.realpath(base)
        real = os.path.realpath(os.path.join(base, str(rel)))
        if os.path.commonpath([real_base, real]) != real_base:
            problem = f"leads out of {base} (through a symbolic link, to {real})"
    if problem is not None:
        raise UserInputError(
            f"{source}: {key} = {rel!r} {problem}; a path named in this file must stay "
            f"inside {base}"
        )
    return Path(base) / str(rel)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    """A JSON number as a float, refusing ones too large for a float (1e999 reads as inf)."""
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text[:40]} is too large for a number")
    return number


MAX_JSON_INT = 2**63  # integers a JSON file may hold: |n| < 2**63 (what int64 holds)


def _unencodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def json_value_problem(doc: Any, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """The first value of a parsed JSON document no reader should meet, as
    ``"key.path: problem"`` (None when every value is sound); computed without recursion.

    Refused: nesting deeper than ``max_depth``, a float that is not finite, an integer
    of 64 bits or more, and a string or key with a lone surrogate (``"\ud800"``, which
    no file or terminal can encode).
    """
    stack: list[tuple[Any, str, int]] = [(doc, "", 0)]
    while stack:
        value, where, depth = stack.pop()
        here = where or "(top level)"
        if isinstance(value, dict):
            if depth >= max_depth:
                return f"{here}: nested deeper than {max_depth} levels"
            for key, item in value.items():
                if _unencodable(key):
                    return f"{here}: a key holds a lone surrogate ({key!a})"
                stack.append((item, f"{where}.{key}" if where else key, depth + 1))
        elif isinstance(value, list):
            if depth >= max_depth:
                return f"{here}: nested deeper than {max_depth} levels"
            stack.extend((item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value))
        elif isinstance(value, str) and _unencodable(value):
            return f"{here}: the string holds a lone surrogate ({value[:40]!a})"
        elif isinstance(value, float) and not math.isfinite(value):
            return f"{here}: {value} is not a finite number"
        elif isinstance(value, int) and not isinstance(value, bool) and abs(value) >= MAX_JSON_INT:
            return f"{here}: an integer of {value.bit_length()} bits is out of range (|n| < 2**63)"
    return None


def read_json(
    path: str | os.PathLike[str],
    what: str,
    max_bytes: int = MAX_JSON_BYTES,
    max_depth: int = MAX_JSON_DEPTH,
) -> Any:
    """Parse a JSON file strictly and boundedly; UserInputError naming the file if not.

    Refused: a non-regular file, more than ``max_bytes``, text that is not UTF-8 or not
    JSON, NaN/Infinity, and nesting deeper than ``max_depth`` (so no later recursive
    walk of the document can exhaust the stack). The schema is the caller's to check.
    """
    data = read_bytes(path, what, max_bytes)
    try:
        text = data.decode("utf-8")
        doc = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError:
        raise UserInputError(f"{path}: {what} is nested deeper than {max_depth} levels") from None
    except UnicodeDecodeError as exc:
        raise UserInputError(
            f"{path}: not valid JSON (not UTF-8 at byte {exc.start}); expected {what}"
        ) from None
    except ValueError as exc:  # JSONDecodeError, and our NaN/Infinity refusal
        raise UserInputError(f"{path}: not valid JSON ({exc}); expected {what}") from None
    problem = json_value_problem(doc, max_depth)
    if problem is not None:
        if "nested deeper" in problem:
            raise UserInputError(f"{path}: {what} is nested deeper than {max_depth} levels")
        raise UserInputError(f"{path}: {what}: {problem}")
    return doc


def read_json_object(path: str | os.PathLike[str], what: str, **limits: int) -> dict[str, Any]:
    """:func:`read_json` for documents that must be a JSON object."""
    doc = read_json(path, what, **limits)
    if not isinstance(doc, dict):
        raise UserInputError(f"{path}: {what} must be a JSON object, not {type(doc).__name__}")
    return doc


def _inode(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def refuse_aliases(
    reads: Iterable[tuple[str, str | os.PathLike[str]]],
    writes: Iterable[tuple[str, str | os.PathLike[str]]],
) -> None:
    """UserInputError if a path in ``writes`` is a file in ``reads`` or another write.

    Both are ``(label, path)``; a label names the path's role, e.g. ``"the model"`` or
    ``"--json"``. Reads are compared by inode (an existing output is the same file as an
    input when stat says so: the same path, a symlink or a hard link); writes with each
    other by resolved path and inode. Call it before any work starts.
    """
    read_ids: dict[tuple[int, int], tuple[str, str]] = {}
    for label, path in reads:
        ident = _inode(path)
        if ident is not None:
            read_ids.setdefault(ident, (label, str(path)))
    seen: dict[str, tuple[str, str]] = {}
    seen_ids: dict[tuple[int, int], tuple[str, str]] = {}
    for label, path in writes:
        ident = _inode(path)
        if ident is not None and ident in read_ids:
            other, other_path = read_ids[ident]
            how = "" if os.path.abspath(other_path) == os.path.abspath(path) else " (same file)"
            raise UserInputError(
                f"{path}: refusing to overwrite {other} {other_path}{how} with {label}; "
                "choose another output path"
            )
        resolved = os.path.realpath(path)
        clash = seen.get(resolved) or (seen_ids.get(ident) if ident is not None else None)
        if clash is not None:
            raise UserInputError(
                f"{path}: refusing to write {label} and {clash[0]} ({clash[1]}) to one file; "
                "give them different paths"
            )
        seen[resolved] = (label, str(path))
        if ident is not None:
            seen_ids[ident] = (label, str(path))


def _nearest_existing(folder: Path) -> tuple[Path, os.stat_result]:
    """The deepest existing ancestor of ``folder`` (itself included) and its stat.

    A broken symlink on the way is refused: nothing can be created through it.
    """
    current = Path(os.path.abspath(folder))
    while True:
        try:
            return current, os.stat(current)
        except (FileNotFoundError, NotADirectoryError):
            if os.path.islink(current):
                raise UserInputError(f"{current} is a symbolic link to nothing") from None
            if current.parent == current:
                raise
            current = current.parent


def _check_folder_usable(target: Path, folder: Path, what: str) -> None:
    """``folder`` (where ``target`` goes) is, or can be created under, a writable folder."""
    try:
        existing, st = _nearest_existing(folder)
    except OSError as exc:
        raise UserInputError(f"{target}: cannot write {what} ({_os_reason(exc)})") from None
    except UserInputError as exc:
        raise UserInputError(f"{target}: cannot write {what}: {exc}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise UserInputError(
            f"{target}: cannot write {what}: {existing} is {_kind(st.st_mode)}, not a folder"
            if not stat.S_ISREG(st.st_mode)
            else f"{target}: cannot write {what}: {existing} is a file, not a folder"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserInputError(f"{target}: cannot write {what}: {existing} is not writable")


def _require_file_name(path: str | os.PathLike[str], what: str) -> Path:
    """``path`` as a Path, if it names a file: ``''``, ``.``, ``..`` or a trailing ``/``
    name none (UserInputError)."""
    text = os.fspath(path)
    if not text or text.endswith(os.sep) or Path(text).name in ("", ".", ".."):
        raise UserInputError(f"{text!r}: cannot write {what}: the path names no file")
    return Path(text)


def check_output_file(path: str | os.PathLike[str], what: str) -> None:
    """Refuse, before any work, a path a command could not write ``what`` to.

    Refused: an empty path or one that names no file (``.``, ``dir/``), an existing
    folder or special file at ``path``, a parent that is a file, and a folder (the
    nearest existing one) that is not writable.
    """
    path = _require_file_name(path, what)
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        st = None
    except OSError as exc:
        raise UserInputError(f"{path}: cannot write {what} ({_os_reason(exc)})") from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise UserInputError(
            f"{path}: cannot write {what}: it is {_kind(st.st_mode)}, not a regular file"
        )
    _check_folder_usable(path, path.parent, what)


def check_output_dir(path: str | os.PathLike[str], what: str) -> None:
    """Refuse, before any work, a folder a command could not write ``what`` into."""
    path = Path(path)
    _check_folder_usable(path, path, what)


def release_outputs(
    output: str | os.PathLike[str], metrics_out: str | os.PathLike[str] | None = None
) -> list[tuple[str, Path]]:
    """The files an export writes: the ONNX model, its golden vectors and metrics JSON."""
    output = _require_file_name(output, "--output")
    metrics = (
        _require_file_name(metrics_out, "--metrics-out")
        if metrics_out
        else output.with_suffix(".metrics.json")
    )
    label = "--metrics-out" if metrics_out else "the metrics JSON"
    return [
        ("--output", output),
        ("the golden vectors", output.with_suffix(".golden.json")),
        (label, metrics),
    ]


def check_release_outputs(
    output: str | os.PathLike[str],
    metrics_out: str | os.PathLike[str] | None = None,
    reads: Iterable[tuple[str, str | os.PathLike[str]]] = (),
    writes: Iterable[tuple[str, str | os.PathLike[str]]] = (),
) -> None:
    """Refuse, before training or exporting, release paths that cannot be written or alias.

    Every file of :func:`release_outputs` must be writable (no folder or FIFO there, no
    parent that is a file) and none may be one of ``reads`` (a checkpoint, the allowlist),
    a file of the data folder (pass :func:`sod_train.data.pairs.training_files` in
    ``reads``), one of ``writes`` (the checkpoint a run saves) or another of them
    (``--metrics-out`` equal to ``--output`` or to the golden vectors' path).
    """
    outputs = release_outputs(output, metrics_out)
    for label, path in outputs:
        check_output_file(path, label)
    refuse_aliases(list(reads), [*outputs, *writes])


@contextlib.contextmanager
def stop_after(
    seconds: float, stop: Callable[[], None], poll: float = 0.25
) -> Iterator[threading.Event]:
    """Call ``stop`` from a watchdog thread once the block has run ``seconds`` of both wall
    time and this process's CPU time.

    Both, so that a machine too busy to give us the CPU (wall time passes, CPU time does
    not) never stops a sound run, and a sound run on many threads (CPU time passes fast,
    wall time does not) is not stopped either; a model that never finishes burns both.
    Yields an Event set when it fired, so the caller can tell "stopped" from any other
    failure. For onnxruntime, ``stop`` sets ``RunOptions.terminate``: the run ends with
    an error at the next node or loop iteration.
    """
    fired, done = threading.Event(), threading.Event()
    wall0, cpu0 = time.monotonic(), time.process_time()

    def watch() -> None:
        while not done.wait(poll):
            late = time.monotonic() - wall0 >= seconds
            if late and time.process_time() - cpu0 >= seconds:
                fired.set()
                stop()
                return

    watchdog = threading.Thread(target=watch, name="sod-train-deadline", daemon=True)
    watchdog.start()
    try:
        yield fired
    finally:
        done.set()
