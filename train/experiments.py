"""The paper's table: every objective against ``weighted-ce``, paired over seeds, per clip and
per window.

    table = run_table("/path/to/data", ratios=("6:1:2:16", "2:2:1:26"), out_dir="out/table")

Runs. For one (model, ratio, seed) every objective sees the same split, subsample, windows and
initialisation (TrainConfig.seed), so objective differences are paired by seed. The splits are
loaded once per (model, ratio, seed) task and handed to ``train(splits=...)`` for every
objective. Tasks run in ``workers`` processes, one torch thread each. Every run writes
``out_dir/runs/{model}-{ratio, ':' -> '_'}-{objective}-s{seed}``; a run whose ``metrics.json``
exists is not trained again (a killed table resumes; a run killed mid-training continues from
its checkpoint), and a run directory whose config.json differs from the requested one is an
error rather than silently mixed into the table.

Two levels of metrics (edge_sed.core.metrics.classification_metrics):
- window (secondary): the test windows the trainer evaluates, one per clip by the project's
  clip-to-window policy (event windows centred on the energy peak);
- clip (primary): the whole test clip, as a device listening to it would see it. It is cut
  into 1 s windows with a 0.5 s hop from its start; when the hop does not land on the clip's
  end, one more window ends exactly at it, so every sample is covered. A clip of 1 s or less
  is one window, padded as ``clip_to_window`` pads it (centred, whatever the label).
  Decision rule ("any window fires"): the clip is an event if any of its windows' argmax is
  an event class; then it takes the event class with the highest single-window probability
  among those windows; otherwise it is background.

Table, per (model, ratio) and level: per-class and overall error (1 - recall; overall = mean
over classes) as mean ± sd over seeds; for every objective against weighted-ce, per seed
d = err_wce - err_obj (positive: the objective makes fewer errors), the mean relative error
reduction mean(d / err_wce), a 95 % t-interval of the paired mean of d (n - 1 degrees of
freedom), and in how many seeds the objective beat weighted-ce; plus training time per run.

The stateful form (``form="stateful"``, train.stateful): every cell is a streaming detector
trained on mixtures; its run directory's metrics.json holds the event metrics of the test and
validation streams (the val streams also calibrated its thresholds, so val F1 is optimistic).
``stream_metrics.json`` is written beside it: the test-stream metrics of metrics.json or, with
``test_streams`` N, of the best checkpoint re-scored with the run's thresholds on N test
streams (the same generator, so the first ``val_streams`` of them are the run's own). Table,
per (model, ratio): test-stream event F1 (primary), false alarms per hour, median onset
latency, per-class event F1, val-stream event F1, mean ± sd over seeds; for every objective
against weighted-ce, per seed d = F1_obj - F1_wce (positive: the objective is better), the
mean relative gain mean(d / F1_wce), the 95 % t-interval of the paired mean and the wins.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from edge_sed.core.atomic import write_json
from edge_sed.core.audio_io import read_audio
from edge_sed.data.datasets import clip_to_window
from edge_sed.core.errors import EdgeSedError
from edge_sed.core.metrics import classification_metrics
from edge_sed.core.settings import BACKGROUND, CLIP_WINDOW_S, LABELS, SAMPLE_RATE
from edge_sed.eval.stats import fmt_stat, mean_sd

from .data import features, load_splits, synthetic_source
from .models import build_model
from .objectives import OBJECTIVES
from .trainer import STATEFUL_DEFAULTS, TrainConfig, predict, train

BASELINE = "weighted-ce"
HOP_S = 0.5

# Two-sided 95 % Student t quantiles t_{0.975, df} for df = 1..30 (standard tables; checked
# against scipy.stats.t.ppf in the tests); beyond 30 the normal 1.960, at most 4 % narrow (df 31).
# A table has a handful of seeds, and train/ need not depend on scipy for 30 numbers.
T_975 = (
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
)


def t_975(df: int) -> float:
    return T_975[df - 1] if df <= len(T_975) else 1.960


# ---------------------------------------------------------------- per-clip evaluation


def clip_windows(
    audio: np.ndarray,
    label: str,
    key: str,
    seed: int = 0,
    window_s: float = CLIP_WINDOW_S,
    hop_s: float = HOP_S,
) -> np.ndarray:
    """(W, samples) windows covering a whole clip (rule in the module docstring)."""
    n, hop = int(round(window_s * SAMPLE_RATE)), int(round(hop_s * SAMPLE_RATE))
    if len(audio) <= n:  # one window, padded by the training policy (centred)
        return clip_to_window(audio, label, seed, key, window_s)[None]
    starts = list(range(0, len(audio) - n + 1, hop))
    if starts[-1] + n < len(audio):
        starts.append(len(audio) - n)
    return np.stack([audio[s : s + n] for s in starts]).astype(np.float32)


def clip_decision(probs: np.ndarray, background: int = LABELS.index(BACKGROUND)) -> int:
    """One clip's class from its windows' probabilities (W, C): "any window fires"."""
    fired = probs.argmax(1) != background
    if not fired.any():
        return background
    events = [c for c in range(probs.shape[1]) if c != background]
    sub = probs[fired][:, events]  # fired windows x event classes
    return events[int(np.unravel_index(sub.argmax(), sub.shape)[1])]


def clip_window_features(split, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Log-mel of every window of every test clip, and the clip index of each window."""
    feats, owner = [], []
    for i, (path, y) in enumerate(zip(split.paths, split.y)):
        w = clip_windows(read_audio(path), LABELS[y], Path(path).name, seed)
        feats.append(features(w))
        owner += [i] * len(w)
    return np.concatenate(feats), np.asarray(owner)


