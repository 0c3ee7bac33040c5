"""The two kinds of failure every command reports, and the exit codes they map to.

Exit codes everywhere: 0 success, 1 a gate or check failed, 2 bad input or usage.
Raise these from library code; the CLI turns them into one clean line on stderr.
"""

from __future__ import annotations


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
    """Base class: a failure with a one-line, user-facing message."""

    exit_code = 1


class UserInputError(SodTrainError):
    """Bad input or usage (missing file, undecodable image, bad option): exit 2."""

    exit_code = 2


class GateError(SodTrainError):
    """A quality gate or a conformance check failed: exit 1."""

    exit_code = 1
