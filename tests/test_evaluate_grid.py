"""evaluate over many data sets and methods in one run (issue 24): rows, tables, figures."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from conftest import REPO, SHARED
from sod_train.cli.main import main
from sod_train.contract import LOWER_IS_BETTER
from sod_train.data.synthetic import make_synthetic_duts
from sod_train.evaluate.sod_metrics import METRIC_KEYS

SMOKE = REPO / "model/tiny/sod_tiny_smoke_cpu_v0.onnx"
V1 = REPO / "model/tiny/sod_tiny_v1.onnx"
ANCHOR = SHARED / "anchor/saliency_student_v1.onnx"
SIZE = "64"  # a multiple of 8: the anchor runs only there


@pytest.fixture(scope="module")
def two_sets(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two small synthetic data sets, named ECSSD and HKU-IS by their folder layout."""
    base = tmp_path_factory.mktemp("sets")
    return [
        make_synthetic_duts(base / "ecssd", n=5, size=(40, 52), seed=1, name="ECSSD"),
        make_synthetic_duts(base / "hku", n=4, size=(36, 44), seed=2, name="HKU-IS"),
    ]


def invoke(*args: object):
    return CliRunner().invoke(main, ["evaluate", *map(str, args)])


def md_rows(table: str) -> list[list[str]]:
    lines = [line for line in table.splitlines() if line.startswith("|")]
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]


def bold_expected(doc: dict) -> set[tuple[str, str, str]]:
    """(data set, method, metric) of each best value at 4 decimals, from the JSON."""
    best = set()
    for dataset, by_method in doc.items():
        for key in METRIC_KEYS:
            shown = {m: round(r["metrics"][key], 4) for m, r in by_method.items()}
            target = (min if key in LOWER_IS_BETTER else max)(shown.values())
            best |= {(dataset, m, key) for m, v in shown.items() if v == target}
    return best


