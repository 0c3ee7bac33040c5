"""Quality levers (issue 8): separable convolutions, EMA, jitter, and their presets.

Everything runs on the CPU on the tiny synthetic set, 1-3 epochs at crop 32.
"""

import json
import os
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from click.testing import CliRunner

from conftest import REPO, SMALL_RECIPE
from sod_train.check.check import check_model
from sod_train.cli.main import main
from sod_train.data.augment import CropMix, MixedSet, TrainAugment, scale_window
from sod_train.data.decode import DecodedSet
from sod_train.errors import UserInputError
from sod_train.export.export import export
from sod_train.model.unet import TinyUNet, UNetConfig, build_model, count_parameters
from sod_train.train.config import Runtime, TrainConfig
from sod_train.train.loop import load_data, train, validate
from sod_train.train.presets import PRESETS

CROP = 32
NEW_PRESETS = sorted(p for p in PRESETS if p.startswith("ablate-") or p == "csnet-push")


def small_config(**overrides):
    return TrainConfig(**{"epochs": 2, "batch_size": 8, "crop_size": CROP, "lr": 3e-3, **overrides})


def run(root, cfg, **runtime):
    return train(root, cfg, Runtime(device="cpu", quiet=True, **runtime))


def same_state(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def ema_weights(checkpoint):
    """The EMA model's state dict from a checkpoint (AveragedModel prefixes it with module.)."""
    ema = checkpoint["ema"]
    return {k.removeprefix("module."): v for k, v in ema.items() if k != "n_averaged"}


@pytest.fixture(scope="module")
def plain_run(synthetic_root):
    return run(synthetic_root, small_config())


# --- depthwise-separable convolutions --------------------------------------------------


def test_separable_parameter_count_matches_a_hand_computation():
    def plain(cin, cout):  # 3x3 conv without bias + BatchNorm (weight, bias)
        return cin * cout * 9 + 2 * cout

    def sep(cin, cout):  # depthwise 3x3 + pointwise 1x1, no biases + BatchNorm
        return cin * 9 + cin * cout + 2 * cout

    expected = (
        plain(3, 8) + sep(8, 8)  # level 0: the RGB conv stays plain
        + sep(8, 12) + sep(12, 12)  # level 1
        + sep(12, 12)  # bottleneck
        + 12 * 8 * 4 + sep(8 + 12, 8)  # up to level 1 (ConvTranspose k2), decoder
        + 8 * 4 * 4 + sep(4 + 8, 4)  # up to level 0, decoder (half of width 0)
        + 4 + 1  # 1x1 head with bias
    )  # fmt: skip
    model = TinyUNet(UNetConfig((8, 12), (1,), separable=True))
    assert count_parameters(model) == expected
    convs = [
        m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)
    ]
    assert convs[0].groups == 1 and convs[0].in_channels == 3
    assert all(c.groups == c.in_channels == c.out_channels for c in convs[1:])


def test_unet_config_round_trips_and_reads_old_dicts():
    cfg = UNetConfig((8, 16, 24), (1, 2), separable=True)
    assert UNetConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert UNetConfig.from_dict({"widths": [16, 32, 48], "dilations": [1]}) == UNetConfig()
    old = small_config().to_dict()
    for key in ("separable", "ema", "colour_jitter", "scale_jitter"):
        old.pop(key)
    assert TrainConfig.from_dict(old) == small_config()


def test_separable_ema_model_exports_and_passes_every_check(synthetic_root, tmp_path):
    cfg = small_config(widths=(8, 12, 16), dilations=(1, 2), separable=True, ema=0.9)
    out = tmp_path / "sep.onnx"
    metrics = export(run(synthetic_root, cfg), out, min_val_iou=0)
    assert all(v <= 1e-5 for v in metrics["onnx"]["parity_max_abs_diff"].values())
    assert metrics["model"]["config"]["separable"] is True
    proto = onnx.load(out)
    assert "BatchNormalization" not in {n.op_type for n in proto.graph.node}
    groups = [a.i for n in proto.graph.node for a in n.attribute if a.name == "group"]
    assert max(groups) > 1  # the depthwise convolutions made it into the graph
    report = check_model(out)
    assert report.passed, [c.detail for c in report.failed]
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for h, w in [(1, 1), (7, 13), (33, 47)]:
        x = np.random.default_rng(h).standard_normal((1, 3, h, w), np.float32)
        (y,) = session.run(None, {"input": x})
        assert y.shape == (1, 1, h, w) and np.isfinite(y).all()


