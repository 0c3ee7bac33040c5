"""Hostile inputs, classes 1 and 7: outputs that alias inputs, output parents that are files.

No command writes over a file it reads, or two of its outputs onto one file, whether the
paths are equal, a symlink or a hard link; and an output whose folder cannot exist (a
parent that is a file) is refused. Both are checked before any work (exit 2), and every
input stays byte-identical.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hostile import (
    Snapshot,
    build_model,
    cli,
    data_folder,
    error_line,
    fifo,
    png_bytes,
    refused,
    save,
)
from test_schema import make_metrics

from sod_train.check.golden import write_golden
from sod_train.data.pairs import training_files
from sod_train.errors import UserInputError
from sod_train.guards import check_release_outputs, refuse_aliases


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return save(build_model(), tmp_path / "m.onnx")


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return data_folder(tmp_path / "D")


def _alias(kind: str, target: Path, where: Path) -> Path:
    """``where`` made to be ``target``: the same path, a symlink or a hard link."""
    if kind == "same":
        return target
    if kind == "symlink":
        where.symlink_to(target)
    else:
        os.link(target, where)
    return where


# -- evaluate --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["same", "symlink", "hardlink"])
def test_evaluate_json_onto_the_model_is_refused(tmp_path, model, data, kind):
    keep = Snapshot([model])
    out = _alias(kind, model, tmp_path / "r.json")
    result = cli("evaluate", model, "--data", data, "--json", out, "--quiet")
    refused(result, 2, out, "refusing to overwrite the model")
    keep.unchanged()


@pytest.mark.parametrize("kind", ["same", "symlink", "hardlink"])
def test_evaluate_json_onto_a_data_file_is_refused(tmp_path, model, data, kind):
    image = data / "images" / "img_001.jpg"
    keep = Snapshot([model, image])
    out = _alias(kind, image, tmp_path / "r.json")
    result = cli("evaluate", model, "--data", data, "--json", out, "--quiet")
    refused(result, 2, out, "refusing to overwrite the data file")
    keep.unchanged()


def test_evaluate_json_and_record_onto_one_file_is_refused(tmp_path, model, data):
    record = tmp_path / "x.metrics.json"
    record.write_text(json.dumps({"evaluations": {}}))
    keep = Snapshot([record, model])
    link = tmp_path / "link.json"
    link.symlink_to(record)
    result = cli("evaluate", model, "--data", data, "--json", link, "--record", record)
    refused(result, 2, record, "--record", "--json")
    keep.unchanged()


def test_evaluate_record_onto_the_model_is_refused(tmp_path, model, data):
    keep = Snapshot([model])
    result = cli("evaluate", model, "--data", data, "--record", model, "--quiet")
    refused(result, 2, model, "not valid JSON")  # the model is not a metrics JSON
    keep.unchanged()


def test_evaluate_json_under_a_file_fails_before_the_evaluation(tmp_path, model):
    afile = tmp_path / "afile"
    afile.write_text("keep")
    # --data does not exist: a check that ran after the evaluation would name it instead
    result = cli("evaluate", model, "--data", tmp_path / "nowhere", "--json", afile / "r.json")
    refused(result, 2, afile / "r.json", "is a file, not a folder")
    assert afile.read_text() == "keep"


def test_evaluate_json_onto_a_folder_is_refused(tmp_path, model, data):
    (tmp_path / "adir").mkdir()
    result = cli("evaluate", model, "--data", data, "--json", tmp_path / "adir")
    assert result.exit_code == 2 and "Traceback" not in result.output


# -- predict ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["symlink", "hardlink"])
def test_predict_output_linked_to_the_picture_or_model_is_refused(tmp_path, model, kind):
    picture = tmp_path / "in" / "a.png"
    picture.parent.mkdir()
    picture.write_bytes(png_bytes())
    out = tmp_path / "out"
    out.mkdir()
    for target in (picture, model):
        keep = Snapshot([picture, model])
        dest = out / "a.png.mask.png"
        dest.unlink(missing_ok=True)
        _alias(kind, target, dest)
        result = cli("predict", picture, "--model", model, "--out", out, "--quiet")
        refused(result, 2, dest, "refusing to overwrite")
        keep.unchanged()


def test_predict_out_under_a_file_is_refused(tmp_path, model):
    (tmp_path / "a.png").write_bytes(png_bytes())
    afile = tmp_path / "afile"
    afile.write_text("keep")
    result = cli("predict", tmp_path / "a.png", "--model", model, "--out", afile / "sub")
    refused(result, 2, afile / "sub", "is a file, not a folder")
    assert afile.read_text() == "keep"


# -- card, fold-iou, register, golden ---------------------------------------------------------


def _metrics_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny_a.metrics.json"
    path.write_text(json.dumps(make_metrics()))
    return path


def _registry(tmp_path: Path) -> Path:
    path = tmp_path / "registry.json"
    path.write_text(json.dumps({"schema_version": 1, "default": None, "models": []}))
    return path


@pytest.mark.parametrize("kind", ["same", "symlink", "hardlink"])
@pytest.mark.parametrize("which", ["metrics", "registry", "anchor"])
def test_card_out_onto_an_input_is_refused(tmp_path, kind, which):
    metrics, registry = _metrics_file(tmp_path), _registry(tmp_path)
    anchor = tmp_path / "anchor.json"
    anchor.write_text(json.dumps({"evaluations": make_metrics()["evaluations"]}))
    target = {"metrics": metrics, "registry": registry, "anchor": anchor}[which]
    keep = Snapshot([metrics, registry, anchor])
    out = _alias(kind, target, tmp_path / "card.md")
    args = ["--registry", registry, "--anchor-metrics", anchor, "--out", out]
    result = cli("card", metrics, *args)
    refused(result, 2, out, "refusing to overwrite")
    keep.unchanged()


def test_card_out_under_a_file_is_refused(tmp_path):
    metrics, registry = _metrics_file(tmp_path), _registry(tmp_path)
    afile = tmp_path / "afile"
    afile.write_text("keep")
    result = cli("card", metrics, "--registry", registry, "--out", afile / "c.md")
    refused(result, 2, afile / "c.md", "is a file, not a folder")
    assert afile.read_text() == "keep"


def test_fold_iou_record_onto_the_model_is_refused_before_decoding(tmp_path, model):
    keep = Snapshot([model])
    link = tmp_path / "rec.json"
    os.link(model, link)
    result = cli("fold-iou", model, "--duts-root", tmp_path / "nowhere", "--record", link)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert str(link) in error_line(result)
    keep.unchanged()


def test_fold_iou_record_under_a_file_is_refused(tmp_path, model):
    afile = tmp_path / "afile"
    afile.write_text("keep")
    result = cli("fold-iou", model, "--duts-root", tmp_path, "--record", afile / "r.json")
    refused(result, 2, afile / "r.json", "is a file, not a folder")


def test_register_registry_onto_the_model_or_metrics_is_refused(tmp_path):
    root = tmp_path / "repo"
    onnx_path = save(build_model(), root / "model" / "tiny" / "m.onnx")
    metrics = root / "model" / "tiny" / "m.metrics.json"
    metrics.write_text(json.dumps(make_metrics("m")))
    for target in (onnx_path, metrics):
        keep = Snapshot([onnx_path, metrics])
        link = root / "model" / "tiny" / "registry.json"
        link.unlink(missing_ok=True)
        link.symlink_to(target)
        result = cli("register", onnx_path, "--registry", link)
        refused(result, 2, link, "refusing to overwrite")
        keep.unchanged()


@pytest.mark.parametrize("kind", ["same", "symlink", "hardlink"])
def test_golden_vectors_never_overwrite_the_model(tmp_path, model, kind):
    keep = Snapshot([model])
    dest = _alias(kind, model, tmp_path / "g.golden.json")
    with pytest.raises(UserInputError, match="refusing to overwrite the model"):
        write_golden(model, dest)
    keep.unchanged()


@pytest.mark.parametrize("args", [["--out", "afile/c"], ["--out", "D/images"]])
def test_build_cache_out_under_a_file_or_inside_the_data_is_refused(tmp_path, args):
    data = data_folder(tmp_path / "D")
    (tmp_path / "afile").write_text("keep")
    keep = Snapshot(sorted(p for p in data.rglob("*") if p.is_file()))
    out = tmp_path / args[1]
    result = cli("build-cache", "--duts-root", data, "--out", out, "--quiet")
    assert result.exit_code == 2 and str(out) in error_line(result)
    keep.unchanged()


def test_fetch_dest_under_a_file_is_refused_without_network(tmp_path):
    (tmp_path / "afile").write_text("keep")
    dest = tmp_path / "afile" / "d"
    result = cli("fetch", "duts-tr", "--dest", dest, "--quiet")
    refused(result, 2, dest, "is a file, not a folder")


# -- the shared mechanism the train/export hooks call ------------------------------------------


def test_release_outputs_may_not_alias_the_checkpoint_or_each_other(tmp_path):
    ckpt = tmp_path / "last.pt"
    ckpt.write_bytes(b"checkpoint")
    with pytest.raises(UserInputError, match="refusing to overwrite the checkpoint"):
        check_release_outputs(ckpt, reads=[("the checkpoint", ckpt)])
    out = tmp_path / "x.onnx"
    with pytest.raises(UserInputError, match="--metrics-out and --output"):
        check_release_outputs(out, out)
    with pytest.raises(UserInputError, match="--metrics-out and the golden vectors"):
        check_release_outputs(out, tmp_path / "x.golden.json")
    link = tmp_path / "m.json"
    link.symlink_to(out)  # dangling: the two outputs still resolve to one file
    with pytest.raises(UserInputError, match="--metrics-out and --output"):
        check_release_outputs(out, link)
    assert ckpt.read_bytes() == b"checkpoint"


def test_release_output_may_not_be_a_training_file(tmp_path):
    data = data_folder(tmp_path / "D")
    image = data / "images" / "img_000.jpg"
    with pytest.raises(UserInputError, match="the training image"):
        check_release_outputs(image, reads=training_files(data))
    link = tmp_path / "x.onnx"
    os.link(data / "masks" / "img_001.png", link)
    with pytest.raises(UserInputError, match="the training mask"):
        check_release_outputs(link, reads=training_files(data))


def test_release_outputs_under_a_file_are_refused(tmp_path):
    (tmp_path / "afile").write_text("keep")
    with pytest.raises(UserInputError, match="is a file, not a folder"):
        check_release_outputs(tmp_path / "afile" / "x.onnx")


def test_refuse_aliases_passes_distinct_paths(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text("a")
    refuse_aliases([("the input", a)], [("the output", b), ("the other output", tmp_path / "c")])


# -- the same rules through train / export, once the hooks are in (see docs/refusals.md) -------


def test_export_output_onto_the_checkpoint_is_refused(tmp_path):
    ckpt = tmp_path / "last.pt"
    ckpt.write_bytes(b"not really a checkpoint")
    keep = Snapshot([ckpt])
    result = cli("export", ckpt, "--output", ckpt)
    refused(result, 2, ckpt, "refusing to overwrite the checkpoint")
    keep.unchanged()


@pytest.mark.parametrize("metrics", ["x.onnx", "x.golden.json"])
def test_export_metrics_onto_the_model_or_golden_is_refused(tmp_path, metrics):
    ckpt = tmp_path / "last.pt"
    ckpt.write_bytes(b"not really a checkpoint")
    out = tmp_path / "x.onnx"
    result = cli("export", ckpt, "--output", out, "--metrics-out", tmp_path / metrics)
    refused(result, 2, tmp_path / metrics, "--metrics-out")
    assert not out.exists()


def test_export_of_a_fifo_checkpoint_is_refused_at_once(tmp_path):
    pipe = fifo(tmp_path / "last.pt")
    result = cli("export", pipe, "--output", tmp_path / "x.onnx", timeout=20)
    refused(result, 2, pipe, "FIFO")


def test_train_output_onto_a_training_image_is_refused_before_training(tmp_path):
    data = data_folder(tmp_path / "D", n=3)
    image = data / "images" / "img_000.jpg"
    keep = Snapshot(sorted(p for p in data.rglob("*") if p.is_file()))
    result = cli(
        "train",
        "--duts-root",
        data,
        "--output",
        image,
        "--preset",
        "anchor",
        "--epochs",
        "1",
        "--quiet",
    )
    refused(result, 2, image, "refusing to overwrite the training image")
    keep.unchanged()
