"""Find, check and split (image, mask) pairs in a saliency data-set folder.

Layouts understood (first match wins):
  * ``ROOT/<NAME>-Image/`` + ``ROOT/<NAME>-Mask/`` (DUTS-TR, DUTS-TE, ...)
  * ``ROOT/images/`` + ``ROOT/masks/``
Pairs are matched by file stem. Every problem is collected, so one run reports all
bad files at once instead of the first one.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from .errors import UserInputError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
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


def locate_layout(root: str | Path) -> tuple[Path, Path]:
    """Return (image_dir, mask_dir) for ``root`` or raise UserInputError naming what is missing."""
    root = Path(root)
    if not root.is_dir():
        raise UserInputError(f"{root}: not a folder")
    for image_dir in sorted(root.glob("*-Image")):
        mask_dir = root / (image_dir.name[: -len("-Image")] + "-Mask")
        if image_dir.is_dir() and mask_dir.is_dir():
            return image_dir, mask_dir
    if (root / "images").is_dir() and (root / "masks").is_dir():
        return root / "images", root / "masks"
    raise UserInputError(
        f"{root}: no data-set layout found (expected <NAME>-Image/ + <NAME>-Mask/, "
        "e.g. DUTS-TR-Image/ + DUTS-TR-Mask/, or images/ + masks/)"
    )


def _files_by_stem(folder: Path, exts: tuple[str, ...]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in exts and not path.name.startswith("."):
            found.setdefault(path.stem, path)
    return found


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
    images = _files_by_stem(image_dir, IMAGE_EXTS)
    masks = _files_by_stem(mask_dir, MASK_EXTS)
    for stem in sorted(set(images) - set(masks)):
        scan.problems.append(f"{images[stem]}: no mask (expected {mask_dir}/{stem}.png)")
    for stem in sorted(set(masks) - set(images)):
        scan.problems.append(f"{masks[stem]}: orphan mask, no image with stem '{stem}'")
    for stem in sorted(set(images) & set(masks)):
        pair = Pair(stem, images[stem], masks[stem])
        scan.paired.append(pair)
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
            with Image.open(path) as im:
                sizes.append(im.size)
                if path == pair.mask and (problem := mask_problem(im, allow_rgb)):
                    return f"{path}: {problem}"
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            return f"{path}: cannot decode ({exc.__class__.__name__}: {exc})"
    if sizes[0] != sizes[1]:
        (iw, ih), (mw, mh) = sizes
        return f"{pair.mask}: size {mw}x{mh} != image size {iw}x{ih}"
    return None


def raise_if_problems(problems: list[str], root: Path, skip_bad: bool) -> None:
    """Raise one UserInputError listing every problem unless ``skip_bad`` is set."""
    if problems and not skip_bad:
        shown = "\n  ".join(problems[:50])
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        raise UserInputError(
            f"{root}: {len(problems)} bad file(s) (pass --skip-bad to skip them):\n  {shown}{more}"
        )


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


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file, streamed."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def content_digest(root: str | Path, files: list[Path]) -> str:
    """SHA-256 over the sorted 'relative/path  sha256' lines of ``files`` under ``root``.

    Independent of where the folder lives and of file order, so two copies of the
    same data set give the same digest.
    """
    root = Path(root)
    lines = sorted(f"{p.relative_to(root).as_posix()}  {file_sha256(p)}\n" for p in files)
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def split_scan(scan: PairScan, val_fraction: float, seed: int) -> tuple[list[Pair], list[Pair]]:
    """Split every stem-matched pair, then drop the bad ones from their side.

    The fold depends on file names only, so skipping a bad file never reshuffles
    the rest: validation stays the anchor's fold minus whatever was skipped.
    """
    good = set(scan.pairs)
    train, val = split_pairs(scan.paired, val_fraction, seed)
    return [p for p in train if p in good], [p for p in val if p in good]