def load_best(cfg: TrainConfig, n_mels: int):
    """The run's best checkpoint in the network the trainer built (windowed or stateful)."""
    stateful = (
        {"context_frames": cfg.context_frames, "conv_channels": cfg.conv_channels, "stride": cfg.frame_stride}
        if cfg.form == "stateful"
        else {}
    )
    model = build_model(
        cfg.model,
        n_mels=n_mels,
        embed_dim=cfg.embed_dim,
        num_classes=len(LABELS),
        **({"hidden": cfg.hidden, **stateful} if cfg.model == "lstm" else {}),
    )
    model.load_state_dict(torch.load(Path(cfg.out) / "best.pt", weights_only=True))
    return model


def clip_metrics(model, split, windows: np.ndarray, owner: np.ndarray) -> dict:
    probs, _ = predict(model, windows)
    pred = [clip_decision(probs[owner == i]) for i in range(len(split.y))]
    return classification_metrics(split.y, pred)


# ---------------------------------------------------------------- runs


def run_name(model: str, ratio: str, objective: str, seed: int) -> str:
    return f"{model}-{ratio.replace(':', '_')}-{objective}-s{seed}"


def _done(run: Path) -> bool:
    return (run / "clip_metrics.json").exists() or (run / "stream_metrics.json").exists()


def _check_config(cfg: TrainConfig) -> None:
    """A run directory left by different settings must not be mixed into this table."""
    path = Path(cfg.out) / "config.json"
    if path.exists():
        saved, wanted = json.loads(path.read_text()), json.loads(json.dumps(asdict(cfg)))
        # a setting added after the run was made is the default it then had implicitly
        defaults = json.loads(json.dumps(asdict(TrainConfig())))
        diff = sorted(k for k in wanted if saved.get(k, defaults[k]) != wanted[k])
        if diff:
            raise EdgeSedError(
                f"{cfg.out} was run with other settings ({', '.join(diff)}); use another --out or delete it"
            )


def run_task(task: dict, on_run=None) -> dict:
    """Every objective of one (model, ratio, seed), on splits loaded once. Returns timings."""
    torch.set_num_threads(1)  # one process per core; more threads only fight each other
    cfgs = [
        TrainConfig(
            **task["config"],
            objective=o,
            out=str(
                Path(task["out_dir"])
                / "runs"
                / run_name(task["config"]["model"], task["config"]["ratio"], o, task["config"]["seed"])
            ),
        )
        for o in task["objectives"]
    ]
    for cfg in cfgs:
        _check_config(cfg)
    if task["config"]["form"] == "stateful":
        return _run_stateful(cfgs, task.get("test_streams", 0), on_run)
    todo = [cfg for cfg in cfgs if not _done(Path(cfg.out))]
    if not todo:  # resuming a finished task: do not even read the data
        return {"load_seconds": 0.0}
    t0 = time.perf_counter()
    c = task["config"]
    splits = load_splits(c["data"], c["ratio"], c["seed"], c["synth_counts"])
    windows, owner = clip_window_features(splits["test"], c["seed"])
    load_seconds = time.perf_counter() - t0
    for cfg in todo:
        # CPU time as well as wall time: one thread per process, so CPU seconds are what the run
        # costs, whatever else the machine is doing (wall time inflates under other load)
        t, cpu = time.perf_counter(), time.process_time()
        out = Path(cfg.out)
        if (out / "metrics.json").exists():  # trained, killed before the clip metrics
            window = json.loads((out / "metrics.json").read_text())["test"]
        else:
            window = train(cfg, resume=True, splits=splits)["test"]  # resume: a no-op without a checkpoint
        model = load_best(cfg, splits["test"].x.shape[2])
        write_json(
            {
                "clip": clip_metrics(model, splits["test"], windows, owner),
                "window": window,
                "test_clips": len(splits["test"].y),
                "test_clip_windows": len(windows),
                "run_seconds": round(time.perf_counter() - t, 2),
                "run_cpu_seconds": round(time.process_time() - cpu, 2),
            },
            out / "clip_metrics.json",
        )
        if on_run:
            on_run()
    return {"load_seconds": round(load_seconds, 2)}


