"""End to end: synthetic DUTS folder -> train -> gate -> export -> verified ONNX."""

import json
import shutil
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from conftest import REPO, SMALL_RECIPE
from sod_train.cli.main import main
from sod_train.errors import GateError, UserInputError
from sod_train.export.export import export, fold_batchnorm, to_onnx, verify_onnx
from sod_train.model.unet import UNetConfig, build_model
from sod_train.train.config import Runtime, TrainConfig
from sod_train.train.loop import train

SMALL = SMALL_RECIPE


def small_config(**overrides):
    return TrainConfig(**{"epochs": 2, "batch_size": 8, "crop_size": 32, "lr": 3e-3, **overrides})


def run_small(root, ckpt_dir=None, **runtime):
    return train(
        root, small_config(), Runtime(device="cpu", quiet=True, checkpoint_dir=ckpt_dir, **runtime)
    )


def test_script_trains_exports_and_the_onnx_runs_at_odd_sizes(synthetic_root, tmp_path):
    out = tmp_path / "model" / "x.onnx"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "ai/scripts/train_saliency_student.py"),
            "--duts-root",
            str(synthetic_root),
            "--output",
            str(out),
            *SMALL,
            "--min-val-iou",
            "0",
            "--checkpoint-dir",
            str(tmp_path / "ck"),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    proto = onnx.load(out)
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", 17)]
    assert "BatchNormalization" not in {n.op_type for n in proto.graph.node}
    assert [i.name for i in proto.graph.input] == ["input"]
    assert [o.name for o in proto.graph.output] == ["saliency_map"]
    dims = [d.dim_param for d in proto.graph.input[0].type.tensor_type.shape.dim[2:]]
    assert dims == ["H", "W"]
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for h, w in [(1, 1), (7, 13), (33, 47), (540, 960)]:
        y = session.run(
            None, {"input": np.random.default_rng(1).standard_normal((1, 3, h, w), np.float32)}
        )[0]
        assert y.shape == (1, 1, h, w) and np.isfinite(y).all() and y.min() >= 0 and y.max() <= 1
    metrics = json.loads(out.with_suffix(".metrics.json").read_text())
    assert metrics["model_id"] == "x" and metrics["onnx"]["opset"] == 17
    assert metrics["data"]["train"] == 32 and metrics["data"]["val"] == 64
    assert len(metrics["training"]["history"]) == 2
    assert all(v <= 1e-5 for v in metrics["onnx"]["parity_max_abs_diff"].values())
    assert {"257x263", "97x131"} <= set(metrics["onnx"]["parity_max_abs_diff"])
    assert out.with_suffix(".golden.json").exists()
    assert not list(out.parent.glob(".*tmp"))  # no temp files left behind


def test_gate_refuses_and_keeps_the_old_file(synthetic_root, tmp_path):
    out = tmp_path / "x.onnx"
    out.write_bytes(b"previous release")
    result = CliRunner().invoke(
        main,
        [
            "train",
            "--duts-root",
            str(synthetic_root),
            "--output",
            str(out),
            *SMALL,
            "--min-val-iou",
            "1.0",
            "--quiet",
            "--checkpoint-dir",
            str(tmp_path / "ck"),
        ],
    )
    assert result.exit_code == 1
    assert "ship gate" in result.output and "below --min-val-iou 1.0" in result.output
    assert "Traceback" not in result.output
    assert out.read_bytes() == b"previous release"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck", "x.onnx"]


def test_same_seed_same_weights_and_same_onnx_bytes(synthetic_root, tmp_path):
    a, b = run_small(synthetic_root), run_small(synthetic_root)
    assert a.best_state.keys() == b.best_state.keys()
    for key in a.best_state:
        assert torch.equal(a.best_state[key], b.best_state[key]), key
    export(a, tmp_path / "a.onnx", min_val_iou=0)
    export(b, tmp_path / "b.onnx", min_val_iou=0)
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()
    c = train(synthetic_root, small_config(seed=7), Runtime(device="cpu", quiet=True))
    assert not torch.equal(a.best_state["head.weight"], c.best_state["head.weight"])


