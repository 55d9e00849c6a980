"""`edge-sed convert` in words: a run converted level by level (convert.bundles.convert_run), what
each level became said as it finishes, the closing line, and the error when a level failed."""

from __future__ import annotations

from pathlib import Path

from convert.bundles import convert_run, parse_levels
from edge_sed.core.errors import EdgeSedError

__all__ = ["convert", "failed_error", "level_lines", "parse_levels", "summary_line"]


def level_lines(result) -> list[str]:
    """What one level's LevelResult says: its size and accuracy against torch, its ops, the
    tflite-micro comparison of an MCU bundle, notes and warnings (or why it was not made)."""
    if result.status != "ok":
        return [f"{result.name:<18} {result.status.upper()}: {result.reason}"]
    s = result.summary()
    vs = s["vs_torch"]
    if s["form"] == "stateful":
        lat = s["latency_median_s"]
        lines = [
            f"{result.name:<18} {s['model_bytes'] / 1024:7.1f} kB  event F1 {s['event_f1']:.3f} "
            f"(torch {s['torch']['event_f1']:.3f}), {s['false_alarms_per_hour']:.0f} false alarms/h, "
            "median "
            f"latency {'-' if lat is None else f'{lat:.2f} s'} on the test streams; max |dp| vs torch "
            f"{vs['max_abs_prob_diff']:.2g}"
        ]
    else:
        lines = [
            f"{result.name:<18} {s['model_bytes'] / 1024:7.1f} kB  overall error "
            f"{s['overall_error']:.3f} "
            f"(torch {s['overall_error'] - vs['overall_error_diff']:.3f}, diff "
            f"{vs['overall_error_diff']:+.3f}; "
            f"agreement {vs['prediction_agreement']:.3f}, max |dp| {vs['max_abs_prob_diff']:.2g})"
        ]
    lines.append(f"{'':<18} ops: " + ", ".join(f"{k}x{v}" for k, v in s["ops"].items()))
    if s.get("tflm"):
        t = s["tflm"]
        v, r = t["vs_litert"], t.get("vs_litert_reference_kernels")
        lines.append(
            f"{'':<18} tflite-micro: arena {t['arena_bytes']} B (min {t['arena_min_bytes']} + margin); "
            f"vs LiteRT max |dp| {v['max_abs_prob_diff']:.2g} ({v['max_output_steps']} output steps), "
            f"{v['identical_windows']:.0%} of {v['windows']} "
            f"{'frames' if s['form'] == 'stateful' else 'windows'} "
            f"identical, argmax agreement {v['argmax_agreement']:.3f}"
            + (
                f" (vs LiteRT reference kernels: max |dp| {r['max_abs_prob_diff']:.2g}, "
                f"{r['identical_windows']:.0%} identical)"
                if r
                else ""
            )
        )
    lines += [f"{'':<18} note: {note}" for note in s.get("notes") or []]
    lines += [f"{'':<18} WARNING: {warning}" for warning in s.get("warnings") or []]
    return lines


def convert(run_dir, out_dir, levels, data=None, say=print, log=None, progress=None) -> dict:
    """convert_run, each level's lines through ``say`` as it finishes; returns the report."""

    def on_level(result):
        for line in level_lines(result):
            say(line)

    return convert_run(run_dir, out_dir, levels, data=data, log=log, on_level=on_level, progress=progress)


def summary_line(report: dict, out_dir) -> str:
    """How many bundles were written, on what they were measured, and where the report is."""
    ok = sum(l["status"] == "ok" for l in report["levels"])
    measured = (
        f"{report['test_events']} events in {report['test_seconds'] / 60:.0f} min of test streams"
        if report["form"] == "stateful"
        else f"torch test overall error {report['torch']['overall_error']:.3f} on "
        f"{report['test_windows']} windows"
    )
    return (
        f"{ok} of {len(report['levels'])} bundles written to {out_dir} in {report['seconds']:.0f} s "
        f"({measured}; Keras port max |dp| {report['keras_vs_torch_max_abs']:.1e}); report: "
        f"{Path(out_dir) / 'convert-report.json'}"
    )


def failed_error(report: dict) -> EdgeSedError | None:
    """The error to exit with when a level failed (an unsupported level is not a failure)."""
    failed = [l["name"] for l in report["levels"] if l["status"] == "failed"]
    if failed:
        return EdgeSedError(
            f"conversion failed for {', '.join(failed)} (reasons above / in convert-report.json)"
        )
    return None
