"""What ``edge-sed listen`` shows: :class:`ConsoleSink` (a rich live display on a terminal, plain
lines otherwise, nothing with --json) and :func:`summary_text`, the summary as one paragraph."""

from __future__ import annotations

import sys
import time
from collections import deque

import numpy as np

from edge_sed.core.errors import printable
from edge_sed.listen.sinks import Sink


class ConsoleSink(Sink):
    """Live rich display on a terminal (input level, top class and score, recent events), else
    one plain line per event on stdout. ``quiet`` (for --json) prints nothing."""

    def __init__(self, labels, source_name: str, live: bool | None = None, quiet: bool = False):
        self.labels, self.source_name, self.quiet = labels, source_name, quiet
        self.live_mode = (sys.stdout.isatty() if live is None else live) and not quiet
        self.recent: deque = deque(maxlen=8)
        self.level_db, self.top, self.score, self.t_s = -120.0, "-", 0.0, 0.0
        self._live = None
        self._last_draw = 0.0
        if self.live_mode:
            from rich.live import Live

            self._live = Live(self._render(), refresh_per_second=8, transient=False)
            self._live.start()

    def _render(self):
        from rich.table import Table

        bar_n = int(max(0.0, min(1.0, (self.level_db + 60) / 60)) * 30)
        t = Table.grid(padding=(0, 2))
        t.add_row("source", self.source_name)
        t.add_row("stream", f"{self.t_s:8.1f} s")
        t.add_row("level", f"[green]{'#' * bar_n}[/green]{'.' * (30 - bar_n)} {self.level_db:6.1f} dBFS")
        t.add_row("top", f"[bold]{self.top}[/bold] {self.score:.2f}")
        for e, lat in reversed(self.recent):
            t.add_row(
                "[yellow]event[/yellow]",
                f"{e.t_s:8.2f} s  [bold]{e.label}[/bold]  {e.score:.2f}  ({lat * 1000:.0f} ms)",
            )
        return t

    def event(self, event, latency_s: float) -> None:
        self.recent.append((event, latency_s))
        if self.quiet:
            return
        if not self.live_mode:
            print(
                f"{event.t_s:9.2f} s  {event.label:<10} {event.score:.2f}  "
                f"(began {event.estimated_onset_s:.2f} s; "
                f"decided in {latency_s * 1000:.1f} ms)",
                flush=True,
            )

    def decision(self, decision, level_db: float) -> None:
        avg = decision.average if decision.average is not None else decision.scores
        top = int(np.argmax(avg))
        self.top, self.score, self.level_db, self.t_s = (
            self.labels[top],
            float(avg[top]),
            level_db,
            decision.t_s,
        )
        if self._live is not None and time.monotonic() - self._last_draw > 0.1:
            self._live.update(self._render())
            self._last_draw = time.monotonic()

    def close(self, summary) -> None:
        if self._live is not None:
            self._live.update(self._render())
            self._live.stop()


def summary_text(s: dict) -> str:
    by = ", ".join(f"{k} {v}" for k, v in sorted(s["events_by_class"].items())) or "none"
    lost = "".join(
        [
            f"; NON-FINITE model scores in {s['nonfinite_decisions']} decisions (ignored)"
            if s.get("nonfinite_decisions")
            else "",
            f"; event log lost ({s['log_error']}): {s['events_not_logged']} events not logged"
            if s.get("log_error")
            else "",
            f"; recording lost ({s['record_error']})" if s.get("record_error") else "",
        ]
    )
    return (
        f"{s['audio_s']:.1f} s of audio from {printable(str(s['source']))} ({s['level']} {s['form']}, "
        f"hop {s['hop_ms']:g} ms): "
        f"{s['events']} events ({by}); "
        + (
            f"inference {s['inference_ms_p50']} ms p50 / {s['inference_ms_p99']} ms p99 per decision; "
            f"decision latency {s['decision_latency_ms_p50']} ms p50; "
            if s["inference_ms_p50"] is not None
            else "no decision yet (less than one window of audio); "
        )
        + f"CPU {s['cpu_percent_one_core']} % of one core; overflows {s['overflows']}, "
        f"dropped blocks {s['dropped_blocks']}; stopped by {printable(s['stopped_by'])}"
        + printable(lost)
        + (
            f"\non {s['device']['profile']} (estimated): "
            f"duty cycle {100 * (s['device']['duty_cycle'] or 0):.1f} %, "
            f"device decision latency {s['device']['decision_latency_ms_p50']} ms p50 / "
            f"{s['device']['decision_latency_ms_max']} ms max, overruns {s['device']['overruns']}"
            + (
                "; goals: "
                + ", ".join(
                    f"{k} {'met' if g['met'] else 'NOT met'}" for k, g in s["device"]["goals"].items()
                )
                if s["device"].get("goals")
                else ""
            )
            if s.get("device")
            else ""
        )
    )
