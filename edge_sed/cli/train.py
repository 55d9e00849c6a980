"""`edge-sed train` and `edge-sed experiments`. Their training options are made from the fields of
edge_sed.config.TrainConfig (config_options): each default and help text is written once, there."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import click

from edge_sed.cli.common import FiniteFloat, _emit_json, _import_extra, progress_bar
from edge_sed.config import STATEFUL_DEFAULTS, TrainConfig


def _shown(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _config_option(f: dataclasses.Field, unset: bool, help_text: str | None, stateful: dict):
    meta = f.metadata
    text = help_text or meta["help"]
    flag = f"--{f.name.replace('_', '-')}"
    if f.type == "bool":
        return click.option(flag, f.name, is_flag=True, help=text)
    if "choices" in meta:
        kind = click.Choice(meta["choices"])
    elif f.type == "int":
        kind = click.IntRange(*meta["range"])
    elif f.type == "float":
        kind = FiniteFloat(*meta["range"], min_open=meta.get("min_open", False))
    else:
        kind = None  # text
    other = stateful.get(f.name, f.default)
    also = f"; stateful: {_shown(other)}" if other != f.default else ""
    if unset:
        text += f" Default: {_shown(f.default)}{also}."
    elif also:
        text += f" Stateful default: {_shown(other)}."
    return click.option(
        flag, f.name, type=kind, default=None if unset else f.default, show_default=not unset, help=text
    )


def config_options(cls, names, unset: bool = False, help: dict | None = None, stateful=STATEFUL_DEFAULTS):
    """click options for the fields ``names`` of the dataclass ``cls``, in that order: --name-with-dashes,
    the field's help text and default; an int or float field takes its metadata's ``range`` (a float
    FiniteFloat), ``choices`` a click.Choice, a bool is a flag. A ``stateful`` default that differs is
    said in the help. ``unset``: the option's default is None (the field's own, or the stateful form's,
    applies when the command makes its config), and the help says both. ``help`` replaces fields' help
    texts for one command."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    options = [_config_option(fields[name], unset, (help or {}).get(name), stateful) for name in names]

    def decorate(fn):
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


STATEFUL_OPTIONS = (
    "hidden",
    "context_frames",
    "conv_channels",
    "compression",
    "frame_stride",
    "hard_negatives",
    "freq_mask",
    "bed_aux",
    "dropout",
    "ema",
    "sequences",
    "seq_s",
    "val_streams",
)
"""Options both commands leave unset by default: the form decides (TrainConfig's or STATEFUL_DEFAULTS)."""


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


def _epoch_line(info: dict) -> str:
    val = info.get("val_balanced_accuracy")
    f1 = info.get("val_event_f1")
    loss = "-" if info["loss"] is None else f"{info['loss']:.4f}"
    return (
        f"epoch {info['epoch']:>3} {info['stage']:<8} loss {loss}"
        + (f"  val balanced acc {val:.3f}" if val is not None else "")
        + (
            f"  val event F1 {f1:.3f} ({info['val_false_alarms_per_hour']:.0f} false alarms/h)"
            if f1 is not None
            else ""
        )
    )


def _train_summary(cfg, metrics: dict) -> str:
    if cfg.form == "stateful":
        v, t = metrics["val_stream"], metrics["test_stream"]
        return (
            f"{cfg.model} stateful {cfg.objective} seed {cfg.seed}: val streams event F1 {v['f1']:.3f}, "
            f"test streams event F1 {t['f1']:.3f} ({t['false_alarms_per_hour']:.0f} false alarms/h; per "
            "class "
            + ", ".join(f"{k} {c['f1']:.2f}" for k, c in t["per_class"].items())
            + f"), thresholds {metrics['smoother']['thresholds']}, best epoch {metrics['best_epoch']}, "
            f"{metrics['train_seconds']:.0f} s -> {cfg.out}"
        )
    test = metrics["test"]
    return (
        f"{cfg.model} {cfg.objective} seed {cfg.seed}: test overall error {test['overall_error']:.3f} "
        f"(per class "
        + ", ".join(f"{k} {v:.2f}" for k, v in test["per_class_error"].items() if v is not None)
        + f"), macro-F1 {test['macro_f1']:.3f}, best epoch {metrics['best_epoch']}, "
        f"{metrics['train_seconds']:.0f} s -> {cfg.out}"
    )


