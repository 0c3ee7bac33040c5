"""Unpack a data-set zip without trusting it, then check that it holds the data set.

Every entry is inspected before a single byte is written: absolute paths, ``..``
components, symlinks and other special files, duplicate names and zip bombs (absurd
total size or compression ratio) are refused. Files are written into a temp folder
next to the destination, the layout and pair count are verified there, and only then
is the data renamed into place; on any failure the temp folder is removed.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import TracebackType

from sod_train import progress
from sod_train.data.pairs import PairScan, check_pair_headers, locate_layout, scan_pairs
from sod_train.errors import GateError, UserInputError, joined
from sod_train.fetch.pins import known_problems

IGNORED_TOP = ("__MACOSX",)  # resource-fork folders macOS zips carry next to the data


@dataclass(frozen=True)
class ZipLimits:
    """What counts as a zip bomb. DUTS-TR is 0.3 GB in 21k entries at a ratio near 1."""

    max_total_bytes: int = 32 << 30  # all entries together, uncompressed
    max_entries: int = 1_000_000
    max_ratio: float = 100.0  # uncompressed / compressed, per large entry and overall
    ratio_min_bytes: int = 1 << 20  # entries smaller than this cannot be a bomb


class Staging:
    """A temp folder next to ``dest``; :meth:`commit` renames a folder in it onto ``dest``.

    Used as a context manager: the temp folder and anything left in it are removed on
    exit, so a failed extraction leaves nothing behind.
    """

    def __init__(self, dest: Path) -> None:
        self.dest = dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        self.tree = Path(tempfile.mkdtemp(prefix=f".{dest.name}.extract-", dir=dest.parent))

    def commit(self, root: Path) -> None:
        """Rename ``root`` (inside the temp folder) onto ``dest``, which must not exist."""
        if self.dest.exists():
            raise GateError(f"{self.dest}: already exists; not replacing it")
        os.rename(root, self.dest)

    def __enter__(self) -> Staging:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        shutil.rmtree(self.tree, ignore_errors=True)


def remove_stale_staging(dest: Path) -> None:
    """Delete temp folders an interrupted extraction into ``dest`` left (caller holds the lock)."""
    for stale in dest.parent.glob(f".{dest.name}.extract-*"):
        shutil.rmtree(stale, ignore_errors=True)


def safe_extract(
    archive: Path, into: Path, limits: ZipLimits | None = None, quiet: bool = False
) -> None:
    """Extract every entry of ``archive`` under the empty folder ``into`` after checking it.

    Raises GateError naming the archive and the offending entry; the caller removes
    ``into`` (see :class:`Staging`).
    """
    limits = limits or ZipLimits()
    try:
        with zipfile.ZipFile(archive) as zf:
            members = check_members(zf.infolist(), archive, archive.stat().st_size, limits)
            _need_space(into, sum(info.file_size for info, _ in members), archive)
            _write_members(zf, members, into, archive, limits, quiet)
    except zipfile.BadZipFile as exc:
        raise GateError(f"{archive}: not a readable zip archive ({exc})") from None


def check_members(
    infos: list[zipfile.ZipInfo], archive: Path, archive_size: int, limits: ZipLimits
) -> list[tuple[zipfile.ZipInfo, tuple[str, ...]]]:
    """Refuse unsafe entries; return each entry with its checked relative path parts."""
    if len(infos) > limits.max_entries:
        raise GateError(f"{archive}: {len(infos):,} entries, more than {limits.max_entries:,}")
    checked = []
    seen: dict[str, str] = {}
    files: set[tuple[str, ...]] = set()
    total = 0
    for info in infos:
        parts = _safe_parts(info, archive)
        key = "/".join(parts).casefold()
        if key in seen:
            raise GateError(
                f"{archive}: duplicate entry '{info.filename}' (same path as '{seen[key]}')"
            )
        seen[key] = info.filename
        if not info.is_dir():
            files.add(tuple(p.casefold() for p in parts))
            total += info.file_size
            _check_bomb(info, total, archive, limits)
        checked.append((info, parts))
    for _, parts in checked:
        folded = tuple(p.casefold() for p in parts)
        for depth in range(1, len(folded)):
            if folded[:depth] in files:
                raise GateError(
                    f"{archive}: entry '{'/'.join(parts)}' lies inside "
                    f"'{'/'.join(parts[:depth])}', which is a file"
                )
    if total > limits.ratio_min_bytes and total > limits.max_ratio * max(archive_size, 1):
        raise GateError(
            f"{archive}: unpacks to {total:,} bytes from {archive_size:,} "
            f"(ratio over {limits.max_ratio:g}): refusing a likely zip bomb"
        )
    return checked


UTF8_NAME = 0x800  # general-purpose flag bit 11: the entry's name is UTF-8


def entry_name(info: zipfile.ZipInfo) -> str:
    """The name an entry is extracted under: its UTF-8 name, or else its raw bytes (as
    ``unzip`` writes them; zipfile decoded them as cp437) decoded the way Python decodes
    file names (surrogateescape). So a non-UTF-8 file name comes back byte for byte."""
    if info.flag_bits & UTF8_NAME:
        return info.filename
    try:
        return os.fsdecode(info.filename.encode("cp437"))
    except UnicodeEncodeError:  # a name zipfile did not decode as cp437: keep it
        return info.filename


def _safe_parts(info: zipfile.ZipInfo, archive: Path) -> tuple[str, ...]:
    """The entry's path parts, or GateError if it could land outside the target folder."""
    name = entry_name(info)
    where = f"{archive}: entry '{name}'"
    norm = name.replace("\\", "/")
    if "\x00" in norm or not norm.strip("/"):
        raise GateError(f"{where}: empty or invalid name")
    if norm.startswith("/") or re.match(r"[A-Za-z]:", norm):
        raise GateError(f"{where}: absolute path")
    parts = PurePosixPath(norm).parts
    if ".." in parts:
        raise GateError(f"{where}: '..' path component (would write outside the folder)")
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise GateError(f"{where}: symbolic link")
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise GateError(f"{where}: special file (mode {stat.filemode(mode)})")
    if info.flag_bits & 0x1:
        raise GateError(f"{where}: encrypted")
    return parts


