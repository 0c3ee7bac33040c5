"""The numpy SOD metrics agree with PySODMetrics, and their helpers with scipy.ndimage."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from sod_train.evaluate import sod_metrics as sm

REPO = Path(__file__).resolve().parents[1]
MINI = REPO.parent / "shared" / "data" / "duts-te-mini"
PSM_REASON = "PySODMetrics (py_sod_metrics, with scipy) is the reference: pip install -e '.[test]'"
N_REAL = 24  # pairs per prediction kind: enough variety, a few seconds with the reference


def _reference(pairs: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """The nine metrics computed by PySODMetrics (the test extra) on uint8 pairs."""
    psm = pytest.importorskip("py_sod_metrics", reason=PSM_REASON)
    fm = psm.FmeasureV2(
        metric_handlers={
            "fm": psm.FmeasureHandler(with_dynamic=True, with_adaptive=True, beta=0.3),
            "iou": psm.IOUHandler(with_dynamic=False, with_adaptive=False, with_binary=True),
        }
    )
    wfm, smeasure, em, mae = psm.WeightedFmeasure(), psm.Smeasure(), psm.Emeasure(), psm.MAE()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for pred, gt in pairs:
            for metric in (fm, wfm, smeasure, em, mae):
                metric.step(pred, gt)
        f = fm.get_results()
        curve = em.get_results()["em"]["curve"]
        return {
            "maxF": f["fm"]["dynamic"].max(),
            "meanF": f["fm"]["dynamic"].mean(),
            "adpF": f["fm"]["adaptive"],
            "wF": wfm.get_results()["wfm"],
            "Sm": smeasure.get_results()["sm"],
            "meanEm": curve.mean(),
            "maxEm": curve.max(),
            "MAE": mae.get_results()["mae"],
            "IoU": f["iou"]["binary"],
        }


def _ours(pairs: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    metrics = sm.SODMetrics()
    for pred, gt in pairs:
        metrics.step(pred, gt)
    return metrics.get_results()


def _assert_agree(pairs: list[tuple[np.ndarray, np.ndarray]], skip: tuple[str, ...] = ()) -> None:
    ref, ours = _reference(pairs), _ours(pairs)
    assert list(ours) == list(sm.METRIC_KEYS)
    for key in sm.METRIC_KEYS:
        if key in skip:
            continue
        # 1e-4 absolute as required; relative for the E-measure of tiny images, which is
        # scaled by N / (N - 1 + eps) and reaches 1/eps for one pixel.
        assert math.isclose(ours[key], ref[key], rel_tol=1e-9, abs_tol=1e-4), (key, ours, ref)


# ------------------------------------------------------------------ real pairs


@pytest.fixture(scope="module")
def real_pairs() -> list[tuple[Path, np.ndarray]]:
    if not MINI.is_dir():
        pytest.skip(f"needs {MINI} (100 real DUTS-TE pairs); see README 'Test data'")
    masks = sorted((MINI / "DUTS-TE-Mask").glob("*.png"))[:N_REAL]
    return [
        (MINI / "DUTS-TE-Image" / f"{m.stem}.jpg", np.asarray(Image.open(m).convert("L")))
        for m in masks
    ]


def test_agrees_with_pysodmetrics_on_blurred_noisy_masks(real_pairs):
    rng = np.random.default_rng(0)
    pairs = []
    for _, gt in real_pairs:
        blur = np.asarray(Image.fromarray(gt).filter(ImageFilter.GaussianBlur(6)), dtype=np.float64)
        pred = np.clip(0.8 * blur + 20 + rng.normal(0, 20, gt.shape), 0, 255).astype(np.uint8)
        pairs.append((pred, gt))
    _assert_agree(pairs)


def test_agrees_with_pysodmetrics_on_image_derived_maps(real_pairs):
    # A deterministic map from the picture alone: inverted, posterised luminance; it has
    # large flat regions (ties at every threshold) and little to do with the mask.
    pairs = []
    for image, gt in real_pairs:
        grey = np.asarray(Image.open(image).convert("L"), dtype=np.uint8)
        pairs.append(((255 - grey) // 32 * 32, gt))
    _assert_agree(pairs)


def test_agrees_per_image_on_hard_binary_maps(real_pairs):
    # Thresholded blur: binary maps (0/255), so the adaptive and 0.5 cuts sit on exact levels.
    for _, gt in real_pairs[:6]:
        blur = np.asarray(Image.fromarray(gt).filter(ImageFilter.GaussianBlur(8)))
        _assert_agree([((blur > 100).astype(np.uint8) * 255, gt)])


def test_a_perfect_map_scores_perfectly(real_pairs):
    _, gt = real_pairs[0]
    result = _ours([(np.where(gt > 128, 255, 0).astype(np.uint8), gt)])
    assert result["MAE"] == 0 and result["IoU"] == 1 and result["maxF"] == pytest.approx(1)
    assert result["wF"] == pytest.approx(1) and result["Sm"] == pytest.approx(1)


# ------------------------------------------------------------------ edge cases


def _disc(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return (((yy - h / 2) ** 2 + (xx - w / 3) ** 2) < (min(h, w) / 3) ** 2).astype(np.uint8) * 255


@pytest.mark.parametrize("pred_kind", ["ramp", "const0", "const128", "const255", "mask", "inverse"])
@pytest.mark.parametrize("gt_kind", ["zeros", "ones", "disc"])
def test_edge_cases_agree(pred_kind, gt_kind):
    h, w = 23, 31
    gt = {"zeros": np.zeros((h, w)), "ones": np.full((h, w), 255), "disc": _disc(h, w)}[gt_kind]
    gt = gt.astype(np.uint8)
    ramp = (np.add.outer(np.arange(h) * 5, np.arange(w) * 3) % 256).astype(np.uint8)
    pred = {
        "ramp": ramp,
        "const0": np.zeros((h, w), np.uint8),
        "const128": np.full((h, w), 128, np.uint8),
        "const255": np.full((h, w), 255, np.uint8),
        "mask": gt,
        "inverse": 255 - gt,
    }[pred_kind]
    _assert_agree([(pred, gt)])


@pytest.mark.parametrize(
    ("pred", "gt"),
    [
        ([[7]], [[255]]),
        ([[7]], [[0]]),
        ([[200]], [[200]]),
        ([[0, 10, 255], [3, 4, 5]], [[255, 0, 0], [0, 255, 0]]),
        ([[9, 9, 9], [9, 9, 9]], [[0, 255, 0], [0, 0, 0]]),
        ([[0, 255, 30], [90, 4, 5], [7, 7, 200]], [[0, 0, 0], [255, 255, 255], [0, 0, 0]]),
    ],
)
def test_tiny_images_agree(pred, gt):
    _assert_agree([(np.array(pred, np.uint8), np.array(gt, np.uint8))])


@pytest.mark.parametrize("level", [3, 5, 7, 64, 200])
def test_flat_quadrant_over_flat_mask_agrees(level):
    # An L-shaped object leaves the bottom-right S-measure quadrant all background, and
    # the map there is one level. That quadrant's SSIM is 1 or 0 depending on whether
    # the float mean of the level rounds back to itself exactly (at this size levels 5
    # and 7 do not, 3, 64 and 200 do); we must follow the reference either way.
    gt = np.zeros((23, 31), np.uint8)
    gt[:3, :] = 255
    gt[:, :3] = 255
    pred = np.full(gt.shape, level, np.uint8)
    pred[0, :2] = (0, 255)
    _assert_agree([(pred, gt)])


def test_empty_quadrant_is_finite_where_the_reference_gives_nan():
    # Foreground only in the last column puts the S-measure split on the right edge:
    # the right quadrants are empty (weight 0). PySODMetrics returns NaN; we count them 0.
    pred = np.array([[0, 10, 255], [3, 4, 5]], np.uint8)
    gt = np.array([[0, 0, 255], [0, 0, 255]], np.uint8)
    ref = _reference([(pred, gt)])
    ours = _ours([(pred, gt)])
    assert math.isnan(ref["Sm"]) and math.isfinite(ours["Sm"])
    _assert_agree([(pred, gt)], skip=("Sm",))


def test_bad_inputs_are_refused():
    metric = sm.SODMetrics()
    with pytest.raises(TypeError):
        metric.step(np.zeros((4, 4), np.float32), np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="same 2-D shape"):
        metric.step(np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.uint8))
    with pytest.raises(ValueError, match="no images"):
        metric.get_results()


# ------------------------------------------------------------------ helpers vs scipy


def _random_masks() -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    masks = [np.ones((5, 7), bool), np.eye(9, 6, dtype=bool), np.array([[True]])]
    for _ in range(150):
        h, w = rng.integers(1, 48, size=2)
        mask = rng.random((h, w)) < rng.choice([0.005, 0.03, 0.2, 0.6, 0.95])
        if rng.random() < 0.3:  # blocky masks: long runs, many equidistant candidates
            mask = np.kron(mask[: (h + 3) // 4, : (w + 3) // 4], np.ones((4, 4), bool))[:h, :w]
        if mask.any():
            masks.append(mask)
    return masks


def test_distance_transform_matches_scipy_including_ties():
    ndimage = pytest.importorskip("scipy.ndimage", reason=PSM_REASON)
    for mask in _random_masks():
        dist, (rows, cols) = ndimage.distance_transform_edt(~mask, return_indices=True)
        ours, our_rows, our_cols = sm.distance_transform(mask)
        np.testing.assert_array_equal(ours, dist)
        np.testing.assert_array_equal(our_rows, rows)
        np.testing.assert_array_equal(our_cols, cols)


def test_distance_transform_matches_scipy_on_real_masks(real_pairs):
    ndimage = pytest.importorskip("scipy.ndimage", reason=PSM_REASON)
    for _, gt in real_pairs[:8]:
        mask = gt > 128
        dist, (rows, cols) = ndimage.distance_transform_edt(~mask, return_indices=True)
        ours, our_rows, our_cols = sm.distance_transform(mask)
        np.testing.assert_array_equal(ours, dist)
        np.testing.assert_array_equal(our_rows, rows)
        np.testing.assert_array_equal(our_cols, cols)


def test_distance_transform_needs_a_true_pixel():
    with pytest.raises(ValueError):
        sm.distance_transform(np.zeros((3, 3), bool))


def test_convolution_matches_scipy_zero_padding():
    ndimage = pytest.importorskip("scipy.ndimage", reason=PSM_REASON)
    rng = np.random.default_rng(2)
    for h, w, kh, kw in [(1, 1, 7, 7), (2, 9, 3, 5), (40, 33, 7, 7), (5, 3, 9, 1)]:
        image = rng.random((h, w))
        k_rows, k_cols = rng.random(kh), rng.random(kw)  # asymmetric: checks the flip
        expected = ndimage.convolve(image, np.outer(k_rows, k_cols), mode="constant", cval=0.0)
        got = sm.convolve_separable(image, k_rows, k_cols)
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-13)


def test_gaussian_kernel_is_matlab_fspecial():
    psm = pytest.importorskip("py_sod_metrics", reason=PSM_REASON)
    k = sm.gaussian_kernel_1d(7, 5.0)
    reference = psm.WeightedFmeasure().matlab_style_gauss2D((7, 7), sigma=5)
    np.testing.assert_allclose(np.outer(k, k), reference, rtol=1e-14, atol=0)


# ------------------------------------------------------------------ curves and per image


def _reference_curves(pairs: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    """PySODMetrics' PR, F-measure and E-measure arrays, reversed to threshold 0..255."""
    psm = pytest.importorskip("py_sod_metrics", reason=PSM_REASON)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Fmeasure (not V2) warns that it is old; it has PR
        fm, em = psm.Fmeasure(), psm.Emeasure()
        for pred, gt in pairs:
            fm.step(pred, gt)
            em.step(pred, gt)
    f, e = fm.get_results(), em.get_results()
    arrays = {
        "precision": f["pr"]["p"],
        "recall": f["pr"]["r"],
        "fmeasure": f["fm"]["curve"],
        "emeasure": e["em"]["curve"],
    }
    return {key: np.asarray(value)[::-1] for key, value in arrays.items()}


