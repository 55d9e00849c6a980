"""Instruction counts of the project's C kernels on QEMU, and the cost coefficients fitted to them.

``python -m firmware_sim.calibrate`` (or ``edge-sed simulate --calibrate``):
1. builds firmware_sim/c (Makefile: arm-none-eabi-gcc -O2 -mthumb -mcpu=cortex-m4 / cortex-m7 /
   cortex-m33, newlib semihosting) for QEMU's mps2-an386 (Cortex-M4), mps2-an500 (Cortex-M7) and
   mps2-an505 (Cortex-M33);
2. runs each image with ``-icount shift=0,sleep=off`` (1 ns of virtual time per executed
   instruction) - bench.c reads SysTick (25 MHz: 40 instructions a tick; an505 20 MHz: 50)
   around ``reps`` calls of every kernel configuration, so the counts are exact to one tick per
   measurement; a loop of known length (counter_check) verifies the rate on every board;
3. checks every kernel's output checksum against the numpy reference (firmware_sim.kernels_ref);
   the CMSIS-DSP front end (frontend_cmsis.c), which has no bit-exact twin, against the float
   log-mel of edge_sed.core.frontend within CMSIS_FRONTEND_TOLERANCE nats on the bench frame;
4. fits, per build, instructions = a * MACs + b * outputs/units + c (least squares over the
   configurations of a kernel) and writes firmware_sim/c/counts.json: the raw counts, the fits,
   their worst residual, and the toolchain/QEMU versions.

The simulator reads only counts.json, so it needs neither QEMU nor the toolchain.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from edge_sed.core.atomic import write_json
from edge_sed.core.errors import EdgeSedError

from .kernels_ref import C_DIR, reference_checksum

COUNTS_JSON = C_DIR / "counts.json"
CMSIS_DSP_DIR = C_DIR.parent.parent / ".cache" / "cmsisdsp-1.10.3"
CMSIS_DSP_VERSION = "cmsisdsp 1.10.3 (PyPI source distribution; scripts/setup.sh unpacks it into .cache/)"
BUILDS = {"cortex-m4": "mps2-an386", "cortex-m7": "mps2-an500", "cortex-m33": "mps2-an505"}
QEMU_ARGS = [
    "-nographic",
    "-monitor",
    "none",
    "-serial",
    "none",
    "-semihosting-config",
    "enable=on,target=native",
    "-icount",
    "shift=0,sleep=off",
]
INSTALL_HINT = (
    "apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm make "
    "(Debian/Ubuntu; scripts/setup.sh installs them)"
)


class ToolMissing(EdgeSedError):
    """The ARM toolchain or QEMU is not installed."""


def check_tools() -> None:
    missing = [t for t in ("make", "arm-none-eabi-gcc", "qemu-system-arm") if shutil.which(t) is None]
    if missing:
        raise ToolMissing(f"calibration needs {', '.join(missing)}: {INSTALL_HINT}")


def _version(cmd: list[str]) -> str:
    return subprocess.run(cmd, capture_output=True, text=True).stdout.splitlines()[0].strip()


def make(out_dir: Path, target: str) -> subprocess.CompletedProcess:
    """Run firmware_sim/c's Makefile for ``target`` into ``out_dir``."""
    check_tools()
    if not (CMSIS_DSP_DIR / "Include" / "arm_math.h").is_file():
        raise ToolMissing(
            f"no CMSIS-DSP sources in {CMSIS_DSP_DIR}: run scripts/setup.sh (it unpacks the cmsisdsp "
            "source distribution from PyPI there)"
        )
    return subprocess.run(
        ["make", "-C", str(C_DIR), f"BUILD={out_dir}", f"CMSIS_DSP={CMSIS_DSP_DIR}", target],
        capture_output=True,
        text=True,
    )


def build(out_dir: Path) -> dict[str, Path]:
    """Build the kernel images; {build name: elf path}."""
    proc = make(out_dir, "all")
    if proc.returncode != 0:
        raise EdgeSedError(f"building firmware_sim/c failed: {proc.stderr.strip().splitlines()[-1:]}")
    return {name: out_dir / f"bench-{name}.elf" for name in BUILDS}


