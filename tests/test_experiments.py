"""The experiments table on a tiny synthetic set: run directories, statistics recomputed by
hand, the per-clip decision rule, resuming, and workers=2 giving the same numbers."""

import json
from dataclasses import asdict
import math

import numpy as np
import pytest

from edge_sed.cli import main
from edge_sed.data.datasets import clip_to_window
from edge_sed.core.errors import EdgeSedError
from edge_sed.core.settings import LABELS
from edge_sed.data.synth import write_dataset
from train.experiments import clip_decision, clip_windows, paired_stats, run_name, run_table, t_975
from train.trainer import STATEFUL_DEFAULTS, TrainConfig

OBJECTIVES = ("weighted-ce", "clustered")
SEEDS = (0, 1)
RATIO = "1:1:1:5"
SMALL = dict(epochs=2, stage1_epochs=1, patience=2, hidden=16, embed_dim=8)
DOG, CRY, GUN, BG = range(4)


# ---------------------------------------------------------------- statistics, by hand


def test_t_quantiles_match_scipy():
    stats = pytest.importorskip("scipy.stats")
    for df in range(1, 31):
        assert t_975(df) == pytest.approx(stats.t.ppf(0.975, df), abs=6e-4), df
    assert t_975(100) == 1.960


def test_paired_stats_known_numbers():
    # d = wce - obj = [0.1, 0.1, 0.0]: mean 1/15, sd sqrt(1/300), half-width 4.303 * sd / sqrt(3)
    p = paired_stats([0.4, 0.5, 0.3], [0.3, 0.4, 0.3])
    assert p["mean_diff"] == pytest.approx(1 / 15)
    assert p["sd_diff"] == pytest.approx(math.sqrt(1 / 300))
    half = 4.303 * math.sqrt(1 / 300) / math.sqrt(3)
    assert p["ci95"] == pytest.approx([1 / 15 - half, 1 / 15 + half])
    assert p["ci95"] == pytest.approx([-0.07677, 0.21010], abs=1e-5)
    assert p["rel_reduction"] == pytest.approx((0.25 + 0.2 + 0.0) / 3)
    assert (p["wins"], p["ties"], p["n"]) == (2, 1, 3)


def test_paired_stats_edge_cases():
    p = paired_stats([0.0, 0.5], [0.1, 0.25])  # a perfect baseline seed has no relative reduction
    assert p["rel_reduction"] == pytest.approx(0.5)
    assert p["wins"] == 1
    one = paired_stats([0.5], [0.4])
    assert one["ci95"] is None and one["sd_diff"] is None


# ---------------------------------------------------------------- per clip


def test_clip_decision_any_window_fires():
    assert clip_decision(np.array([[0.1, 0.1, 0.1, 0.7], [0.2, 0.3, 0.0, 0.5]])) == BG
    # two windows fire: the higher single-window event probability (gunshot 0.7) wins
    assert clip_decision(np.array([[0.5, 0.2, 0.1, 0.2], [0.1, 0.1, 0.7, 0.1], [0, 0, 0, 1.0]])) == GUN
    # baby_cry's 0.45 is in a window whose argmax is background: it did not fire, so dog wins
    assert clip_decision(np.array([[0.0, 0.45, 0.0, 0.55], [0.4, 0.2, 0.1, 0.3]])) == DOG
    # one firing window is enough, however many background windows surround it
    assert clip_decision(np.array([[0, 0, 0, 1.0]] * 9 + [[0.1, 0.5, 0.1, 0.3]])) == CRY


