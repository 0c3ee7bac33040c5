"""`sod-train card`: the Markdown model card carries the metrics file's numbers, faithfully."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import ort_capi
import pytest
from click.testing import CliRunner
from test_schema import make_metrics

from sod_train.cli.main import main
from sod_train.release import card as card_module
from sod_train.release.card import render_card, write_card

LICENCE = "CC-BY-NC-4.0 (weights)"
REPO = Path(__file__).resolve().parents[1]
ANCHORS = sorted((REPO / "benchmarks" / "anchors").glob("*.json"))
HAVE_MPL = importlib.util.find_spec("matplotlib") is not None


def _entry(metrics: dict[str, Any], smoke: bool = False) -> dict[str, Any]:
    mid = metrics["model_id"]
    return {
        "id": mid,
        "onnx": f"model/tiny/{mid}.onnx",
        "sha256": metrics["onnx"]["sha256"],
        "bytes": metrics["onnx"]["bytes"],
        "opset": 17,
        "params": 1000,
        "license": LICENCE,
        "metrics": f"model/tiny/{mid}.metrics.json",
        "card": f"docs/ai/models/{mid}.md",
        "smoke": smoke,
    }


def _files(tmp_path: Path, metrics: dict[str, Any], entries: list[dict[str, Any]]):
    metrics_path = tmp_path / f"{metrics['model_id']}.metrics.json"
    metrics_path.write_text(json.dumps(metrics))
    registry_path = tmp_path / "registry.json"
    default = entries[0]["id"] if entries else None
    registry_path.write_text(
        json.dumps({"schema_version": 1, "default": default, "models": entries})
    )
    return metrics_path, registry_path


def test_card_carries_the_numbers():
    metrics = make_metrics()
    text = render_card(metrics, _entry(metrics))
    assert text.startswith("---\n")  # Hub front matter, then the title
    assert "\n---\n\n# Model card: tiny_a\n" in text
    # contract
    assert "| input | `input` | float32 | [1, 3, H, W] |" in text
    assert "| output | `saliency_map` | float32 | [1, 1, H, W] |" in text
    assert "subtract mean [0.485, 0.456, 0.406], divide by std [0.229, 0.224, 0.225]" in text
    assert "**Opset** 17" in text
    assert "`Conv`, `ConvTranspose`, `Relu`, `MaxPool`, `Concat`, `Sigmoid`" in text
    assert "256x256: 2.1e-07, 257x263: 3.4e-07, 97x131: 1.9e-07" in text
    # summary, provenance, licence
    assert "1,000 exported ONNX parameters (BN folded)" in text  # the registry entry's
    assert "112,841 trainable parameters (with BatchNorm)" in text  # the metrics'
    assert metrics["onnx"]["sha256"] in text
    assert "Wang et al." in text and "CVPR 2017" in text
    assert "free for academic research" in text and "never redistributed" in text
    assert f"**Weights licence:** {LICENCE}." in text
    # recipe and fold IoU both ways
    assert "| `batch_size` | 32 |" in text and "| `loss` | bce+dice |" in text
    assert "| this model, best epoch 3 (validated at 256) | 0.6500 | 0.6700 |" in text
    # history: first and best/last epoch rows
    assert "| 1 | 0.5000 | 0.4500 | 0.5500 | 0.5700 | 1.00e-03 | 1002.5 |" in text
    assert "| 3 (best) |" in text
    # benchmark row, in the documented column order
    header = "| data set | n | size | maxF | meanF | adpF | wF | Sm | meanEm | maxEm | MAE | IoU |"
    assert header in text
    assert (
        "| **DUTS-TE** | 5019 | 256×256 | 0.8123 | 0.7012 | 0.7345 | 0.6543 | 0.8234 | 0.8456 "
        "| 0.8901 | 0.0612 | 0.6789 |"
    ) in text
    assert metrics["evaluations"]["DUTS-TE"]["protocol"] in text
    assert "`tiny_a.golden.json`" in text
    assert "## Known limits" in text
    assert "smoke model" not in text.lower()


def test_smoke_banner():
    metrics = make_metrics(smoke=True)
    assert "> **Warning: smoke model.**" in render_card(metrics, None)
    # the registry's smoke flag raises the banner too
    plain = make_metrics()
    assert "> **Warning: smoke model.**" in render_card(plain, _entry(plain, smoke=True))
    assert "Warning: smoke model" not in render_card(plain, _entry(plain))


def test_latency_and_missing_parts():
    metrics = make_metrics()
    assert "Not recorded in the metrics JSON" in render_card(metrics, None)
    metrics["latency"] = {"540x960": 41.234, "256": 3.5}
    del metrics["evaluations"]
    text = render_card(metrics, None)
    assert text.index("| 256×256 | 3.50 |") < text.index("| 540×960 | 41.23 |")
    assert "No evaluations recorded" in text
    assert "not recorded (model not in `model/tiny/registry.json`)" in text


def test_render_is_deterministic():
    metrics = make_metrics()
    assert render_card(metrics, _entry(metrics)) == render_card(make_metrics(), _entry(metrics))


def test_cli_writes_the_card_deterministically(tmp_path):
    metrics = make_metrics()
    metrics_path, registry_path = _files(tmp_path, metrics, [_entry(metrics)])
    out = tmp_path / "cards" / "tiny_a.md"
    args = ["card", str(metrics_path), "--out", str(out), "--registry", str(registry_path)]
    result = CliRunner().invoke(main, [*args, "--no-anchors"])
    assert result.exit_code == 0, result.output
    first = out.read_bytes()
    assert first.decode() == render_card(metrics, _entry(metrics))
    assert CliRunner().invoke(main, [*args, "--no-anchors"]).exit_code == 0
    assert out.read_bytes() == first
    names = sorted(p.name for p in out.parent.iterdir())  # no temp files
    assert names == (["tiny_a.curves.png", "tiny_a.md"] if HAVE_MPL else ["tiny_a.md"])
    # By default the repository's anchors are shown beside ours.
    assert CliRunner().invoke(main, args).exit_code == 0
    assert out.read_text() == render_card(
        metrics, _entry(metrics), dict(map(card_module._load_anchor, ANCHORS))
    )


def test_default_destination_is_the_registry_card_path(tmp_path, monkeypatch):
    monkeypatch.setattr(card_module, "REPO_ROOT", tmp_path)
    metrics = make_metrics()
    metrics_path, registry_path = _files(tmp_path, metrics, [_entry(metrics)])
    written = write_card(metrics_path, registry_path=registry_path)
    assert written.card == tmp_path / "docs" / "ai" / "models" / "tiny_a.md"
    assert LICENCE in written.card.read_text()
    if HAVE_MPL:
        assert written.curves == written.card.parent / "tiny_a.curves.png"
        assert written.curves.read_bytes().startswith(b"\x89PNG")


def test_anchor_rows(tmp_path):
    metrics = make_metrics()
    anchor = {"model_id": "saliency_student_v2", "evaluations": make_metrics()["evaluations"]}
    anchor["evaluations"]["DUTS-TE"]["metrics"]["maxF"] = 0.7777
    anchor_path = tmp_path / "anchor.json"
    anchor_path.write_text(json.dumps(anchor))
    metrics_path, registry_path = _files(tmp_path, metrics, [])
    out = write_card(metrics_path, tmp_path / "c.md", registry_path, [anchor_path]).card
    assert "| DUTS-TE, anchor `saliency_student_v2` | 5019 | 256×256 | 0.7777 |" in (
        out.read_text()
    )


def test_card_shows_the_releases_registered_before_it(tmp_path):
    """By default a new release's card has rows for the released models registered before
    it (by id, not as anchors); a smoke model never, and an old card never gains rows
    when a newer model ships."""
    tiny = tmp_path / "model" / "tiny"
    tiny.mkdir(parents=True)
    docs = {mid: make_metrics(mid) for mid in ("smoke_a", "rel_a", "rel_b")}
    docs["rel_a"]["evaluations"]["DUTS-TE"]["metrics"]["maxF"] = 0.6666
    entries = [_entry(docs["smoke_a"], smoke=True), _entry(docs["rel_a"]), _entry(docs["rel_b"])]
    for mid, doc in docs.items():
        (tiny / f"{mid}.metrics.json").write_text(json.dumps(doc))
    registry = tiny / "registry.json"
    registry.write_text(json.dumps({"schema_version": 1, "default": "rel_b", "models": entries}))

    def card(mid: str) -> str:
        out = tmp_path / f"{mid}.md"
        write_card(tiny / f"{mid}.metrics.json", out, registry, None, quiet=True)
        return out.read_text()

    newest, oldest = card("rel_b"), card("rel_a")
    assert "| DUTS-TE, `rel_a` | 5019 | 256×256 | 0.6666 |" in newest
    assert "`smoke_a`" not in newest and "anchor `rel_a`" not in newest
    assert "anchor `saliency_student_v1`" in newest  # the anchors stay
    assert "DUTS-TE, `rel_b`" not in oldest and "DUTS-TE, `rel_a`" not in oldest
    assert card_module.earlier_release_paths("rel_b", registry) == [tiny / "rel_a.metrics.json"]
    assert card_module.earlier_release_paths("unregistered", registry) == [
        tiny / "rel_a.metrics.json",
        tiny / "rel_b.metrics.json",
    ]


def test_bad_inputs_exit_2_naming_the_file(tmp_path):
    metrics = make_metrics()
    metrics_path, registry_path = _files(tmp_path, metrics, [])
    runner = CliRunner()

    broken = make_metrics()
    broken["evaluations"]["DUTS-TE"]["metrics"]["MAE"] = 2
    broken_path = tmp_path / "broken.metrics.json"
    broken_path.write_text(json.dumps(broken))
    result = runner.invoke(main, ["card", str(broken_path), "--registry", str(registry_path)])
    assert result.exit_code == 2
    assert f"{broken_path}: not a valid metrics file: evaluations.DUTS-TE.metrics.MAE" in (
        result.stderr
    )

    result = runner.invoke(
        main,
        ["card", str(metrics_path), "--out", str(metrics_path), "--registry", str(registry_path)],
    )
    assert result.exit_code == 2
    assert "refusing to overwrite the metrics JSON" in result.stderr
    assert json.loads(metrics_path.read_text()) == metrics

    other = _entry(metrics)
    other["sha256"] = "0" * 64
    metrics_path, registry_path = _files(tmp_path, metrics, [other])
    out = tmp_path / "x.md"
    args = ["card", str(metrics_path), "--out", str(out), "--registry", str(registry_path)]
    result = runner.invoke(main, args)
    assert result.exit_code == 2
    assert "entry 'tiny_a' has sha256 0000" in result.stderr
    assert not out.exists()


def test_recorded_fold_iou_rows_for_the_model_and_anchors(tmp_path):
    metrics = make_metrics()
    metrics["fold_iou"] = {
        "crop": 256,
        "seed": 42,
        "val_fraction": 0.05,
        "n": 528,
        "iou": 0.7012,
        "iou_batch": 0.7003,
    }
    anchor = {
        "model_id": "v1",
        "evaluations": {},
        "fold_iou": {**metrics["fold_iou"], "iou": 0.6565, "iou_batch": 0.6557},
    }
    text = render_card(metrics, None, {"v1": anchor})
    assert "| this model, `sod-train fold-iou` (crop 256, n 528) | 0.7012 | 0.7003 |" in text
    assert "| anchor `v1`, `sod-train fold-iou` (crop 256, n 528) | 0.6565 | 0.6557 |" in text


def test_build_and_cost_sections_come_from_the_metrics():
    metrics = make_metrics()
    metrics["training"]["wall_seconds"] = 3110.0
    metrics["environment"].update({"threads": 2, "amp": True, "cpu_bf16_features": ["x_bf16"]})
    metrics["build"] = {
        "command": "python ai/scripts/train_saliency_student.py --preset release",
        "machine": "two test cores",
        "reproduced": "yes: a second run gave the same sha256",
    }
    metrics["cost"] = {
        "note": "one bench run",
        "models": {"ours": {"params": 97185, "gmac_256": 0.0746, "ms_1080p_2t": 207.9}},
    }
    text = render_card(metrics, _entry(metrics))
    assert "## Reproducible build" in text and "--preset release" in text
    assert "51.8 min" in text and "bf16 autocast on" in text and "x_bf16" in text
    assert "yes: a second run gave the same sha256" in text
    assert "| 1080p ms, 2 threads |" in text and "1 thread |" not in text  # the cells recorded
    assert "| `ours` | 97,185 | 0.075 | 207.9 |" in text
    assert "## Cost" not in render_card(make_metrics(), None)
    # A resumed run's wall clock covers its last session only: the card says so and adds
    # up the epochs' own times instead of calling it the whole command's.
    metrics["build"]["command"] += " --resume"
    epochs = sum(h["seconds"] for h in metrics["training"]["history"]) / 60
    resumed = render_card(metrics, _entry(metrics))
    assert "51.8 min for the last session of a resumed run" in resumed
    assert f"took {epochs:.1f} min in all" in resumed and "for the whole command" not in resumed


# --- the shipped cards: Hub front matter, runnable usage, curves, no-flag regeneration ---

REGISTRY = json.loads((REPO / "model" / "tiny" / "registry.json").read_text())
SHIPPED = [entry["id"] for entry in REGISTRY["models"]]


def _shipped(model_id: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    """(metrics, registry entry, committed card text) of a shipped model."""
    entry = next(e for e in REGISTRY["models"] if e["id"] == model_id)
    metrics = json.loads((REPO / entry["metrics"]).read_text())
    return metrics, entry, (REPO / entry["card"]).read_text(encoding="utf-8")


def _mini_yaml(text: str) -> Any:
    """A reader for the block-style YAML subset the card emits (mappings, ``- `` lists,
    plain or JSON-quoted scalars), for environments without PyYAML."""
    lines = [line for line in text.splitlines() if line.strip()]

    def scalar(raw: str) -> Any:
        if raw.startswith('"'):
            return json.loads(raw)
        if raw in ("true", "false"):
            return raw == "true"
        for kind in (int, float):
            try:
                return kind(raw)
            except ValueError:
                pass
        return raw

    def block(i: int, indent: int) -> tuple[Any, int]:
        if lines[i].startswith(" " * indent + "- "):
            items = []
            while i < len(lines) and lines[i].startswith(" " * indent + "- "):
                body = lines[i][indent + 2 :]
                if ":" in body and not body.startswith('"'):  # a mapping item
                    lines[i] = " " * (indent + 2) + body
                    value, i = block(i, indent + 2)
                else:
                    value, i = scalar(body), i + 1
                items.append(value)
            return items, i
        mapping: dict[str, Any] = {}
        while (
            i < len(lines)
            and lines[i].startswith(" " * indent)
            and (lines[i][indent] != " " and not lines[i][indent:].startswith("- "))
        ):
            key, _, raw = lines[i][indent:].partition(":")
            raw = raw.strip()
            if raw:
                mapping[key], i = scalar(raw), i + 1
            else:
                child = len(lines[i + 1]) - len(lines[i + 1].lstrip(" "))
                mapping[key], i = block(i + 1, child)
        return mapping, i

    return block(0, 0)[0]


def _front_matter(card: str) -> list[Any]:
    """The card's YAML front matter, parsed by every reader available (PyYAML too)."""
    assert card.startswith("---\n")
    text = card[4 : card.index("\n---\n", 4)]
    parsed = [_mini_yaml(text)]
    try:
        import yaml
    except ImportError:
        return parsed
    return [*parsed, yaml.safe_load(text)]


