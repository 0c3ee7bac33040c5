"""Flicker metrics and smoothing on synthetic sequences with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from sod_train.errors import UserInputError
from sod_train.video.run import Smoother, map_stats
from sod_train.video.stability import BinaryIoU, MeanChange, Stability, average, binary_iou


def columns(*cols: int, width: int = 4, high: float = 0.9, low: float = 0.1) -> np.ndarray:
    """A 4 x width map: ``high`` in the given columns, ``low`` elsewhere."""
    m = np.full((4, width), low, np.float32)
    m[:, list(cols)] = high
    return m


def test_iou_of_a_known_sequence():
    metric = BinaryIoU()
    for m in (columns(0, 1), columns(0, 1), columns(1, 2)):
        metric.step(m)
    # transitions: identical (IoU 1), then 4 shared of 12 pixels (IoU 1/3)
    assert metric.ious == pytest.approx([1.0, 1 / 3])
    res = metric.get_results()
    assert res["iou_mean"] == pytest.approx(2 / 3)
    # numpy's linear 5th percentile of [1/3, 1]: 1/3 + 0.05 * (2/3)
    assert res["iou_p5"] == pytest.approx(1 / 3 + 0.05 * 2 / 3)


def test_threshold_is_strict_and_empty_pairs_agree():
    assert binary_iou(np.zeros((2, 2), bool), np.zeros((2, 2), bool)) == 1.0
    metric = BinaryIoU()
    for m in (np.full((4, 3), 0.5, np.float32), np.zeros((4, 3), np.float32), columns(1, width=3)):
        metric.step(m)
    assert metric.ious == [1.0, 0.0]  # 0.5 is background; empty -> something is 0


def test_p5_is_numpys_linear_percentile():
    metric = BinaryIoU()
    seq = [columns(0, 1)] * 20 + [columns(3)] + [columns(0, 1)] * 20
    for m in seq:
        metric.step(m)
    res = metric.get_results()
    assert res["iou_mean"] == pytest.approx(38 / 40)
    # two transitions of 40 are 0: rank 0.05 * 39 = 1.95 lies between the 2nd (0) and 3rd (1)
    assert res["iou_p5"] == pytest.approx(0.95)
    metric.step(columns(3))
    metric.step(columns(0, 1))  # two more zeros: 4 of 42, rank 2.05 -> 0
    assert metric.get_results()["iou_p5"] == pytest.approx(0.0)


def test_mean_change_and_ground_truth_masks():
    change = MeanChange()
    for value in (0.2, 0.5, 0.4):
        change.step(value)
    assert change.get_results()["mean_change"] == pytest.approx((0.3 + 0.1) / 2)
    gt = Stability()  # boolean ground truth: mean is the foreground fraction
    a = np.zeros((4, 4), bool)
    a[:2] = True
    b = np.zeros((4, 4), bool)
    b[:1] = True
    gt.step(a)
    gt.step(b)
    res = gt.get_results()
    assert res == pytest.approx({"iou_mean": 0.5, "iou_p5": 0.5, "mean_change": 0.25})


def test_one_frame_has_no_transition_and_average_skips_none():
    single = Stability()
    single.step(columns(0))
    assert single.get_results() == {"iou_mean": None, "iou_p5": None, "mean_change": None}
    avg = average([single.get_results(), {"iou_mean": 0.5, "iou_p5": 0.25, "mean_change": 0.1}])
    assert avg == {"iou_mean": 0.5, "iou_p5": 0.25, "mean_change": 0.1}


def test_shape_change_is_an_error():
    metric = BinaryIoU()
    metric.step(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="shape"):
        metric.step(np.zeros((3, 2)))


def test_smoother_is_an_exponential_moving_average():
    smooth = Smoother(0.5)
    outs = [smooth(np.full((2, 2), v, np.float32)).copy() for v in (0.0, 1.0, 1.0)]
    assert [float(o[0, 0]) for o in outs] == [0.0, 0.5, 0.75]
    off = Smoother(0.0)
    assert float(off(np.ones((1, 1), np.float32))[0, 0]) == 1.0
    with pytest.raises(UserInputError):
        Smoother(1.0)


def test_smoothing_raises_iou_of_a_flickering_sequence():
    flicker = [columns(0, 1, high=0.9 if t % 2 == 0 else 0.45) for t in range(10)]
    raw, smoothed = Stability(), Stability()
    smooth = Smoother(0.6)
    for m in flicker:
        raw.step(m)
        smoothed.step(smooth(m))
    assert raw.get_results()["iou_mean"] == 0.0
    assert smoothed.get_results()["iou_mean"] == 1.0


def test_map_stats_in_double_precision():
    m = np.array([[0.1, 0.2], [0.3, 0.4]], np.float32)
    mean, var = map_stats(m)
    expected = np.array([0.1, 0.2, 0.3, 0.4], np.float32).astype(np.float64)
    assert mean == expected.mean() and var == pytest.approx(expected.var(), abs=1e-15)
