"""Figures of the evaluation: PR, F-measure and E-measure curves, as PNG or SVG bytes.

matplotlib is an optional extra (``report``): it is imported only inside the functions
that plot, and :func:`require_matplotlib` turns its absence into the one-line install
hint. Figures are built without pyplot (no global state, no GUI backend) in
matplotlib's default style, whatever the user's matplotlibrc says.
"""

from __future__ import annotations

import importlib.util
import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sod_train.errors import UserInputError

INSTALL_HINT = 'pip install -e ".[report]"'
DPI = 100


def has_matplotlib() -> bool:
    """Whether matplotlib can be imported (without importing it)."""
    return importlib.util.find_spec("matplotlib") is not None


def require_matplotlib(purpose: str = "the report") -> Any:
    """The matplotlib module; UserInputError (exit 2) naming ``purpose`` and how to install
    it, if it cannot be imported. The one check every figure goes through."""
    try:
        import matplotlib
    except ImportError:
        raise UserInputError(f"{purpose} needs matplotlib: {INSTALL_HINT}") from None
    return matplotlib


@contextmanager
def default_style(purpose: str = "the report") -> Iterator[None]:
    """matplotlib's built-in style, whatever the user's matplotlibrc says, so a figure (and
    its bytes) depend on its data alone."""
    require_matplotlib(purpose)
    import matplotlib.style

    with matplotlib.style.context("default"):
        yield


def curves_png(curves: dict[str, dict[str, Any]]) -> bytes:
    """Three panels for every model: PR curve, F-measure and E-measure over thresholds.

    ``curves`` maps a model label to the ``curves`` of its evaluate result (arrays over
    thresholds 0..255). The PR curve is precision against recall, one point per threshold.
    """
    return curves_figure_bytes(curves, "png")


def curves_figure_bytes(
    curves: dict[str, dict[str, Any]], fmt: str = "png", title: str | None = None
) -> bytes:
    """:func:`curves_png`'s figure as ``fmt`` ("png" or "svg"), with an optional title.

    No date or software stamp in either format, so the same curves give the same bytes
    with the same matplotlib release.
    """
    from matplotlib.figure import Figure

    with default_style():
        fig = Figure(figsize=(12.0, 3.8), dpi=DPI, layout="constrained")
        if title:
            fig.suptitle(title)
        pr_ax, f_ax, e_ax = fig.subplots(1, 3)
        for label, curve in curves.items():
            pr_ax.plot(curve["recall"], curve["precision"], label=label)
            f_ax.plot(curve["thresholds"], curve["fmeasure"], label=label)
            e_ax.plot(curve["thresholds"], curve["emeasure"], label=label)
        pr_ax.set(xlabel="recall", ylabel="precision", title="precision-recall")
        pr_ax.set_xlim(0, 1.02)
        pr_ax.set_ylim(0, 1.02)
        f_ax.set(xlabel="threshold", ylabel="F-beta (beta^2 = 0.3)", title="F-measure")
        e_ax.set(xlabel="threshold", ylabel="E-measure", title="E-measure")
        for ax in (pr_ax, f_ax, e_ax):
            ax.grid(True, alpha=0.3)
            ax.legend(loc="best", fontsize="small")
        for ax in (f_ax, e_ax):
            ax.set_xlim(0, 255)
        buf = io.BytesIO()
        stamp: dict[str, Any] = (
            {"Software": None} if fmt == "png" else {"Date": None, "Creator": None}
        )
        if fmt == "svg":  # stable element ids; text kept as text, editable in a paper
            svg = {"svg.hashsalt": "sod-train", "svg.fonttype": "none"}
            require_matplotlib().rcParams.update(svg)
        fig.savefig(buf, format=fmt, dpi=DPI, metadata=stamp)
    return buf.getvalue()