@pytest.mark.parametrize("model_id", SHIPPED)
def test_front_matter_is_hub_yaml_with_the_metrics_numbers(model_id):
    metrics, entry, card = _shipped(model_id)
    for meta in _front_matter(card):
        assert meta["library_name"] == "onnx" and meta["pipeline_tag"] == "image-segmentation"
        assert {"onnx", "salient-object-detection", "image-segmentation"} <= set(meta["tags"])
        assert meta["license"] == "other"
        assert meta["license_name"] == entry["license"].lower()
        assert meta["datasets"] == ["DUTS"]
        (index,) = meta["model-index"]
        assert index["name"] == model_id
        results = {r["dataset"]["name"]: r for r in index["results"]}
        te = results["DUTS-TE"]
        assert te["dataset"]["split"] == "test"
        assert te["task"]["type"] == "image-segmentation"
        got = {m["type"]: m["value"] for m in te["metrics"]}
        assert got == metrics["evaluations"]["DUTS-TE"]["metrics"]  # exact floats, all nine
        assert {"maxF", "MAE", "Sm"} <= set(got)
        (fold,) = [r for name, r in results.items() if name.startswith("DUTS-TR validation")]
        assert fold["dataset"]["split"] == "validation"
        got = {m["type"]: m["value"] for m in fold["metrics"]}
        training = metrics["training"]
        assert got == {"IoU": training["best_val_iou"], "IoU_batch": training["best_val_iou_batch"]}
    if len(_front_matter(card)) == 2:  # PyYAML present: our reader agrees with it
        ours, pyyaml = _front_matter(card)
        assert ours == pyyaml


