"""``edge-sed demo``: the README's main job end to end on the built-in synthetic data.

synthesise -> split by group (training split at 2:2:1:26) -> log-mel PNG -> train the stateful
streaming LSTM (one step per front-end frame, state carried; train.stateful) with weighted-ce
and with clustered -> convert both runs to the stateful levels (fp32, int8, int16x8) -> report
(stream evaluation, host latency, the simulators' device estimates) -> print the headline
table (event F1, false alarms per hour, onset latency first).

The stages are ``STAGES`` (name, heading, finished?, run), run in order by ``run_demo``.
Resumable: a finished stage is not redone (data with its metadata.csv, a run with its
metrics.json, a conversion with its convert-report.json); an interrupted training resumes from
its checkpoint. ``--fresh`` starts over. Stage timings go to ``<out>/demo.json``.
train/, convert/ and firmware_sim/ are imported only here, when the demo runs (they need the
train/convert/sim extras), by name through ``_extra``: the demo is, like the CLI's commands, an
orchestrator of the host packages; no other edge_sed module loads them.
"""

from __future__ import annotations

import importlib
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from edge_sed.core.atomic import write_json
from edge_sed.core.errors import EdgeSedError, install_extra
from edge_sed.core.settings import LABELS, STATEFUL_LEVELS, TRAIN_SYNTH_COUNTS

OBJECTIVES = ("weighted-ce", "clustered")
LEVELS = STATEFUL_LEVELS  # every level the stateful form converts to
SPLIT_RATIO = "2:2:1:26"  # the full demo's training split (dog:baby_cry:gunshot:background)


@dataclass(frozen=True)
class DemoSize:
    counts: dict
    train: dict  # overrides of the stateful form's defaults (train.trainer.stateful_config)
    levels: tuple  # convert levels
    stream_s: float
    stream_events: int
    latency_rounds: int


