"""Test helpers for fetch / extract / verify-data (imported by the tests, not a conftest).

``FileServer`` is a real threaded HTTP server on 127.0.0.1 (port 0) whose routes can
misbehave the way real servers do; ``duts_files`` / ``zip_bytes`` build tiny DUTS-like
data sets with real JPEG/PNG files made by Pillow.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import random
import re
import threading
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from PIL import Image


@dataclass
class Route:
    """What the server answers for one path."""

    body: bytes
    honour_range: bool = True  # False: answer 200 with the whole body to a Range request
    statuses: list[int] = field(default_factory=list)  # answered (then consumed) first
    drop_first_at: int | None = None  # the first body answer stops after this many bytes
    truncate_at: int | None = None  # every answer stops at this offset (Content-Length lies)
    stall: str | None = None  # "headers": never answer; "body": stop after half the body
    gate: threading.Event | None = None  # pause half way through the body until set
    drip: float | None = None  # send the body one byte every ``drip`` seconds
    endless: bool = False  # no Content-Length, then bytes forever (until the client leaves)
    claim_length: int | None = None  # announce this Content-Length, whatever is sent
    dropped: bool = False


class FileServer:
    """A threaded HTTP server on 127.0.0.1 that logs (path, Range header) per request."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.release = threading.Event()  # set on stop: stalled handlers return
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                # The client going away (timeouts, drops) is expected in these tests.
                with contextlib.suppress(ConnectionError, OSError):
                    owner._answer(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def gets(self, path: str) -> int:
        return sum(1 for p, _ in self.requests if p == path)

    def __enter__(self) -> FileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        for route in self.routes.values():
            if route.gate:
                route.gate.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def _answer(self, h: BaseHTTPRequestHandler) -> None:
        self.requests.append((h.path, h.headers.get("Range")))
        route = self.routes.get(h.path)
        if route is None:
            h.send_error(404)
            return
        if route.statuses:
            h.send_response(route.statuses.pop(0))
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        if route.stall == "headers":
            self.release.wait(10)
            return
        if route.endless or route.drip is not None:
            self._misbehave(h, route)
            return
        body, start, status = route.body, 0, 200
        match = re.fullmatch(r"bytes=(\d+)-", h.headers.get("Range") or "")
        if match and route.honour_range:
            start, status = int(match.group(1)), 206
            if start >= len(body):
                h.send_response(416)
                h.send_header("Content-Range", f"bytes */{len(body)}")
                h.send_header("Content-Length", "0")
                h.end_headers()
                return
        h.send_response(status)
        length = len(body) - start if route.claim_length is None else route.claim_length
        h.send_header("Content-Length", str(length))
        h.send_header("Accept-Ranges", "bytes")
        if status == 206:
            h.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        h.end_headers()
        end = len(body)
        if route.truncate_at is not None:
            end = route.truncate_at
        if route.drop_first_at is not None and not route.dropped:
            route.dropped = True
            end = start + route.drop_first_at
        half = start + (end - start) // 2
        if route.stall == "body" or route.gate:
            h.wfile.write(body[start:half])
            h.wfile.flush()
            if route.stall == "body":
                self.release.wait(10)
                return
            route.gate.wait(10)
            start = half
        h.wfile.write(body[start:end])

    def _misbehave(self, h: BaseHTTPRequestHandler, route: Route) -> None:
        """An endless body (no length, 64 KiB blocks forever) or a dripping one (one byte
        at a time), until the client goes away or the server stops."""
        h.send_response(200)
        if not route.endless:
            h.send_header("Content-Length", str(len(route.body)))
        h.end_headers()
        sent = 0
        while not self.release.is_set():
            if route.endless:
                h.wfile.write(b"\0" * (64 << 10))
            else:
                if sent >= len(route.body):
                    return
                h.wfile.write(route.body[sent : sent + 1])
                sent += 1
                h.wfile.flush()
                self.release.wait(route.drip)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def jpeg(seed: int, size: tuple[int, int] = (20, 14)) -> bytes:
    """A small real JPEG whose pixels depend on ``seed``."""
    im = Image.new("RGB", size, ((seed * 53) % 256, (seed * 97) % 256, 128))
    im.putpixel((seed % size[0], 0), (255, 255, 255))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def png_mask(seed: int, size: tuple[int, int] = (20, 14), mode: str = "L") -> bytes:
    """A small real PNG mask (white box on black) in ``mode``."""
    im = Image.new(mode, size, 0)
    im.paste(255 if mode in ("L", "1") else (255,) * len(mode), (2, 2, 2 + seed % 10 + 4, 10))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def duts_files(n: int = 3, name: str = "DUTS-TR", top: str | None = "DUTS-TR") -> dict[str, bytes]:
    """``n`` image/mask pairs in the official layout: {relative path: bytes}."""
    prefix = f"{top}/" if top else ""
    files = {}
    for i in range(n):
        files[f"{prefix}{name}-Image/img_{i:03d}.jpg"] = jpeg(i)
        files[f"{prefix}{name}-Mask/img_{i:03d}.png"] = png_mask(i)
    return files


def zip_bytes(
    entries: Iterable[tuple[str | zipfile.ZipInfo, bytes]], deflate: bool = True
) -> bytes:
    """A zip archive of ``entries`` (names or ready-made ZipInfo), in order."""
    buf = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return buf.getvalue()


def duts_zip(n: int = 3, padding: int = 256 << 10) -> bytes:
    """A small DUTS-TR-shaped archive: top folder DUTS-TR/ with image and mask folders.

    ``padding`` bytes of noise in DUTS-TR/padding.bin make the download span several
    network reads, so a dropped connection leaves a partial file to resume.
    """
    noise = random.Random(0).randbytes(padding)
    return zip_bytes([*duts_files(n).items(), ("DUTS-TR/padding.bin", noise)])


def write_files(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def all_files(folder: Path) -> list[str]:
    """Every file under ``folder`` (relative, sorted); [] when it is absent."""
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if not p.is_dir())
