"""The Raspberry Pi simulator (firmware_sim.pi): bundles run by LiteRT in an emulated aarch64 Debian
userland give the host's scores, and QEMU's instruction counts per inference are stable and agree
with QEMU's own insn plugin. The first run builds the emulated root and the plugins (~1 min, cached
under $EDGE_SED_CACHE or ~/.cache/edge-sed)."""

import subprocess
import sys

import numpy as np
import pytest

from edge_sed.core.bundle import BundleRunner, load_bundle, output_tolerance

from conftest import needs_qemu


def test_parse_marks_removes_marker_cost_and_nesting():
    from firmware_sim.pi import parse_marks

    def tag(kind, b, end):
        return (kind * 64 + b) * 2 + end

    # empty pairs cost 100 each; a predict (kind 3) holds an invoke (kind 2) of 5000
    text = "\n".join(
        [
            f"{tag(1, 0, 0)} 1000",
            f"{tag(1, 0, 1)} 1100",
            f"{tag(1, 0, 0)} 1200",
            f"{tag(1, 0, 1)} 1300",
            f"{tag(3, 1, 0)} 2000",
            f"{tag(2, 1, 0)} 2500",
            f"{tag(2, 1, 1)} 7600",
            f"{tag(3, 1, 1)} 8200",
            "total 9000",
        ]
    )
    regions, total = parse_marks(text)
    assert total == 9000
    assert regions[(2, 1)] == [5000.0]  # 5100 - one marker
    assert regions[(3, 1)] == [6200 - 100 * 3]  # minus its own marker and the two nested ones


def test_pi_profiles_name_their_core_and_sources():
    from firmware_sim.pi_root import QEMU_CPUS
    from firmware_sim.profiles import load_profiles

    profiles = {p.name: p for p in load_profiles("pi")}
    assert set(profiles) == {"rpi-zero-2w", "rpi-4", "rpi-5"}
    assert [profiles[n].qemu_cpu for n in ("rpi-zero-2w", "rpi-4", "rpi-5")] == [
        "cortex-a53",
        "cortex-a72",
        "cortex-a76",
    ]
    for p in profiles.values():
        assert p.qemu_cpu in QEMU_CPUS and p.cpi > 0 and "assumption" in p.sources["cpi"]


@pytest.fixture(scope="module")
def emulated(tiny_bundles):
    """Two emulated runs (Cortex-A53) of the tiny int8 and fp32 bundles on their check windows."""
    from firmware_sim.pi import loop_audio, measure_pi

    out, _ = tiny_bundles
    paths = [out / "int8", out / "fp32"]
    x = load_bundle(paths[0]).check_data()["x"]
    runs = [measure_pi(paths, "cortex-a53", x, loop_audio(1.5)) for _ in range(2)]
    return paths, x, runs


@needs_qemu
def test_emulated_int8_and_fp32_give_the_hosts_scores(emulated):
    paths, x, runs = emulated
    for path, e in zip(paths, runs[0]["bundles"]):
        bundle = load_bundle(path)
        host = BundleRunner(bundle).predict_many(x)
        assert e["scores"].shape == host.shape
        assert e["xnnpack_applied"] is True  # LiteRT set up as on a Pi, not a crippled fallback
        assert (e["scores"].argmax(1) == host.argmax(1)).all()
        limit = 1e-5 if bundle.level == "fp32" else output_tolerance(bundle)
        assert np.abs(e["scores"] - host).max() <= limit, bundle.level
    # the emulation is deterministic: the second run's scores are bit-identical
    for a, b in zip(runs[0]["bundles"], runs[1]["bundles"]):
        assert np.array_equal(a["scores"], b["scores"])


@needs_qemu
def test_instruction_counts_per_inference_are_stable(emulated):
    from firmware_sim.pi import loop_costs, per_inference

    paths, x, runs = emulated
    for b in range(len(paths)):
        first, second = (per_inference(r["bundles"][b]["invoke"]) for r in runs)
        assert first > 1e4  # a real model's work, not the markers'
        assert abs(first - second) / first <= 0.01
        e = runs[0]["bundles"][b]
        assert len(e["invoke"]) == len(x) and per_inference(e["predict"]) > first  # predict = invoke + glue
        costs = loop_costs(e)
        assert costs["frontend_insns_per_frame"] > 1e4 and costs["smoother_insns_per_decision"] > 0
        # the loop's model cost (predict + Detector glue) is the predict's, within 10 %
        assert abs(costs["model_insns_per_inference"] / per_inference(e["predict"]) - 1) < 0.10


