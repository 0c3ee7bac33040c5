"""The fast video path equals the reference path bit for bit.

Reference: RGB8 by the documented float32 steps on upsampled chroma (written out here,
independently of ``video/colour.py``), the model input by ``to_model_input`` and the map by
``SaliencyModel.map``. Fast: ``planes_input`` (planar arithmetic in bands, straight from
the YUV planes) and ``process_video`` with the prefetch worker. Several sizes (more rows
than a band, odd sizes with ceil-sized chroma), every chroma layout and bit depth.
"""

from __future__ import annotations

import io
import threading
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sod_train.data.imageio import to_model_input
from sod_train.errors import UserInputError
from sod_train.paths import MODEL_DIR
from sod_train.video import colour, run
from sod_train.video import pipeline as pipeline_module
from sod_train.video.colour import MATRICES, RANGES, Planes, level_bands, yuv_to_rgb
from sod_train.video.pipeline import Buffers, Outputs, pipeline, prepared, process_video
from sod_train.video.run import load_model, map_stats, planes_input
from sod_train.video.source import open_video
from sod_train.video.y4m import COLOURSPACES, Layout, y4m_frame, y4m_header

SMOKE = MODEL_DIR / "sod_tiny_smoke_cpu_v0.onnx"
F = np.float32
# (height, width, chroma height, chroma width): 4:2:0, 4:2:2, 4:4:4, more rows than a band
# (colour.BAND_ROWS) and not a multiple of it, ceil-sized chroma of odd sizes, one row.
SHAPES = [
    (12, 16, 6, 8),
    (38, 48, 38, 24),
    (30, 40, 30, 40),
    (150, 34, 75, 17),
    (7, 9, 4, 5),
    (5, 7, 5, 4),
    (1, 6, 1, 3),
]


def bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


def random_planes(rng, shape, depth: int, mono: bool = False) -> Planes:
    h, w, ch, cw = shape
    dtype = np.uint8 if depth == 8 else np.dtype("<u2")
    # deep containers also hold values above the depth's maximum (they clamp)
    top = 256 if depth == 8 else (1 << depth) + 64
    y, u, v = (rng.integers(0, top, s).astype(dtype) for s in ((h, w), (ch, cw), (ch, cw)))
    return Planes(y, None, None, depth) if mono else Planes(y, u, v, depth)


def documented_rgb(planes: Planes, matrix: str, value_range: str) -> np.ndarray:
    """docs/video.md steps 1-5, written out on full-size arrays."""
    h, w = planes.size
    depth = planes.depth
    neutral = np.full((h, w), 1 << (depth - 1))
    y = planes.y.astype(np.int64)
    if planes.u is None or planes.v is None:
        u = v = neutral
    else:  # nearest neighbour: pixel (i, j) takes chroma [i >> sy][j >> sx]
        rows = np.arange(h) >> (1 if planes.u.shape[0] < h else 0)
        cols = np.arange(w) >> (1 if planes.u.shape[1] < w else 0)
        u, v = (c.astype(np.int64)[rows[:, None], cols[None, :]] for c in (planes.u, planes.v))
    if depth > 8:
        y, u, v = (np.minimum(a, (1 << depth) - 1) for a in (y, u, v))
        if matrix == "host":
            s = depth - 8
            y, u, v = ((a + (1 << (s - 1))) >> s for a in (y, u, v))
            depth = 8
    k = 1 << (depth - 8)
    if value_range == "limited":
        yn = (y.astype(F) - F(16 * k)) * (F(1) / F(219 * k))
        un, vn = ((c.astype(F) - F(128 * k)) * (F(1) / F(224 * k)) for c in (u, v))
    else:
        top = F((1 << depth) - 1)
        yn = (y.astype(F) - F(0)) * (F(1) / top)
        un, vn = ((c.astype(F) - F(1 << (depth - 1))) * (F(1) / top) for c in (u, v))
    kr, kgu, kgv, kb = (F(c) for c in MATRICES[matrix])
    rgb = [yn + kr * vn, (yn - kgu * un) - kgv * vn, yn + kb * un]
    return np.stack(
        [(np.clip(c, F(0), F(1)) * F(255) + F(0.5)).astype(np.uint8) for c in rgb], axis=-1
    )


