"""Download one archive so that it is provably the bytes that were pinned.

The download streams into ``<dest>.part`` while hashing (one pass), resumes a partial
``.part`` with an HTTP Range request (restarting from zero when the server ignores
Range), retries connection errors and 5xx answers with backoff, then checks size and
SHA-256 and only then renames the file into place. A mismatch deletes the bad file.
A lock file keeps two fetches into the same folder from writing over each other.

Every way a server can hold a download forever has a limit (:class:`NetPolicy`, the
``fetch`` options ``--timeout``, ``--deadline``, ``--min-rate``):

* **silent** (never answers, or stops sending): no byte for ``timeout`` seconds ends the
  request, which is retried (resumed) a few times;
* **dripping** (a byte now and then): fewer than ``min_rate * timeout`` bytes in any
  ``timeout`` seconds of the body is a failure;
* **endless or lying about its length**: never more bytes than the pinned size (or
  ``--size``), a Content-Length or Content-Range that disagrees is refused at once;
* **everything together**: the whole download, retries and back-off included, ends
  within ``deadline`` seconds (plus at most one ``timeout``).

The body is read with ``read1`` (whatever has arrived, at most a chunk), so a
dripping server never holds one read past the stall timeout and every limit is
checked between reads.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import http.client
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from sod_train import __version__, progress
from sod_train.errors import GateError, UserInputError
from sod_train.hashing import update_from_file

CHUNK = 1 << 16
RETRY_STATUSES = (500, 502, 503, 504)
LOCK_NAME = ".sod-train-fetch.lock"


DEFAULT_TIMEOUT = 30.0  # --timeout: seconds to connect, and without a byte, per request
DEFAULT_DEADLINE = 4 * 3600.0  # --deadline: seconds for the whole download
DEFAULT_MIN_RATE = 1024.0  # --min-rate: bytes/s the body must average over each timeout


@dataclass(frozen=True)
class NetPolicy:
    """Timeouts, limits and retry budget. Tests shrink these; the defaults suit a slow link."""

    connect_timeout: float = DEFAULT_TIMEOUT  # seconds to open a connection
    read_timeout: float = DEFAULT_TIMEOUT  # seconds without a byte before a request fails
    retries: int = 5  # retries per failure kind (urllib3), and resumes without progress
    backoff_factor: float = 1.0  # sleep backoff_factor * 2**(n-1) s before the n-th retry
    backoff_max: float = 60.0  # never sleep longer than this between tries
    deadline: float = DEFAULT_DEADLINE  # the whole download, retries included
    min_rate: float = DEFAULT_MIN_RATE  # bytes/s over each read_timeout window of the body

    @classmethod
    def from_options(cls, timeout: float, deadline: float, min_rate: float) -> NetPolicy:
        """The policy for ``fetch --timeout --deadline --min-rate``; back-off never sleeps
        longer than one timeout."""
        return cls(
            connect_timeout=timeout,
            read_timeout=timeout,
            backoff_max=min(cls.backoff_max, timeout),
            deadline=deadline,
            min_rate=min_rate,
        )


class _Clock:
    """The download's deadline: what is left of it, and the failure once it is spent."""

    def __init__(self, url: str, policy: NetPolicy) -> None:
        self.url, self.policy = url, policy
        self.ends = time.monotonic() + policy.deadline

    def left(self) -> float:
        return self.ends - time.monotonic()

    def timeouts(self) -> tuple[float, float]:
        """(connect, read) timeouts for one request, never past the deadline."""
        left = max(self.left(), 0.05)
        return min(self.policy.connect_timeout, left), min(self.policy.read_timeout, left)

    def check(self, part: Path) -> None:
        if self.left() <= 0:
            raise GateError(
                f"{self.url}: not finished within the deadline of {self.policy.deadline:g} s "
                f"(--deadline){_kept(part)}"
            )


def _kept(part: Path) -> str:
    """What a failed download leaves for a re-run: '; kept N bytes in PART; re-run to
    resume', or nothing (an empty partial file is removed)."""
    have = part.stat().st_size if part.exists() else 0
    if not have:
        part.unlink(missing_ok=True)
        return ""
    return f"; kept {have:,} bytes in {part}; re-run to resume"


