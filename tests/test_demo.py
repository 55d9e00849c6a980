"""`edge-sed demo --quick`: every stage of the main job on a tiny data set, as a user runs it, and a
re-run that resumes instead of redoing the work."""

import json
import subprocess
import sys
import time
from pathlib import Path

EDGE_SED = str(Path(sys.executable).with_name("edge-sed"))


def test_quick_demo_end_to_end_then_resumes(tmp_path):
    out = tmp_path / "demo"
    t0 = time.perf_counter()
    res = subprocess.run([EDGE_SED, "demo", "--quick", "--out", out, "--profiles", "cortex-m4-80mhz"],
                         capture_output=True, text=True, timeout=900)
    first_s = time.perf_counter() - t0
    assert res.returncode == 0, res.stderr[-3000:]
    for stage in ("[1/6]", "[2/6]", "[3/6]", "[4/6]", "[5/6]", "[6/6]"):
        assert stage in res.stdout
    assert "### Accuracy and host latency per quantization level" in res.stdout
    assert f"Report: {out / 'report' / 'report.html'}" in res.stdout
    summary = json.loads((out / "demo.json").read_text())
    assert set(summary["runs"]) == {"weighted-ce", "clustered"}
    for objective in ("weighted-ce", "clustered"):
        assert (out / "runs" / objective / "metrics.json").exists()
        assert (out / "bundles" / objective / "int8" / "model_data.cc").exists()
    report = json.loads((out / "report" / "report.json").read_text())
    assert {s["objective"] for s in report["summary"]} == {"weighted-ce", "clustered"}
    assert report["training"]["by_objective"]["clustered"]["vs_weighted_ce"]["paired_seeds"] == [0]
    mcu = [d for d in report["devices"] if d["profile"] == "cortex-m4-80mhz"]
    assert mcu and mcu[0]["levels"]["int8"]["status"] == "ok"  # estimated by the MCU simulator
    assert mcu[0]["levels"]["fp32"]["status"] == "cannot run" and mcu[0]["levels"]["fp32"]["reason"]
    assert (out / "report" / "report.html").stat().st_size > 20000  # plots embedded

    t0 = time.perf_counter()
    again = subprocess.run([EDGE_SED, "demo", "--quick", "--out", out, "--profiles", "none", "--json"],
                           capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(again.stdout)["runs"] == summary["runs"]
    resumed = json.loads((out / "demo.json").read_text())["stage_seconds"]
    assert resumed["train weighted-ce"] < 1 and resumed["convert clustered"] < 1  # nothing redone
    assert time.perf_counter() - t0 < first_s
