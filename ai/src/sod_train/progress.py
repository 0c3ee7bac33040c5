"""Progress bars and notes on stderr: the one way every module and command reports
progress (library code never imports click).

On a terminal a bar redraws in place at most 10 times a second; elsewhere (a log file,
a pipe) only its label is written, once, at the first step, so logs stay readable and a
command that fails before any progress prints its one error line alone. ``quiet`` hides
both.
Every note and label goes through :func:`sod_train.errors.display`, so a file name with
a newline or an escape sequence cannot forge a line or drive the terminal. A closed or
broken stderr never fails a command: progress is a courtesy.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TextIO

from sod_train.errors import display

WIDTH = 30
REDRAW_S = 0.1


def _say(text: str, stream: TextIO | None = None) -> None:
    """Write ``text`` to ``stream`` (default: stderr); a closed or broken stderr is ignored."""
    stream = stream or sys.stderr
    if stream is None:  # started with stderr closed: nowhere to say it
        return
    try:
        stream.write(text)
        stream.flush()
    except (OSError, ValueError):  # EPIPE, ENOSPC, a closed file: progress is a courtesy
        pass


def note(message: object, quiet: bool = False, details: Iterable[object] = ()) -> None:
    """One line on stderr (``details`` indented under it, one line each), unless ``quiet``."""
    if not quiet:
        _say("".join([display(message) + "\n", *(f"  {display(d)}\n" for d in details)]))


class Bar:
    """A context manager over ``iterable`` (or a bare counter) drawing a bar on stderr."""

    def __init__(
        self,
        iterable: Iterable[Any] | None = None,
        length: int | None = None,
        label: str = "",
        quiet: bool = False,
        show: Callable[[Any], str | None] | None = None,
        stream: TextIO | None = None,
    ) -> None:
        if length is None and iterable is not None and hasattr(iterable, "__len__"):
            length = len(iterable)  # type: ignore[arg-type]
        self.iterable, self.length, self.show = iterable, length, show
        self.label = display(label)
        self.stream = stream or sys.stderr
        self.hidden = quiet or self.stream is None
        self.tty = not self.hidden and _isatty(self.stream)
        self.done = 0
        self.item: Any = None
        self.started = self.drawn = 0.0
        self.labelled = self.hidden or self.tty or not self.label  # off a terminal: at step 1

    def __enter__(self) -> Bar:
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.tty:
            self._draw()
            _say("\n", self.stream)

    def __iter__(self) -> Iterator[Any]:
        if self.iterable is None:
            raise TypeError("this bar counts updates; it has no iterable")
        for item in self.iterable:
            yield item
            self.update(1, item)

    def update(self, n: int, item: Any = None) -> None:
        """Count ``n`` more steps; ``item`` is what ``show`` describes."""
        self.done += n
        self.item = item
        if not self.labelled:
            self.labelled = True
            _say(self.label + "\n", self.stream)
        if self.tty and time.perf_counter() - self.drawn >= REDRAW_S:
            self._draw()

    def _draw(self) -> None:
        self.drawn = time.perf_counter()
        parts = [self.label]
        if self.length:
            filled = min(WIDTH, WIDTH * self.done // self.length)
            parts.append(
                f"[{'#' * filled}{'-' * (WIDTH - filled)}] {100 * self.done // self.length:3d}%"
            )
        else:
            parts.append(f"{self.done:,}")
        if self.show is not None and (text := self.show(self.item)):
            parts.append(display(text))
        _say("\r" + "  ".join(p for p in parts if p) + "\x1b[K", self.stream)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (OSError, ValueError):
        return False
