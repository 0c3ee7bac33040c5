"""Regenerate the video conformance vectors: ``python scripts/make_video_vectors.py``.

Writes the synthetic y4m files of :mod:`sod_train.video.vectors` and ``vectors.json``
(RGB8 checksums, and saliency_mean per frame for every model in model/tiny/registry.json)
into ``model/tiny/video_vectors/`` (or ``--out DIR``). Run it after re-exporting a
shipped model; ``sod-train check MODEL --video-vectors`` then verifies against them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sod_train import atomicio
from sod_train.paths import REGISTRY_PATH, REPO_ROOT
from sod_train.release.registry import load_registry
from sod_train.video.vectors import VECTORS_DIR, VECTORS_NAME, build_document, write_vector_files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=VECTORS_DIR, help="output folder")
    parser.add_argument("--registry", type=Path, default=REGISTRY_PATH)
    args = parser.parse_args()
    registry = load_registry(args.registry)
    models = [(m["id"], REPO_ROOT / m["onnx"]) for m in registry["models"]]
    write_vector_files(args.out)
    doc = build_document(args.out, models)
    atomicio.write_json(args.out / VECTORS_NAME, doc)
    print(
        f"wrote {len(doc['files'])} y4m files and {VECTORS_NAME} for {len(models)} models "
        f"to {args.out}"
    )


if __name__ == "__main__":
    main()