# --- EMA of the weights ----------------------------------------------------------------


def test_ema_is_deterministic_differs_and_is_what_gets_validated(
    synthetic_root, plain_run, tmp_path
):
    cfg = small_config(ema=0.9)
    a = run(synthetic_root, cfg, checkpoint_dir=tmp_path / "a")
    b = run(synthetic_root, cfg)
    assert same_state(a.best_state, b.best_state)
    assert [h["val_loss"] for h in a.history] == [h["val_loss"] for h in b.history]
    assert not torch.equal(a.best_state["head.weight"], plain_run.best_state["head.weight"])
    # The training loss is the raw model's: identical to the plain run (EMA never feeds back).
    assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in plain_run.history]
    # The recorded validation is the EMA model's, not the raw model's.
    last = torch.load(tmp_path / "a/last.pt", weights_only=False)
    ema_state = ema_weights(last)
    assert not same_state(ema_state, last["model"])
    _, val_set, _ = load_data(synthetic_root, cfg, workers=0, quiet=True)
    model = build_model(cfg.model_config).to(memory_format=torch.channels_last)  # as trained
    model.load_state_dict(ema_state)
    scored = validate(model, val_set, cfg.loss, torch.device("cpu"))
    assert scored["val_loss"] == a.history[-1]["val_loss"]


def test_ema_interrupted_then_resumed_equals_uninterrupted(synthetic_root, tmp_path):
    cfg = small_config(epochs=3, ema=0.9)
    straight = run(synthetic_root, cfg, checkpoint_dir=tmp_path / "a")
    first = run(synthetic_root, cfg, checkpoint_dir=tmp_path / "b", stop_after_epoch=1)
    assert not first.finished
    resumed = run(synthetic_root, cfg, checkpoint_dir=tmp_path / "b", resume=True)
    assert [h["val_loss"] for h in resumed.history] == [h["val_loss"] for h in straight.history]
    assert same_state(straight.best_state, resumed.best_state)
    last_a = torch.load(tmp_path / "a/last.pt", weights_only=False)
    last_b = torch.load(tmp_path / "b/last.pt", weights_only=False)
    assert same_state(last_a["model"], last_b["model"])
    assert same_state(last_a["ema"], last_b["ema"])
    assert int(last_b["ema"]["n_averaged"]) == 3 * 4  # 32 training images / batch 8, 3 epochs


# --- augmentation -----------------------------------------------------------------------


def fake_set(n=6):
    """Stored training pairs as load_data keeps them: shorter side crop + 32, widths vary."""
    g = torch.Generator().manual_seed(0)
    shapes = [(3, CROP + 32, CROP + 32 + 5 * i) for i in range(n)]
    images = [torch.randint(0, 256, s, generator=g, dtype=torch.uint8) for s in shapes]
    masks = [(img[:1] > 127).to(torch.uint8) for img in images]
    return DecodedSet([None] * n, images, masks)


def batches(data, **jitter):
    gen = torch.Generator().manual_seed(3)
    return list(TrainAugment(CROP, **jitter).batches(data, list(range(len(data))), 4, gen))


def test_no_jitter_keeps_the_plain_draw_sequence():
    data = fake_set()
    (images, masks), _ = batches(data)
    assert images.dtype == torch.uint8
    draws = torch.rand(4, 3, generator=torch.Generator().manual_seed(3)).tolist()
    for k, (ry, rx, rflip) in enumerate(draws):
        img = data.images[k]
        top, left = int(ry * (img.shape[1] - CROP + 1)), int(rx * (img.shape[2] - CROP + 1))
        want = img[:, top : top + CROP, left : left + CROP]
        if rflip < 0.5:
            want = want.flip(-1)
        assert torch.equal(images[k], want)
        assert torch.equal(masks[k], (want[:1] > 127).float())


def test_scale_jitter_changes_crops_keeps_sizes_and_binary_masks():
    data = fake_set()
    plain, scaled = batches(data), batches(data, scale_jitter=0.3)
    again = batches(data, scale_jitter=0.3)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(scaled, again, strict=True))
    for (pi, pm), (si, sm) in zip(plain, scaled, strict=True):
        assert si.shape == pi.shape and si.dtype == torch.uint8
        assert sm.shape == pm.shape and set(sm.unique().tolist()) <= {0.0, 1.0}
    assert not torch.equal(plain[0][0], scaled[0][0])


