"""``sod-train build-cache``: the command over :mod:`sod_train.fetch.cache`."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import click

from sod_train.fetch.cache import (
    MANIFEST,
    write_cache,
)
from sod_train.fetch.pins import pin_for_digest, pin_for_layout
from sod_train.guards import check_output_dir
from sod_train.stdio import echo_block


@click.command("build-cache")
@click.option(
    "--duts-root",
    required=True,
    type=click.Path(path_type=Path),
    help="Data folder: DUTS-TR-Image/ + DUTS-TR-Mask/ (or images/ + masks/).",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Cache folder to write (new, empty, or an earlier cache to rebuild).",
)
@click.option(
    "--shard-mb",
    type=click.FloatRange(min=0, min_open=True, max=2048),
    default=48,
    show_default=True,
    help="Largest shard, in MiB.",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
def build_cache(
    duts_root: Path, out_dir: Path, shard_mb: float, quiet: bool, as_json: bool
) -> None:
    """Pack a data folder's original files into checked shards to carry to a training machine.

    Copy the whole --out folder (manifest.json and every shard, in any order and any
    number of trips) to the training machine and train with --data-cache OUT.
    """
    check_output_dir(out_dir, "the data cache")
    # An OSError (an unreadable source file: exit 2; a full disk: exit 1) is one line from
    # the CLI's one handler (sod_train.cli.main).
    manifest = write_cache(duts_root, out_dir, int(shard_mb * (1 << 20)), quiet)
    if as_json:
        echo_block(json.dumps({"cache_dir": str(out_dir), **manifest}, indent=2))
        return
    for shard in manifest["shards"]:
        echo_block(
            f"{out_dir / shard['file']}  {shard['bytes'] / (1 << 20):6.1f} MiB  "
            f"{shard['members']:,} files  sha256 {shard['sha256']}"
        )
    total = sum(s["bytes"] for s in manifest["shards"])
    echo_block(
        f"{out_dir / MANIFEST}: {manifest['pairs']:,} pairs in {len(manifest['shards'])} "
        f"shard(s), {total / (1 << 20):.1f} MiB, content digest {manifest['content_digest']}"
    )
    pin = pin_for_layout(manifest["image_dir"], manifest["mask_dir"]) or pin_for_digest(
        manifest["content_digest"]
    )
    if pin and pin.content_digest == manifest["content_digest"]:
        echo_block(f"matches the pinned {pin.name} content digest")
    echo_block(
        f"train with: sod-train train --data-cache {shlex.quote(str(out_dir))} --output MODEL.onnx"
    )
