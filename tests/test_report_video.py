"""``sod-train report --video``: the video section (plot, filmstrip, stability) of the report.

The section's numbers are ``sod-train video --json``'s for the same clip and model; a
repeated --video gives a section per clip; ground-truth masks add their stability row;
a video-only page needs no --data; bad clips and masks are refused in one line, exit 2,
with nothing written at --out. Tiny synthetic clips, the smoke model and a 1x1-conv model.
"""

from __future__ import annotations

import itertools
import json
import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hostile import build_model, cli, refused, save
from PIL import Image

from sod_train.data.synthetic import make_synthetic_duts
from sod_train.paths import MODEL_DIR
from sod_train.video.colour import Planes
from sod_train.video.y4m import y4m_frame, y4m_header

SMOKE = MODEL_DIR / "sod_tiny_smoke_cpu_v0.onnx"
W, H, N = 34, 26, 5


def disc(t: int, width: int = W, height: int = H) -> np.ndarray:
    """The moving disc of frame ``t``: a boolean mask, 3 px further right each frame."""
    yy, xx = np.mgrid[0:height, 0:width]
    return (xx - 8 - 3 * t) ** 2 + (yy - height // 2) ** 2 < 40


def write_y4m(path: Path, frames: int = N) -> Path:
    """``frames`` 4:2:0 frames: a bright disc moving right on a dark gradient."""
    xx = np.mgrid[0:H, 0:W][1]
    data = y4m_header(W, H, Fraction(25), "420jpeg")
    for t in range(frames):
        y = np.where(disc(t), 210, 40 + xx).astype(np.uint8)
        u = np.full((H // 2, W // 2), 110, np.uint8)
        v = np.full((H // 2, W // 2), 160, np.uint8)
        data += y4m_frame(Planes(y, u, v))
    path.write_bytes(data)
    return path


def write_frames(root: Path, frames: int = 4, masks: int | None = None) -> tuple[Path, Path]:
    """A folder of PNG frames (a yellow disc moving right) and its folder of masks."""
    (root / "frames").mkdir(parents=True)
    (root / "masks").mkdir()
    for t in range(frames):
        rgb = np.where(disc(t)[:, :, None], [230, 200, 40], [30, 60, 90]).astype(np.uint8)
        Image.fromarray(rgb).save(root / "frames" / f"{t:05d}.png")
    for t in range(frames if masks is None else masks):
        Image.fromarray((disc(t) * 255).astype(np.uint8)).save(root / "masks" / f"{t:05d}.png")
    return root / "frames", root / "masks"


@pytest.fixture(scope="module")
def conv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second model: the contract's any-size 3x3 Conv + Sigmoid."""
    return save(build_model(), tmp_path_factory.mktemp("m") / "conv.onnx")


def sections(page: str) -> list[str]:
    return re.findall(r'<section class="video">(.*?)</section>', page, re.S)


def stability_rows(section: str) -> dict[str, list[float | None]]:
    """Source -> [iou_mean, iou_p5, mean_change] from the table's full-precision values."""
    table = re.search(r'<table class="stability">(.*?)</table>', section, re.S).group(1)
    rows = {}
    for name, cells in re.findall(r'<tr data-source="([^"]*)">(.*?)</tr>', table, re.S):
        values = re.findall(r'<td(?: data-value="([^"]*)")?>', cells)
        rows[name] = [float(v) if v else None for v in values]
    return rows


def truth_figures(frames: int) -> list[float]:
    """IoU mean and p5 and mean |change| of the first ``frames`` masks, by hand (numpy)."""
    gt = [disc(t) for t in range(frames)]
    ious = [np.count_nonzero(a & b) / np.count_nonzero(a | b) for a, b in itertools.pairwise(gt)]
    changes = np.abs(np.diff([m.mean() for m in gt]))
    return [float(np.mean(ious)), float(np.percentile(ious, 5)), float(changes.mean())]


def video_json(clip: Path, model: Path, out: Path, *extra: object) -> dict:
    result = cli("video", clip, "--model", model, "--json", out, "--quiet", *extra)
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text())


def test_video_only_report_equals_video_json(tmp_path, conv):
    clip = write_y4m(tmp_path / "clip.y4m")
    out = tmp_path / "page.html"
    result = cli("report", SMOKE, conv, "--video", clip, "--out", out, "--json", "--quiet")
    assert result.exit_code == 0, result.output
    page = out.read_text()
    (section,) = sections(page)
    assert "<h2>clip.y4m</h2>" in section
    doc = json.loads(result.stdout)
    assert "data" not in doc and len(doc["videos"]) == 1
    rows = stability_rows(section)
    assert list(rows) == ["sod_tiny_smoke_cpu_v0", "conv"]  # no masks: no ground-truth row
    for label, model in (("sod_tiny_smoke_cpu_v0", SMOKE), ("conv", conv)):
        expected = video_json(clip, model, tmp_path / f"{label}.json")
        st = expected["stability"]
        assert rows[label] == [st["iou_mean"], st["iou_p5"], st["mean_change"]]
        assert doc["videos"][0]["models"][label]["stability"] == st
        means = [r["saliency_mean"] for r in expected["rows"]]
        assert doc["videos"][0]["models"][label]["saliency_mean"] == pytest.approx(np.mean(means))
    # the plot: one line per model, one point per frame; its scale is the series' range
    lines = re.findall(r'<polyline [^>]*data-series="([^"]*)" points="([^"]*)"', section)
    assert [name for name, _ in lines] == ["sod_tiny_smoke_cpu_v0", "conv"]
    assert all(len(points.split()) == N for _, points in lines)
    # the filmstrip: every frame (5 < 8 slots), each over both models' maps
    figures = re.findall(r"<figure>(.*?)</figure>", section, re.S)
    assert len(figures) == N
    assert all(f.count('<img src="data:image/jpeg;base64,') == 3 for f in figures)
    assert [re.search(r"frame (\d+)</figcaption>", f).group(1) for f in figures] == list("01234")
    # the same inputs give the same page, byte for byte (no timing in a section)
    again = tmp_path / "again.html"
    assert cli("report", SMOKE, conv, "--video", clip, "--out", again, "--quiet").exit_code == 0
    assert again.read_bytes() == out.read_bytes()


def test_the_video_command_uses_the_same_section(tmp_path):
    clip = write_y4m(tmp_path / "clip.y4m")
    mine, theirs = tmp_path / "report.html", tmp_path / "video.html"
    assert cli("report", SMOKE, "--video", clip, "--out", mine, "--quiet").exit_code == 0
    assert cli("video", clip, "--model", SMOKE, "--report", theirs, "--quiet").exit_code == 0
    a, b = sections(mine.read_text())[0], sections(theirs.read_text())[0]
    assert re.findall(r'src="([^"]*)"', a) == re.findall(r'src="([^"]*)"', b)  # same filmstrip
    assert re.findall(r'points="([^"]*)"', a) == re.findall(r'points="([^"]*)"', b)
    assert list(stability_rows(a).values()) == list(stability_rows(b).values())


def test_repeated_video_with_masks_and_data(tmp_path, conv):
    pytest.importorskip("matplotlib", reason="the report extra: pip install -e '.[report]'")
    data = make_synthetic_duts(tmp_path / "syn", n=6, size=(24, 32), seed=1, name="SYN")
    clip = write_y4m(tmp_path / "clip.y4m", frames=12)
    frames, masks = write_frames(tmp_path / "seq", frames=4)
    out = tmp_path / "page.html"
    result = cli(
        "report", conv, "--data", data, "--size", "32", "--n", "1", "--threads", "1",
        "--video", frames, "--video-masks", masks, "--video", clip,
        "--out", out, "--json", "--quiet",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert '<table class="metrics">' in page and 'id="per-image"' in page  # the data report
    first, second = sections(page)
    assert "<h2>frames</h2>" in first and "<h2>clip.y4m</h2>" in second
    # the ground truth's row: its figures on the masks, computed here by hand
    truth = truth_figures(4)
    rows = stability_rows(first)
    assert list(rows) == ["conv", "ground truth"]
    assert rows["ground truth"] == pytest.approx(truth, abs=1e-12)
    assert list(stability_rows(second)) == ["conv"]  # no masks for the second clip
    assert len(re.findall(r"<figure>", second)) == 8  # 12 frames, the filmstrip keeps 8
    doc = json.loads(result.stdout)
    assert doc["data"] == "SYN" and [v["frames"] for v in doc["videos"]] == [4, 12]
    assert doc["videos"][0]["ground truth"]["iou_mean"] == pytest.approx(truth[0])
    folder = video_json(frames, conv, tmp_path / "f.json")
    assert rows["conv"] == [folder["stability"][k] for k in ("iou_mean", "iou_p5", "mean_change")]


def test_max_frames_uses_the_first_masks(tmp_path):
    frames, masks = write_frames(tmp_path / "seq", frames=4)
    out = tmp_path / "page.html"
    result = cli(
        "report", SMOKE, "--video", frames, "--video-masks", masks, "--video-max-frames", "3",
        "--out", out, "--json", "--quiet",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    video = json.loads(result.stdout)["videos"][0]
    expected = video_json(frames, SMOKE, tmp_path / "v.json", "--max-frames", "3")
    assert video["frames"] == 3
    assert video["models"]["sod_tiny_smoke_cpu_v0"]["stability"] == expected["stability"]
    assert video["ground truth"]["iou_mean"] == pytest.approx(truth_figures(3)[0])


def test_hostile_video_inputs(tmp_path):
    out = tmp_path / "page.html"

    def report(*args: object):
        return cli("report", SMOKE, *args, "--out", out, "--quiet")

    missing = tmp_path / "nope.y4m"
    refused(report("--video", missing), 2, missing)
    garbage = tmp_path / "garbage.y4m"
    garbage.write_bytes(b"not a video at all\n")
    refused(report("--video", garbage), 2, garbage, "not a y4m file")
    empty = tmp_path / "empty.y4m"
    empty.write_bytes(y4m_header(W, H, Fraction(25), "420jpeg"))
    refused(report("--video", empty), 2, empty, "no frames")
    truncated = tmp_path / "cut.y4m"
    truncated.write_bytes(write_y4m(tmp_path / "whole.y4m").read_bytes()[:-100])
    refused(report("--video", truncated), 2, truncated, "truncated")
    nothing = tmp_path / "empty-folder"
    nothing.mkdir()
    refused(report("--video", nothing), 2, nothing, "no pictures")
    raw = tmp_path / "clip.yuv"
    raw.write_bytes(bytes(W * H * 3 // 2))
    refused(report("--video", raw), 2, raw, "raw YUV")
    frames, masks = write_frames(tmp_path / "seq", frames=4, masks=3)
    refused(report("--video", frames, "--video-masks", masks), 2, masks, "3 masks for 4 frames")
    clip = write_y4m(tmp_path / "clip.y4m")
    refused(report("--video", clip, "--video-masks", masks), 2, masks, "3 masks for 5 frames")
    refused(report("--video", clip, "--video-masks", masks, "--video-masks", masks), 2, masks)
    small, small_masks = write_frames(tmp_path / "small", frames=2)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(small_masks / "00001.png")
    refused(report("--video", small, "--video-masks", small_masks), 2, "00001.png", "mask is 8x8")
    mask = small_masks / "00000.png"
    before = mask.read_bytes()
    refused(cli("report", SMOKE, "--video", small, "--video-masks", small_masks, "--out", mask),
            2, mask, "refusing to overwrite a mask")  # fmt: skip
    assert mask.read_bytes() == before
    assert not out.exists() and not list(tmp_path.glob(".page.html*"))  # nothing half-written


def test_usage_without_data_or_video(tmp_path):
    out = tmp_path / "page.html"
    clip = write_y4m(tmp_path / "clip.y4m")
    result = cli("report", SMOKE, "--out", out)
    assert result.exit_code == 2 and "Missing option '--data'" in result.stderr
    result = cli("report", "--video", clip, "--out", out)
    assert result.exit_code == 2 and "ONNX MODEL" in result.stderr
    result = cli("report", SMOKE, "--video", clip, "--pred-dir", tmp_path, "--out", out)
    assert result.exit_code == 2 and "--pred-dir needs --data" in result.stderr
    result = cli("report", SMOKE, "--video", clip, "--size", "64", "--out", out)
    assert result.exit_code == 2 and "--size needs --data" in result.stderr
    result = cli("report", SMOKE, "--video-masks", tmp_path, "--out", out)
    assert result.exit_code == 2 and "--video-masks needs --video" in result.stderr
    data = make_synthetic_duts(tmp_path / "d", n=4, size=(16, 16))
    for option in (["--video-max-frames", "3"], ["--yuv-matrix", "bt709"], ["--range", "full"]):
        # with --data but no --video these would be silently ignored
        result = cli("report", SMOKE, "--data", data, *option, "--out", out)
        assert result.exit_code == 2 and f"{option[0]} needs --video" in result.stderr, option
    refused(cli("report", SMOKE, "--video", clip, "--out", clip), 2, clip)
    assert not out.exists()


def test_mp4_clip(tmp_path):
    av = pytest.importorskip("av", reason="needs PyAV: pip install -e '.[video]' (in .[test])")
    clip = tmp_path / "clip.mp4"
    with av.open(str(clip), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 32, 24, "yuv420p"
        for t in range(N):
            rgb = np.where(disc(t, 32, 24)[:, :, None], [230, 200, 40], [30, 60, 90])
            frame = av.VideoFrame.from_ndarray(rgb.astype(np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    out = tmp_path / "page.html"
    result = cli("report", SMOKE, "--video", clip, "--out", out, "--json", "--quiet")
    assert result.exit_code == 0, result.output
    expected = video_json(clip, SMOKE, tmp_path / "v.json")
    video = json.loads(result.stdout)["videos"][0]
    assert video["frames"] == expected["frames"] == N
    assert video["models"]["sod_tiny_smoke_cpu_v0"]["stability"] == expected["stability"]
    assert len(re.findall(r"<figure>", sections(out.read_text())[0])) == N
    masks = tmp_path / "masks"
    masks.mkdir()
    for t in range(3):
        Image.fromarray((disc(t, 32, 24) * 255).astype(np.uint8)).save(masks / f"{t}.png")
    result = cli("report", SMOKE, "--video", clip, "--video-masks", masks, "--out", out)
    refused(result, 2, masks, f"3 masks for {N} frames")