def _check_bomb(info: zipfile.ZipInfo, total: int, archive: Path, limits: ZipLimits) -> None:
    if total > limits.max_total_bytes:
        raise GateError(
            f"{archive}: entries add up to more than {limits.max_total_bytes:,} bytes "
            "uncompressed: refusing a likely zip bomb"
        )
    if info.file_size >= limits.ratio_min_bytes:
        ratio = info.file_size / max(info.compress_size, 1)
        if ratio > limits.max_ratio:
            raise GateError(
                f"{archive}: entry '{info.filename}' expands {ratio:,.0f}x "
                f"({info.compress_size:,} -> {info.file_size:,} bytes): refusing a likely zip bomb"
            )


def _need_space(folder: Path, needed: int, archive: Path) -> None:
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise GateError(f"{archive}: needs {needed:,} bytes to unpack, {folder} has {free:,} free")


def _write_members(
    zf: zipfile.ZipFile,
    members: list[tuple[zipfile.ZipInfo, tuple[str, ...]]],
    into: Path,
    archive: Path,
    limits: ZipLimits,
    quiet: bool,
) -> None:
    """Write the checked entries, counting bytes so no entry outgrows its declared size."""
    declared = sum(info.file_size for info, _ in members)
    written_all = 0
    with progress.Bar(length=max(declared, 1), label="extracting", quiet=quiet) as bar:
        for info, parts in members:
            target = into.joinpath(*parts)
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            written = 0
            try:
                with zf.open(info) as src, open(target, "xb") as out:
                    while block := src.read(1 << 20):
                        written += len(block)
                        written_all += len(block)
                        if written > info.file_size or written_all > limits.max_total_bytes:
                            raise GateError(
                                f"{archive}: entry '{info.filename}' inflates past its declared "
                                f"size of {info.file_size:,} bytes: refusing a likely zip bomb"
                            )
                        out.write(block)
                        bar.update(len(block))
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
                raise GateError(f"{archive}: entry '{info.filename}' is corrupt ({exc})") from None
            except (RuntimeError, OSError) as exc:
                raise GateError(
                    f"{archive}: entry '{info.filename}': cannot extract ({exc})"
                ) from None


def find_data_root(tree: Path, top_dir: str, exact: bool, archive: Path) -> Path:
    """The folder of the extracted ``tree`` that holds the image and mask folders.

    ``exact``: it must be ``tree/top_dir`` (a pinned archive). Otherwise also accept the
    archive root itself or its single top-level folder (a private archive).
    """
    candidates = [tree / top_dir]
    if not exact:
        tops = [p for p in tree.iterdir() if p.is_dir() and p.name not in IGNORED_TOP]
        candidates += [tree] + (tops if len(tops) == 1 else [])
    for root in candidates:
        try:
            locate_layout(root)
        except UserInputError:
            continue
        return root
    found = ", ".join(sorted(p.name for p in tree.iterdir())[:8]) or "nothing"
    raise GateError(
        f"{archive}: no data set inside (expected {top_dir}/ holding <NAME>-Image/ and "
        f"<NAME>-Mask/ folders; the archive holds: {found})"
    )


def verify_layout(
    root: Path,
    archive: Path,
    layout: tuple[str, str] | None = None,
    expected_pairs: int | None = None,
    known_bad: tuple[str, ...] = (),
) -> tuple[PairScan, list[str]]:
    """Check the extracted data: folder names, pair count, every pair's headers.

    Returns the scan (every stem-matched pair, so the count and the content digest cover
    the whole published set) and the problems that ``known_bad`` excuses; any other
    problem raises GateError.
    """
    image_dir, mask_dir = locate_layout(root)
    if layout and (image_dir.name, mask_dir.name) != layout:
        raise GateError(
            f"{archive}: expected folders {layout[0]}/ and {layout[1]}/, "
            f"found {image_dir.name}/ and {mask_dir.name}/"
        )
    scan = scan_pairs(root, check_headers=False)
    problems = scan.problems + [p for pair in scan.pairs if (p := check_pair_headers(pair))]
    known = known_problems(problems, root, known_bad)
    bad = [p for p in problems if p not in known]
    if bad:
        shown = joined([p.replace(f"{root.parent}{os.sep}", "") for p in bad], 5)
        raise GateError(f"{archive}: {len(bad):,} bad file(s): {shown}")
    if expected_pairs is not None and len(scan.pairs) != expected_pairs:
        raise GateError(
            f"{archive}: expected {expected_pairs:,} image/mask pairs, got {len(scan.pairs):,}"
        )
    if not scan.pairs:
        raise GateError(f"{archive}: no image/mask pairs")
    return scan, known
