"""`sod-train verify-data`: full decode of every pair and the content digest vs the pin."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from fetch_server import duts_files, jpeg, png_mask, write_files
from sod_train.cli.main import main
from sod_train.fetch import pins as datasets

REPO = Path(__file__).resolve().parents[1]
MINI = REPO.parent / "shared" / "data" / "duts-te-mini"


def verify(*args: str):
    return CliRunner().invoke(main, ["verify-data", *args, "--quiet"])


def digest_by_hand(root: Path) -> str:
    """The definition (issue 15): SHA-256 over the sorted JSON lines [role, stem, file SHA-256].

    The role is "image" or "mask" whatever the folders are called, so the digest does not
    depend on the layout.
    """
    lines = sorted(
        json.dumps(
            [
                "image"
                if p.parent.name in ("images",) or p.parent.name.endswith("-Image")
                else "mask",
                p.stem,
                hashlib.sha256(p.read_bytes()).hexdigest(),
            ]
        )
        + "\n"
        for p in root.rglob("*")
        if p.is_file() and p.parent != root
    )
    return hashlib.sha256("".join(lines).encode()).hexdigest()


@pytest.fixture
def folder(tmp_path) -> Path:
    """Three good pairs in an official layout that no pin uses (SYN-Image / SYN-Mask)."""
    root = tmp_path / "SYN"
    write_files(root, duts_files(3, name="SYN", top=None))
    return root


def test_good_folder_passes_and_prints_the_digest(folder):
    result = verify(str(folder))
    assert result.exit_code == 0, result.output
    assert f"content digest: {digest_by_hand(folder)}" in result.output
    assert "3 pairs, 0 bad file(s)" in result.output
    assert "no pinned digest" in result.output


def test_images_masks_layout_and_json(tmp_path):
    root = tmp_path / "mine"
    files = duts_files(2, name="SYN", top=None)
    write_files(
        root,
        {
            k.replace("SYN-Image", "images").replace("SYN-Mask", "masks"): v
            for k, v in files.items()
        },
    )
    result = verify(str(root), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["pairs"] == 2 and report["problems"] == [] and report["ok"] is True
    assert report["pin"] is None and report["content_digest"] == digest_by_hand(root)


def truncated_jpeg() -> bytes:
    data = jpeg(7, size=(64, 48))
    return data[: len(data) // 2]  # the header parses; the pixels do not decode


def mask_16bit() -> bytes:
    buf = io.BytesIO()
    Image.new("I;16", (20, 14), 300).save(buf, "PNG")
    return buf.getvalue()


BAD = {
    "truncated image": ("SYN-Image/img_001.jpg", truncated_jpeg(), "img_001.jpg: cannot decode"),
    "rgb mask": ("SYN-Mask/img_001.png", png_mask(1, mode="RGB"), "8-bit single-channel"),
    "16-bit mask": ("SYN-Mask/img_001.png", mask_16bit(), "16-bit"),
    "size mismatch": ("SYN-Mask/img_001.png", png_mask(1, size=(21, 14)), "size 21x14 != image"),
    "garbage mask": ("SYN-Mask/img_001.png", b"not a png", "img_001.png: cannot decode"),
    "orphan mask": ("SYN-Mask/img_009.png", png_mask(9), "orphan mask"),
    "missing mask": ("SYN-Image/img_009.jpg", jpeg(9), "no mask"),
}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_files_fail_with_their_names(folder, kind):
    rel, data, message = BAD[kind]
    (folder / rel).write_bytes(data)
    result = verify(str(folder))
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
    assert "1 bad file(s)" in result.output


@pytest.mark.parametrize("where", ["nowhere", "empty"])
def test_not_a_data_folder_exits_2(tmp_path, where):
    target = tmp_path / where
    if where == "empty":
        target.mkdir()
    result = verify(str(target))
    assert result.exit_code == 2 and "Traceback" not in result.output


@pytest.fixture
def duts_tr_copy(tmp_path, monkeypatch) -> Path:
    """A tiny folder in DUTS-TR layout whose digest the duts-tr pin is patched to hold."""
    root = tmp_path / "DUTS-TR"
    files = duts_files(3, top=None)
    files["DUTS-TR-Mask/img_002.png"] = png_mask(2, mode="RGB")  # a known bad file
    write_files(root, files)
    pin = dataclasses.replace(
        datasets.PINS["duts-tr"],
        pairs=3,
        content_digest=digest_by_hand(root),
        known_bad=("DUTS-TR-Mask/img_002.png",),
    )
    monkeypatch.setitem(datasets.PINS, "duts-tr", pin)
    return root


def test_copy_matching_the_pin_passes_with_known_problems_listed(duts_tr_copy):
    result = verify(str(duts_tr_copy), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["pin"] == "duts-tr" and report["digest_matches"] is True
    assert report["problems"] == [] and len(report["known_problems"]) == 1


def test_one_changed_pixel_is_a_digest_mismatch(duts_tr_copy):
    mask = duts_tr_copy / "DUTS-TR-Mask" / "img_000.png"
    im = Image.open(mask)
    im.putpixel((0, 0), 255 - im.getpixel((0, 0)))
    im.save(mask)
    result = verify(str(duts_tr_copy))
    assert result.exit_code == 1
    assert "does not match the pinned duts-tr digest" in result.output


def test_unpatched_pin_rejects_a_synthetic_copy(tmp_path):
    root = tmp_path / "DUTS-TR"
    write_files(root, duts_files(3, top=None))
    result = verify(str(root))
    assert result.exit_code == 1
    assert "3 pairs, the pin has 10,553" in result.output


def test_real_duts_te_subset_decodes_but_is_not_the_pinned_set():
    if not MINI.is_dir():
        pytest.skip(f"needs {MINI} (100 real DUTS-TE pairs); see README 'Test data'")
    result = verify(str(MINI), "--json")
    report = json.loads(result.stdout)
    assert report["pairs"] == 100 and report["problems"] == []
    assert report["pin"] == "duts-te" and report["digest_matches"] is False
    assert result.exit_code == 1
