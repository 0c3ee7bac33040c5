"""The host contract: what a C/C++ host relies on, in one place for export, check and docs.

A shipped model has one input ``input`` float32 [1,3,H,W] (RGB in [0,1], normalised with
the ImageNet mean/std below) and one output ``saliency_map`` float32 [1,1,H,W] in [0,1],
with H and W symbolic; opset 17 in the default domain only; an IR version that
onnxruntime 1.15 reads. The quality metrics of a release are named here too, so the
evaluator, the metrics schema, the diff gate and the card agree on one list.
"""

from __future__ import annotations

OPSET = 17
# onnxruntime 1.15 (the oldest release with a Python 3.11 wheel) reads IR versions <= 9.
MAX_IR_VERSION = 9
INPUT_NAME = "input"
OUTPUT_NAME = "saliency_map"
HEIGHT, WIDTH = "H", "W"  # the symbolic dimensions' names in exported files
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# The nine quality metrics of an evaluation, in table order; MAE is the only lower-is-better.
QUALITY_METRICS = ("maxF", "meanF", "adpF", "wF", "Sm", "meanEm", "maxEm", "MAE", "IoU")
LOWER_IS_BETTER = frozenset({"MAE"})
