"""The two kinds of failure every command reports, and the exit codes they map to.

Exit codes everywhere: 0 success, 1 a gate or check failed, 2 bad input or usage.
Raise these from library code; the CLI turns them into one clean line on stderr.
"""

from __future__ import annotations


class SodTrainError(Exception):
    """Base class: a failure with a one-line, user-facing message."""

    exit_code = 1


class UserInputError(SodTrainError):
    """Bad input or usage (missing file, undecodable image, bad option): exit 2."""

    exit_code = 2


class GateError(SodTrainError):
    """A quality gate or a conformance check failed: exit 1."""

    exit_code = 1
