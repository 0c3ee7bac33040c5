"""Video inputs: y4m parsing (every layout and the lenient tags), raw YUV, folders, PyAV
containers, and every hostile input refused through the real CLI (exit 2, one line)."""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hostile import cli, refused
from PIL import Image

from sod_train.paths import MODEL_DIR
from sod_train.video.colour import Planes, yuv_to_rgb
from sod_train.video.source import open_video
from sod_train.video.y4m import COLOURSPACES, Layout, y4m_frame, y4m_header

SMOKE = MODEL_DIR / "sod_tiny_smoke_cpu_v0.onnx"


def planes_for(layout: Layout, t: int) -> Planes:
    h, w = layout.height, layout.width
    ch, cw = layout.chroma_size
    dtype = np.uint8 if layout.depth == 8 else "<u2"
    scale = 1 << (layout.depth - 8)
    y = ((np.add.outer(np.arange(h), np.arange(w)) * 5 + 30 * t) % 220 + 16) * scale
    if layout.subsampling is None:
        return Planes(y.astype(dtype), None, None, layout.depth)
    u = ((np.arange(ch * cw).reshape(ch, cw) * 3) % 200 + 20) * scale
    v = ((np.arange(ch * cw).reshape(ch, cw) * 7) % 200 + 20) * scale
    return Planes(y.astype(dtype), u.astype(dtype), v.astype(dtype), layout.depth)


def write_y4m(
    path: Path,
    colourspace: str = "420jpeg",
    w: int = 16,
    h: int = 12,
    n: int = 3,
    header: bytes | None = None,
    frame_line: bytes = b"FRAME\n",
) -> list[Planes]:
    sub, depth = COLOURSPACES[colourspace]
    layout = Layout(w, h, sub, depth)
    frames = [planes_for(layout, t) for t in range(n)]
    data = header if header is not None else y4m_header(w, h, Fraction(25), colourspace)
    for planes in frames:
        data += frame_line + y4m_frame(planes)[len(b"FRAME\n") :]
    path.write_bytes(data)
    return frames


@pytest.mark.parametrize("colourspace", sorted(COLOURSPACES))
def test_every_supported_colourspace_reads_back(tmp_path, colourspace):
    path = tmp_path / "clip.y4m"
    written = write_y4m(path, colourspace)
    with open_video(path) as clip:
        frames = list(clip.frames())
    assert [f.index for f in frames] == [0, 1, 2]
    assert [f.pts for f in frames] == [0.0, 0.04, 0.08]
    for frame, planes in zip(frames, written, strict=True):
        assert np.array_equal(frame.planes.y, planes.y)
        assert np.array_equal(frame.rgb, yuv_to_rgb(planes))
        assert frame.rgb.shape == (12, 16, 3) and frame.rgb.dtype == np.uint8


def test_lenient_tags_and_frame_parameters(tmp_path):
    path = tmp_path / "clip.y4m"
    header = b"YUV4MPEG2 C422 W16 H12 Fbogus It A0:0 XYSCSS=422 Zfuture\n"
    written = write_y4m(path, "422", header=header, frame_line=b"FRAME Ixyz Xmeta\n")
    with open_video(path) as clip:
        assert clip.fps is None and clip.kind == "y4m 4:2:2"
        frames = list(clip.frames())
    assert [f.pts for f in frames] == [None, None, None]
    assert np.array_equal(frames[2].planes.v, written[2].v)


def test_missing_colourspace_means_420jpeg(tmp_path):
    path = tmp_path / "clip.y4m"
    write_y4m(path, "420jpeg", header=b"YUV4MPEG2 W16 H12 F30000:1001\n")
    with open_video(path) as clip:
        assert clip.kind == "y4m 4:2:0" and abs(clip.fps - 29.97) < 0.01
        assert len(list(clip.frames())) == 3


def good_header(w: int = 16, h: int = 12, c: str = "420jpeg") -> bytes:
    return y4m_header(w, h, Fraction(25), c)


