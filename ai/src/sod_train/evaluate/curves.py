"""Training curves from a metrics JSON's ``training.history``: a figure and a PNG.

The card and the HTML report show the same picture: train and validation loss per epoch
on the left, validation IoU on the right. matplotlib is an optional extra (``report``),
imported only inside the functions that plot. The PNG is reproducible: the same history
gives the same bytes with the same matplotlib release (matplotlib's defaults, not the
user's matplotlibrc; no date in the file, and the release named in its one text chunk),
so a committed image diffs cleanly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sod_train import atomicio
from sod_train.errors import UserInputError
from sod_train.evaluate.plots import default_style, require_matplotlib

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SOFTWARE_PREFIX = "sod-train training curves, matplotlib "
DPI = 100
SIZE_IN = (9.0, 3.4)

# (history key, legend label) per panel; a key missing from every epoch is left out.
LOSS_SERIES = (("train_loss", "train loss"), ("val_loss", "validation loss"))
IOU_SERIES = (("val_iou", "validation IoU (per image)"), ("val_iou_batch", "per batch"))


# Keys of a training.history row that must be numbers when present (what the curves plot).
HISTORY_NUMBERS = (
    "epoch",
    "train_loss",
    "val_loss",
    "val_iou",
    "val_iou_batch",
    "lr",
    "seconds",
    "img_per_s",
    "crop",
)


def history_problems(history: Any, where: str = "training.history") -> list[str]:
    """Problems with a training history read from any JSON (the report takes metrics files
    that need not pass the whole schema): a list of objects whose plotted keys are
    numbers, never strings or booleans. Each line names the key path."""
    if not isinstance(history, list):
        return [f"{where}: expected a list of epoch objects, got {type(history).__name__}"]
    problems = []
    for i, row in enumerate(history):
        if not isinstance(row, dict):
            problems.append(f"{where}[{i}]: expected an epoch object, got {type(row).__name__}")
            continue
        for key in HISTORY_NUMBERS:
            value = row.get(key)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float)
            ):
                problems.append(f"{where}[{i}].{key}: {value!r:.40} is not a number")
    return problems


PURPOSE = "plotting training curves"


def _matplotlib() -> Any:
    """The matplotlib module (:func:`sod_train.evaluate.plots.require_matplotlib`)."""
    return require_matplotlib(PURPOSE)


def _defaults() -> Any:
    """matplotlib's built-in style (:func:`sod_train.evaluate.plots.default_style`)."""
    return default_style(PURPOSE)


# Largest |value| drawn as it is; a larger finite one (a loss of 1e308) is drawn at this
# bound, so the axis range and its ticks stay computable (matplotlib's tick arithmetic
# overflows near the float limit).
PLOT_LIMIT = 1e12


