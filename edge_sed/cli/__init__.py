"""The ``edge-sed`` command line.

Each subcommand imports what it needs when it runs, so ``edge-sed --help`` and the on-device
commands never load torch or TensorFlow. Errors a user can act on print one line and exit
non-zero (EdgeSedError.exit_code).
"""

from __future__ import annotations

import dataclasses
import errno
import itertools
import json
import math
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import click

from edge_sed import __version__
from edge_sed.core.errors import EdgeSedError, install_extra, printable
from edge_sed.core.settings import LABELS, MAX_EPOCHS, MAX_SEED, SAMPLE_RATE, TRAIN_SYNTH_COUNTS

MAX_STREAM_S = 24 * 3600.0
"""A built stream is held in memory whole: a day at most (and what this machine's memory allows)."""
STREAM_BYTES_PER_SAMPLE = 16
"""Peak memory of building a stream, per sample (the float32 bed, its pieces and the events)."""
MAX_LISTEN_S = 366 * 24 * 3600.0
SEED = click.IntRange(0, MAX_SEED)
"""Every --seed (a negative one was an internal error in numpy)."""
EPOCHS = click.IntRange(1, MAX_EPOCHS)
"""--epochs, --stage1-epochs, --patience (0 epochs trained nothing and then failed on the missing best.pt)."""
MAX_EVENTS = 100_000
"""Most events one stream may be asked to hold (--min-gap 0 would place them all)."""
MAX_ROUNDS = 10_000
"""Most latency-measurement rounds (each times 10 calls of every level)."""


class FiniteFloat(click.FloatRange):
    """click.FloatRange without NaN and infinities (FloatRange lets "nan" through: every
    comparison with NaN is False). Every float option of the CLI uses it."""

    name = "finite float"

    def convert(self, value, param, ctx):
        value = super().convert(value, param, ctx)
        if not math.isfinite(value):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return value


def _available_memory_bytes() -> int | None:
    """MemAvailable of /proc/meminfo (Linux), else None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_stream_memory(duration_s: float, option: str = "--duration") -> None:
    """EdgeSedError when building a ``duration_s`` stream would not fit in the memory available."""
    need = duration_s * SAMPLE_RATE * STREAM_BYTES_PER_SAMPLE
    free = _available_memory_bytes()
    if free is not None and need > free:
        raise EdgeSedError(
            f"{option} {duration_s:g}: building the stream needs about {need / 1024**3:.1f} GB of "
            f"memory, {free / 1024**3:.1f} GB is available; make a shorter stream"
        )


@contextmanager
def progress_bar(description: str, total: int, enabled: bool = True):
    """A rich progress bar on stderr when it is a terminal; yields ``advance(n_done, n_total)``
    for the worker. Logs and pipes get no bar (the command's summary line says what it did)."""
    if not (enabled and sys.stderr.isatty()):
        yield lambda done, total_: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=False,
    ) as progress:
        task = progress.add_task(description, total=total)
        yield lambda done, total_: progress.update(task, completed=done, total=total_)


def _emit_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2, default=str))


def _counts_from_option(counts: str | None, total: int | None, ratio: str | None) -> dict:
    from edge_sed.data.datasets import parse_ratio
    from edge_sed.data.synth import DEFAULT_COUNTS

    if counts and (total or ratio):
        raise click.UsageError("give --counts, or --total with --ratio, not both")
    if counts:
        parsed = parse_ratio(counts)
        bad = [k for k, v in parsed.items() if v != int(v)]
        if bad:
            raise click.UsageError(f"--counts must be whole numbers (got {counts})")
        return {k: int(v) for k, v in parsed.items()}
    if total or ratio:
        weights = parse_ratio(ratio or "1:1:1:1")
        total = total or sum(DEFAULT_COUNTS.values())
        s = sum(weights.values())
        return {k: int(round(total * w / s)) for k, w in weights.items()}
    return dict(DEFAULT_COUNTS)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="edge-sed")
def cli():
    """edge-sed: detect rare sound events (dog bark, baby cry, gunshot) on Raspberry Pi boards
    and microcontrollers.

    Pipeline: data -> train -> convert -> simulate -> report; listen runs the device loop on
    a microphone. Every command has --help.
    """


# ---------------------------------------------------------------------------------- data


@cli.group()
def data():
    """Make, read, split and inspect data sets (synthetic, metadata.csv, UrbanSound8K, ESC-50,
    class folders)."""