def test_scale_window_stays_in_range():
    for u in (0.0, 0.3, 0.999):
        side = scale_window(CROP + 32, CROP, 0.25, u)
        assert round(CROP * 0.75) <= side <= round(CROP * 1.25)
    assert scale_window(CROP + 2, CROP, 0.5, 0.999) == CROP + 2  # capped by the image


def test_colour_jitter_changes_statistics_and_stays_in_unit_range():
    data = fake_set()
    (plain, _), _ = batches(data)
    (jittered, _), _ = batches(data, colour_jitter=0.4)
    (again, _), _ = batches(data, colour_jitter=0.4)
    assert torch.equal(jittered, again)
    assert jittered.dtype == torch.float32
    assert float(jittered.min()) >= 0.0 and float(jittered.max()) <= 1.0
    base = plain.float() / 255.0
    assert (jittered.mean((1, 2, 3)) - base.mean((1, 2, 3))).abs().max() > 0.01
    assert (jittered.std((1, 2, 3)) - base.std((1, 2, 3))).abs().max() > 0.01


def test_jitter_training_is_deterministic_and_differs_from_plain(synthetic_root, plain_run):
    cfg = small_config(scale_jitter=0.25, colour_jitter=0.2)
    a, b = run(synthetic_root, cfg), run(synthetic_root, cfg)
    assert same_state(a.best_state, b.best_state)
    assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]
    assert [h["train_loss"] for h in a.history] != [h["train_loss"] for h in plain_run.history]


def test_crop_mix_draws_one_size_per_batch_from_the_matching_copy():
    big = fake_set()
    small = big.rescaled(CROP - 8 + 32)
    mix = CropMix((TrainAugment(CROP - 8), TrainAugment(CROP)))
    data = MixedSet((small, big))
    order = list(range(len(big))) * 4

    def draw():
        return list(mix.batches(data, order, 2, torch.Generator().manual_seed(5)))

    out = draw()
    sizes = [images.shape[-1] for images, _ in out]
    assert set(sizes) == {CROP - 8, CROP}  # both sizes occur
    for images, masks in out:  # one size per batch, image and mask agree
        assert images.shape[-2:] == masks.shape[-2:] and images.shape[-2] == images.shape[-1]
        assert set(masks.unique().tolist()) <= {0.0, 1.0}
    again = draw()
    assert all(torch.equal(a[0], b[0]) for a, b in zip(out, again, strict=True))
    # A batch at the small size comes from the small copy: its pixels are the plain
    # transform's on that copy after the size draw.
    gen = torch.Generator().manual_seed(5)
    pick = int(torch.randint(2, (1,), generator=gen))
    first = mix.augments[pick].batch(data.sets[pick], order[:2], gen)
    assert torch.equal(first[0], out[0][0])


def test_mixed_crops_training_records_its_crops_and_is_deterministic(synthetic_root):
    cfg = small_config(mixed_crops=(CROP - 8, CROP), epochs=1)
    a, b = run(synthetic_root, cfg), run(synthetic_root, cfg)
    assert a.history[0]["crops"] == [CROP - 8, CROP] and a.history[0]["crop"] == CROP
    assert same_state(a.best_state, b.best_state)
    assert (
        cfg.max_crop == CROP and small_config(mixed_crops=(CROP, CROP + 16)).max_crop == CROP + 16
    )


@pytest.mark.parametrize("bad", [(CROP,), (CROP, CROP), (4, CROP)])
def test_mixed_crops_needs_two_sizes_in_range(synthetic_root, bad):
    with pytest.raises(UserInputError, match="mixed_crops"):
        run(synthetic_root, small_config(mixed_crops=bad, epochs=1))


# --- presets and the command line -------------------------------------------------------


@pytest.mark.parametrize("preset", NEW_PRESETS)
def test_new_preset_fits_the_budget_and_trains_one_epoch(synthetic_root, preset):
    cfg = TrainConfig.from_preset(preset, epochs=1, batch_size=8, crop_size=CROP)
    assert count_parameters(build_model(cfg.model_config)) <= 120_000
    result = run(synthetic_root, cfg)
    assert len(result.history) == 1 and np.isfinite(result.history[0]["train_loss"])
    build_model(cfg.model_config).load_state_dict(result.best_state)


