"""Standard input and output for every command: one writer for stdout (the ``-`` of any
OUTPUT), and one policy for a stream that is closed, full or cut.

* **Closed streams.** A command started with stdin or stdout closed (``<&-``, ``>&-``)
  gets a stand-in that refuses to be used, in one line, exit 2: output that cannot
  arrive is never a silent exit 0. The closed descriptors are pointed at ``/dev/null``,
  so a file the command opens can never take descriptor 1 and receive stray output.
* **Failed output.** A full disk (ENOSPC), a file size limit (EFBIG, ``ulimit -f``), a
  quota, or a reader that went away (EPIPE: ``| head``) is one line and exit 1 (see
  :func:`output_error`). After a failure on stdout it is pointed at ``/dev/null``, so
  the interpreter's own last flush cannot print a second error.
* **Text.** All text a command writes to stdout (``click.echo``, ``print``, :func:`echo`)
  goes through one stream that :func:`install` puts in place: every control character
  but the newline is escaped (:func:`sod_train.errors.display`), so no name from input
  can move the cursor, clear the screen or rewrite a line, and nothing fails to encode.
  :func:`echo` also escapes newlines: one record, one line, whatever a name holds.
  Bytes (a PNG on ``-``) go through :func:`write_stdout` untouched.

The CLI calls :func:`install` once at start-up (``sod_train.cli.main``).
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import sys
from typing import Any, BinaryIO, NoReturn

from sod_train.errors import GateError, SodTrainError, UserInputError, display

STDIO = "-"  # as a file argument: stdin (INPUT) or stdout (OUTPUT), see is_stdio

# errno values that mean "the output did not arrive", whatever file was being written.
OUTPUT_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EPIPE, errno.EROFS, errno.EIO}
)
_REASONS = {
    errno.ENOSPC: "no space left on device",
    errno.EFBIG: "file too large (over a file size limit such as ulimit -f)",
    errno.EDQUOT: "disk quota exceeded",
    errno.EPIPE: "the reader went away before all of it was written (broken pipe)",
    errno.EROFS: "read-only file system",
    errno.EIO: "input/output error",
}


class _Closed(io.TextIOBase):
    """Stands in for a standard stream that was closed when the process started."""

    def __init__(self, name: str, hint: str) -> None:
        self.name, self.hint = name, hint

    @property
    def buffer(self) -> _Closed:  # binary users (sys.stdout.buffer) get the same refusal
        return self

    def _refuse(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise UserInputError(f"{self.name} is closed: {self.hint}")

    read = readline = write = _refuse  # type: ignore[assignment]

    def readable(self) -> bool:
        return self.name == "stdin"

    def writable(self) -> bool:
        return self.name == "stdout"

    def isatty(self) -> bool:
        return False

    def flush(self) -> None:
        pass

    def fileno(self) -> int:
        raise OSError(errno.EBADF, f"{self.name} is closed")


class _EscapingText:
    """sys.stdout as commands see it: text written is escaped line by line (newlines kept);
    everything else (``buffer``, ``fileno``, ``flush``, ...) is the real stream's."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write("\n".join(display(line) for line in text.split("\n")))
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def is_stdio(path: object) -> bool:
    """Whether a file argument is ``-`` (stdin for an INPUT, stdout for an OUTPUT)."""
    return path is not None and os.fspath(path) == STDIO  # type: ignore[arg-type]


def _fd_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def install() -> None:
    """Make the standard streams safe for a command (see the module doc); call once."""
    for fd in (0, 1, 2):
        if not _fd_open(fd):  # keep the number taken: no file we open may become fd 1
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    if sys.stdin is None:
        sys.stdin = _Closed("stdin", "nothing can be read from it (pipe or redirect input)")
    if sys.stdout is None:
        sys.stdout = _Closed("stdout", "the output cannot be written (redirect it to a file)")
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    _buffer_stdout()
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(OSError, ValueError):
                reconfigure(errors="backslashreplace")
    if not isinstance(sys.stdout, (_Closed, _EscapingText)):
        sys.stdout = _EscapingText(sys.stdout)


def _buffer_stdout() -> None:
    """Give an unbuffered stdout (``PYTHONUNBUFFERED=1``, ``python -u``) a buffered writer.

    Unbuffered, ``sys.stdout.buffer`` is the raw file: one ``write`` is one system call,
    and when the reader goes away midway the call returns a short count that Python
    drops, so a cut pipe lost the rest of a large output with exit 0. A BufferedWriter
    writes until all has gone or raises (EPIPE). Line buffering keeps output prompt.
    """
    stream = sys.stdout
    if not isinstance(getattr(stream, "buffer", None), io.RawIOBase):
        return
    encoding, errors = stream.encoding, stream.errors
    raw = stream.detach()  # the old wrapper must not close fd 1 when it is collected
    sys.stdout = io.TextIOWrapper(
        io.BufferedWriter(raw), encoding=encoding, errors=errors, line_buffering=True
    )


def output_error(exc: OSError, where: object = None) -> GateError:
    """The one line for an output that did not arrive (``where`` names it; default: the
    file the error names, else stdout)."""
    name = where if where is not None else (exc.filename or "stdout")
    reason = _REASONS.get(exc.errno or 0) or (exc.strerror or str(exc)).lower()
    return GateError(f"{display(name)}: cannot write ({reason}); the output is incomplete")


def is_output_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is an output that did not arrive (full, too large, cut pipe)."""
    return isinstance(exc, OSError) and exc.errno in OUTPUT_ERRNOS


def silence_stdout() -> None:
    """Point descriptor 1 at /dev/null (after stdout failed), so nothing fails again at exit."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.close(null)
    except OSError:
        pass


def _stdout_failed(exc: OSError) -> SodTrainError:
    silence_stdout()
    return output_error(exc, "stdout")


def stdout_binary() -> BinaryIO:
    """sys.stdout's byte stream (UserInputError, exit 2, if stdout is closed)."""
    stream = sys.stdout
    if isinstance(stream, _Closed):
        stream._refuse()
    return stream.buffer


def stdin_binary() -> BinaryIO:
    """sys.stdin's byte stream (UserInputError, exit 2, if stdin is closed)."""
    stream = sys.stdin
    if isinstance(stream, _Closed):
        stream._refuse()
    return stream.buffer


def write_stdout(data: bytes | str) -> None:
    """Write ``data`` to stdout whole and flush it; GateError (exit 1) if it did not arrive.

    The one way a command writes its output to stdout. ``str`` is written as it is (the
    caller escaped what came from input; :func:`echo` does).
    """
    try:
        if isinstance(data, bytes):
            sys.stdout.flush()
            out = stdout_binary()
            out.write(data)
            out.flush()
        else:
            if isinstance(sys.stdout, _Closed):
                sys.stdout._refuse()
            sys.stdout.write(data)
            sys.stdout.flush()
    except OSError as exc:
        raise _stdout_failed(exc) from None


def flush_stdout() -> None:
    """Flush whatever a command left in stdout's buffer; GateError if it did not arrive."""
    stream = sys.stdout
    if stream is None or isinstance(stream, _Closed):
        return
    try:
        stream.flush()
    except OSError as exc:
        raise _stdout_failed(exc) from None
    except ValueError:  # already closed by the command
        pass


def echo(line: object = "") -> None:
    """Write one line to stdout; control characters in it are escaped (it stays one line)."""
    write_stdout(display(line) + "\n")


def echo_block(text: str) -> None:
    """Write ``text`` (a table, a report) to stdout: its own line breaks are kept, every
    other control character is escaped."""
    write_stdout("\n".join(display(line) for line in text.split("\n")) + "\n")