def rescore_test_streams(cfg: TrainConfig, count: int) -> dict:
    """A stateful run's best checkpoint and calibrated thresholds on ``count`` test streams,
    made as train_stateful makes its own (test groups, seed + 1, ``val_stream_s`` each)."""
    from edge_sed.core.frontend import FrontendConfig
    from edge_sed.data.mixer import Banks

    from .stateful import clip_splits, eval_streams, scored_streams, stream_summary

    metrics = json.loads((Path(cfg.out) / "metrics.json").read_text())
    streams = eval_streams(
        Banks(clip_splits(cfg)["test"]),
        cfg.seed + 1,
        count,
        cfg.val_stream_s,
        FrontendConfig(compression=cfg.compression),
        cfg.feature_norm,
    )
    model = load_best(cfg, streams[0][0].shape[-1])
    return stream_summary(
        scored_streams(model, streams), metrics["smoother"]["thresholds"], getattr(model, "stride", 1)
    )


def _run_stateful(cfgs: list[TrainConfig], test_streams: int, on_run) -> dict:
    """Every objective of one (model, ratio, seed) in the stateful form (each run loads its own
    clips: train_stateful splits them). ``test_streams`` 0: the run's own test streams."""
    for cfg in cfgs:
        out = Path(cfg.out)
        path = out / "stream_metrics.json"
        if path.exists() and json.loads(path.read_text())["test_streams"] == test_streams:
            continue
        t, cpu = time.perf_counter(), time.process_time()
        if not (out / "metrics.json").exists():
            train(cfg, resume=True)  # resume: a no-op without a checkpoint
        elif path.exists():  # re-scored for another --test-streams: keep the training's cost
            old = json.loads(path.read_text())
            t, cpu = t - old["run_seconds"], cpu - old["run_cpu_seconds"]
        metrics = json.loads((out / "metrics.json").read_text())
        test = rescore_test_streams(cfg, test_streams) if test_streams else metrics["test_stream"]
        write_json(
            {
                "test_stream": test,
                "val_stream": metrics["val_stream"],
                "test_streams": test_streams,
                "test_stream_count": test_streams or cfg.val_streams,
                "test_stream_s": cfg.val_stream_s,
                "thresholds": metrics["smoother"]["thresholds"],
                "run_seconds": round(time.perf_counter() - t, 2),
                "run_cpu_seconds": round(time.process_time() - cpu, 2),
            },
            path,
        )
        if on_run:
            on_run()
    return {"load_seconds": 0.0}


# ---------------------------------------------------------------- statistics


def paired_stats(err_base, err_obj, higher_is_better: bool = False) -> dict:
    """Objective vs baseline over paired seeds. d = err_base - err_obj (positive: fewer errors).
    Relative reduction per seed d / err_base (undefined, so left out, where err_base = 0).
    ``higher_is_better`` (a score such as F1): d = obj - base, wins where obj > base."""
    base, obj = np.asarray(err_base, np.float64), np.asarray(err_obj, np.float64)
    d = obj - base if higher_is_better else base - obj
    n = len(d)
    rel = [float(x / b) for x, b in zip(d, base) if b > 0]
    out = {
        "n": n,
        "mean_diff": float(d.mean()),
        "sd_diff": float(d.std(ddof=1)) if n > 1 else None,
        "ci95": None,
        "rel_reduction": float(np.mean(rel)) if rel else None,
        "wins": int((d > 0).sum()),
        "ties": int((d == 0).sum()),
    }
    if n > 1:
        half = t_975(n - 1) * out["sd_diff"] / math.sqrt(n)
        out["ci95"] = [out["mean_diff"] - half, out["mean_diff"] + half]
    return out


