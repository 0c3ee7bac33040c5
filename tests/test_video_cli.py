"""``sod-train video`` end to end on a tiny synthetic clip (smoke model), the report page,
and the conformance vectors: regenerated == committed, and check --video-vectors."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hostile import cli, refused
from PIL import Image

from sod_train.hashing import file_sha256
from sod_train.paths import MODEL_DIR, REPO_ROOT
from sod_train.release.registry import load_registry
from sod_train.video.colour import Planes
from sod_train.video.run import frame_map, load_model, map_stats
from sod_train.video.source import open_video
from sod_train.video.vectors import VECTORS_DIR, VECTORS_NAME
from sod_train.video.y4m import y4m_frame, y4m_header

SMOKE = MODEL_DIR / "sod_tiny_smoke_cpu_v0.onnx"
W, H, N = 34, 26, 5


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    """5 frames of 34x26 4:2:0: a bright disc moving right on a dark gradient."""
    path = tmp_path / "clip.y4m"
    yy, xx = np.mgrid[0:H, 0:W]
    data = y4m_header(W, H, Fraction(25), "420jpeg")
    for t in range(N):
        y = np.where((xx - 8 - 3 * t) ** 2 + (yy - 13) ** 2 < 40, 210, 40 + xx).astype(np.uint8)
        u = np.full((H // 2, W // 2), 110, np.uint8)
        v = np.full((H // 2, W // 2), 160, np.uint8)
        data += y4m_frame(Planes(y, u, v))
    path.write_bytes(data)
    return path


def expected_means(path: Path, smooth: float = 0.0) -> list[float]:
    session = load_model(SMOKE)
    state, out = None, []
    with open_video(path) as video:
        for frame in video.frames():
            m = frame_map(session, frame.rgb)
            if smooth and state is not None:
                m = (np.float32(1 - smooth)) * m + np.float32(smooth) * state
            state = m
            out.append(map_stats(m)[0])
    return out


def test_csv_json_maps_overlay_report(clip, tmp_path):
    out = tmp_path / "out"
    result = cli(
        "video",
        clip,
        "--model",
        SMOKE,
        "--csv",
        out / "f.csv",
        "--json",
        out / "f.json",
        "--maps",
        out / "maps",
        "--overlay",
        out / "o.y4m",
        "--report",
        out / "r.html",
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((out / "f.csv").open()))
    assert [r["frame"] for r in rows] == ["0", "1", "2", "3", "4"]
    assert [float(r["pts"]) for r in rows] == [0.0, 0.04, 0.08, 0.12, 0.16]
    assert [float(r["saliency_mean"]) for r in rows] == expected_means(clip)
    assert all(float(r["ms"]) > 0 and float(r["saliency_var"]) >= 0 for r in rows)
    doc = json.loads((out / "f.json").read_text())
    assert (
        doc["frames"] == N
        and doc["yuv_matrix"] == "host"
        and doc["model_sha256"] == file_sha256(SMOKE)
    )
    assert [r["saliency_mean"] for r in doc["rows"]] == [float(r["saliency_mean"]) for r in rows]
    assert set(doc["stability"]) == {"iou_mean", "iou_p5", "mean_change"}
    maps = sorted((out / "maps").iterdir())
    assert [p.name for p in maps] == [f"frame_{i:06d}.png" for i in range(N)]
    grey = np.asarray(Image.open(maps[0]))
    assert grey.shape == (H, W) and grey.dtype == np.uint8
    with open_video(out / "o.y4m") as overlay:  # picture | map, 4:4:4
        assert (overlay.width, overlay.height, overlay.length) == (2 * W, H, N)
        first = next(overlay.frames())
    assert abs(int(first.rgb[5, W + 5, 0]) - int(grey[5, 5])) <= 3
    page = (out / "r.html").read_text()
    assert "<svg" in page and "Filmstrip" in page and page.count("<figure>") == N
    assert "mean |change|" in page
    assert "5 frames of 34x26" in result.stderr


def test_stdout_csv_smooth_and_max_frames(clip):
    result = cli("video", clip, "--model", SMOKE, "--smooth", "0.5", "--max-frames", "3", "--quiet")
    assert result.exit_code == 0 and result.stderr == ""
    rows = list(csv.DictReader(result.stdout.splitlines()))
    assert [float(r["saliency_mean"]) for r in rows] == pytest.approx(
        expected_means(clip, 0.5)[:3], abs=1e-12
    )


def test_mp4_overlay_plays_back(clip, tmp_path):
    av = pytest.importorskip("av", reason="needs PyAV: pip install -e '.[video]' (in .[test])")
    dest = tmp_path / "o.mp4"
    result = cli(
        "video", clip, "--model", SMOKE, "--overlay", dest, "--overlay-style", "over", "--quiet"
    )
    assert result.exit_code == 0, result.output
    with av.open(str(dest)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
        assert (stream.width, stream.height) == (W, H)
        assert sum(1 for _ in container.decode(stream)) == N
    csv_rows = cli("video", dest, "--model", SMOKE, "--quiet").stdout.splitlines()
    assert len(csv_rows) == N + 1  # the overlay reads back as a video


def test_output_refusals(clip, tmp_path):
    refused(cli("video", clip, "--model", SMOKE, "--csv", clip), 2, clip, "refusing to overwrite")
    refused(
        cli("video", clip, "--model", SMOKE, "--overlay", tmp_path / "o.avi"),
        2,
        tmp_path / "o.avi",
        "--overlay must end in",
    )
    (tmp_path / "file").write_text("x")
    refused(
        cli("video", clip, "--model", SMOKE, "--json", tmp_path / "file" / "o.json"),
        2,
        tmp_path / "file" / "o.json",
        "is a file",
    )
    result = cli("video", clip, "--model", SMOKE, "--smooth", "1")
    assert result.exit_code == 2
    frames = tmp_path / "frames"
    frames.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(frames / "a.png")
    refused(cli("video", frames, "--model", SMOKE, "--maps", frames), 2, frames, "input folder")


# ---------------------------------------------------------------------------- vectors


def test_regenerated_vectors_match_the_committed_ones(tmp_path):
    out = tmp_path / "vv"
    subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "make_video_vectors.py"), "--out", str(out)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    fresh = json.loads((out / VECTORS_NAME).read_text())
    committed = json.loads((VECTORS_DIR / VECTORS_NAME).read_text())
    assert fresh["files"] == committed["files"]  # file and RGB8 checksums
    for entry in committed["files"]:
        assert (out / entry["name"]).read_bytes() == (VECTORS_DIR / entry["name"]).read_bytes()
    for sha, model in fresh["models"].items():
        assert sha in committed["models"], f"vectors are stale for {model['id']}: regenerate"
        for name, values in model["saliency_mean"].items():
            assert committed["models"][sha]["saliency_mean"][name] == pytest.approx(
                values, abs=1e-6
            )


def shipped_models() -> list[Path]:
    return [REPO_ROOT / m["onnx"] for m in load_registry()["models"]]


@pytest.mark.parametrize("model", shipped_models(), ids=lambda p: p.stem)
def test_check_video_vectors_passes_for_every_shipped_model(model):
    result = cli("check", model, "--video-vectors", timeout=300)
    assert result.exit_code == 0, result.output
    for name in ("video_files", "video_rgb", "video_saliency"):
        assert f"PASS {name}:" in result.stdout


def copy_vectors(tmp_path: Path) -> Path:
    folder = tmp_path / "video_vectors"
    shutil.copytree(VECTORS_DIR, folder)
    return folder


def test_vector_mismatches_fail(tmp_path, monkeypatch):
    from sod_train.video import vectors

    folder = copy_vectors(tmp_path)
    doc = json.loads((folder / VECTORS_NAME).read_text())
    doc["files"][0]["rgb_sha256"][1] = "0" * 64
    sha = file_sha256(SMOKE)
    doc["models"][sha]["saliency_mean"][doc["files"][1]["name"]][0] += 2e-6
    (folder / VECTORS_NAME).write_text(json.dumps(doc))
    monkeypatch.setattr(vectors, "VECTORS_DIR", folder)
    verdicts = {v[0]: v for v in vectors.video_vector_checks(SMOKE, folder)}
    assert verdicts["video_files"][1] is True
    assert verdicts["video_rgb"][1] is False and "frame 1" in verdicts["video_rgb"][2]
    assert verdicts["video_saliency"][1] is False and "frame 0" in verdicts["video_saliency"][2]


def test_stale_and_unknown_models(tmp_path):
    from sod_train.video.vectors import video_vector_checks

    folder = copy_vectors(tmp_path)
    stale = tmp_path / "sod_tiny_smoke_cpu_v0.onnx"  # a shipped id with other bytes
    stale.write_bytes(SMOKE.read_bytes())
    doc = json.loads((folder / VECTORS_NAME).read_text())
    doc["models"] = {"f" * 64: doc["models"][file_sha256(SMOKE)]}
    (folder / VECTORS_NAME).write_text(json.dumps(doc))
    verdict = video_vector_checks(stale, folder)[-1]
    assert verdict[:2] == ("video_saliency", False) and "stale" in verdict[2]
    other = tmp_path / "mine.onnx"
    other.write_bytes(SMOKE.read_bytes())
    verdict = video_vector_checks(other, folder)[-1]
    assert verdict[1] is True and verdict[3] is True and "shipped models only" in verdict[2]
    (folder / "disc_422_48x38.y4m").write_bytes(b"YUV4MPEG2 W2 H2\n")
    assert video_vector_checks(other, folder)[0][1] is False


def test_check_cli_exit_1_on_a_changed_vector(tmp_path, monkeypatch):
    folder = copy_vectors(tmp_path)
    (folder / "disc_444_40x30.y4m").write_bytes(b"changed")
    from sod_train.video import vectors

    monkeypatch.setattr(vectors, "VECTORS_DIR", folder)
    monkeypatch.setattr(vectors.video_vector_checks, "__defaults__", (folder,))
    result = cli("check", SMOKE, "--video-vectors")
    assert result.exit_code == 1
    assert "FAIL video_files: disc_444_40x30.y4m differs from its recorded sha256" in result.stdout


# ---------------------------------------------------------------------------- evaluate-video


def davis(root: Path, sequences: dict[str, int]) -> Path:
    """A DAVIS layout of synthetic sequences: a disc moving right; masks are the disc."""
    yy, xx = np.mgrid[0:24, 0:32]
    for name, frames in sequences.items():
        (root / "JPEGImages" / "480p" / name).mkdir(parents=True)
        (root / "Annotations" / "480p" / name).mkdir(parents=True)
        for t in range(frames):
            disc = (xx - 8 - 2 * t) ** 2 + (yy - 12) ** 2 < 30
            rgb = np.where(disc[:, :, None], [230, 200, 40], [30, 60, 90]).astype(np.uint8)
            Image.fromarray(rgb).save(root / "JPEGImages" / "480p" / name / f"{t:05d}.png")
            Image.fromarray((disc * 255).astype(np.uint8)).save(
                root / "Annotations" / "480p" / name / f"{t:05d}.png"
            )
    return root


def test_evaluate_video_per_sequence_and_mean(tmp_path):
    root = davis(tmp_path / "DAVIS", {"dog": 4, "goat": 3, "cows": 2})
    out = tmp_path / "ev.json"
    result = cli(
        "evaluate-video",
        SMOKE,
        "--data",
        root,
        "--sequences",
        "dog,goat",
        "--smooth",
        "0",
        "--smooth",
        "0.5",
        "--json",
        out,
        "--table",
        "md",
        "--quiet",
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert doc["sequences"] == ["dog", "goat"] and doc["frames"] == 7
    names = [s["name"] for s in doc["sources"]]
    assert names == ["sod_tiny_smoke_cpu_v0", "sod_tiny_smoke_cpu_v0@0.5"]
    for key in ("maxF", "Sm", "MAE", "iou_mean", "iou_p5", "mean_change"):
        per_seq = [doc["per_sequence"][s][names[0]][key] for s in ("dog", "goat")]
        assert doc["mean"][names[0]][key] == pytest.approx(np.mean(per_seq))
    # the ground truth: the disc moves 2 px a frame; its IoU is the same for every pair
    gt = doc["per_sequence"]["dog"]["ground truth"]
    assert gt["iou_mean"] == pytest.approx(gt["iou_p5"]) and 0.5 < gt["iou_mean"] < 1
    assert "| dog |" in result.stdout and "**mean of 2**" in result.stdout
    # the MAE of the unsmoothed source equals evaluating the maps frame by frame
    from sod_train.evaluate.sod_metrics import MAE

    session, mae = load_model(SMOKE), MAE()
    for t in range(3):
        rgb = np.asarray(Image.open(root / "JPEGImages" / "480p" / "goat" / f"{t:05d}.png"))
        mask = np.asarray(Image.open(root / "Annotations" / "480p" / "goat" / f"{t:05d}.png"))
        m = frame_map(session, rgb)
        mae.step(np.rint(np.clip(m, 0, 1) * 255).astype(np.uint8), mask)
    assert doc["per_sequence"]["goat"][names[0]]["MAE"] == pytest.approx(mae.get_results()["MAE"])


def test_evaluate_video_refusals(tmp_path):
    root = davis(tmp_path / "DAVIS", {"dog": 2})
    refused(
        cli("evaluate-video", SMOKE, "--data", root, "--sequences", "tune"),
        2,
        "",
        "no sequence 'breakdance'",
    )
    refused(cli("evaluate-video", SMOKE, "--data", tmp_path), 2, tmp_path, "not a DAVIS layout")
    (root / "Annotations" / "480p" / "dog" / "00001.png").unlink()
    refused(cli("evaluate-video", SMOKE, "--data", root), 2, "dog", "no mask for 1 frame")
