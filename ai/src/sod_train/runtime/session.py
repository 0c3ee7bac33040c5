"""The one onnxruntime session builder, run with a deadline, and error policy.

onnxruntime only (no ``onnx``), so a host-side venv with numpy and onnxruntime alone
can run the golden check (``scripts/runtime_matrix.py``). Every session in the project
is built by :func:`create_session`, and every run goes through :func:`run_first`.
Each failure becomes one line (:func:`ort_message`); callers add the file name.
"""

from __future__ import annotations

import re
import time
from typing import Any

import numpy as np

from sod_train import guards
from sod_train.errors import UserInputError, first_line


class ModelTimeout(UserInputError):
    """A run was stopped at its deadline: the model will not finish on any input either."""


_ORT_NODE_ERROR = re.compile(
    r"running (\w+) node\. Name:'([^']*)' Status Message: (?:\S+:\d+ \S+ )?(.*)", re.S
)
_ORT_PREFIX = re.compile(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ")


def ort_message(exc: BaseException) -> str:
    """onnxruntime's message in one line without its boilerplate: ``Op node 'name': reason``.

    The one error policy for every onnxruntime failure: loading, running, describing.
    """
    match = _ORT_NODE_ERROR.search(str(exc))
    if not match:
        return first_line(RuntimeError(_ORT_PREFIX.sub("", str(exc).strip())), 240)
    op, node, reason = match.groups()
    return first_line(RuntimeError(f"{op} node '{node}': {reason}"), 240)


def _session_options(threads: int | None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4  # failures are reported by us, once, not by ORT's logger
    # Idle intra-op threads sleep instead of spinning after each run: a video loop decodes
    # the next frame on the core a spinning thread would hold (docs/host.md says the same
    # to C hosts).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads is not None:
        if not 1 <= threads <= guards.MAX_THREADS:
            raise UserInputError(f"threads {threads}: must be 1 to {guards.MAX_THREADS}")
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return options


def create_session(data: bytes, threads: int | None = None) -> Any:
    """An onnxruntime CPU session from serialized bytes; UserInputError (no path) if it fails.

    ``threads`` None keeps onnxruntime's default (all physical cores).
    """
    import onnxruntime as ort

    ort.set_default_logger_severity(4)  # failures are reported by us, once
    options = _session_options(threads)
    try:
        return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises many types (Fail, InvalidGraph, ...)
        raise UserInputError(f"onnxruntime refuses the model ({ort_message(exc)})") from None


def session_io(session: Any) -> tuple[str, list[Any], str]:
    """(input name, input shape, output type) as onnxruntime reports them; UserInputError."""
    try:
        inputs, outputs = session.get_inputs(), session.get_outputs()
        return inputs[0].name, list(inputs[0].shape), outputs[0].type
    except Exception as exc:  # UnicodeDecodeError, IndexError
        raise UserInputError(f"onnxruntime cannot describe the model ({first_line(exc)})") from None


def run_options() -> Any:
    """Fresh onnxruntime RunOptions (log level quiet), for :func:`deadline`."""
    import onnxruntime as ort

    options = ort.RunOptions()
    options.log_severity_level = 4
    return options


def deadline(options: Any, seconds: float | None = None) -> Any:
    """A context that stops a run using ``options`` after ``seconds`` (MAX_RUN_SECONDS)."""
    limit = guards.MAX_RUN_SECONDS if seconds is None else seconds
    return guards.stop_after(limit, lambda: setattr(options, "terminate", True))


def run_timed(session: Any, input_name: str, x: np.ndarray) -> tuple[Any, float]:
    """(the session's first output for ``x``, seconds spent in onnxruntime's run alone).

    Any failure is one UserInputError line; a run still going after MAX_RUN_SECONDS is
    stopped and raises :class:`ModelTimeout`. The clock starts inside the deadline's
    context, so ``bench`` times the model and not the watchdog.
    """
    options = run_options()
    size = "x".join(str(d) for d in x.shape[2:])
    with deadline(options) as stopped:
        try:
            start = time.perf_counter()
            out = session.run(None, {input_name: x}, options)[0]
            return out, time.perf_counter() - start
        except Exception as exc:  # onnxruntime errors, MemoryError, ...
            if stopped.is_set():
                raise ModelTimeout(
                    f"model still running after {guards.MAX_RUN_SECONDS:g} s at {size}; "
                    "stopped (a model that never finishes?)"
                ) from None
            raise UserInputError(f"model failed at {size} ({ort_message(exc)})") from None


def run_first(session: Any, input_name: str, x: np.ndarray) -> Any:
    """The session's first output for ``x``, as onnxruntime returns it (:func:`run_timed`)."""
    return run_timed(session, input_name, x)[0]