def test_front_matter_scalars_survive_a_yaml_reader():
    metrics = make_metrics()
    metrics["evaluations"]["DUTS-TE"]["metrics"]["MAE"] = 5e-05  # repr has an exponent
    entry = _entry(metrics, smoke=True)
    entry["license"] = "MIT"
    (meta, *_) = _front_matter(render_card(metrics, entry))
    for parsed in _front_matter(render_card(metrics, entry)):
        assert parsed == meta
        te = parsed["model-index"][0]["results"][0]
        assert {m["type"]: m["value"] for m in te["metrics"]}["MAE"] == 5e-05
        assert parsed["license"] == "mit" and "license_name" not in parsed
        assert "smoke-test" in parsed["tags"]
    card = render_card(metrics, entry)
    assert "value: 0.00005\n" in card


@pytest.mark.parametrize("model_id", SHIPPED)
def test_committed_card_regenerates_with_no_flags(model_id, tmp_path, monkeypatch):
    """`sod-train card METRICS`, nothing else, gives the committed card byte for byte
    (anchors from benchmarks/anchors, destination from the registry); the image too when
    this matplotlib is the release that drew the committed one."""
    monkeypatch.setattr(card_module, "REPO_ROOT", tmp_path)  # write beside, not over, it
    _, entry, committed = _shipped(model_id)
    result = CliRunner().invoke(main, ["card", str(REPO / entry["metrics"])])
    assert result.exit_code == 0, result.output
    card = tmp_path / entry["card"]
    assert card.read_text(encoding="utf-8") == committed
    assert card.read_bytes() == (REPO / entry["card"]).read_bytes()
    image = f"{model_id}.curves.png"
    assert f"]({image})" in committed
    committed_png = (REPO / entry["card"]).parent / image
    assert committed_png.is_file()
    if not HAVE_MPL:
        pytest.skip(
            "matplotlib is not installed, so the curve image is not redrawn: "
            "pip install -e '.[report]'"
        )
    import matplotlib

    from sod_train.evaluate.curves import drawn_with

    drawn = drawn_with(committed_png.read_bytes())
    if drawn != matplotlib.__version__:
        pytest.skip(
            f"committed image drawn with matplotlib {drawn}, this is {matplotlib.__version__}: "
            "pixels differ between versions; install that matplotlib to compare bytes"
        )
    assert (card.parent / image).read_bytes() == committed_png.read_bytes()


