"""`sod-train fetch` against a real HTTP server on 127.0.0.1 that misbehaves on purpose."""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from fetch_server import (
    FileServer,
    Route,
    all_files,
    duts_files,
    duts_zip,
    png_mask,
    sha256,
    write_files,
    zip_bytes,
)
from sod_train.cli.main import main
from sod_train.data.pairs import content_digest, pair_files, scan_pairs
from sod_train.errors import GateError
from sod_train.fetch.download import NetPolicy, folder_lock
from sod_train.fetch.fetch import MARKER, fetch_dataset
from sod_train.fetch.pins import PINS, get_pin

FAST = NetPolicy(
    connect_timeout=2, read_timeout=0.4, retries=2, backoff_factor=0.01, backoff_max=0.05
)
PATH = "/duts/download/DUTS-TR.zip"
DUTS_TR = get_pin("duts-tr")


@pytest.fixture
def server():
    with FileServer() as srv:
        yield srv


@pytest.fixture
def data() -> bytes:
    return duts_zip(3)


def run_fetch(dest: Path, url: str, data: bytes, **kw):
    """The library entry point with a fast network policy and the test archive's hash."""
    kw.setdefault("policy", FAST)
    return fetch_dataset(
        DUTS_TR, dest, url=url, sha256=sha256(data), size=len(data), quiet=True, **kw
    )


def cli(*args: str):
    return CliRunner().invoke(main, ["fetch", "duts-tr", *args])


def assert_fetched(dest: Path, n: int = 3) -> None:
    root = dest / "DUTS-TR"
    scan = scan_pairs(root)
    assert len(scan.pairs) == n and not scan.problems
    marker = json.loads((root / MARKER).read_text())
    assert marker["content_digest"] == content_digest(root, pair_files(scan.pairs))
    assert not any(".part" in f or ".extract-" in f or f.endswith(".lock") for f in all_files(dest))


def test_cli_happy_path_then_rerun_does_no_network(server, data, tmp_path):
    server.routes[PATH] = Route(data)
    args = ["--dest", str(tmp_path), "--url", server.url(PATH), "--sha256", sha256(data)]
    first = cli(*args, "--size", str(len(data)), "--quiet")
    assert first.exit_code == 0, first.output
    root = tmp_path / "DUTS-TR"
    assert f"--duts-root {root}" in first.output
    assert_fetched(tmp_path)
    assert (tmp_path / "DUTS-TR.zip").read_bytes() == data
    assert server.requests == [(PATH, None)]

    again = cli(*args)
    assert again.exit_code == 0, again.output
    assert "already there and verified" in again.output and "nothing downloaded" in again.output
    assert f"--duts-root {root}" in again.output
    assert server.requests == [(PATH, None)]  # no request at all the second time

    verified = CliRunner().invoke(main, ["verify-data", str(root), "--json", "--quiet"])
    marker = json.loads((root / MARKER).read_text())
    assert json.loads(verified.stdout)["content_digest"] == marker["content_digest"]


def test_rerun_on_a_changed_copy_fails_without_network(server, data, tmp_path):
    server.routes[PATH] = Route(data)
    run_fetch(tmp_path, server.url(PATH), data)
    mask = next((tmp_path / "DUTS-TR" / "DUTS-TR-Mask").iterdir())
    mask.write_bytes(mask.read_bytes() + b"\0")
    with pytest.raises(GateError, match="changed since it was verified"):
        run_fetch(tmp_path, server.url(PATH), data)
    assert server.gets(PATH) == 1


def test_folder_not_fetched_by_sod_train_is_left_alone(server, data, tmp_path):
    server.routes[PATH] = Route(data)
    mine = tmp_path / "DUTS-TR" / "notes.txt"
    mine.parent.mkdir()
    mine.write_text("mine")
    with pytest.raises(GateError, match="not fetched by sod-train"):
        run_fetch(tmp_path, server.url(PATH), data)
    assert mine.read_text() == "mine" and server.requests == []