class _DeadlineRetry(Retry):
    """urllib3's retry policy (connect errors, 5xx) that also stops at the download's
    deadline: no back-off sleeps past it, and no retry starts after it."""

    ends: float | None = None

    def new(self, **kw: Any) -> _DeadlineRetry:
        retry = super().new(**kw)
        retry.ends = self.ends
        return retry

    def get_backoff_time(self) -> float:
        wait = super().get_backoff_time()
        if self.ends is None:
            return wait
        return max(0.0, min(wait, self.ends - time.monotonic()))

    def is_exhausted(self) -> bool:
        late = self.ends is not None and time.monotonic() >= self.ends
        return late or super().is_exhausted()


def _bound_retries(session: requests.Session, ends: float) -> None:
    """Make the retry policy of ``session`` (from :func:`make_session`) stop at the
    monotonic time ``ends``; retries are per-request copies, so this sets the template."""
    for adapter in session.adapters.values():
        retries = getattr(adapter, "max_retries", None)
        if isinstance(retries, _DeadlineRetry):
            adapter.max_retries = retries.new()
            adapter.max_retries.ends = ends


class _Interrupted(Exception):
    """The body stopped early (dropped or stalled connection): resume with Range."""


def make_session(policy: NetPolicy) -> requests.Session:
    """A requests session that retries connection errors and 5xx (never 4xx) with backoff."""
    retry = _DeadlineRetry(
        total=None,
        connect=policy.retries,
        read=0,  # a read timeout is retried by download(), which watches the deadline
        status=policy.retries,
        other=0,
        redirect=10,
        allowed_methods=frozenset({"GET", "HEAD"}),
        status_forcelist=RETRY_STATUSES,
        backoff_factor=policy.backoff_factor,
        backoff_max=policy.backoff_max,
        raise_on_status=False,  # hand back the last 5xx so the error names the status
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    # The hash is over the bytes on the server: never let a transparent gzip change them.
    session.headers.update(
        {"User-Agent": f"sod-train/{__version__}", "Accept-Encoding": "identity"}
    )
    return session


def download(
    url: str,
    dest: Path,
    *,
    sha256: str,
    size: int | None,
    policy: NetPolicy | None = None,
    quiet: bool = False,
    session: requests.Session | None = None,
) -> None:
    """Download ``url`` to ``dest`` and prove it has ``sha256`` (and ``size`` when given).

    Resumes ``dest.part`` if one is there. On a hash or size mismatch the bad file is
    removed and GateError says expected vs got; on a network failure the ``.part`` is
    kept so that the next run resumes it.
    """
    policy = policy or NetPolicy()
    session = session or make_session(policy)
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    clock = _Clock(url, policy)
    _bound_retries(session, clock.ends)
    failures = 0
    while True:
        clock.check(part)
        have_before = part.stat().st_size if part.exists() else 0
        try:
            hasher = _fetch_into(session, url, part, size, policy, quiet, clock)
            break
        except _Interrupted as exc:
            have = part.stat().st_size if part.exists() else 0
            failures = 0 if have > have_before else failures + 1
            if failures > policy.retries:
                raise GateError(
                    f"{url}: {exc}; gave up after {policy.retries + 1} tries without progress "
                    f"(kept {have:,} bytes in {part}; re-run to resume)"
                ) from None
            if not quiet:
                progress.note(f"{url}: {exc}; resuming at byte {have:,}")
            pause = min(policy.backoff_factor * 2 ** max(failures - 1, 0), policy.backoff_max)
            time.sleep(max(min(pause, clock.left()), 0))
    got_size = part.stat().st_size
    if size is not None and got_size != size:
        part.unlink()
        raise GateError(
            f"{url}: size mismatch: expected {size:,} bytes, got {got_size:,}; removed the download"
        )
    got = hasher.hexdigest()
    if got != sha256.lower():
        part.unlink()
        raise GateError(
            f"{url}: SHA-256 mismatch: expected {sha256.lower()}, got {got}; removed the download"
        )
    os.replace(part, dest)


def _fetch_into(
    session: requests.Session,
    url: str,
    part: Path,
    size: int | None,
    policy: NetPolicy,
    quiet: bool,
    clock: _Clock,
) -> Any:
    """One request: append the missing bytes to ``part``; return the running SHA-256."""
    offset = part.stat().st_size if part.exists() else 0
    if size is not None and offset > size:
        part.unlink()  # longer than the pinned archive: cannot be a prefix of it
        offset = 0
    hasher = hashlib.sha256()
    if offset:
        update_from_file(hasher, part)  # resume: the digest must cover the bytes already here
    if size is not None and offset == size:
        return hasher  # a complete .part from an earlier run: nothing to fetch
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        response = session.get(url, headers=headers, stream=True, timeout=clock.timeouts())
    except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema) as exc:
        raise UserInputError(f"{url}: not a usable address ({exc})") from None
    except requests.RequestException as exc:
        if _stalled(exc):  # no answer within the read timeout: retried, under the deadline
            raise _Interrupted(_describe(exc, policy)) from None
        # urllib3 has already retried connecting and 5xx answers
        raise GateError(f"{url}: {_describe(exc, policy)}") from None
    with response:
        if response.status_code == 206 and _range_start(response) == offset:
            mode = "ab"
        elif response.status_code == 200:
            if offset and not quiet:
                progress.note(f"{url}: server ignored the resume request; restarting at 0")
            offset, mode, hasher = 0, "wb", hashlib.sha256()
        elif offset and response.status_code in (206, 416):
            part.unlink()  # the server disagrees about what we have: start over
            raise _Interrupted(f"server refused to resume at byte {offset:,}")
        else:
            raise GateError(f"{url}: HTTP {response.status_code} {response.reason}") from None
        total = _announced_total(response, offset)
        if size is not None and total is not None and total != size:
            part.unlink(missing_ok=True)
            raise GateError(
                f"{url}: size mismatch: expected {size:,} bytes, got {total:,} "
                "(announced by the server); removed the download"
            )
        with open(part, mode) as out:
            _stream(response, out, hasher, offset, size or total, url, policy, quiet, clock)
            out.flush()
            os.fsync(out.fileno())
    return hasher


