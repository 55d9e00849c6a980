"""One report: accuracy and latency per quantization level and per device.

``build_report(bundles, out)`` runs the report's three stages: collect (edge_sed.report.collect:
the convert outputs, the stream and host measurements, the simulator's device estimates), tables
(edge_sed.report.tables: summary rows, the training comparison, every table) and render
(edge_sed.report.render, with the PNGs of edge_sed.report.plots: report.json, report.md and a
self-contained report.html). Several model directories of one objective (seeds) are shown as
mean ± standard deviation over them, with n.

Device estimates need a simulator, passed in: ``firmware_sim.report_sim.SIMULATOR`` (the CLI's
``report`` command and the demo give it). Without one the report says there are none.
"""

from __future__ import annotations

import time
from pathlib import Path

from edge_sed.eval.bench import machine
from edge_sed.report.collect import (
    MEAS,
    NO_DEVICES,
    STREAM_EVENTS,
    STREAM_S,
    device_estimates,
    find_model_sets,
    host_device,
    measure_host,
    measure_streams,
    set_record,
    size_curve,
    variant_labels,
)
from edge_sed.report.render import write_report
from edge_sed.report.tables import attach_accuracy, summarise, training_comparison

REPORT_FORMAT = 1
TITLE = "edge-sed report: accuracy and latency per quantization level and device"
METRICS_NOTE = (
    "window level (one 1 s window per test clip, as scored at conversion): per-class error = 1 - recall, "
    "overall error = mean of the per-class errors, macro-F1, on the run's test split (LiteRT, at "
    "conversion). Stream level: event F1 and error rate, DCASE 2017 task 2 onset collar 0.5 s + 1 s "
    "causal delay; onset latency = decision time - reference onset. Host latency: measured. Device "
    "figures: ESTIMATES from firmware_sim."
)


def build_report(
    bundles,
    out,
    data: str | None = None,
    profiles: str = "all",
    runs=(),
    stream_s: float = STREAM_S,
    stream_events: int = STREAM_EVENTS,
    latency_rounds: int = 30,
    plots: bool = True,
    say=None,
    progress=None,
    pi_levels=None,
    simulator=None,
) -> dict:
    """Collect, measure, render. Returns report.json's content; writes report.json/.md/.html
    and the plots into ``out``. ``simulator`` gives the device estimates of ``profiles`` (see the
    module doc); ``pi_levels``: the levels emulated on Pi profiles (None: the simulator's default)."""
    say = say or (lambda *a: None)
    out = Path(out)
    meas_dir = out / MEAS
    meas_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    devices_too = profiles not in NO_DEVICES
    sets = find_model_sets(bundles)
    if devices_too and simulator:
        simulator.profiles(profiles)  # an unknown profile fails now, not after the streams
    say(f"{len(sets)} model set(s): " + ", ".join(f"{s.name} ({s.objective}, seed {s.seed})" for s in sets))

    variant = variant_labels(sets)
    records = [set_record(s, variant[s.name]) for s in sets]  # clip-level accuracy (manifests)
    streams = measure_streams(sets, records, data, meas_dir, stream_s, stream_events, say, progress)
    first = sets[0]
    host, host_path = measure_host(first, meas_dir, latency_rounds, say)
    devices = [host_device(first, host, host_path, records[0])]
    if devices_too:
        devices += device_estimates(first, streams, profiles, meas_dir, say, pi_levels, simulator)
    curve = None
    if devices_too and len(set(variant.values())) > 1:  # sets differ in size or rate
        first_mcu = [d for d in devices if d["kind"] == "mcu"]
        curve = size_curve(sets, variant, streams, first_mcu, profiles, meas_dir, say, simulator)

    report = {
        "format": REPORT_FORMAT,
        "title": TITLE,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": host["machine"] if host else machine(),
        "metrics_note": METRICS_NOTE,
        "model_sets": records,
        "streams": {
            k: {kk: vv for kk, vv in v.items() if kk not in ("audio", "annotations")}
            for k, v in streams.items()
        },
        "host_latency": {"source": str(host_path), **host} if host else None,
        "devices": devices,
        "training": training_comparison(runs) if runs else None,
    }
    report["summary"] = summarise(report)
    if curve:
        report["size_curve"] = attach_accuracy(curve, report["summary"])
    report["seconds"] = round(time.perf_counter() - started, 1)
    write_report(report, out, plots=plots)
    return report
