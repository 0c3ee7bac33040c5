"""sod-train: DUTS-TR -> tiny, verified ONNX salient-object-detection model."""

__version__ = "0.1.0"