def test_resume_after_connection_dropped_mid_body(server, data, tmp_path):
    cut = len(data) // 3
    server.routes[PATH] = Route(data, drop_first_at=cut)
    result = run_fetch(tmp_path, server.url(PATH), data)
    assert result.pairs == 3 and not result.already
    assert len(server.requests) == 2 and server.requests[0] == (PATH, None)
    assert 0 < range_start(server.requests[1][1]) <= cut  # resumed, not restarted
    assert_fetched(tmp_path)


def test_partial_download_from_an_earlier_run_is_resumed(server, data, tmp_path):
    cut = len(data) // 2
    (tmp_path / "DUTS-TR.zip.part").write_bytes(data[:cut])
    server.routes[PATH] = Route(data)
    run_fetch(tmp_path, server.url(PATH), data)
    assert server.requests == [(PATH, f"bytes={cut}-")]
    assert_fetched(tmp_path)


def test_server_ignoring_range_restarts_from_zero(server, data, tmp_path):
    # The stale bytes are wrong: appending the 200 body to them would fail the hash.
    (tmp_path / "DUTS-TR.zip.part").write_bytes(b"x" * 100)
    server.routes[PATH] = Route(data, honour_range=False)
    run_fetch(tmp_path, server.url(PATH), data)
    assert server.requests == [(PATH, "bytes=100-")]
    assert (tmp_path / "DUTS-TR.zip").read_bytes() == data
    assert_fetched(tmp_path)


