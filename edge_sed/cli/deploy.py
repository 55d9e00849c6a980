"""`edge-sed deploy`: a bundle onto Raspberry Pi boards over SSH, or through Ansible
(edge_sed.deploy.command)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from edge_sed.cli.common import FiniteFloat


@click.command(context_settings={"max_content_width": 100})
@click.argument(
    "bundle_path",
    metavar="[BUNDLE]",
    required=False,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
)
@click.option(
    "--host",
    "hosts",
    multiple=True,
    metavar="[USER@]HOST[:PORT]",
    help="A target board (an ~/.ssh/config alias works); repeat for several.",
)
@click.option(
    "--inventory",
    type=click.Path(exists=True, dir_okay=False),
    help="An Ansible inventory: generate a playbook doing the same steps and run it with "
    "ansible-playbook in rolling batches (needs the 'deploy' extra).",
)
@click.option("--port", type=click.IntRange(1, 65535), help="SSH port for hosts that do not name one.")
@click.option("--identity", type=click.Path(exists=True, dir_okay=False), help="SSH private key (ssh -i).")
@click.option(
    "--ssh-option",
    "ssh_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="Extra ssh -o option, e.g. UserKnownHostsFile=/path (repeatable).",
)
@click.option("--service", default="edge-sed", show_default=True, help="systemd service name.")
@click.option("--root", default="~/edge-sed", show_default=True, help="Install directory on the target.")
@click.option(
    "--scope",
    type=click.Choice(["auto", "system", "user"]),
    default="auto",
    show_default=True,
    help="systemd system service (root) or user service (systemctl --user); auto: by the login user.",
)
@click.option("--python", "python", default="python3", show_default=True, help="Python on the target.")
@click.option(
    "--systemctl",
    default=lambda: os.environ.get("EDGE_SED_SYSTEMCTL", "systemctl"),
    show_default="systemctl, or $EDGE_SED_SYSTEMCTL",
    help="systemctl command on the target (e.g. 'sudo systemctl').",
)
@click.option("--listen-args", default="", help="Extra arguments for `edge-sed listen` in the unit.")
@click.option(
    "--wheel",
    type=click.Path(exists=True, dir_okay=False),
    help="edge-sed wheel to install (default: built from this checkout, pip wheel --no-deps).",
)
@click.option(
    "--settle",
    default=3.0,
    show_default=True,
    type=FiniteFloat(0, 600),
    help="Seconds the restarted service must stay active, else it is switched back.",
)
@click.option("--all-or-nothing", is_flag=True, help="Several hosts: switch none unless every host staged.")
@click.option(
    "--batch",
    default=1,
    show_default=True,
    type=click.IntRange(1),
    help="--inventory: hosts per rolling batch (Ansible serial); a failed batch stops the rest.",
)
@click.option("--dry-run", is_flag=True, help="Check the targets (read-only) and print the plan.")
@click.option("--rollback", "do_rollback", is_flag=True, help="Switch back to the previous bundle.")
@click.option(
    "--status",
    "do_status",
    is_flag=True,
    help="Show the running bundle, the service state and the last events.",
)
@click.option(
    "--lines",
    default=10,
    show_default=True,
    type=click.IntRange(0, 1000),
    help="--status: how many of the last events.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the per-host results as JSON.")
def deploy(
    bundle_path,
    hosts,
    inventory,
    port,
    identity,
    ssh_options,
    service,
    root,
    scope,
    python,
    systemctl,
    listen_args,
    wheel,
    settle,
    all_or_nothing,
    batch,
    dry_run,
    do_rollback,
    do_status,
    lines,
    as_json,
):
    """Put a bundle on Raspberry Pi boards over SSH and keep `edge-sed listen` running there:
    check the board (OS, arch, Python >= 3.9, disk, audio inputs), copy the bundle to a versioned
    directory, check its sha256 there, install the runtime in a venv (no torch/TensorFlow), re-check
    the bundle with the board's own LiteRT, write a systemd unit, switch `current` atomically and
    restart. Nothing live changes until every check on that host passed."""
    from edge_sed.deploy.command import command
    from edge_sed.deploy.options import Options

    opts = Options(
        root=root,
        service=service,
        identity=identity,
        ssh_options=tuple(ssh_options),
        python=python,
        systemctl=systemctl,
        scope=scope,
        listen_args=listen_args,
        settle_s=settle,
    )
    command(
        bundle_path,
        list(hosts),
        inventory,
        opts,
        port=port,
        wheel=wheel,
        dry_run=dry_run,
        do_rollback=do_rollback,
        do_status=do_status,
        lines=lines,
        all_or_nothing=all_or_nothing,
        batch=batch,
        as_json=as_json,
        say=click.echo,
    )
