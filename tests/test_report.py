"""``sod-train report``: the page's content, self-containment, refusals, and a real browser."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper
from PIL import Image

from sod_train.cli.main import main
from sod_train.data.synthetic import make_synthetic_duts
from sod_train.evaluate.sod_metrics import METRIC_KEYS

pytest.importorskip(
    "matplotlib", reason="matplotlib is the report extra: pip install -e '.[report]'"
)

REPO = Path(__file__).resolve().parents[1]
N_PAIRS = 14


def build_model(path: Path, weights: list[float], bias: float) -> Path:
    """A 1x1 Conv (3 -> 1) + Sigmoid with the host contract (any H, W)."""
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["input", "w", "b"], ["logit"]),
            helper.make_node("Sigmoid", ["logit"], ["saliency_map"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, "H", "W"])],
        [helper.make_tensor_value_info("saliency_map", TensorProto.FLOAT, [1, 1, "H", "W"])],
        [
            helper.make_tensor("w", TensorProto.FLOAT, [1, 3, 1, 1], weights),
            helper.make_tensor("b", TensorProto.FLOAT, [1], [bias]),
        ],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(proto, path)
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("report")
    data = make_synthetic_duts(root / "syn", n=N_PAIRS, size=(40, 56), seed=5, name="SYN")
    metrics = root / "a.metrics.json"
    history = [
        {"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, "val_iou": 1 - 0.5 / e}
        for e in range(1, 6)
    ]
    metrics.write_text(json.dumps({"model_id": "a", "training": {"history": history}}))
    return {
        "data": data,
        "a": build_model(root / "a.onnx", [0.9, -0.6, 0.4], 0.2),
        "b": build_model(root / "b.onnx", [-0.2, 0.5, 0.7], -0.1),
        "metrics": metrics,
        "root": root,
    }


def run(*args: str | Path):
    return CliRunner().invoke(main, [*map(str, args)])


def make_report(setup: dict[str, Path], out: Path, *extra: str | Path):
    args = ("--data", setup["data"], "--size", "32", "--n", "3", "--threads", "1", "--quiet")
    result = run("report", setup["a"], setup["b"], *args, "--out", out, *extra)
    assert result.exit_code == 0, result.output
    return out.read_text()


def page_data(page: str) -> dict:
    found = re.search(r'<script type="application/json" id="per-image-data">(.*?)</script>', page)
    return json.loads(found.group(1))


@pytest.fixture(scope="module")
def page(setup, tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("out") / "report.html"
    return out, make_report(setup, out, "--metrics", setup["metrics"])


def test_page_holds_the_metrics_curves_grids_and_per_image_scores(setup, page, tmp_path):
    _, text = page
    both = tmp_path / "both.json"
    scores = tmp_path / "scores.json"
    args = ("--size", "32", "--json", both, "--per-image", scores, "--quiet")
    assert run("evaluate", setup["a"], setup["b"], "--data", setup["data"], *args).exit_code == 0
    doc = json.loads(both.read_text())
    # The metrics table shows evaluate's numbers for both models.
    for label in ("a", "b"):
        row = re.search(rf"<tr><th>{label}</th>(.*?)</tr>", text).group(1)
        cells = re.findall(r"<td>(?:<b>)?([0-9.]+)", row)[: len(METRIC_KEYS)]
        assert cells == [f"{doc[label]['metrics'][k]:.4f}" for k in METRIC_KEYS]
    # The sortable table's data are evaluate's per-image scores.
    data = page_data(text)
    assert data["rows"] == json.loads(scores.read_text())
    # Curves figure, one training-curves figure, and grids of image | GT | a | b.
    assert text.count('alt="PR, F-measure and E-measure curves"') == 1
    assert text.count('alt="training curves"') == 1 and "a.metrics.json" in text
    grids = re.findall(r'<table class="grid">(.*?)</table>', text)
    assert len(grids) == 3
    for grid in grids:
        assert re.findall(r"<th>([^<]*)</th>", grid) == ["", "image", "GT", "a", "b"]
        assert grid.count("<img ") == 4 * 3
    # Worst first by MAE: the first worst image has the highest mean MAE of all.
    mean_mae = {}
    for row in data["rows"]:
        mean_mae.setdefault(row["image"], []).append(row["MAE"])
    worst = re.search(r'<td class="stem">([^<]*)<br>', grids[0]).group(1)
    assert worst == max(mean_mae, key=lambda stem: np.mean(mean_mae[stem]))


def test_page_is_self_contained(page):
    _, text = page
    refs = re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', text)
    assert refs and all(ref.startswith(("data:", "#")) for ref in refs), refs
    assert "http://" not in text and "https://" not in text and "<link" not in text
    assert "url(" not in text


def test_same_seed_same_page_other_seed_other_sample(setup, page, tmp_path):
    _, text = page
    again = make_report(setup, tmp_path / "again.html", "--metrics", setup["metrics"])
    assert again == text  # no timings or dates in the page
    other = make_report(setup, tmp_path / "other.html", "--seed", "7")

    def sample(page: str) -> list[str]:
        section = page.split("Random ")[1]
        return re.findall(r'<td class="stem">([^<]*)<br>', section)

    assert len(sample(text)) == 3 and sample(other) != sample(text)


def test_pred_dir_in_a_report_and_matplotlib_missing(setup, tmp_path, monkeypatch):
    maps = tmp_path / "maps"
    predict = ["predict", setup["data"] / "SYN-Image", "--model", setup["a"], "--out", maps]
    assert run(*predict, "--quiet").exit_code == 0
    out = tmp_path / "r.html"
    args = ("--data", setup["data"], "--n", "2", "--quiet", "--out", out)
    assert run("report", "--pred-dir", maps, *args).exit_code == 0
    assert "<tr><th>maps</th>" in out.read_text()
    # Without matplotlib: the install hint, exit 2, nothing written.
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    missing = tmp_path / "none.html"
    result = run("report", setup["a"], "--data", setup["data"], "--out", missing)
    assert result.exit_code == 2 and 'pip install -e ".[report]"' in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not missing.exists()


def test_refuses_to_write_over_its_inputs(setup, tmp_path):
    metrics = tmp_path / "m.json"
    shutil.copy(setup["metrics"], metrics)
    before = metrics.read_bytes()
    base = ("report", setup["a"], "--data", setup["data"], "--quiet")
    result = run(*base, "--metrics", metrics, "--out", metrics)
    assert result.exit_code == 2 and "refusing to overwrite the metrics JSON" in result.stderr
    assert metrics.read_bytes() == before
    model_copy = tmp_path / "a.onnx"
    shutil.copy(setup["a"], model_copy)
    result = run("report", model_copy, "--data", setup["data"], "--out", model_copy, "--quiet")
    assert result.exit_code == 2 and "refusing to overwrite the model" in result.stderr
    mask = sorted((setup["data"] / "SYN-Mask").iterdir())[0]
    result = run(*base, "--out", mask)
    assert result.exit_code == 2 and "the data file" in result.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"training": {}}')
    result = run(*base, "--metrics", bad, "--out", tmp_path / "x.html")
    assert result.exit_code == 2 and "bad.json" in result.stderr and "history" in result.stderr
    assert not (tmp_path / "x.html").exists()


# ------------------------------------------------------------------ in a real browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def chromium(*args: str | Path) -> subprocess.CompletedProcess:
    """Headless Chromium with every network request sent to a closed local port."""
    flags = [
        "--headless",
        "--no-sandbox",  # CI runs as root in a container
        "--disable-gpu",
        "--hide-scrollbars",
        "--proxy-server=127.0.0.1:9",  # any http(s) fetch fails: the page must need none
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--window-size=1200,1600",
    ]
    cmd = [CHROMIUM, *flags, *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=240, check=False)


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="needs headless Chromium on PATH: apt-get install chromium (.ci/run does)",
)
def test_page_renders_in_headless_chromium(page, tmp_path):
    out, _ = page
    dom = chromium("--dump-dom", out.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    # The inline script ran: it replaced the placeholder with the sorted, filled table.
    table = re.search(r'<table id="per-image"([^>]*)>(.*?)</table>', dom.stdout, re.S)
    assert table, dom.stdout[-2000:]
    assert f'data-rows="{2 * N_PAIRS}"' in table.group(1) and 'data-sorted="MAE"' in table.group(1)
    rows = table.group(2)
    assert rows.count("<tr>") == 1 + 2 * N_PAIRS and "needs JavaScript" not in rows
    # Nine numeric cells a row (image and model are text); MAE is the eighth.
    values = [float(v) for v in re.findall(r"<td>([0-9.]+)</td>", rows)[7::9]]
    assert len(values) == 2 * N_PAIRS and values == sorted(values, reverse=True)  # worst first
    # A screenshot of the drawn page: not blank, and with the figures in it.
    shot = tmp_path / "shot.png"
    result = chromium(f"--screenshot={shot}", out.as_uri())
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape[:2] == (1600, 1200)
    assert pixels.std() > 20 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 200
    # The curves figure is drawn (matplotlib's default blue line appears).
    blue = np.all(np.abs(pixels.astype(int) - (31, 119, 180)) < 12, axis=-1)
    assert blue.sum() > 200