def _read_runs(out_dir, model, ratio, objectives, seeds, name: str) -> dict:
    """{(objective, seed): the run's ``name`` JSON and metrics.json's training time and epochs}."""
    runs = {}
    for o in objectives:
        for s in seeds:
            run = Path(out_dir) / "runs" / run_name(model, ratio, o, s)
            m = json.loads((run / "metrics.json").read_text())
            runs[o, s] = {
                **json.loads((run / name).read_text()),
                **{k: m.get(k) for k in ("train_seconds", "best_epoch", "epochs_run")},
            }
    return runs


def _seconds(rs: list[dict]) -> dict:
    t = [r["train_seconds"] for r in rs]
    return {
        "train_mean": float(np.mean(t)),
        "train_total": float(np.sum(t)),
        "run_mean": float(np.mean([r["run_seconds"] for r in rs])),
        "run_cpu_mean": float(np.mean([r["run_cpu_seconds"] for r in rs])),
    }


def summarise(out_dir, models, ratios, objectives, seeds) -> list[dict]:
    """The table's numbers from the run directories (so a resumed table is the same table)."""
    groups = []
    for model in models:
        for ratio in ratios:
            runs = _read_runs(out_dir, model, ratio, objectives, seeds, "clip_metrics.json")
            group = {
                "model": model,
                "ratio": ratio,
                "seeds": list(seeds),
                "test_support": {
                    l: mean_sd([runs[objectives[0], s]["clip"]["support"][l] for s in seeds])["mean"]
                    for l in LABELS
                },
                "levels": {},
                "seconds": {},
            }
            for level in ("clip", "window"):
                rows = {}
                for o in objectives:
                    m = [runs[o, s][level] for s in seeds]
                    rows[o] = {
                        "per_class_error": {l: mean_sd([x["per_class_error"][l] for x in m]) for l in LABELS},
                        "overall_error": {
                            **mean_sd([x["overall_error"] for x in m]),
                            "per_seed": [x["overall_error"] for x in m],
                        },
                        "macro_f1": mean_sd([x["macro_f1"] for x in m]),
                    }
                    if BASELINE in objectives and o != BASELINE:
                        rows[o]["vs_" + BASELINE] = paired_stats(
                            [runs[BASELINE, s][level]["overall_error"] for s in seeds],
                            [x["overall_error"] for x in m],
                        )
                group["levels"][level] = rows
            for o in objectives:
                group["seconds"][o] = _seconds([runs[o, s] for s in seeds])
            groups.append(group)
    return groups


def summarise_stateful(out_dir, models, ratios, objectives, seeds) -> list[dict]:
    """The stateful table's numbers from the run directories' stream_metrics.json."""
    events = [l for l in LABELS if l != BACKGROUND]
    groups = []
    for model in models:
        for ratio in ratios:
            runs = _read_runs(out_dir, model, ratio, objectives, seeds, "stream_metrics.json")
            first = [runs[objectives[0], s] for s in seeds]
            group = {
                "model": model,
                "ratio": ratio,
                "seeds": list(seeds),
                "test_reference_events": mean_sd([r["test_stream"]["reference"] for r in first])["mean"],
                "test_hours": first[0]["test_stream_count"] * first[0]["test_stream_s"] / 3600.0,
                "rows": {},
                "seconds": {},
            }
            for o in objectives:
                rs = [runs[o, s] for s in seeds]
                test, val = [r["test_stream"] for r in rs], [r["val_stream"] for r in rs]
                row = {
                    "test_f1": {**mean_sd([t["f1"] for t in test]), "per_seed": [t["f1"] for t in test]},
                    "false_alarms_per_hour": mean_sd([t["false_alarms_per_hour"] for t in test]),
                    "latency_median_s": mean_sd([t["latency_median_s"] for t in test]),
                    "per_class_f1": {l: mean_sd([t["per_class"][l]["f1"] for t in test]) for l in events},
                    "val_f1": {**mean_sd([v["f1"] for v in val]), "per_seed": [v["f1"] for v in val]},
                    # DCASE's onset rule (runs from before it was recorded have none)
                    "test_dcase_f1": (
                        {
                            **mean_sd([t["dcase"]["f1"] for t in test]),
                            "per_seed": [t["dcase"]["f1"] for t in test],
                        }
                        if all("dcase" in t for t in test)
                        else None
                    ),
                    "best_epoch": [r["best_epoch"] for r in rs],
                    "epochs_run": [r["epochs_run"] for r in rs],
                }
                if BASELINE in objectives and o != BASELINE:
                    for suffix, key, stream in (
                        ("", "test_f1", "test_stream"),
                        ("_val", "val_f1", "val_stream"),
                    ):
                        row["vs_" + BASELINE + suffix] = paired_stats(
                            [runs[BASELINE, s][stream]["f1"] for s in seeds],
                            row[key]["per_seed"],
                            higher_is_better=True,
                        )
                    base = [runs[BASELINE, s]["test_stream"] for s in seeds]
                    if row["test_dcase_f1"] and all("dcase" in t for t in base):
                        row["vs_" + BASELINE + "_dcase"] = paired_stats(
                            [t["dcase"]["f1"] for t in base],
                            row["test_dcase_f1"]["per_seed"],
                            higher_is_better=True,
                        )
                group["rows"][o], group["seconds"][o] = row, _seconds(rs)
            groups.append(group)
    return groups