def _value(row: Any, key: str) -> float:
    """A finite number from one history row (clipped to +-PLOT_LIMIT), NaN (a gap in the
    line) otherwise."""
    value = row.get(key) if isinstance(row, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    value = float(value)
    if not math.isfinite(value):
        return math.nan
    return max(-PLOT_LIMIT, min(PLOT_LIMIT, value))


def _epochs(history: Sequence[Any]) -> list[float]:
    """Each row's ``epoch``, or its 1-based position where the row has none."""
    out = []
    for i, row in enumerate(history, 1):
        epoch = _value(row, "epoch")
        out.append(float(i) if math.isnan(epoch) else epoch)
    return out


def _panel(ax: Any, epochs: list[float], history: Sequence[Any], series: Any, ylabel: str) -> None:
    drawn = 0
    for key, label in series:
        ys = [_value(row, key) for row in history]
        if all(math.isnan(y) for y in ys):
            continue
        ax.plot(epochs, ys, marker="o" if len(ys) < 3 else None, markersize=3, label=label)
        drawn += 1
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    if drawn:
        ax.legend(loc="best", fontsize="small")
    else:
        ax.text(0.5, 0.5, "not recorded", ha="center", va="center", transform=ax.transAxes)


def _crop_changes(ax: Any, epochs: list[float], history: Sequence[Any]) -> None:
    """Dotted lines where the training crop changes (progressive resizing), labelled."""
    previous = None
    for epoch, row in zip(epochs, history, strict=True):
        crop = row.get("crop") if isinstance(row, dict) else None
        if previous is not None and crop is not None and crop != previous:
            ax.axvline(epoch - 0.5, color="grey", linestyle=":", linewidth=1)
            ax.annotate(
                f"crop {crop}",
                (epoch - 0.5, 1.0),
                xycoords=("data", "axes fraction"),
                xytext=(2, -10),
                textcoords="offset points",
                fontsize="x-small",
                color="grey",
            )
        previous = crop if crop is not None else previous


def training_curves_figure(history: list[dict[str, Any]]) -> Figure:
    """A two-panel figure: train/validation loss and validation IoU per epoch.

    ``history`` is ``training.history`` of a metrics JSON (rows with ``epoch``,
    ``train_loss``, ``val_loss``, ``val_iou``, ...). Missing keys or values leave a series
    out or a gap in it; an empty history gives empty panels marked "not recorded".
    Built without pyplot, so no global figure state and no GUI backend is involved.
    """
    if not isinstance(history, list):
        raise UserInputError(f"training history: expected a list of epochs, got {history!r:.60}")
    _matplotlib()
    from matplotlib.figure import Figure

    epochs = _epochs(history)
    with _defaults():
        fig = Figure(figsize=SIZE_IN, dpi=DPI, layout="constrained")
        loss_ax, iou_ax = fig.subplots(1, 2)
        _panel(loss_ax, epochs, history, LOSS_SERIES, "loss")
        _panel(iou_ax, epochs, history, IOU_SERIES, "IoU at threshold 0.5")
        for ax in (loss_ax, iou_ax):
            _crop_changes(ax, epochs, history)
            ax.xaxis.get_major_locator().set_params(integer=True)
            if len(set(epochs)) == 1:  # one epoch: whole-number ticks around it, not ±0.05
                ax.set_xlim(epochs[0] - 1, epochs[0] + 1)
        loss_ax.set_title("loss", fontsize="medium")
        iou_ax.set_title("validation IoU", fontsize="medium")
    return fig


def render_training_curves(history: list[dict[str, Any]]) -> bytes:
    """The PNG bytes of :func:`training_curves_figure`, reproducible for a given history."""
    import io

    with _defaults():
        fig = training_curves_figure(history)
        buf = io.BytesIO()
        # Agg writes no date; the one text chunk names the matplotlib release (pixels may
        # change between releases), so the bytes depend on the history and that alone.
        software = f"{SOFTWARE_PREFIX}{_matplotlib().__version__}"
        fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": software})
    return buf.getvalue()


def drawn_with(png: bytes) -> str | None:
    """The matplotlib release a PNG from :func:`render_training_curves` was drawn with
    (its ``Software`` text chunk), or None for any other file. A committed image can
    only be reproduced byte for byte by that release."""
    pos = 8 if png[:8] == b"\x89PNG\r\n\x1a\n" else len(png)
    while pos + 8 <= len(png):
        length = int.from_bytes(png[pos : pos + 4], "big")
        kind, body = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        if kind == b"tEXt" and body.startswith(b"Software\0"):
            text = body[len(b"Software\0") :].decode("latin-1")
            return text.removeprefix(SOFTWARE_PREFIX) if text.startswith(SOFTWARE_PREFIX) else None
        if kind == b"IDAT":  # text chunks precede the image data
            return None
        pos += 12 + length
    return None


def save_training_curves(history: list[dict[str, Any]], path: Path) -> None:
    """Write the training-curves PNG to ``path`` atomically (rendered before anything is
    written, so a plotting failure leaves an existing image untouched)."""
    atomicio.write_bytes(path, render_training_curves(history))