def test_one_flipped_byte_is_a_hash_mismatch_and_leaves_nothing(server, data, tmp_path):
    bad = bytearray(data)
    bad[len(bad) // 2] ^= 0x01
    server.routes[PATH] = Route(bytes(bad))
    with pytest.raises(GateError) as err:
        run_fetch(tmp_path, server.url(PATH), data)
    assert f"expected {sha256(data)}, got {sha256(bytes(bad))}" in str(err.value)
    assert all_files(tmp_path) == []


def test_truncated_body_fails_keeps_part_then_resumes(server, data, tmp_path):
    cut = len(data) // 2
    server.routes[PATH] = Route(data, truncate_at=cut)
    with pytest.raises(GateError, match=r"connection dropped.*re-run to resume"):
        run_fetch(tmp_path, server.url(PATH), data)
    assert all_files(tmp_path) == ["DUTS-TR.zip.part"]
    kept = (tmp_path / "DUTS-TR.zip.part").read_bytes()
    assert 0 < len(kept) <= cut and data.startswith(kept)

    server.routes[PATH] = Route(data)  # the server is fixed: the next run resumes
    server.requests.clear()
    run_fetch(tmp_path, server.url(PATH), data)
    assert server.requests == [(PATH, f"bytes={len(kept)}-")]
    assert_fetched(tmp_path)


def test_short_archive_is_a_size_mismatch(server, data, tmp_path):
    server.routes[PATH] = Route(data[:-100])
    with pytest.raises(GateError, match=f"expected {len(data):,} bytes, got {len(data) - 100:,}"):
        run_fetch(tmp_path, server.url(PATH), data)
    assert all_files(tmp_path) == []


def test_404_is_not_retried_and_reported_cleanly(server, data, tmp_path):
    result = cli("--dest", str(tmp_path), "--url", server.url("/missing.zip"), "--quiet")
    assert result.exit_code == 1
    assert "HTTP 404" in result.output and "Traceback" not in result.output
    assert server.requests == [("/missing.zip", None)]
    assert all_files(tmp_path) == []


def test_503_twice_then_200_is_retried(server, data, tmp_path):
    server.routes[PATH] = Route(data, statuses=[503, 503])
    run_fetch(tmp_path, server.url(PATH), data)
    assert server.gets(PATH) == 3
    assert_fetched(tmp_path)


def test_503_forever_gives_up_after_the_retries(server, data, tmp_path):
    server.routes[PATH] = Route(data, statuses=[503] * 10)
    with pytest.raises(GateError, match="HTTP 503"):
        run_fetch(tmp_path, server.url(PATH), data)
    assert server.gets(PATH) == FAST.retries + 1
    assert all_files(tmp_path) == []


@pytest.mark.parametrize("phase", ["headers", "body"])
def test_stalled_server_times_out_clearly(server, data, tmp_path, phase):
    server.routes[PATH] = Route(data, stall=phase)
    with pytest.raises(GateError, match=r"no data for 0\.4 s \(read timeout"):
        run_fetch(tmp_path, server.url(PATH), data)
    assert not (tmp_path / "DUTS-TR").exists() and not (tmp_path / "DUTS-TR.zip").exists()


def test_unreachable_server_is_a_clean_error(data, tmp_path):
    with FileServer() as srv:
        url = srv.url(PATH)
    with pytest.raises(GateError, match="cannot connect"):
        run_fetch(tmp_path, url, data)


def test_hostile_archive_is_removed_and_nothing_extracted(server, tmp_path):
    evil = zip_bytes([*duts_files(2).items(), ("DUTS-TR/../../evil.txt", b"owned")])
    server.routes[PATH] = Route(evil)
    dest = tmp_path / "dest"
    with pytest.raises(GateError, match=r"'\.\.' path component.*removed"):
        run_fetch(dest, server.url(PATH), evil)
    assert all_files(dest) == []
    assert not any(p.name == "evil.txt" for p in tmp_path.rglob("*"))


def test_archive_option_good(data, tmp_path):
    archive = tmp_path / "mine.zip"
    archive.write_bytes(data)
    dest = tmp_path / "dest"
    args = ["--dest", str(dest), "--archive", str(archive), "--sha256", sha256(data)]
    result = cli(*args, "--quiet")
    assert result.exit_code == 0, result.output
    assert_fetched(dest)
    assert archive.read_bytes() == data
    assert not (dest / "DUTS-TR.zip").exists()  # the user's archive is used where it is


def test_archive_option_bad_leaves_the_file_and_extracts_nothing(data, tmp_path):
    archive = tmp_path / "mine.zip"
    archive.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    dest = tmp_path / "dest"
    result = cli("--dest", str(dest), "--archive", str(archive), "--sha256", sha256(data))
    assert result.exit_code == 1
    assert f"SHA-256 mismatch: expected {sha256(data)}" in result.output
    assert "Traceback" not in result.output
    assert archive.exists() and all_files(dest) == []


def test_two_concurrent_fetches_end_with_one_copy(server, data, tmp_path, capsys):
    gate = threading.Event()
    server.routes[PATH] = Route(data, gate=gate)
    policy = NetPolicy(connect_timeout=2, read_timeout=10, retries=0, backoff_factor=0.01)
    results, errors = [], []

    def worker() -> None:
        try:
            results.append(run_fetch(tmp_path, server.url(PATH), data, policy=policy))
        except Exception as exc:  # reported by the asserts below
            errors.append(exc)

    first = threading.Thread(target=worker)
    first.start()
    _wait_for(lambda: server.gets(PATH) == 1)  # the first one is mid-download, lock held
    second = threading.Thread(target=worker)
    second.start()
    seen = ""
    while "waiting for it" not in seen:  # the second one says it waits for the lock
        seen += capsys.readouterr().err
        time.sleep(0.02)
        assert second.is_alive()
    gate.set()
    first.join(10)
    second.join(10)
    assert errors == []
    assert sorted(r.already for r in results) == [False, True]
    assert results[0].root == results[1].root == tmp_path / "DUTS-TR"
    assert server.gets(PATH) == 1
    assert_fetched(tmp_path)


def test_lock_wait_limit_fails_clearly(data, tmp_path):
    with folder_lock(tmp_path), pytest.raises(GateError, match="another fetch still holds"):
        run_fetch(tmp_path, "http://127.0.0.1:9/never", data, lock_wait=0.2)


def test_real_pin_through_local_url_is_a_clean_size_mismatch(server, data, tmp_path):
    server.routes[PATH] = Route(data)
    assert PINS["duts-tr"].url.endswith("/duts/download/DUTS-TR.zip")  # the default URL
    result = cli("--dest", str(tmp_path), "--url", server.url(PATH))
    assert result.exit_code == 1
    assert f"expected {DUTS_TR.size:,} bytes, got {len(data):,}" in result.output
    assert "Traceback" not in result.output and "--duts-root" not in result.output
    assert server.requests == [(PATH, None)]
    assert all_files(tmp_path) == []


@pytest.fixture
def pinned(server, tmp_path, monkeypatch):
    """Patch the duts-tr pin to a small archive on the local server (one RGB mask in it)."""
    files = duts_files(3)
    files["DUTS-TR/DUTS-TR-Mask/img_001.png"] = png_mask(1, mode="RGB")
    data = zip_bytes(files.items())
    reference = tmp_path / "reference"
    write_files(reference, files)
    root = reference / "DUTS-TR"
    digest = content_digest(root, pair_files(scan_pairs(root, check_headers=False).pairs))
    pin = dataclasses.replace(
        DUTS_TR,
        url=server.url(PATH),
        size=len(data),
        sha256=sha256(data),
        pairs=3,
        content_digest=digest,
        known_bad=("DUTS-TR-Mask/img_001.png",),
    )
    monkeypatch.setitem(PINS, "duts-tr", pin)
    server.routes[PATH] = Route(data)
    return pin


def test_pinned_default_path_end_to_end(server, pinned, tmp_path):
    result = cli("--dest", str(tmp_path / "d"))  # no --url, no --sha256: the pin decides
    assert result.exit_code == 0, result.output
    assert server.requests == [(PATH, None)]
    assert f"content digest {pinned.content_digest}" in result.stdout
    assert "1 file(s) of the published duts-tr fail the mask check" in result.stderr
    assert "img_001.png" in result.stderr and "warning" not in result.stderr
    assert pinned.terms in result.stderr


def test_pinned_pair_count_mismatch_removes_the_download(server, pinned, tmp_path, monkeypatch):
    monkeypatch.setitem(PINS, "duts-tr", dataclasses.replace(pinned, pairs=4))
    result = cli("--dest", str(tmp_path / "d"), "--quiet")
    assert result.exit_code == 1
    assert "expected 4 image/mask pairs, got 3" in result.output and "removed" in result.output
    assert all_files(tmp_path / "d") == []


def test_real_pin_hash_is_checked_on_a_complete_partial_file(server, tmp_path):
    """A .part of exactly the pinned size needs no request; its hash must still match."""
    with open(tmp_path / "DUTS-TR.zip.part", "wb") as fh:
        fh.truncate(DUTS_TR.size)  # sparse: 271 MB of zeros without using the disk
    result = cli("--dest", str(tmp_path), "--url", server.url(PATH), "--quiet")
    assert result.exit_code == 1
    assert f"SHA-256 mismatch: expected {DUTS_TR.sha256}, got " in result.output
    assert "Traceback" not in result.output
    assert server.requests == [] and all_files(tmp_path) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["duts-tr", "--size", "10"], "--size needs --sha256"),
        (["duts-te"], "--sha256"),
        (["imagenet"], "unknown data set"),
        (["duts-tr", "--sha256", "abc"], "64 hexadecimal digits"),
        (["duts-tr", "--url", "http://x", "--archive", __file__], "not both"),
    ],
)
def test_bad_usage_exits_2(args, message, tmp_path):
    result = CliRunner().invoke(main, ["fetch", *args, "--dest", str(tmp_path)])
    assert result.exit_code == 2 and message in result.output
    assert all_files(tmp_path) == []


def range_start(header: str | None) -> int:
    match = re.fullmatch(r"bytes=(\d+)-", header or "")
    assert match, header
    return int(match.group(1))


def _wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)
