"""``--cpu-isa``: torch's CPU kernels pinned, recorded, kept on resume and re-applied.

The pin is read by oneDNN and ATen once per process, at their first kernel, so the runs
that check it take effect are fresh processes of the CLI, as a user runs it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import sod_train
from sod_train import machine
from sod_train.errors import UserInputError
from sod_train.release.card import reproduction_scope
from sod_train.release.reproduce import plan
from sod_train.train import cpu
from sod_train.train.config import Runtime, TrainConfig
from sod_train.train.loop import fast_path, train

SRC = Path(sod_train.__file__).resolve().parents[1]
# The anchor's recipe at crop 32: the default (release) one would train its final crop,
# 224, in every epoch of a 1-epoch run and validate at 256.
RECIPE = ["--preset", "anchor", "--epochs", "1", "--batch-size", "8", "--crop-size", "32"]
RECIPE += ["--lr", "0.003"]
# A pin below this CPU's own kernels: what the avx2 pin is on an AVX-512 CPU. Zen 3's
# native kernels are AVX2, so only a lower pin can show here that the pin takes effect.
LOWER = {"ONEDNN_MAX_CPU_ISA": "SSE41", "ATEN_CPU_CAPABILITY": "default"}


def _cli(args: list[str], cwd: Path, code: str = "") -> subprocess.CompletedProcess:
    """Run ``sod-train ARGS`` in a fresh process, with no kernel variable inherited."""
    env = {k: v for k, v in os.environ.items() if k not in machine.ISA_ENV}
    env["PYTHONPATH"] = str(SRC)
    script = f"import sys\n{code}\nfrom sod_train.cli.main import main\nmain(sys.argv[1:])"
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _train(root: Path, out: Path, *extra: str, code: str = "") -> dict:
    """Train 1 epoch on 1 thread in a fresh process; the metrics JSON it wrote."""
    out.mkdir(parents=True)
    args = ["train", "--duts-root", str(root), "--output", "m.onnx", "--min-val-iou", "0"]
    args += [*RECIPE, "--threads", "1", "--device", "cpu", "--quiet", "--json", *extra]
    done = _cli(args, out, code)
    assert done.returncode == 0, done.stderr
    return json.loads((out / "m.metrics.json").read_text())


@pytest.fixture(scope="module")
def native(synthetic_root, tmp_path_factory) -> dict:
    return _train(synthetic_root, tmp_path_factory.mktemp("native") / "run")


def test_native_is_the_default_and_sets_nothing(native):
    env = native["environment"]
    assert env["cpu_isa"] == "native" and native["build"]["cpu_isa"] == "native"
    assert env["isa_env"] == dict.fromkeys(machine.ISA_ENV)  # nothing set, all recorded
    assert "--cpu-isa" not in native["build"]["command"]
    assert env["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert Runtime().cpu_isa == "native"


def test_avx2_pin_is_recorded_and_repeats_byte_for_byte(synthetic_root, tmp_path):
    if "avx2" not in machine.isa_features() and machine.cpu_flags():
        pytest.skip(
            "this CPU has no AVX2, so --cpu-isa avx2 is refused here; run the tests on an "
            "x86-64 CPU with AVX2 and FMA to check the pin"
        )
    a = _train(synthetic_root, tmp_path / "a", "--cpu-isa", "avx2")
    b = _train(synthetic_root, tmp_path / "b", "--cpu-isa", "avx2")
    assert a["onnx"]["sha256"] == b["onnx"]["sha256"]
    env = a["environment"]
    assert env["cpu_isa"] == "avx2" and a["build"]["cpu_isa"] == "avx2"
    assert env["amp"] is False and env["cpu_capability"] == "AVX2"
    assert {k: env["isa_env"][k] for k in machine.ISA_PINS["avx2"]} == machine.ISA_PINS["avx2"]
    assert "--cpu-isa avx2" in a["build"]["command"]


def test_a_lower_pin_takes_effect_and_changes_the_bytes(synthetic_root, tmp_path, native):
    """The CLI's own pin, with its table lowered below this CPU: other kernels, other bytes."""
    lowered = f"import sod_train.machine as m\nm.ISA_PINS['avx2'] = {LOWER!r}"
    low = _train(synthetic_root, tmp_path / "low", "--cpu-isa", "avx2", code=lowered)
    assert low["environment"]["cpu_capability"] == "DEFAULT"
    assert low["environment"]["isa_env"]["ONEDNN_MAX_CPU_ISA"] == "SSE41"
    assert low["onnx"]["sha256"] != native["onnx"]["sha256"]


