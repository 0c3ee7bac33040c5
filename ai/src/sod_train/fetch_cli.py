"""``sod-train fetch`` and ``sod-train verify-data``: get the data set, prove it is genuine.

``fetch`` downloads a pinned archive (or takes ``--archive``), checks its size and
SHA-256, unpacks it safely and records what it verified in a marker file inside the
data folder, so a re-run does no network I/O. ``verify-data`` fully decodes every pair
of any folder and compares its content digest with the pin.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click
import requests

from .atomicio import write_json
from .datasets import PINS, DatasetPin, get_pin, known_problems, pair_files, pin_for_scan
from .download import NetPolicy, download, folder_lock, hash_file
from .errors import GateError, UserInputError
from .extract import (
    Staging,
    ZipLimits,
    find_data_root,
    remove_stale_staging,
    safe_extract,
    verify_layout,
)
from .guards import check_output_dir, read_json_object, require_regular_file
from .imageio import open_image
from .pairs import Pair, content_digest, digest_aliases, mask_problem, scan_pairs

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
                    click.echo(pin.terms, err=True)
                    click.echo(f"downloading {url or pin.url} -> {archive}", err=True)
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
        click.echo(
            f"note: {len(known)} file(s) of the published {pin.name} fail the mask check "
            "(every genuine copy has them):\n  " + "\n  ".join(known),
            err=True,
        )
    private = override and pin.sha256 is not None  # the user's own archive, not the pin's
    if pin.content_digest and digest != pin.content_digest and not private:
        click.echo(
            f"warning: content digest {digest} differs from the {pin.name} digest "
            f"{pin.content_digest} measured on {pin.digest_source}; "
            "`sod-train verify-data` will report this copy as different",
            err=True,
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
        digest = content_digest(data, pair_files(scan))
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
    digest = content_digest(root, pair_files(scan))
    same = recorded[1] in digest_aliases(digest)  # markers of earlier versions: legacy digest
    if scan.problems or not same or len(scan.pairs) != recorded[2]:
        raise GateError(
            f"{root}: changed since it was verified (content digest {digest}, "
            f"recorded {recorded[1]}); {advice}"
        )
    return marker


def _url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Only http(s) addresses with a host: anything else fails here, before any work."""
    if value is None:
        return value
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise click.BadParameter(f"'{value}': expected an http:// or https:// address")
    return value


def _hex(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", value):
        raise click.BadParameter("must be 64 hexadecimal digits (a SHA-256)")
    return value.lower() if value else value


@click.command("fetch")
@click.argument("dataset", metavar=f"[{'|'.join(sorted(PINS))}]")
@click.option(
    "--dest",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("data"),
    show_default=True,
    help="Folder to put the archive and the data set in.",
)
@click.option(
    "--url",
    callback=_url,
    help="Download from this http(s) mirror instead; the bytes must still match.",
)
@click.option(
    "--archive",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Use this already-downloaded zip (verified, never modified); no network.",
)
@click.option("--sha256", callback=_hex, help="Expected archive SHA-256 instead of the pin.")
@click.option(
    "--size",
    type=click.IntRange(0, 2**40),
    help="Expected archive size in bytes (with --sha256).",
)
@click.option("--quiet", is_flag=True, help="No progress bars or notes.")
def fetch(
    dataset: str,
    dest: Path,
    url: str | None,
    archive: Path | None,
    sha256: str | None,
    size: int | None,
    quiet: bool,
) -> None:
    """Download DATASET (e.g. duts-tr), verify its pinned SHA-256, unpack it safely.

    Prints where the data is and the --duts-root to give the trainer. DUTS is free for
    academic research only; sod-train never redistributes it.
    """
    if url and archive:
        raise click.UsageError("give --url or --archive, not both")
    if size is not None and sha256 is None:
        raise click.UsageError("--size needs --sha256 (a size alone proves nothing)")
    pin = get_pin(dataset)
    check_output_dir(dest, "the data set")
    if archive is not None:
        require_regular_file(archive, "the archive")
    try:
        result = fetch_dataset(
            pin, dest, url=url, archive=archive, sha256=sha256, size=size, quiet=quiet
        )
    except OSError as exc:  # unwritable --dest, full disk, ...
        raise GateError(f"{exc.filename or dest}: {exc.strerror or exc}") from None
    what = f"{result.pairs:,} pairs, content digest {result.content_digest}"
    if result.already:
        click.echo(f"{result.root}: already there and verified ({what}); nothing downloaded")
    else:
        click.echo(f"{result.root}: ready ({what})")
    click.echo(f"train with: --duts-root {shlex.quote(str(result.root))}")


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
    problems = list(scan.problems)
    workers = min(8, os.cpu_count() or 1)
    with (
        ThreadPoolExecutor(workers) as pool,
        click.progressbar(
            pool.map(_decode_problem, scan.pairs),
            length=len(scan.pairs),
            label="decoding",
            hidden=quiet,
            file=sys.stderr,
        ) as results,
    ):
        problems += [p for p in results if p]
    digest = content_digest(root, pair_files(scan))
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


@click.command("verify-data")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def verify_data(folder: Path, as_json: bool, quiet: bool) -> None:
    """Prove FOLDER holds a good copy: every pair decodes, sizes match, digest matches.

    FOLDER uses the official layout (e.g. DUTS-TR/DUTS-TR-Image + DUTS-TR-Mask) or
    images/ + masks/. Exit 0 ok, 1 bad files or digest mismatch, 2 not a data folder.
    """
    try:
        report = verify_folder(folder, quiet=quiet)
    except OSError as exc:  # an unreadable file or folder
        raise GateError(f"{exc.filename or folder}: {exc.strerror or exc}") from None
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        click.echo(f"{folder}: {report['pairs']:,} pairs, {len(report['problems'])} bad file(s)")
        for line in report["problems"][:50]:
            click.echo(f"  {line}")
        if len(report["problems"]) > 50:
            click.echo(f"  ... and {len(report['problems']) - 50} more")
        if report["known_problems"]:
            click.echo(
                f"{len(report['known_problems'])} known problem(s) of the published "
                f"{report['pin']} (every genuine copy has them):"
            )
            for line in report["known_problems"]:
                click.echo(f"  {line}")
        click.echo(f"content digest: {report['content_digest']}")
        if report["digest_matches"]:
            click.echo(
                f"matches the pinned {report['pin']} digest (measured on {report['digest_source']})"
            )
        elif report["pin"] is None or report["pinned_digest"] is None:
            click.echo("no pinned digest for this layout: compare it with your source's")
    if report["digest_matches"] is False:
        raise GateError(
            f"{folder}: content digest {report['content_digest']} does not match the pinned "
            f"{report['pin']} digest {report['pinned_digest']} ({report['pairs']:,} pairs, "
            f"the pin has {report['pinned_pairs']:,}): not the same data set"
        )
    if report["problems"]:
        raise GateError(f"{folder}: {len(report['problems'])} bad file(s)")
