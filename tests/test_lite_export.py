"""The efficient family goes through the same exporter, check and golden vectors unchanged."""

import onnx
import torch
from click.testing import CliRunner

from conftest import REPO
from sod_train.check.allowlist import allowlist_violations, load_allowlist
from sod_train.cli.main import main
from sod_train.export.export import export
from sod_train.model.unet import build_model
from sod_train.train.config import Runtime, TrainConfig
from sod_train.train.loop import train


def test_lite_model_exports_passes_check_and_drops_side_heads(synthetic_root, tmp_path):
    cfg = TrainConfig(
        epochs=1,
        batch_size=8,
        crop_size=32,
        lr=3e-3,
        arch="lite",
        widths=(8, 12, 16, 24),
        blocks=(0, 1, 1, 0),
        dilations=(1, 2, 4),
        deep_supervision=0.4,
    )
    result = train(synthetic_root, cfg, Runtime(device="cpu", quiet=True))
    out = tmp_path / "lite.onnx"
    metrics = export(result, out, min_val_iou=0)
    proto = onnx.load(out)
    assert not allowlist_violations(proto, load_allowlist(REPO / "op_allowlist.txt"))
    ops = {n.op_type for n in proto.graph.node}
    assert "BatchNormalization" not in ops and "Resize" not in ops
    # The side heads (1x1 convs on coarse maps) never reach the graph: one Conv node per
    # Conv2d module but those.
    model = build_model(cfg.model_config)
    convs = sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    assert sum(n.op_type == "Conv" for n in proto.graph.node) == convs - len(model.sides)
    assert metrics["model"]["params"] > 0
    check = CliRunner().invoke(main, ["check", str(out)])
    assert check.exit_code == 0, check.output
    assert "golden" in check.output and "FAIL" not in check.output
