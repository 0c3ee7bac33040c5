"""torchrun with 2 CPU processes (gloo) on a tiny synthetic set."""

import json
import os
import subprocess
import sys

import pytest
import torch

from conftest import REPO
from sod_train.model.unet import build_model
from sod_train.train.config import TrainConfig
from sod_train.train.loop import load_data, validate

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available(),
    reason="this torch build has no torch.distributed; install the torch wheel the README names",
)


def torchrun(args, tmp_path, timeout=300):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SOD_TRAIN_DIST_TIMEOUT": "60"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        str(REPO / "ai/scripts/train_saliency_student.py"),
        *args,
    ]
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=tmp_path
    )


def small_run(root, checkpoint_dir):
    """Options for a 2-epoch CPU run on the tiny synthetic set (output not included)."""
    return [
        "--duts-root",
        str(root),
        "--preset",
        "anchor",
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--crop-size",
        "32",
        "--min-val-iou",
        "0",
        "--device",
        "cpu",
        "--checkpoint-dir",
        str(checkpoint_dir),
        "--quiet",
    ]


def test_two_rank_run_writes_once_and_validates_over_the_whole_set(synthetic_root, tmp_path):
    out = tmp_path / "out" / "ddp.onnx"
    proc = torchrun(
        [*small_run(synthetic_root, tmp_path / "ck"), "--output", str(out), "--lr", "0.003"],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "ddp.golden.json",
        "ddp.metrics.json",
        "ddp.onnx",
    ]
    metrics = json.loads(out.with_suffix(".metrics.json").read_text())
    assert metrics["environment"]["world_size"] == 2
    assert metrics["data"]["val"] == 64

    # A single process scoring the same checkpoint on the same fold gets the same IoU,
    # when it runs the same computation as the ranks did: the trainer's channels_last
    # model and thread count. A contiguous (NCHW) model makes oneDNN pick other conv
    # kernels, whose float rounding differs by ISA (AVX2, AVX-512, AMX): not a property.
    state = torch.load(tmp_path / "ck" / "last.pt", weights_only=False)
    cfg = TrainConfig.from_dict(state["config"])
    _, val_set, _ = load_data(synthetic_root, cfg, workers=0, quiet=True)
    model = build_model(cfg.model_config).to(memory_format=torch.channels_last)
    model.load_state_dict(state["best_state"])
    threads = torch.get_num_threads()
    torch.set_num_threads(metrics["environment"]["threads"])
    try:
        single = validate(model, val_set, cfg.loss, torch.device("cpu"))
    finally:
        torch.set_num_threads(threads)
    assert single["val_iou"] == pytest.approx(metrics["training"]["best_val_iou"], abs=1e-9)
    assert single["val_iou_batch"] == pytest.approx(
        metrics["training"]["best_val_iou_batch"], abs=1e-9
    )


def test_resume_under_torchrun(synthetic_root, tmp_path):
    common = small_run(synthetic_root, tmp_path / "ck")
    first = torchrun([*common, "--output", str(tmp_path / "a.onnx")], tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    again = torchrun([*common, "--output", str(tmp_path / "b.onnx"), "--resume"], tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()


def test_a_failing_rank_stops_the_job_with_a_clear_message(synthetic_root, tmp_path):
    proc = torchrun(
        [
            "--duts-root",
            str(synthetic_root),
            "--output",
            str(tmp_path / "x.onnx"),
            "--batch-size",
            "7",
            "--epochs",
            "1",
            "--device",
            "cpu",
            "--quiet",
        ],
        tmp_path,
    )
    assert proc.returncode != 0
    assert "error: --batch-size 7 is not divisible by the 2 ranks" in proc.stderr
    assert not (tmp_path / "x.onnx").exists()
