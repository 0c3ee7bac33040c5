"""Safe extraction: hostile archives are refused with nothing left behind."""

from __future__ import annotations

import stat
import struct
import warnings
import zipfile
from pathlib import Path

import pytest

from fetch_server import all_files, duts_files, png_mask, sha256, zip_bytes
from sod_train.errors import GateError
from sod_train.fetch.extract import Staging, ZipLimits, safe_extract, verify_layout
from sod_train.fetch.fetch import fetch_dataset
from sod_train.fetch.pins import get_pin

GOOD = list(duts_files(2).items())


def entry(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # unix: the high 16 bits of external_attr are st_mode
    info.external_attr = mode << 16
    return info


def fetch_archive(tmp_path: Path, data: bytes, **kw):
    """Run the whole fetch path on ``data`` given as --archive (hash given as --sha256)."""
    archive = tmp_path / "in.zip"
    archive.write_bytes(data)
    return fetch_dataset(
        get_pin("duts-tr"),
        tmp_path / "dest",
        archive=archive,
        sha256=sha256(data),
        quiet=True,
        **kw,
    )


def with_duplicates(*entries: tuple[str, bytes]) -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate names we want
        return zip_bytes([*GOOD, *entries])


HOSTILE = {
    "parent": (zip_bytes([*GOOD, ("../evil.txt", b"x")]), "'..' path component"),
    "nested-parent": (zip_bytes([*GOOD, ("DUTS-TR/a/../../../evil.txt", b"x")]), "'..'"),
    "backslash-parent": (zip_bytes([*GOOD, ("..\\evil.txt", b"x")]), "'..'"),
    "absolute": (zip_bytes([*GOOD, ("/tmp/evil.txt", b"x")]), "absolute path"),
    "drive": (zip_bytes([*GOOD, ("C:/evil.txt", b"x")]), "absolute path"),
    "symlink": (
        zip_bytes([*GOOD, (entry("DUTS-TR/link", stat.S_IFLNK | 0o777), b"/etc/passwd")]),
        "symbolic link",
    ),
    "fifo": (zip_bytes([*GOOD, (entry("DUTS-TR/pipe", stat.S_IFIFO | 0o644), b"")]), "special"),
    "duplicate": (with_duplicates(GOOD[0]), "duplicate entry"),
    "case-duplicate": (with_duplicates((GOOD[0][0].upper(), b"x")), "duplicate entry"),
    "file-then-dir": (zip_bytes([*GOOD, ("DUTS-TR/x", b"1"), ("DUTS-TR/x/y", b"2")]), "a file"),
    "bomb-ratio": (zip_bytes([*GOOD, ("DUTS-TR/zeros.bin", bytes(4 << 20))]), "zip bomb"),
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_archive_is_refused_and_leaves_nothing(tmp_path, kind):
    data, message = HOSTILE[kind]
    with pytest.raises(GateError, match=message):
        fetch_archive(tmp_path, data)
    assert all_files(tmp_path / "dest") == []
    assert all_files(tmp_path) == ["in.zip"]  # nothing written outside the destination
    assert (tmp_path / "in.zip").read_bytes() == data  # the user's archive is not touched


def test_total_size_limit(tmp_path):
    total = sum(len(b) for _, b in GOOD)
    with pytest.raises(GateError, match="zip bomb"):
        fetch_archive(tmp_path, zip_bytes(GOOD), limits=ZipLimits(max_total_bytes=total - 1))
    assert all_files(tmp_path / "dest") == []


def test_entry_count_limit(tmp_path):
    with pytest.raises(GateError, match="entries, more than 3"):
        fetch_archive(tmp_path, zip_bytes(GOOD), limits=ZipLimits(max_entries=3))


def test_archive_lying_about_sizes_is_refused(tmp_path):
    """Declared sizes say 10 bytes (no bomb by the numbers); the data inflates to 4 MiB."""
    data = bytearray(zip_bytes([*GOOD, ("DUTS-TR/zeros.bin", bytes(4 << 20))]))
    small = struct.pack("<I", 10)
    local = data.rfind(b"PK\x03\x04")  # the last local header is the zeros entry's
    data[local + 22 : local + 26] = small
    central = data.rfind(b"PK\x01\x02")
    data[central + 24 : central + 28] = small
    with pytest.raises(GateError, match=r"zeros\.bin"):
        fetch_archive(tmp_path, bytes(data))
    assert all_files(tmp_path / "dest") == []


def test_not_a_zip(tmp_path):
    with pytest.raises(GateError, match="not a readable zip"):
        fetch_archive(tmp_path, b"this is not a zip archive at all")
    assert all_files(tmp_path / "dest") == []


def test_archive_without_a_data_set_is_refused(tmp_path):
    images_only = [(n, b) for n, b in GOOD if "-Image/" in n]
    with pytest.raises(GateError, match="no data set inside"):
        fetch_archive(tmp_path, zip_bytes(images_only))
    assert all_files(tmp_path / "dest") == []


def test_good_archive_extracts_byte_for_byte(tmp_path):
    data = zip_bytes([*GOOD, ("DUTS-TR/readme.txt", b"hello")])
    result = fetch_archive(tmp_path, data)
    assert result.root == tmp_path / "dest" / "DUTS-TR" and result.pairs == 2
    for name, content in [*GOOD, ("DUTS-TR/readme.txt", b"hello")]:
        assert (tmp_path / "dest" / name).read_bytes() == content


def extracted(tmp_path: Path, files: list[tuple[str, bytes]]) -> Path:
    archive = tmp_path / "a.zip"
    archive.write_bytes(zip_bytes(files))
    out = tmp_path / "out"
    out.mkdir()
    safe_extract(archive, out, quiet=True)
    return out / "DUTS-TR"


def test_pinned_pair_count_is_checked(tmp_path):
    root = extracted(tmp_path, GOOD)
    with pytest.raises(GateError, match="expected 10,553 image/mask pairs, got 2"):
        verify_layout(root, Path("a.zip"), ("DUTS-TR-Image", "DUTS-TR-Mask"), 10_553)
    scan, known = verify_layout(root, Path("a.zip"), ("DUTS-TR-Image", "DUTS-TR-Mask"), 2)
    assert len(scan.pairs) == 2 and known == []


def test_pinned_folder_names_are_checked(tmp_path):
    files = [(n.replace("DUTS-TR-", "OTHER-"), b) for n, b in GOOD]
    root = extracted(tmp_path, files)
    with pytest.raises(GateError, match="expected folders DUTS-TR-Image/ and DUTS-TR-Mask/"):
        verify_layout(root, Path("a.zip"), ("DUTS-TR-Image", "DUTS-TR-Mask"), 2)


def test_known_bad_files_are_excused_others_are_not(tmp_path):
    rgb = ("DUTS-TR/DUTS-TR-Mask/img_001.png", png_mask(1, mode="RGB"))
    root = extracted(tmp_path, [GOOD[0], GOOD[1], GOOD[2], rgb])
    with pytest.raises(GateError, match=r"img_001\.png"):
        verify_layout(root, Path("a.zip"))
    scan, known = verify_layout(root, Path("a.zip"), known_bad=("DUTS-TR-Mask/img_001.png",))
    assert len(scan.pairs) == 2  # the excused pair still counts (and is in the digest)
    assert len(known) == 1 and "img_001.png" in known[0]


def test_staging_removes_everything_on_failure(tmp_path):
    dest = tmp_path / "DUTS-TR"
    with pytest.raises(RuntimeError), Staging(dest) as stage:
        (stage.tree / "half-written").write_bytes(b"x")
        raise RuntimeError("boom")
    assert all_files(tmp_path) == [] and not dest.exists()