def test_shipped_cards_show_no_picture_but_their_curves():
    """No DUTS image (nor any other picture) beside or inside the cards."""
    folder = REPO / "docs" / "ai" / "models"
    for path in folder.iterdir():
        assert path.suffix == ".md" or path.name.endswith(".curves.png"), path.name
    for card in folder.glob("*.md"):
        links = re.findall(r"!\[[^\]]*\]\(([^)]*)\)", card.read_text(encoding="utf-8"))
        assert links == [f"{card.stem}.curves.png"], card.name


@pytest.mark.parametrize("model_id", SHIPPED)
def test_python_snippet_runs_and_gives_the_library_map(
    model_id, synthetic_root, tmp_path, monkeypatch
):
    """The card's Python usage, run as printed against the shipped model on a synthetic
    photo, gives exactly the map of sod_train's own preprocessing and `predict`."""
    import numpy as np
    from PIL import Image

    from sod_train.data.imageio import load_rgb, to_model_input
    from sod_train.predict.predict import saliency_map
    from sod_train.runtime.model import SaliencyModel

    _, entry, card = _shipped(model_id)
    (code,) = re.findall(r"^## Usage\n.*?```python\n(.*?)```", card, re.S | re.M)
    assert f'MODEL = "{entry["onnx"]}"' in code and 'IMAGE = "photo.jpg"' in code
    photo = sorted((synthetic_root / "DUTS-TR-Image").glob("*.jpg"))[0]
    (tmp_path / "photo.jpg").write_bytes(photo.read_bytes())
    (tmp_path / "model").symlink_to(REPO / "model", target_is_directory=True)
    monkeypatch.chdir(tmp_path)  # the snippet's paths are relative, as a user runs it from the root
    namespace: dict[str, Any] = {}
    exec(compile(code, f"{model_id} card snippet", "exec"), namespace)

    rgb, _ = load_rgb(tmp_path / "photo.jpg")
    model = SaliencyModel.open(REPO / entry["onnx"])
    expected = model.run(to_model_input(rgb))
    assert namespace["saliency"].shape == (1, 1, *rgb.shape[:2])
    assert np.array_equal(namespace["saliency"], expected)
    mask = np.asarray(Image.open(tmp_path / "photo.mask.png"))
    assert np.array_equal(mask, saliency_map(model, rgb, None))


