"""The library's progress bar and notes: stderr only, label once off a terminal, quiet."""

from __future__ import annotations

import io
import sys

from sod_train import progress


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_off_a_terminal_only_the_label_is_written_once():
    out = io.StringIO()
    with progress.Bar(range(5), label="decode train", stream=out) as bar:
        items = list(bar)
    assert items == [0, 1, 2, 3, 4]
    assert out.getvalue() == "decode train\n"


def test_quiet_writes_nothing_and_still_yields_everything():
    out = Tty()
    with progress.Bar(range(3), label="x", quiet=True, stream=out) as bar:
        assert list(bar) == [0, 1, 2]
    assert out.getvalue() == ""


def test_on_a_terminal_the_bar_ends_at_100_percent_with_the_status(monkeypatch):
    out = Tty()
    monkeypatch.setattr(progress, "REDRAW_S", 0.0)
    with progress.Bar(
        length=4, label="epoch 1/2", show=lambda item: f"at {item}", stream=out
    ) as bar:
        for i in range(4):
            bar.update(1, i)
    last = out.getvalue().split("\r")[-1]
    assert last.startswith("epoch 1/2  [" + "#" * progress.WIDTH + "] 100%  at 3")
    assert out.getvalue().endswith("\n")


def test_note_goes_to_stderr_unless_quiet(capsys):
    progress.note("resumed from x")
    progress.note("hidden", quiet=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "resumed from x\n"


def test_a_note_from_input_stays_one_line_and_escaped(capsys):
    progress.note("wrote a\nerror: forged \x1b[2J.png", details=["b\rc", "d"])
    assert capsys.readouterr().err == "wrote a\\nerror: forged \\x1b[2J.png\n  b\\rc\n  d\n"


def test_a_bar_label_is_escaped_too():
    out = io.StringIO()
    with progress.Bar(range(1), label="x\ny", stream=out) as bar:
        list(bar)
    assert out.getvalue() == "x\\ny\n"


def test_a_broken_or_missing_stderr_never_fails_a_note(monkeypatch):
    class Broken(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stderr", Broken())
    progress.note("still fine")
    with progress.Bar(range(2), label="bar") as bar:
        assert list(bar) == [0, 1]
    monkeypatch.setattr(sys, "stderr", None)
    progress.note("nowhere to go")  # not to stdout either


def test_joined_lists_the_first_items_and_counts_the_rest():
    from sod_train.errors import joined

    assert joined(["a", "b", "c"], 3) == "a; b; c"
    assert joined(["a", "b", "c", "d"], 2) == "a; b (+2 more)"
    assert joined(["x", "y"], 1, ", ") == "x (+1 more)"
    assert joined([], 3) == ""
