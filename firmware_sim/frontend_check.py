"""Do the device front ends compute the features the model was trained on? Runs both C front ends
(kernels.c ``frontend_frame_q15``, the project's FFT; frontend_cmsis.c
``frontend_frame_cmsis_q15``, CMSIS-DSP's) on QEMU's Cortex-M4 over real audio at several levels,
and compares their log-mel with edge_sed.core.frontend's float log-mel of the same int16 samples:

    python -m firmware_sim.frontend_check [AUDIO ...] [--levels=-20,-30,-40] [--seconds 20] [--json]

Each file (any soundfile format, 16 kHz mono; none given: a synthetic mix of tones, chirps and
noise) is scaled to each RMS level (dBFS) and quantized to int16 as a microphone would give it.
Per front end and level: the absolute error in nats over the bands whose float mel energy is
at least ``--floor`` (quieter bands are below both fixed-point front ends' resolution), median,
99th percentile and max, and the share of bands that were above the floor. The project's own
front end is also checked bit for bit against its numpy twin (firmware_sim.kernels_ref). And
PCEN: the C PCEN stage (``pcen_frame_q16``, through its bit-exact numpy twin) on each front end's
output, against edge_sed.core.frontend's float PCEN of the same samples.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from edge_sed.core.errors import EdgeSedError
from edge_sed.core.frontend import FrontendConfig, _frame, compress, mel_energies

from .calibrate import make
from .kernels_ref import ENERGY_SCALE, frontend_frame_q15_values, pcen_frame_q16_values

KERNELS = ("frontend_frame_q15", "frontend_frame_cmsis_q15")
N_MELS = 40


def synthetic_audio(seconds: float, seed: int = 0) -> np.ndarray:
    """Tones, a chirp and noise bursts at 16 kHz: a spread of spectra without any data set."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    x = 0.3 * np.sin(2 * np.pi * (300 + 200 * np.sin(2 * np.pi * 0.5 * t)) * t)
    x += 0.2 * np.sin(2 * np.pi * (500 * t + 150 * t**2))
    x += rng.standard_normal(len(t)) * (0.05 + 0.2 * (np.sin(2 * np.pi * 0.7 * t) > 0.6))
    return x.astype(np.float32)


def at_level(audio: np.ndarray, dbfs: float) -> np.ndarray:
    """int16 samples of ``audio`` scaled to an RMS of ``dbfs`` (clipped as an ADC would)."""
    rms = float(np.sqrt(np.mean(audio.astype(np.float64) ** 2)))
    if rms == 0:
        raise EdgeSedError("silent audio: nothing to compare")
    x = audio * (10 ** (dbfs / 20) / rms)
    return np.clip(np.round(x * 32768), -32768, 32767).astype(np.int16)


def build_dump(out_dir: Path) -> Path:
    elf = out_dir / "frontend-dump.elf"
    proc = make(out_dir, str(elf))
    if proc.returncode != 0:
        raise EdgeSedError(
            f"building firmware_sim/c frontend-dump.elf failed: {proc.stderr.strip().splitlines()[-1:]}"
        )
    return elf


def run_dump(elf: Path, frames: np.ndarray, work: Path) -> dict[str, np.ndarray]:
    """Both C front ends on (F, 400) int16 frames on QEMU mps2-an386: {kernel: (F, 40) Q16}."""
    (work / "frames.s16").write_bytes(np.ascontiguousarray(frames, "<i2").tobytes())
    proc = subprocess.run(
        [
            "qemu-system-arm",
            "-M",
            "mps2-an386",
            "-nographic",
            "-monitor",
            "none",
            "-serial",
            "none",
            "-semihosting-config",
            "enable=on,target=native",
            "-kernel",
            str(elf),
        ],
        capture_output=True,
        text=True,
        cwd=work,
        timeout=600,
    )
    if proc.returncode != 0 or f"{len(frames)} frames" not in proc.stdout:
        raise EdgeSedError(
            f"frontend-dump on QEMU: exit status {proc.returncode}: {proc.stdout.strip()[-200:]}"
        )
    out = np.frombuffer((work / "features.s32").read_bytes(), "<i4").reshape(len(frames), 2, N_MELS)
    return {k: out[:, i] for i, k in enumerate(KERNELS)}


