"""Find, check and split (image, mask) pairs in a saliency data-set folder.

Layouts understood (first match wins):
  * ``ROOT/<NAME>-Image/`` + ``ROOT/<NAME>-Mask/`` (DUTS-TR, DUTS-TE, ...)
  * ``ROOT/images/`` + ``ROOT/masks/``
Pairs are matched by file stem. Every problem is collected, so one run reports all
bad files at once instead of the first one: a missing or orphan mask, two files of one
role with the same stem (``a.jpg`` + ``a.png``: both are named, neither is guessed),
an entry that is not a regular file (a FIFO, a folder named like an image, a broken
link), an undecodable header, a picture above the pixel limit, a bad mask mode and a
size mismatch.

The content digest (:func:`content_digest`) identifies the files by role (image or
mask), stem and bytes, not by folder names, so one copy gives the same digest in every
supported layout.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from sod_train.data.imageio import IMAGE_EXTS, open_image
from sod_train.errors import UserInputError
from sod_train.hashing import file_sha256

MASK_EXTS = (".png", ".bmp")
ALLOWED_MASK_MODES = ("1", "L", "P")


@dataclass(frozen=True)
class Pair:
    """One training example: an RGB image and its binary saliency mask."""

    stem: str
    image: Path
    mask: Path


@dataclass
class PairScan:
    """Result of scanning a folder: good pairs and a 'path: problem' line per bad file."""

    root: Path
    image_dir: Path
    mask_dir: Path
    pairs: list[Pair] = field(default_factory=list)  # good pairs
    problems: list[str] = field(default_factory=list)
    paired: list[Pair] = field(default_factory=list)  # every stem with both files, good or not


def _listing(folder: Path, what: str) -> list[Path]:
    """The entries of ``folder``, sorted; UserInputError naming it if it cannot be listed
    (no permission, gone, not a folder), never an OSError."""
    try:
        return sorted(folder.iterdir())
    except OSError as exc:
        reason = (exc.strerror or type(exc).__name__).lower()
        raise UserInputError(f"{folder}: cannot list the {what} ({reason})") from None


def locate_layout(root: str | Path) -> tuple[Path, Path]:
    """Return (image_dir, mask_dir) for ``root`` or raise UserInputError naming what is missing."""
    root = Path(root)
    if not root.is_dir():
        raise UserInputError(f"{root}: not a folder")
    entries = _listing(root, "data-set folder")
    for image_dir in (p for p in entries if p.name.endswith("-Image")):
        mask_dir = root / (image_dir.name[: -len("-Image")] + "-Mask")
        if image_dir.is_dir() and mask_dir.is_dir():
            return image_dir, mask_dir
    if (root / "images").is_dir() and (root / "masks").is_dir():
        return root / "images", root / "masks"
    raise UserInputError(
        f"{root}: no data-set layout found (expected <NAME>-Image/ + <NAME>-Mask/, "
        "e.g. DUTS-TR-Image/ + DUTS-TR-Mask/, or images/ + masks/)"
    )


def _files_by_stem(
    folder: Path, exts: tuple[str, ...], role: str, problems: list[str]
) -> tuple[dict[str, Path], set[str]]:
    """(``role`` files of ``folder`` by stem, duplicated stems); problems appended per entry.

    Hidden entries and other extensions are ignored. An entry with one of ``exts`` that is
    not a regular file (symlinks followed) is a problem, and so is a second file with a
    stem already seen (``a.jpg`` + ``a.png``): the stem keeps its first file (sorted by
    name) so the fold does not move, and the pair is reported as bad.
    """
    found: dict[str, Path] = {}
    duplicated: set[str] = set()
    for path in _listing(folder, f"{role} folder"):
        if path.name.startswith(".") or path.suffix.lower() not in exts:
            continue
        try:
            mode = os.stat(path).st_mode
        except OSError as exc:
            problems.append(f"{path}: cannot read ({exc.strerror or exc}; a broken link?)")
            continue
        if not stat.S_ISREG(mode):
            kind = "a folder" if stat.S_ISDIR(mode) else "a special file (FIFO, device, socket)"
            problems.append(f"{path}: is {kind}, not a regular {role} file")
            continue
        first = found.setdefault(path.stem, path)
        if first != path:
            duplicated.add(path.stem)
            problems.append(
                f"{first} and {path}: two {role} files with stem '{path.stem}'; "
                "rename or remove one"
            )
    return found, duplicated


def mask_problem(mask: Image.Image, allow_rgb: bool = False) -> str | None:
    """Why ``mask`` is not a usable binary mask (None if it is).

    ``allow_rgb`` accepts RGB masks (converted to luminance by the loaders): the
    official DUTS-TR has three, and the anchor's numbers include them.
    """
    if allow_rgb and mask.mode == "RGB":
        return None
    if mask.mode not in ALLOWED_MASK_MODES:
        kind = "16-bit" if mask.mode.startswith("I") else mask.mode
        hint = " (--convert-rgb-masks accepts it)" if mask.mode == "RGB" else ""
        return f"mask must be 8-bit single-channel, got {kind} (mode {mask.mode}){hint}"
    return None


def scan_pairs(root: str | Path, check_headers: bool = True, allow_rgb: bool = False) -> PairScan:
    """Pair images and masks by stem; with ``check_headers`` also open every file.

    Header checks catch unreadable files, RGB / 16-bit masks and size mismatches
    without decoding pixels; truncated pixel data is caught later, when decoding.
    """
    image_dir, mask_dir = locate_layout(root)
    scan = PairScan(Path(root), image_dir, mask_dir)
    images, image_dups = _files_by_stem(image_dir, IMAGE_EXTS, "image", scan.problems)
    masks, mask_dups = _files_by_stem(mask_dir, MASK_EXTS, "mask", scan.problems)
    duplicated = image_dups | mask_dups
    for stem in sorted(set(images) - set(masks)):
        scan.problems.append(f"{images[stem]}: no mask (expected {mask_dir}/{stem}.png)")
    for stem in sorted(set(masks) - set(images)):
        scan.problems.append(f"{masks[stem]}: orphan mask, no image with stem '{stem}'")
    for stem in sorted(set(images) & set(masks)):
        pair = Pair(stem, images[stem], masks[stem])
        scan.paired.append(pair)
        if stem in duplicated:
            continue  # already reported: which file is meant is the user's call
        problem = check_pair_headers(pair, allow_rgb) if check_headers else None
        if problem:
            scan.problems.append(problem)
        else:
            scan.pairs.append(pair)
    return scan


def check_pair_headers(pair: Pair, allow_rgb: bool = False) -> str | None:
    """Open both files of ``pair`` and return a 'path: problem' line, or None if fine."""
    sizes = []
    for path in (pair.image, pair.mask):
        try:
            with open_image(path, "mask" if path == pair.mask else "image") as im:
                sizes.append(im.size)
                if path == pair.mask and (problem := mask_problem(im, allow_rgb)):
                    return f"{path}: {problem}"
        except UserInputError as exc:  # unreadable, undecodable, over the pixel limit
            return str(exc)
    if sizes[0] != sizes[1]:
        (iw, ih), (mw, mh) = sizes
        return f"{pair.mask}: size {mw}x{mh} != image size {iw}x{ih}"
    return None


def raise_if_problems(problems: list[str], root: Path, skip_bad: bool) -> None:
    """Raise one UserInputError listing every problem unless ``skip_bad`` is set."""
    if problems and not skip_bad:
        raise UserInputError(
            f"{root}: {len(problems)} bad file(s) (pass --skip-bad to skip them):",
            problem_lines(problems),
        )


def problem_lines(problems: list[str], limit: int = 50) -> list[str]:
    """The first ``limit`` problems and a "... and N more" line: an error's detail lines."""
    extra = [f"... and {len(problems) - limit} more"] if len(problems) > limit else []
    return problems[:limit] + extra


