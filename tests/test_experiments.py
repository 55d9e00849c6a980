"""The experiments table on a tiny synthetic set: run directories, statistics recomputed by
hand, the per-clip decision rule, resuming, and workers=2 giving the same numbers."""

import json
import math

import numpy as np
import pytest

from edge_sed.cli import main
from edge_sed.datasets import clip_to_window
from edge_sed.errors import EdgeSedError
from edge_sed.settings import LABELS
from edge_sed.synth import write_dataset
from train.experiments import (clip_decision, clip_windows, paired_stats, run_name, run_table,
                               t_975)

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
        np.testing.assert_array_equal(clip_windows(short, label, "d.flac")[0],
                                      clip_to_window(short, label, 0, "d.flac"))
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
    t = run_table(data, ratios=(RATIO,), objectives=OBJECTIVES, seeds=SEEDS, out_dir=out, workers=1,
                  progress=lambda done, total: seen.append((done, total)), **SMALL)
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
    files = [run / n for run in runs_of(out).values() for n in ("metrics.json", "clip_metrics.json", "best.pt")]
    before = {f: f.stat().st_mtime_ns for f in files}
    again = run_table(data, ratios=(RATIO,), objectives=OBJECTIVES, seeds=SEEDS, out_dir=out, workers=1, **SMALL)
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
        run_table(data, ratios=(RATIO,), objectives=OBJECTIVES, seeds=SEEDS, out_dir=out, workers=1,
                  **{**SMALL, "epochs": 3})

    # a run made before a setting existed (config.json without it) had that setting's default
    saved = json.loads((run / "config.json").read_text())
    saved.pop("gain_db"), saved.pop("mix_background")
    (run / "config.json").write_text(json.dumps(saved))
    run_table(data, ratios=(RATIO,), objectives=OBJECTIVES, seeds=SEEDS, out_dir=out, workers=1, **SMALL)


def test_two_workers_give_the_same_numbers(data, table, tmp_path):
    _, one, _ = table
    two = run_table(data, ratios=(RATIO,), objectives=OBJECTIVES, seeds=SEEDS, out_dir=tmp_path,
                    workers=2, **SMALL)
    strip = lambda g: {k: v for k, v in g.items() if k != "seconds"}
    assert [strip(g) for g in two["groups"]] == [strip(g) for g in one["groups"]]


def test_cli_runs_prints_and_guards_the_table(data, tmp_path, capsys):
    args = ["experiments", "--data", data, "--ratios", RATIO, "--objectives", ",".join(OBJECTIVES),
            "--seeds", "0-1", "--workers", "1", "--epochs", "2", "--stage1-epochs", "1", "--patience", "2",
            "--out", str(tmp_path)]
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
