"""The Python API (docs/python.md): its examples run, and it gives what the CLI gives."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import sod_train
from conftest import REPO
from sod_train.cli.main import main
from sod_train.data.synthetic import make_synthetic_duts
from sod_train.errors import UserInputError
from sod_train.release import registry

DOC = (REPO / "docs" / "python.md").read_text()
EXAMPLES = re.findall(r"```python\n(.*?)```", DOC, re.S)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A folder with the files the examples name: photo.jpg and data/DUTS-TE."""
    root = make_synthetic_duts(tmp_path / "data" / "DUTS-TE", n=6, size=(40, 52), name="DUTS-TE")
    photo = sorted((root / "DUTS-TE-Image").glob("*.jpg"))[0]
    (tmp_path / "photo.jpg").write_bytes(photo.read_bytes())
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("index", range(len(EXAMPLES)))
def test_every_example_in_the_doc_runs(workdir, index, capsys):
    assert len(EXAMPLES) == 3
    exec(compile(EXAMPLES[index], f"docs/python.md example {index + 1}", "exec"), {})
    assert capsys.readouterr().out.strip()  # each example prints what it got


def test_map_and_mask_equal_what_predict_writes(workdir):
    model = sod_train.open_model()
    photo = Image.open("photo.jpg")
    out = workdir / "out.png"
    result = CliRunner().invoke(main, ["predict", "photo.jpg", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    written = np.asarray(Image.open(out))
    assert np.array_equal(np.asarray(model.mask(photo)), written)
    assert np.array_equal(np.rint(model.map(photo) * 255).astype(np.uint8), written)
    as_array = model.map(np.asarray(photo.convert("RGB")))
    assert np.array_equal(as_array, model.map(photo))  # PIL or numpy, the same map
    binary = np.asarray(model.mask(photo, threshold=0.5))
    assert set(np.unique(binary)) <= {0, 255}
    cut = model.cutout(photo)
    assert cut.mode == "RGBA" and np.array_equal(np.asarray(cut)[..., 3], binary)


def test_evaluate_folder_equals_the_evaluate_command(workdir):
    api = sod_train.evaluate_folder("data/DUTS-TE")
    default = str(registry.default_model_path())
    result = CliRunner().invoke(
        main, ["evaluate", default, "--data", "data/DUTS-TE", "--json", "-", "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["metrics"] == api["metrics"]


def test_bad_pictures_are_one_line_errors():
    model = sod_train.open_model()
    with pytest.raises(UserInputError, match="uint8"):
        model.map(np.zeros((8, 8, 3), dtype=np.float32))
    with pytest.raises(UserInputError, match="HxW"):
        model.map(np.zeros((8, 8, 5), dtype=np.uint8))
    with pytest.raises(UserInputError, match=re.escape("nope.onnx")):
        sod_train.open_model("nope.onnx")
