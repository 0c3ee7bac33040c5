"""Progress bars and notes on stderr for library code, which never imports click.

On a terminal a bar redraws in place at most 10 times a second; elsewhere (a log file,
a pipe) only its label is written, once, so logs stay readable. ``quiet`` hides both.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TextIO

WIDTH = 30
REDRAW_S = 0.1


def note(message: str, quiet: bool = False) -> None:
    """One line on stderr, unless ``quiet``."""
    if not quiet:
        print(message, file=sys.stderr, flush=True)


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
        self.iterable, self.length, self.label, self.show = iterable, length, label, show
        self.stream = stream or sys.stderr
        self.hidden = quiet
        self.tty = not quiet and self.stream.isatty()
        self.done = 0
        self.item: Any = None
        self.started = self.drawn = 0.0

    def __enter__(self) -> Bar:
        self.started = time.perf_counter()
        if not self.hidden and not self.tty and self.label:
            print(self.label, file=self.stream, flush=True)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.tty:
            self._draw()
            print(file=self.stream, flush=True)

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
            parts.append(text)
        self.stream.write("\r" + "  ".join(p for p in parts if p) + "\x1b[K")
        self.stream.flush()
