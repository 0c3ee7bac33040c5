"""Hostile inputs, classes 3 and 8: pictures declaring huge sizes, and bad data folders.

A header declaring more pixels than the limit (a decompression bomb) is one more bad file:
named in the one error list, or skipped and counted with --skip-bad; Pillow's warning
never leaks as a raw line. Two files with one stem are an error naming both, an empty data
folder fails verify-data, and the content digest is the same in every supported layout.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hostile import (
    Snapshot,
    all_files,
    bomb_png,
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

from fetch_server import zip_bytes
from sod_train.data.pairs import content_digest, digest_aliases, legacy_content_digest, scan_pairs
from sod_train.errors import UserInputError
from sod_train.fetch import pins as datasets
from sod_train.release.diff import diff_metrics


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return save(build_model(), tmp_path / "m.onnx")


def _bombed(
    tmp_path: Path, role: str, size: tuple[int, int] = (50_000, 50_000)
) -> tuple[Path, Path]:
    """A data folder whose pair 1 has a bomb image (role 'image') or mask (role 'mask')."""
    data = data_folder(tmp_path / "D", n=3)
    bad = data / ("images/img_001.jpg" if role == "image" else "masks/img_001.png")
    bad.write_bytes(bomb_png(*size))
    return data, bad


# -- class 3: decompression bombs ------------------------------------------------------------


@pytest.mark.parametrize("role", ["image", "mask"])
def test_evaluate_lists_a_bomb_like_any_bad_file(tmp_path, model, role):
    data, bad = _bombed(tmp_path, role)
    keep = Snapshot(all_files(data))
    result = cli("evaluate", model, "--data", data, "--quiet")
    assert result.exit_code == 2
    assert "1 bad file(s)" in error_line(result)
    assert f"{bad}: refused, too many pixels: 2,500,000,000" in result.stderr
    keep.unchanged()


@pytest.mark.parametrize("role", ["image", "mask"])
def test_verify_data_lists_a_bomb_like_any_bad_file(tmp_path, role):
    data, bad = _bombed(tmp_path, role)
    result = cli("verify-data", data, "--quiet")
    assert result.exit_code == 1 and "1 bad file(s)" in result.stdout
    assert f"{bad}: refused, too many pixels" in result.stdout


def test_predict_skips_a_bomb_and_exits_one(tmp_path, model):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(bomb_png())
    good = tmp_path / "good.png"
    good.write_bytes(png_bytes())
    result = cli("predict", bomb, good, "--model", model, "--out", tmp_path / "o", "--quiet")
    assert result.exit_code == 1
    assert f"skipped: {bomb}: refused, too many pixels" in result.stderr
    assert (tmp_path / "o" / "good.png.mask.png").is_file()


def test_train_skip_bad_skips_and_counts_a_bomb(tmp_path):
    from sod_train.train.config import TrainConfig  # decoding only, no training
    from sod_train.train.loop import load_data

    data = data_folder(tmp_path / "D", n=70, size=(10, 8))
    bomb = data / "masks" / "img_005.png"
    bomb.write_bytes(bomb_png())
    cfg = TrainConfig(crop_size=8, skip_bad=True)
    _, _, info = load_data(data, cfg, 0, True)
    assert info["skipped_bad"] == 1 and "too many pixels" in info["skipped_files"][0]
    assert info["pairs"] == 69
    with pytest.raises(UserInputError, match="1 bad file"):
        load_data(data, dataclasses.replace(cfg, skip_bad=False), 0, True)


def test_fetch_reports_a_bomb_inside_the_archive(tmp_path):
    entries = []
    for i in range(3):
        entries.append((f"DUTS-TR/DUTS-TR-Image/img_{i:03d}.jpg", png_bytes(seed=i)))
        mask = bomb_png() if i == 1 else png_bytes(mode="L", seed=i)
        entries.append((f"DUTS-TR/DUTS-TR-Mask/img_{i:03d}.png", mask))
    archive = tmp_path / "mine.zip"
    archive.write_bytes(zip_bytes(entries))
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    keep = Snapshot([archive])
    dest = tmp_path / "d"
    result = cli("fetch", "duts-tr", "--dest", dest, "--archive", archive, "--sha256", sha)
    line = refused(result, 1, archive, "bad file", "img_001.png", "too many pixels")
    assert "Traceback" not in line
    assert not (dest / "DUTS-TR").exists()
    keep.unchanged()


def test_no_raw_decompression_bomb_warning_in_a_real_process(tmp_path, model):
    """Between Pillow's warning and error thresholds (100 MP): refused, and no warning line."""
    warn = tmp_path / "warn.png"
    warn.write_bytes(bomb_png(10_000, 10_000))
    code = "from sod_train.cli.main import main; main()"
    args = ["predict", str(warn), "--model", str(model), "--out", str(tmp_path / "o"), "--quiet"]
    env = {**os.environ, "PYTHONWARNINGS": "default"}
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 1, done.stderr
    assert "DecompressionBombWarning" not in done.stderr and "Warning:" not in done.stderr
    assert f"{warn}: refused, too many pixels: 10000x10000" in done.stderr
    assert "Traceback" not in done.stderr