# ---------------------------------------------------------------- the table


def _pm(s: dict, digits: int = 3) -> str:
    return fmt_stat(s, digits, missing="–")


def _totals(table: dict) -> str:
    return (
        f"Total training time {table['train_seconds_total']:.0f} s (wall) and "
        f"{table['cpu_seconds_total']:.0f} s "
        f"(CPU, whole runs) over {table['runs']} runs; this invocation's wall time "
        f"{table['wall_seconds']:.0f} s with {table['settings']['workers']} workers."
    )


def _versus(p: dict | None, digits: int = 3) -> list[str]:
    """rel., Δ [95 % CI] and wins cells of a paired comparison (None: the baseline's row)."""
    if p is None:
        return ["(baseline)", "", ""]
    rel = "–" if p["rel_reduction"] is None else f"{100 * p['rel_reduction']:+.1f} %"
    ci = "" if p["ci95"] is None else f" [{p['ci95'][0]:+.{digits}f}, {p['ci95'][1]:+.{digits}f}]"
    return [rel, f"{p['mean_diff']:+.{digits}f}{ci}", f"{p['wins']}/{p['n']}"]


def stateful_markdown(table: dict) -> str:
    st = table["settings"]
    tr = st["train"]
    events = [l for l in LABELS if l != BACKGROUND]
    lines = [
        f"# Stateful streaming detector: objectives vs {BASELINE}, event level",
        "",
        f"Data `{st['data']}`; seeds {st['seeds']}; epochs {tr['epochs']} "
        f"(clustered: + {tr['stage1_epochs']} "
        f"stage-1 epochs), patience {tr['patience']}, {tr['sequences']} mixtures of "
        f"{tr['seq_s']:g} s per epoch, "
        f"batch {tr['batch_size']}, TBPTT {tr['tbptt_frames']} frames, "
        f"lr {tr['lr']:g} ({tr['lr_schedule']}), "
        f"hidden {tr['hidden']}, context frames {tr['context_frames']} / "
        f"conv channels {tr['conv_channels']}, "
        f"a step every {tr.get('frame_stride', 1)} frame(s), {tr.get('compression', 'log')} features, "
        f"hard-negative share {tr.get('hard_negatives', 0):g}, "
        f"frequency masks up to {tr.get('freq_mask', 0)} bands, "
        f"background-source loss weight {tr.get('bed_aux', 0):g}, dropout {tr.get('dropout', 0):g}, "
        f"weight average {tr.get('ema', 0):g}, "
        f"frame targets {tr['frame_targets']}; validation {tr['val_streams']} streams of "
        f"{tr['val_stream_s']:g} s "
        "(checkpoint selection and threshold calibration). "
        "Event F1: a detection of the class from 0.5 s before to 1.5 s after the reference onset counts "
        "(edge_sed.core.events with a 1 s causal delay); DCASE event F1: the strict 0.5 s collar on "
        "the event's "
        "estimated onset (`edge-sed evaluate`'s 'event' column); both pooled over the test streams "
        "(mixtures of the test groups, EBR −6/0/+6 dB), mean ± sd over seeds; false alarms per hour and "
        "median onset latency (s) of the same streams. "
        f"Δ F1 = F1(objective) − F1({BASELINE}) per seed (positive: the objective finds more), 95 % paired "
        f"t-interval; rel. = mean over seeds of Δ / F1({BASELINE}); wins = seeds with a higher test F1. "
        "Val F1 is on the streams the thresholds were calibrated on (optimistic).",
        "",
    ]
    for g in table["groups"]:
        lines += [
            f"## {g['model']} stateful, ratio {g['ratio']} (dog:baby_cry:gunshot:background)",
            "",
            f"Test streams per run: {g['test_hours'] * 60:.1f} min, {g['test_reference_events']:.0f} events "
            "(mean over seeds).",
            "",
            "| objective | test event F1 | rel. vs wce | Δ F1 [95 % CI] | wins | DCASE event F1 | Δ DCASE F1 "
            "[95 % CI] | false alarms/h | onset latency s | "
            + " | ".join(f"{l} F1" for l in events)
            + " | val event F1 | Δ val F1 [95 % CI] |",
            "|---|" + "---|" * (len(events) + 10),
        ]
        for o, r in g["rows"].items():
            vs_val, vs_dcase = r.get("vs_" + BASELINE + "_val"), r.get("vs_" + BASELINE + "_dcase")
            dcase = "–" if r.get("test_dcase_f1") is None else _pm(r["test_dcase_f1"])
            cells = (
                [_pm(r["test_f1"])]
                + _versus(r.get("vs_" + BASELINE))
                + [dcase, "" if vs_dcase is None else _versus(vs_dcase)[1]]
                + [_pm(r["false_alarms_per_hour"], 1), _pm(r["latency_median_s"], 2)]
                + [_pm(r["per_class_f1"][l]) for l in events]
                + [_pm(r["val_f1"]), "" if vs_val is None else _versus(vs_val)[1]]
            )
            lines.append(f"| {o} | " + " | ".join(cells) + " |")
        lines += [
            "",
            "Per seed, test event F1: "
            + "; ".join(
                f"{o} " + ", ".join(f"{x:.3f}" for x in r["test_f1"]["per_seed"])
                for o, r in g["rows"].items()
            )
            + ". Best epoch (clustered: counting its stage-1 epochs): "
            + "; ".join(f"{o} " + ", ".join(map(str, r["best_epoch"])) for o, r in g["rows"].items())
            + ".",
            "",
            "Seconds per run, mean over seeds, training wall time / whole run's CPU time: "
            + ", ".join(
                f"{o} {s['train_mean']:.0f} / {s['run_cpu_mean']:.0f}" for o, s in g["seconds"].items()
            ),
            "",
        ]
    return "\n".join(lines + [_totals(table)]) + "\n"


