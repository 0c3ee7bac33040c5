"""SHA-256 of files: the one way every stage hashes a file (streamed, 1 MiB blocks)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

BLOCK = 1 << 20


def update_from_file(
    hasher: Any, path: Path, on_block: Callable[[int], None] | None = None
) -> None:
    """Feed ``path``'s bytes to ``hasher`` (a resumed download continues its digest)."""
    with open(path, "rb") as fh:
        while block := fh.read(BLOCK):
            hasher.update(block)
            if on_block is not None:
                on_block(len(block))


def file_sha256(path: Path, on_block: Callable[[int], None] | None = None) -> str:
    """Hex SHA-256 of a file; ``on_block(n)`` after each block (progress bars)."""
    hasher = hashlib.sha256()
    update_from_file(hasher, path, on_block)
    return hasher.hexdigest()