# -- class 8: data folders -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second"),
    [("images/img_001.jpg", "images/img_001.png"), ("masks/img_001.png", "masks/img_001.bmp")],
)
def test_duplicate_stems_are_an_error_naming_both(tmp_path, model, first, second):
    data = data_folder(tmp_path / "D", n=3)
    data.joinpath(second).write_bytes(data.joinpath(first).read_bytes())
    keep = Snapshot(all_files(data))
    scan = scan_pairs(data)
    assert [p.stem for p in scan.pairs] == ["img_000", "img_002"]
    (line,) = [p for p in scan.problems if "stem 'img_001'" in p]
    assert str(data / first) in line and str(data / second) in line

    evaluated = cli("evaluate", model, "--data", data, "--quiet")
    assert evaluated.exit_code == 2 and str(data / second) in evaluated.stderr
    verified = cli("verify-data", data, "--quiet")
    assert verified.exit_code == 1 and "1 bad file(s)" in verified.stdout
    assert line in verified.stdout
    keep.unchanged()


def test_duplicate_stems_do_not_move_the_fold(tmp_path):
    data = data_folder(tmp_path / "D", n=3)
    before = [p.stem for p in scan_pairs(data).paired]
    (data / "images" / "img_001.png").write_bytes(png_bytes())
    assert [p.stem for p in scan_pairs(data).paired] == before


def test_verify_data_fails_on_an_empty_data_folder(tmp_path):
    (tmp_path / "E" / "images").mkdir(parents=True)
    (tmp_path / "E" / "masks").mkdir()
    result = cli("verify-data", tmp_path / "E", "--quiet")
    refused(result, 2, tmp_path / "E", "nothing to verify")


def test_special_entries_in_a_data_folder_are_bad_files_not_hangs(tmp_path):
    data = data_folder(tmp_path / "D", n=3)
    fifo(data / "images" / "pipe.jpg")
    (data / "masks" / "folder.png").mkdir()
    (data / "images" / "broken.jpg").symlink_to(tmp_path / "nowhere.jpg")
    result = cli("verify-data", data, "--quiet", timeout=30)
    assert result.exit_code == 1
    out = result.stdout
    assert f"{data / 'images' / 'pipe.jpg'}: is a special file" in out
    assert f"{data / 'masks' / 'folder.png'}: is a folder" in out
    assert f"{data / 'images' / 'broken.jpg'}: cannot read" in out


def _same_files_in(root: Path, image_dir: str, mask_dir: str, source: Path) -> Path:
    for sub, name in (("images", image_dir), ("masks", mask_dir)):
        (root / name).mkdir(parents=True)
        for path in (source / sub).iterdir():
            (root / name / path.name).write_bytes(path.read_bytes())
    return root


def test_content_digest_does_not_depend_on_the_layout(tmp_path):
    source = data_folder(tmp_path / "src", n=4)
    official = _same_files_in(tmp_path / "a" / "DUTS-TR", "DUTS-TR-Image", "DUTS-TR-Mask", source)
    other = _same_files_in(tmp_path / "b" / "DUTS-TE", "DUTS-TE-Image", "DUTS-TE-Mask", source)
    digests = set()
    for root in (source, official, other):
        scan = scan_pairs(root, check_headers=False)
        files = [p for pair in scan.pairs for p in (pair.image, pair.mask)]
        digests.add(content_digest(root, files))
    assert len(digests) == 1


def test_a_genuine_copy_verifies_in_the_images_masks_layout(tmp_path, monkeypatch):
    official = data_folder(tmp_path / "a" / "DUTS-TR", n=3, layout="DUTS-TR")
    (official / "DUTS-TR-Mask" / "img_002.png").write_bytes(png_bytes((12, 8), "RGB"))
    scan = scan_pairs(official, check_headers=False)
    files = [p for pair in scan.pairs for p in (pair.image, pair.mask)]
    pin = dataclasses.replace(
        datasets.PINS["duts-tr"],
        pairs=3,
        content_digest=content_digest(official, files),
        known_bad=("DUTS-TR-Mask/img_002.png",),
    )
    monkeypatch.setitem(datasets.PINS, "duts-tr", pin)
    mine = _as_images(official, tmp_path)
    for root in (official, mine):
        result = cli("verify-data", root, "--json", "--quiet")
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert report["pin"] == "duts-tr" and report["digest_matches"] is True
        assert report["problems"] == [] and len(report["known_problems"]) == 1


def _as_images(official: Path, tmp_path: Path) -> Path:
    """A copy of the official folder's files under images/ + masks/."""
    staged = tmp_path / "mine"
    for sub, name in (("images", "DUTS-TR-Image"), ("masks", "DUTS-TR-Mask")):
        (staged / sub).mkdir(parents=True)
        for path in (official / name).iterdir():
            (staged / sub / path.name).write_bytes(path.read_bytes())
    return staged


def test_records_made_with_the_legacy_digest_still_match(tmp_path):
    data = data_folder(tmp_path / "D", layout="DUTS-TR")
    scan = scan_pairs(data, check_headers=False)
    files = [p for pair in scan.pairs for p in (pair.image, pair.mask)]
    digest = content_digest(data, files)
    assert legacy_content_digest(data, files) in digest_aliases(digest)


def test_diff_sees_the_pinned_legacy_and_new_digests_as_the_same_data():
    old, new = make_metrics(), make_metrics()
    te = datasets.PINS["duts-te"]
    old["evaluations"]["DUTS-TE"]["digest"] = te.legacy_digest
    new["evaluations"]["DUTS-TE"]["digest"] = te.content_digest
    report = diff_metrics(old, new, "old", "new")
    assert not any("digest" in note for note in report.notes), report.notes
    new["evaluations"]["DUTS-TE"]["digest"] = "ee" * 32
    report = diff_metrics(old, new, "old", "new")
    assert any("digest" in note for note in report.notes)
