"""The ``edge-sed`` command line: the ``cli`` group, its commands (one module per command group,
declarations only) and ``main``, the console-script entry.

Each subcommand imports what it needs when it runs, so ``edge-sed --help`` and the on-device
commands never load torch or TensorFlow. Errors a user can act on print one line and exit
non-zero (EdgeSedError.exit_code).
"""

from __future__ import annotations

import errno
import os

import click

from edge_sed import __version__
from edge_sed.cli import convert, data, demo, deploy, listen, report, simulate, train
from edge_sed.core.errors import EdgeSedError, printable


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="edge-sed")
def cli():
    """edge-sed: detect rare sound events (dog bark, baby cry, gunshot) on Raspberry Pi boards
    and microcontrollers.

    Pipeline: data -> train -> convert -> simulate -> report; listen runs the device loop on
    a microphone. Every command has --help.
    """


for command in (
    data.data,
    train.train,
    convert.convert,
    convert.verify,
    report.evaluate,
    simulate.simulate,
    simulate.pi_shell,
    listen.listen,
    listen.devices,
    report.report,
    report.bench,
    train.experiments,
    demo.demo,
    deploy.deploy,
):
    cli.add_command(command)


def _disk_full(exc: BaseException) -> OSError | None:
    """The OSError ENOSPC / EDQUOT behind ``exc`` (itself, its cause or its context), if any."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def main(argv=None) -> int:
    """Console-script entry: one-line errors, never a traceback for a user's mistake. Messages
    are printed with control characters escaped (a label or path can hold any)."""
    try:
        cli.main(args=argv, prog_name="edge-sed", standalone_mode=False)
        return 0
    except EdgeSedError as exc:
        click.echo(f"error: {printable(str(exc))}", err=True)
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.UsageError as exc:  # a bad option or argument: one line too, with where to read more
        where = exc.ctx.command_path if exc.ctx else "edge-sed"
        click.echo(f"error: {printable(exc.format_message())} (see {where} --help)", err=True)
        return exc.exit_code
    except click.ClickException as exc:
        exc.message = printable(exc.message)
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    except BrokenPipeError:
        return 141
    except Exception as exc:  # a bug in edge-sed: still one line, with a way to see more
        full = _disk_full(exc)
        if full is not None:
            where = f"{full.filename}: " if full.filename else ""
            _echo_error(f"error: disk full: {printable(where + (full.strerror or str(full)))}")
            return 2
        if os.environ.get("EDGE_SED_DEBUG"):
            raise
        click.echo(
            f"internal error: {type(exc).__name__}: {printable(str(exc))} "
            "(set EDGE_SED_DEBUG=1 for the traceback, and please report it)",
            err=True,
        )
        return 1


def _echo_error(line: str) -> None:
    try:
        click.echo(line, err=True)
    except OSError:  # stderr on the full disk too
        pass