@pytest.mark.skipif(
    not ANCHOR.exists(), reason=f"needs {ANCHOR} (the anchor model); see README 'Test data'"
)
def test_two_data_sets_three_models_six_rows_latex_and_figures(two_sets, tmp_path):
    data = [arg for root in two_sets for arg in ("--data", root)]
    out, plots, doc_path = tmp_path / "table.tex", tmp_path / "figs", tmp_path / "all.json"
    result = invoke(
        SMOKE, V1, ANCHOR, *data, "--size", SIZE, "--table", "latex", "--out", out,
        "--plots", plots, "--json", doc_path, "--quiet",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads(doc_path.read_text())
    assert list(doc) == ["ECSSD", "HKU-IS"]
    methods = ["sod_tiny_smoke_cpu_v0", "sod_tiny_v1", "saliency_student_v1"]
    assert all(list(doc[d]) == methods for d in doc)
    assert [doc["ECSSD"][m]["n"] for m in methods] == [5, 5, 5]

    printed = invoke(SMOKE, V1, ANCHOR, *data, "--size", SIZE, "--table", "md", "--quiet")
    assert printed.exit_code == 0, printed.output
    assert [(r[0], r[1]) for r in md_rows(printed.stdout)] == [
        (m, d) for d in ("ECSSD", "HKU-IS") for m in methods
    ]  # six rows on stdout, the same scores as the JSON
    assert printed.stdout.count("**") == 2 * len(bold_expected(doc))

    tex = out.read_text()
    body = [line for line in tex.splitlines() if line.endswith("\\\\")]
    assert len(body) == 1 + 6  # header + one row per method x data set
    assert all(len(line[:-2].split(" & ")) == 3 + len(METRIC_KEYS) for line in body)
    assert "sod\\_tiny\\_v1 & HKU-IS & 4 &" in tex  # names escaped, n per data set
    assert tex.count("\\begin{tabular}") == tex.count("\\end{tabular}") == 1
    assert tex.count("\\textbf{") == len(bold_expected(doc))
    engine = shutil.which("pdflatex") or shutil.which("tectonic")
    if engine:  # compile it for real where a TeX engine is installed
        (tmp_path / "doc.tex").write_text(
            "\\documentclass{article}\\begin{document}\n" + tex + "\\end{document}\n"
        )
        run = subprocess.run(
            [engine, "doc.tex"] if engine.endswith("tectonic") else
            [engine, "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
            cwd=tmp_path, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert run.returncode == 0 and (tmp_path / "doc.pdf").exists(), run.stdout[-2000:]

    for name in ("ECSSD", "HKU-IS"):  # one figure per data set, every method in it
        png = (plots / f"{name}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        assert Image.open(io.BytesIO(png)).size[0] > 600
        svg = ET.parse(plots / f"{name}.svg").getroot()
        text = " ".join(t for t in svg.itertext())
        assert all(m in text for m in methods) and name in text
        assert "precision-recall" in text and "E-measure" in text


def test_pred_root_methods_are_named_by_folder_and_tables_agree(two_sets, tmp_path):
    """<root>/<method>/<dataset>/ maps: rows named by method; md bold = the JSON's best."""
    root = tmp_path / "preds"
    for data in two_sets:
        name = next(data.glob("*-Mask")).name.removesuffix("-Mask")
        for mask in sorted(next(data.glob("*-Mask")).glob("*.png")):
            truth = np.asarray(Image.open(mask).convert("L"))
            for method, pred in (("GT", truth), ("Flat", np.full_like(truth, 128))):
                (root / method / name).mkdir(parents=True, exist_ok=True)
                Image.fromarray(pred).save(root / method / name / mask.name)
    data = [arg for d in two_sets for arg in ("--data", d)]
    common = [SMOKE, *data, "--pred-root", root, "--size", SIZE, "--quiet"]
    as_json = invoke(*common, "--json", "-")
    assert as_json.exit_code == 0, as_json.output
    doc = json.loads(as_json.stdout)
    assert {d: list(doc[d]) for d in doc} == {
        "ECSSD": ["sod_tiny_smoke_cpu_v0", "Flat", "GT"],
        "HKU-IS": ["sod_tiny_smoke_cpu_v0", "Flat", "GT"],
    }
    assert doc["ECSSD"]["GT"]["metrics"]["MAE"] == 0.0  # the maps are the masks
    assert doc["ECSSD"]["GT"]["source"]["path"] == str(root / "GT" / "ECSSD")

    md = invoke(*common, "--table", "md")
    assert md.exit_code == 0, md.output
    rows = md_rows(md.stdout)
    assert [(r[0], r[1]) for r in rows] == [(m, d) for d in doc for m in doc[d]]
    bold = {
        (r[1], r[0], key)
        for r in rows
        for key, cell in zip(METRIC_KEYS, r[3:], strict=True)
        if cell.startswith("**")
    }
    assert bold == bold_expected(doc)
    for r in rows:  # shown values are the JSON's, at 4 decimals
        for key, cell in zip(METRIC_KEYS, r[3:], strict=True):
            assert float(cell.strip("*")) == pytest.approx(
                doc[r[1]][r[0]]["metrics"][key], abs=5e-5
            )

    out = tmp_path / "t.csv"
    assert invoke(*common, "--table", "csv", "--out", out).exit_code == 0
    table = list(csv.DictReader(out.open()))
    assert len(table) == 6 and list(table[0]) == ["method", "dataset", "n", *METRIC_KEYS]
    assert {(r["method"], r["dataset"]) for r in table} == {(m, d) for d in doc for m in doc[d]}
    for r in table:
        assert float(r["MAE"]) == doc[r["dataset"]][r["method"]]["metrics"]["MAE"]

    text = invoke(*common)  # no --table: fixed-width rows on stdout
    assert text.exit_code == 0 and len(text.stdout.strip().splitlines()) == 1 + 6


def test_data_root_finds_every_set_and_missing_maps_are_an_error(two_sets, tmp_path):
    root = tmp_path / "root"
    for data in two_sets:
        shutil.copytree(data, root / data.name)
    (root / "notes").mkdir()  # not a data set: ignored
    result = invoke(SMOKE, "--data-root", root, "--size", SIZE, "--json", "-", "--quiet")
    assert result.exit_code == 0, result.output
    assert list(json.loads(result.stdout)) == ["ECSSD", "HKU-IS"]

    preds = tmp_path / "preds" / "M" / "ECSSD"
    preds.mkdir(parents=True)  # M has no HKU-IS folder
    refused = invoke("--data-root", root, "--pred-root", tmp_path / "preds", "--quiet")
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    assert re.search(r"no saved maps for 1 method x data set pair\(s\): .*M/HKU-IS", refused.output)
    for extra in (["--name", "X"], ["--per-image", tmp_path / "p.csv"]):
        both = invoke(SMOKE, "--data-root", root, *extra, "--quiet")
        assert both.exit_code == 2 and "works on one data set" in both.output
    twice = invoke(SMOKE, "--data", two_sets[0], "--data", two_sets[0], "--quiet")
    assert twice.exit_code == 2 and "data set given twice" in twice.output
