"""Hostile inputs, class 5: malformed JSON next to or into the tools.

Every JSON the tools read goes through one bounded, strict reader (size, nesting depth,
no NaN) and is then checked against its schema, so a bad file is one exit-2 line naming
it (or, for the golden vectors ``check`` reads, a FAIL line): never a RecursionError,
KeyError or a huge allocation.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from hostile import Snapshot, build_model, cli, data_folder, deep_json, refused, save
from onnx import helper
from test_schema import make_metrics

from sod_train.check.golden import write_golden
from sod_train.errors import UserInputError
from sod_train.fetch.cache import read_manifest
from sod_train.guards import read_json

DEEP = deep_json(100_000)
DEEPISH = deep_json(900)  # within what Python's parser takes, beyond our depth limit
BAD_JSON = {
    "100000 deep": DEEP,
    "900 deep": DEEPISH,
    "deep object": '{"a":' * 5000 + "1" + "}" * 5000,
    "NaN": '{"a": NaN}',
    "truncated": '{"schema_version": 1, "models": [',
    "not utf-8": b"\xff\xfe{}",
    "empty": "",
    "a bare string": '"hello"',
}


def _write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


@pytest.fixture
def metrics(tmp_path: Path) -> Path:
    return _write(tmp_path / "good" / "tiny_a.metrics.json", json.dumps(make_metrics()))


@pytest.mark.parametrize("kind", sorted(BAD_JSON))
@pytest.mark.parametrize("side", ["old", "new"])
def test_diff_refuses_bad_json(tmp_path, metrics, kind, side):
    bad = _write(tmp_path / "bad.json", BAD_JSON[kind])
    args = [bad, metrics] if side == "old" else [metrics, bad]
    result = cli("diff", *args)
    if kind == "a bare string":  # valid JSON, fails the schema: a regression, exit 1
        assert result.exit_code == 1 and "fails the metrics schema" in result.stdout
    else:
        refused(result, 2, bad)


@pytest.mark.parametrize("kind", sorted(BAD_JSON))
@pytest.mark.parametrize("role", ["metrics", "registry", "anchor"])
def test_card_refuses_bad_json(tmp_path, metrics, kind, role):
    bad = _write(tmp_path / "bad.json", BAD_JSON[kind])
    registry = _write(tmp_path / "reg.json", '{"schema_version": 1, "default": null, "models": []}')
    args = {
        "metrics": [bad, "--registry", registry],
        "registry": [metrics, "--registry", bad],
        "anchor": [metrics, "--registry", registry, "--anchor-metrics", bad],
    }[role]
    result = cli("card", *args, "--out", tmp_path / "c.md")
    refused(result, 2, bad)
    assert not (tmp_path / "c.md").exists()


@pytest.mark.parametrize("kind", sorted(BAD_JSON))
def test_evaluate_record_refuses_bad_json_before_evaluating(tmp_path, kind):
    model = save(build_model(), tmp_path / "m.onnx")
    data = data_folder(tmp_path / "D")
    bad = _write(tmp_path / "bad.json", BAD_JSON[kind])
    keep = Snapshot([bad])
    result = cli("evaluate", model, "--data", data, "--record", bad, "--quiet")
    refused(result, 2, bad)
    assert "DUTS" not in result.stdout and "maxF" not in result.stdout  # nothing was evaluated
    keep.unchanged()


def test_evaluate_record_with_bad_evaluations_section_is_refused(tmp_path):
    model = save(build_model(), tmp_path / "m.onnx")
    bad = _write(tmp_path / "bad.json", '{"evaluations": [1, 2]}')
    result = cli("evaluate", model, "--data", data_folder(tmp_path / "D"), "--record", bad)
    refused(result, 2, bad, "'evaluations' must be an object")


@pytest.mark.parametrize("kind", sorted(BAD_JSON))
def test_fold_iou_record_refuses_bad_json(tmp_path, kind):
    model = save(build_model(), tmp_path / "m.onnx")
    bad = _write(tmp_path / "bad.json", BAD_JSON[kind])
    keep = Snapshot([bad])
    result = cli("fold-iou", model, "--duts-root", tmp_path / "nowhere", "--record", bad)
    refused(result, 2, bad)
    keep.unchanged()


# -- golden vectors next to a model: check reports a FAIL line, fast --------------------------


def _golden_cases() -> dict[str, object]:
    huge = {"height": 1_000_000, "width": 3_000_000}  # the 21.8 TiB case
    return {
        "absurd size": {"cases": [huge]},
        "huge width only": {"cases": [{"height": 1, "width": 10**9}]},
        "height a string": {"cases": [{"height": "64", "width": 64}]},
        "height a bool": {"cases": [{"height": True, "width": 64}]},
        "height a float": {"cases": [{"height": 64.0, "width": 64}]},
        "height huge int": {"cases": [{"height": 10**400, "width": 1}]},
        "sample not a list": {"cases": [{"sample": "x"}]},
        "sample value a string": {"cases": [{"sample": [[0, 0, "x"]]}]},
        "sample out of range": {"cases": [{"sample": [[999, 0, 0.5]]}]},
        "sample negative": {"cases": [{"sample": [[-1, 0, 0.5]]}]},
        "sample of bools": {"cases": [{"sample": [[True, False, 0.5]]}]},
        "sample too long": {"cases": [{"sample": [[0, 0, 0.5]] * 20_000}]},
        "stats a list": {"cases": [{"stats": [1, 2]}]},
        "stats strings": {"cases": [{"stats": {"mean": "a", "min": 0, "max": 0, "sum": 0}}]},
        "stats missing": {"cases": [{"stats": {}}]},
        "output wrong length": {"cases": [{"output": [0.5] * 3}]},
        "output strings": {"cases": [{"output": ["x"] * 4096}]},
        "output a dict": {"cases": [{"output": {"a": 1}}]},
        "sha not hex": {"cases": [{"input_sha256": "zz"}]},
        "sha a number": {"cases": [{"input_sha256": 5}]},
        "name a list": {"cases": [{"name": []}]},
        "case a number": {"cases": [5]},
        "no cases": {"cases": []},
        "cases a dict": {"cases": {}},
        "too many cases": {"cases": ["copy"] * 100},
        "tolerance a string": {"tolerance": {"abs": "x"}},
        "tolerance negative": {"tolerance": {"abs": -1}},
        "tolerance a list": {"tolerance": [1]},
        "model a list": {"model": []},
        "model sha a number": {"model": {"sha256": 7}},
        "format wrong": {"format": "other"},
        "format_version huge": {"format_version": 10**100},
        "not an object": [],
    }


GOLDEN_CASES = _golden_cases()


@pytest.fixture(scope="module")
def golden_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("g")
    model = save(build_model(), folder / "tiny.onnx")
    doc = json.loads(write_golden(model).read_text())
    return model, doc


def _corrupt(doc: dict, change: object) -> object:
    if not isinstance(change, dict):
        return change
    new = copy.deepcopy(doc)
    for key, value in change.items():
        if key != "cases" or not isinstance(value, list):
            new[key] = value
            continue
        cases = []
        for item in value:
            if item == "copy":
                cases.append(copy.deepcopy(doc["cases"][0]))
            elif isinstance(item, dict):
                cases.append({**copy.deepcopy(doc["cases"][0]), **item})
            else:
                cases.append(item)
        new["cases"] = cases
    return new


@pytest.mark.parametrize("kind", sorted(GOLDEN_CASES))
def test_check_fails_a_malformed_golden_file_with_one_line(golden_model, kind):
    model, doc = golden_model
    golden = model.with_name("tiny.golden.json")
    original = golden.read_bytes()
    try:
        golden.write_text(json.dumps(_corrupt(doc, GOLDEN_CASES[kind])))
        result = cli("check", model, timeout=60)
        assert result.exit_code == 1, result.output
        fail = [line for line in result.stdout.splitlines() if line.startswith("FAIL golden:")]
        assert len(fail) == 1 and "tiny.golden.json" in fail[0], result.stdout
        assert "checks failed: golden" in result.stderr
    finally:
        golden.write_bytes(original)


@pytest.mark.parametrize("kind", sorted(BAD_JSON))
def test_check_fails_a_golden_file_that_is_not_json(golden_model, kind):
    model, _ = golden_model
    golden = model.with_name("tiny.golden.json")
    original = golden.read_bytes()
    try:
        _write(golden, BAD_JSON[kind])
        result = cli("check", model)
        assert result.exit_code == 1
        assert any(
            line.startswith("FAIL golden:") and "tiny.golden.json" in line
            for line in result.stdout.splitlines()
        )
    finally:
        golden.write_bytes(original)


# -- register: malformed registries and metrics ----------------------------------------------


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    save(build_model(), root / "model" / "tiny" / "m.onnx")
    _write(root / "model" / "tiny" / "m.metrics.json", json.dumps(make_metrics("m")))
    _write(root / "docs" / "ai" / "models" / "m.md", "# card\n")
    _write(root / "model" / "tiny" / "registry.json", json.dumps(_empty_registry()))
    return root


def _empty_registry() -> dict:
    return {"schema_version": 1, "default": None, "models": []}


def _entry(**change: object) -> dict:
    entry = {
        "id": "x",
        "onnx": "model/tiny/x.onnx",
        "sha256": "0" * 64,
        "bytes": 1,
        "opset": 17,
        "params": 1,
        "license": "L",
        "metrics": "model/tiny/x.metrics.json",
        "card": "docs/ai/models/x.md",
        "smoke": False,
    }
    return {**entry, **change}


BAD_REGISTRIES: dict[str, str] = {
    name: json.dumps(doc)
    for name, doc in {
        "a list": [],
        "empty object": {},
        "no models": {"schema_version": 1, "default": None},
        "models not a list": {"schema_version": 1, "default": None, "models": {}},
        "default names nothing": {"schema_version": 1, "default": "nope", "models": []},
        "entry empty": {"schema_version": 1, "default": "x", "models": [{}]},
        "entry without id": {"schema_version": 1, "default": "x", "models": [_entry(id=None)]},
        "entry bytes a string": {
            "schema_version": 1,
            "default": "x",
            "models": [_entry(bytes="1")],
        },
        "duplicate ids": {"schema_version": 1, "default": "x", "models": [_entry(), _entry()]},
        "schema_version 2": {"schema_version": 2, "default": None, "models": []},
        "null": None,
    }.items()
} | {"deep": DEEP, "NaN": '{"schema_version": NaN}'}


@pytest.mark.parametrize("kind", sorted(BAD_REGISTRIES))
def test_register_refuses_a_malformed_registry(repo, kind):
    registry = _write(repo / "model" / "tiny" / "registry.json", BAD_REGISTRIES[kind])
    keep = Snapshot([registry, repo / "model" / "tiny" / "m.onnx"])
    result = cli("register", repo / "model" / "tiny" / "m.onnx", "--registry", registry)
    refused(result, 2, registry)
    keep.unchanged()


BAD_METRICS: dict[str, str | bytes] = {
    "a list": "[]",
    "empty object": "{}",
    "only smoke": '{"smoke": true}',
    "id not the onnx stem": json.dumps({**make_metrics("m"), "model_id": "zz"}),
    "deep": DEEP,
    "NaN": '{"smoke": NaN}',
    "truncated": '{"model_id": "m"',
    "not utf-8": b"\xff\xfe",
}


@pytest.mark.parametrize("kind", sorted(BAD_METRICS))
def test_register_refuses_malformed_metrics(repo, kind):
    metrics = _write(repo / "model" / "tiny" / "m.metrics.json", BAD_METRICS[kind])
    registry = repo / "model" / "tiny" / "registry.json"
    keep = Snapshot([registry, metrics])
    result = cli("register", repo / "model" / "tiny" / "m.onnx", "--registry", registry)
    refused(result, 2, metrics)
    keep.unchanged()


def test_register_refuses_a_model_without_a_default_opset(repo):
    model = build_model()
    del model.opset_import[:]
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    path = save(model, repo / "model" / "tiny" / "m.onnx")
    result = cli("register", path, "--registry", repo / "model" / "tiny" / "registry.json")
    refused(result, 2, path, "no default-domain")


# -- the shared reader, and readers without a command of their own ---------------------------


def test_read_json_limits(tmp_path):
    big = _write(tmp_path / "big.json", "[" + ",".join(["1"] * 1000) + "]")
    with pytest.raises(UserInputError, match="more than the limit of 100"):
        read_json(big, "the file", max_bytes=100)
    nested = _write(tmp_path / "n.json", deep_json(10))
    with pytest.raises(UserInputError, match="nested deeper than 5"):
        read_json(nested, "the file", max_depth=5)
    assert read_json(nested, "the file") == json.loads(deep_json(10))


@pytest.mark.parametrize("kind", sorted(BAD_JSON))
def test_data_cache_manifest_refuses_bad_json(tmp_path, kind):
    _write(tmp_path / "cache" / "manifest.json", BAD_JSON[kind])
    with pytest.raises(UserInputError, match="manifest"):
        read_manifest(tmp_path / "cache")