def table_markdown(table: dict) -> str:
    if table["settings"].get("form") == "stateful":
        return stateful_markdown(table)
    lines = [
        f"# Objectives vs {BASELINE}",
        "",
        f"Data `{table['settings']['data']}`; seeds {table['settings']['seeds']}; "
        f"epochs {table['settings']['train']['epochs']}, stage-1 epochs "
        f"{table['settings']['train']['stage1_epochs']}, patience {table['settings']['train']['patience']}. "
        "Error = 1 − recall on the test split, overall = mean over classes; mean ± sd over seeds. "
        f"Δ = err({BASELINE}) − err(objective) per seed (positive: fewer errors), 95 % paired "
        "t-interval; rel. = mean over seeds of Δ / err(weighted-ce); wins = seeds with a lower "
        "overall error than weighted-ce.",
        "",
    ]
    for g in table["groups"]:
        support = ", ".join(f"{l} {v:g}" for l, v in g["test_support"].items())
        lines += [
            f"## {g['model']}, ratio {g['ratio']} (dog:baby_cry:gunshot:background)",
            "",
            f"Test clips per seed (mean): {support}.",
            "",
        ]
        for level, title in (
            ("clip", "Clip level (primary: any window fires)"),
            ("window", "Window level (secondary: one window per clip)"),
        ):
            lines += [
                f"**{title}**",
                "",
                "| objective | "
                + " | ".join(LABELS)
                + " | overall | rel. vs wce | Δ overall [95 % CI] | wins |",
                "|---|" + "---|" * (len(LABELS) + 4),
            ]
            for o, r in g["levels"][level].items():
                cells = [_pm(r["per_class_error"][l]) for l in LABELS] + [_pm(r["overall_error"])]
                cells += _versus(r.get("vs_" + BASELINE))
                lines.append(f"| {o} | " + " | ".join(cells) + " |")
            lines.append("")
        lines += [
            "Seconds per run, mean over seeds, training wall time / whole run's CPU time "
            "(training + clip evaluation; CPU time does not grow with other load on the machine): "
            + ", ".join(
                f"{o} {s['train_mean']:.1f} / {s['run_cpu_mean']:.1f}" for o, s in g["seconds"].items()
            ),
            "",
        ]
    return "\n".join(lines + [_totals(table)]) + "\n"


