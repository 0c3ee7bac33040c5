"""The ``sod-train`` command line: one click group, sub-commands loaded on first use.

Each sub-command lives in its own module of this package, a thin layer over its stage,
and is imported lazily, so that
``sod-train check`` or ``predict`` never pays for importing torch. Every library
error (:mod:`sod_train.errors`) becomes one line on stderr and its exit code, and
every float option of every command refuses NaN and infinity (:func:`finite_floats`), and
an option given twice that takes one value is a usage error (:func:`refuse_repeats`).
"""

from __future__ import annotations

import importlib
import math
import os
import sys
from collections import Counter
from collections.abc import Sequence
from typing import Any, NoReturn

import click

from sod_train import __version__
from sod_train.errors import SodTrainError

# name -> "module:attribute" of a click.Command, a module of this package (sod_train.cli).
COMMANDS: dict[str, str] = {
    "quickstart": "train:quickstart",
    "train": "train:train",
    "export": "train:export",
    "normalise": "normalise:normalise",
    "fold-iou": "fold:fold_iou_cmd",
    "fetch": "fetch:fetch",
    "verify-data": "fetch:verify_data",
    "check": "check:check",
    "evaluate": "evaluate:evaluate",
    "report": "report:report",
    "diff": "release:diff",
    "card": "release:card",
    "register": "release:register",
    "reproduce": "reproduce:reproduce",
    "predict": "predict:predict",
    "bench": "bench:bench",
    "build-cache": "data:build_cache",
    "video": "video:video",
    "evaluate-video": "video:evaluate_video",
}


def fail(exc: SodTrainError) -> NoReturn:
    """Print ``error: ...`` (prefixed by the rank inside a torchrun job) and exit."""
    rank = os.environ.get("RANK") if os.environ.get("WORLD_SIZE", "1") not in ("", "1") else None
    prefix = f"rank {rank}: " if rank is not None else ""
    click.echo(f"{prefix}error: {exc}", err=True)
    sys.exit(exc.exit_code)


class FiniteFloatRange(click.FloatRange):
    """A FloatRange that also refuses NaN (it compares false with every bound) and infinity."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


def finite_floats(command: click.Command) -> click.Command:
    """Give every float option of ``command`` a :class:`FiniteFloatRange` with its bounds.

    One place for every command, so no ``--max-mb nan`` or ``--lr nan`` reaches code that
    turns it into an integer or a schedule.
    """
    for param in command.params:
        kind = param.type
        if isinstance(kind, FiniteFloatRange):
            continue
        if isinstance(kind, click.FloatRange):
            param.type = FiniteFloatRange(kind.min, kind.max, kind.min_open, kind.max_open)
        elif isinstance(kind, click.types.FloatParamType):
            param.type = FiniteFloatRange()
    return command


def repeated_options(command: click.Command, ctx: click.Context, args: Sequence[str]) -> list[str]:
    """The options of ``command`` that ``args`` gives more than once but that take one value.

    click keeps the last value of such an option and drops the others silently (a second
    ``--data`` scored only the last set). The command's own parser lists every occurrence;
    ``multiple`` and counting options are meant to repeat. Malformed ``args`` give no
    answer here: the real parse reports them.
    """
    try:
        _, _, order = command.make_parser(ctx).parse_args(list(args))
    except click.ClickException:
        return []
    counts = Counter(
        p for p in order if isinstance(p, click.Option) and not (p.multiple or p.count)
    )
    return [
        f"{'/'.join(p.opts + p.secondary_opts)} given {n} times" for p, n in counts.items() if n > 1
    ]


def refuse_repeats(command: click.Command) -> click.Command:
    """Make ``command`` refuse a repeated single-value option with a usage error (exit 2).

    One place for every command (the group's and the thin scripts'): the check runs on
    the raw arguments before click parses them.
    """
    if getattr(command, "_refuses_repeats", False):
        return command
    plain_parse = command.parse_args

    def parse_args(ctx: click.Context, args: list[str]) -> list[str]:
        repeated = repeated_options(command, ctx, args)
        if repeated:
            raise click.UsageError(
                "; ".join(repeated) + ": each takes one value (give it once)", ctx
            )
        return plain_parse(ctx, args)

    command.parse_args = parse_args  # type: ignore[method-assign]
    command._refuses_repeats = True  # type: ignore[attr-defined]
    return command


def harden(command: click.Command) -> click.Command:
    """Every command's shared option rules: finite floats, no silently dropped repeats."""
    return refuse_repeats(finite_floats(command))


class LazyGroup(click.Group):
    """A click group whose sub-commands are imported only when used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        module = importlib.import_module(f"{__package__}.{module_name}")
        return harden(getattr(module, attr))

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SodTrainError as exc:
            fail(exc)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)


def run_standalone(command: click.Command, prog_name: str) -> None:
    """Run one command outside the group (thin scripts) with the same error handling."""
    try:
        harden(command).main(prog_name=prog_name, standalone_mode=True)
    except SodTrainError as exc:
        fail(exc)


@click.group(cls=LazyGroup)
@click.version_option(__version__, prog_name="sod-train")
def main() -> None:
    """Train, export, verify and evaluate a tiny salient-object-detection ONNX model."""


if __name__ == "__main__":
    main()