def _noisy_pairs(real_pairs, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    pairs = []
    for _, gt in real_pairs:
        blur = np.asarray(Image.fromarray(gt).filter(ImageFilter.GaussianBlur(5)), dtype=np.float64)
        pred = np.clip(0.7 * blur + 30 + rng.normal(0, 25, gt.shape), 0, 255).astype(np.uint8)
        pairs.append((pred, gt))
    return pairs


def test_curves_equal_pysodmetrics_arrays(real_pairs):
    pairs = _noisy_pairs(real_pairs, 3)
    # Add an empty and a full mask: the 0/0 cases of precision and recall.
    h, w = 20, 30
    ramp = (np.arange(h * w).reshape(h, w) % 256).astype(np.uint8)
    pairs += [(ramp, np.zeros((h, w), np.uint8)), (ramp, np.full((h, w), 255, np.uint8))]
    metrics = sm.SODMetrics()
    for pred, gt in pairs:
        metrics.step(pred, gt)
    ours, ref = metrics.curves(), _reference_curves(pairs)
    assert list(ours) == list(sm.CURVE_KEYS)
    for key in sm.CURVE_KEYS:
        assert ours[key].shape == (256,)
        np.testing.assert_allclose(ours[key], ref[key], rtol=1e-9, atol=1e-9, err_msg=key)
    # The curves are what the scalars summarise.
    results = metrics.get_results()
    assert results["maxF"] == pytest.approx(ours["fmeasure"].max(), abs=1e-12)
    assert results["meanEm"] == pytest.approx(ours["emeasure"].mean(), abs=1e-12)
    # Threshold 0 selects every pixel: recall 1 wherever there is foreground.
    assert ours["recall"][0] == pytest.approx((len(pairs) - 1) / len(pairs))


def test_per_image_scores_equal_single_image_runs(real_pairs):
    pairs = _noisy_pairs(real_pairs[:8], 4)
    pairs.append((np.full((9, 9), 40, np.uint8), np.zeros((9, 9), np.uint8)))
    metrics = sm.SODMetrics()
    for pred, gt in pairs:
        metrics.step(pred, gt)
    rows = metrics.per_image()
    assert len(rows) == len(pairs)
    for row, pair in zip(rows, pairs, strict=True):
        assert list(row) == list(sm.METRIC_KEYS)
        assert row == pytest.approx(_ours([pair]), rel=1e-12, abs=1e-12)
    # Means of per-image scores give the mean-type metrics of the data set.
    results = metrics.get_results()
    for key in ("adpF", "wF", "Sm", "MAE", "IoU", "meanF", "meanEm"):
        assert np.mean([row[key] for row in rows]) == pytest.approx(results[key], abs=1e-12)
    # ... but not maxF: the max of the mean curve is not the mean of the maxima.
    assert np.mean([row["maxF"] for row in rows]) >= results["maxF"]
