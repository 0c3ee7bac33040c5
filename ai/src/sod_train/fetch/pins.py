"""Pinned data sets: where each one is published and how to prove a copy is genuine.

One row per data set. ``sha256`` and ``size`` pin the published archive bytes (what
``sod-train fetch`` checks before extracting anything); ``content_digest`` pins the
extracted files (what ``sod-train verify-data`` checks, see
:func:`sod_train.data.pairs.content_digest`: role, stem and bytes, so a genuine copy matches
in any supported layout). A row without a known archive hash can only be fetched with an
explicit ``--sha256`` from the user. ``known_bad`` lists the files of the published data
that fail the mask check (a few DUTS masks are RGB): they are reported, not treated as
damage, because every genuine copy has them, whichever layout holds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sod_train.errors import UserInputError

if TYPE_CHECKING:  # a type only: `diff` and `card` import this module without PIL
    from sod_train.data.pairs import PairScan

# Where the content digests below were measured: the public GitHub copy of DUTS,
# Nithurshen/salient-object-detection at commit 80fe22116f44ff0f568740296582ed4007302564,
# folders data/DUTS-TR and data/DUTS-TE (official layout), over every image and mask file.
# The official archives' own contents were not available to measure; if they differ from
# that copy, `fetch` says so instead of failing (the archive hash is the proof there).
# The digests are the layout-independent ones (role, stem, bytes). They were re-measured on
# a copy whose path-based digests (the definition before issue 15) equal the earlier pins,
# DUTS-TR 019e10787251a31c... and DUTS-TE 30df64664a5ba86e..., so it is the same data.
PUBLIC_COPY = "Nithurshen/salient-object-detection@80fe2211"


@dataclass(frozen=True)
class DatasetPin:
    """One pinned data set: the archive to download and the layout it must extract to."""

    name: str  # what the user types: `sod-train fetch duts-tr`
    url: str  # the publisher's download address
    size: int | None  # archive bytes; None when unknown
    sha256: str | None  # archive SHA-256; None means `--sha256` is required
    top_dir: str  # folder the archive extracts to; it is the trainer's --duts-root
    image_dir: str  # image folder name inside top_dir
    mask_dir: str  # mask folder name inside top_dir
    pairs: int  # image/mask pairs after extraction
    content_digest: str | None  # pairs.content_digest of top_dir; None when unknown
    digest_source: str | None  # where content_digest was measured
    known_bad: tuple[str, ...]  # files under top_dir the published data gets wrong
    terms: str  # what the user accepts by downloading
    legacy_digest: str | None = None  # the same files' path-based digest (before issue 15)


DUTS_TERMS = (
    "DUTS (Wang et al., CVPR 2017) is free for academic research only; "
    "sod-train downloads it from the authors and never redistributes it."
)

PINS: dict[str, DatasetPin] = {
    pin.name: pin
    for pin in (
        DatasetPin(
            name="duts-tr",
            url="https://saliencydetection.net/duts/download/DUTS-TR.zip",
            size=270_997_309,
            sha256="ce61e023c8f59d022b4d46981cf16813b83d089242e6489a45630d83962ea058",
            top_dir="DUTS-TR",
            image_dir="DUTS-TR-Image",
            mask_dir="DUTS-TR-Mask",
            pairs=10_553,
            content_digest="ca74a6e72d550414a7eef6debab7ec5f32bfa10f774bf9f565795225f54109d0",
            digest_source=PUBLIC_COPY,
            known_bad=(  # RGB masks (not 8-bit single-channel), full decode of PUBLIC_COPY
                "DUTS-TR-Mask/ILSVRC2014_train_00023530.png",
                "DUTS-TR-Mask/n01532829_13482.png",
                "DUTS-TR-Mask/n04442312_17818.png",
            ),
            terms=DUTS_TERMS,
            legacy_digest="019e10787251a31cf2a270fbc3429b3c5963c47cc1a8a2ba7cab3c915e930f36",
        ),
        DatasetPin(
            name="duts-te",
            url="https://saliencydetection.net/duts/download/DUTS-TE.zip",
            size=None,
            sha256=None,
            top_dir="DUTS-TE",
            image_dir="DUTS-TE-Image",
            mask_dir="DUTS-TE-Mask",
            pairs=5_019,
            content_digest="12e619927ec269c4d8b5c7808644b1255f832a65e66b497ecb24c5bd6909f7f4",
            digest_source=PUBLIC_COPY,
            known_bad=(  # RGB masks, as above
                "DUTS-TE-Mask/ILSVRC2012_test_00036002.png",
                "DUTS-TE-Mask/sun_bcogaqperiljqupq.png",
            ),
            terms=DUTS_TERMS,
            legacy_digest="30df64664a5ba86e398745546d8f72aec7ed58a0e78461c29f6af8f848e0fd19",
        ),
    )
}


def get_pin(name: str) -> DatasetPin:
    """Return the pin called ``name`` (case-insensitive) or raise UserInputError listing them."""
    pin = PINS.get(name.lower())
    if pin is None:
        raise UserInputError(f"unknown data set '{name}' (known: {', '.join(sorted(PINS))})")
    return pin


def pin_for_layout(image_dir: str, mask_dir: str) -> DatasetPin | None:
    """The pin whose image and mask folder names are ``image_dir`` and ``mask_dir``, if any."""
    for pin in PINS.values():
        if (pin.image_dir, pin.mask_dir) == (image_dir, mask_dir):
            return pin
    return None


def pin_for_digest(digest: str) -> DatasetPin | None:
    """The pin whose content digest is ``digest`` (a copy in any layout), if any."""
    for pin in PINS.values():
        if pin.content_digest is not None and pin.content_digest == digest:
            return pin
    return None


def canonical_digest(digest: str) -> str:
    """``digest``, or the pinned digest of the data set whose legacy digest it is.

    Metrics and anchor files written before the digest became layout-independent record
    the path-based digest; this maps those of a pinned data set onto today's, so ``diff``
    sees the same data as the same.
    """
    for pin in PINS.values():
        if pin.legacy_digest is not None and digest == pin.legacy_digest:
            return pin.content_digest or digest
    return digest


def pin_for_scan(scan: PairScan, digest: str) -> DatasetPin | None:
    """The pin a folder claims to be: by its official folder names, else by its digest.

    ``images/`` + ``masks/`` names no data set, so such a copy is matched by content.
    """
    return pin_for_layout(scan.image_dir.name, scan.mask_dir.name) or pin_for_digest(digest)


def known_problems(
    problems: list[str],
    root: Path,
    known_bad: tuple[str, ...],
    pin: DatasetPin | None = None,
    scan: PairScan | None = None,
) -> list[str]:
    """The 'path: problem' lines of ``problems`` that name a ``known_bad`` file under ``root``.

    ``known_bad`` paths use the pin's folder names; with ``pin`` and ``scan`` they are
    mapped onto the folders ``scan`` found (``DUTS-TR-Mask/x.png`` -> ``masks/x.png``).
    """
    rels = list(known_bad)
    if pin is not None and scan is not None:
        moved = {pin.image_dir: scan.image_dir.name, pin.mask_dir: scan.mask_dir.name}
        rels = [
            "/".join([moved.get(rel.split("/", 1)[0], rel.split("/", 1)[0]), *rel.split("/")[1:]])
            for rel in rels
        ]
    prefixes = tuple(f"{root / rel}: " for rel in rels)
    return [line for line in problems if prefixes and line.startswith(prefixes)]
