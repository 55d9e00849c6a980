"""`edge-sed simulate` (a bundle's firmware loop on simulated MCUs and Pis: firmware_sim.simulate)
and `edge-sed pi-shell` (the emulated Pi userland)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from edge_sed.cli.common import (
    MAX_EVENTS,
    MAX_STREAM_S,
    SEED,
    FiniteFloat,
    _emit_json,
    _import_extra,
    check_stream_memory,
    progress_bar,
)
from edge_sed.core.errors import EdgeSedError


@click.command(context_settings={"max_content_width": 100})
@click.argument(
    "bundle_path", metavar="[BUNDLE]", required=False, type=click.Path(exists=True, path_type=Path)
)
@click.option(
    "--profile",
    "profile_spec",
    default="all",
    show_default=True,
    help="A profile name, a comma list, mcu, pi, all, or a profile .json (see --list-profiles).",
)
@click.option(
    "--stream",
    help="A .wav/.flac with its annotations <stem>.csv (onset_s,offset_s,label), or a "
    "split CSV / data set from which a stream is built.",
)
@click.option(
    "--annotations", type=click.Path(exists=True, dir_okay=False), help="Annotation CSV of --stream."
)
@click.option(
    "--duration",
    default=600.0,
    show_default=True,
    type=FiniteFloat(5.0, MAX_STREAM_S),
    help="Seconds of stream built from a split CSV / data set.",
)
@click.option(
    "--events",
    "n_events",
    default=60,
    show_default=True,
    type=click.IntRange(0, MAX_EVENTS),
    help="Events placed in a built stream.",
)
@click.option("--seed", default=0, show_default=True, type=SEED, help="Seed of a built stream.")
@click.option(
    "--out",
    "out_path",
    default="simulate.json",
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where the JSON records go.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the JSON instead of the tables.")
@click.option("--list-profiles", is_flag=True, help="List the device profiles and exit.")
@click.option(
    "--calibrate",
    is_flag=True,
    help="Rebuild the C kernels, count their instructions on QEMU, "
    "rewrite firmware_sim/c/counts.json and check the DS-CNN estimate (needs gcc-arm-none-eabi, "
    "qemu-system-arm).",
)
def simulate(
    bundle_path,
    profile_spec,
    stream,
    annotations,
    duration,
    n_events,
    seed,
    out_path,
    as_json,
    list_profiles,
    calibrate,
):
    """Run a bundle's firmware loop on simulated devices: the stream arrives in DMA blocks at device
    pace; each stage (front end, model, smoother) advances a virtual device clock by its estimated
    cycles. MCU profiles run the int8 model with tflite-micro's kernels and report the memory plan
    (fits / does not fit), cycles and ms per decision, duty cycle, overruns, latency, RAM
    high-water and event-based F1 / error rate (500 ms collar) on the stream. One record per
    (bundle level, profile) goes to --out. BUNDLE may be a bundle or a folder of bundles."""
    sim = _import_extra("firmware_sim.simulate", "sim")
    if list_profiles:
        click.echo(sim.list_profiles_text())
        return
    if calibrate:
        from firmware_sim import calibrate as cal

        report = cal.calibrate(progress=lambda m: click.echo(m, err=True))
        dscnn = cal.dscnn_check(report)
        if as_json:
            _emit_json({"counts": report, "dscnn": dscnn})
        else:
            cal.print_report(report, dscnn, echo=click.echo)
            click.echo(f"wrote {cal.COUNTS_JSON}")
        return
    if bundle_path is None or not stream:
        raise click.UsageError("give BUNDLE and --stream (or --list-profiles / --calibrate)")
    check_stream_memory(duration)
    with progress_bar("simulating", 1, enabled=not as_json) as advance:
        report = sim.run(
            bundle_path,
            profile_spec,
            stream,
            duration,
            n_events,
            seed,
            annotations,
            log=None if as_json else (lambda m: click.echo(m, err=True)),
            progress=advance,
        )
    from edge_sed.core.atomic import atomic_path

    with atomic_path(out_path) as tmp:
        tmp.write_text(sim.dumps(report) + "\n")
    if as_json:
        click.echo(sim.dumps(report))
    else:
        click.echo(sim.format_tables(report))
        click.echo(f"wrote {out_path}")


@click.command("pi-shell", context_settings={"ignore_unknown_options": True, "max_content_width": 100})
@click.option(
    "--profile",
    default="rpi-4",
    show_default=True,
    help="Pi profile whose core QEMU emulates (rpi-zero-2w: cortex-a53, rpi-4: cortex-a72, "
    "rpi-5: cortex-a76).",
)
@click.option(
    "--count-insns", is_flag=True, help="Print the instructions executed (QEMU's insn plugin) at the end."
)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def pi_shell(profile, count_insns, command):
    """Run COMMAND in the emulated Raspberry Pi userland (Debian arm64 python3 + aarch64 numpy and
    ai-edge-litert, this checkout's edge_sed on PYTHONPATH) under qemu-aarch64, for debugging the
    Pi simulator. Without a command: python3. `-- busybox ls /opt` etc. run busybox's tools; a program
    the command starts itself (a shell's children) is NOT emulated: without binfmt_misc it runs on the
    host. Built and cached under ~/.cache/edge-sed on first use (~40 s).
    Example: edge-sed pi-shell -- python3 -c "import platform; print(platform.machine())"."""
    from firmware_sim.pi_root import shell
    from firmware_sim.profiles import load_profile

    p = load_profile(profile)
    if p.kind != "pi":
        raise EdgeSedError(f"profile {profile!r} is a {p.kind} profile, not a Pi (rpi-zero-2w, rpi-4, rpi-5)")
    code = shell(
        list(command), cpu=p.qemu_cpu, count_insns=count_insns, log=lambda m: click.echo(m, err=True)
    )
    if code:
        sys.exit(code)  # the guest command's status (click's Exit is swallowed by standalone_mode=False)
