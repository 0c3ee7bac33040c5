"""``sod-train train --help``: every recipe option, its default read from TrainConfig."""

from __future__ import annotations

import re
from dataclasses import fields

from click.testing import CliRunner

from sod_train.cli.main import main
from sod_train.cli.train import FLAGS, _shown, train_options
from sod_train.train.config import TrainConfig
from sod_train.train.presets import DEFAULT_PRESET

FREE_TEXT = {"final_crop": "off", "val_crop": "--crop-size"}  # what 0 ("not used") shows


def test_every_recipe_field_has_an_option_whose_default_is_the_recipes():
    command = main.get_command(None, "train")
    helps = {p.name: p.help for p in command.params}
    assert "[default: 0.5]" in CliRunner().invoke(main, ["train", "--help"]).output
    base = TrainConfig.from_preset(DEFAULT_PRESET)
    for f in fields(TrainConfig):
        if f.name == "preset":
            continue  # the preset is the --preset choice itself
        assert f.name in helps, f"no option for TrainConfig.{f.name}"
        shown = re.search(r"\[default: ([^\]]+)\]", helps[f.name] or "")
        assert shown, (f.name, helps[f.name])
        value = getattr(base, f.name)
        want = FREE_TEXT[f.name] if f.name in FREE_TEXT and not value else _shown(value)
        assert shown.group(1) == want, (f.name, shown.group(1), want)


def test_the_options_build_the_recipe_they_show():
    """Parsed with no recipe option given, the command's options give the default recipe:
    the fast release one, not the anchor's (issue 22)."""
    seen = {}

    @train_options
    def probe(**options):
        seen.update(options)

    import click

    CliRunner().invoke(click.command()(probe), ["--output", "x.onnx", "--duts-root", "d"])
    names = {f.name for f in fields(TrainConfig)} - {"preset"}
    recipe = {k: v for k, v in seen.items() if k in names}
    overrides = {k: (v or None) if k in FLAGS else v for k, v in recipe.items()}
    assert seen["preset"] == DEFAULT_PRESET == "release"
    recipe = TrainConfig.from_preset(seen["preset"], **overrides)
    assert recipe == TrainConfig.from_preset("release") != TrainConfig.from_preset("anchor")
    assert TrainConfig.from_preset("anchor") == TrainConfig()  # the field defaults


def test_a_run_shorter_than_the_final_phase_says_it_trains_at_the_final_crop(tmp_path):
    """The release default's last 6 epochs are at 224: a 4-epoch run is all at 224."""
    cfg = TrainConfig.from_preset("release", epochs=4)
    assert cfg.only_final_crop and cfg.crops_at(1) == (224,)
    assert not TrainConfig.from_preset("release").only_final_crop
    assert not TrainConfig.from_preset("anchor", epochs=1).only_final_crop
    args = ["train", "--duts-root", str(tmp_path / "missing"), "--output", str(tmp_path / "x.onnx")]
    short = CliRunner().invoke(main, [*args, "--epochs", "4"])
    assert short.exit_code == 2
    assert "every epoch trains at the final crop 224" in short.output
    full = CliRunner().invoke(main, [*args, "--epochs", "20"])
    assert full.exit_code == 2 and "final crop" not in full.output