@needs_qemu
def test_marker_counts_agree_with_qemus_insn_plugin(tiny_bundles, tmp_path):
    """Independent check of the counting: QEMU's own libinsn.so (one inline add per instruction),
    loaded into the same process, counts what pi_marks.c counts (one add per block); and the
    whole-process difference between 10 and 50 predicts, / 40, is the per-predict count the
    markers give (start-up varies by ~1 M instructions from run to run, hence 40 extra predicts
    and a 3 % margin)."""
    from firmware_sim import pi_root
    from firmware_sim.pi import parse_marks, per_inference

    out, _ = tiny_bundles
    path = out / "int8"
    np.save(tmp_path / "x.npy", load_bundle(path).check_data()["x"][:1])
    script = tmp_path / "n_predicts.py"
    script.write_text(
        "import os, sys, numpy as np\n"
        "from edge_sed.core.bundle import BundleRunner, load_bundle\n"
        f"r = BundleRunner(load_bundle({str(path)!r}))\n"
        f"w = np.load({str(tmp_path / 'x.npy')!r})[0]\n"
        "def mark(tag):\n"
        "    try:\n"
        "        os.lseek(-1517, tag, 0)\n"
        "    except OSError:\n"
        "        pass\n"
        "for _ in range(20):\n"
        "    mark(2); mark(3)\n"  # empty regions: the markers' own cost
        "for _ in range(int(sys.argv[1])):\n"
        "    mark(384); r.predict(w); mark(385)\n"
    )  # kind 3 (predict), bundle 0
    root, plugins = pi_root.ensure_root(), pi_root.ensure_plugins()
    app = pi_root.stage_edge_sed(tmp_path / "app")
    totals, marked = {}, {}
    for n in (10, 50):
        log, marks = tmp_path / f"insn-{n}.log", tmp_path / f"marks-{n}.txt"
        cmd, env = pi_root.guest_command(
            root,
            ["python3", str(script), str(n)],
            "cortex-a72",
            plugins["insn"],
            "inline=on",
            extra_path=[str(app)],
        )
        cmd[1:1] = ["-d", "plugin", "-D", str(log), "-plugin", f"{plugins['marks']},out={marks}"]
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        totals[n] = int(log.read_text().split("insns:")[1].split()[0])
        regions, total = parse_marks(marks.read_text())
        # the two plugins count the same instructions (per-block counting may add the rest of a block
        # that exits early, e.g. an exclusive-access restart: a few hundred in 5e8)
        assert abs(total / totals[n] - 1) < 1e-5
        assert len(regions[(3, 0)]) == n
        # steady state: the first predicts still warm up (allocations, caches: 1-2 % more on this
        # Pi root's ai-edge-litert/numpy), so both runs are compared after the first five
        marked[n] = float(np.median(regions[(3, 0)][5:]))
        assert per_inference(regions[(3, 0)]) == pytest.approx(marked[n], rel=0.03)
    assert abs(marked[50] / marked[10] - 1) < 0.01, marked
    per_predict = (totals[50] - totals[10]) / 40
    assert abs(per_predict / marked[50] - 1) < 0.03, (per_predict, marked[50])


@needs_qemu
def test_simulate_profile_runs_the_stream_on_the_device_clock(tiny_bundles, tiny_data):
    from edge_sed.data.streams import make_stream
    from firmware_sim import pi
    from firmware_sim.profiles import load_profile

    out, _ = tiny_bundles
    bundle = load_bundle(out / "int8")
    audio, annotations = make_stream(tiny_data, 30.0, 4, seed=1)
    model = pi.prepare(bundle, data="check")
    rec = pi.simulate_profile(model, load_profile("rpi-zero-2w"), audio, annotations, {"source": "test"})
    assert rec["kind"] == "pi" and rec["profile"] == "rpi-zero-2w" and rec["qemu_cpu"] == "cortex-a53"
    assert rec["parity"]["ok"], rec["parity"]
    assert rec["cost"]["insns_per_inference"] > 1e4
    want_ms = rec["cost"]["insns_per_inference"] * 1.3 / 1e9 * 1e3
    assert rec["cost"]["est_ms_per_inference"] == pytest.approx(want_ms)
    assert "estimate" in rec["estimate_note"]
    clock = rec["clock"]
    assert clock["blocks"] == len(audio) // 320 and 0 < clock["duty_cycle"] < 1 and clock["overruns"] == 0
    assert clock["decisions"] > 0 and clock["decision_latency_worst_ms"] > 0
    assert 0 <= rec["events"]["f1"] <= 1 and rec["events"]["reference"] == len(annotations)
    # a 30x slower core (same instructions) shows up on the clock, not in the scores
    slow = load_profile("rpi-zero-2w").with_changes(clock_hz=10_000_000)
    rec_slow = pi.simulate_profile(model, slow, audio, annotations, {"source": "test"})
    assert rec_slow["clock"]["duty_cycle"] > 50 * clock["duty_cycle"]
    assert rec_slow["parity"] == rec["parity"]


@needs_qemu
def test_pi_shell_runs_a_command_on_emulated_arm():
    run = [sys.executable, "-c", "import sys; from edge_sed.cli import main; sys.exit(main())", "pi-shell"]
    proc = subprocess.run(
        run
        + [
            "--profile",
            "rpi-5",
            "--",
            "python3",
            "-c",
            "import platform, numpy, ai_edge_litert, edge_sed.core.bundle; print(platform.machine())",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "aarch64"
    proc = subprocess.run(
        run + ["--profile", "cortex-m4-80mhz", "--", "python3"], capture_output=True, text=True
    )
    assert (
        proc.returncode == 2
        and proc.stderr.startswith("error: ")
        and len(proc.stderr.strip().splitlines()) == 1
    )
    proc = subprocess.run(
        run + ["--", "python3", "-c", "raise SystemExit(7)"], capture_output=True, text=True
    )
    assert proc.returncode == 7
