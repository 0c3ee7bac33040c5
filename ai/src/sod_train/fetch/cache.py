"""A data cache: the data set's original files in verified zip shards, cheap to carry.

``write_cache`` packs every stem-matched image/mask pair of a data folder, byte for
byte (no re-encoding, so the training data are unchanged), into uncompressed zip
shards each below a size cap, plus a ``manifest.json`` naming every shard with its
SHA-256 and the data set's content digest (:func:`sod_train.data.pairs.content_digest`).
Two builds of the same folder give byte-identical shards (fixed entry order, dates
and permissions), so a shard can be re-sent alone.

``open_cache`` checks every shard against the manifest before a byte is written,
unpacks them with the project's safe extraction into a temp folder, checks that the
result has the manifest's content digest (the bytes are the original data set) and
only then renames it into place. Its default place is ``<cache>/extracted/<name>``;
a second call finds it there, re-checks its digest and reuses it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sod_train import atomicio, progress
from sod_train.data.pairs import PairScan, content_digest, digest_aliases, pair_files, scan_pairs
from sod_train.errors import GateError, UserInputError
from sod_train.fetch.download import hash_file
from sod_train.fetch.extract import Staging, remove_stale_staging, safe_extract
from sod_train.guards import read_json_object

FORMAT = "sod-train-data-cache"
VERSION = 1
MANIFEST = "manifest.json"
MARKER = ".sod-train-cache.json"  # written inside an extracted data root
LOCK = ".sod-train-cache.lock"
EXTRACTED = "extracted"  # open_cache's default workdir, inside the cache folder
DEFAULT_SHARD_BYTES = 48 << 20  # well under the 64 MiB a training machine receives per call
MAX_SHARD_BYTES = 2 << 30  # keeps every shard a plain (non-zip64) archive
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest zip date: no build time in the bytes
ZIP_MODE = 0o100644 << 16  # regular file, rw-r--r--
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def shard_name(index: int) -> str:
    return f"shard-{index:04d}.zip"


def _entry_cost(name: str, size: int) -> int:
    """Bytes one stored entry adds to a zip: local header, data, central-directory record."""
    encoded = len(os.fsencode(name))
    return 30 + encoded + size + 46 + encoded


def _plan_shards(entries: list[tuple[str, Path, int]], cap: int) -> list[list[tuple[str, Path]]]:
    """Group (name, path, size) entries, in order, into shards of at most ``cap`` bytes.

    An image and its mask are consecutive entries and always share a shard.
    """
    shards: list[list[tuple[str, Path]]] = []
    current: list[tuple[str, Path]] = []
    used = 22  # end-of-central-directory record
    for i in range(0, len(entries), 2):
        pair = entries[i : i + 2]
        cost = sum(_entry_cost(name, size) for name, _, size in pair)
        if 22 + cost > cap:
            raise UserInputError(
                f"{pair[0][1]}: this pair needs {22 + cost:,} bytes, more than the shard "
                f"cap of {cap:,}; pass a larger --shard-mb"
            )
        if current and used + cost > cap:
            shards.append(current)
            current, used = [], 22
        current += [(name, path) for name, path, _ in pair]
        used += cost
    if current:
        shards.append(current)
    return shards


class _RawNameInfo(zipfile.ZipInfo):
    """A member whose name is not UTF-8: stored as its own bytes, without the UTF-8 flag
    (the zip format's legacy encoding), so it unpacks byte for byte (see
    :func:`sod_train.fetch.extract.entry_name`)."""

    def _encodeFilenameFlags(self) -> tuple[bytes, int]:
        return self.filename.encode("cp437"), self.flag_bits & ~0x800


def _member_info(name: str) -> zipfile.ZipInfo:
    """The ZipInfo for member ``name`` (a file name, possibly with surrogateescape bytes)."""
    raw = os.fsencode(name)
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return _RawNameInfo(raw.decode("cp437"), date_time=ZIP_DATE)
    return zipfile.ZipInfo(name, date_time=ZIP_DATE)


def _write_shard(dest: Path, members: list[tuple[str, Path]]) -> None:
    """Atomically write one stored (uncompressed) zip with fixed dates and modes."""
    with (
        atomicio.atomic_path(dest) as tmp,
        zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf,
    ):
        for name, path in members:
            info = _member_info(name)
            info.create_system = 3  # unix, so external_attr carries the mode
            info.external_attr = ZIP_MODE
            info.compress_type = zipfile.ZIP_STORED
            zf.writestr(info, path.read_bytes())


def _check_out_dir(duts_root: Path, out_dir: Path) -> None:
    """Refuse an output folder inside the data or one holding something else."""
    src, out = duts_root.resolve(), out_dir.resolve()
    if out == src or src in out.parents:
        raise UserInputError(
            f"{out_dir}: the cache folder must not be inside --duts-root {duts_root}"
        )
    if out.exists() and not out.is_dir():
        raise UserInputError(f"{out_dir}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise UserInputError(
            f"{out_dir}: not empty and holds no {MANIFEST}; give an empty or new folder"
        )


def _dataset_name(root: Path, image_dir: Path) -> str:
    """The data set's name as the trainer records it; also the extracted folder's name."""
    name = image_dir.name.removesuffix("-Image") if image_dir.name.endswith("-Image") else ""
    name = name or root.resolve().name
    return name if SAFE_NAME.fullmatch(name) else "data"


def write_cache(
    duts_root: str | Path,
    out_dir: str | Path,
    shard_bytes: int = DEFAULT_SHARD_BYTES,
    quiet: bool = False,
) -> dict[str, Any]:
    """Pack every stem-matched pair under ``duts_root`` into shards in ``out_dir``.

    Pairs whose files fail the header checks are packed too (the trainer decides what
    to do with them, and the validation fold depends on every pair's name); files
    without a partner are left out. Returns the manifest, written last, atomically.
    A rebuild into the same folder replaces the shards and removes stale ones.
    """
    duts_root, out_dir = Path(duts_root), Path(out_dir)
    if not 0 < shard_bytes <= MAX_SHARD_BYTES:
        raise UserInputError(f"shard size {shard_bytes:,} bytes: must be 1 to {MAX_SHARD_BYTES:,}")
    scan = scan_pairs(duts_root, check_headers=False)
    if not scan.paired:
        raise UserInputError(f"{duts_root}: no image/mask pairs to cache")
    _check_out_dir(duts_root, out_dir)
    files = pair_files(scan.paired)
    entries = [(p.relative_to(duts_root).as_posix(), p, p.stat().st_size) for p in files]
    plan = _plan_shards(entries, shard_bytes)
    digest = content_digest(duts_root, files)
    out_dir.mkdir(parents=True, exist_ok=True)
    shards = []
    with progress.Bar(plan, label="writing shards", quiet=quiet) as bar:
        for index, members in enumerate(bar):
            dest = out_dir / shard_name(index)
            _write_shard(dest, members)
            sha, size = hash_file(dest)
            if size > shard_bytes:  # the plan counts every header byte; this cannot happen
                raise GateError(f"{dest}: {size:,} bytes, over the cap of {shard_bytes:,}")
            shards.append(
                {"file": dest.name, "sha256": sha, "bytes": size, "members": len(members)}
            )
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "dataset": _dataset_name(duts_root, scan.image_dir),
        "image_dir": scan.image_dir.name,
        "mask_dir": scan.mask_dir.name,
        "pairs": len(scan.paired),
        "files": len(files),
        "content_digest": digest,
        "shard_cap_bytes": shard_bytes,
        "shards": shards,
    }
    atomicio.write_json(out_dir / MANIFEST, manifest)
    keep = {s["file"] for s in shards}
    for stale in out_dir.glob("shard-*.zip"):
        if stale.name not in keep:
            stale.unlink()
    return manifest


def read_manifest(cache_dir: str | Path) -> dict[str, Any]:
    """The cache's manifest, checked for shape; UserInputError if missing or malformed."""
    path = Path(cache_dir) / MANIFEST
    if not path.exists():
        raise UserInputError(
            f"{path}: not found; is {cache_dir} a folder made by `sod-train build-cache`?"
        )
    try:
        manifest = read_json_object(path, "the data-cache manifest")
    except UserInputError as exc:
        reason = str(exc).removeprefix(f"{path}: ")
        raise UserInputError(f"{path}: unreadable manifest: {reason}") from None
    if manifest.get("format") != FORMAT:
        raise UserInputError(f"{path}: not a sod-train data-cache manifest")
    if manifest.get("version") != VERSION:
        raise UserInputError(
            f"{path}: cache format version {manifest.get('version')!r}, "
            f"this sod-train reads version {VERSION}"
        )
    try:
        names = [manifest["dataset"], manifest["image_dir"], manifest["mask_dir"]]
        int(manifest["pairs"]), str(manifest["content_digest"])
        shards = [(s["file"], s["sha256"], int(s["bytes"])) for s in manifest["shards"]]
        if not isinstance(manifest["content_digest"], str):
            raise TypeError("content_digest")
        if not all(isinstance(sha, str) for _, sha, _ in shards):
            raise TypeError("sha256")
    except (KeyError, TypeError, ValueError, AttributeError):
        raise UserInputError(f"{path}: malformed manifest (missing or bad fields)") from None
    if not all(
        isinstance(n, str) and SAFE_NAME.fullmatch(n) for n in names + [s[0] for s in shards]
    ):
        raise UserInputError(f"{path}: malformed manifest (unsafe folder or shard name)")
    return manifest


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (several ranks of one job may open one cache)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _folder_digest(root: Path) -> tuple[PairScan, str]:
    """(scan, content digest over every stem-matched pair) of an extracted folder."""
    scan = scan_pairs(root, check_headers=False)
    files = pair_files(scan.paired)
    return scan, content_digest(root, files)


def _reusable(root: Path, manifest: dict[str, Any]) -> bool:
    """True if ``root`` is an extraction of this manifest's data, unchanged since.

    False if it is an older extraction of ours (a rebuilt cache, an edited file);
    GateError if something else lives there.
    """
    try:
        marker = read_json_object(root / MARKER, "the cache marker")
    except UserInputError:
        raise GateError(
            f"{root}: exists but was not extracted by sod-train; remove it or pass another workdir"
        ) from None
    if marker.get("content_digest") != manifest["content_digest"]:
        return False
    try:
        scan, digest = _folder_digest(root)
    except UserInputError:
        return False
    return manifest["content_digest"] in digest_aliases(digest) and not scan.problems


def _check_shards(cache_dir: Path, manifest: dict[str, Any], quiet: bool) -> list[Path]:
    """Every shard's size and SHA-256 against the manifest, before anything is written."""
    paths = []
    for shard in manifest["shards"]:
        path = cache_dir / shard["file"]
        if not path.is_file():
            raise GateError(f"{path}: shard missing (listed in {cache_dir / MANIFEST})")
        sha, size = hash_file(path, quiet=quiet, label=f"checking {path.name}")
        if size != int(shard["bytes"]):
            raise GateError(f"{path}: {size:,} bytes, the manifest says {int(shard['bytes']):,}")
        if sha != shard["sha256"]:
            raise GateError(
                f"{path}: SHA-256 {sha} does not match the manifest's {shard['sha256']}"
            )
        paths.append(path)
    return paths


def open_cache(
    cache_dir: str | Path, workdir: str | Path | None = None, quiet: bool = False
) -> Path:
    """Verify and unpack the cache once; return the data root to train from.

    The data land in ``<workdir>/<dataset>`` (``workdir`` defaults to
    ``<cache_dir>/extracted``). GateError names the shard on any size or hash
    mismatch, or the cache if the unpacked files do not have the manifest's content
    digest; nothing half-extracted is ever left at the returned path.
    """
    cache_dir = Path(cache_dir)
    manifest = read_manifest(cache_dir)
    workdir = Path(workdir) if workdir is not None else cache_dir / EXTRACTED
    root = workdir / manifest["dataset"]
    try:
        with _locked(workdir):
            remove_stale_staging(root)
            if root.exists():
                if _reusable(root, manifest):
                    return root
                if not quiet:
                    progress.note(f"{root}: out of date with the cache; unpacking again")
            _unpack(cache_dir, manifest, root, quiet)
    except OSError as exc:  # unwritable workdir, unreadable shard, full disk: bad input
        raise UserInputError(f"{exc.filename or workdir}: {exc.strerror or exc}") from None
    return root


def _unpack(cache_dir: Path, manifest: dict[str, Any], root: Path, quiet: bool) -> None:
    """Check the shards, extract them into a temp folder, check it, rename it onto ``root``."""
    shards = _check_shards(cache_dir, manifest, quiet)
    with Staging(root) as stage:
        tree = stage.tree / "data"
        tree.mkdir()
        for shard in shards:
            safe_extract(shard, tree, quiet=quiet)
        _check_layout(tree, manifest, cache_dir)
        marker = {"format": FORMAT, "content_digest": manifest["content_digest"]}
        atomicio.write_json(tree / MARKER, marker)
        if root.exists():  # an out-of-date extraction of ours
            shutil.rmtree(root)
        stage.commit(tree)


def _check_layout(tree: Path, manifest: dict[str, Any], cache_dir: Path) -> None:
    """The unpacked files must be exactly the manifest's data set."""
    where = cache_dir / MANIFEST
    try:
        scan, digest = _folder_digest(tree)
    except UserInputError as exc:
        raise GateError(f"{where}: the shards hold no data set ({exc})") from None
    layout = (scan.image_dir.name, scan.mask_dir.name)
    if layout != (manifest["image_dir"], manifest["mask_dir"]):
        raise GateError(
            f"{where}: the shards hold {layout[0]}/ + {layout[1]}/, "
            f"the manifest names {manifest['image_dir']}/ + {manifest['mask_dir']}/"
        )
    stray = [f"stray entry {p.name}" for p in sorted(tree.iterdir()) if p.name not in layout]
    wrong = scan.problems + stray
    if len(scan.paired) != manifest["pairs"]:
        wrong.append(f"{len(scan.paired):,} pairs, the manifest says {manifest['pairs']:,}")
    if wrong:
        raise GateError(f"{where}: the shards do not hold the manifest's data set ({wrong[0]})")
    if manifest["content_digest"] not in digest_aliases(digest):  # older caches: legacy digest
        raise GateError(
            f"{where}: unpacked content digest {digest} differs from the manifest's "
            f"{manifest['content_digest']}: not the data set the cache was built from"
        )