def test_interrupted_then_resumed_equals_uninterrupted(synthetic_root, tmp_path):
    cfg = small_config(epochs=3)
    straight = train(
        synthetic_root, cfg, Runtime(device="cpu", quiet=True, checkpoint_dir=tmp_path / "a")
    )
    rt = Runtime(device="cpu", quiet=True, checkpoint_dir=tmp_path / "b", stop_after_epoch=1)
    first = train(synthetic_root, cfg, rt)
    assert not first.finished and len(first.history) == 1
    resumed = train(
        synthetic_root,
        cfg,
        Runtime(device="cpu", quiet=True, checkpoint_dir=tmp_path / "b", resume=True),
    )
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in straight.history]
    for key in straight.best_state:
        assert torch.equal(straight.best_state[key], resumed.best_state[key]), key
    last_a = torch.load(tmp_path / "a/last.pt", weights_only=False)["model"]
    last_b = torch.load(tmp_path / "b/last.pt", weights_only=False)["model"]
    assert all(torch.equal(last_a[k], last_b[k]) for k in last_a)


def test_resume_refuses_a_different_recipe(synthetic_root, tmp_path):
    run_small(synthetic_root, tmp_path / "ck")
    result = CliRunner().invoke(
        main,
        [
            "train",
            "--duts-root",
            str(synthetic_root),
            "--output",
            str(tmp_path / "x.onnx"),
            *SMALL[:-2],
            "--lr",
            "0.01",
            "--resume",
            "--checkpoint-dir",
            str(tmp_path / "ck"),
            "--quiet",
        ],
    )
    assert result.exit_code == 2 and "different recipe" in result.output


def test_export_command_reproduces_the_trained_file(synthetic_root, tmp_path):
    result = run_small(synthetic_root, tmp_path / "ck")
    export(result, tmp_path / "direct.onnx", min_val_iou=0)
    cli = CliRunner().invoke(
        main,
        [
            "export",
            str(tmp_path / "ck"),
            "--output",
            str(tmp_path / "again.onnx"),
            "--min-val-iou",
            "0",
        ],
    )
    assert cli.exit_code == 0, cli.output
    assert (tmp_path / "direct.onnx").read_bytes() == (tmp_path / "again.onnx").read_bytes()
    refused = CliRunner().invoke(
        main,
        [
            "export",
            str(tmp_path / "ck"),
            "--output",
            str(tmp_path / "no.onnx"),
            "--min-val-iou",
            "1",
        ],
    )
    assert refused.exit_code == 1 and not (tmp_path / "no.onnx").exists()
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"nope")
    bad = CliRunner().invoke(main, ["export", str(garbage), "--output", str(tmp_path / "g.onnx")])
    assert bad.exit_code == 2 and "garbage.pt: not a sod-train checkpoint" in bad.output


