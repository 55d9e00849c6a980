"""`edge-sed evaluate` (a bundle scored by events on labelled streams), `edge-sed report` (accuracy
and latency per level and device) and `edge-sed bench` (host latency of every level)."""

from __future__ import annotations

from pathlib import Path

import click

from edge_sed.cli.common import MAX_EVENTS, FiniteFloat, _emit_json, progress_bar
from edge_sed.core.errors import EdgeSedError
from edge_sed.core.settings import PI_LEVELS

MAX_ROUNDS = 10_000
"""Most latency-measurement rounds (each times 10 calls of every level)."""


@click.command(context_settings={"max_content_width": 100})
@click.argument(
    "bundle_path", metavar="BUNDLE", type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@click.argument("streams", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--threshold", type=FiniteFloat(0, 1), help="Every class's threshold (default: the bundle's).")
@click.option(
    "--window-ms", type=FiniteFloat(0, 60_000), help="Smoother averaging window (default: the bundle's)."
)
@click.option(
    "--suppression-ms", type=FiniteFloat(0, 86_400_000), help="Smoother suppression (default: the bundle's)."
)
@click.option(
    "--min-count", type=click.IntRange(1), help="Decisions needed before an event (default: the bundle's)."
)
@click.option(
    "--runtime",
    type=click.Choice(["litert", "tflm"]),
    default="litert",
    show_default=True,
    help="Run the model in LiteRT (the host, a Pi) or in tflite-micro (an MCU's kernels: int8 "
    "bundles, needs the [sim] extra).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def evaluate(bundle_path, streams, threshold, window_ms, suppression_ms, min_count, runtime, as_json):
    """Score a bundle by events on labelled streams: each STREAMS argument is a .wav/.flac with
    <stem>.csv annotations beside it, or a folder of them (`edge-sed data mix` writes both). The
    audio runs through the device loop listen uses; prints event F1 / error rate (DCASE, 0.5 s
    onset collar), detection F1, false alarms per hour and onset->event latency per class, and
    recall by EBR and bed level."""
    from edge_sed.eval.evaluate import evaluate as run_evaluate, format_report

    overrides = {
        "threshold": threshold,
        "average_window_ms": window_ms,
        "suppression_ms": suppression_ms,
        "minimum_count": min_count,
    }
    with progress_bar("streams", 1, enabled=not as_json) as advance:
        backend_for = None
        if runtime == "tflm":
            from firmware_sim.tflm import bundle_backend as backend_for
        report = run_evaluate(
            bundle_path, streams, overrides, progress=advance, runtime=runtime, backend_for=backend_for
        )
    if as_json:
        _emit_json(report)
    else:
        click.echo(format_report(report))


@click.command(context_settings={"max_content_width": 100})
@click.option(
    "--bundles",
    "bundles",
    multiple=True,
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A convert output (DIR/<level>/ + convert-report.json) or a folder of them (one per "
    "seed/objective); repeatable.",
)
@click.option(
    "--data",
    "data_path",
    type=click.Path(exists=True),
    help="Data for the labelled stream: a data set or a prepared-splits folder (default: the "
    "bundles' own, from their provenance). The run's test split is used.",
)
@click.option(
    "--profiles",
    default="all",
    show_default=True,
    help="Device profiles to estimate: 'all' or a comma list (host is always measured).",
)
@click.option(
    "--pi-levels",
    default=",".join(PI_LEVELS),
    show_default=True,
    help="Levels emulated on Pi profiles ('all': every one; QEMU takes minutes per level and core).",
)
@click.option(
    "--runs",
    "runs",
    multiple=True,
    type=click.Path(exists=True, file_okay=False),
    help="Training run directories (metrics.json) for the objective comparison; repeatable.",
)
@click.option(
    "--out",
    "out_dir",
    default="report",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="report.md/.html/.json and plots go here.",
)
@click.option(
    "--stream-s",
    default=240.0,
    show_default=True,
    type=FiniteFloat(20, 7200),
    help="Seconds of labelled stream per model.",
)
@click.option(
    "--stream-events",
    default=40,
    show_default=True,
    type=click.IntRange(1, MAX_EVENTS),
    help="Events on the stream.",
)
@click.option(
    "--latency-rounds",
    default=30,
    show_default=True,
    type=click.IntRange(1, MAX_ROUNDS),
    help="Interleaved rounds of 10 calls per level for the host latency.",
)
@click.option("--no-plots", is_flag=True, help="Tables only (no matplotlib needed).")
@click.option(
    "--screenshot",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also render report.html with headless Chromium to this PNG.",
)
@click.option("--json", "as_json", is_flag=True, help="Print report.json.")
def report(
    bundles,
    data_path,
    profiles,
    pi_levels,
    runs,
    out_dir,
    stream_s,
    stream_events,
    latency_rounds,
    no_plots,
    screenshot,
    as_json,
):
    """Accuracy and latency per quantization level and per device: window-level error (one window per
    test clip; per class,
    overall, macro-F1; from the bundles' manifests), event F1 and onset latency on a labelled
    stream (the device loop, measured here), host latency (LiteRT, interleaved, median), the
    simulators' device estimates (latency, duty cycle, RAM/flash, fits), and the training
    comparison of --runs. Writes report.md, a self-contained report.html and report.json (every
    number with the file and JSON field it came from)."""
    from edge_sed.report.build import build_report
    from edge_sed.report.render import headline_markdown, screenshot_html
    from firmware_sim.report_sim import SIMULATOR

    say = (lambda *a: None) if as_json else (lambda m: click.echo(m, err=True))
    with progress_bar("streams", 1, enabled=not as_json) as advance:
        result = build_report(
            list(bundles),
            out_dir,
            data=data_path,
            profiles=profiles,
            runs=list(runs),
            stream_s=stream_s,
            stream_events=stream_events,
            latency_rounds=latency_rounds,
            plots=not no_plots,
            say=say,
            progress=advance,
            pi_levels="all" if pi_levels == "all" else tuple(pi_levels.split(",")),
            simulator=SIMULATOR,
        )
    if screenshot:
        screenshot_html(out_dir / "report.html", screenshot)
    if as_json:
        _emit_json(result)
        return
    click.echo(headline_markdown(result))
    click.echo(
        f"report: {out_dir / 'report.html'} ({out_dir / 'report.md'}, {out_dir / 'report.json'})"
        + (f"; screenshot {screenshot}" if screenshot else "")
    )


@click.command(context_settings={"max_content_width": 100})
@click.argument(
    "bundles_path",
    metavar="[BUNDLES]",
    required=False,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
)
@click.option(
    "--rounds",
    default=30,
    show_default=True,
    type=click.IntRange(1, MAX_ROUNDS),
    help="Interleaved rounds; each round times 10 calls of every level.",
)
@click.option(
    "--hop-frames",
    default=50,
    show_default=True,
    type=click.IntRange(1, 6000),
    help="Decision hop (10 ms frames, at most a minute) used to turn ms per invoke into ms per "
    "second of audio.",
)
@click.option(
    "--demo",
    "demo_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Also time the whole demo from scratch into this (new or emptied) folder.",
)
@click.option("--quick", is_flag=True, help="--demo: the small smoke-test demo.")
@click.option("--json", "as_json", is_flag=True, help="Print the measurement as JSON.")
def bench(bundles_path, rounds, hop_frames, demo_dir, quick, as_json):
    """Host inference latency of every level of a convert output, side by side in one run
    (interleaved round-robin, order rotated each round; median; ratios to fp32), and with --demo
    the end-to-end demo time per stage."""
    from edge_sed.eval.bench import bundle_dirs, latency_table, measure_latency

    if not bundles_path and not demo_dir:
        raise click.UsageError("give a BUNDLES folder, --demo DIR, or both")
    result = {}
    if demo_dir:
        from edge_sed.demo import run_demo

        say = (lambda *a: None) if as_json else (lambda m: click.echo(m, err=True))
        summary = run_demo(demo_dir, quick=quick, fresh=True, say=say)
        result["demo"] = {
            "seconds": summary["seconds"],
            "stage_seconds": summary["stage_seconds"],
            "quick": quick,
            "out": summary["out"],
        }
        bundles_path = bundles_path or Path(summary["bundles"]["weighted-ce"])
    paths = bundle_dirs(bundles_path)
    if not paths:
        raise EdgeSedError(f"{bundles_path}: no bundles (no <level>/manifest.json)")
    with progress_bar("rounds", rounds, enabled=not as_json) as advance:
        result["latency"] = measure_latency(paths, rounds=rounds, progress=advance, hop_frames=hop_frames)
    if as_json:
        _emit_json(result)
        return
    click.echo(latency_table(result["latency"]))
    if "demo" in result:
        d = result["demo"]
        click.echo(
            f"\ndemo end to end{' (quick)' if quick else ''}: {d['seconds']:.0f} s  ("
            + ", ".join(f"{k} {v:.0f} s" for k, v in d["stage_seconds"].items())
            + ")"
        )