def test_cli_levers_reach_the_recipe_and_bad_values_are_refused(synthetic_root, tmp_path):
    args = ["train", "--duts-root", str(synthetic_root), "--output", str(tmp_path / "x.onnx")]
    args += ["--epochs", "1", "--batch-size", "8", "--crop-size", str(CROP), "--quiet"]
    levers = ["--preset", "anchor", "--ema", "0.5", "--colour-jitter", "0.1"]
    levers += ["--scale-jitter", "0.2", "--separable"]
    levers += ["--loss", "structure", "--mixed-crops", f"{CROP - 8},{CROP}"]
    ok = CliRunner().invoke(
        main, [*args, *levers, "--no-export", "--checkpoint-dir", str(tmp_path / "ck")]
    )
    assert ok.exit_code == 0, ok.output
    config = torch.load(tmp_path / "ck/last.pt", weights_only=False)["config"]
    assert (config["ema"], config["colour_jitter"], config["scale_jitter"]) == (0.5, 0.1, 0.2)
    assert config["separable"] is True
    assert config["loss"] == "structure" and config["mixed_crops"] == [CROP - 8, CROP]
    off = CliRunner().invoke(
        main,
        [
            *args,
            "--preset",
            "csnet-push",
            "--no-separable",
            "--no-export",
            "--checkpoint-dir",
            str(tmp_path / "ck2"),
        ],
    )
    assert off.exit_code == 0, off.output
    config = torch.load(tmp_path / "ck2/last.pt", weights_only=False)["config"]
    assert config["separable"] is False and config["ema"] == 0.999  # the rest of the preset
    for bad in (
        ["--ema", "1"],
        ["--scale-jitter", "1"],
        ["--colour-jitter", "-0.1"],
        ["--mixed-crops", "32,x"],
        ["--mixed-crops", "32"],
    ):
        refused = CliRunner().invoke(main, [*args, *bad])
        assert refused.exit_code == 2 and "Traceback" not in refused.output


# --- EMA under torchrun -----------------------------------------------------------------


@pytest.mark.skipif(
    not torch.distributed.is_available(),
    reason="this torch build has no torch.distributed; install the torch wheel the README names",
)
def test_ema_under_torchrun_keeps_ranks_identical(synthetic_root, tmp_path):
    """Both ranks validate bit-identical EMA weights and measure identical metrics.

    This is the property DDP + EMA must keep on any CPU. The test does not compare
    against a single process re-scoring the checkpoint: that is another computation
    (a freshly built NCHW model, where the trainer's is channels_last), for which
    oneDNN picks other convolution kernels whose float summation order depends on
    the ISA (AVX2, AVX-512, AMX), so it agreed to 1e-9 on some CPUs and not others.
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SOD_TRAIN_DIST_TIMEOUT": "60"}
    helper = str(REPO / "tests/ddp_rank_states.py")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    args = ["--duts-root", str(synthetic_root), "--output", str(tmp_path / "x.onnx"), "--quiet"]
    args += [*SMALL_RECIPE, "--ema", "0.9"]  # crop 32 = CROP
    args += ["--device", "cpu", "--no-export", "--checkpoint-dir", str(tmp_path / "ck")]
    ranks = tmp_path / "ranks"
    proc = subprocess.run(
        [*cmd, helper, str(ranks), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rank0, rank1 = (torch.load(ranks / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    assert len(rank0) == len(rank1) == 2  # one validation per epoch on each rank
    for epoch0, epoch1 in zip(rank0, rank1, strict=True):
        assert same_state(epoch0["state"], epoch1["state"])  # bit for bit
        assert epoch0["metrics"] == epoch1["metrics"]  # exact floats, no tolerance
    # What the ranks validated is the EMA model the checkpoint saves (rank 0 writes it).
    saved = torch.load(tmp_path / "ck/last.pt", weights_only=False)
    assert saved["config"]["ema"] == 0.9
    assert same_state(ema_weights(saved), rank0[-1]["state"])
    assert not same_state(saved["model"], rank0[-1]["state"])  # the EMA, not the raw weights