@click.command(context_settings={"max_content_width": 100})
@click.option(
    "--data",
    "data_path",
    type=click.Path(exists=True),
    help="A data set (metadata.csv, "
    "UrbanSound8K, ESC-50, class folders) or a folder of train/val/test.csv from `data prepare`.",
)
@click.option("--synthetic", is_flag=True, help="Use the built-in synthetic set (made once, cached).")
@config_options(TrainConfig, ["synth_counts", "model", "objective", "ratio", "seed"])
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Run directory.")
@config_options(
    TrainConfig,
    ["epochs", "stage1_epochs", "patience", "batch_size", "lr", "finetune_lr", "freeze_embedding"]
    + ["stage2_embedding_weight"],
)
@click.option(
    "--param",
    "params",
    multiple=True,
    help="Objective parameter NAME=VALUE (repeatable), "
    "e.g. margin=0.5, momentum=0.9, stage1_sampling=cluster-balanced, gamma=2, tau=1.",
)
@config_options(TrainConfig, ["mix_background", "gain_db", "form"])
@config_options(TrainConfig, [*STATEFUL_OPTIONS, "lr_schedule"], unset=True)
@config_options(TrainConfig, ["threads"])
@click.option("--resume", is_flag=True, help="Continue an interrupted run from its last checkpoint.")
@click.option("--json", "as_json", is_flag=True, help="Print metrics.json at the end.")
@click.pass_context
def train(ctx, data_path, synthetic, out_dir, params, resume, as_json, **options):
    """Train the LSTM (or CNN) on imbalanced data with one objective; writes config.json,
    metrics.json, best.pt, checkpoint.pt, history.json and PNGs into the run directory."""
    if bool(data_path) == synthetic:
        raise click.UsageError("give exactly one of --data PATH or --synthetic")
    trainer = _import_extra("train.trainer", "train")
    from edge_sed.config import from_options

    # the stateful form has its own defaults (STATEFUL_DEFAULTS): options left at their default give way
    given = [k for k in ctx.params if ctx.get_parameter_source(k) is not click.core.ParameterSource.DEFAULT]
    ratio = options.pop("ratio")
    values = {k: v for k, v in options.items() if v is not None}  # unset: the field's default
    data = "synthetic" if synthetic else str(data_path)
    values.update(data=data, out=out_dir, ratio=None if ratio.lower() == "none" else ratio)
    cfg = from_options({**values, "objective_params": _parse_params(params)}, given)
    _check_stateful_options(cfg)
    try:
        trainer.make_objective(cfg.objective, [1, 1, 1, 1], embed_dim=cfg.embed_dim, **cfg.objective_params)
    except (ValueError, TypeError) as exc:
        raise click.UsageError(str(exc))

    def on_epoch(info):
        if not as_json:
            click.echo(_epoch_line(info), err=True)

    with progress_bar("epoch", 1, enabled=not as_json) as advance:
        metrics = trainer.train(cfg, resume=resume, on_epoch=on_epoch, on_batch=advance)
    if as_json:
        _emit_json(metrics)
    else:
        click.echo(_train_summary(cfg, metrics))


@click.command(context_settings={"max_content_width": 100})
@click.option("--data", "data_path", type=click.Path(exists=True), help="A data set (as for train).")
@click.option("--synthetic", is_flag=True, help="Use the built-in synthetic set (one per seed, cached).")
@config_options(TrainConfig, ["synth_counts"])
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
@config_options(TrainConfig, ["epochs"], unset=True)
@config_options(TrainConfig, ["stage1_epochs"])
@config_options(TrainConfig, ["patience"], unset=True)
@config_options(
    TrainConfig,
    ["form"],
    help={
        "form": "windowed: clip/window error table; stateful: the streaming detector, event-level table, "
        "trained with the stateful defaults (edge_sed.config.STATEFUL_DEFAULTS, said with each option) "
        "unless an option here says otherwise."
    },
)
@config_options(TrainConfig, STATEFUL_OPTIONS, unset=True)
@click.option(
    "--test-streams",
    default=0,
    show_default=True,
    type=click.IntRange(0, 1000),
    help="stateful: re-score each run's best checkpoint on this many 60 s test streams (0: the run's own).",
)
@config_options(TrainConfig, ["lr_schedule", "frame_targets"], unset=True)
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
    models,
    ratios,
    objectives,
    seeds,
    workers,
    test_streams,
    out_dir,
    as_json,
    **options,
):
    """The paper's table: every (model, ratio, objective, seed), paired by seed, each objective
    against weighted-ce per clip (primary) and per window; with --form stateful, the streaming
    detector's event F1, false alarms/h and latency on test streams. Finished runs are skipped,
    so an interrupted table resumes."""
    if bool(data_path) == synthetic:
        raise click.UsageError("give exactly one of --data PATH or --synthetic")
    experiments_mod = _import_extra("train.experiments", "train")
    try:
        grid = experiments_mod.plan(models, ratios, objectives, seeds)
    except ValueError as exc:
        raise click.UsageError(str(exc))
    with progress_bar("runs", math.prod(map(len, grid.values())), enabled=not as_json) as advance:
        table = experiments_mod.run_table(
            "synthetic" if synthetic else str(data_path),
            **grid,
            out_dir=out_dir,
            workers=workers,
            progress=advance,
            test_streams=test_streams,
            **{k: v for k, v in options.items() if v is not None},  # unset: the form's default
        )
    if as_json:
        _emit_json(table)
        return
    click.echo(experiments_mod.table_markdown(table))
    click.echo(f"{table['runs']} runs in {table['wall_seconds']:.0f} s -> {Path(out_dir) / 'table.md'}")
