"""`edge-sed listen` (the device loop on a microphone or a file: edge_sed.listen.run) and
`edge-sed devices` (the audio inputs)."""

from __future__ import annotations

from pathlib import Path

import click

from edge_sed.cli.common import FiniteFloat, _emit_json

MAX_LISTEN_S = 366 * 24 * 3600.0


def _thresholds_for(values) -> dict:
    out = {}
    for v in values:
        label, sep, p = v.partition("=")
        try:
            out[label.strip()] = float(p)
        except ValueError:
            sep = ""
        if sep and not 0 <= out[label.strip()] <= 1:  # NaN too
            raise click.UsageError(f"--threshold-for wants a probability from 0 to 1, got {v!r}")
        if not sep or not label.strip():
            raise click.UsageError(f"--threshold-for wants CLASS=P, e.g. gunshot=0.8, got {v!r}")
    return out


@click.command(context_settings={"max_content_width": 100})
@click.option(
    "--bundle",
    "bundle_path",
    required=True,
    type=click.Path(path_type=Path),
    help="A bundle directory (windowed or *-streaming); its checksum is verified first.",
)
@click.option(
    "--input-device",
    "device",
    help="Microphone: index or part of the name (see `edge-sed devices`). "
    "Default: the system's default input.",
)
@click.option(
    "--file",
    "file",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="Play a WAV/FLAC file through the loop instead of the microphone (streamed in blocks); "
    "'-' or a named pipe: a WAV as it arrives, e.g. arecord -f S16_LE -r 16000 -c 1 -t wav | "
    "edge-sed listen --bundle B --file -.",
)
@click.option(
    "--realtime", is_flag=True, help="With --file: at real-time pace (default: as fast as possible)."
)
@click.option(
    "--threshold",
    type=FiniteFloat(0, 1),
    help="Detection threshold on the averaged "
    "probability, every class (default: the bundle's calibrated thresholds, else 0.6).",
)
@click.option(
    "--threshold-for",
    "thresholds",
    multiple=True,
    metavar="CLASS=P",
    help="Threshold of one class (repeatable), e.g. --threshold-for gunshot=0.8.",
)
@click.option(
    "--window-ms", type=FiniteFloat(0, 60_000), help="Averaging window of the smoother (default 750)."
)
@click.option(
    "--suppression-ms",
    type=FiniteFloat(0, 86_400_000),
    help="After an event, the same class does not fire "
    "again for this long unless another class came between (default 3000).",
)
@click.option(
    "--min-count", type=click.IntRange(1), help="Decisions needed in the window before any event (default 2)."
)
@click.option(
    "--hop-ms",
    type=FiniteFloat(10, 60_000),
    help="Model decision every hop (default: 250 ms for a windowed bundle, every 10 ms frame for a "
    "stateful one).",
)
@click.option(
    "--duration",
    "duration_s",
    type=FiniteFloat(0, MAX_LISTEN_S, min_open=True),
    help="Stop after this many seconds of audio.",
)
@click.option(
    "--log",
    "log",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Append one JSON object per event (ISO time, stream time, class, score, decision latency).",
)
@click.option(
    "--record",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the 16 kHz audio the loop heard to this WAV (replay it with --file).",
)
@click.option(
    "--profile",
    help="Run the loop on a simulated MCU (a firmware_sim profile, e.g. cortex-m4-80mhz): "
    "the int8 model through tflite-micro and that device's estimated clock (duty cycle, device latency, "
    "overruns in the summary). Needs the [sim] extra.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print nothing live; print the summary (with every event) as JSON at exit.",
)
def listen(
    bundle_path,
    device,
    file,
    realtime,
    threshold,
    thresholds,
    window_ms,
    suppression_ms,
    min_count,
    hop_ms,
    duration_s,
    log,
    record,
    profile,
    as_json,
):
    """Detect events live on a microphone (or a file): front end -> model -> smoother, one
    line or a live display per event, a summary at exit (Ctrl-C: exit 130; SIGTERM: exit 0)."""
    from edge_sed.listen.run import listen as run

    if realtime and not file:
        raise click.UsageError("--realtime goes with --file (a microphone is real time already)")
    if file and device is not None:
        raise click.UsageError("give --file or --input-device, not both")
    target = None
    if profile:  # the MCU view: firmware_sim's glue, loaded only for --profile
        from firmware_sim.listen_mcu import target_for

        target = target_for(profile)
    run(
        bundle_path,
        device=device,
        file=file,
        realtime=realtime,
        threshold=threshold,
        thresholds=_thresholds_for(thresholds),
        average_window_ms=window_ms,
        suppression_ms=suppression_ms,
        minimum_count=min_count,
        hop_ms=hop_ms,
        duration_s=duration_s,
        log=log,
        record=record,
        as_json=as_json,
        target=target,
    )


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def devices(as_json):
    """List the audio input devices PortAudio sees (for `edge-sed listen --input-device`)."""
    from edge_sed.listen.sources import input_devices

    found = input_devices()
    if as_json:
        _emit_json(found)
        return
    if not found:
        click.echo("no input devices (no microphone, or no sound server running)")
    for d in found:
        click.echo(
            f"{'*' if d['default'] else ' '} {d['index']:>3}  {d['name']}  ({d['hostapi']}, "
            f"{d['input_channels']} ch, {d['default_samplerate']:g} Hz)"
        )