def test_snippet_names_come_from_the_contract_constants(monkeypatch):
    """Nothing in the snippets is typed by hand: change the contract's constants and the
    snippets follow."""
    from sod_train import contract

    monkeypatch.setattr(contract, "INPUT_NAME", "pixels")
    monkeypatch.setattr(contract, "OUTPUT_NAME", "salience")
    monkeypatch.setattr(contract, "IMAGENET_MEAN", (0.5, 0.25, 0.125))
    monkeypatch.setattr(contract, "IMAGENET_STD", (0.1, 0.2, 0.3))
    metrics = make_metrics()
    py = card_module.python_snippet(metrics, None)
    c = card_module.c_snippet(metrics, None)
    assert 'session.run(["salience"], {"pixels": x})' in py
    assert "np.array([0.5, 0.25, 0.125]" in py and "np.array([0.1, 0.2, 0.3]" in py
    assert 'in_names[] = {"pixels"}, *out_names[] = {"salience"}' in c
    assert "{0.5f, 0.25f, 0.125f}" in c and "{0.1f, 0.2f, 0.3f}" in c
    assert f'"{metrics["onnx"]["file"]}"' in py and f'"{metrics["onnx"]["file"]}"' in c


def test_c_snippet_makes_the_host_calls_and_compiles(tmp_path):
    """The C usage calls what a host calls, releases what it creates, and is valid C99
    against the declarations of those calls."""
    c = card_module.c_snippet(make_metrics(), None)
    calls = [
        "CreateEnv",
        "CreateSessionOptions",
        "CreateSession",
        "CreateCpuMemoryInfo",
        "CreateTensorWithDataAsOrtValue",
        "Run",
        "GetTensorMutableData",
    ]
    for call in calls:
        assert f"ort->{call}(" in c, call
    for thing in ("Value(out)", "Value(in)", "MemoryInfo", "Session(", "SessionOptions", "Env"):
        assert f"ort->Release{thing}" in c, thing
    assert c.index("GetTensorMutableData") < c.index("ReleaseValue(out)")
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        pytest.skip("no C compiler (gcc or cc) on PATH: install gcc (apt-get install gcc)")
    (tmp_path / "onnxruntime_c_api.h").write_text(ort_capi.minimal_header())
    (tmp_path / "usage.c").write_text(c + "\n")
    result = subprocess.run(
        [gcc, "-std=c99", "-Wall", "-Werror", "-fsyntax-only", "-I", str(tmp_path), "usage.c"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_parameter_counts_are_both_shown_and_named():
    metrics, entry, card = _shipped("sod_tiny_smoke_cpu_v0")
    import onnx

    from sod_train.runtime.modelfile import parameter_count

    folded = parameter_count(onnx.load(REPO / entry["onnx"]))
    assert folded == entry["params"]
    assert (
        f"- **Parameters:** {folded:,} exported ONNX parameters (BN folded); "
        f"{metrics['model']['params']:,} trainable parameters (with BatchNorm)."
    ) in card
    assert card_module.PARAMS_DEFINITION in card


def test_unregistered_model_counts_its_onnx_file(tmp_path):
    """Without a registry entry the exported count comes from the ONNX file beside the
    metrics (the registry's definition), and only if it is the file they describe."""
    metrics, entry, _ = _shipped("sod_tiny_smoke_cpu_v0")
    metrics_path, registry_path = _files(tmp_path, metrics, [])
    onnx_path = tmp_path / metrics["onnx"]["file"]
    onnx_path.write_bytes((REPO / entry["onnx"]).read_bytes())
    args = ["--no-anchors", "--registry", str(registry_path), "--quiet"]
    out = tmp_path / "card.md"
    result = CliRunner().invoke(main, ["card", str(metrics_path), "--out", str(out), *args])
    assert result.exit_code == 0, result.output
    assert f"{entry['params']:,} exported ONNX parameters (BN folded)" in out.read_text()
    onnx_path.write_bytes(b"another file")
    result = CliRunner().invoke(main, ["card", str(metrics_path), "--out", str(out), *args])
    assert result.exit_code == 0, result.output
    assert "not recorded (not registered) exported ONNX parameters" in out.read_text()


def test_without_matplotlib_the_card_is_written_and_the_image_kept(tmp_path, monkeypatch):
    metrics = make_metrics()
    metrics_path, registry_path = _files(tmp_path, metrics, [_entry(metrics)])
    monkeypatch.setattr(card_module, "has_matplotlib", lambda: False)
    out = tmp_path / "cards" / "tiny_a.md"
    args = ["card", str(metrics_path), "--out", str(out), "--registry", str(registry_path)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert 'matplotlib is not installed (pip install -e ".[report]")' in result.stderr
    assert "did not write the training-curves image" in result.stderr
    assert out.read_text() == render_card(
        metrics, _entry(metrics), dict(map(card_module._load_anchor, ANCHORS))
    )
    assert not (out.parent / "tiny_a.curves.png").exists()

    image = out.parent / "tiny_a.curves.png"
    image.write_bytes(b"an older picture")
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0
    assert f"kept the existing training-curves image {image}" in result.stderr
    assert image.read_bytes() == b"an older picture"
    result = CliRunner().invoke(main, [*args, "--quiet"])
    assert result.exit_code == 0 and result.stderr == "" and result.stdout == ""


def test_default_anchors_are_the_repository_files():
    assert [p.name for p in card_module.default_anchor_paths()] == [p.name for p in ANCHORS]
    assert len(ANCHORS) >= 2


def test_anchor_options(tmp_path):
    metrics = make_metrics()
    metrics_path, registry_path = _files(tmp_path, metrics, [])
    out = tmp_path / "c.md"
    base = ["card", str(metrics_path), "--out", str(out), "--registry", str(registry_path)]
    runner = CliRunner()
    assert runner.invoke(main, base).exit_code == 0
    labels = [json.loads(p.read_text())["model_id"] for p in ANCHORS]
    for label in labels:
        assert f"DUTS-TE, anchor `{label}`" in out.read_text()
    assert runner.invoke(main, [*base, "--no-anchors"]).exit_code == 0
    assert "anchor `" not in out.read_text()
    assert runner.invoke(main, [*base, "--anchor-metrics", str(ANCHORS[0])]).exit_code == 0
    assert f"anchor `{labels[0]}`" in out.read_text()
    assert f"anchor `{labels[1]}`" not in out.read_text()
    result = runner.invoke(main, [*base, "--no-anchors", "--anchor-metrics", str(ANCHORS[0])])
    assert result.exit_code == 2 and "contradict" in result.stderr


def test_image_never_overwrites_an_input(tmp_path):
    """The curves image is an output too: a metrics file at its path is refused, untouched."""
    metrics = make_metrics()
    metrics_path = tmp_path / "tiny_a.curves.png"  # an odd name, but an input all the same
    metrics_path.write_text(json.dumps(metrics))
    _, registry_path = _files(tmp_path, metrics, [])
    args = ["card", str(metrics_path), "--out", str(tmp_path / "c.md")]
    result = CliRunner().invoke(main, [*args, "--registry", str(registry_path)])
    assert result.exit_code == 2
    assert "refusing to overwrite the metrics JSON" in result.stderr
    assert "training-curves image" in result.stderr
    assert json.loads(metrics_path.read_text()) == metrics
    assert not (tmp_path / "c.md").exists()


def test_a_normalised_model_card_shows_its_working_scale_source_and_short_sides():
    metrics = make_metrics()
    assert "Working scale" not in render_card(metrics, None)
    metrics["onnx"]["working_size"] = 224
    metrics["derived_from"] = {"model_id": "v1", "sha256": "ab" * 32, "how": "normalise, T 224"}
    ev = dict(next(iter(metrics["evaluations"].values())))
    metrics["evaluations"]["DUTS-TE@1080"] = {**ev, "size": "short1080"}
    text = render_card(metrics, None)
    assert "**Working scale 224:**" in text and "(min(H, W) + 112) // 224" in text
    assert "- **Derived from:** `v1`" in text and "normalise, T 224" in text
    assert "| **DUTS-TE@1080** |" in text and "| short side 1080 |" in text
    assert "downscale very large inputs" not in text
