"""The ``sod-train`` command line: one click group, sub-commands loaded on first use.

Each sub-command lives in its own module of this package, a thin layer over its stage,
and is imported lazily, so that
``sod-train check`` or ``predict`` never pays for importing torch. Every library
error (:mod:`sod_train.errors`) becomes one line on stderr and its exit code, and
every float option of every command refuses NaN and infinity (:func:`finite_floats`), and
an option given twice that takes one value is a usage error (:func:`refuse_repeats`).
"""

from __future__ import annotations

import contextlib
import importlib
import math
import os
import sys
from collections import Counter
from collections.abc import Sequence
from typing import Any, NoReturn

import click

from sod_train import __version__, stdio
from sod_train.errors import GateError, SodTrainError, UserInputError, display, first_line

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
    """Print ``error: ...`` (prefixed by the rank inside a torchrun job) and exit.

    The message and each detail line are escaped (:func:`sod_train.errors.display`), so
    a name from input can add no line; a broken stderr does not hide the exit code.
    """
    rank = os.environ.get("RANK") if os.environ.get("WORLD_SIZE", "1") not in ("", "1") else None
    prefix = f"rank {rank}: " if rank is not None else ""
    message, details = getattr(exc, "message", str(exc)), getattr(exc, "details", ())
    lines = [f"{prefix}error: {display(message)}", *(f"  {display(d)}" for d in details)]
    with contextlib.suppress(OSError, ValueError):
        click.echo("\n".join(lines), err=True)
    sys.exit(exc.exit_code)


def _os_failure(exc: OSError) -> SodTrainError:
    """One line for an OSError that reached the CLI: output lost (exit 1), else the file
    it names (exit 2: an unreadable input, a folder without permission)."""
    if stdio.is_output_failure(exc):
        if exc.filename is None:
            stdio.silence_stdout()
        return stdio.output_error(exc)
    reason = (exc.strerror or first_line(exc)).lower()
    if exc.filename is not None:
        return UserInputError(f"{os.fsdecode(exc.filename)}: {reason}")
    return GateError(f"{reason} ({type(exc).__name__})")


def _guarded(call: Any) -> Any:
    """Run ``call()`` under the one failure policy of the module doc."""
    try:
        result = call()
        stdio.flush_stdout()  # output still in the buffer must arrive before exit 0
        return result
    except SodTrainError as exc:
        fail(exc)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
        raise
    except OSError as exc:
        if os.environ.get("SOD_TRAIN_TRACEBACK"):
            raise
        fail(_os_failure(exc))
    except Exception as exc:  # a bug: still one line, and the traceback on request
        if os.environ.get("SOD_TRAIN_TRACEBACK"):
            raise
        fail(GateError(f"internal error: {type(exc).__name__}: {first_line(exc)}"))


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
        return _guarded(lambda: super(LazyGroup, self).invoke(ctx))

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        # --version and --help print while the context is made; click would turn their
        # broken pipe into a silent exit 1, this into the one line.
        try:
            return super().make_context(*args, **kwargs)
        except OSError as exc:
            if not stdio.is_output_failure(exc):
                raise
            raise _os_failure(exc) from None

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        return _main(super().main, standalone_mode, *args, **kwargs)


# click >= 8.2 raises this for a group called with no arguments (its message is the help).
_NO_ARGS_IS_HELP: Any = getattr(click.exceptions, "NoArgsIsHelpError", ())


def _main(click_main: Any, standalone_mode: bool, *args: Any, **kwargs: Any) -> Any:
    """click's ``main`` under the one failure policy, with usage errors as one line too
    (``error: Invalid value for '--url': ... (see 'sod-train fetch --help')``, exit 2)."""
    stdio.install()
    if not standalone_mode:
        return _guarded(lambda: click_main(*args, standalone_mode=False, **kwargs))
    try:
        result = _guarded(lambda: click_main(*args, standalone_mode=False, **kwargs))
    except _NO_ARGS_IS_HELP as exc:  # a bare group: its help, as click shows it
        exc.show()
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        fail(UserInputError(exc.format_message() + where))
    except click.ClickException as exc:
        error = SodTrainError(exc.format_message())
        error.exit_code = exc.exit_code
        fail(error)
    except click.exceptions.Abort:
        fail(GateError("aborted"))
    sys.exit(result if isinstance(result, int) else 0)


def run_standalone(command: click.Command, prog_name: str) -> None:
    """Run one command outside the group (thin scripts) with the same error handling."""
    _main(harden(command).main, True, prog_name=prog_name)


@click.group(cls=LazyGroup)
@click.version_option(__version__, prog_name="sod-train")
def main() -> None:
    """Train, export, verify and evaluate a tiny salient-object-detection ONNX model."""


if __name__ == "__main__":
    main()
