"""`edge-sed data`: make, read, split and inspect data sets."""

from __future__ import annotations

import math
import time
from pathlib import Path

import click

from edge_sed.cli.common import (
    MAX_EVENTS,
    MAX_STREAM_S,
    SEED,
    FiniteFloat,
    _emit_json,
    check_audio_files,
    check_stream_memory,
    progress_bar,
)
from edge_sed.core.settings import LABELS


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


@click.group()
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
