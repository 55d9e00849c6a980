"""`edge-sed demo`: the main job end to end on the built-in synthetic data (edge_sed.demo)."""

from __future__ import annotations

from pathlib import Path

import click

from edge_sed.cli.common import SEED, _emit_json, progress_bar


@click.command(context_settings={"max_content_width": 100})
@click.option(
    "--out",
    "out_dir",
    default="out/demo",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Everything goes here.",
)
@click.option("--seed", default=0, show_default=True, type=SEED)
@click.option(
    "--quick", is_flag=True, help="The same stages on 72 clips and a tiny LSTM (a smoke test, ~1 min)."
)
@click.option("--fresh", is_flag=True, help="Delete --out first (default: resume, skipping finished stages).")
@click.option("--profiles", default="all", show_default=True, help="Device profiles for the report.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary (demo.json) as JSON.")
def demo(out_dir, seed, quick, fresh, profiles, as_json):
    """The main job end to end on the built-in synthetic data: synthesise 1,860 clips -> split
    by group, training split at 2:2:1:26 -> log-mel PNG -> train the stateful streaming LSTM on
    fresh mixtures with weighted-ce and with clustered -> convert both to the stateful levels
    (fp32, int8, int16x8) -> report (stream evaluation: event F1, false alarms per hour, onset
    latency; host latency; MCU estimates) -> print the headline table. Resumable: finished stages
    are skipped on a re-run (--fresh starts over)."""
    from edge_sed.demo import run_demo

    say = (lambda *a: None) if as_json else click.echo
    summary = run_demo(
        out_dir,
        seed=seed,
        quick=quick,
        fresh=fresh,
        profiles=profiles,
        say=say,
        bar=lambda d, t: progress_bar(d, t, enabled=not as_json),
    )
    if as_json:
        _emit_json(summary)
        return
    click.echo("")
    click.echo(summary["headline"])
    click.echo(
        f"demo done in {summary['seconds']:.0f} s. Report: {summary['report']['html']} "
        f"(also {summary['report']['md']}, {summary['report']['json']})"
    )