def test_resume_with_another_pin_is_refused(synthetic_root, tmp_path):
    cfg = TrainConfig(epochs=2, batch_size=8, crop_size=32, lr=3e-3)
    rt = Runtime(device="cpu", quiet=True, amp=False, threads=1, stop_after_epoch=1)
    before = torch.get_num_threads()
    try:
        train(synthetic_root, cfg, replace(rt, checkpoint_dir=tmp_path / "ck"))
    finally:
        torch.set_num_threads(before)
    args = ["train", "--duts-root", str(synthetic_root), "--output", str(tmp_path / "x.onnx")]
    args += [*RECIPE[:2], "--epochs", "2", *RECIPE[4:]]
    args += ["--threads", "1", "--checkpoint-dir", str(tmp_path / "ck"), "--resume", "--quiet"]
    done = _cli([*args, "--cpu-isa", "avx2"], tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert "cpu_isa native, this run has avx2" in lines[0] and "--cpu-isa" in lines[0]


def test_pin_refuses_amp_another_device_and_a_cpu_without_avx2(tmp_path):
    with pytest.raises(UserInputError, match="drop --amp"):
        fast_path(Runtime(cpu_isa="avx2", amp=True), torch.device("cpu"))
    with pytest.raises(UserInputError, match="pins CPU kernels"):
        fast_path(Runtime(cpu_isa="avx2"), torch.device("meta"))
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse sse4_1 avx\n")
    with pytest.raises(UserInputError, match="lacks avx2, fma"):
        cpu.apply_isa_pin("avx2", info)


def test_reproduce_keeps_the_pin_and_the_recorded_kernel_variables(tmp_path):
    doc = {
        "build": {"command": "sod-train train --duts-root d --output m.onnx --cpu-isa=avx2"},
        "environment": {"git_commit": "abc123", "isa_env": {**machine.ISA_PINS["avx2"]}},
        "onnx": {"sha256": "0" * 64},
    }
    run = plan(doc, tmp_path / "m.json")
    assert run.argv[-2:] == ["--cpu-isa", "avx2"]  # the command re-applies the pin
    env = run.env({"PATH": "/bin", "ATEN_CPU_CAPABILITY": "default", "DNNL_MAX_CPU_ISA": "AVX"})
    assert env == {"PATH": "/bin", **machine.ISA_PINS["avx2"]}  # as recorded, others cleared
    doc["environment"]["isa_env"] = {"MKL_CBWR": "AVX2; rm -rf /"}
    with pytest.raises(UserInputError, match=r"isa_env\.MKL_CBWR is not a kernel setting"):
        plan(doc, tmp_path / "m.json")


def test_card_names_the_cpus_the_bytes_hold_for():
    base = {"threads": 2, "cpu_isa_features": ["avx2", "fma"], "cpu_bf16_features": []}
    pinned = reproduction_scope({**base, "cpu_isa": "avx2", "amp": False})
    assert "any x86-64 CPU with AVX2 and FMA" in pinned and "2 torch threads" in pinned
    assert "expected, not verified" in pinned
    native = reproduction_scope({**base, "cpu_isa": "native", "amp": False})
    assert "(avx2, fma; no avx512f, avx512_bf16, amx_bf16)" in native
    assert "bf16 autocast off" in native and "--cpu-isa avx2" in native
    zen4 = {**base, "cpu_isa_features": ["avx2", "fma", "avx512f", "avx512_bf16"], "amp": True}
    amp = reproduction_scope({**zen4, "cpu_bf16_features": ["avx512_bf16"]})
    assert "no amx_bf16" in amp and "bf16 autocast on (native bf16: avx512_bf16)" in amp
