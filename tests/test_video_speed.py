"""The per-frame shortcuts of the video loop give the same numbers as the plain formulas."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from sod_train.errors import UserInputError
from sod_train.runtime.model import SaliencyModel
from sod_train.video import run
from sod_train.video.run import map_stats


def _maps() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    sigmoid = 1 / (1 + np.exp(-4 * rng.standard_normal((1080, 1920))))
    return [
        rng.random((1, 1), dtype=np.float32),
        rng.random((7, 13), dtype=np.float32),
        sigmoid.astype(np.float32),  # 2 M values: many spans of the pairwise split
        rng.random((1081, 1923), dtype=np.float32) ** 8,  # skewed, odd size
        np.full((333, 517), 0.25, dtype=np.float32),  # variance exactly 0
        rng.random((70001, 1), dtype=np.float32),
    ]


@pytest.mark.parametrize("index", range(6))
def test_map_stats_equals_numpy_mean_and_var_bit_for_bit(index):
    saliency = _maps()[index]
    mean, var = map_stats(saliency)
    assert mean == float(np.mean(saliency, dtype=np.float64))
    assert var == float(np.var(saliency, dtype=np.float64))


def test_map_stats_of_a_strided_view_falls_back_to_numpy():
    saliency = _maps()[2][::2, 1::3]
    assert not saliency.flags.c_contiguous
    assert map_stats(saliency) == (
        float(np.mean(saliency, dtype=np.float64)),
        float(np.var(saliency, dtype=np.float64)),
    )


def test_the_pairwise_split_is_numpys_own(monkeypatch):
    """With a span smaller than numpy's split, the sum is rebuilt from many spans and still
    matches, so the split is numpy's and not a coincidence of one big span."""
    monkeypatch.setattr(run, "_LEAF", 256)
    saliency = _maps()[3]
    mean = float(np.mean(saliency, dtype=np.float64))
    total = run._squared_deviations(saliency.reshape(-1), mean)
    assert total / saliency.size == float(np.var(saliency, dtype=np.float64))
    # numpy's own sum over one whole-frame array of the squares, as np.var adds them
    squares = (saliency.reshape(-1).astype(np.float64) - mean) ** 2
    assert total == float(np.add.reduce(squares))


def _scaled_mean_model(scale: float) -> bytes:
    """input [1,3,H,W] -> scale * (mean over channels): out of [0,1] when scale is large."""
    nodes = [
        helper.make_node("ReduceMean", ["input"], ["m"], axes=[1], keepdims=1),
        helper.make_node("Mul", ["m", "s"], ["saliency_map"]),
    ]
    graph = helper.make_graph(
        nodes,
        "scaled",
        [helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, [1, 3, "H", "W"])],
        [helper.make_tensor_value_info("saliency_map", onnx.TensorProto.FLOAT, [1, 1, "H", "W"])],
        [helper.make_tensor("s", onnx.TensorProto.FLOAT, [], [scale])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    return model.SerializeToString()


@pytest.mark.parametrize("scale", [0.25, 3.0, np.inf])
def test_map_input_is_the_clipped_output_and_refuses_non_finite(scale):
    model = SaliencyModel.open(_scaled_mean_model(float(scale)))
    x = np.random.default_rng(1).random((1, 3, 37, 53), dtype=np.float32)
    if not np.isfinite(scale):
        with pytest.raises(UserInputError, match="not finite"):
            model.map_input(x, 37, 53)
        return
    expected = np.clip(model.run(x)[0, 0], 0.0, 1.0)
    got = model.map_input(x, 37, 53)
    assert got.dtype == np.float32 and got.shape == (37, 53)
    np.testing.assert_array_equal(got, expected)
    assert (got.max() == 1.0) == (scale > 1)  # clipped only when the output left [0, 1]
