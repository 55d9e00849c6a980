"""edge-sed report on the tiny fixture bundles: md/html/json agree, every number leads back to the
JSON field it came from, unrunnable levels say why, and the HTML renders in Chromium."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge_sed.eval.stats import fmt_stat
from edge_sed.report.build import build_report
from edge_sed.report.render import chromium, screenshot_html
from firmware_sim.report_sim import SIMULATOR

EDGE_SED = str(Path(sys.executable).with_name("edge-sed"))


@pytest.fixture(scope="module")
def broken_bundles(tiny_bundles, tmp_path_factory):
    """The tiny bundles with one level deleted after conversion and one the converter 'could not
    produce' (as convert-report.json records an unsupported level)."""
    src, _ = tiny_bundles
    dst = tmp_path_factory.mktemp("report-bundles") / "tiny"
    shutil.copytree(src, dst)
    shutil.rmtree(dst / "int16x8")
    shutil.rmtree(dst / "fp16")
    rep = json.loads((dst / "convert-report.json").read_text())
    for lv in rep["levels"]:
        if lv["name"] == "fp16":
            lv.update(status="unsupported", reason="the converter cannot do this level (test)")
    (dst / "convert-report.json").write_text(json.dumps(rep))
    return dst


@pytest.fixture(scope="module")
def report(broken_bundles, tiny_run, tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    r = build_report(
        [broken_bundles],
        out,
        data=str(tiny_data),
        runs=[tiny_run],
        stream_s=30.0,
        stream_events=4,
        latency_rounds=2,
        profiles="cortex-m4-80mhz",
        simulator=SIMULATOR,
    )  # the Pi's QEMU emulation is tested by its own tests
    return out, r


def resolve(source: str):
    path, _, pointer = source.partition("#")
    value = json.loads(Path(path).read_text())
    for part in filter(None, pointer.split("/")):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


def walk_sources(obj, found):
    """(value, source) for every number that names its source."""
    if isinstance(obj, dict):
        for key, src in (obj.get("sources") or {}).items():
            value = obj
            for part in key.split("."):
                value = value[part]
            found.append((key, value, src))
        for v in obj.values():
            walk_sources(v, found)
    elif isinstance(obj, list):
        for v in obj:
            walk_sources(v, found)
    return found


def test_every_number_leads_to_the_json_field_it_came_from(report):
    out, r = report
    saved = json.loads((out / "report.json").read_text())
    found = walk_sources(saved, [])
    assert len(found) > 50
    for key, value, src in found:
        assert resolve(src) == value, (key, src)
    # the clip accuracy is the manifest's, the host latency this run's measurement
    fp32 = saved["model_sets"][0]["levels"]["fp32"]
    manifest = json.loads((Path(fp32["path"]) / "manifest.json").read_text())
    assert fp32["clip"]["overall_error"] == manifest["accuracy"]["overall_error"]
    host = next(d for d in saved["devices"] if d["kind"] == "host")
    assert host["levels"]["fp32"]["ratio_to_fp32"] == 1.0
    assert (out / "measurements" / "host-latency.json").exists()


def md_table(md: str, title: str):
    block = md.split(f"### {title}", 1)[1].strip().split("\n\n", 1)[0].splitlines()
    header = [c.strip() for c in block[0].strip("|").split("|")]
    return [dict(zip(header, (c.strip() for c in line.strip("|").split("|")))) for line in block[2:]]


def test_markdown_and_html_show_the_json_numbers(report):
    out, r = report
    md = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    rows = {row["level"]: row for row in md_table(md, "Accuracy and host latency per quantization level")}
    ok = [s for s in r["summary"] if s["status"] == "ok"]
    assert {s["level"] for s in ok} == {
        "fp32",
        "dynamic-int8",
        "int8",
        "fp32-streaming",
        "int8-streaming",
        "int16x8-streaming",
    }
    host = next(d for d in r["devices"] if d["kind"] == "host")["levels"]
    for s in ok:
        row = rows[s["level"]]
        assert row["window error"] == f"{s['overall_error']['mean']:.3f}" == fmt_stat(s["overall_error"])
        assert row["event F1"] == fmt_stat(s["event_f1"])
        assert row["false alarms/h"] == fmt_stat(s["false_alarms_per_hour"], 1)
        assert row["form"] == s["form"]
        assert row["model kB"] == f"{s['model_bytes'] / 1024:.1f}"
        assert row["host ms/invoke (vs fp32)"].startswith(f"{host[s['level']]['latency_ms']:.3f} (")
        assert f">{row['window error']}</td>" in html
    per_class = {row["level"]: row for row in md_table(md, "Per-class error (1 - recall) per level")}
    for s in ok:
        for c, stat in s["per_class_error"].items():
            assert per_class[s["level"]][c] == fmt_stat(stat)
    training = md_table(md, "Training objectives: test error per class")
    metrics = json.loads((Path(r["training"]["runs"][0]["run"]) / "metrics.json").read_text())
    assert training[0]["overall error"] == f"{metrics['test']['overall_error']:.3f}"
    for png in r["plots"].values():
        assert Path(png).stat().st_size > 5000
    assert {"accuracy_vs_latency", "per_class_error", "confusion_fp32_vs_int8", "training"} <= set(r["plots"])
    assert html.count("data:image/png;base64,") == len(r["plots"])
    assert "src='http" not in html and 'src="http' not in html  # self-contained


def test_levels_that_cannot_run_say_why(report):
    out, r = report
    md = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    status = {s["level"]: s for s in r["summary"]}
    assert status["fp16"]["status"] == "unsupported"
    assert status["int16x8"]["status"] == "missing" and "not there" in status["int16x8"]["reason"]
    for level in ("fp16", "int16x8"):
        text = f"{status[level]['status']}: {status[level]['reason']}"
        assert text in md
        assert text.replace("'", "&#x27;") in html
    mcu = next(d for d in r["devices"] if d["profile"] == "cortex-m4-80mhz")
    assert (
        mcu["estimate"]
        and mcu["levels"]["int8"]["status"] == "ok"
        and mcu["levels"]["int8"]["duty_cycle"] > 0
    )
    assert mcu["levels"]["fp32"]["status"] == "cannot run"  # the MCU simulator runs int8 bundles only
    assert mcu["levels"]["fp16"]["status"] == "not built"
    for d in r["devices"]:
        if d.get("status") == "not available":  # no simulator: said, with the reason, never a number
            assert d["reason"] and f"not available: {d['reason']}" in md
        for name, cell in d.get("levels", {}).items():
            if cell["status"] != "ok":
                assert cell.get("reason"), (d["profile"], name)
                reason = re.sub(
                    r"^level \S+: ", "", cell["reason"]
                )  # rows are shared by the levels it concerns
                assert f"{cell['status']}: {reason}" in md


@pytest.mark.skipif(chromium() is None, reason="chromium is not installed (scripts/setup.sh installs it)")
def test_html_renders_in_chromium(report, tmp_path):
    out, _ = report
    png = screenshot_html(out / "report.html", tmp_path / "shot.png", width=1200, height=1600)
    import matplotlib.image

    img = matplotlib.image.imread(png)
    assert img.shape[0] == 1600 and img.shape[1] == 1200
    gray = img[..., :3].mean(axis=2)
    assert gray.std() > 0.05  # not blank
    dark_rows = np.flatnonzero((gray < 0.5).sum(axis=1) > 5)
    assert len(dark_rows) > 200 and dark_rows.max() > 800  # text and tables down the page


def test_cli_report_and_bench(broken_bundles, tiny_data, tmp_path):
    out = tmp_path / "rep"
    res = subprocess.run(
        [
            EDGE_SED,
            "report",
            "--bundles",
            broken_bundles,
            "--data",
            tiny_data,
            "--out",
            out,
            "--stream-s",
            "20",
            "--stream-events",
            "2",
            "--latency-rounds",
            "1",
            "--no-plots",
            "--profiles",
            "none",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr
    assert "| int8 |" in res.stdout and str(out / "report.html") in res.stdout
    assert json.loads((out / "report.json").read_text())["plots"] == {}
    res = subprocess.run(
        [EDGE_SED, "bench", broken_bundles, "--rounds", "2", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr
    levels = json.loads(res.stdout)["latency"]["levels"]
    assert levels["fp32"]["ratio_to_fp32"] == 1.0 and levels["int8"]["calls"] == 20
    assert all(v["median_ms"] > 0 for v in levels.values())
    res = subprocess.run(
        [EDGE_SED, "report", "--bundles", tmp_path, "--out", out], capture_output=True, text=True
    )
    assert res.returncode == 2 and res.stderr.startswith("error: ") and "no bundles here" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_sets_of_different_sizes_are_told_apart_in_the_report(tmp_path):
    """Bundles of one objective but different network sizes or rates are grouped (summary rows,
    the accuracy-against-compute plot) by objective and architecture; of one size, by objective."""
    from edge_sed.report.collect import ModelSet, variant_labels

    def model_set(name, hidden, stride=4):
        return ModelSet(
            name,
            tmp_path / name,
            {
                "objective": "weighted-ce",
                "model": "lstm",
                "hidden": hidden,
                "context_frames": 8,
                "conv_channels": hidden,
                "frame_stride": stride,
            },
        )

    small, big, slow = model_set("a", 32), model_set("b", 64), model_set("c", 32, stride=5)
    assert small.architecture == "conv 8x32, LSTM 32, every 4 frames"
    labels = variant_labels([small, big, slow])
    assert labels == {
        "a": "weighted-ce (conv 8x32, LSTM 32, every 4 frames)",
        "b": "weighted-ce (conv 8x64, LSTM 64, every 4 frames)",
        "c": "weighted-ce (conv 8x32, LSTM 32, every 5 frames)",
    }
    assert variant_labels([small, model_set("d", 32)]) == {"a": "weighted-ce", "d": "weighted-ce"}
    windowed = ModelSet("w", tmp_path / "w", {"objective": "clustered", "model": "cnn"})
    assert windowed.architecture == "cnn"


def test_sets_of_different_sizes_get_a_size_curve(tiny_bundles, stateful_bundles, tiny_data, tmp_path):
    """Two network sizes in one report: each is simulated on the MCU profile (the second one too,
    not only the first set), so the size curve has one point per size and level with its own
    duty cycle and its own test-stream event F1; the table, plot and sources follow."""
    out = tmp_path / "rep"
    r = build_report(
        [tiny_bundles[0], stateful_bundles[0]],
        out,
        data=str(tiny_data),
        stream_s=30.0,
        stream_events=4,
        latency_rounds=2,
        profiles="cortex-m4-80mhz",
        simulator=SIMULATOR,
    )
    curve = r["size_curve"]
    assert curve["profiles"] == ["cortex-m4-80mhz"] and not curve["notes"]
    by = {(p["set"], p["level"]): p for p in curve["points"]}
    small, stateful = by[(tiny_bundles[0].name, "int8")], by[(stateful_bundles[0].name, "int8")]
    assert small["variant"] != stateful["variant"]
    assert small["duty_cycle"] != stateful["duty_cycle"] and 0 < stateful["duty_cycle"] < 1
    summary = {(s["objective"], s["level"]): s for s in r["summary"]}
    for p in (small, stateful):
        assert p["event_f1"] == summary[(p["variant"], "int8")]["event_f1"]
        assert resolve(p["sources"]["duty_cycle"]) == p["duty_cycle"]
    assert (out / "measurements" / f"simulate-{stateful_bundles[0].name}.json").exists()
    md = (out / "report.md").read_text()
    assert (
        "Accuracy against device cost, per network size" in md
        and f"{100 * stateful['duty_cycle']:.1f}%" in md
    )
    assert "(accuracy_vs_cycles.png)" in md and (out / "accuracy_vs_cycles.png").stat().st_size > 10_000
    assert "every model has the same architecture" not in md