def split_pairs(pairs: list[Pair], val_fraction: float, seed: int) -> tuple[list[Pair], list[Pair]]:
    """Anchor-compatible split: sort, ``random.Random(seed).shuffle``, first k are validation.

    k = max(64, round(val_fraction * n)); for DUTS-TR (n = 10,553) at 5 % that is 528.
    """
    ordered = sorted(pairs, key=lambda p: (str(p.image), str(p.mask)))
    random.Random(seed).shuffle(ordered)
    k = max(64, round(val_fraction * len(ordered)))
    if k >= len(ordered):
        raise UserInputError(
            f"{len(ordered)} pairs are too few: validation alone needs {k} (at least 64)"
        )
    return ordered[k:], ordered[:k]


def file_role(path: Path) -> str:
    """``image`` or ``mask``, from the folder holding ``path`` (``*-Image``/``images``, ...)."""
    folder = path.parent.name
    if folder == "images" or folder.endswith("-Image"):
        return "image"
    if folder == "masks" or folder.endswith("-Mask"):
        return "mask"
    return folder  # not a supported layout: the folder name is all we know


# content_digest -> the path-based digest (before layout independence) of the same files,
# for every digest this process computed: records written by earlier versions (checkpoints,
# data caches, fetch markers) still name their data that way. See :func:`digest_aliases`.
_LEGACY: dict[str, str] = {}


