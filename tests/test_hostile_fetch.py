"""Hostile servers, round 3 (class 6): ``sod-train fetch`` in a child process against a real
HTTP server on 127.0.0.1 that never answers, drips, sends endless bytes or lies about its
length. Each ends with one line, exit 1 (2 for a bad address), within the limits it was
given (``--timeout``, ``--deadline``, ``--min-rate``) plus a few seconds to start Python,
and leaves no data folder behind. An archive holding a picture that only verify-data's
full decode catches (an EPS named .jpg) fails fetch too.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from hostile import one_line, sod

from fetch_server import FileServer, Route, duts_files, duts_zip, sha256, zip_bytes

PATH = "/DUTS-TR.zip"
STARTUP = 8.0  # seconds a child Python may take to start and import, on a busy machine


@pytest.fixture(scope="module")
def body() -> bytes:
    return duts_zip(3)


@pytest.fixture
def server():
    with FileServer() as srv:
        yield srv


def fetch(dest: Path, url: str, data: bytes | None, *limits: object, size: bool = True):
    """Run ``fetch duts-tr`` against ``url``; return (result, seconds it took)."""
    pins = ["--sha256", sha256(data or b"")] + (["--size", len(data or b"")] if size else [])
    started = time.monotonic()
    result = sod("fetch", "duts-tr", "--url", url, "--dest", dest, *pins, *limits, "--quiet",
                 timeout=120)  # fmt: skip
    return result, time.monotonic() - started


def no_data(dest: Path) -> None:
    assert not (dest / "DUTS-TR").exists() and not (dest / "DUTS-TR.zip").exists()


def test_a_server_that_accepts_and_never_answers_ends_within_the_deadline(body, tmp_path):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}{PATH}"
        result, took = fetch(tmp_path, url, body, "--timeout", 0.5, "--deadline", 3)
    line = one_line(result, 1)
    assert "no data for 0.5 s" in line or "deadline of 3 s" in line, line
    assert took < 3 + 0.5 + STARTUP, took
    no_data(tmp_path)


def test_a_server_that_stalls_before_its_headers_is_retried_then_fails(server, body, tmp_path):
    server.routes[PATH] = Route(body, stall="headers")
    result, took = fetch(tmp_path, server.url(PATH), body, "--timeout", 0.5, "--deadline", 20)
    assert "no data for 0.5 s" in one_line(result, 1)
    assert server.gets(PATH) >= 2  # resumed, not given up at the first stall
    assert took < 20 + STARTUP
    no_data(tmp_path)


def test_a_dripping_server_fails_the_throughput_floor(server, body, tmp_path):
    server.routes[PATH] = Route(body, drip=0.02)
    result, took = fetch(
        tmp_path, server.url(PATH), body, "--timeout", 1, "--min-rate", 2048, "--deadline", 60
    )
    line = one_line(result, 1)
    assert "below the floor of 2,048 bytes/s (--min-rate)" in line, line
    assert took < 1 + 1 + STARTUP, took
    assert not (tmp_path / "DUTS-TR").exists()


def test_a_dripping_server_without_a_floor_meets_the_deadline(server, body, tmp_path):
    server.routes[PATH] = Route(body, drip=0.02)
    result, took = fetch(
        tmp_path, server.url(PATH), body, "--timeout", 1, "--min-rate", 0, "--deadline", 3
    )
    assert "not finished within the deadline of 3 s (--deadline)" in one_line(result, 1)
    assert took < 3 + 1 + STARTUP, took
    assert (tmp_path / "DUTS-TR.zip.part").is_file()  # kept: a re-run resumes it


def test_an_endless_server_is_cut_at_the_pinned_size(server, body, tmp_path):
    server.routes[PATH] = Route(body, endless=True)
    result, took = fetch(tmp_path, server.url(PATH), body, "--timeout", 1, "--deadline", 30)
    assert "the server sent more; removed the download" in one_line(result, 1)
    assert took < 30
    no_data(tmp_path)
    assert not (tmp_path / "DUTS-TR.zip.part").exists()


def test_an_endless_server_with_no_size_meets_the_deadline(server, body, tmp_path):
    server.routes[PATH] = Route(body, endless=True)
    result, took = fetch(
        tmp_path, server.url(PATH), body, "--timeout", 1, "--deadline", 2, size=False
    )
    assert "deadline of 2 s" in one_line(result, 1)
    assert took < 2 + 1 + STARTUP, took
    assert not (tmp_path / "DUTS-TR").exists()


@pytest.mark.parametrize("claim", ["longer", "shorter"])
def test_a_server_that_lies_about_its_length_is_one_line(server, body, tmp_path, claim):
    server.routes[PATH] = Route(
        body, claim_length=len(body) * 2 if claim == "longer" else len(body) // 2
    )
    result, took = fetch(tmp_path, server.url(PATH), body, "--timeout", 1, "--deadline", 20)
    assert "size mismatch" in one_line(result, 1)
    assert took < 20 + STARTUP
    no_data(tmp_path)


def test_a_longer_length_with_no_size_pinned_ends_within_the_deadline(server, body, tmp_path):
    server.routes[PATH] = Route(body, claim_length=len(body) + 1000)
    result, took = fetch(
        tmp_path, server.url(PATH), body, "--timeout", 0.5, "--deadline", 10, size=False
    )
    line = one_line(result, 1)
    assert "connection dropped" in line or "refused to resume" in line or "deadline" in line
    assert took < 10 + 0.5 + STARTUP
    assert not (tmp_path / "DUTS-TR").exists()


@pytest.mark.parametrize(
    "url", ["http://[::1", "http://[::1/x.zip", "http://host:99999/x", "http:///x", "ftp://h/x"]
)
def test_a_malformed_address_is_one_line_exit_2(tmp_path, url):
    result = sod("fetch", "duts-tr", "--url", url, "--dest", tmp_path / "d")
    assert "--url" in one_line(result, 2)
    assert not (tmp_path / "d").exists()


def test_an_eps_named_jpg_in_the_archive_fails_fetch_like_verify_data(server, tmp_path):
    files = duts_files(3)
    files["DUTS-TR/DUTS-TR-Image/img_001.jpg"] = (
        b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 20 14\nshowpage\n"
    )
    data = zip_bytes(files.items())
    server.routes[PATH] = Route(data)
    result, _ = fetch(tmp_path, server.url(PATH), data, "--deadline", 60)
    line = one_line(result, 1)
    assert "1 bad file(s): DUTS-TR/DUTS-TR-Image/img_001.jpg: cannot decode" in line, line
    no_data(tmp_path)


def test_the_limits_and_their_defaults_are_in_the_help():
    text = " ".join(sod("fetch", "--help").stdout.decode().split())
    for option in ("--timeout", "--deadline", "--min-rate"):
        assert option in text
    assert "default: 30.0" in text and "default: 14400.0" in text and "default: 1024.0" in text


def test_retrying_a_refused_connection_stops_at_the_deadline(body, tmp_path):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}{PATH}"
    result, took = fetch(tmp_path, url, body, "--deadline", 3)  # back-off would take 31 s
    assert "cannot connect" in one_line(result, 1)
    assert took < 3 + STARTUP, took


def test_retrying_a_503_stops_at_the_deadline(server, body, tmp_path):
    server.routes[PATH] = Route(body, statuses=[503] * 100)
    result, took = fetch(tmp_path, server.url(PATH), body, "--deadline", 3)
    assert "HTTP 503" in one_line(result, 1)
    assert took < 3 + STARTUP, took
    no_data(tmp_path)
