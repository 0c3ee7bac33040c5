"""Shared fixtures: a small synthetic DUTS-layout data set and paths to shared data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sod_train.data.synthetic import make_synthetic_duts

os.environ.setdefault("OMP_NUM_THREADS", "2")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
# A 2-epoch CPU recipe for the tiny synthetic set: the anchor's network at crop 32 (the
# default recipe, release, would train LiteUNet at crop 224).
SMALL_RECIPE = ["--preset", "anchor", "--epochs", "2", "--batch-size", "8", "--crop-size", "32"]
SMALL_RECIPE += ["--lr", "0.003"]


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """96 synthetic pairs (64 validation, 32 training at the default split)."""
    return make_synthetic_duts(tmp_path_factory.mktemp("duts") / "DUTS-TR", n=96, size=(40, 52))


@pytest.fixture(autouse=True)
def _isolated_cwd(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run every test in its own empty folder, so default outputs (checkpoints/<stem>/)
    never land in the checkout."""
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))
