#!/usr/bin/env python3
"""Build ``../shared/data/duts-te-mini`` (the tests' 100 real pairs) from a DUTS-TE copy.

    python tests/make_test_data.py path/to/DUTS-TE

Every 50th pair of DUTS-TE, sorted by file name, starting with the first: the same 100
pairs as the project's shared folder. Files are copied byte for byte; nothing is written
into the repository.
"""

import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEST = REPO.parent / "shared" / "data" / "duts-te-mini"
STEP = 50
COUNT = 100  # indices 0, 50, ..., 4950


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    te = Path(sys.argv[1])
    masks = sorted((te / "DUTS-TE-Mask").glob("*.png"))
    if len(masks) != 5019:
        print(
            f"error: {te}: {len(masks)} masks in DUTS-TE-Mask/, DUTS-TE has 5,019", file=sys.stderr
        )
        return 2
    for sub in ("DUTS-TE-Image", "DUTS-TE-Mask"):
        (DEST / sub).mkdir(parents=True, exist_ok=True)
    for mask in masks[: STEP * COUNT : STEP]:
        shutil.copy2(te / "DUTS-TE-Image" / f"{mask.stem}.jpg", DEST / "DUTS-TE-Image")
        shutil.copy2(mask, DEST / "DUTS-TE-Mask")
    print(f"{DEST}: {len(masks[: STEP * COUNT : STEP])} pairs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