def test_clip_windows_cover_the_clip():
    sr = 16000
    audio = np.arange(int(2.3 * sr), dtype=np.float32)
    w = clip_windows(audio, "dog", "a.flac")
    assert w.shape == (4, sr)  # starts 0, 0.5, 1.0 s and one ending at 2.3 s
    assert [int(x[0]) for x in w] == [0, 8000, 16000, len(audio) - sr]
    assert w[-1][-1] == audio[-1]
    assert clip_windows(np.ones(2 * sr, np.float32), "dog", "b").shape == (3, sr)
    assert clip_windows(np.ones(sr, np.float32), "dog", "c").shape == (1, sr)
    short = np.ones(sr // 2, np.float32)
    for label in ("dog", "background"):  # the training policy's padding: centred for every label
        np.testing.assert_array_equal(
            clip_windows(short, label, "d.flac")[0], clip_to_window(short, label, 0, "d.flac")
        )
    np.testing.assert_array_equal(clip_windows(short, "dog", "d"), clip_windows(short, "background", "d"))


# ---------------------------------------------------------------- a whole (tiny) table


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synth")
    return str(write_dataset(folder, {"dog": 15, "baby_cry": 15, "gunshot": 15, "background": 75}, seed=0))


@pytest.fixture(scope="module")
def table(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("table")
    seen = []
    t = run_table(
        data,
        ratios=(RATIO,),
        objectives=OBJECTIVES,
        seeds=SEEDS,
        out_dir=out,
        workers=1,
        progress=lambda done, total: seen.append((done, total)),
        **SMALL,
    )
    return out, t, seen


def runs_of(out):
    return {(o, s): out / "runs" / run_name("lstm", RATIO, o, s) for o in OBJECTIVES for s in SEEDS}


def test_every_run_dir_is_complete(table):
    out, t, seen = table
    for run in runs_of(out).values():
        for name in ("config.json", "metrics.json", "best.pt", "clip_metrics.json"):
            assert (run / name).exists(), run / name
        cm = json.loads((run / "clip_metrics.json").read_text())
        assert cm["window"] == json.loads((run / "metrics.json").read_text())["test"]
        assert cm["test_clip_windows"] == 3 * cm["test_clips"]  # 2 s synthetic clips: 3 windows each
        assert cm["clip"]["support"] == cm["window"]["support"]
    assert seen[0] == (0, 4) and seen[-1] == (4, 4)
    assert (out / "table.md").exists() and json.loads((out / "table.json").read_text())["runs"] == 4


def test_table_numbers_match_the_runs(table):
    out, t, _ = table
    runs = {k: json.loads((v / "clip_metrics.json").read_text()) for k, v in runs_of(out).items()}
    [group] = t["groups"]
    assert json.loads((out / "table.json").read_text())["groups"] == json.loads(json.dumps(t["groups"]))
    for level in ("clip", "window"):
        for o in OBJECTIVES:
            row = group["levels"][level][o]
            overall = [runs[o, s][level]["overall_error"] for s in SEEDS]
            assert row["overall_error"]["mean"] == pytest.approx(np.mean(overall))
            assert row["overall_error"]["sd"] == pytest.approx(np.std(overall, ddof=1))
            for label in LABELS:
                per = [runs[o, s][level]["per_class_error"][label] for s in SEEDS]
                assert row["per_class_error"][label]["mean"] == pytest.approx(np.mean(per))
                assert row["per_class_error"][label]["sd"] == pytest.approx(np.std(per, ddof=1))
        base = [runs["weighted-ce", s][level]["overall_error"] for s in SEEDS]
        obj = [runs["clustered", s][level]["overall_error"] for s in SEEDS]
        vs = group["levels"][level]["clustered"]["vs_weighted-ce"]
        d = np.subtract(base, obj)
        assert vs["mean_diff"] == pytest.approx(d.mean())
        half = 12.706 * np.std(d, ddof=1) / math.sqrt(2)
        assert vs["ci95"] == pytest.approx([d.mean() - half, d.mean() + half])
        assert vs["wins"] == int(sum(np.less(obj, base)))
        assert "vs_weighted-ce" not in group["levels"][level]["weighted-ce"]


def test_markdown_has_every_objective_and_both_levels(table):
    out, _, _ = table
    md = (out / "table.md").read_text()
    for o in OBJECTIVES:
        assert f"| {o} |" in md
    assert md.count(f"| {OBJECTIVES[1]} |") == 2  # clip and window level
    assert "Clip level" in md and "Window level" in md and RATIO in md


def test_resuming_skips_finished_runs(data, table):
    out, first, _ = table
    files = [
        run / n for run in runs_of(out).values() for n in ("metrics.json", "clip_metrics.json", "best.pt")
    ]
    before = {f: f.stat().st_mtime_ns for f in files}
    again = run_table(
        data, ratios=(RATIO,), objectives=OBJECTIVES, seeds=SEEDS, out_dir=out, workers=1, **SMALL
    )
    assert {f: f.stat().st_mtime_ns for f in files} == before
    assert again["groups"] == first["groups"] and again["load_seconds_total"] == 0.0

    # killed between training and the clip metrics: no retraining, the same clip numbers
    run = runs_of(out)["clustered", 1]
    old = json.loads((run / "clip_metrics.json").read_text())
    (run / "clip_metrics.json").unlink()
    mtime = (run / "best.pt").stat().st_mtime_ns
    run_table(data, ratios=(RATIO,), objectives=OBJECTIVES, seeds=SEEDS, out_dir=out, workers=1, **SMALL)
    assert (run / "best.pt").stat().st_mtime_ns == mtime
    new = json.loads((run / "clip_metrics.json").read_text())
    assert (new["clip"], new["window"]) == (old["clip"], old["window"])

    with pytest.raises(EdgeSedError, match="other settings"):  # never mix settings in one table
        run_table(
            data,
            ratios=(RATIO,),
            objectives=OBJECTIVES,
            seeds=SEEDS,
            out_dir=out,
            workers=1,
            **{**SMALL, "epochs": 3},
        )

    # a run made before a setting existed (config.json without it) had that setting's default
    saved = json.loads((run / "config.json").read_text())
    saved.pop("gain_db"), saved.pop("mix_background")
    (run / "config.json").write_text(json.dumps(saved))
    run_table(data, ratios=(RATIO,), objectives=OBJECTIVES, seeds=SEEDS, out_dir=out, workers=1, **SMALL)


def test_two_workers_give_the_same_numbers(data, table, tmp_path):
    _, one, _ = table
    two = run_table(
        data, ratios=(RATIO,), objectives=OBJECTIVES, seeds=SEEDS, out_dir=tmp_path, workers=2, **SMALL
    )

    def strip(g):
        return {k: v for k, v in g.items() if k != "seconds"}

    assert [strip(g) for g in two["groups"]] == [strip(g) for g in one["groups"]]


def test_cli_runs_prints_and_guards_the_table(data, tmp_path, capsys):
    args = [
        "experiments",
        "--data",
        data,
        "--ratios",
        RATIO,
        "--objectives",
        ",".join(OBJECTIVES),
        "--seeds",
        "0-1",
        "--workers",
        "1",
        "--epochs",
        "2",
        "--stage1-epochs",
        "1",
        "--patience",
        "2",
        "--out",
        str(tmp_path),
    ]
    assert main(args + ["--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["runs"] == 4 and printed["settings"]["seeds"] == [0, 1]
    assert main(args) == 0  # finished: resumes instantly and prints the Markdown
    md = capsys.readouterr().out
    assert all(f"| {o} |" in md for o in OBJECTIVES) and "4 runs in" in md
    assert main(args + ["--epochs", "3"]) == 2  # the last --epochs wins
    assert "other settings" in capsys.readouterr().err
    assert main(["experiments", "--synthetic", "--data", data, "--out", str(tmp_path)]) == 2
    assert main(["experiments", "--data", data, "--objectives", "nope", "--out", str(tmp_path)]) == 2
    assert main(["experiments", "--data", data, "--seeds", "x", "--out", str(tmp_path)]) == 2


# ---------------------------------------------------------------- the stateful form, event level

TINY_STATEFUL = dict(
    epochs=4,
    stage1_epochs=1,
    patience=50,
    sequences=32,
    seq_s=8.0,
    batch_size=8,
    hidden=16,
    embed_dim=4,
    lr=1e-2,
    context_frames=3,
    conv_channels=6,
    frame_stride=2,
    val_streams=1,
    val_stream_s=20.0,
)
STATEFUL_RATIO = "1:1:1:3"
EVENTS = ("dog", "baby_cry", "gunshot")


def test_paired_stats_of_a_score_higher_is_better():
    # F1 (higher is better): d = obj - base = [0.1, -0.05, 0.0]
    p = paired_stats([0.4, 0.5, 0.2], [0.5, 0.45, 0.2], higher_is_better=True)
    d = np.array([0.1, -0.05, 0.0])
    assert p["mean_diff"] == pytest.approx(d.mean())
    half = 4.303 * np.std(d, ddof=1) / math.sqrt(3)
    assert p["ci95"] == pytest.approx([d.mean() - half, d.mean() + half])
    assert p["rel_reduction"] == pytest.approx((0.25 - 0.1 + 0.0) / 3)  # relative F1 gain
    assert (p["wins"], p["ties"]) == (1, 1)


def fake_stateful_run(run, f1, val_f1, fa, latency, per_class, train_seconds=100.0):
    run.mkdir(parents=True)
    test = {
        "f1": f1,
        "false_alarms_per_hour": fa,
        "latency_median_s": latency,
        "reference": 40,
        "per_class": {l: {"f1": v} for l, v in zip(EVENTS, per_class)},
        "dcase": {"f1": round(f1 - 0.1, 6)},
    }
    (run / "metrics.json").write_text(
        json.dumps({"train_seconds": train_seconds, "best_epoch": 7, "epochs_run": 9})
    )
    (run / "stream_metrics.json").write_text(
        json.dumps(
            {
                "test_stream": test,
                "val_stream": {"f1": val_f1},
                "test_streams": 0,
                "test_stream_count": 6,
                "test_stream_s": 60.0,
                "run_seconds": train_seconds + 1,
                "run_cpu_seconds": train_seconds / 2,
            }
        )
    )


def test_stateful_summary_by_hand(tmp_path):
    """Known numbers in fake run directories: means, sds, the paired F1 difference, wins, a seed
    without any detection (latency None) left out of the latency mean, and the Markdown."""
    from train.experiments import summarise_stateful, table_markdown

    wce = [
        (0.30, 0.40, 100.0, 0.2, (0.5, 0.2, 0.1)),
        (0.20, 0.35, 300.0, None, (0.3, 0.2, 0.0)),
        (0.40, 0.50, 200.0, 0.4, (0.6, 0.4, 0.2)),
    ]
    clu = [
        (0.35, 0.45, 50.0, 0.3, (0.5, 0.3, 0.2)),
        (0.20, 0.30, 100.0, 0.5, (0.4, 0.1, 0.1)),
        (0.30, 0.40, 150.0, 0.7, (0.5, 0.3, 0.0)),
    ]
    for o, rows in (("weighted-ce", wce), ("clustered", clu)):
        for s, r in enumerate(rows):
            fake_stateful_run(tmp_path / "runs" / run_name("lstm", "2:2:1:26", o, s), *r)
    [g] = summarise_stateful(tmp_path, ["lstm"], ["2:2:1:26"], list(OBJECTIVES), [0, 1, 2])
    w, c = g["rows"]["weighted-ce"], g["rows"]["clustered"]
    assert w["test_f1"]["mean"] == pytest.approx(0.3) and w["test_f1"]["sd"] == pytest.approx(0.1)
    assert w["latency_median_s"]["mean"] == pytest.approx(0.3) and w["latency_median_s"]["n"] == 2
    assert w["false_alarms_per_hour"]["mean"] == pytest.approx(200.0)
    assert c["per_class_f1"]["baby_cry"]["mean"] == pytest.approx(0.7 / 3)
    assert c["val_f1"]["per_seed"] == [0.45, 0.30, 0.40]
    vs = c["vs_weighted-ce"]  # d = clu - wce = [+0.05, 0, -0.10]
    d = np.array([0.05, 0.0, -0.10])
    assert vs["mean_diff"] == pytest.approx(d.mean())
    half = 4.303 * np.std(d, ddof=1) / math.sqrt(3)
    assert vs["ci95"] == pytest.approx([d.mean() - half, d.mean() + half])
    assert (vs["wins"], vs["ties"], vs["n"]) == (1, 1, 3)
    assert c["vs_weighted-ce_val"]["mean_diff"] == pytest.approx((0.05 - 0.05 - 0.10) / 3)
    assert "vs_weighted-ce" not in w
    assert g["test_hours"] == pytest.approx(0.1) and g["test_reference_events"] == 40
    table = {
        "settings": {
            "form": "stateful",
            "data": "d",
            "seeds": [0, 1, 2],
            "workers": 1,
            "train": asdict(TrainConfig()),
        },
        "groups": [g],
        "runs": 6,
        "train_seconds_total": 600.0,
        "cpu_seconds_total": 300.0,
        "wall_seconds": 1.0,
    }
    md = table_markdown(table)
    assert "| weighted-ce | 0.300 ± 0.100 | (baseline) |" in md
    assert (
        "| clustered | 0.283 ± 0.076 | " in md
        and f"{d.mean():+.3f} [{d.mean() - half:+.3f}, {d.mean() + half:+.3f}]" in md
    )
    assert c["test_dcase_f1"]["per_seed"] == pytest.approx([0.25, 0.10, 0.20])  # DCASE's rule beside
    assert c["vs_weighted-ce_dcase"]["mean_diff"] == pytest.approx(d.mean())
    ci = f"{d.mean():+.3f} [{d.mean() - half:+.3f}, {d.mean() + half:+.3f}]"
    assert f"| 1/3 | 0.183 ± 0.076 | {ci} | 100.0 ± 50.0 | 0.50 ± 0.20 |" in md
    assert "| weighted-ce | 0.300 ± 0.100 | (baseline) |  |  | 0.200 ± 0.100 |  | 200.0" in md


@pytest.fixture(scope="module")
def stateful_table(tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("stateful-table")
    t = run_table(
        str(tiny_data),
        ratios=(STATEFUL_RATIO,),
        objectives=OBJECTIVES,
        seeds=SEEDS,
        out_dir=out,
        workers=1,
        form="stateful",
        **TINY_STATEFUL,
    )
    return out, t


def stateful_runs(out):
    return {(o, s): out / "runs" / run_name("lstm", STATEFUL_RATIO, o, s) for o in OBJECTIVES for s in SEEDS}


def test_stateful_table_numbers_are_the_runs_metrics(stateful_table):
    out, t = stateful_table
    metrics = {k: json.loads((v / "metrics.json").read_text()) for k, v in stateful_runs(out).items()}
    for k, m in metrics.items():
        assert m["form"] == "stateful" and m["epochs_run"] == 4 + (k[0] == "clustered")
        sm = json.loads((stateful_runs(out)[k] / "stream_metrics.json").read_text())
        assert sm["test_stream"] == m["test_stream"] and sm["val_stream"] == m["val_stream"]
    assert any(m["test_stream"]["f1"] > 0 for m in metrics.values())  # not a table of zeros
    [g] = t["groups"]
    assert json.loads((out / "table.json").read_text())["groups"] == json.loads(json.dumps(t["groups"]))
    for o in OBJECTIVES:
        row, ms = g["rows"][o], [metrics[o, s] for s in SEEDS]
        assert row["test_f1"]["per_seed"] == [m["test_stream"]["f1"] for m in ms]
        assert row["test_f1"]["mean"] == pytest.approx(np.mean(row["test_f1"]["per_seed"]))
        assert row["val_f1"]["per_seed"] == [m["val_stream"]["f1"] for m in ms]
        assert row["test_dcase_f1"]["per_seed"] == [m["test_stream"]["dcase"]["f1"] for m in ms]
        assert row["false_alarms_per_hour"]["mean"] == pytest.approx(
            np.mean([m["test_stream"]["false_alarms_per_hour"] for m in ms])
        )
        lat = [
            m["test_stream"]["latency_median_s"]
            for m in ms
            if m["test_stream"]["latency_median_s"] is not None
        ]
        assert row["latency_median_s"]["n"] == len(lat)
        if lat:
            assert row["latency_median_s"]["mean"] == pytest.approx(np.mean(lat))
        for label in EVENTS:
            assert row["per_class_f1"][label]["mean"] == pytest.approx(
                np.mean([m["test_stream"]["per_class"][label]["f1"] for m in ms])
            )
    vs = g["rows"]["clustered"]["vs_weighted-ce"]
    d = np.subtract(
        g["rows"]["clustered"]["test_f1"]["per_seed"], g["rows"]["weighted-ce"]["test_f1"]["per_seed"]
    )
    assert vs["mean_diff"] == pytest.approx(d.mean()) and vs["wins"] == int((d > 0).sum())
    md = (out / "table.md").read_text()
    assert "test event F1" in md and "false alarms/h" in md and all(f"| {o} |" in md for o in OBJECTIVES)
    assert g["test_reference_events"] == np.mean(
        [metrics["weighted-ce", s]["test_stream"]["reference"] for s in SEEDS]
    )


def test_stateful_table_resumes_and_rescores(tiny_data, stateful_table):
    out, first = stateful_table
    runs = stateful_runs(out)
    kw = dict(
        ratios=(STATEFUL_RATIO,), objectives=OBJECTIVES, seeds=SEEDS, out_dir=out, workers=1, form="stateful"
    )
    files = [r / n for r in runs.values() for n in ("metrics.json", "stream_metrics.json", "best.pt")]
    before = {f: f.stat().st_mtime_ns for f in files}
    again = run_table(str(tiny_data), **kw, **TINY_STATEFUL)
    assert {f: f.stat().st_mtime_ns for f in files} == before and again["groups"] == first["groups"]

    # re-scored on as many test streams as training made: the run's own test metrics, exactly
    same = run_table(str(tiny_data), **kw, test_streams=1, **TINY_STATEFUL)
    for k, run in runs.items():
        sm = json.loads((run / "stream_metrics.json").read_text())
        assert sm["test_streams"] == 1
        assert sm["test_stream"] == json.loads((run / "metrics.json").read_text())["test_stream"], k
    assert [g["rows"] for g in same["groups"]] == [g["rows"] for g in first["groups"]]

    # more test streams: more events, no retraining, the training's time kept
    more = run_table(str(tiny_data), **kw, test_streams=3, **TINY_STATEFUL)
    for run in runs.values():
        sm = json.loads((run / "stream_metrics.json").read_text())
        assert sm["test_stream_count"] == 3
        assert sm["run_seconds"] >= json.loads((run / "metrics.json").read_text())["train_seconds"]
    assert {f: f.stat().st_mtime_ns for f in files if f.name != "stream_metrics.json"} == {
        f: t for f, t in before.items() if f.name != "stream_metrics.json"
    }
    assert more["groups"][0]["test_reference_events"] > first["groups"][0]["test_reference_events"]
    assert more["groups"][0]["test_hours"] == pytest.approx(3 * 20 / 3600)

    with pytest.raises(EdgeSedError, match="other settings"):
        run_table(str(tiny_data), **kw, **{**TINY_STATEFUL, "sequences": 8})
    windowed = {k: v for k, v in TINY_STATEFUL.items() if k != "frame_stride"}
    with pytest.raises(EdgeSedError, match="other settings"):  # a windowed table never reads these runs
        run_table(
            str(tiny_data),
            ratios=(STATEFUL_RATIO,),
            objectives=OBJECTIVES,
            seeds=SEEDS,
            out_dir=out,
            workers=1,
            **windowed,
        )
    with pytest.raises(EdgeSedError, match="a frame stride of 2 needs --form stateful"):
        run_table(
            str(tiny_data),
            ratios=(STATEFUL_RATIO,),
            objectives=OBJECTIVES,
            seeds=SEEDS,
            out_dir=out,
            workers=1,
            **TINY_STATEFUL,
        )


def test_cli_stateful_table(tiny_data, tmp_path, capsys):
    args = [
        "experiments",
        "--form",
        "stateful",
        "--data",
        str(tiny_data),
        "--ratios",
        STATEFUL_RATIO,
        "--objectives",
        ",".join(OBJECTIVES),
        "--seeds",
        "1",
        "--workers",
        "1",
        "--epochs",
        "1",
        "--stage1-epochs",
        "1",
        "--sequences",
        "8",
        "--seq-s",
        "4",
        "--hidden",
        "8",
        "--val-streams",
        "1",
        "--lr-schedule",
        "constant",
        "--frame-targets",
        "span",
        "--out",
        str(tmp_path),
    ]
    assert main(args) == 0
    md = capsys.readouterr().out
    assert "test event F1" in md and "| clustered |" in md and "2 runs in" in md
    cfg = json.loads(
        (tmp_path / "runs" / run_name("lstm", STATEFUL_RATIO, "clustered", 0) / "config.json").read_text()
    )
    given = ("form", "sequences", "seq_s", "hidden", "lr_schedule", "epochs", "val_streams", "frame_targets")
    assert [cfg[k] for k in given] == ["stateful", 8, 4.0, 8, "constant", 1, 1, "span"]
    for k, v in STATEFUL_DEFAULTS.items():  # not given: the stateful form's defaults
        if k not in given:
            assert cfg[k] == v, k
    assert main(args + ["--models", "cnn"]) == 2
    assert "stateful form" in capsys.readouterr().err
    assert (
        main(["experiments", "--data", str(tiny_data), "--test-streams", "3", "--out", str(tmp_path / "w")])
        == 2
    )