@data.command("synth")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write audio/<label>/*.flac and metadata.csv into.",
)
@click.option(
    "--counts",
    help="Clips per class: 60:60:60:120 (label order "
    f"{':'.join(LABELS)}) or dog=60,background=120. Default 60:60:60:120.",
)
@click.option("--total", type=click.IntRange(1), help="Total clips, split by --ratio.")
@click.option("--ratio", help="Class ratio for --total, e.g. 2:2:1:26.")
@click.option("--seed", default=0, show_default=True, type=SEED, help="Same seed, same files.")
@click.option(
    "--clip-s", default=2.0, show_default=True, type=FiniteFloat(1.0, 60.0), help="Clip length in seconds."
)
@click.option("--format", "fmt", type=click.Choice(["flac", "wav"]), default="flac", show_default=True)
@click.option("--workers", type=click.IntRange(1), help="Processes (default: every core).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
def data_synth(out_dir, counts, total, ratio, seed, clip_s, fmt, workers, as_json):
    """Write the built-in synthetic data set: procedurally varied barks, cries and gunshots
    mixed into varied backgrounds at -6/0/+6 dB, deterministic by seed."""
    from edge_sed.data.synth import write_dataset

    counts = _counts_from_option(counts, total, ratio)
    start = time.perf_counter()
    with progress_bar("synthesising", sum(counts.values()), enabled=not as_json) as advance:
        csv_path = write_dataset(
            out_dir, counts, seed=seed, clip_s=clip_s, fmt=fmt, workers=workers, progress=advance
        )
    summary = {
        "metadata": str(csv_path),
        "counts": counts,
        "seed": seed,
        "seconds": round(time.perf_counter() - start, 2),
    }
    if as_json:
        _emit_json(summary)
    else:
        click.echo(
            f"wrote {sum(counts.values())} clips ({counts}) to {csv_path} in {summary['seconds']:.1f} s"
        )


@data.command("prepare")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for train.csv, val.csv, test.csv.",
)
@click.option(
    "--ratio",
    help="Class ratio imposed by subsampling, e.g. 2:2:1:26 or dog=2,baby_cry=2,gunshot=1,background=26.",
)
@click.option(
    "--ratio-on",
    type=click.Choice(["train", "all"]),
    default="train",
    show_default=True,
    help="Subsample only the training split (val/test keep every clip; the metrics are "
    "per class) or every split.",
)
@click.option(
    "--split",
    "fractions",
    default="0.7,0.15,0.15",
    show_default=True,
    help="train,val,test fractions (of groups, per class).",
)
@click.option("--seed", default=0, show_default=True, type=SEED)
@click.option("--no-check", is_flag=True, help="Do not decode every file (faster, trusts the data).")
@click.option("--json", "as_json", is_flag=True, help="Print per-split counts as JSON.")
def data_prepare(source, out_dir, ratio, ratio_on, fractions, seed, no_check, as_json):
    """Split a data set by recording group (no group in two splits) and impose a class ratio.

    SOURCE is a metadata.csv (or its folder), an UrbanSound8K or ESC-50 root, or a folder of
    class folders."""
    from edge_sed.data.datasets import class_stats, load_clips, parse_ratio, prepare_splits, write_splits

    try:
        fracs = tuple(float(x) for x in fractions.split(","))
    except ValueError:
        raise click.UsageError(f"--split wants three numbers like 0.7,0.15,0.15, got {fractions}")
    if len(fracs) != 3 or any(f < 0 for f in fracs) or abs(sum(fracs) - 1) > 1e-6:
        raise click.UsageError(f"--split wants three non-negative fractions summing to 1, got {fractions}")
    clips = load_clips(source)
    if not no_check:  # a corrupt, empty or NaN file is found now, not half-way through training
        check_audio_files([c.path for c in clips], progress=not as_json)
    splits = prepare_splits(
        clips,
        ratio=parse_ratio(ratio) if ratio else None,
        fractions=fracs,
        seed=seed,
        ratio_splits=("train", "val", "test") if ratio_on == "all" else ("train",),
    )
    report = {
        name: {label: s["clips"] for label, s in class_stats(split).items()} for name, split in splits.items()
    }
    write_splits(splits, out_dir)  # all three or none (a full disk leaves an older set whole)
    if as_json:
        _emit_json({"source": str(source), "ratio": ratio, "seed": seed, "splits": report})
        return
    click.echo(f"{len(clips)} clips from {source}; ratio {ratio or 'as found'} on {ratio_on}; seed {seed}")
    click.echo(f"{'split':<7}" + "".join(f"{label:>12}" for label in LABELS) + f"{'total':>8}")
    for name, counts in report.items():
        click.echo(
            f"{name:<7}" + "".join(f"{counts.get(l, 0):>12}" for l in LABELS) + f"{sum(counts.values()):>8}"
        )
    click.echo(f"wrote {', '.join(str(out_dir / f'{n}.csv') for n in report)}")


@data.command("stats")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--png",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to draw log-mel examples per class (default: ./logmel-<name>.png).",
)
@click.option(
    "--examples",
    default=3,
    show_default=True,
    type=click.IntRange(1, 10),
    help="Examples per class in the PNG.",
)
@click.option("--no-png", is_flag=True, help="Counts only.")
@click.option("--seed", default=0, show_default=True, type=SEED, help="Which examples are drawn.")
@click.option("--no-check", is_flag=True, help="Do not decode every file (faster, trusts the data).")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
def data_stats(source, png, examples, no_png, seed, no_check, as_json):
    """Per-class clip counts, groups and durations of a data set, and a PNG of log-mel
    examples per class (the 1 s windows a model is trained on).

    Every file is decoded first, so a corrupt, truncated or NaN file is found now, not
    half-way through training."""
    from edge_sed.data.datasets import class_stats, load_clips

    clips = load_clips(source)
    if not no_check:
        check_audio_files([c.path for c in clips], progress=not as_json)
    stats = class_stats(clips)
    if not no_png:
        png = png or Path(
            f"logmel-{source.resolve().stem if source.is_file() else source.resolve().name}.png"
        )
        from edge_sed.report.plots import plot_log_mel_examples

        plot_log_mel_examples(clips, png, examples_per_class=examples, seed=seed)
    if as_json:
        _emit_json({"source": str(source), "classes": stats, "png": None if no_png else str(png)})
        return
    click.echo(f"{source}: {len(clips)} clips")
    click.echo(f"{'class':<12}{'clips':>8}{'groups':>8}{'hours':>8}{'mean s':>8}")
    for label, s in stats.items():
        mean = s["duration_s"] / s["clips"] if s["clips"] else 0.0
        click.echo(f"{label:<12}{s['clips']:>8}{s['groups']:>8}{s['duration_s'] / 3600:>8.3f}{mean:>8.2f}")
    if not no_png:
        click.echo(f"log-mel examples: {png}")


@data.command("stream")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--out",
    "out_wav",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The stream (.wav or .flac); its annotations go beside it as <stem>.csv (onset_s,offset_s,label).",
)
@click.option(
    "--duration",
    "duration_s",
    default=120.0,
    show_default=True,
    type=FiniteFloat(5, MAX_STREAM_S),
    help="Seconds of stream.",
)
@click.option(
    "--events",
    "n_events",
    default=20,
    show_default=True,
    type=click.IntRange(0, MAX_EVENTS),
    help="Events placed (event classes in turn).",
)
@click.option(
    "--ebr-db",
    default=6.0,
    show_default=True,
    type=FiniteFloat(-60, 60),
    help="Event-to-background ratio of each event (dB).",
)
@click.option(
    "--min-gap",
    "min_gap_s",
    default=3.0,
    show_default=True,
    type=FiniteFloat(0, 3600),
    help="Least seconds between two event onsets.",
)
@click.option("--seed", default=0, show_default=True, type=SEED)
@click.option("--json", "as_json", is_flag=True, help="Print the annotations as JSON.")
def data_stream(source, out_wav, duration_s, n_events, ebr_db, min_gap_s, seed, as_json):
    """A labelled stream (DCASE 2017 task 2 style): event clips of SOURCE (a split CSV or data
    set) placed at known onsets on its background clips, for `edge-sed listen --file` and the
    simulators."""
    from edge_sed.data.streams import make_stream, write_stream

    check_stream_memory(duration_s)
    audio, annotations = make_stream(
        source, duration_s, n_events, seed=seed, ebr_db=ebr_db, min_gap_s=min_gap_s
    )
    csv_path = write_stream(out_wav, audio, annotations)
    if as_json:
        _emit_json(
            {"audio": str(out_wav), "annotations": str(csv_path), "events": [a.__dict__ for a in annotations]}
        )
        return
    click.echo(
        f"wrote {duration_s:g} s with {len(annotations)} events to {out_wav} (annotations: {csv_path})"
    )


@data.command("mix")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the streams: mix-000.wav + mix-000.csv, ...",
)
@click.option(
    "--split",
    type=click.Choice(["train", "val", "test"]),
    default="test",
    show_default=True,
    help="Whose recordings (groups) the streams are made of.",
)
@click.option(
    "--seed",
    default=0,
    show_default=True,
    type=SEED,
    help="The split's seed (as train --seed) and the mixing seed.",
)
@click.option("--streams", "count", default=10, show_default=True, type=click.IntRange(1, 10_000))
@click.option(
    "--seconds", default=60.0, show_default=True, type=FiniteFloat(10, 3600), help="Length of each stream."
)
@click.option("--events-per-min", default=8.0, show_default=True, type=FiniteFloat(0.1, 20))
@click.option(
    "--ebr-db",
    default="-6,0,6",
    show_default=True,
    help="Event-to-background ratios (dB), one drawn per event.",
)
@click.option(
    "--bed-dbfs",
    default="-40:-25",
    show_default=True,
    help="Background level range (dBFS RMS), one level per recording.",
)
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
def data_mix(source, out_dir, split, seed, count, seconds, events_per_min, ebr_db, bed_dbfs, as_json):
    """Labelled test streams, DCASE 2017 task 2 style (edge_sed.data.mixer): the active spans of SOURCE's
    event clips of one split laid on beds of that split's background recordings, at EBRs drawn
    from --ebr-db and bed levels over --bed-dbfs; annotations carry each event's EBR and bed level
    for `edge-sed evaluate`."""
    from edge_sed.data.mixer import Banks, evaluation_streams, split_clips
    from edge_sed.data.streams import write_stream

    try:
        ebrs = [float(v) for v in ebr_db.split(",")]
        lo, hi = (float(v) for v in bed_dbfs.split(":"))
    except ValueError:
        raise click.UsageError(
            "--ebr-db takes numbers like -6,0,6 and --bed-dbfs a range like -40:-25"
        ) from None
    if not all(math.isfinite(v) and -40 <= v <= 40 for v in ebrs) or not (-90 <= lo <= hi <= 0):
        raise click.UsageError(
            "--ebr-db values must be within -40..40 dB and --bed-dbfs lo:hi within -90..0 dBFS"
        )
    banks = Banks(split_clips(source, seed)[split])
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    streams = evaluation_streams(banks, seed, count, seconds, events_per_min, ebrs, (lo, hi))
    for n, (audio, ann, _) in enumerate(streams):
        wav = out_dir / f"mix-{n:03d}.wav"
        write_stream(wav, audio, ann)
        written.append({"audio": str(wav), "events": len(ann)})
    if as_json:
        _emit_json({"split": split, "seed": seed, "streams": written})
        return
    click.echo(
        f"wrote {count} streams of {seconds:g} s ({sum(w['events'] for w in written)} events) of the {split} "
        f"split to {out_dir}"
    )


def check_audio_files(paths, progress: bool = True) -> None:
    """Decode every file; one AudioError naming how many are unusable and the first reason."""
    from edge_sed.core.audio_io import read_audio
    from edge_sed.core.errors import AudioError

    bad = []
    with progress_bar("checking audio", len(paths), enabled=progress) as advance:
        for i, path in enumerate(paths, 1):
            try:
                read_audio(path)
            except AudioError as exc:
                bad.append(str(exc))
            advance(i, len(paths))
    if bad:
        raise AudioError(f"{len(bad)} of {len(paths)} audio files are unusable; first: {bad[0]}")


def _import_extra(module: str, extra: str):
    """Import a heavy package for one subcommand, or say which extra installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise EdgeSedError(
            f"this command needs the '{extra}' extra ({exc}): {install_extra(extra)}"
        ) from None


_compression_option = click.option(
    "--compression",
    type=click.Choice(["log", "pcen"]),
    help="stateful: the front end's compression of the mel "
    "energies: log, or per-channel energy normalization (an automatic gain per band; default from "
    "train.trainer.STATEFUL_DEFAULTS).",
)
_frame_stride_option = click.option(
    "--frame-stride",
    type=click.IntRange(1, 10),
    help="stateful: the LSTM steps (and decides) every this many 10 ms "
    "frames, on the conv's last --context-frames frames (needs context >= stride; default from "
    "train.trainer.STATEFUL_DEFAULTS).",
)

_hard_negatives_option = click.option(
    "--hard-negatives",
    type=FiniteFloat(0, 1),
    help="stateful: hard-negative mining; every 5 epochs the model "
    "scores each training background recording alone, and this share of the beds is drawn where it fires "
    "(0: uniform beds; default from train.trainer.STATEFUL_DEFAULTS).",
)

_freq_mask_option = click.option(
    "--freq-mask",
    type=click.IntRange(0, 40),
    help="stateful: frequency masking, up to this many adjacent mel bands "
    "of each training mixture set to their mean (0: off; default from train.trainer.STATEFUL_DEFAULTS).",
)

_bed_aux_option = click.option(
    "--bed-aux",
    type=FiniteFloat(0, 10),
    help="stateful: weight of an auxiliary loss that names the background "
    "recording's source class (siren, street music, ...) from each background step's embedding, through a "
    "training-only head (0: off; default from train.trainer.STATEFUL_DEFAULTS).",
)

_dropout_option = click.option(
    "--dropout",
    type=FiniteFloat(0, 0.9),
    help="stateful: dropout on the conv's and the LSTM's outputs in training "
    "(0: off; default from train.trainer.STATEFUL_DEFAULTS).",
)

_ema_option = click.option(
    "--ema",
    type=FiniteFloat(0, 0.99999),
    help="stateful: validate and keep an exponential moving average of the "
    "weights, this decay per optimizer step (0: off, e.g. 0.999; default from "
    "train.trainer.STATEFUL_DEFAULTS).",
)


def _check_stateful_options(cfg) -> None:
    """Stateful-only options: PCEN, and a frame stride the model can run (the conv spanning every frame
    it skips,
    truncated-BPTT chunks a whole number of steps)."""
    for name in ("bed_aux", "freq_mask", "dropout", "ema"):
        if getattr(cfg, name) and cfg.form != "stateful":
            raise click.UsageError(f"--{name.replace('_', '-')} is for --form stateful")
    if cfg.hard_negatives and cfg.form != "stateful":
        raise click.UsageError("--hard-negatives is for --form stateful (the windowed trainer has no beds)")
    if cfg.compression != "log" and cfg.form != "stateful":
        raise click.UsageError(
            "--compression is for --form stateful (the windowed trainer's features are log-mel)"
        )
    stride = getattr(cfg, "frame_stride", 1)
    if stride == 1:
        return
    if cfg.form != "stateful":
        raise click.UsageError("--frame-stride is for --form stateful")
    if not (cfg.conv_channels and cfg.context_frames >= stride):
        raise click.UsageError(
            f"--frame-stride {stride} needs a conv over at least {stride} frames "
            f"(--context-frames {cfg.context_frames}, --conv-channels {cfg.conv_channels})"
        )
    if cfg.tbptt_frames % stride:
        raise click.UsageError(
            f"--frame-stride {stride} must divide the {cfg.tbptt_frames}-frame TBPTT chunk"
        )


def _parse_params(params) -> dict:
    out = {}
    for item in params:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.UsageError(f"--param wants NAME=VALUE, got {item!r}")
        try:
            out[key.replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            out[key.replace("-", "_")] = value
    return out


@cli.command(context_settings={"max_content_width": 100})
@click.option(
    "--data",
    "data_path",
    type=click.Path(exists=True),
    help="A data set (metadata.csv, "
    "UrbanSound8K, ESC-50, class folders) or a folder of train/val/test.csv from `data prepare`.",
)
@click.option("--synthetic", is_flag=True, help="Use the built-in synthetic set (made once, cached).")
@click.option(
    "--synth-counts",
    default=TRAIN_SYNTH_COUNTS,
    show_default=True,
    help="Clips per class of the synthetic set.",
)
@click.option("--model", type=click.Choice(["lstm", "cnn"]), default="lstm", show_default=True)
@click.option(
    "--objective",
    default="weighted-ce",
    show_default=True,
    help="weighted-ce | clustered | class-balanced | focal | logit-adjusted | oversample",
)
@click.option(
    "--ratio",
    default="2:2:1:26",
    show_default=True,
    help="Class ratio imposed on every split ('none' keeps the data's own).",
)
@click.option(
    "--seed", default=0, show_default=True, type=SEED, help="Split, subsample, init and batch order."
)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Run directory.")
@click.option(
    "--epochs", default=120, show_default=True, type=EPOCHS, help="Most epochs of the classify stage."
)
@click.option(
    "--stage1-epochs",
    default=15,
    show_default=True,
    type=EPOCHS,
    help="clustered: epochs of the embed stage.",
)
@click.option(
    "--patience", default=25, show_default=True, type=EPOCHS, help="Early stopping on val balanced accuracy."
)
@click.option(
    "--batch-size",
    default=64,
    show_default=True,
    type=click.IntRange(2),
    help="Windows (stateful: mixtures) per step; at least 2 (batch norm needs two).",
)
@click.option("--lr", default=1e-3, show_default=True, type=FiniteFloat(0, 10, min_open=True))
@click.option(
    "--finetune-lr",
    default=1e-3,
    show_default=True,
    type=FiniteFloat(0, 10),
    help="clustered stage 2: embedding net's lr.",
)
@click.option(
    "--freeze-embedding", is_flag=True, help="clustered stage 2: do not fine-tune the embedding net."
)
@click.option(
    "--stage2-embedding-weight",
    default=0.0,
    show_default=True,
    type=FiniteFloat(0, 1000),
    help="clustered stage 2: also keep this weight x the centroid loss.",
)
@click.option(
    "--param",
    "params",
    multiple=True,
    help="Objective parameter NAME=VALUE (repeatable), "
    "e.g. margin=0.5, momentum=0.9, stage1_sampling=cluster-balanced, gamma=2, tau=1.",
)
@click.option(
    "--mix-background",
    default=0.0,
    show_default=True,
    type=FiniteFloat(0, 1),
    help="Augmentation: probability an event window is laid over a random background "
    "window (EBR -3..+12 dB), as in a stream.",
)
@click.option(
    "--gain-db",
    default=0.0,
    show_default=True,
    type=FiniteFloat(0, 40),
    help="Augmentation: random gain of every window, +-this many dB.",
)
@click.option(
    "--form",
    type=click.Choice(["windowed", "stateful"]),
    default="windowed",
    show_default=True,
    help="windowed: one 1 s window per clip (the paper's protocol); stateful: the streaming detector, "
    "a per-frame LSTM with its state carried, trained on fresh audio mixtures every epoch.",
)
@click.option(
    "--hidden",
    type=click.IntRange(4, 512),
    help="LSTM units (default 64; stateful: from train.trainer.STATEFUL_DEFAULTS, 32).",
)
@click.option(
    "--context-frames",
    type=click.IntRange(1, 32),
    help="lstm: frames a causal conv before the LSTM sees (default 1: no conv; give --conv-channels too).",
)
@click.option(
    "--conv-channels",
    type=click.IntRange(0, 512),
    help="lstm: that conv's channels (default 0; stateful: from train.trainer.STATEFUL_DEFAULTS, 32).",
)
@_compression_option
@_frame_stride_option
@_hard_negatives_option
@_freq_mask_option
@_bed_aux_option
@_dropout_option
@_ema_option
@click.option(
    "--sequences", type=click.IntRange(2, 100_000), help="stateful: mixtures per epoch (default 192)."
)
@click.option(
    "--seq-s", type=FiniteFloat(2, 600), help="stateful: seconds per training mixture (default 12)."
)
@click.option(
    "--val-streams",
    type=click.IntRange(1, 1000),
    help="stateful: 60 s validation (and test) streams of the val/test groups (default 6).",
)
@click.option(
    "--lr-schedule", type=click.Choice(["constant", "cosine"]), help="Learning rate over the epochs."
)
@click.option("--threads", default=0, type=click.IntRange(0, 1024), help="torch threads (0: default).")
@click.option("--resume", is_flag=True, help="Continue an interrupted run from its last checkpoint.")
@click.option("--json", "as_json", is_flag=True, help="Print metrics.json at the end.")
@click.pass_context
def train(
    ctx,
    data_path,
    synthetic,
    synth_counts,
    model,
    objective,
    ratio,
    seed,
    out_dir,
    epochs,
    stage1_epochs,
    patience,
    batch_size,
    lr,
    finetune_lr,
    freeze_embedding,
    stage2_embedding_weight,
    params,
    mix_background,
    gain_db,
    form,
    hidden,
    context_frames,
    conv_channels,
    compression,
    frame_stride,
    hard_negatives,
    freq_mask,
    bed_aux,
    dropout,
    ema,
    sequences,
    seq_s,
    val_streams,
    lr_schedule,
    threads,
    resume,
    as_json,
):
    """Train the LSTM (or CNN) on imbalanced data with one objective; writes config.json,
    metrics.json, best.pt, checkpoint.pt, history.json and PNGs into the run directory."""
    if bool(data_path) == synthetic:
        raise click.UsageError("give exactly one of --data PATH or --synthetic")
    trainer = _import_extra("train.trainer", "train")
    # the stateful form has its own defaults (train.trainer.STATEFUL_DEFAULTS): options left at
    # their click default give way to them
    given = {
        k: v
        for k, v in ctx.params.items()
        if ctx.get_parameter_source(k) is not click.core.ParameterSource.DEFAULT
    }
    stateful_defaults = {
        k: v for k, v in trainer.STATEFUL_DEFAULTS.items() if form == "stateful" and k not in given
    }
    cfg = trainer.TrainConfig(
        data="synthetic" if synthetic else str(data_path),
        out=out_dir,
        model=model,
        objective=objective,
        ratio=None if ratio.lower() == "none" else ratio,
        seed=seed,
        synth_counts=synth_counts,
        epochs=epochs,
        stage1_epochs=stage1_epochs,
        patience=patience,
        batch_size=batch_size,
        lr=lr,
        finetune_lr=finetune_lr,
        freeze_embedding=freeze_embedding,
        threads=threads,
        stage2_embedding_weight=stage2_embedding_weight,
        mix_background=mix_background,
        gain_db=gain_db,
        objective_params=_parse_params(params),
        form=form,
        **{
            k: v
            for k, v in dict(
                hidden=hidden,
                context_frames=context_frames,
                conv_channels=conv_channels,
                compression=compression,
                frame_stride=frame_stride,
                hard_negatives=hard_negatives,
                freq_mask=freq_mask,
                bed_aux=bed_aux,
                dropout=dropout,
                ema=ema,
                sequences=sequences,
                seq_s=seq_s,
                val_streams=val_streams,
                lr_schedule=lr_schedule,
            ).items()
            if v is not None
        },
    )
    cfg = dataclasses.replace(cfg, **stateful_defaults)
    _check_stateful_options(cfg)
    try:
        trainer.make_objective(objective, [1, 1, 1, 1], embed_dim=cfg.embed_dim, **cfg.objective_params)
    except (ValueError, TypeError) as exc:
        raise click.UsageError(str(exc))

    def on_epoch(info):
        if as_json:
            return
        val = info.get("val_balanced_accuracy")
        f1 = info.get("val_event_f1")
        loss = "-" if info["loss"] is None else f"{info['loss']:.4f}"
        click.echo(
            f"epoch {info['epoch']:>3} {info['stage']:<8} loss {loss}"
            + (f"  val balanced acc {val:.3f}" if val is not None else "")
            + (
                f"  val event F1 {f1:.3f} ({info['val_false_alarms_per_hour']:.0f} false alarms/h)"
                if f1 is not None
                else ""
            ),
            err=True,
        )

    with progress_bar("epoch", 1, enabled=not as_json) as advance:
        metrics = trainer.train(cfg, resume=resume, on_epoch=on_epoch, on_batch=advance)
    if as_json:
        _emit_json(metrics)
        return
    if form == "stateful":
        v, t = metrics["val_stream"], metrics["test_stream"]
        click.echo(
            f"{model} stateful {objective} seed {seed}: val streams event F1 {v['f1']:.3f}, test streams "
            f"event F1 {t['f1']:.3f} ({t['false_alarms_per_hour']:.0f} false alarms/h; per class "
            + ", ".join(f"{k} {c['f1']:.2f}" for k, c in t["per_class"].items())
            + f"), thresholds {metrics['smoother']['thresholds']}, best epoch {metrics['best_epoch']}, "
            f"{metrics['train_seconds']:.0f} s -> {out_dir}"
        )
        return
    test = metrics["test"]
    click.echo(
        f"{model} {objective} seed {seed}: test overall error {test['overall_error']:.3f} "
        f"(per class "
        + ", ".join(f"{k} {v:.2f}" for k, v in test["per_class_error"].items() if v is not None)
        + f"), macro-F1 {test['macro_f1']:.3f}, best epoch {metrics['best_epoch']}, "
        f"{metrics['train_seconds']:.0f} s -> {out_dir}"
    )


@cli.command(context_settings={"max_content_width": 100})
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Bundles directory: one sub-directory per level, plus convert-report.json.",
)
@click.option(
    "--levels",
    default="all",
    show_default=True,
    help="all, or a comma list of fp32, fp16, dynamic-int8, int8, int16x8, fp32-streaming, "
    "int8-streaming, int16x8-streaming (the -streaming forms are LSTM only).",
)
@click.option(
    "--data",
    "data_path",
    help="Where the run's data set is now (default: the path in its "
    "config.json); the test split measures accuracy, the training split calibrates int8.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the conversion report as JSON.")
def convert(run_dir, out_dir, levels, data_path, as_json):
    """Convert a trained run to TFLite bundles, one per quantization level, each proven against
    the torch model: Keras port parity (< 1e-5) is checked first, then every bundle's accuracy on
    the test split through LiteRT; the MCU bundles (int8, int8-streaming, int16x8-streaming) also
    get a tflite-micro arena size, a TFLM-vs-LiteRT comparison and model_data.h/.cc. Levels the
    converter cannot produce are listed as unsupported with its reason. Exits 2 if any failed."""
    bundles = _import_extra("convert.bundles", "convert")
    try:
        names = bundles.parse_levels(levels)
    except ValueError as exc:
        raise click.UsageError(str(exc))
    say = (lambda *a, **k: None) if as_json else click.echo
    stage = {"name": ""}

    def log(message):
        stage["name"] = message
        if not as_json and not sys.stderr.isatty():
            click.echo(message, err=True)

    def on_level(result):
        if result.status != "ok":
            say(f"{result.name:<18} {result.status.upper()}: {result.reason}")
            return
        s = result.summary()
        vs = s["vs_torch"]
        if s["form"] == "stateful":
            lat = s["latency_median_s"]
            say(
                f"{result.name:<18} {s['model_bytes'] / 1024:7.1f} kB  event F1 {s['event_f1']:.3f} "
                f"(torch {s['torch']['event_f1']:.3f}), {s['false_alarms_per_hour']:.0f} false alarms/h, "
                "median "
                f"latency {'-' if lat is None else f'{lat:.2f} s'} on the test streams; max |dp| vs torch "
                f"{vs['max_abs_prob_diff']:.2g}"
            )
        else:
            say(
                f"{result.name:<18} {s['model_bytes'] / 1024:7.1f} kB  overall error "
                f"{s['overall_error']:.3f} "
                f"(torch {s['overall_error'] - vs['overall_error_diff']:.3f}, diff "
                f"{vs['overall_error_diff']:+.3f}; "
                f"agreement {vs['prediction_agreement']:.3f}, max |dp| {vs['max_abs_prob_diff']:.2g})"
            )
        say(f"{'':<18} ops: " + ", ".join(f"{k}x{v}" for k, v in s["ops"].items()))
        if s.get("tflm"):
            t = s["tflm"]
            v, r = t["vs_litert"], t.get("vs_litert_reference_kernels")
            say(
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
        for note in s.get("notes") or []:
            say(f"{'':<18} note: {note}")
        for warning in s.get("warnings") or []:
            say(f"{'':<18} WARNING: {warning}")

    with progress_bar("converting", 1, enabled=not as_json) as advance:
        report = bundles.convert_run(
            run_dir, out_dir, names, data=data_path, log=log, on_level=on_level, progress=advance
        )
    if as_json:
        _emit_json(report)
    else:
        ok = sum(l["status"] == "ok" for l in report["levels"])
        measured = (
            f"{report['test_events']} events in {report['test_seconds'] / 60:.0f} min of test streams"
            if report["form"] == "stateful"
            else f"torch test overall error {report['torch']['overall_error']:.3f} on "
            f"{report['test_windows']} windows"
        )
        click.echo(
            f"{ok} of {len(report['levels'])} bundles written to {out_dir} in {report['seconds']:.0f} s "
            f"({measured}; Keras port max |dp| {report['keras_vs_torch_max_abs']:.1e}); report: "
            f"{out_dir / 'convert-report.json'}"
        )
    failed = [l["name"] for l in report["levels"] if l["status"] == "failed"]
    if failed:
        raise EdgeSedError(
            f"conversion failed for {', '.join(failed)} (reasons above / in convert-report.json)"
        )


@cli.command(context_settings={"max_content_width": 100})
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


@cli.command(context_settings={"max_content_width": 100})
@click.argument(
    "bundle_path", metavar="BUNDLE", type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@click.option(
    "--data",
    "data_path",
    help="Also re-measure accuracy on a test split: a data set path, or "
    "'run' for the one recorded in the manifest's provenance (needs the data on this machine).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the verification report as JSON.")
def verify(bundle_path, data_path, as_json):
    """Re-check a bundle (or every bundle in a bundles directory): model.tflite's sha256 and size,
    the manifest's fields, the TFLite identifier and the model's inputs/outputs against the
    manifest, the operator list against the manifest's, the C array against model.tflite, the
    labels against the loaded model's outputs, and parity: the stored check windows (check.npz)
    re-run through LiteRT must match the conversion-time outputs (float levels within 1e-4,
    integer levels within 2 output steps, at least 1e-3). With --data, also the test-split
    accuracy (within 0.01 overall error of the recorded one). Needs no TensorFlow or torch."""
    from edge_sed.core.bundle import MANIFEST_FILE, load_bundle, verify_bundle

    paths = (
        [bundle_path]
        if (bundle_path / MANIFEST_FILE).exists()
        else sorted(
            p
            for p in bundle_path.iterdir()
            if p.is_dir() and (p / MANIFEST_FILE).exists() and not p.name.startswith(".")
        )
    )
    if not paths:
        raise EdgeSedError(f"{bundle_path}: no manifest.json here or in its sub-directories: not a bundle")
    reports = []
    for path in paths:
        windows = y = None
        if data_path:
            prov = load_bundle(path).manifest["provenance"]
            split = _import_extra("train.data", "train").run_test_split(
                prov, None if data_path == "run" else data_path
            )
            windows, y = split.x, split.y
        report = verify_bundle(path, windows, y)
        reports.append(report)
        if not as_json:
            line = (
                f"{printable(str(path))}: OK  {report['level']} {report['form']}, {report['model_bytes']} "
                "bytes, "
                f"sha256 ok, manifest ok (semantic sha256 ok), ops ok ({sum(report['ops'].values())} ops)"
            )
            if "c_array" in report:
                line += ", C array ok"
            if "check_windows" in report:
                line += (
                    f", {report['check_windows']} check windows within {report['tolerance']:.2g} "
                    f"(max diff {report['max_diff_vs_conversion']:.2g}; "
                    f"vs torch {report['max_diff_vs_torch']:.2g})"
                )
            if "test_windows" in report:
                line += (
                    f", test overall error {report['overall_error']:.4f} (recorded "
                    f"{report['recorded_overall_error']:.4f})"
                )
            click.echo(line)
    if as_json:
        _emit_json(reports if len(reports) > 1 else reports[0])


@cli.command(context_settings={"max_content_width": 100})
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


@cli.command("pi-shell", context_settings={"ignore_unknown_options": True, "max_content_width": 100})
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


@cli.command(context_settings={"max_content_width": 100})
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
        profile=profile,
    )


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def devices(as_json):
    """List the audio input devices PortAudio sees (for `edge-sed listen --input-device`)."""
    from edge_sed.listen.run import input_devices

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


@cli.command(context_settings={"max_content_width": 100})
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
    default="fp32,int8",
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


@cli.command(context_settings={"max_content_width": 100})
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


@cli.command(context_settings={"max_content_width": 100})
@click.option("--data", "data_path", type=click.Path(exists=True), help="A data set (as for train).")
@click.option("--synthetic", is_flag=True, help="Use the built-in synthetic set (one per seed, cached).")
@click.option(
    "--synth-counts",
    default=TRAIN_SYNTH_COUNTS,
    show_default=True,
    help="Clips per class of the synthetic set.",
)
@click.option("--models", default="lstm", show_default=True, help="Comma list: lstm,cnn.")
@click.option(
    "--ratios",
    default="6:1:2:16,2:2:1:26",
    show_default=True,
    help="Comma list of dog:baby_cry:gunshot:background ratios.",
)
@click.option("--objectives", default="all", show_default=True, help="'all' or a comma list.")
@click.option("--seeds", default="5", show_default=True, help="N (seeds 0..N-1), A-B, or a comma list.")
@click.option(
    "--workers",
    default=2,
    show_default=True,
    type=click.IntRange(1),
    help="Processes, one torch thread each.",
)
@click.option("--epochs", type=EPOCHS, help="Most epochs of the classify stage (default 120, stateful too).")
@click.option(
    "--stage1-epochs",
    default=15,
    show_default=True,
    type=EPOCHS,
    help="clustered: epochs of the embed stage.",
)
@click.option(
    "--patience",
    type=EPOCHS,
    help="Early stopping on val balanced accuracy (default 25; stateful: on val event F1, default 40).",
)
@click.option(
    "--form",
    type=click.Choice(["windowed", "stateful"]),
    default="windowed",
    show_default=True,
    help="windowed: clip/window error table; stateful: the streaming detector, event-level table, "
    "trained with train.trainer.STATEFUL_DEFAULTS unless an option here says otherwise.",
)
@click.option(
    "--hidden",
    type=click.IntRange(4, 512),
    help="LSTM units (default 64; stateful: from train.trainer.STATEFUL_DEFAULTS, 32).",
)
@click.option(
    "--context-frames",
    type=click.IntRange(1, 32),
    help="stateful lstm: frames of a causal conv before the LSTM (default 8).",
)
@click.option(
    "--conv-channels",
    type=click.IntRange(0, 512),
    help="stateful lstm: that conv's channels (default 32, train.trainer.STATEFUL_DEFAULTS; 0: no conv).",
)
@_compression_option
@_frame_stride_option
@_hard_negatives_option
@_freq_mask_option
@_bed_aux_option
@_dropout_option
@_ema_option
@click.option(
    "--sequences", type=click.IntRange(2, 100_000), help="stateful: mixtures per epoch (default 192)."
)
@click.option(
    "--seq-s", type=FiniteFloat(2, 600), help="stateful: seconds per training mixture (default 12)."
)
@click.option(
    "--val-streams",
    type=click.IntRange(1, 1000),
    help="stateful: 60 s validation (and test) streams per run (default 12).",
)
@click.option(
    "--test-streams",
    default=0,
    show_default=True,
    type=click.IntRange(0, 1000),
    help="stateful: re-score each run's best checkpoint on this many 60 s test streams (0: the run's own).",
)
@click.option(
    "--lr-schedule",
    type=click.Choice(["constant", "cosine"]),
    help="Learning rate over the epochs (default constant; stateful cosine).",
)
@click.option(
    "--frame-targets",
    type=click.Choice(["span", "active"]),
    help="stateful: frames labelled with the event: its whole span or its loud blocks only (default active).",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Run directories, table.md and table.json.",
)
@click.option("--json", "as_json", is_flag=True, help="Print table.json instead of the Markdown.")
def experiments(
    data_path,
    synthetic,
    synth_counts,
    models,
    ratios,
    objectives,
    seeds,
    workers,
    epochs,
    stage1_epochs,
    patience,
    form,
    hidden,
    context_frames,
    conv_channels,
    compression,
    frame_stride,
    hard_negatives,
    freq_mask,
    bed_aux,
    dropout,
    ema,
    sequences,
    seq_s,
    val_streams,
    test_streams,
    lr_schedule,
    frame_targets,
    out_dir,
    as_json,
):
    """The paper's table: every (model, ratio, objective, seed), paired by seed, each objective
    against weighted-ce per clip (primary) and per window; with --form stateful, the streaming
    detector's event F1, false alarms/h and latency on test streams. Finished runs are skipped,
    so an interrupted table resumes."""
    if bool(data_path) == synthetic:
        raise click.UsageError("give exactly one of --data PATH or --synthetic")
    experiments_mod = _import_extra("train.experiments", "train")

    def split(text):
        return [p.strip() for p in text.split(",") if p.strip()]

    try:
        if "," in seeds:
            seed_list = [int(s) for s in split(seeds)]
        elif "-" in seeds:
            lo, hi = (int(s) for s in seeds.split("-", 1))
            seed_list = range(lo, hi + 1)
        else:
            seed_list = range(int(seeds))
    except ValueError:
        raise click.UsageError(f"--seeds wants N, A-B or a comma list, got {seeds!r}")
    if not seed_list:
        raise click.UsageError(f"--seeds {seeds!r} names no seed")
    seed_list = list(itertools.islice(seed_list, 1001))  # a range of 10^20 seeds is not listed whole
    if len(seed_list) > 1000 or not all(0 <= s <= MAX_SEED for s in seed_list):
        raise click.UsageError(f"--seeds {seeds!r}: at most 1000 seeds, each from 0 to {MAX_SEED}")
    objective_list = list(experiments_mod.OBJECTIVES) if objectives == "all" else split(objectives)
    unknown = [o for o in objective_list if o not in experiments_mod.OBJECTIVES]
    if unknown:
        raise click.UsageError(
            f"unknown objective(s) {', '.join(unknown)}; choose from {', '.join(experiments_mod.OBJECTIVES)}"
        )
    model_list = split(models)
    if not model_list or any(m not in ("lstm", "cnn") for m in model_list):
        raise click.UsageError(f"--models wants lstm and/or cnn, got {models!r}")
    ratio_list = split(ratios)
    from edge_sed.data.datasets import parse_ratio

    for r in ratio_list:
        parse_ratio(r)  # a bad ratio fails now, not in a worker
    with progress_bar(
        "runs", len(model_list) * len(ratio_list) * len(objective_list) * len(seed_list), enabled=not as_json
    ) as advance:
        table = experiments_mod.run_table(
            "synthetic" if synthetic else str(data_path),
            models=model_list,
            ratios=ratio_list,
            objectives=objective_list,
            seeds=seed_list,
            out_dir=out_dir,
            workers=workers,
            epochs=epochs,
            progress=advance,
            stage1_epochs=stage1_epochs,
            synth_counts=synth_counts,
            form=form,
            test_streams=test_streams,
            **{
                k: v
                for k, v in dict(
                    patience=patience,
                    hidden=hidden,
                    context_frames=context_frames,
                    conv_channels=conv_channels,
                    compression=compression,
                    frame_stride=frame_stride,
                    hard_negatives=hard_negatives,
                    freq_mask=freq_mask,
                    bed_aux=bed_aux,
                    dropout=dropout,
                    ema=ema,
                    sequences=sequences,
                    seq_s=seq_s,
                    val_streams=val_streams,
                    lr_schedule=lr_schedule,
                    frame_targets=frame_targets,
                ).items()
                if v is not None
            },
        )
    if as_json:
        _emit_json(table)
        return
    click.echo(experiments_mod.table_markdown(table))
    click.echo(f"{table['runs']} runs in {table['wall_seconds']:.0f} s -> {Path(out_dir) / 'table.md'}")


@cli.command(context_settings={"max_content_width": 100})
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


# ------------------------------------------------------------------------------ deploy


@cli.command(context_settings={"max_content_width": 100})
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


# ------------------------------------------------------------------------- entry point


def _disk_full(exc: BaseException) -> OSError | None:
    """The OSError ENOSPC / EDQUOT behind ``exc`` (itself, its cause or its context), if any."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def main(argv=None) -> int:
    """Console-script entry: one-line errors, never a traceback for a user's mistake. Messages
    are printed with control characters escaped (a label or path can hold any)."""
    try:
        cli.main(args=argv, prog_name="edge-sed", standalone_mode=False)
        return 0
    except EdgeSedError as exc:
        click.echo(f"error: {printable(str(exc))}", err=True)
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.UsageError as exc:  # a bad option or argument: one line too, with where to read more
        where = exc.ctx.command_path if exc.ctx else "edge-sed"
        click.echo(f"error: {printable(exc.format_message())} (see {where} --help)", err=True)
        return exc.exit_code
    except click.ClickException as exc:
        exc.message = printable(exc.message)
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    except BrokenPipeError:
        return 141
    except Exception as exc:  # a bug in edge-sed: still one line, with a way to see more
        full = _disk_full(exc)
        if full is not None:
            where = f"{full.filename}: " if full.filename else ""
            _echo_error(f"error: disk full: {printable(where + (full.strerror or str(full)))}")
            return 2
        if os.environ.get("EDGE_SED_DEBUG"):
            raise
        click.echo(
            f"internal error: {type(exc).__name__}: {printable(str(exc))} "
            "(set EDGE_SED_DEBUG=1 for the traceback, and please report it)",
            err=True,
        )
        return 1


def _echo_error(line: str) -> None:
    try:
        click.echo(line, err=True)
    except OSError:  # stderr on the full disk too
        pass
