"""Training-curve figure and PNG (sod_train.evaluate.curves): content, determinism, input
edge cases, atomic writes, and the message when matplotlib is missing."""

from __future__ import annotations

import json
import struct
import sys
import zlib
from pathlib import Path

import pytest

from sod_train.errors import UserInputError
from sod_train.evaluate import curves

REPO = Path(__file__).resolve().parents[1]
RELEASE_METRICS = REPO / "model" / "tiny" / "sod_tiny_v1.metrics.json"
MPL_REASON = "matplotlib is the report extra: pip install -e '.[report]'"


def _history() -> list[dict]:
    return json.loads(RELEASE_METRICS.read_text())["training"]["history"]


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, payload) of every chunk, checking the signature and each CRC."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) == crc
        chunks.append((kind, body))
        pos += 12 + length
    return chunks


def _legend(ax) -> list[str]:
    legend = ax.get_legend()
    return [] if legend is None else [t.get_text() for t in legend.get_texts()]


def test_figure_plots_losses_and_iou_per_epoch() -> None:
    pytest.importorskip("matplotlib", reason=MPL_REASON)
    history = _history()
    fig = curves.training_curves_figure(history)
    loss_ax, iou_ax = fig.axes
    assert _legend(loss_ax) == ["train loss", "validation loss"]
    assert _legend(iou_ax) == ["validation IoU (per image)", "per batch"]
    train_line = loss_ax.get_lines()[0]
    assert list(train_line.get_xdata()) == [row["epoch"] for row in history]
    assert list(train_line.get_ydata()) == [row["train_loss"] for row in history]
    assert list(iou_ax.get_lines()[0].get_ydata()) == [row["val_iou"] for row in history]


def test_missing_keys_leave_series_out_or_gaps() -> None:
    pytest.importorskip("matplotlib", reason=MPL_REASON)
    history = [
        {"epoch": 1, "train_loss": 1.0, "val_iou": 0.5},
        {"epoch": 2, "train_loss": 0.8},  # no val_iou this epoch: a gap
        {"train_loss": 0.7, "val_iou": None},  # no epoch: its position, 3
    ]
    fig = curves.training_curves_figure(history)
    loss_ax, iou_ax = fig.axes
    assert _legend(loss_ax) == ["train loss"]  # val_loss never recorded
    assert _legend(iou_ax) == ["validation IoU (per image)"]
    (iou_line,) = iou_ax.get_lines()
    ys = list(iou_line.get_ydata())
    assert ys[0] == 0.5 and ys[1] != ys[1] and ys[2] != ys[2]  # NaN gaps
    assert list(loss_ax.get_lines()[0].get_xdata()) == [1, 2, 3]


def test_empty_history_gives_marked_empty_panels() -> None:
    pytest.importorskip("matplotlib", reason=MPL_REASON)
    fig = curves.training_curves_figure([])
    for ax in fig.axes:
        assert ax.get_lines() == []
        assert "not recorded" in [t.get_text() for t in ax.texts]


def test_not_a_list_is_a_user_error() -> None:
    with pytest.raises(UserInputError, match="training history"):
        curves.training_curves_figure({"epoch": 1})  # type: ignore[arg-type]


def test_png_bytes_are_deterministic_and_carry_no_stamp(tmp_path: Path) -> None:
    mpl = pytest.importorskip("matplotlib", reason=MPL_REASON)
    history = _history()
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    curves.save_training_curves(history, a)
    # A user's style must not leak into the picture.
    with mpl.rc_context({"lines.linewidth": 7.0, "axes.facecolor": "black", "font.size": 20}):
        curves.save_training_curves(history, b)
    assert a.read_bytes() == b.read_bytes()
    chunks = _png_chunks(a.read_bytes())
    kinds = [kind for kind, _ in chunks]
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND"
    assert b"tIME" not in kinds
    # One text chunk: the matplotlib release, nothing that changes from run to run.
    texts = [body for kind, body in chunks if kind in (b"tEXt", b"iTXt", b"zTXt")]
    assert texts == [f"Software\0{curves.SOFTWARE_PREFIX}{mpl.__version__}".encode()]
    assert curves.drawn_with(a.read_bytes()) == mpl.__version__
    assert curves.drawn_with(b"not a png") is None
    width, height = struct.unpack(">II", chunks[0][1][:8])
    assert (width, height) == (
        round(curves.SIZE_IN[0] * curves.DPI),
        round(curves.SIZE_IN[1] * curves.DPI),
    )


def test_different_history_different_png() -> None:
    pytest.importorskip("matplotlib", reason=MPL_REASON)
    history = _history()
    changed = [dict(row) for row in history]
    changed[-1]["val_iou"] = 0.1
    assert curves.render_training_curves(history) != curves.render_training_curves(changed)


def test_failed_render_keeps_existing_image(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("matplotlib", reason=MPL_REASON)
    out = tmp_path / "curves.png"
    out.write_bytes(b"old image")

    def boom(history):
        raise RuntimeError("plot failed")

    monkeypatch.setattr(curves, "training_curves_figure", boom)
    with pytest.raises(RuntimeError):
        curves.save_training_curves(_history(), out)
    assert out.read_bytes() == b"old image"
    assert [p.name for p in tmp_path.iterdir()] == ["curves.png"]  # no temp file left


def test_missing_matplotlib_says_how_to_install(tmp_path: Path, monkeypatch) -> None:
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    out = tmp_path / "curves.png"
    with pytest.raises(UserInputError, match=r'pip install -e "\.\[report\]"'):
        curves.save_training_curves(_history(), out)
    assert not out.exists()