def run_on_qemu(elf: Path, board: str, timeout_s: float = 600) -> list[dict]:
    """Run one image; its RESULT lines as dicts."""
    check_tools()
    try:
        proc = subprocess.run(
            ["qemu-system-arm", "-M", board, *QEMU_ARGS, "-kernel", str(elf)],
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired:
        raise EdgeSedError(f"{elf.name} on QEMU {board}: no exit after {timeout_s:g} s") from None
    results = [
        json.loads(line[len("RESULT ") :]) for line in proc.stdout.splitlines() if line.startswith("RESULT ")
    ]
    values = {
        v["kernel"]: v["out"]
        for v in (
            json.loads(line[len("VALUES ") :])
            for line in proc.stdout.splitlines()
            if line.startswith("VALUES ")
        )
    }
    if proc.returncode != 0 or not results:
        raise EdgeSedError(
            f"{elf.name} on QEMU {board}: exit status {proc.returncode}, "
            f"{len(results)} results ({proc.stderr.strip()[:200]})"
        )
    checks = [r for r in results if r["kernel"] == "counter_check"]
    results = [r for r in results if r["kernel"] != "counter_check"]
    for c in checks:  # SUBS/NOP/BNE: 3 instructions an iteration, plus a few around it
        if not 0 <= c["insns"] - 3 * c["params"]["n"] <= 100:
            raise EdgeSedError(
                f"{elf.name} on QEMU {board}: a loop of {3 * c['params']['n']} instructions counted "
                f"{c['insns']}: the SysTick rate assumed for this board is wrong"
            )
    for r in results:
        r["insns_per_call"] = r["insns"] / r["reps"]
        if r["kernel"] == "frontend_frame_cmsis_q15":
            r["max_error_nats"] = round(cmsis_frontend_error(values.get(r["kernel"])), 4)
            r["matches_reference"] = r["max_error_nats"] <= CMSIS_FRONTEND_TOLERANCE
        else:
            r["reference_fnv"] = reference_checksum(r["kernel"], r["params"])
            r["matches_reference"] = r["fnv"] == r["reference_fnv"]
    return results


CMSIS_FRONTEND_TOLERANCE = 0.1  # nats, on the bench frame's 40 bands (measured: 0.02-0.04)
# what frontend_cmsis.c links from CMSIS-DSP's tables for a 512-point q15 RFFT (flash)
CMSIS_FRONTEND_TABLES = ("twiddleCoef_256_q15", "armBitRevIndexTable_fixed_256", "arm_cfft_sR_q15_len256")


def cmsis_frontend_error(values) -> float:
    """Largest |error| (nats) of the CMSIS-DSP front end's bench-frame output against
    edge_sed.core.frontend's float log-mel of the same samples, on the C front ends' scale."""
    from edge_sed.core.frontend import FrontendConfig, log_mel

    from .kernels_ref import ENERGY_SCALE, bench_samples

    if values is None or len(values) != 40:
        raise EdgeSedError("the CMSIS-DSP front end printed no VALUES line of 40 outputs")
    ref = log_mel((bench_samples() / 32768.0).astype(np.float32), FrontendConfig())[0]
    return float(np.abs(np.array(values) / 65536.0 - np.log(ENERGY_SCALE) - ref).max())


def linked_table_bytes(elf: Path, names=CMSIS_FRONTEND_TABLES) -> dict[str, int]:
    """Sizes of the named data symbols in a linked image (arm-none-eabi-nm -S)."""
    proc = subprocess.run(["arm-none-eabi-nm", "-S", str(elf)], capture_output=True, text=True, check=True)
    sizes = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[3] in names:
            sizes[parts[3]] = int(parts[1], 16)
    missing = set(names) - set(sizes)
    if missing:
        raise EdgeSedError(f"{elf.name}: CMSIS-DSP tables not linked: {', '.join(sorted(missing))}")
    return sizes


# ---------------------------------------------------------------------------- fitting


def _features(kernel: str, p: dict) -> tuple[list[str], list[float]]:
    """The regressors of a kernel's instruction count, and their values for one configuration."""
    if kernel == "fc_s8":
        return ["insns_per_mac", "insns_per_output", "insns_per_call"], [
            p["n_in"] * p["n_out"],
            p["n_out"],
            1,
        ]
    if kernel == "conv_gemm_s8":
        return (
            ["insns_per_mac", "insns_per_output", "insns_per_call"],
            [p["n_pix"] * p["n_in"] * p["n_out"], p["n_pix"] * p["n_out"], 1],
        )
    if kernel == "dwconv3x3_s8":
        return ["insns_per_mac", "insns_per_call"], [p["h"] * p["w"] * p["c"] * 9, 1]
    if kernel == "lstm_step_s8":
        h, i = p["n_units"], p["n_input"]
        return ["insns_per_mac", "insns_per_unit", "insns_per_call"], [4 * h * (i + h), h, 1]
    if kernel in ("add_s8", "mul_s8"):
        return ["insns_per_element", "insns_per_call"], [p["n"], 1]
    if kernel in ("frontend_frame_q15", "frontend_frame_cmsis_q15"):
        return ["insns_per_frame"], [1]
    if kernel == "pcen_frame_q16":
        return ["insns_per_band", "insns_per_call"], [p["n_bands"], 1]
    raise ValueError(kernel)


COEFFICIENT_OF = {
    "fc_s8": "fully_connected",
    "conv_gemm_s8": "conv",
    "dwconv3x3_s8": "depthwise_conv",
    "lstm_step_s8": "lstm_step",
    "add_s8": "elementwise",
    "mul_s8": "multiply",
    "frontend_frame_cmsis_q15": "frontend",
    "frontend_frame_q15": "frontend_project_fft",
    "pcen_frame_q16": "pcen",
}


def fit(results: list[dict]) -> dict:
    """Least-squares fit per kernel: {coefficient group: {name: value, ..., max_residual_pct}}."""
    out = {}
    for kernel, group in COEFFICIENT_OF.items():
        rows = [r for r in results if r["kernel"] == kernel]
        if not rows:
            continue
        names = _features(kernel, rows[0]["params"])[0]
        x = np.array([_features(kernel, r["params"])[1] for r in rows], float)
        y = np.array([r["insns_per_call"] for r in rows], float)
        coef = np.linalg.lstsq(x, y, rcond=None)[0]
        pred = x @ coef
        out[group] = {n: round(float(c), 4) for n, c in zip(names, coef)}
        out[group]["configurations"] = len(rows)
        out[group]["max_residual_pct"] = round(float(np.max(np.abs(pred - y) / y)) * 100, 3)
    return out


def calibrate(progress=None) -> dict:
    """Build, run, check, fit; write counts.json; return its content."""
    with tempfile.TemporaryDirectory(prefix="edge-sed-calib-") as tmp:
        elves = build(Path(tmp))
        builds = {}
        for name, board in BUILDS.items():
            if progress:
                progress(f"running the {name} build on QEMU {board}")
            results = run_on_qemu(elves[name], board)  # (counter_check verified and dropped)
            bad = [r for r in results if not r["matches_reference"]]
            if bad:
                b = bad[0]
                raise EdgeSedError(
                    f"{name}: {b['kernel']} {b['params']} output "
                    + (
                        f"checksum {b['fnv']} differs from the numpy reference {b['reference_fnv']}"
                        if "reference_fnv" in b
                        else f"is {b['max_error_nats']} nats from the float log-mel "
                        f"(tolerance {CMSIS_FRONTEND_TOLERANCE})"
                    )
                )
            builds[name] = {
                "board": board,
                "cflags": f"-O2 -mthumb -mcpu={name}",
                "counter_check": "ok",
                "results": results,
                "coefficients": fit(results),
                "cmsis_frontend_tables": linked_table_bytes(elves[name]),
            }
    report = {
        "generated_by": "python -m firmware_sim.calibrate",
        "method": (
            "instructions counted by QEMU -icount shift=0 (1 ns per instruction) read through SysTick "
            "(25 MHz, 40 instructions per tick) around `reps` calls; cycles = instructions * profile cpi"
        ),
        "toolchain": _version(["arm-none-eabi-gcc", "--version"]),
        "cmsis_dsp": CMSIS_DSP_VERSION,
        "qemu": _version(["qemu-system-arm", "--version"]),
        "builds": builds,
    }
    write_json(report, COUNTS_JSON)
    return report


def load_counts(path: Path = COUNTS_JSON) -> dict:
    if not path.is_file():
        raise EdgeSedError(
            f"{path}: no instruction counts; run `python -m firmware_sim.calibrate` ({INSTALL_HINT})"
        )
    return json.loads(path.read_text())


def coefficients(build_name: str, counts: dict | None = None) -> dict:
    counts = counts or load_counts()
    try:
        return counts["builds"][build_name]["coefficients"]
    except KeyError:
        raise EdgeSedError(
            f"counts.json has no kernel build {build_name!r} (has: {', '.join(counts.get('builds', {}))})"
        ) from None


DSCNN_TFLITE = Path(__file__).parent / "data" / "dscnn-kws-int8.tflite"
# Published latencies of the MLPerf Tiny keyword-spotting DS-CNN (int8), as quoted in issue 5:
# MLPerf Tiny v1.0 inference results (mlcommons.org/benchmarks/inference-tiny).
DSCNN_PUBLISHED = [
    {
        "device": "STM32 L4R5 (Cortex-M4) @ 120 MHz",
        "profile": "cortex-m4-80mhz",
        "clock_hz": 120_000_000,
        "published_ms": 75.0,
    },
    {
        "device": "nRF5340 (Cortex-M33) @ 128 MHz",
        "profile": "cortex-m33-128mhz",
        "clock_hz": 128_000_000,
        "published_ms": 76.0,
    },
]
DSCNN_TOLERANCE = 0.35


def dscnn_check(counts: dict | None = None) -> dict:
    """The estimator on the MLPerf Tiny DS-CNN against the published latencies: ratio
    estimate / published for each device (goal: within +-35 %)."""
    from .cost import model_cost
    from .profiles import load_profile

    counts = counts or load_counts()
    model = DSCNN_TFLITE.read_bytes()
    rows = []
    for pub in DSCNN_PUBLISHED:
        profile = load_profile(pub["profile"])
        cost = model_cost(model, coefficients(profile.kernel_build, counts))
        cycles = cost["insns"] * profile.cpi
        ms = cycles / pub["clock_hz"] * 1e3
        ratio = ms / pub["published_ms"]
        rows.append(
            {
                **pub,
                "kernel_build": profile.kernel_build,
                "cpi": profile.cpi,
                "macs": cost["macs"],
                "insns": round(cost["insns"]),
                "cycles": round(cycles),
                "estimated_ms": round(ms, 2),
                "ratio": round(ratio, 3),
                "within_tolerance": abs(ratio - 1) <= DSCNN_TOLERANCE,
            }
        )
    return {
        "model": str(DSCNN_TFLITE.relative_to(Path(__file__).parent.parent)),
        "model_note": (
            "MLPerf Tiny KWS DS-CNN architecture, random weights, int8 (firmware_sim/make_dscnn.py)"
        ),
        "tolerance": DSCNN_TOLERANCE,
        "devices": rows,
    }


def print_report(report: dict, dscnn: dict, echo=print) -> None:
    for name, b in report["builds"].items():
        echo(f"{name} (QEMU {b['board']}, {b['cflags']}): instructions per call")
        for r in b["results"]:
            check = (
                ("= numpy reference" if r["matches_reference"] else "DIFFERS from numpy")
                if "reference_fnv" in r
                else f"{r['max_error_nats']:.3f} nats from the float log-mel"
            )
            echo(
                f"  {r['kernel']:24s} {json.dumps(r['params']):44s} {r['insns_per_call']:12.1f}  "
                f"output {check}"
            )
        for group, c in b["coefficients"].items():
            echo(f"  {group:16s} {c}")
    echo("DS-CNN (MLPerf Tiny KWS) estimate vs published:")
    for d in dscnn["devices"]:
        echo(
            f"  {d['device']:36s} {d['estimated_ms']:7.1f} ms vs {d['published_ms']:.0f} ms: "
            f"ratio {d['ratio']:.2f} "
            f"({'within' if d['within_tolerance'] else 'OUTSIDE'} +-{dscnn['tolerance']:.0%})"
        )


def main() -> None:
    report = calibrate(progress=print)
    print_report(report, dscnn_check(report))
    print(f"wrote {COUNTS_JSON}")


if __name__ == "__main__":
    main()
