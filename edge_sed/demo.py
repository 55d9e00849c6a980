"""``edge-sed demo``: the README's main job end to end on the built-in synthetic data.

synthesise -> split by group (training split at 2:2:1:26) -> log-mel PNG -> train the stateful
streaming LSTM (one step per front-end frame, state carried; train.stateful) with weighted-ce
and with clustered -> convert both runs to the stateful levels (fp32, int8, int16x8) -> report
(stream evaluation, host latency, the simulators' device estimates) -> print the headline
table (event F1, false alarms per hour, onset latency first).

Resumable: a finished stage is not redone (data with its metadata.csv, a run with its
metrics.json, a conversion with its convert-report.json); an interrupted training resumes from
its checkpoint. ``--fresh`` starts over. Stage timings go to ``<out>/demo.json``.
train/ and convert/ are imported only here, when the demo runs (they need the train/convert
extras); edge_sed itself never imports them at module level.
"""

from __future__ import annotations

import importlib
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from edge_sed.core.atomic import write_json
from edge_sed.core.errors import EdgeSedError, install_extra
from edge_sed.core.settings import LABELS

OBJECTIVES = ("weighted-ce", "clustered")
LEVELS = ("fp32", "int8", "int16x8")  # every level the stateful form converts to


@dataclass(frozen=True)
class DemoSize:
    counts: dict
    train: dict  # overrides of the stateful form's defaults (train.trainer.stateful_config)
    levels: tuple  # convert levels
    stream_s: float
    stream_events: int
    latency_rounds: int


FULL = DemoSize(
    counts={"dog": 120, "baby_cry": 120, "gunshot": 60, "background": 1560},
    train={
        "epochs": 30,
        "stage1_epochs": 4,
        "frame_targets": "span",
        "events_per_min": 36.0,
        "bed_dbfs": (-50.0, -20.0),
        "threads": 1,
    },
    levels=LEVELS,
    stream_s=240.0,
    stream_events=40,
    latency_rounds=30,
)
"""Overrides of train.trainer.STATEFUL_DEFAULTS, chosen on the synthetic validation streams (never
the test streams; README, "Two commands"); the defaults' lr 2e-3 and 48 conv channels did as well
as 3e-3 and 64. 30 epochs fit the demo's time (45 were no better); 36 events a minute learn much
faster than 12 or 24 (more event frames per mixture); beds up to -20 dBFS, not -10, because a
louder bed leaves an impulse no headroom and the mixer then keeps the annotation of an inaudible
event; whole-span frame targets beat the loud-blocks-only default on these synthetic events; 4
stage-1 epochs of clustered did as well as 10. One torch thread: the LSTM is small, and with two
OpenMP threads on two busy cores an epoch took 30 s to 2 minutes instead of 7 s (threads waiting at
barriers for each other)."""
QUICK = DemoSize(
    counts={"dog": 12, "baby_cry": 12, "gunshot": 12, "background": 36},
    train={
        "epochs": 2,
        "stage1_epochs": 1,
        "patience": 50,
        "sequences": 16,
        "seq_s": 6.0,
        "batch_size": 8,
        "hidden": 8,
        "embed_dim": 4,
        "context_frames": 3,
        "conv_channels": 6,
        "frame_stride": 2,
        "lr": 1e-2,
        "frame_targets": "span",
        "val_streams": 1,
        "val_stream_s": 20.0,
        "ratio": None,
        "threads": 1,
    },
    levels=LEVELS,
    stream_s=40.0,
    stream_events=6,
    latency_rounds=3,
)
"""A smoke-test size: the same stages on 72 clips and an 8-unit stateful LSTM (about two minutes)."""


def _extra(module: str, extra: str):
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise EdgeSedError(f"the demo needs the '{extra}' extra ({exc}): {install_extra(extra)}") from None


