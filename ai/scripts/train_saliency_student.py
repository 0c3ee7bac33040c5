#!/usr/bin/env python3
"""Train the tiny saliency student on DUTS-TR and export a verified ONNX file.

    python ai/scripts/train_saliency_student.py --duts-root DIR --output model/tiny/x.onnx

Thin wrapper around ``sod-train train`` (same options; see ``--help``).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from sod_train.cli.main import run_standalone
from sod_train.cli.train import train

if __name__ == "__main__":
    run_standalone(train, prog_name="train_saliency_student.py")
