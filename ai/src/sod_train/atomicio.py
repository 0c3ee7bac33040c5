"""Atomic file output: write to a temp file in the destination folder, then rename.

A reader never sees a half-written file, and a failure leaves whatever was at the
destination untouched. A write that fails for lack of room (a full disk, a file size
limit, a quota) is one :class:`~sod_train.errors.GateError` naming the destination, and
the temp file is gone. Text is UTF-8 with ``surrogateescape``, so a non-UTF-8 file name
written into a file keeps its own bytes. For ``-`` (stdout) see :mod:`sod_train.stdio`.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a temp path next to ``dest``; on success rename it onto ``dest``.

    On any exception the temp file is removed and ``dest`` is left as it was. A folder
    that cannot be made or written (a parent that is a file, no permission) is a
    UserInputError naming ``dest``, not a traceback.
    """
    from sod_train.errors import UserInputError

    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=suffix + ".tmp", dir=dest.parent)
    except OSError as exc:
        reason = (
            "a parent is a file, not a folder"
            if isinstance(exc, (FileExistsError, NotADirectoryError))
            else (exc.strerror or str(exc)).lower()
        )
        raise UserInputError(f"{dest}: cannot write ({reason})") from None
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give what open() would
    try:
        yield tmp_path
        os.replace(tmp_path, dest)
    except OSError as exc:
        from sod_train.stdio import is_output_failure, output_error

        if is_output_failure(exc):
            raise output_error(exc, dest) from None
        raise
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_open(dest: str | os.PathLike[str], mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temp file next to ``dest`` for writing; rename it onto ``dest`` on success."""
    text = {} if "b" in mode else {"encoding": "utf-8", "errors": "surrogateescape"}
    with atomic_path(dest) as tmp, open(tmp, mode, **text) as fh:
        yield fh
        fh.flush()
        os.fsync(fh.fileno())


def write_bytes(dest: str | os.PathLike[str], data: bytes) -> None:
    """Atomically write ``data`` to ``dest``."""
    with atomic_open(dest, "wb") as fh:
        fh.write(data)


def write_json(dest: str | os.PathLike[str], obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON with a trailing newline.

    Keys keep the insertion order the caller built, so two runs diff cleanly.
    """
    with atomic_open(dest, "w") as fh:
        json.dump(obj, fh, indent=2, allow_nan=False)
        fh.write("\n")


def ensure_writable_dir(folder: str | os.PathLike[str], what: str) -> None:
    """Create ``folder`` if needed and prove we can write there; UserInputError if not.

    Called before long work (training) so a bad output path fails in a second, not
    after an hour.
    """
    from sod_train.errors import UserInputError

    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise UserInputError(f"{folder}: cannot write the {what} there ({exc.strerror})") from None
