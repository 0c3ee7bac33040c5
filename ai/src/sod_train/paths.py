"""Where the repository's own files live: computed once, here, for every module.

The install is editable on purpose (README): the allowlist, the registry, its schemas and
the shipped models are read from the checkout, never from a copy inside the package.
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
MODEL_DIR = REPO_ROOT / "model" / "tiny"
REGISTRY_PATH = MODEL_DIR / "registry.json"
ALLOWLIST_PATH = REPO_ROOT / "op_allowlist.txt"
CARD_DIR = Path("docs") / "ai" / "models"  # relative to REPO_ROOT, as the registry records it
ANCHOR_DIR = REPO_ROOT / "benchmarks" / "anchors"  # reference results the card shows
