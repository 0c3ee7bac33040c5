"""The CPU fast path: bf16 autocast and channels_last by default, still bit-exact."""

import json
from dataclasses import replace

import pytest
import torch
from click.testing import CliRunner

from conftest import SMALL_RECIPE
from sod_train.cli.main import main
from sod_train.export.export import export
from sod_train.machine import available_cores
from sod_train.train import cpu
from sod_train.train.config import Runtime, TrainConfig
from sod_train.train.loop import fast_path, train


def small(**overrides):
    return TrainConfig(**{"epochs": 2, "batch_size": 8, "crop_size": 32, "lr": 3e-3, **overrides})


def lite_small(**overrides):
    """The efficient family with every per-step lever on: the resume path is hardest here."""
    return small(
        arch="lite",
        widths=(8, 12, 16),
        blocks=(0, 1, 1),
        dilations=(1, 2),
        deep_supervision=0.4,
        schedule="warmup-cosine",
        warmup_epochs=0.5,
        final_crop=40,
        final_epochs=1,
        val_crop=40,
        **overrides,
    )


def test_bf16_features_come_from_cpuinfo(tmp_path, monkeypatch):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16 amx_bf16\n")
    assert cpu.bf16_features(info) == ["amx_bf16", "avx512_bf16"]
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx2\n")
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    assert cpu.bf16_features(info) == []
    assert cpu.bf16_features(tmp_path / "missing") == []


def test_amp_defaults_to_native_bf16_and_threads_to_our_cores(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setattr("sod_train.train.loop.bf16_features", lambda: ["avx512_bf16"])
        assert fast_path(Runtime(), torch.device("cpu")) == (True, available_cores())
        monkeypatch.setattr("sod_train.train.loop.bf16_features", lambda: [])
        assert fast_path(Runtime(), torch.device("cpu"))[0] is False
        assert fast_path(Runtime(amp=True, threads=1), torch.device("cpu")) == (True, 1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("amp", [True, False], ids=["amp", "fp32"])
def test_same_seed_same_onnx_bytes(synthetic_root, tmp_path, amp):
    rt = Runtime(device="cpu", quiet=True, amp=amp)
    a, b = train(synthetic_root, small(), rt), train(synthetic_root, small(), rt)
    export(a, tmp_path / "a.onnx", min_val_iou=0)
    export(b, tmp_path / "b.onnx", min_val_iou=0)
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()
    assert a.environment["amp"] is amp and a.environment["threads"] == torch.get_num_threads()
    metrics = json.loads((tmp_path / "a.metrics.json").read_text())
    assert metrics["environment"]["amp"] is amp
    assert "cpu_bf16_features" in metrics["environment"]


def test_amp_changes_the_weights(synthetic_root):
    """bf16 autocast really runs: its weights differ from the fp32 run's."""
    on = train(synthetic_root, small(epochs=1), Runtime(device="cpu", quiet=True, amp=True))
    off = train(synthetic_root, small(epochs=1), Runtime(device="cpu", quiet=True, amp=False))
    assert not torch.equal(on.best_state["head.weight"], off.best_state["head.weight"])


@pytest.mark.parametrize("config", [small(epochs=3), lite_small(epochs=3)], ids=["anchor", "lite"])
def test_interrupted_and_resumed_amp_run_gives_the_same_onnx(synthetic_root, tmp_path, config):
    rt = {"device": "cpu", "quiet": True, "amp": True}
    straight = train(synthetic_root, config, Runtime(**rt, checkpoint_dir=tmp_path / "a"))
    first = train(
        synthetic_root,
        config,
        Runtime(**rt, checkpoint_dir=tmp_path / "b", stop_after_epoch=1),
    )
    assert not first.finished
    resumed = train(
        synthetic_root, config, Runtime(**rt, checkpoint_dir=tmp_path / "b", resume=True)
    )
    assert [h["lr"] for h in resumed.history] == [h["lr"] for h in straight.history]
    export(straight, tmp_path / "straight.onnx", min_val_iou=0)
    export(resumed, tmp_path / "resumed.onnx", min_val_iou=0)
    assert (tmp_path / "straight.onnx").read_bytes() == (tmp_path / "resumed.onnx").read_bytes()


def test_progressive_crop_and_per_step_schedule_are_in_the_history(synthetic_root):
    # 4 steps an epoch, 10 warm-up steps; the lr recorded is the one after the epoch's
    # last step: 5/10 and 9/10 of the peak while warming up, then the cosine's 0.
    cfg = replace(lite_small(epochs=3), warmup_epochs=2.5)
    result = train(synthetic_root, cfg, Runtime(device="cpu", quiet=True))
    assert [h["crop"] for h in result.history] == [32, 32, 40]
    lrs = [h["lr"] for h in result.history]
    assert lrs == pytest.approx([0.5 * cfg.lr, 0.9 * cfg.lr, 0.0], abs=1e-12)


@pytest.mark.parametrize(
    ("flag", "message"), [("--no-amp", "amp True"), ("--threads=1", "threads")]
)
def test_resume_refuses_another_amp_or_thread_count(synthetic_root, tmp_path, flag, message):
    train(
        synthetic_root,
        small(epochs=2),
        Runtime(
            device="cpu", quiet=True, amp=True, checkpoint_dir=tmp_path / "ck", stop_after_epoch=1
        ),
    )
    args = ["train", "--duts-root", str(synthetic_root), "--output", str(tmp_path / "x.onnx")]
    args += SMALL_RECIPE
    args += ["--checkpoint-dir", str(tmp_path / "ck"), "--resume", "--quiet"]
    args += [flag] if flag == "--no-amp" else ["--amp", flag]  # each option once
    if flag == "--threads=1" and torch.get_num_threads() == 1:
        pytest.skip("torch sees one thread here, so --threads=1 is no change: run on >= 2 cores")
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