def write_table(table: dict, out_dir) -> str:
    write_json(table, Path(out_dir) / "table.json")
    md = table_markdown(table)
    (Path(out_dir) / "table.md").write_text(md)
    return md


def _check_table_args(models: list, objectives: list, form: str, test_streams: int) -> None:
    """The table's own arguments: known objectives and form, the stateful form's model."""
    unknown = [o for o in objectives if o not in OBJECTIVES]
    if unknown:
        raise EdgeSedError(f"unknown objective(s) {', '.join(unknown)}; choose from {', '.join(OBJECTIVES)}")
    if form not in ("windowed", "stateful"):
        raise EdgeSedError(f"unknown form {form!r}; choose windowed or stateful")
    if form == "stateful" and models != ["lstm"]:
        raise EdgeSedError(f"the stateful form is an LSTM; --models {','.join(models)} has no stateful form")
    if form == "windowed" and test_streams:
        raise EdgeSedError("--test-streams is for --form stateful (the windowed table scores clips)")


def _base_config(data: str, form: str, epochs: int | None, seeds: list, train_kwargs: dict) -> dict:
    """The TrainConfig fields every run of the table shares (all but model, ratio, seed and
    objective), checked once here so that a bad setting fails in one line, not in every worker."""
    base = {
        **asdict(TrainConfig()),
        **(STATEFUL_DEFAULTS if form == "stateful" else {}),
        **train_kwargs,
        **({} if epochs is None else {"epochs": epochs}),
        "data": data,
        "threads": 1,
        "form": form,
    }
    base.pop("out"), base.pop("objective")
    for s in seeds:
        TrainConfig(**{**base, "seed": s})
    stride = base.get("frame_stride", 1)
    if stride > 1 and not (
        form == "stateful"
        and base["conv_channels"]
        and base["context_frames"] >= stride
        and base["tbptt_frames"] % stride == 0
    ):
        raise EdgeSedError(
            f"a frame stride of {stride} needs --form stateful, a conv over at least {stride} frames "
            f"and TBPTT chunks that are a multiple of {stride}"
        )
    if (
        any(base.get(k) for k in ("hard_negatives", "freq_mask", "bed_aux", "dropout", "ema"))
        and form != "stateful"
    ):
        raise EdgeSedError(
            "hard-negative mining, frequency masks, the background-source loss, dropout and weight "
            "averaging are for --form stateful"
        )
    return base


def _tasks(base: dict, models, ratios, seeds, objectives, out_dir: Path, test_streams: int) -> list[dict]:
    """One task (run_task's argument) per (model, ratio, seed): it trains every objective."""
    return [
        {
            "config": {**base, "model": m, "ratio": r, "seed": s},
            "objectives": objectives,
            "out_dir": str(out_dir),
            "test_streams": test_streams,
        }
        for m in models
        for r in ratios
        for s in seeds
    ]


def _run_tasks(tasks: list[dict], workers: int, on_progress) -> list[dict]:
    """Run every task (in this process, or in ``workers`` spawned ones), calling ``on_progress()``
    as runs finish; returns run_task's answers."""
    loads = []
    if workers <= 1:
        for task in tasks:
            loads.append(run_task(task, on_run=on_progress))
        return loads
    # spawn: a fresh interpreter per worker, nothing inherited from torch in this process
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(min(workers, len(tasks)), mp_context=ctx) as pool:
        pending = {pool.submit(run_task, task) for task in tasks}
        try:
            while pending:  # the workers write run directories; count them for the progress
                finished, pending = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
                loads += [f.result() for f in finished]  # re-raises a worker's error here
                on_progress()
        except BaseException:  # an error or ^C: do not start the queued tasks first
            pool.shutdown(cancel_futures=True)
            raise
    return loads


def _table(
    settings: dict, groups: list[dict], runs: int, seeds: list, loads: list[dict], started: float
) -> dict:
    """table.json's content: the settings, the groups' statistics and the time totals."""
    return {
        "settings": settings,
        "groups": groups,
        "runs": runs,
        "train_seconds_total": float(sum(s["train_total"] for g in groups for s in g["seconds"].values())),
        "cpu_seconds_total": float(
            sum(s["run_cpu_mean"] * len(seeds) for g in groups for s in g["seconds"].values())
        ),
        "load_seconds_total": float(sum(x["load_seconds"] for x in loads)),
        "wall_seconds": round(time.perf_counter() - started, 1),
    }