def test_skip_bad_skips_and_counts(synthetic_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(synthetic_root, root)
    (root / "DUTS-TR-Image" / "synthetic_00009.jpg").write_bytes(b"broken")
    result = train(root, small_config(epochs=1, skip_bad=True), Runtime(device="cpu", quiet=True))
    assert result.data["skipped_bad"] == 1
    assert "synthetic_00009.jpg" in result.data["skipped_files"][0]
    assert result.data["train"] + result.data["val"] == 95


class ResizeNet(torch.nn.Module):
    def forward(self, x):
        return torch.sigmoid(
            F.interpolate(x[:, :1], scale_factor=2.0, mode="bilinear")[:, :, ::2, ::2]
        )


def test_allowlist_catches_a_planted_resize():
    model = ResizeNet().eval()
    with pytest.raises(GateError, match="Resize"):
        verify_onnx(to_onnx(model), model, REPO / "op_allowlist.txt")


@pytest.mark.parametrize(
    "config",
    [
        UNetConfig(),
        UNetConfig((8, 12, 16), (1, 2), separable=True),
        UNetConfig((16, 32, 48, 64, 80), (1, 2, 4), arch="lite", blocks=(0, 1, 2, 1, 0)),
        UNetConfig((8, 16, 24), (1, 2), arch="lite", refine=0),
    ],
    ids=["plain", "separable", "lite", "lite-no-refine"],
)
@pytest.mark.parametrize("hw", [(45, 67), (1, 1), (128, 96)])
def test_batchnorm_folding_keeps_outputs(config, hw):
    torch.manual_seed(0)
    model = build_model(config)
    for m in model.modules():  # non-trivial running statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
    model.eval()
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    x = torch.randn(1, 3, *hw)
    with torch.no_grad():
        assert torch.allclose(model(x), folded(x), atol=1e-5)


def test_no_export_trains_and_checkpoints_only(synthetic_root, tmp_path):
    out = tmp_path / "x.onnx"
    result = CliRunner().invoke(
        main,
        [
            "train",
            "--duts-root",
            str(synthetic_root),
            "--output",
            str(out),
            *SMALL,
            "--no-export",
            "--checkpoint-dir",
            str(tmp_path / "ck"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert not out.exists() and (tmp_path / "ck" / "last.pt").exists()
    assert "sod-train export" in result.output
    later = CliRunner().invoke(
        main, ["export", str(tmp_path / "ck"), "--output", str(out), "--min-val-iou", "0"]
    )
    assert later.exit_code == 0 and out.exists()


def test_train_from_a_data_cache_equals_training_from_the_folder(synthetic_root, tmp_path):
    from sod_train.fetch.cache import write_cache

    write_cache(synthetic_root, tmp_path / "cache", shard_bytes=64 * 1024, quiet=True)
    common = [*SMALL, "--min-val-iou", "0", "--quiet"]
    a = CliRunner().invoke(
        main,
        [
            "train",
            "--data-cache",
            str(tmp_path / "cache"),
            "--output",
            str(tmp_path / "a.onnx"),
            "--checkpoint-dir",
            str(tmp_path / "ca"),
            *common,
        ],
    )
    assert a.exit_code == 0, a.output
    b = CliRunner().invoke(
        main,
        [
            "train",
            "--duts-root",
            str(synthetic_root),
            "--output",
            str(tmp_path / "b.onnx"),
            "--checkpoint-dir",
            str(tmp_path / "cb"),
            *common,
        ],
    )
    assert b.exit_code == 0, b.output
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()
    both = CliRunner().invoke(
        main,
        [
            "train",
            "--data-cache",
            str(tmp_path / "cache"),
            "--duts-root",
            str(synthetic_root),
            "--output",
            str(tmp_path / "c.onnx"),
            *common,
        ],
    )
    assert both.exit_code == 2 and "exactly one of --duts-root and --data-cache" in both.output


def test_guards_before_any_work(synthetic_root, tmp_path):
    runner = CliRunner()
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    bad_out = runner.invoke(
        main,
        [
            "train",
            "--duts-root",
            str(synthetic_root),
            "--output",
            str(blocker / "x.onnx"),
            *SMALL,
            "--quiet",
        ],
    )
    assert bad_out.exit_code == 2 and "cannot write the ONNX file there" in bad_out.output

    run_small(synthetic_root, tmp_path / "ck")
    base = [
        "train",
        "--duts-root",
        str(synthetic_root),
        "--output",
        str(tmp_path / "x.onnx"),
        *SMALL,
        "--checkpoint-dir",
        str(tmp_path / "ck"),
        "--quiet",
    ]
    before = (tmp_path / "ck" / "last.pt").read_bytes()
    fresh = runner.invoke(main, base)
    assert fresh.exit_code == 2 and "a checkpoint is already there; pass --resume" in fresh.output
    assert (tmp_path / "ck" / "last.pt").read_bytes() == before  # untouched

    other = tmp_path / "other"
    shutil.copytree(synthetic_root, other)
    (other / "DUTS-TR-Image" / "synthetic_00000.jpg").write_bytes(
        (other / "DUTS-TR-Image" / "synthetic_00001.jpg").read_bytes()
    )
    (other / "DUTS-TR-Mask" / "synthetic_00000.png").write_bytes(
        (other / "DUTS-TR-Mask" / "synthetic_00001.png").read_bytes()
    )
    wrong_data = runner.invoke(main, [*base[:2], str(other), *base[3:], "--resume"])
    assert wrong_data.exit_code == 2 and "trained on other data" in wrong_data.output

    new_gate = runner.invoke(main, [*base, "--resume", "--min-val-iou", "0"])
    assert new_gate.exit_code == 0, new_gate.output  # the gate is not part of the recipe


def test_a_failed_write_leaves_no_partial_release(synthetic_root, tmp_path):
    result = run_small(synthetic_root)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(UserInputError, match="cannot write"):
        export(result, tmp_path / "x.onnx", blocker / "m.json", min_val_iou=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]
