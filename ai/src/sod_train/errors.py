"""The two kinds of failure every command reports, the exit codes they map to, and the
one rule for printing text that came from input.

Exit codes everywhere: 0 success, 1 a gate or check failed, 2 bad input or usage.
Raise these from library code; the CLI turns them into one clean line on stderr.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# C0 and C1 controls, DEL, the Unicode line/paragraph separators, the bidirectional
# overrides and isolates (they reorder what a terminal shows), and lone surrogates (a
# non-UTF-8 byte of a file name, decoded with surrogateescape, or a JSON "\ud800").
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # surrogateescape: show the original byte
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def display(text: object) -> str:
    """``text`` safe to print on one line: every control character (newline, CR, ESC, ...),
    bidirectional override and unencodable surrogate written as a backslash escape.

    The one rule for anything that came from input (file names, tensor names, JSON
    strings): it can neither forge a line of a report nor drive the terminal, and it
    never fails to encode. A non-UTF-8 byte of a file name shows as ``\\xff``.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", "surrogateescape")
    return _UNSAFE.sub(_escape, str(text))


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first non-empty line of an exception's message, at most ``limit`` characters.

    The one way every module turns a library's exception (onnxruntime's run long) into
    the one line a command prints.
    """
    for line in str(exc).splitlines():
        if line.strip():
            line = line.strip()
            return line if len(line) <= limit else line[: limit - 3] + "..."
    return type(exc).__name__


class SodTrainError(Exception):
    """Base class: a failure with a one-line, user-facing message.

    ``details`` are extra lines (one bad file each, say) printed indented under the
    message; each is escaped like the message, so no detail can become two lines.
    """

    exit_code = 1

    def __init__(self, message: object = "", details: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message = str(message)
        self.details = tuple(details)

    def __str__(self) -> str:
        return "\n  ".join([self.message, *self.details])


class UserInputError(SodTrainError):
    """Bad input or usage (missing file, undecodable image, bad option): exit 2."""

    exit_code = 2


class GateError(SodTrainError):
    """A quality gate or a conformance check failed: exit 1."""

    exit_code = 1


def joined(items: Sequence[object], limit: int, sep: str = "; ") -> str:
    """The first ``limit`` items joined by ``sep``, then `` (+N more)`` for the rest.

    The one way a message lists many problems, names or files on one line.
    """
    shown = sep.join(str(item) for item in items[:limit])
    return shown + (f" (+{len(items) - limit} more)" if len(items) > limit else "")