FULL = DemoSize(
    counts=dict(zip(LABELS, (int(n) for n in TRAIN_SYNTH_COUNTS.split(":")))),
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


@dataclass
class Demo:
    """What the stages share: the settings, the output folders, and what earlier stages found."""

    out: Path
    seed: int
    quick: bool
    size: DemoSize
    profiles: str
    say: Callable
    bar: Callable
    trainer: Any  # train.trainer
    bundles: Any  # convert.bundles
    counts: dict = field(default_factory=dict)  # clips per split and label (the split stage)
    report: dict = field(default_factory=dict)  # report.json's content (the report stage)

    @property
    def splits_dir(self) -> Path:
        return self.out / "splits"

    @property
    def png(self) -> Path:
        return self.out / "logmel-examples.png"

    @property
    def runs(self) -> dict:
        return {o: self.out / "runs" / o for o in OBJECTIVES}

    @property
    def bundle_dirs(self) -> dict:
        return {o: self.out / "bundles" / o for o in OBJECTIVES}

    @property
    def levels(self) -> list:
        return self.bundles.parse_levels(",".join(self.size.levels))


@dataclass(frozen=True)
class Stage:
    """One step of the demo. ``heading`` gives the lines said before it; ``finished`` says its
    outputs are already there (then it is skipped with ``skip_note``); ``run`` does it and returns
    the note said after its time."""

    name: str
    heading: Callable[[Demo], list]
    run: Callable[[Demo], str]
    finished: Callable[[Demo], bool] = lambda demo: False
    skip_note: str = ""


def _synthesise_heading(d: Demo) -> list:
    total = sum(d.size.counts.values())
    counts = ":".join(str(d.size.counts[label]) for label in LABELS)
    return [f"[1/6] synthesising {total} clips ({counts}) into {d.out / 'synth'}"]


def _synthesise(d: Demo) -> str:
    from edge_sed.data.synth import write_dataset

    with d.bar("synthesising", sum(d.size.counts.values())) as advance:
        write_dataset(d.out / "synth", d.size.counts, seed=d.seed, progress=advance)
    return ""


def _split_heading(d: Demo) -> list:
    ratio = f"; training split at {SPLIT_RATIO}" if not d.quick else ""
    return [f"[2/6] splitting by recording group{ratio}; drawing log-mel examples"]


def _split(d: Demo) -> str:
    """Split by group (reusing written splits) and draw the log-mel PNG (unless there); always
    counts the clips."""
    from edge_sed.data.datasets import class_stats, load_clips, parse_ratio, prepare_splits, write_split_csv
    from edge_sed.report.plots import plot_log_mel_examples

    names = ("train", "val", "test")
    if not all((d.splits_dir / f"{s}.csv").exists() for s in names):
        ratio = None if d.quick else parse_ratio(SPLIT_RATIO)
        splits = prepare_splits(load_clips(d.out / "synth" / "metadata.csv"), ratio=ratio, seed=d.seed)
        for name, split in splits.items():
            write_split_csv(split, d.splits_dir / f"{name}.csv")
    else:
        splits = {s: load_clips(d.splits_dir / f"{s}.csv") for s in names}
    if not d.png.exists():
        plot_log_mel_examples(splits["train"], d.png, examples_per_class=3, seed=d.seed)
    d.counts = {n: {l: st["clips"] for l, st in class_stats(sp).items()} for n, sp in splits.items()}
    for name, c in d.counts.items():
        d.say(f"    {name:<6}" + "  ".join(f"{l}={c.get(l, 0)}" for l in LABELS))
    return ""


def _train_stage(k: int, objective: str) -> Stage:
    def heading(d: Demo) -> list:
        return [
            f"[3/6] training the stateful LSTM with {objective} on mixtures ({k}/{len(OBJECTIVES)}) "
            f"-> {d.runs[objective]}"
        ]

    def run(d: Demo) -> str:
        run_dir = d.runs[objective]
        cfg = d.trainer.stateful_config(
            data=str(d.splits_dir), out=str(run_dir), objective=objective, seed=d.seed, **d.size.train
        )

        def on_epoch(info):
            if info.get("val_event_f1") is not None and info["epoch"] % 5 == 0:
                d.say(
                    f"    epoch {info['epoch']:>3} ({info['stage']}): val event F1 {info['val_event_f1']:.3f}"
                )

        with d.bar(f"training {objective}", 1) as advance:
            resume = (run_dir / "checkpoint.pt").exists()
            m = d.trainer.train(cfg, resume=resume, on_epoch=on_epoch, on_batch=advance)
        return (
            f" ({m['epochs_run']} epochs, best {m['best_epoch']}; val event F1 "
            f"{m['val_stream']['f1']:.3f}, test streams {m['test_stream']['f1']:.3f})"
        )

    def trained(d: Demo) -> bool:
        return (d.runs[objective] / "metrics.json").exists()

    return Stage(f"train {objective}", heading, run, trained, " (already trained)")


def _convert_stage(k: int, objective: str) -> Stage:
    def heading(d: Demo) -> list:
        return [
            f"[4/6] converting the {objective} run to {len(d.levels)} stateful TFLite levels "
            f"({k}/{len(OBJECTIVES)}) -> {d.bundle_dirs[objective]}"
        ]

    def converted(d: Demo) -> bool:
        target = d.bundle_dirs[objective]
        report_path = target / "convert-report.json"
        return report_path.exists() and all(
            (target / n).exists() or n in _not_ok(report_path) for n in d.levels
        )

    def run(d: Demo) -> str:
        def on_level(result):
            if result.status == "ok":
                s = result.summary()
                d.say(
                    f"    {result.name:<8} {s['model_bytes'] / 1024:7.1f} kB  test streams: event F1 "
                    f"{s['event_f1']:.3f}, {s['false_alarms_per_hour']:.0f} false alarms/h"
                )
            else:
                d.say(f"    {result.name:<18} {result.status}: {result.reason}")

        with d.bar(f"converting {objective}", 1) as advance:
            d.bundles.convert_run(
                d.runs[objective], d.bundle_dirs[objective], d.levels, on_level=on_level, progress=advance
            )
        return ""

    return Stage(f"convert {objective}", heading, run, converted, " (already converted)")


def _report_heading(d: Demo) -> list:
    return [
        "[5/6] report: stream evaluation (device loop on LiteRT), host latency, device simulators",
        "[6/6]   ... and rendering report.md / report.html / report.json",
    ]


def _report(d: Demo) -> str:
    from edge_sed.report.build import build_report

    report_sim = _extra("firmware_sim.report_sim", "sim")
    with d.bar("report: streams", 1) as advance:
        d.report = build_report(
            list(d.bundle_dirs.values()),
            d.out / "report",
            profiles=d.profiles,
            runs=list(d.runs.values()),
            stream_s=d.size.stream_s,
            stream_events=d.size.stream_events,
            latency_rounds=d.size.latency_rounds,
            say=lambda m: d.say(f"    {m}"),
            progress=advance,
            simulator=report_sim.SIMULATOR,
        )
    return ""


STAGES = [
    Stage(
        "synthesise",
        _synthesise_heading,
        _synthesise,
        lambda d: (d.out / "synth" / "metadata.csv").exists(),
        " (already there)",
    ),
    Stage("split", _split_heading, _split),
    *(_train_stage(k, o) for k, o in enumerate(OBJECTIVES, 1)),
    *(_convert_stage(k, o) for k, o in enumerate(OBJECTIVES, 1)),
    Stage("report", _report_heading, _report),
]
"""The demo, in order: a stage whose outputs are there is skipped (the split and the report always run)."""


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
    from edge_sed.report.render import headline_markdown

    out = Path(out_dir)
    if fresh and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()  # importing torch and TensorFlow is part of the demo's time
    d = Demo(
        out=out,
        seed=seed,
        quick=quick,
        size=QUICK if quick else FULL,
        profiles=profiles,
        say=say,
        bar=bar or (lambda description, total: nullcontext(lambda d, t: None)),
        trainer=_extra("train.trainer", "train"),
        bundles=_extra("convert.bundles", "convert"),
    )
    timings = {}
    for stage in STAGES:
        for line in stage.heading(d):
            say(line)
        timings[stage.name] = -time.perf_counter()
        note = stage.skip_note if stage.finished(d) else stage.run(d)
        timings[stage.name] += time.perf_counter()
        say(f"    {stage.name}: {timings[stage.name]:.1f} s{note}")
    summary = {
        "out": str(out),
        "quick": quick,
        "seed": seed,
        "splits": d.counts,
        "logmel_png": str(d.png),
        "runs": {o: str(r) for o, r in d.runs.items()},
        "bundles": {o: str(b) for o, b in d.bundle_dirs.items()},
        "report": {k: str(out / "report" / f"report.{k}") for k in ("md", "html", "json")},
        "stage_seconds": {k: round(v, 1) for k, v in timings.items()},
        "seconds": round(time.perf_counter() - started, 1),
        "headline": headline_markdown(d.report),
    }
    write_json(summary, out / "demo.json")
    return summary


def _not_ok(report_path: Path) -> set:
    import json

    return {
        lv["name"] for lv in json.loads(report_path.read_text()).get("levels", []) if lv["status"] != "ok"
    }