def run_table(
    data: str,
    models=("lstm",),
    ratios=("6:1:2:16", "2:2:1:26"),
    objectives=tuple(OBJECTIVES),
    seeds=(0, 1, 2, 3, 4),
    out_dir="out/table",
    workers: int = 2,
    epochs: int | None = None,
    progress=None,
    form: str = "windowed",
    test_streams: int = 0,
    **train_kwargs,
) -> dict:
    """Train every (model, ratio, objective, seed), evaluate per clip and per window (or, with
    ``form="stateful"``, on event level over streams), write table.md and table.json in
    ``out_dir`` and return the table. ``train_kwargs`` go to TrainConfig (stage1_epochs,
    patience, synth_counts, hidden, sequences, lr_schedule, ...) over the form's defaults
    (TrainConfig's; for the stateful form train.trainer.STATEFUL_DEFAULTS first; ``epochs``
    None: the form's default). ``test_streams`` (stateful):
    re-score every run on that many test streams (0: the run's own). ``progress(done, total)``
    is called as runs finish."""
    started = time.perf_counter()
    out_dir = Path(out_dir)
    models, ratios, objectives, seeds = list(models), list(ratios), list(objectives), list(seeds)
    _check_table_args(models, objectives, form, test_streams)
    if data != "synthetic":
        data = str(Path(data).resolve())  # the same run, whatever the working directory
    base = _base_config(data, form, epochs, seeds, train_kwargs)
    if data == "synthetic":  # make each seed's set here, not twice at once in two workers
        for s in seeds:
            synthetic_source(base["synth_counts"], s)
    tasks = _tasks(base, models, ratios, seeds, objectives, out_dir, test_streams)
    total = len(tasks) * len(objectives)
    names = [run_name(m, r, o, s) for m in models for r in ratios for o in objectives for s in seeds]
    report = progress or (lambda done, total: None)

    def on_progress():
        report(sum(_done(out_dir / "runs" / n) for n in names), total)

    on_progress()
    loads = _run_tasks(tasks, workers, on_progress)
    groups = (summarise_stateful if form == "stateful" else summarise)(
        out_dir, models, ratios, objectives, seeds
    )
    settings = {
        "data": data,
        "form": form,
        "models": models,
        "ratios": ratios,
        "objectives": objectives,
        "seeds": seeds,
        "workers": workers,
        "test_streams": test_streams,
        "train": {k: v for k, v in base.items() if k != "data"},
    }
    table = _table(settings, groups, total, seeds, loads, started)
    write_table(table, out_dir)
    return table


def plan(models: str, ratios: str, objectives: str, seeds: str) -> dict:
    """The grid of `edge-sed experiments` from its comma-list options: ``models``, ``ratios``,
    ``objectives`` and ``seeds`` lists for run_table. ``seeds`` is N (0..N-1), A-B or a comma list;
    ``objectives`` "all" or a comma list. ValueError saying what is wrong with an option; a bad ratio
    fails here too (parse_ratio's DatasetError), not in a worker."""
    import itertools

    from edge_sed.core.settings import MAX_SEED
    from edge_sed.data.datasets import parse_ratio

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
        raise ValueError(f"--seeds wants N, A-B or a comma list, got {seeds!r}") from None
    if not seed_list:
        raise ValueError(f"--seeds {seeds!r} names no seed")
    seed_list = list(itertools.islice(seed_list, 1001))  # a range of 10^20 seeds is not listed whole
    if len(seed_list) > 1000 or not all(0 <= s <= MAX_SEED for s in seed_list):
        raise ValueError(f"--seeds {seeds!r}: at most 1000 seeds, each from 0 to {MAX_SEED}")
    objective_list = list(OBJECTIVES) if objectives == "all" else split(objectives)
    unknown = [o for o in objective_list if o not in OBJECTIVES]
    if unknown:
        raise ValueError(f"unknown objective(s) {', '.join(unknown)}; choose from {', '.join(OBJECTIVES)}")
    model_list = split(models)
    if not model_list or any(m not in ("lstm", "cnn") for m in model_list):
        raise ValueError(f"--models wants lstm and/or cnn, got {models!r}")
    ratio_list = split(ratios)
    for r in ratio_list:
        parse_ratio(r)
    return {"models": model_list, "ratios": ratio_list, "objectives": objective_list, "seeds": seed_list}
