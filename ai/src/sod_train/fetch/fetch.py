"""Get the data set and prove it is genuine (``sod-train fetch`` / ``verify-data``).

``fetch`` downloads a pinned archive (or takes ``--archive``), checks its size and
SHA-256, unpacks it safely and records what it verified in a marker file inside the
data folder, so a re-run does no network I/O. ``verify-data`` fully decodes every pair
of any folder and compares its content digest with the pin.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import requests

from sod_train import progress
from sod_train.atomicio import write_json
from sod_train.data.imageio import open_image
from sod_train.data.pairs import (
    Pair,
    content_digest,
    digest_aliases,
    mask_problem,
    pair_files,
    scan_pairs,
)
from sod_train.errors import GateError, UserInputError, joined
from sod_train.fetch.download import NetPolicy, download, folder_lock, hash_file
from sod_train.fetch.extract import (
    Staging,
    ZipLimits,
    find_data_root,
    remove_stale_staging,
    safe_extract,
    verify_layout,
)
from sod_train.fetch.pins import DatasetPin, known_problems, pin_for_scan
from sod_train.guards import read_json_object

MARKER = ".sod-train-fetch.json"


@dataclass(frozen=True)
class FetchResult:
    """Where the data is, and whether this run had to produce it."""

    root: Path
    pairs: int
    content_digest: str
    already: bool  # it was there and verified: nothing downloaded or extracted


def fetch_dataset(
    pin: DatasetPin,
    dest: Path,
    *,
    url: str | None = None,
    archive: Path | None = None,
    sha256: str | None = None,
    size: int | None = None,
    quiet: bool = False,
    policy: NetPolicy | None = None,
    limits: ZipLimits | None = None,
    lock_wait: float | None = None,
    session: requests.Session | None = None,
) -> FetchResult:
    """Make ``dest/<pin.top_dir>`` hold the verified data set and return where it is.

    The archive must match the pin, or ``sha256`` (and ``size``) when the user gives
    them; only then is it extracted. Holds ``dest``'s lock for the whole run.
    """
    expected_sha = (sha256 or pin.sha256 or "").lower()
    if not expected_sha:
        raise UserInputError(
            f"{pin.name}: no pinned archive hash is known; pass --sha256 HEX (and --size N) "
            "of the archive you trust"
        )
    override = sha256 is not None and sha256.lower() != pin.sha256  # not the pinned archive
    expected_size = size if override else pin.size
    dest = Path(os.path.abspath(dest))
    root = dest / pin.top_dir
    with folder_lock(dest, lock_wait):
        marker = _already_verified(root, expected_sha)
        if marker is not None:
            return FetchResult(root, marker["pairs"], marker["content_digest"], already=True)
        remove_stale_staging(root)
        downloaded = None
        if archive is None:
            archive = dest / f"{pin.top_dir}.zip"
            if archive.exists():
                _check_archive(archive, expected_sha, expected_size, quiet, theirs=False)
            else:
                if not quiet:
                    progress.note(pin.terms)
                    progress.note(f"downloading {url or pin.url} -> {archive}")
                download(
                    url or pin.url,
                    archive,
                    sha256=expected_sha,
                    size=expected_size,
                    policy=policy,
                    quiet=quiet,
                    session=session,
                )
                downloaded = archive
        else:
            _check_archive(archive, expected_sha, expected_size, quiet, theirs=True)
        try:
            pairs, digest, known = _unpack(
                pin, archive, root, expected_sha, override, limits, quiet
            )
        except GateError as exc:
            if downloaded is None:
                raise
            downloaded.unlink(missing_ok=True)
            raise GateError(f"{exc} (removed {downloaded})") from None
    if known:
        progress.note(
            f"note: {len(known)} file(s) of the published {pin.name} fail the mask check "
            "(every genuine copy has them):",
            details=known,
        )
    private = override and pin.sha256 is not None  # the user's own archive, not the pin's
    if pin.content_digest and digest != pin.content_digest and not private:
        progress.note(
            f"warning: content digest {digest} differs from the {pin.name} digest "
            f"{pin.content_digest} measured on {pin.digest_source}; "
            "`sod-train verify-data` will report this copy as different"
        )
    return FetchResult(root, pairs, digest, already=False)


def _check_archive(path: Path, sha256: str, size: int | None, quiet: bool, theirs: bool) -> None:
    """Hash a local archive; on mismatch fail without touching it (it may be the user's)."""
    try:
        got, got_size = hash_file(path, quiet=quiet, label=f"checking {path.name}")
    except OSError as exc:  # e.g. EIO: the archive itself, not --dest, is what failed
        raise UserInputError(f"{path}: cannot read the archive ({exc.strerror or exc})") from None
    hint = "" if theirs else " (remove it to download again)"
    if size is not None and got_size != size:
        raise GateError(f"{path}: size mismatch: expected {size:,} bytes, got {got_size:,}{hint}")
    if got != sha256:
        raise GateError(f"{path}: SHA-256 mismatch: expected {sha256}, got {got}{hint}")


def _unpack(
    pin: DatasetPin,
    archive: Path,
    root: Path,
    sha256: str,
    override: bool,
    limits: ZipLimits | None,
    quiet: bool,
) -> tuple[int, str, list[str]]:
    """Extract into a temp folder, verify, write the marker, rename onto ``root``.

    Returns the pair count, the content digest and the known problems (under ``root``).
    """
    with Staging(root) as stage:
        safe_extract(archive, stage.tree, limits, quiet)
        data = find_data_root(stage.tree, pin.top_dir, exact=not override, archive=archive)
        scan, known = verify_layout(
            data,
            archive,
            layout=None if override else (pin.image_dir, pin.mask_dir),
            expected_pairs=None if override else pin.pairs,
            known_bad=pin.known_bad,
        )
        # Every picture decoded as verify-data decodes it: a header that opens (an EPS
        # named .jpg) is not yet a picture the trainer can read.
        decoded = decode_problems(scan.pairs, quiet)
        bad = [p for p in decoded if p not in known_problems(decoded, data, pin.known_bad)]
        if bad:
            shown = joined([p.replace(f"{data.parent}{os.sep}", "") for p in bad], 5)
            raise GateError(f"{archive}: {len(bad):,} bad file(s): {shown}")
        digest = content_digest(data, pair_files(scan.pairs))
        marker = {
            "dataset": pin.name,
            "archive_sha256": sha256,
            "archive_size": archive.stat().st_size,
            "pairs": len(scan.pairs),
            "content_digest": digest,
            "verified_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        write_json(data / MARKER, marker)
        stage.commit(data)
    return len(scan.pairs), digest, [line.replace(str(data), str(root), 1) for line in known]


def _already_verified(root: Path, sha256: str) -> dict[str, Any] | None:
    """The marker of a verified copy at ``root``; None if nothing is there; else GateError.

    Recomputes the content digest, so a copy changed since it was fetched is caught.
    """
    if not root.exists():
        return None
    advice = f"check it with `sod-train verify-data {root}`, or remove it or pick another --dest"
    try:
        marker = read_json_object(root / MARKER, "the fetch marker")
        recorded = (marker["archive_sha256"], marker["content_digest"], int(marker["pairs"]))
        if not all(isinstance(v, str) for v in recorded[:2]):
            raise TypeError("marker digests must be strings")
    except (UserInputError, ValueError, KeyError, TypeError):
        raise GateError(
            f"{root}: already exists but was not fetched by sod-train; {advice}"
        ) from None
    if recorded[0] != sha256:
        raise GateError(
            f"{root}: already holds data from archive {recorded[0]}, not {sha256}; {advice}"
        )
    try:
        scan = scan_pairs(root, check_headers=False)
    except UserInputError as exc:
        raise GateError(f"{exc}; {advice}") from None
    digest = content_digest(root, pair_files(scan.pairs))
    same = recorded[1] in digest_aliases(digest)  # markers of earlier versions: legacy digest
    if scan.problems or not same or len(scan.pairs) != recorded[2]:
        raise GateError(
            f"{root}: changed since it was verified (content digest {digest}, "
            f"recorded {recorded[1]}); {advice}"
        )
    return marker


def _decode_problem(pair: Pair) -> str | None:
    """Fully decode both files of ``pair``; a 'path: problem' line, or None if fine."""
    sizes = []
    for path in (pair.image, pair.mask):
        try:
            with open_image(path, "mask" if path == pair.mask else "image") as im:
                im.load()
                sizes.append(im.size)
                if path == pair.mask and (problem := mask_problem(im)):
                    return f"{path}: {problem}"
        except UserInputError as exc:  # not a regular file, not an image, over the limit
            return str(exc)
        except (OSError, ValueError, SyntaxError, EOFError) as exc:
            return f"{path}: cannot decode ({exc.__class__.__name__}: {exc})"
    if sizes[0] != sizes[1]:
        (iw, ih), (mw, mh) = sizes
        return f"{pair.mask}: size {mw}x{mh} != image size {iw}x{ih}"
    return None


def decode_problems(pairs: list[Pair], quiet: bool = False) -> list[str]:
    """Fully decode every pair (threads, a progress bar); one 'path: problem' line per bad
    pair, in order. The one check ``verify-data`` and ``fetch`` both run."""
    workers = min(8, os.cpu_count() or 1)
    with (
        ThreadPoolExecutor(workers) as pool,
        progress.Bar(
            pool.map(_decode_problem, pairs), length=len(pairs), label="decoding", quiet=quiet
        ) as results,
    ):
        return [p for p in results if p]


def verify_folder(root: Path, quiet: bool = False) -> dict[str, Any]:
    """Decode every pair under ``root`` and compute its content digest; return a report.

    Raises UserInputError when ``root`` is not a data-set folder or holds no file at all.
    The report's ``ok`` is False when a file is bad or the digest differs from the
    matching pin (by official folder names, else by digest: a copy in ``images/`` +
    ``masks/`` matches its pin too). Problems the pin lists as present in every genuine
    copy are reported apart, as ``known_problems``, and do not make the copy bad.
    """
    scan = scan_pairs(root, check_headers=False)
    if not scan.paired and not scan.problems:
        raise UserInputError(
            f"{root}: no image/mask pairs in {scan.image_dir.name}/ and "
            f"{scan.mask_dir.name}/: nothing to verify"
        )
    problems = list(scan.problems) + decode_problems(scan.pairs, quiet)
    digest = content_digest(root, pair_files(scan.pairs))
    pin = pin_for_scan(scan, digest)
    pinned = pin.content_digest if pin else None
    known = known_problems(problems, root, pin.known_bad, pin, scan) if pin else []
    problems = [p for p in problems if p not in known]
    report: dict[str, Any] = {
        "root": str(root),
        "image_dir": scan.image_dir.name,
        "mask_dir": scan.mask_dir.name,
        "pairs": len(scan.pairs),
        "problems": problems,
        "known_problems": known,
        "content_digest": digest,
        "pin": pin.name if pin else None,
        "pinned_pairs": pin.pairs if pin else None,
        "pinned_digest": pinned,
        "digest_source": pin.digest_source if pinned and pin else None,
        "digest_matches": None if pinned is None else digest == pinned,
    }
    report["ok"] = not problems and report["digest_matches"] is not False
    return report