HOSTILE = {
    "wrong magic": (b"YUV4MPEG3 W16 H12 F25:1\n" + b"x" * 400, "not a y4m file"),
    "no width": (b"YUV4MPEG2 H12 F25:1 C420jpeg\n" + b"x" * 400, "no width (W)"),
    "no height": (b"YUV4MPEG2 W16 F25:1\n" + b"x" * 400, "no height (H)"),
    "bad width": (b"YUV4MPEG2 W-16 H12\n" + b"x" * 400, "bad W"),
    "odd 420": (good_header(15, 12), "4:2:0 needs an even width and height, got 15x12"),
    "odd 420 height": (good_header(16, 11), "got 16x11"),
    "odd 422": (good_header(15, 12, "422"), "4:2:2 needs an even width"),
    "huge": (good_header(100000, 12), "outside"),
    "zero size": (good_header(0, 12), "outside"),
    "16-bit": (good_header(16, 12, "420p16"), "16-bit"),
    "unknown colourspace": (good_header(16, 12, "411"), "unknown or unsupported"),
    "alpha": (good_header(16, 12, "444alpha"), "unknown or unsupported"),
    "no frames": (good_header(), "no frames"),
    "header without newline": (b"YUV4MPEG2 W16 H12", "truncated"),
    "empty file": (b"", "not a y4m file"),
    "binary header": (b"YUV4MPEG2 W16 H12 \xff\xfe\n", "not ASCII"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_headers_are_one_line_exit_2(tmp_path, case):
    data, words = HOSTILE[case]
    path = tmp_path / "bad.y4m"
    path.write_bytes(data)
    out = tmp_path / "out.csv"
    result = cli("video", path, "--model", SMOKE, "--csv", out, "--quiet")
    refused(result, 2, path, words)
    assert not out.exists()


def test_truncated_frame_leaves_no_output(tmp_path):
    path = tmp_path / "cut.y4m"
    write_y4m(path)
    path.write_bytes(path.read_bytes()[:-50])
    outs = [tmp_path / "o.csv", tmp_path / "o.json", tmp_path / "o.y4m", tmp_path / "r.html"]
    result = cli(
        "video",
        path,
        "--model",
        SMOKE,
        "--csv",
        outs[0],
        "--json",
        outs[1],
        "--overlay",
        outs[2],
        "--report",
        outs[3],
        "--maps",
        tmp_path / "maps",
        "--quiet",
    )
    refused(result, 2, path, "frame 2 is truncated")
    assert not any(p.exists() for p in outs)
    assert not (tmp_path / "maps").exists() or not any((tmp_path / "maps").iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.y4m"]  # no temp files left


@pytest.mark.parametrize(
    ("tail", "words"),
    [
        (b"FRAM", "frame 3 is truncated"),
        (b"GARBAGE\n" + b"x" * 300, "frame 3 does not start with a 'FRAME' line"),
    ],
)
def test_bad_data_after_the_last_frame(tmp_path, tail, words):
    path = tmp_path / "tail.y4m"
    write_y4m(path)
    path.write_bytes(path.read_bytes() + tail)
    refused(
        cli("video", path, "--model", SMOKE, "--quiet", "--csv", tmp_path / "o.csv"), 2, path, words
    )


def test_special_file_and_missing_input(tmp_path):
    refused(
        cli("video", tmp_path / "nope.y4m", "--model", SMOKE), 2, tmp_path / "nope.y4m", "not found"
    )


# ---------------------------------------------------------------------------- raw YUV


def test_raw_yuv_reads_like_y4m(tmp_path):
    y4m = tmp_path / "clip.y4m"
    frames = write_y4m(y4m, "422", n=2)
    raw = tmp_path / "clip.yuv"
    raw.write_bytes(b"".join(y4m_frame(p)[6:] for p in frames))
    with open_video(raw, size="16x12", pix_fmt="yuv422p", fps=10) as clip:
        got = list(clip.frames())
    with open_video(y4m) as clip:
        want = list(clip.frames())
    assert [f.pts for f in got] == [0.0, 0.1]
    assert all(np.array_equal(a.rgb, b.rgb) for a, b in zip(got, want, strict=True))


def test_raw_10bit(tmp_path):
    frames = write_y4m(tmp_path / "c.y4m", "420p10", n=1)
    raw = tmp_path / "c.yuv"
    raw.write_bytes(y4m_frame(frames[0])[6:])
    with open_video(raw, size="16x12", pix_fmt="yuv420p10le") as clip:
        (frame,) = list(clip.frames())
    assert np.array_equal(frame.rgb, yuv_to_rgb(frames[0]))


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ((), "give --size WxH and --pix-fmt"),
        (("--size", "16x12", "--pix-fmt", "yuv420p"), "not a whole number"),
        (("--size", "15x12", "--pix-fmt", "yuv420p"), "needs an even width"),
        (("--size", "16by12", "--pix-fmt", "yuv420p"), "expected WIDTHxHEIGHT"),
    ],
)
def test_raw_refusals(tmp_path, args, words):
    raw = tmp_path / "c.yuv"
    raw.write_bytes(b"\x80" * (16 * 12 * 3 // 2 * 2 + 7))
    result = cli("video", raw, "--model", SMOKE, *args, "--quiet")
    assert result.exit_code == 2
    assert words in result.stderr


def test_empty_raw_file(tmp_path):
    raw = tmp_path / "c.yuv"
    raw.write_bytes(b"")
    refused(
        cli("video", raw, "--size", "16x12", "--pix-fmt", "yuv420p", "--model", SMOKE),
        2,
        raw,
        "empty",
    )


# ---------------------------------------------------------------------------- folders


def test_folder_of_pictures(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    pictures = [np.full((10, 14, 3), 40 * i, np.uint8) for i in range(3)]
    for i, rgb in enumerate(pictures):
        Image.fromarray(rgb).save(folder / f"{i:03d}.png")
    (folder / "notes.txt").write_text("not a frame")
    with open_video(folder, fps=5) as clip:
        frames = list(clip.frames())
    assert [f.pts for f in frames] == [0.0, 0.2, 0.4]
    assert all(np.array_equal(f.rgb, p) for f, p in zip(frames, pictures, strict=True))


def test_folder_refusals(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    refused(cli("video", folder, "--model", SMOKE), 2, folder, "no pictures")
    Image.fromarray(np.zeros((10, 14, 3), np.uint8)).save(folder / "a.png")
    Image.fromarray(np.zeros((12, 14, 3), np.uint8)).save(folder / "b.png")
    refused(
        cli("video", folder, "--model", SMOKE, "--quiet"),
        2,
        folder / "b.png",
        "first frame is 14x10",
    )


# ---------------------------------------------------------------------------- PyAV


@pytest.fixture
def av():
    return pytest.importorskip("av", reason="needs PyAV: pip install -e '.[video]' (in .[test])")


def make_mp4(
    av, path: Path, frames: int = 4, size: tuple[int, int] = (32, 24), pix_fmt: str = "yuv420p"
) -> None:
    container = av.open(str(path), mode="w")
    stream = container.add_stream("libx264" if pix_fmt != "gray" else "ffv1", rate=10)
    stream.width, stream.height = size
    stream.pix_fmt = pix_fmt
    for t in range(frames):
        rgb = np.zeros((size[1], size[0], 3), np.uint8)
        rgb[:, : 4 + 6 * t] = (200, 60, 30)
        for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)
    container.close()


def test_mp4_frames_pts_and_yuv_planes(av, tmp_path):
    path = tmp_path / "clip.mp4"
    make_mp4(av, path)
    with open_video(path) as clip:
        assert (clip.width, clip.height, clip.fps) == (32, 24, 10.0)
        frames = list(clip.frames())
    assert [f.index for f in frames] == [0, 1, 2, 3]
    assert [round(f.pts, 6) for f in frames] == [0.0, 0.1, 0.2, 0.3]
    for frame in frames:  # the RGB is the host conversion of the decoded planes
        assert frame.planes.u.shape == (12, 16)
        assert np.array_equal(frame.rgb, yuv_to_rgb(frame.planes))
    assert frames[3].rgb[12, 20, 0] > 150 and frames[0].rgb[12, 20, 0] < 40


def test_mkv_odd_size_444(av, tmp_path):
    path = tmp_path / "clip.mkv"
    make_mp4(av, path, frames=2, size=(33, 21), pix_fmt="yuv444p")
    with open_video(path) as clip:
        frames = list(clip.frames())
    assert frames[0].rgb.shape == (21, 33, 3) and frames[0].planes.u.shape == (21, 33)


def test_mp4_without_a_video_stream(av, tmp_path):
    path = tmp_path / "audio.mp4"
    container = av.open(str(path), mode="w")
    stream = container.add_stream("aac", rate=8000)
    frame = av.AudioFrame.from_ndarray(
        np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
    )
    frame.sample_rate = 8000
    for packet in [*stream.encode(frame), *stream.encode(None)]:
        container.mux(packet)
    container.close()
    refused(cli("video", path, "--model", SMOKE, "--quiet"), 2, path, "no video stream")


def test_not_a_video(tmp_path):
    path = tmp_path / "junk.mp4"
    path.write_bytes(b"\x00junk" * 100)
    refused(cli("video", path, "--model", SMOKE, "--quiet"), 2, path, "cannot open the video")


def test_without_pyav_says_how_to_install(av, tmp_path, monkeypatch):
    path = tmp_path / "clip.mp4"
    make_mp4(av, path, frames=1)
    monkeypatch.setitem(sys.modules, "av", None)  # import av raises ImportError
    result = cli("video", path, "--model", SMOKE, "--quiet")
    assert result.exit_code == 2
    assert "pip install 'sod-train[video]'" in result.stderr