def run_demo(
    out_dir,
    seed: int = 0,
    quick: bool = False,
    fresh: bool = False,
    profiles: str = "all",
    say=print,
    bar=None,
) -> dict:
    """Run (or resume) the demo into ``out_dir``; returns demo.json's content. ``bar(description,
    total)`` is a context manager yielding ``advance(done, total)`` (the CLI's progress bar)."""
    from contextlib import nullcontext

    from edge_sed.data.datasets import class_stats, load_clips, parse_ratio, prepare_splits, write_split_csv
    from edge_sed.report.plots import plot_log_mel_examples
    from edge_sed.report.build import build_report, headline_markdown
    from edge_sed.data.synth import write_dataset

    bar = bar or (lambda description, total: nullcontext(lambda d, t: None))
    size = QUICK if quick else FULL
    out = Path(out_dir)
    if fresh and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()  # importing torch and TensorFlow is part of the demo's time
    trainer = _extra("train.trainer", "train")
    bundles_mod = _extra("convert.bundles", "convert")
    timings = {}

    def stage(name):
        timings[name] = -time.perf_counter()
        return name

    def done(name, note=""):
        timings[name] += time.perf_counter()
        say(f"    {name}: {timings[name]:.1f} s{note}")

    total = sum(size.counts.values())
    csv_path = out / "synth" / "metadata.csv"
    say(
        f"[1/6] synthesising {total} clips ({':'.join(str(size.counts[l]) for l in LABELS)}) "
        f"into {out / 'synth'}"
    )
    stage("synthesise")
    if csv_path.exists():
        done("synthesise", " (already there)")
    else:
        with bar("synthesising", total) as advance:
            write_dataset(out / "synth", size.counts, seed=seed, progress=advance)
        done("synthesise")

    ratio = "2:2:1:26" if not quick else None
    say(
        "[2/6] splitting by recording group"
        + (f"; training split at {ratio}" if ratio else "")
        + "; drawing log-mel examples"
    )
    stage("split")
    splits_dir = out / "splits"
    if not all((splits_dir / f"{s}.csv").exists() for s in ("train", "val", "test")):
        splits = prepare_splits(load_clips(csv_path), ratio=parse_ratio(ratio) if ratio else None, seed=seed)
        for name, split in splits.items():
            write_split_csv(split, splits_dir / f"{name}.csv")
    else:
        splits = {s: load_clips(splits_dir / f"{s}.csv") for s in ("train", "val", "test")}
    png = out / "logmel-examples.png"
    if not png.exists():
        plot_log_mel_examples(splits["train"], png, examples_per_class=3, seed=seed)
    counts = {n: {l: st["clips"] for l, st in class_stats(sp).items()} for n, sp in splits.items()}
    for name, c in counts.items():
        say(f"    {name:<6}" + "  ".join(f"{l}={c.get(l, 0)}" for l in LABELS))
    done("split")

    runs = {}
    for k, objective in enumerate(OBJECTIVES, 1):
        run = out / "runs" / objective
        say(f"[3/6] training the stateful LSTM with {objective} on mixtures ({k}/{len(OBJECTIVES)}) -> {run}")
        stage(f"train {objective}")
        if (run / "metrics.json").exists():
            done(f"train {objective}", " (already trained)")
        else:
            cfg = trainer.stateful_config(
                data=str(splits_dir), out=str(run), objective=objective, seed=seed, **size.train
            )

            def on_epoch(info):
                if info.get("val_event_f1") is not None and info["epoch"] % 5 == 0:
                    say(
                        f"    epoch {info['epoch']:>3} ({info['stage']}): "
                        f"val event F1 {info['val_event_f1']:.3f}"
                    )

            with bar(f"training {objective}", 1) as advance:
                m = trainer.train(
                    cfg, resume=(run / "checkpoint.pt").exists(), on_epoch=on_epoch, on_batch=advance
                )
            done(
                f"train {objective}",
                f" ({m['epochs_run']} epochs, best {m['best_epoch']}; val event F1 "
                f"{m['val_stream']['f1']:.3f}, test streams {m['test_stream']['f1']:.3f})",
            )
        runs[objective] = run

    bundle_dirs = {}
    levels = bundles_mod.parse_levels(",".join(size.levels))
    for k, (objective, run) in enumerate(runs.items(), 1):
        target = out / "bundles" / objective
        say(
            f"[4/6] converting the {objective} run to {len(levels)} stateful TFLite levels ({k}/{len(runs)}) "
            f"-> {target}"
        )
        stage(f"convert {objective}")
        report_path = target / "convert-report.json"
        if report_path.exists() and all((target / n).exists() or n in _not_ok(report_path) for n in levels):
            done(f"convert {objective}", " (already converted)")
        else:

            def on_level(result):
                if result.status == "ok":
                    s = result.summary()
                    say(
                        f"    {result.name:<8} {s['model_bytes'] / 1024:7.1f} kB  test streams: event F1 "
                        f"{s['event_f1']:.3f}, {s['false_alarms_per_hour']:.0f} false alarms/h"
                    )
                else:
                    say(f"    {result.name:<18} {result.status}: {result.reason}")

            with bar(f"converting {objective}", 1) as advance:
                bundles_mod.convert_run(run, target, levels, on_level=on_level, progress=advance)
            done(f"convert {objective}")
        bundle_dirs[objective] = target

    say("[5/6] report: stream evaluation (device loop on LiteRT), host latency, device simulators")
    say("[6/6]   ... and rendering report.md / report.html / report.json")
    stage("report")
    with bar("report: streams", 1) as advance:
        report = build_report(
            list(bundle_dirs.values()),
            out / "report",
            profiles=profiles,
            runs=list(runs.values()),
            stream_s=size.stream_s,
            stream_events=size.stream_events,
            latency_rounds=size.latency_rounds,
            say=lambda m: say(f"    {m}"),
            progress=advance,
        )
    done("report")
    summary = {
        "out": str(out),
        "quick": quick,
        "seed": seed,
        "splits": counts,
        "logmel_png": str(png),
        "runs": {o: str(r) for o, r in runs.items()},
        "bundles": {o: str(b) for o, b in bundle_dirs.items()},
        "report": {k: str(out / "report" / f"report.{k}") for k in ("md", "html", "json")},
        "stage_seconds": {k: round(v, 1) for k, v in timings.items()},
        "seconds": round(time.perf_counter() - started, 1),
        "headline": headline_markdown(report),
    }
    write_json(summary, out / "demo.json")
    return summary


def _not_ok(report_path: Path) -> set:
    import json

    return {
        lv["name"] for lv in json.loads(report_path.read_text()).get("levels", []) if lv["status"] != "ok"
    }