@pytest.mark.parametrize("depth", [8, 10, 12])
@pytest.mark.parametrize("shape", SHAPES)
def test_planes_input_equals_to_model_input_of_the_documented_rgb(shape, depth):
    rng = np.random.default_rng(depth * 1000 + shape[0] * 7 + shape[1])
    for matrix in MATRICES:
        for value_range in RANGES:
            for mono in (False, True):
                planes = random_planes(rng, shape, depth, mono)
                rgb = documented_rgb(planes, matrix, value_range)
                assert np.array_equal(yuv_to_rgb(planes, matrix, value_range), rgb)
                expected = to_model_input(rgb)
                assert np.array_equal(
                    bits(planes_input(planes, matrix, value_range)), bits(expected)
                ), (matrix, value_range, mono)


def test_planes_input_reuses_a_dirty_buffer_and_any_band_height():
    rng = np.random.default_rng(5)
    planes = random_planes(rng, (150, 34, 75, 17), 8)
    expected = bits(to_model_input(yuv_to_rgb(planes)))
    out = np.full((1, 3, 150, 34), np.nan, dtype=np.float32)
    assert planes_input(planes, "host", "limited", out) is out
    assert np.array_equal(bits(out), expected)
    whole = colour.rgb_levels(planes)
    for rows in (1, 2, 3, 64, 1000):
        banded = np.empty_like(whole)
        heights = [band.shape[1] for band in level_bands(planes, out=banded, rows=rows)]
        assert sum(heights) == 150
        assert np.array_equal(bits(banded), bits(whole))


def test_normalisation_arithmetic_is_to_model_inputs_values_else_the_table(monkeypatch):
    # On IEEE float32 numpy the three passes give to_model_input's values for all 256 codes.
    assert run._normalisation() is not None
    rng = np.random.default_rng(9)
    planes = random_planes(rng, (38, 48, 38, 24), 8)
    expected = bits(to_model_input(yuv_to_rgb(planes)))
    monkeypatch.setattr(run, "_normalisation", lambda: None)  # the lookup fallback
    assert np.array_equal(bits(planes_input(planes, "host", "limited")), expected)


def workers() -> list[str]:
    """The video pipeline's worker threads still alive."""
    return [t.name for t in threading.enumerate() if t.name.startswith("sod-train-video-")]


