"""`edge-sed demo --quick`: every stage of the main job on a tiny data set, as a user runs it, and a
re-run that resumes instead of redoing the work. The demo trains the stateful streaming LSTM, so
its bundles must be stateful and its headline must lead with the stream figures."""

import json
import subprocess
import sys
import time
from pathlib import Path

EDGE_SED = str(Path(sys.executable).with_name("edge-sed"))


def headline_header(stdout: str) -> list[str]:
    lines = stdout.splitlines()
    i = lines.index("### Accuracy and host latency per quantization level")
    return [c.strip() for c in lines[i + 2].strip("|").split("|")]


def test_quick_demo_end_to_end_then_resumes(tmp_path):
    out = tmp_path / "demo"
    t0 = time.perf_counter()
    res = subprocess.run(
        [EDGE_SED, "demo", "--quick", "--out", out, "--profiles", "cortex-m4-80mhz,rpi-4"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    first_s = time.perf_counter() - t0
    assert res.returncode == 0, res.stderr[-3000:]
    for stage in ("[1/6]", "[2/6]", "[3/6]", "[4/6]", "[5/6]", "[6/6]"):
        assert stage in res.stdout
    assert "training the stateful LSTM with clustered" in res.stdout and "val event F1" in res.stdout
    # the headline leads with the stream figures: event F1, false alarms per hour, onset latency
    header = headline_header(res.stdout)
    assert header[:6] == ["objective", "level", "form", "event F1", "false alarms/h", "onset latency (s)"], (
        header
    )
    assert f"Report: {out / 'report' / 'report.html'}" in res.stdout
    summary = json.loads((out / "demo.json").read_text())
    assert set(summary["runs"]) == {"weighted-ce", "clustered"}
    assert summary["headline"] in res.stdout
    for objective in ("weighted-ce", "clustered"):
        metrics = json.loads((out / "runs" / objective / "metrics.json").read_text())
        assert metrics["form"] == "stateful" and metrics["objective"] == objective
        assert set(metrics["smoother"]["thresholds"]) == {"dog", "baby_cry", "gunshot"}
        for level in ("fp32", "int8", "int16x8"):
            manifest = json.loads((out / "bundles" / objective / level / "manifest.json").read_text())
            assert manifest["form"] == "stateful" and manifest["state"]["mode"] == "carried", (
                objective,
                level,
            )
            assert manifest["smoother"]["thresholds"] == metrics["smoother"]["thresholds"]
            assert "event_f1" in manifest["accuracy"]
        assert (out / "bundles" / objective / "int8" / "model_data.cc").exists()
    report = json.loads((out / "report" / "report.json").read_text())
    rows = {(s["objective"], s["level"]): s for s in report["summary"]}
    assert set(rows) == {(o, l) for o in ("weighted-ce", "clustered") for l in ("fp32", "int8", "int16x8")}
    for row in rows.values():
        assert row["status"] == "ok" and row["form"] == "stateful"
        assert row["event_f1"]["n"] == 1 and row["false_alarms_per_hour"]["n"] == 1  # measured on the stream
    shown = [r for r in summary["headline"].splitlines() if r.startswith("| weighted-ce | int8 |")]
    assert (
        shown and shown[0].split("|")[4].strip() == f"{rows[('weighted-ce', 'int8')]['event_f1']['mean']:.3f}"
    )
    training = report["training"]
    assert training["by_objective"]["clustered"]["vs_weighted_ce"]["paired_seeds"] == [0]
    assert {r["form"] for r in training["runs"]} == {"stateful"} and "test streams" in training["note"]
    mcu = [d for d in report["devices"] if d["profile"] == "cortex-m4-80mhz"]
    assert mcu and mcu[0]["levels"]["int8"]["status"] == "ok"  # estimated by the MCU simulator
    assert mcu[0]["levels"]["fp32"]["status"] == "cannot run" and mcu[0]["levels"]["fp32"]["reason"]
    pi = [d for d in report["devices"] if d["profile"] == "rpi-4"]  # left to `simulate --profile rpi-4`
    assert pi and {c["status"] for c in pi[0]["levels"].values()} == {"not simulated"}
    assert all(
        "not stateful ones" in c["reason"] and "--profile rpi-4" in c["reason"]
        for c in pi[0]["levels"].values()
    )
    assert (out / "report" / "report.html").stat().st_size > 20000  # plots embedded

    t0 = time.perf_counter()
    again = subprocess.run(
        [EDGE_SED, "demo", "--quick", "--out", out, "--profiles", "none", "--json"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(again.stdout)["runs"] == summary["runs"]
    resumed = json.loads((out / "demo.json").read_text())["stage_seconds"]
    assert resumed["train weighted-ce"] < 1 and resumed["convert clustered"] < 1  # nothing redone
    assert time.perf_counter() - t0 < first_s