def _stream(
    response: requests.Response,
    out: IO[bytes],
    hasher: Any,
    offset: int,
    length: int | None,
    url: str,
    policy: NetPolicy,
    quiet: bool,
    clock: _Clock,
) -> None:
    """Copy the body into ``out`` and the hash, never past ``length`` bytes in all, and
    within the limits of the module doc (stall, throughput floor, deadline)."""
    done = offset
    window_start, window_done = time.monotonic(), done
    part = Path(out.name)
    with _progress(length, offset, "downloading", quiet) as bar:
        while block := _read_some(response, policy):
            if length is not None and done + len(block) > length:
                out.close()
                part.unlink()
                raise GateError(
                    f"{url}: size mismatch: expected {length:,} bytes, "
                    "the server sent more; removed the download"
                )
            out.write(block)
            hasher.update(block)
            done += len(block)
            bar.update(len(block), done)
            if clock.left() <= 0:
                out.flush()  # what arrived stays in the partial file for a re-run
                clock.check(part)
            now = time.monotonic()
            if now - window_start >= policy.read_timeout:
                rate = (done - window_done) / (now - window_start)
                if rate < policy.min_rate:
                    out.flush()
                    raise GateError(
                        f"{url}: the server sends {rate:,.0f} bytes/s, below the floor of "
                        f"{policy.min_rate:,.0f} bytes/s (--min-rate); kept {done:,} bytes in "
                        f"{part}; re-run to resume"
                    )
                window_start, window_done = now, done


def _read_some(response: requests.Response, policy: NetPolicy) -> bytes:
    """What has arrived of the body (at most CHUNK bytes; b"" at its end), waiting at most
    the read timeout; a stall or a dropped connection is _Interrupted (resumed)."""
    try:
        return response.raw.read1(CHUNK)
    except (urllib3.exceptions.ReadTimeoutError, TimeoutError):
        raise _Interrupted(
            f"no data for {policy.read_timeout:g} s (read timeout: the server stalled)"
        ) from None
    except (
        urllib3.exceptions.ProtocolError,
        urllib3.exceptions.IncompleteRead,
        http.client.IncompleteRead,
        ConnectionError,
        OSError,
    ):
        raise _Interrupted("connection dropped in the middle of the download") from None