def pair_files(pairs: Iterable[Pair]) -> list[Path]:
    """Every image and mask file of ``pairs``: what a content digest covers."""
    return [path for pair in pairs for path in (pair.image, pair.mask)]


def content_digest(root: str | Path, files: list[Path]) -> str:
    """SHA-256 of the data set ``files`` (under ``root``), independent of layout and place.

    The digested text is one line per file, sorted: the JSON array
    ``["image" or "mask", stem, file SHA-256]`` (ASCII, ``json.dumps`` defaults) and a
    newline. Folder names never enter it, so the same files give the same digest in the
    ``<NAME>-Image/`` + ``<NAME>-Mask/`` layout and in ``images/`` + ``masks/``, wherever
    the folder lives and in whatever order the files come.
    """
    root = Path(root)
    hashes = [(p, file_sha256(p)) for p in files]
    lines = sorted(json.dumps([file_role(p), p.stem, sha]) + "\n" for p, sha in hashes)
    digest = hashlib.sha256("".join(lines).encode()).hexdigest()
    legacy = sorted(f"{p.relative_to(root).as_posix()}  {sha}\n" for p, sha in hashes)
    _LEGACY[digest] = hashlib.sha256("".join(legacy).encode("utf-8", "surrogateescape")).hexdigest()
    return digest


def legacy_content_digest(root: str | Path, files: list[Path]) -> str:
    """The digest before layout independence: sorted 'relative/path  sha256' lines.

    Kept to recognise records written by earlier versions (see :func:`digest_aliases`).
    """
    root = Path(root)
    lines = sorted(f"{p.relative_to(root).as_posix()}  {file_sha256(p)}\n" for p in files)
    return hashlib.sha256("".join(lines).encode("utf-8", "surrogateescape")).hexdigest()


def digest_aliases(digest: str) -> frozenset[str]:
    """``digest`` and, when this process computed it, the same files' legacy digest.

    Compare a recorded digest with ``recorded in digest_aliases(computed)``: a record
    made before the digest became layout-independent then still matches its data.
    """
    legacy = _LEGACY.get(digest)
    return frozenset({digest} if legacy is None else {digest, legacy})


def split_scan(scan: PairScan, val_fraction: float, seed: int) -> tuple[list[Pair], list[Pair]]:
    """Split every stem-matched pair, then drop the bad ones from their side.

    The fold depends on file names only, so skipping a bad file never reshuffles
    the rest: validation stays the anchor's fold minus whatever was skipped.
    """
    good = set(scan.pairs)
    train, val = split_pairs(scan.paired, val_fraction, seed)
    return [p for p in train if p in good], [p for p in val if p in good]


def training_files(root: str | Path) -> list[tuple[str, Path]]:
    """``(label, path)`` of every image and mask of a data folder, to refuse as outputs.

    A listing only (no file is opened); an unreadable folder gives no entries, since the
    scan that follows reports it properly.
    """
    try:
        scan = scan_pairs(root, check_headers=False)
    except UserInputError:
        return []
    files = [("the training image", p.image) for p in scan.paired]
    return files + [("the training mask", p.mask) for p in scan.paired]
