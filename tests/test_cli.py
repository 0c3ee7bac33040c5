import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from sod_train import __version__
from sod_train.cli.main import COMMANDS, main


def test_help_lists_every_command():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0, result.output
    for name in COMMANDS:
        assert name in result.output


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_command_has_help(name):
    result = CliRunner().invoke(main, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_version_and_unknown_command():
    assert __version__ in CliRunner().invoke(main, ["--version"]).output
    assert CliRunner().invoke(main, ["no-such-command"]).exit_code == 2


def test_light_commands_do_not_import_torch():
    code = (
        "import sys; from sod_train.cli.main import main; main.get_command(None, 'check'); "
        "main.get_command(None, 'predict'); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def test_quickstart_demo_trains_exports_and_checks(tmp_path):
    result = CliRunner().invoke(main, ["quickstart", "--out", str(tmp_path / "qs"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "meets the host contract" in result.output
    metrics = json.loads((tmp_path / "qs" / "quickstart_demo.metrics.json").read_text())
    assert metrics["smoke"] is True and metrics["gate"]["passed"] is True
