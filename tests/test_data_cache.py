"""Data cache: shards under the cap, reproducible, verified on open, same training result."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import zipfile
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from sod_train.cli.main import main
from sod_train.data.pairs import content_digest, scan_pairs
from sod_train.errors import GateError, UserInputError
from sod_train.fetch.cache import MANIFEST, MARKER, open_cache, write_cache
from sod_train.train.config import Runtime, TrainConfig
from sod_train.train.loop import train

CAP = 60_000  # bytes: the 96 small synthetic pairs need about 5 shards


def source_digest(root: Path) -> str:
    scan = scan_pairs(root, check_headers=False)
    return content_digest(root, [p for pair in scan.paired for p in (pair.image, pair.mask)])


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def leftovers(workdir: Path) -> list[str]:
    """Whatever an open left in ``workdir`` besides its lock file."""
    return sorted(p.name for p in workdir.iterdir() if p.name != ".sod-train-cache.lock")


@pytest.fixture
def cache(synthetic_root: Path, tmp_path: Path) -> Path:
    write_cache(synthetic_root, tmp_path / "cache", shard_bytes=CAP, quiet=True)
    return tmp_path / "cache"


def test_shards_stay_under_the_cap_and_the_manifest_describes_them(
    synthetic_root: Path, cache: Path
) -> None:
    manifest = json.loads((cache / MANIFEST).read_text())
    assert manifest["pairs"] == 96 and manifest["files"] == 192
    assert (manifest["dataset"], manifest["image_dir"]) == ("DUTS-TR", "DUTS-TR-Image")
    assert manifest["content_digest"] == source_digest(synthetic_root)
    assert len(manifest["shards"]) >= 3
    names = []
    for shard in manifest["shards"]:
        path = cache / shard["file"]
        assert path.stat().st_size == shard["bytes"] <= CAP
        assert hashlib.sha256(path.read_bytes()).hexdigest() == shard["sha256"]
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
        assert len(infos) == shard["members"]
        assert all(info.compress_type == zipfile.ZIP_STORED for info in infos)
        stems = [Path(info.filename).stem for info in infos]
        assert stems[::2] == stems[1::2]  # an image and its mask share a shard
        names += [info.filename for info in infos]
    expected = [p.relative_to(synthetic_root).as_posix() for p in synthetic_root.rglob("*.*")]
    assert sorted(names) == sorted(expected)
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        [MANIFEST] + [s["file"] for s in manifest["shards"]]
    )


def test_two_builds_are_byte_identical(synthetic_root: Path, cache: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(synthetic_root, tmp_path / "copy" / "DUTS-TR")
    for i, path in enumerate(sorted(copy.rglob("*.*"))):  # other dates and modes, same bytes
        os.utime(path, (1_000_000 + i, 1_000_000 + i))
        path.chmod(0o600)
    write_cache(copy, tmp_path / "again", shard_bytes=CAP, quiet=True)
    assert folder_bytes(tmp_path / "again") == folder_bytes(cache)


def test_rebuild_replaces_shards_and_drops_stale_ones(synthetic_root: Path, cache: Path) -> None:
    manifest = write_cache(synthetic_root, cache, shard_bytes=4 * CAP, quiet=True)
    assert len(manifest["shards"]) < 3
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        [MANIFEST] + [s["file"] for s in manifest["shards"]]
    )


def test_refuses_an_out_dir_inside_the_data_or_a_foreign_folder(
    synthetic_root: Path, tmp_path: Path
) -> None:
    with pytest.raises(UserInputError, match="must not be inside"):
        write_cache(synthetic_root, synthetic_root / "cache", shard_bytes=CAP)
    assert not (synthetic_root / "cache").exists()
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(UserInputError, match="not empty"):
        write_cache(synthetic_root, foreign, shard_bytes=CAP)
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
    with pytest.raises(UserInputError, match="larger --shard-mb"):
        write_cache(synthetic_root, tmp_path / "tiny", shard_bytes=1000)


def test_open_extracts_the_original_files(synthetic_root: Path, cache: Path) -> None:
    root = open_cache(cache, quiet=True)
    assert root == cache / "extracted" / "DUTS-TR"
    assert source_digest(root) == source_digest(synthetic_root)
    assert leftovers(root.parent) == ["DUTS-TR"]


def test_a_flipped_byte_names_the_shard_and_extracts_nothing(cache: Path) -> None:
    shard = cache / "shard-0002.zip"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x01
    shard.write_bytes(bytes(data))
    with pytest.raises(GateError, match=r"shard-0002\.zip: SHA-256"):
        open_cache(cache, quiet=True)
    assert leftovers(cache / "extracted") == []


def test_a_missing_shard_is_named(cache: Path) -> None:
    (cache / "shard-0001.zip").unlink()
    with pytest.raises(GateError, match=r"shard-0001\.zip: shard missing"):
        open_cache(cache, quiet=True)
    assert leftovers(cache / "extracted") == []


def test_shards_of_other_data_fail_the_content_digest(cache: Path) -> None:
    """A manifest whose shard hashes were updated to other bytes is still caught."""
    manifest = json.loads((cache / MANIFEST).read_text())
    shard = cache / manifest["shards"][0]["file"]
    with zipfile.ZipFile(shard) as zf:
        entries = [(info, zf.read(info)) for info in zf.infolist()]
    with zipfile.ZipFile(shard, "w") as zf:
        for i, (info, data) in enumerate(entries):
            zf.writestr(info, data[:-1] + b"\x00" if i == 0 else data)
    manifest["shards"][0].update(
        sha256=hashlib.sha256(shard.read_bytes()).hexdigest(), bytes=shard.stat().st_size
    )
    (cache / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(GateError, match="content digest"):
        open_cache(cache, quiet=True)
    assert leftovers(cache / "extracted") == []


@pytest.mark.parametrize(
    "text, message",
    [(None, "not found"), ("{not json", "unreadable"), ('{"format": "zip"}', "not a sod-train")],
)
def test_a_missing_or_bad_manifest_is_a_usage_error(
    cache: Path, text: str | None, message: str
) -> None:
    if text is None:
        (cache / MANIFEST).unlink()
    else:
        (cache / MANIFEST).write_text(text)
    with pytest.raises(UserInputError, match=message):
        open_cache(cache, quiet=True)


def test_reopening_reuses_the_extraction_and_repairs_a_changed_one(cache: Path) -> None:
    root = open_cache(cache, quiet=True)
    marker = root / MARKER
    first = marker.stat().st_mtime_ns, marker.stat().st_ino
    assert open_cache(cache, quiet=True) == root
    assert (marker.stat().st_mtime_ns, marker.stat().st_ino) == first  # not extracted again
    victim = next((root / "DUTS-TR-Mask").iterdir())
    victim.unlink()
    assert open_cache(cache, quiet=True) == root
    assert victim.is_file() and marker.stat().st_ino != first[1]
    assert leftovers(root.parent) == ["DUTS-TR"]


def test_a_foreign_folder_in_the_way_is_left_alone(cache: Path, tmp_path: Path) -> None:
    theirs = tmp_path / "work" / "DUTS-TR"
    theirs.mkdir(parents=True)
    (theirs / "notes.txt").write_text("keep me")
    with pytest.raises(GateError, match="not extracted by sod-train"):
        open_cache(cache, workdir=tmp_path / "work", quiet=True)
    assert sorted(p.name for p in theirs.iterdir()) == ["notes.txt"]


def test_training_from_the_cache_gives_the_same_weights(synthetic_root: Path, cache: Path) -> None:
    cfg = TrainConfig(epochs=1, batch_size=8, crop_size=32)
    direct = train(synthetic_root, cfg, Runtime(device="cpu", quiet=True))
    cached = train(open_cache(cache, quiet=True), cfg, Runtime(device="cpu", quiet=True))
    assert cached.data["digest"] == direct.data["digest"]
    assert direct.best_state.keys() == cached.best_state.keys()
    assert all(torch.equal(direct.best_state[k], cached.best_state[k]) for k in direct.best_state)


def test_build_cache_command(synthetic_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "cache"
    args = ["build-cache", "--duts-root", str(synthetic_root), "--out", str(out)]
    result = CliRunner().invoke(main, [*args, "--shard-mb", "0.05", "--quiet"])
    assert result.exit_code == 0, result.output
    shards = sorted(p.name for p in out.glob("shard-*.zip"))
    assert len(shards) >= 3 and all(name in result.output for name in shards)
    assert f"--data-cache {out}" in result.output
    as_json = CliRunner().invoke(main, [*args, "--quiet", "--json"])
    assert as_json.exit_code == 0
    assert json.loads(as_json.output)["shards"][0]["file"] == "shard-0000.zip"
    missing = CliRunner().invoke(
        main, ["build-cache", "--duts-root", str(tmp_path / "no"), *args[3:]]
    )
    assert missing.exit_code == 2 and "error:" in missing.output