def compare(samples: np.ndarray, c_out: dict, floor: float) -> dict:
    """Error statistics of each C front end against the float log-mel of the same samples."""
    cfg = FrontendConfig()
    mel = mel_energies(samples.astype(np.float32) / 32768.0, cfg)
    ref = np.log(mel + 1e-6)
    keep = mel >= floor
    rows = {}
    for k, q16 in c_out.items():
        err = np.abs(q16 / 65536.0 - np.log(ENERGY_SCALE) - ref)[keep]
        rows[k] = {
            "median": float(np.median(err)),
            "p99": float(np.percentile(err, 99)),
            "max": float(err.max()),
        }
        # the C PCEN stage (its bit-exact numpy twin) on this front end's output, from the first
        # frame, against the float PCEN of the same samples: every band (PCEN has no floor)
        pcen_c = pcen_frame_q16_values(q16)[0] / 65536.0
        pcen_err = np.abs(pcen_c - compress(mel, FrontendConfig(compression="pcen")))
        rows[k]["pcen"] = {
            "median": float(np.median(pcen_err)),
            "p99": float(np.percentile(pcen_err, 99)),
            "max": float(pcen_err.max()),
        }
    diff = np.abs(c_out[KERNELS[0]] - c_out[KERNELS[1]])[keep] / 65536.0
    return {
        "bands_above_floor": float(keep.mean()),
        "kernels": rows,
        "between_kernels": {"median": float(np.median(diff)), "p99": float(np.percentile(diff, 99))},
    }


def check(
    sources: list[tuple[str, np.ndarray]], levels: list[float], floor: float = 1e-4, twin_frames: int = 200
) -> dict:
    """For every source and level: compare() of both C front ends; and the project's front end
    against its numpy twin on the first ``twin_frames`` frames (bit for bit)."""
    cfg = FrontendConfig()
    with tempfile.TemporaryDirectory(prefix="edge-sed-fe-") as tmp:
        elf = build_dump(Path(tmp))
        results, twin_equal, twin_total = [], 0, 0
        for name, audio in sources:
            for level in levels:
                samples = at_level(audio, level)
                frames = _frame(samples, cfg)
                if not len(frames):
                    raise EdgeSedError(f"{name}: shorter than one {cfg.window_samples}-sample frame")
                c_out = run_dump(elf, frames, Path(tmp))
                for i in range(min(twin_frames, len(frames))):
                    twin_equal += int(
                        np.array_equal(frontend_frame_q15_values(frames[i]), c_out[KERNELS[0]][i])
                    )
                    twin_total += 1
                results.append(
                    {
                        "source": name,
                        "level_dbfs": level,
                        "frames": len(frames),
                        **compare(samples, c_out, floor),
                    }
                )
    return {"floor": floor, "twin_frames": twin_total, "twin_equal": twin_equal, "results": results}


def read_source(path: str, seconds: float) -> tuple[str, np.ndarray]:
    from edge_sed.core.audio_io import read_audio

    audio = read_audio(path, 16000)
    return Path(path).name, audio[: int(seconds * 16000)]


def print_table(report: dict, echo=print) -> None:
    echo(
        "|error| in nats vs edge_sed.core.frontend's float log-mel, "
        f"bands with mel energy >= {report['floor']:g}"
    )
    echo(
        "| source | level dBFS | bands kept | project FFT median / p99 / max | "
        "CMSIS-DSP median / p99 / max | between p99 |"
    )
    echo("|---|---|---|---|---|---|")
    for r in report["results"]:
        a, b = (r["kernels"][k] for k in KERNELS)
        echo(
            f"| {r['source']} | {r['level_dbfs']:g} | {r['bands_above_floor']:.0%} | "
            f"{a['median']:.3f} / {a['p99']:.3f} / {a['max']:.2f} | "
            f"{b['median']:.3f} / {b['p99']:.3f} / {b['max']:.2f} | "
            f"{r['between_kernels']['p99']:.3f} |"
        )
    echo("PCEN (the C stage on each front end's output) |error| vs the float PCEN, every band:")
    echo("| source | level dBFS | project FFT median / p99 / max | CMSIS-DSP median / p99 / max |")
    echo("|---|---|---|---|")
    for r in report["results"]:
        a, b = (r["kernels"][k]["pcen"] for k in KERNELS)
        echo(
            f"| {r['source']} | {r['level_dbfs']:g} | {a['median']:.3f} / {a['p99']:.3f} / {a['max']:.2f} | "
            f"{b['median']:.3f} / {b['p99']:.3f} / {b['max']:.2f} |"
        )
    echo(f"project FFT on QEMU = its numpy twin on {report['twin_equal']} of {report['twin_frames']} frames")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("audio", nargs="*", help="audio files (16 kHz mono); none: a synthetic signal")
    ap.add_argument(
        "--levels",
        default="-20,-30,-40",
        help="RMS levels in dBFS, comma-separated, as --levels=-25,-35 (default -20,-30,-40)",
    )
    ap.add_argument("--seconds", type=float, default=20.0, help="at most this much of each file (default 20)")
    ap.add_argument(
        "--floor", type=float, default=1e-4, help="compare bands with at least this mel energy (default 1e-4)"
    )
    ap.add_argument("--json", action="store_true", help="print the report as JSON")
    args = ap.parse_args(argv)
    try:
        levels = [float(v) for v in args.levels.split(",")]
        sources = [read_source(p, args.seconds) for p in args.audio] or [
            ("synthetic", synthetic_audio(args.seconds))
        ]
        report = check(sources, levels, args.floor)
    except (EdgeSedError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2)) if args.json else print_table(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