def _progress(length: int | None, start: int, label: str, quiet: bool) -> Any:
    """A progress bar over ``length`` bytes showing MB done, rate and ETA (hidden if quiet)."""
    began = time.monotonic()

    def show(done: int | None) -> str | None:
        if done is None:
            return None
        rate = (done - start) / max(time.monotonic() - began, 1e-3)
        return f"{done / 1e6:,.1f}/{(length or 0) / 1e6:,.1f} MB  {rate / 1e6:,.1f} MB/s"

    bar = progress.Bar(length=length or 1, label=label, quiet=quiet or not length, show=show)
    bar.update(start, start)
    return bar


def hash_file(path: Path, quiet: bool = True, label: str = "checking") -> tuple[str, int]:
    """SHA-256 and size of ``path`` in one pass, with a progress bar unless ``quiet``."""
    hasher = hashlib.sha256()
    size = path.stat().st_size
    done = 0
    with _progress(size, 0, label, quiet) as bar:

        def advance(n: int) -> None:
            nonlocal done
            done += n
            bar.update(n, done)

        update_from_file(hasher, path, advance)
    return hasher.hexdigest(), size


def _range_start(response: requests.Response) -> int | None:
    match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
    return int(match.group(1)) if match else None


def _announced_total(response: requests.Response, offset: int) -> int | None:
    """Total archive size the server claims (Content-Range total, else offset + length)."""
    match = re.match(r"bytes \d+-\d+/(\d+)$", response.headers.get("Content-Range", ""))
    if match:
        return int(match.group(1))
    length = response.headers.get("Content-Length", "")
    return offset + int(length) if length.isdigit() else None


def _stalled(exc: requests.RequestException) -> bool:
    """Whether a request failed because the server sent nothing for the read timeout
    (requests reports urllib3's read timeout as ReadTimeout or inside ConnectionError)."""
    if isinstance(exc, requests.ReadTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, urllib3.exceptions.ReadTimeoutError)


def _describe(exc: Exception, policy: NetPolicy) -> str:
    """One readable line for a requests failure."""
    text = str(exc)
    if isinstance(exc, requests.ConnectTimeout):
        return f"could not connect within {policy.connect_timeout:g} s (connect timeout)"
    if isinstance(exc, requests.Timeout) or "timed out" in text.lower():
        return f"no data for {policy.read_timeout:g} s (read timeout: the server stalled)"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "connection dropped in the middle of the download"
    if isinstance(exc, requests.ConnectionError):
        reason = getattr(exc.args[0], "reason", exc.args[0]) if exc.args else exc
        return f"cannot connect ({str(reason).split('>: ')[-1]})"
    return f"{exc.__class__.__name__}: {text}"


@contextlib.contextmanager
def folder_lock(folder: Path, wait_s: float | None = None, poll_s: float = 0.2) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (a ``.sod-train-fetch.lock`` file in it).

    A second fetch into the same folder waits, saying so, until the first one is done;
    with ``wait_s`` it gives up after that many seconds with a GateError. The lock file
    is removed on release; a waiter that wakes up on a removed file locks afresh.
    """
    folder.mkdir(parents=True, exist_ok=True)
    lock_path = folder / LOCK_NAME
    deadline = None if wait_s is None else time.monotonic() + wait_s
    said = False
    while True:
        fh = open(lock_path, "a+b")  # noqa: SIM115 - kept open while the lock is held
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            if not said:
                progress.note(f"another fetch is writing to {folder}; waiting for it ({lock_path})")
                said = True
            if deadline is not None and time.monotonic() >= deadline:
                raise GateError(
                    f"{lock_path}: another fetch still holds the lock after {wait_s:g} s; "
                    "wait for it to finish, then re-run"
                ) from None
            time.sleep(poll_s)
            continue
        if _same_file(fh, lock_path):
            break
        fh.close()  # the holder removed this file as we waited: lock the new one
    try:
        yield
    finally:
        lock_path.unlink(missing_ok=True)
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()


def _same_file(fh: IO[bytes], path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fh.fileno()), os.stat(path))
    except FileNotFoundError:
        return False
