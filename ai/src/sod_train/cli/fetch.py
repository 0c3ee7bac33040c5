"""``sod-train fetch`` and ``sod-train verify-data``: commands over :mod:`sod_train.fetch.fetch`."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import click

from sod_train.errors import GateError
from sod_train.fetch.download import (
    DEFAULT_DEADLINE,
    DEFAULT_MIN_RATE,
    DEFAULT_TIMEOUT,
    NetPolicy,
)
from sod_train.fetch.fetch import (
    fetch_dataset,
    verify_folder,
)
from sod_train.fetch.pins import PINS, get_pin
from sod_train.guards import check_output_dir, require_regular_file
from sod_train.stdio import echo, echo_block


def _url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Only http(s) addresses with a host: anything else fails here, before any work."""
    if value is None:
        return value
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - parsing the port is the check (ValueError: out of range)
    except ValueError as exc:  # 'http://[::1' (an unclosed IPv6 address), a bad port
        raise click.BadParameter(f"'{value}': not a valid address ({exc})") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
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
@click.option(
    "--timeout",
    type=click.FloatRange(0.1, 3600),
    default=DEFAULT_TIMEOUT,
    show_default=True,
    help="Seconds to connect, and without a byte from the server, before a request fails "
    "(it is retried a few times); also the window of --min-rate.",
)
@click.option(
    "--deadline",
    type=click.FloatRange(1, 7 * 86400),
    default=DEFAULT_DEADLINE,
    show_default=True,
    help="Seconds for the whole download, retries included; then it stops (the partial "
    "file is kept, a re-run resumes it).",
)
@click.option(
    "--min-rate",
    type=click.FloatRange(0),
    default=DEFAULT_MIN_RATE,
    show_default=True,
    help="Bytes per second the server must average over every --timeout seconds of the body "
    "(a server that drips a byte now and then fails); 0: no floor.",
)
@click.option("--quiet", is_flag=True, help="No progress bars or notes.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print root, pairs, content_digest and already (nothing downloaded) as JSON.",
)
def fetch(
    dataset: str,
    dest: Path,
    url: str | None,
    archive: Path | None,
    sha256: str | None,
    size: int | None,
    timeout: float,
    deadline: float,
    min_rate: float,
    quiet: bool,
    as_json: bool,
) -> None:
    """Download DATASET (e.g. duts-tr), verify its pinned SHA-256, unpack it safely.

    Every picture of the archive is decoded, as verify-data does, before it is reported
    ready. Prints where the data is and the --duts-root to give the trainer. DUTS is free
    for academic research only; sod-train never redistributes it.
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
            pin,
            dest,
            url=url,
            archive=archive,
            sha256=sha256,
            size=size,
            quiet=quiet,
            policy=NetPolicy.from_options(timeout, deadline, min_rate),
        )
    except OSError as exc:  # unwritable --dest, full disk, ...
        raise GateError(f"{exc.filename or dest}: {exc.strerror or exc}") from None
    if as_json:
        doc = {"dataset": dataset, "root": str(result.root), "pairs": result.pairs}
        doc.update(content_digest=result.content_digest, already=result.already)
        echo_block(json.dumps(doc, indent=2))
        return
    what = f"{result.pairs:,} pairs, content digest {result.content_digest}"
    if result.already:
        echo(f"{result.root}: already there and verified ({what}); nothing downloaded")
    else:
        echo(f"{result.root}: ready ({what})")
    echo(f"train with: --duts-root {shlex.quote(str(result.root))}")


@click.command("verify-data")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def verify_data(folder: Path, as_json: bool, quiet: bool) -> None:
    """Prove FOLDER holds a good copy: every pair decodes, sizes match, digest matches.

    FOLDER uses the official layout (e.g. DUTS-TR/DUTS-TR-Image + DUTS-TR-Mask) or
    images/ + masks/. Exit 0 ok, 1 bad files or digest mismatch, 2 not a data folder.
    """
    report = verify_folder(folder, quiet=quiet)  # an OSError: one line from cli.main, exit 2
    if as_json:
        echo_block(json.dumps(report, indent=2))
    else:
        echo(f"{folder}: {report['pairs']:,} pairs, {len(report['problems'])} bad file(s)")
        for line in report["problems"][:50]:
            echo(f"  {line}")
        if len(report["problems"]) > 50:
            echo(f"  ... and {len(report['problems']) - 50} more")
        if report["known_problems"]:
            echo(
                f"{len(report['known_problems'])} known problem(s) of the published "
                f"{report['pin']} (every genuine copy has them):"
            )
            for line in report["known_problems"]:
                echo(f"  {line}")
        echo(f"content digest: {report['content_digest']}")
        if report["digest_matches"]:
            echo(
                f"matches the pinned {report['pin']} digest (measured on {report['digest_source']})"
            )
        elif report["pin"] is None or report["pinned_digest"] is None:
            echo("no pinned digest for this layout: compare it with your source's")
    if report["digest_matches"] is False:
        raise GateError(
            f"{folder}: content digest {report['content_digest']} does not match the pinned "
            f"{report['pin']} digest {report['pinned_digest']} ({report['pairs']:,} pairs, "
            f"the pin has {report['pinned_pairs']:,}): not the same data set"
        )
    if report["problems"]:
        raise GateError(f"{folder}: {len(report['problems'])} bad file(s)")