def write_clip(path: Path, colourspace: str, w: int, h: int, n: int, seed: int) -> list[Planes]:
    """A y4m of n frames of smooth random-ish content (every layout and depth)."""
    sub, depth = COLOURSPACES[colourspace]
    layout = Layout(w, h, sub, depth)
    rng = np.random.default_rng(seed)
    ch, cw = layout.chroma_size
    frames = []
    data = y4m_header(w, h, Fraction(25), colourspace)
    for t in range(n):
        scale = 1 << (depth - 8)
        yy, xx = np.mgrid[0:h, 0:w]
        disc = (xx - w // 4 - 2 * t) ** 2 + (yy - h // 2) ** 2 < (min(w, h) // 3) ** 2
        y = np.where(disc, 200, 30 + rng.integers(0, 60, (h, w))) * scale
        dtype = np.uint8 if depth == 8 else "<u2"
        if sub is None:
            planes = Planes(y.astype(dtype), None, None, depth)
        else:
            u, v = rng.integers(16, 240, (2, ch, cw)) * scale
            planes = Planes(y.astype(dtype), u.astype(dtype), v.astype(dtype), depth)
        frames.append(planes)
        data += y4m_frame(planes)
    path.write_bytes(data)
    return frames


def reference_rows(model, frames: list[Planes]) -> list[tuple[float, float]]:
    """saliency_mean/var of SaliencyModel.map on the documented RGB, frame by frame."""
    return [map_stats(model.map(documented_rgb(p, "host", "limited"))) for p in frames]


def run_rows(path: Path, model, prefetch: int, **kw) -> list[dict]:
    with open_video(path) as video:
        result = process_video(
            video,
            model,
            SMOKE,
            Outputs(csv_stream=io.StringIO()),
            quiet=True,
            prefetch=prefetch,
            **kw,
        )
    return result.rows


CLIPS = [
    ("420jpeg", 34, 26),
    ("420mpeg2", 64, 150),
    ("422", 48, 38),
    ("444", 40, 30),
    ("mono", 20, 14),
    ("420p10", 32, 24),
    ("444p12", 18, 10),
]


@pytest.mark.parametrize(("colourspace", "w", "h"), CLIPS)
def test_process_video_rows_equal_the_reference_bit_for_bit(tmp_path, colourspace, w, h):
    path = tmp_path / "clip.y4m"
    frames = write_clip(path, colourspace, w, h, 6, seed=w * h)
    model = load_model(SMOKE, 1)
    expected = reference_rows(model, frames)
    for prefetch in (0, 1, 2):
        rows = run_rows(path, model, prefetch)
        assert [r["frame"] for r in rows] == list(range(6))
        got = [(r["saliency_mean"], r["saliency_var"]) for r in rows]
        assert got == expected, prefetch  # float equality: the very same bits
        assert all(r["ms"] > 0 for r in rows)


def test_outputs_with_pictures_are_the_same_bytes_with_and_without_the_worker(tmp_path):
    path = tmp_path / "clip.y4m"
    write_clip(path, "422", 34, 26, 4, seed=1)
    model = load_model(SMOKE, 1)
    written = []
    for prefetch in (0, 1):
        out = tmp_path / f"out{prefetch}"
        with open_video(path) as video:
            process_video(
                video,
                model,
                SMOKE,
                Outputs(csv=out / "f.csv", maps=out / "maps", overlay=out / "o.y4m"),
                quiet=True,
                prefetch=prefetch,
            )
        maps = sorted((out / "maps").iterdir())
        written.append([(out / "o.y4m").read_bytes()] + [m.read_bytes() for m in maps])
    assert len(written[0]) == 5
    assert written[0] == written[1]


def test_an_error_in_the_worker_is_the_same_one_line_and_the_worker_ends(tmp_path):
    path = tmp_path / "clip.y4m"
    write_clip(path, "420jpeg", 34, 26, 5, seed=2)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])  # frame 4 truncated
    model = load_model(SMOKE, 1)
    messages = []
    for prefetch in (0, 1, 2):
        with pytest.raises(UserInputError) as info:
            run_rows(path, model, prefetch)
        messages.append(str(info.value))
        # rows before the bad frame are those of a good run; --max-frames stops before it
        assert len(run_rows(path, model, prefetch, max_frames=4)) == 4
    assert len(set(messages)) == 1 and "frame 4 is truncated" in messages[0]
    assert "\n" not in messages[0]
    assert workers() == []


def test_memory_is_a_few_fixed_buffers_and_folders_borrow_none(tmp_path):
    path = tmp_path / "clip.y4m"
    write_clip(path, "420jpeg", 16, 12, 12, seed=3)
    model = load_model(SMOKE, 1)
    seen = set()
    original = pipeline_module.frame_input

    def spy(frame, out=None):
        x = original(frame, out)
        seen.add(id(x))
        return x

    pipeline_module.frame_input = spy
    try:
        assert len(run_rows(path, model, prefetch=2)) == 12
        assert len(seen) <= 4  # ahead + 2 buffers, reused whatever the video's length
        seen.clear()
        assert len(run_rows(path, model, prefetch=0)) == 12
        assert len(seen) == 1  # one stage at a time: the one buffer, again and again
        folder = tmp_path / "frames"
        folder.mkdir()
        for i in range(3):
            Image.new("RGB", (16, 12), (40 * i, 90, 200)).save(folder / f"{i}.png")
        buffers = Buffers(3, threading.Event())
        items = list(prepared(open_video(folder).frames(), False, buffers))
        assert len(items) == 3 and not any(item.pooled for item in items)
        assert buffers.spare == 3  # a folder's frames take no buffer, so none is given back
    finally:
        pipeline_module.frame_input = original


def test_leaving_early_stops_the_workers(tmp_path):
    path = tmp_path / "clip.y4m"
    write_clip(path, "420jpeg", 16, 12, 12, seed=4)
    model = load_model(SMOKE, 1)
    with open_video(path) as video, pipeline(video.frames(), model, SMOKE, True, 1) as items:
        first = next(items)
        assert first.frame.index == 0 and first.x.shape == (12, 16)
        assert sorted(workers()) == ["sod-train-video-model", "sod-train-video-read"]
    assert workers() == []
