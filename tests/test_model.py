import pytest
import torch

from sod_train.model.unet import TinyUNet, UNetConfig, build_model, count_parameters
from sod_train.train.config import TrainConfig
from sod_train.train.presets import PRESETS


def test_default_is_the_anchor_layout():
    model = TinyUNet()
    assert count_parameters(model) == 112_841
    convt = [m for m in model.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [(m.in_channels, m.out_channels, m.bias) for m in convt] == [
        (48, 32, None),
        (32, 16, None),
        (16, 8, None),
    ]


@pytest.mark.parametrize("hw", [(1, 1), (2, 3), (7, 13), (37, 53), (64, 64), (121, 250)])
def test_any_input_size_gives_same_size_output(hw):
    model = TinyUNet().eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, *hw))
    assert out.shape == (2, 1, *hw)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_no_interpolation_modules():
    names = {type(m).__name__ for m in TinyUNet(UNetConfig((16, 24, 32, 32), (1, 3))).modules()}
    assert not names & {"Upsample", "UpsamplingBilinear2d", "UpsamplingNearest2d"}


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_fits_the_parameter_budget(preset):
    cfg = TrainConfig.from_preset(preset)
    assert count_parameters(build_model(cfg.model_config)) <= 120_000


def test_deeper_config_runs_at_odd_size():
    model = TinyUNet(UNetConfig((8, 12, 16, 16, 16), (1, 2))).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 45, 71)).shape == (1, 1, 45, 71)


LITE = UNetConfig((16, 32, 48, 64, 80), (1, 2, 4), arch="lite", blocks=(0, 1, 2, 1, 0))


@pytest.mark.parametrize("hw", [(1, 1), (2, 3), (7, 13), (33, 47), (64, 64), (121, 250)])
@pytest.mark.parametrize("config", [LITE, UNetConfig((8, 12, 16), (1,), arch="lite", refine=0)])
def test_lite_runs_at_any_size(config, hw):
    model = build_model(config).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, *hw))
    assert out.shape == (2, 1, *hw)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_lite_side_outputs_are_training_only():
    model = build_model(LITE).eval()
    x = torch.randn(1, 3, 96, 80)
    with torch.no_grad():
        main, *sides = model.side_logits(x)
        assert torch.equal(main, model.logits(x))
    # one side output per decoder level, deepest first, each at its level's size
    assert [tuple(s.shape[2:]) for s in sides] == [(6, 5), (12, 10), (24, 20), (48, 40)]


def test_lite_has_no_interpolation_and_a_strided_stem():
    model = build_model(LITE)
    names = {type(m).__name__ for m in model.modules()}
    assert not names & {"Upsample", "UpsamplingBilinear2d", "UpsamplingNearest2d"}
    assert model.stem[0].stride == (2, 2)  # nothing but the head runs at full resolution


def test_unknown_architecture_is_refused():
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model(UNetConfig(arch="resnet"))


def test_config_round_trip_keeps_the_family():
    assert UNetConfig.from_dict(LITE.to_dict()) == LITE
    assert UNetConfig.from_dict({"widths": [16, 32, 48], "dilations": [1]}).arch == "anchor"
