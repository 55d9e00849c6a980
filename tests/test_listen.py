"""edge-sed listen: the loop on a file, on a real PortAudio input device (a PulseAudio null sink's
monitor, fed by paplay), and every fault: no microphone, unknown device, tampered or missing
bundle, SIGTERM / Ctrl-C, kill -9 (log intact), device lost mid-stream, overflow."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import textwrap
from pathlib import Path

import numpy as np
import pytest

from edge_sed.core.audio_io import StreamingResampler, read_audio, resample_poly, write_audio
from edge_sed.listen.run import run_loop
from edge_sed.listen.sources import FileSource
from edge_sed.core.bundle import load_bundle
from edge_sed.core.loop import Detector
from edge_sed.core.smoother import Smoother

EDGE_SED = [sys.executable, "-c", "import sys; from edge_sed.cli import main; sys.exit(main())"]
ROOT = Path(__file__).resolve().parents[1]


def edge_sed(*args, env=None, timeout=120, **kw):
    return subprocess.run(
        EDGE_SED + [str(a) for a in args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=ROOT,
        **kw,
    )


def spawn(*args, env=None):
    return subprocess.Popen(
        EDGE_SED + [str(a) for a in args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


# ----------------------------------------------------------------------------- pure parts


@pytest.mark.parametrize("from_hz", [48000, 44100, 8000])
def test_streaming_resampler_is_resample_poly_block_by_block(from_hz):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(from_hz // 2).astype(np.float32)
    r = StreamingResampler(from_hz, 16000)
    out, i = [], 0
    while i < len(x):
        n = int(rng.integers(1, 2000))
        out.append(r.push(x[i : i + n]))
        i += n
    y = np.concatenate(out)
    ref = resample_poly(x, 16000, from_hz)
    assert len(ref) - len(y) < 40  # only the last outputs wait for input that never came
    np.testing.assert_allclose(y, ref[: len(y)], atol=1e-5)


def test_file_source_real_time_pace(tmp_path):
    write_audio(tmp_path / "a.wav", np.zeros(16000 * 3, np.float32))
    now = [0.0]
    sleeps = []

    def sleep(s):
        sleeps.append(s)
        now[0] += s

    src = FileSource(tmp_path / "a.wav", realtime=True, clock=lambda: now[0], sleep=sleep)
    arrivals = [t for _, t in src.blocks()]
    assert len(arrivals) == 150 and arrivals[-1] == pytest.approx(3.0) and sum(sleeps) == pytest.approx(3.0)
    fast = FileSource(tmp_path / "a.wav", clock=lambda: 0.0, sleep=sleep)
    assert sum(len(b) for b, _ in fast.blocks()) == 48000


class FlakySource:
    """Blocks with counted overflows, as a callback reports them; the loop must go on."""

    name, capture_hz = "flaky", 16000

    def __init__(self, audio):
        self.audio, self.overflows, self.dropped_blocks = audio, 0, 0

    def blocks(self):
        for i in range(0, len(self.audio), 320):
            if i % 16000 == 0:
                self.overflows += 1
            yield self.audio[i : i + 320], 0.0


def test_overflows_are_counted_and_the_loop_goes_on(tiny_bundles):
    det = Detector(load_bundle(tiny_bundles[0] / "int8"), hop_frames=25)
    summary = run_loop(det, FlakySource(np.zeros(16000 * 5, np.float32)), [], clock=lambda: 0.0)
    assert summary["overflows"] == 5 and summary["audio_s"] == 5.0 and summary["stopped_by"] == "end"
    assert summary["decisions"] == 1 + (498 - 98) // 25


# --------------------------------------------------------------------- the command, on a file


@pytest.fixture(scope="module")
def stream_file(tmp_path_factory):
    from edge_sed.data.datasets import load_clips
    from edge_sed.data.streams import make_stream, write_stream
    from edge_sed.data.synth import write_dataset

    root = tmp_path_factory.mktemp("stream")
    clips = load_clips(
        write_dataset(
            root / "held", {"dog": 3, "baby_cry": 3, "gunshot": 3, "background": 6}, seed=77, workers=1
        )
    )
    audio, ann = make_stream(clips, duration_s=20.0, n_events=4, seed=1, ebr_db=12.0)
    write_stream(root / "s.wav", audio, ann)
    return root / "s.wav"


def test_listen_file_json_and_log(tiny_bundles, stream_file, tmp_path):
    log = tmp_path / "ev.jsonl"
    r = edge_sed(
        "listen",
        "--bundle",
        tiny_bundles[0] / "int8",
        "--file",
        stream_file,
        "--json",
        "--log",
        log,
        "--threshold",
        "0.3",
        "--min-count",
        "1",
    )
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["audio_s"] == 20.0 and s["stopped_by"] == "end" and s["overflows"] == 0
    assert s["decisions"] == 1 + (1998 - 98) // 25 and s["inference_ms_p50"] > 0
    assert 0 < s["cpu_percent_one_core"] and s["hop_ms"] == 250
    lines = log.read_text().splitlines()
    assert len(lines) == s["events"] == sum(s["events_by_class"].values()) == len(s["detected"])
    for line, ev in zip(lines, s["detected"]):
        rec = json.loads(line)
        assert set(rec) == {"time", "stream_s", "onset_s", "class", "score", "decision_latency_ms"}
        assert rec["stream_s"] == ev["stream_s"] and rec["class"] == ev["class"] != "background"
        assert rec["onset_s"] == ev["onset_s"] <= rec["stream_s"]
    # the same file again appends
    edge_sed(
        "listen",
        "--bundle",
        tiny_bundles[0] / "int8",
        "--file",
        stream_file,
        "--json",
        "--log",
        log,
        "--threshold",
        "0.3",
        "--min-count",
        "1",
    )
    assert len(log.read_text().splitlines()) == 2 * len(lines)


def test_listen_plain_lines_and_duration(tiny_bundles, stream_file):
    r = edge_sed(
        "listen",
        "--bundle",
        tiny_bundles[0] / "int8",
        "--file",
        stream_file,
        "--duration",
        "5",
        "--threshold",
        "0",
    )
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[-1].startswith("5.0 s of audio from") and "stopped by duration" in lines[-1]
    assert all(" s  " in l for l in lines[:-1])  # one plain line per event


# ------------------------------------------------------- --file - and named pipes (streamed)

PIPE_ARGS = ("--json", "--threshold", "0.3", "--min-count", "1")


def _events(stdout: str) -> tuple:
    s = json.loads(stdout)
    assert s["stopped_by"] == "end" and s["events"] > 0, s  # no events would prove nothing
    return s["audio_s"], s["decisions"], [(e["class"], e["stream_s"], e["score"]) for e in s["detected"]]


def _feed(fifo: Path, data: bytes, first: int = 0, go=None, errors=None) -> threading.Thread:
    """A writer thread: opens ``fifo`` (waiting for the reader), writes ``data[:first]``, waits for
    ``go`` (if given), writes the rest and closes (the end of the stream)."""

    def write():
        try:
            with open(fifo, "wb") as f:
                f.write(data[:first])
                f.flush()
                if go is not None and not go.wait(60):
                    raise TimeoutError("the reader never took the first block")
                f.write(data[first:])
        except Exception as exc:  # noqa: BLE001 - reported by the test
            (errors if errors is not None else []).append(exc)

    t = threading.Thread(target=write, daemon=True)
    t.start()
    return t


def test_listen_file_dash_reads_a_wav_piped_to_stdin(tiny_bundles, stream_file):
    """`arecord -t wav | edge-sed listen --file -`: the same events as --file on the file."""
    args = ("listen", "--bundle", tiny_bundles[0] / "int8", "--file")
    want = edge_sed(*args, stream_file, *PIPE_ARGS)
    assert want.returncode == 0, want.stderr
    piped = subprocess.run(
        EDGE_SED + [str(a) for a in args + ("-",) + PIPE_ARGS],
        input=stream_file.read_bytes(),
        capture_output=True,
        timeout=120,
        cwd=ROOT,
    )  # input=: stdin is a pipe
    assert piped.returncode == 0, piped.stderr
    assert _events(piped.stdout.decode()) == _events(want.stdout)
    assert json.loads(piped.stdout)["source"] == "stdin"


def test_listen_file_named_pipe_fed_by_a_writer(tiny_bundles, stream_file, tmp_path):
    fifo = tmp_path / "mic.fifo"
    os.mkfifo(fifo)
    errors = []
    writer = _feed(fifo, stream_file.read_bytes(), errors=errors)
    r = edge_sed("listen", "--bundle", tiny_bundles[0] / "int8", "--file", fifo, *PIPE_ARGS, timeout=120)
    writer.join(10)
    assert r.returncode == 0 and not errors, (r.stderr, errors)
    want = edge_sed("listen", "--bundle", tiny_bundles[0] / "int8", "--file", stream_file, *PIPE_ARGS)
    assert _events(r.stdout) == _events(want.stdout)


def test_file_source_streams_a_pipe_as_it_arrives(tmp_path):
    """The first block comes out while the writer still holds back the rest: nothing waits for the
    whole stream (a header claiming 2 GB, as arecord writes to a pipe, is no truncation either)."""
    audio = np.random.default_rng(0).normal(0, 0.1, 16000 * 3).astype(np.float32)
    write_audio(tmp_path / "a.wav", audio)
    data = bytearray((tmp_path / "a.wav").read_bytes())
    assert data[36:40] == b"data"
    data[40:44] = (0x7FFFFFFF).to_bytes(4, "little")  # a streamed WAV's placeholder length
    fifo = tmp_path / "p.fifo"
    os.mkfifo(fifo)
    go, errors = threading.Event(), []
    writer = _feed(fifo, bytes(data), first=44 + 2 * 16000, go=go, errors=errors)  # header + 1 s
    src = FileSource(fifo)
    with src:
        blocks = []
        for block, _ in src.blocks():
            blocks.append(block)
            go.set()  # the first block is out: now the writer may finish
    writer.join(10)
    assert not errors, errors
    assert src.capture_hz == 16000 and np.allclose(np.concatenate(blocks), read_audio(tmp_path / "a.wav"))


@pytest.mark.parametrize(
    "target, stdin, reason",
    [
        ("/dev/zero", None, "/dev/zero: not a regular file or pipe: character device"),
        ("-", "/dev/null", "stdin: not a regular file or pipe: character device"),
    ],
)
def test_listen_refuses_a_device_without_hanging(tiny_bundles, target, stdin, reason):
    """/dev/zero was "empty file (0 bytes)" (a device's st_size is 0); read, it would never end."""
    with open(stdin or os.devnull, "rb") as f:
        r = edge_sed("listen", "--bundle", tiny_bundles[0] / "int8", "--file", target, timeout=60, stdin=f)
    assert r.returncode == 2 and r.stderr == f"error: {reason}\n" and r.stdout == "", r.stderr


def test_tampered_and_missing_bundle(tiny_bundles, stream_file, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(tiny_bundles[0] / "int8", bad)
    data = bytearray((bad / "model.tflite").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bad / "model.tflite").write_bytes(bytes(data))
    r = edge_sed("listen", "--bundle", bad, "--file", stream_file)
    assert r.returncode == 2 and r.stderr.startswith("error: ") and "sha256" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and r.stdout == ""
    r = edge_sed("listen", "--bundle", tmp_path / "nope", "--file", stream_file)
    assert (
        r.returncode == 2 and "not a bundle directory" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    )


def test_bad_options(tiny_bundles, stream_file):
    r = edge_sed("listen", "--bundle", tiny_bundles[0] / "int8", "--realtime")
    assert r.returncode == 2 and "--realtime goes with --file" in r.stderr
    r = edge_sed(
        "listen", "--bundle", tiny_bundles[0] / "int8", "--file", stream_file, "--threshold-for", "cat=0.5"
    )
    assert r.returncode == 2 and "unknown class" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = edge_sed(
        "listen", "--bundle", tiny_bundles[0] / "int8", "--file", stream_file, "--threshold-for", "dog"
    )
    assert r.returncode == 2 and "CLASS=P" in r.stderr


def _wait_for(predicate, timeout=30.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize(
    "sig,code,why", [(signal.SIGTERM, 0, "terminate"), (signal.SIGINT, 130, "interrupt")]
)
def test_signal_gives_summary_and_exit_code(tiny_bundles, stream_file, tmp_path, sig, code, why):
    log = tmp_path / "ev.jsonl"
    p = spawn(
        "listen",
        "--bundle",
        tiny_bundles[0] / "int8",
        "--file",
        stream_file,
        "--realtime",
        "--log",
        log,
        "--threshold",
        "0",
    )
    assert _wait_for(lambda: log.exists() and log.stat().st_size > 0), "no event logged"
    p.send_signal(sig)
    out, err = p.communicate(timeout=30)
    assert p.returncode == code, err
    summary = out.strip().splitlines()[-1]
    assert f"stopped by {why}" in summary and "events" in summary and "CPU" in summary
    assert float(summary.split(" s of audio")[0]) < 20.0
    assert "Traceback" not in err


def test_log_intact_after_kill_9(tiny_bundles, stream_file, tmp_path):
    log = tmp_path / "ev.jsonl"
    p = spawn(
        "listen",
        "--bundle",
        tiny_bundles[0] / "int8",
        "--file",
        stream_file,
        "--realtime",
        "--log",
        log,
        "--threshold",
        "0",
        "--suppression-ms",
        "0",
    )
    assert _wait_for(lambda: log.exists() and len(log.read_text().splitlines()) >= 3)
    p.kill()
    out, _ = p.communicate(timeout=30)
    printed = [l for l in out.splitlines() if " s  " in l]
    text = log.read_text()
    assert text.endswith("\n")
    records = [json.loads(l) for l in text.splitlines()]  # every line whole
    assert len(records) >= len(printed) >= 1  # every event printed was logged first


# ------------------------------------------------------------------- no sound device at all


def test_no_microphone(tiny_bundles, tmp_path):
    if Path("/proc/asound/cards").exists() and "no soundcards" not in Path("/proc/asound/cards").read_text():
        pytest.skip("this machine has a sound card: 'no microphone' cannot be staged")
    (tmp_path / "client.conf").write_text("autospawn = no\n")
    env = dict(
        os.environ,
        PULSE_SERVER=f"unix:{tmp_path}/no-such-socket",
        PULSE_CLIENTCONFIG=str(tmp_path / "client.conf"),
        XDG_RUNTIME_DIR=str(tmp_path),
        HOME=str(tmp_path),
    )
    r = edge_sed("listen", "--bundle", tiny_bundles[0] / "int8", env=env)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [r.stderr.strip()] and "edge-sed devices" in r.stderr
    assert "no microphone" in r.stderr
    r = edge_sed("devices", env=env)
    assert r.returncode == 0 and "no input devices" in r.stdout


# ------------------------------------------------- a model that detects events on streams


def train_stream_detector(
    root: Path, model: str = "cnn", epochs: int = 30, levels=("int8",), hidden: int = 32
) -> Path:
    """Bundles of a small model trained on 1.5 s windows cut from labelled streams (events on a
    background bed at 0, 6 and 12 dB EBR, bed at -30 dBFS): the distribution the listen tests
    play, so it detects reliably. The tiny conftest models are trained on isolated clips and do
    not (event F1 ~0.3 on such streams). Returns the bundles folder."""
    import csv

    from convert.bundles import convert_run
    from edge_sed.data.datasets import load_clips
    from edge_sed.data.streams import make_stream
    from edge_sed.data.synth import write_dataset
    from train.trainer import TrainConfig, train

    src = load_clips(
        write_dataset(
            root / "src", {"dog": 40, "baby_cry": 40, "gunshot": 40, "background": 80}, seed=5, workers=2
        )
    )
    rows, n = [], 0
    rng = np.random.default_rng(0)
    for s in range(18):
        kw = dict(seed=100 + s, min_gap_s=4.0, bed_rms=0.03)
        audio, ann = make_stream(src, 60.0, 12, ebr_db=(0.0, 6.0, 12.0)[s % 3], **kw)
        bed, _ = make_stream(src, 60.0, 0, **kw)
        busy = np.zeros(len(audio), bool)
        windows = []
        for a in ann:
            start = max(0, int((a.onset_s - 0.25) * 16000))
            busy[max(0, int((a.onset_s - 1.5) * 16000)) : int((a.offset_s + 1.0) * 16000)] = True
            windows.append(
                (
                    a.label,
                    audio[start : start + 24000],
                    a.onset_s - start / 16000,
                    min(a.offset_s - start / 16000, 1.5),
                )
            )
        starts = [t for t in range(0, len(audio) - 24000, 24000) if not busy[t : t + 24000].any()]
        starts += [int(t) for t in rng.integers(0, len(bed) - 24000, 8)]
        windows += [
            ("background", (audio if k < len(starts) - 8 else bed)[t : t + 24000], "", "")
            for k, t in enumerate(starts)
        ]
        for label, x, on, off in windows:
            rel = f"w/{label}-{n:05d}.wav"
            write_audio(root / "data" / rel, x)
            rows.append(
                {
                    "path": rel,
                    "label": label,
                    "group": f"s{s}-{label}-{n // 4}",
                    "onset_s": on,
                    "offset_s": off,
                }
            )
            n += 1
    with open(root / "data" / "metadata.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    run = root / f"run-{model}"
    train(
        TrainConfig(
            data=str(root / "data" / "metadata.csv"),
            out=str(run),
            model=model,
            ratio=None,
            epochs=epochs,
            patience=50,
            batch_size=16,
            hidden=hidden,
            embed_dim=8,
            threads=1,
            lr=3e-3,
        )
    )
    convert_run(run, root / "bundles", levels=levels)
    return root / "bundles"


@pytest.fixture(scope="module")
def detector_bundles(tmp_path_factory):
    return train_stream_detector(tmp_path_factory.mktemp("detector"))


# ----------------------------------------------------------- a real input device: PulseAudio


class Pulse:
    """A private PulseAudio daemon: a null sink "vspk" at 16 kHz mono and a source "vmic" that
    hears what is played to it; the ALSA pulse plugin makes it PortAudio's "default" device."""

    def __init__(self, root: Path):
        self.root = root
        run, home = root / "run", root / "home"
        run.mkdir(mode=0o700, parents=True)
        home.mkdir(parents=True)
        (root / "client.conf").write_text("autospawn = no\n")
        self.env = dict(
            os.environ,
            XDG_RUNTIME_DIR=str(run),
            HOME=str(home),
            PULSE_CLIENTCONFIG=str(root / "client.conf"),
            PULSE_SERVER=f"unix:{run}/pulse/native",
        )
        self.env.pop("PULSE_SINK", None)
        self.env.pop("PULSE_SOURCE", None)
        subprocess.run(
            [
                "pulseaudio",
                "--daemonize=yes",
                "-n",
                "--exit-idle-time=-1",
                "--use-pid-file=yes",
                "--log-target=file:" + str(root / "pulse.log"),
                "-L",
                "module-native-protocol-unix",
                "-L",
                "module-null-sink sink_name=vspk rate=16000 channels=1",
                "-L",
                "module-remap-source master=vspk.monitor source_name=vmic",
            ],
            env=self.env,
            check=True,
            timeout=30,
            capture_output=True,
        )
        ok = _wait_for(
            lambda: subprocess.run(["pactl", "info"], env=self.env, capture_output=True).returncode == 0, 15
        )
        assert ok, (root / "pulse.log").read_text()[-2000:]
        subprocess.run(["pactl", "set-default-source", "vmic"], env=self.env, check=True, timeout=10)
        self.pid = int((run / "pulse" / "pid").read_text().split()[0])
        time.sleep(1.5)  # the first ~1.5 s after start can be silent

    def play(self, wav: Path) -> subprocess.Popen:
        return subprocess.Popen(["paplay", "-d", "vspk", str(wav)], env=self.env)

    def stop(self):
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        _wait_for(lambda: not Path(f"/proc/{self.pid}").exists(), 10)


def _pulse_or_skip(root):
    missing = [t for t in ("pulseaudio", "pactl", "paplay") if not shutil.which(t)]
    if missing:
        pytest.skip(
            f"{', '.join(missing)} not installed (scripts/setup.sh installs pulseaudio, pulseaudio-utils)"
        )
    return Pulse(root)


@pytest.fixture(scope="module")
def pulse(tmp_path_factory):
    p = _pulse_or_skip(tmp_path_factory.mktemp("pulse"))
    yield p
    p.stop()


def test_devices_lists_the_pulse_input(pulse):
    r = edge_sed("devices", "--json", env=pulse.env)
    assert r.returncode == 0, r.stderr
    names = [d["name"] for d in json.loads(r.stdout)]
    assert "pulse" in names or "default" in names, names


def test_unknown_input_device(pulse, tiny_bundles):
    r = edge_sed("listen", "--bundle", tiny_bundles[0] / "int8", "--input-device", "99", env=pulse.env)
    assert r.returncode == 2 and "edge-sed devices" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = edge_sed(
        "listen", "--bundle", tiny_bundles[0] / "int8", "--input-device", "no-such-mic", env=pulse.env
    )
    assert r.returncode == 2 and "edge-sed devices" in r.stderr


CAPTURE_SNIPPET = """
import sys, time, numpy as np
from edge_sed.listen.sources import MicSource
src = MicSource(None, capture_hz=int(sys.argv[1]))
got, slow_s = [], float(sys.argv[3])
with src:
    if slow_s:
        time.sleep(slow_s)  # a worker that falls behind: the bounded queue fills, blocks are dropped
    for block, _ in src.blocks():
        got.append(block)
        if sum(map(len, got)) >= float(sys.argv[2]) * 16000:
            break
x = np.concatenate(got)
spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
print(src.capture_hz, len(x), float(np.fft.rfftfreq(len(x), 1 / 16000)[spec.argmax()]), src.dropped_blocks,
      src.overflows)
"""


def test_capture_at_48k_is_resampled_to_16k(pulse, tmp_path):
    t = np.arange(16000 * 6) / 16000
    write_audio(tmp_path / "tone.wav", (0.3 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32))
    player = pulse.play(tmp_path / "tone.wav")
    time.sleep(1.0)
    r = subprocess.run(
        [sys.executable, "-c", CAPTURE_SNIPPET, "48000", "2", "0"],
        env=pulse.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    player.wait(timeout=30)
    assert r.returncode == 0, r.stderr
    rate, n, peak_hz, dropped, overflows = r.stdout.split()
    assert rate == "48000" and int(n) >= 32000 and abs(float(peak_hz) - 1000) < 5 and dropped == "0"


def test_slow_worker_drops_blocks_counts_them_and_goes_on(pulse):
    r = subprocess.run(
        [sys.executable, "-c", CAPTURE_SNIPPET, "16000", "3", "4.5"],
        env=pulse.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    rate, n, _, dropped, _ = r.stdout.split()
    # 4.5 s asleep with a 2 s queue (the stream takes up to ~1 s to start delivering): 0.5-2.5 s
    # of 20 ms blocks dropped, counted; then the loop reads 3 s more
    assert 20 <= int(dropped) <= 4.5 * 50 and int(n) >= 3 * 16000


def test_device_lost_mid_stream(tiny_bundles, tmp_path):
    p = _pulse_or_skip(tmp_path / "pulse")
    try:
        log = tmp_path / "ev.jsonl"
        listen = spawn(
            "listen",
            "--bundle",
            tiny_bundles[0] / "int8",
            "--log",
            log,
            "--threshold",
            "0",
            "--suppression-ms",
            "0",
            "--min-count",
            "1",
            "--duration",
            "60",
            env=p.env,
        )
        tone = np.random.default_rng(0).standard_normal(16000 * 30).astype(np.float32) * 0.1
        write_audio(tmp_path / "noise.wav", tone)
        player = p.play(tmp_path / "noise.wav")
        assert _wait_for(lambda: log.exists() and len(log.read_text().splitlines()) >= 2, 40)
        p.stop()  # the sound server goes away: as good as unplugging the microphone
        out, err = listen.communicate(timeout=30)
        player.wait(timeout=10)
    finally:
        p.stop()
    assert listen.returncode == 2, err
    assert err.strip().splitlines() == [err.strip()] and err.startswith("error: input device")
    assert "stopped by error" in out  # the summary came first
    records = [json.loads(l) for l in log.read_text().splitlines()]
    assert len(records) >= 2 and log.read_text().endswith("\n")


def _lag_samples(recording: np.ndarray, played: np.ndarray) -> int:
    """Where ``played`` starts in ``recording`` (FFT cross-correlation)."""
    n = 1 << int(np.ceil(np.log2(len(recording) + len(played))))
    c = np.fft.irfft(np.fft.rfft(recording, n) * np.conj(np.fft.rfft(played, n)), n)
    return int(np.argmax(c[: len(recording)]))


def test_microphone_detects_a_played_stream(pulse, detector_bundles, tmp_path):
    """A known stream is played into the virtual microphone while `edge-sed listen` runs on it:
    the detected classes and onsets match the annotations, nothing overflows, and replaying
    what the microphone heard through `--file` gives exactly the live events."""
    from edge_sed.data.datasets import load_clips
    from edge_sed.core.events import Event, event_metrics
    from edge_sed.data.streams import make_stream, write_stream
    from edge_sed.data.synth import write_dataset

    held = load_clips(
        write_dataset(
            tmp_path / "held", {"dog": 3, "baby_cry": 3, "gunshot": 3, "background": 6}, seed=77, workers=1
        )
    )  # clips the model never saw
    audio, ann = make_stream(held, 33.0, 6, seed=2, ebr_db=6.0, bed_rms=0.03, min_gap_s=4.5)
    wav = tmp_path / "room.wav"
    write_stream(wav, audio, ann)
    bundle = detector_bundles / "int8"
    rec, log = tmp_path / "heard.wav", tmp_path / "events.jsonl"
    listen = spawn(
        "listen",
        "--bundle",
        bundle,
        "--json",
        "--duration",
        "38",
        "--record",
        rec,
        "--log",
        log,
        env=pulse.env,
    )
    time.sleep(3.0)  # listen is up and capturing
    pulse.play(wav).wait(timeout=90)
    out, err = listen.communicate(timeout=60)
    assert listen.returncode == 0, err
    s = json.loads(out)
    assert s["overflows"] == 0 and s["dropped_blocks"] == 0 and s["capture_hz"] == 16000
    heard = read_audio(rec)
    lag_s = _lag_samples(heard, audio) / 16000
    assert 0.5 < lag_s < 6.0
    detected = [Event(d["class"], d["score"], d["stream_s"] - lag_s) for d in s["detected"]]
    m = event_metrics(ann, detected, duration_s=len(audio) / 16000, collar_s=0.5, delay_s=1.0)
    # every event heard, with its class, decided within [onset - 0.5 s, onset + window + hop + average window]
    assert m["tp"] == len(ann), (m, [(a.onset_s, a.label) for a in ann], [(e.t_s, e.label) for e in detected])
    assert m["fp"] <= 2, (m, [(a.onset_s, a.label) for a in ann], [(e.t_s, e.label) for e in detected])
    assert all(-0.5 <= l <= 0.98 + 0.25 + 0.75 for l in m["latencies_s"])
    assert [json.loads(l)["stream_s"] for l in log.read_text().splitlines()] == [
        d["stream_s"] for d in s["detected"]
    ]
    # offline == live: the recording through --file gives the same decisions
    r = edge_sed("listen", "--bundle", bundle, "--file", rec, "--json")
    offline = json.loads(r.stdout)["detected"]
    assert [(d["class"], d["stream_s"]) for d in offline] == [
        (d["class"], d["stream_s"]) for d in s["detected"]
    ]
    assert np.allclose([d["score"] for d in offline], [d["score"] for d in s["detected"]], atol=1e-3)


def test_profile_runs_the_loop_on_a_simulated_mcu(tiny_bundles, stream_file):
    pytest.importorskip("tflite_micro", reason="the [sim] extra (tflite-micro) is not installed")
    args = (
        "listen",
        "--bundle",
        tiny_bundles[0] / "int8",
        "--file",
        stream_file,
        "--json",
        "--threshold",
        "0.3",
    )
    host = json.loads(edge_sed(*args).stdout)
    r = edge_sed(*args, "--profile", "cortex-m7-480mhz")
    assert r.returncode == 0, r.stderr
    mcu = json.loads(r.stdout)
    d = mcu["device"]
    assert d["profile"] == "cortex-m7-480mhz" and 0 < d["duty_cycle"] < 1 and d["overruns"] == 0
    assert 0 < d["decision_latency_ms_p50"] <= d["decision_latency_ms_max"] < 250
    assert mcu["decisions"] == host["decisions"]  # same loop, same decisions; scores from TFLM
    goals = d["goals"]  # issue 15's always-on goals, judged on this run
    assert goals["no_overrun"] == {"value": 0, "met": True}
    assert goals["duty_cycle<=10%_at_80MHz"]["value"] == pytest.approx(d["duty_cycle"] * 480 / 80, rel=1e-3)
    assert goals["model_bytes<=48KB"]["value"] == len(
        (tiny_bundles[0] / "int8" / "model.tflite").read_bytes()
    )
    r = edge_sed(*args, "--profile", "rpi-4")
    assert r.returncode == 2 and "MCU profiles" in r.stderr
    r = edge_sed(
        "listen", "--bundle", tiny_bundles[0] / "fp32", "--file", stream_file, "--profile", "cortex-m4-80mhz"
    )
    assert r.returncode == 2 and "int8" in r.stderr


# --------------------------------------------------- settings that could never fire (issue 18)


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--hop-ms", "1000"], ["holds 1 decision", "minimum count 2"]),  # default 750 ms window
        (["--window-ms", "0"], ["holds 1 decision", "minimum count 2"]),
        (["--window-ms", "100"], ["holds 1 decision"]),
        (["--min-count", "1000"], ["minimum count 1000"]),
        (["--threshold", "1"], ["no event could ever fire"]),
        (["--window-ms", "inf"], ["--window-ms"]),
        (["--window-ms", "nan"], ["--window-ms", "not a finite number"]),
        (["--suppression-ms", "nan"], ["--suppression-ms", "not a finite number"]),
        (["--hop-ms", "nan"], ["--hop-ms", "not a finite number"]),
        (["--duration", "inf"], ["--duration"]),
        (["--duration", "nan"], ["--duration", "not a finite number"]),
        (["--threshold", "nan"], ["--threshold", "not a finite number"]),
        (["--threshold-for", "dog=nan"], ["--threshold-for", "probability"]),
    ],
)
def test_settings_that_cannot_fire_or_suppress_are_refused(capfd, tiny_bundles, stream_file, args, fragments):
    """Each of these was accepted and gave 0 events (or, --suppression-ms nan, an event at every
    decision); a deployed service gets the same values through --listen-args."""
    from test_bad_audio import assert_one_line_error, run_cli

    code, out, err = run_cli(
        capfd, "listen", "--bundle", tiny_bundles[0] / "int8", "--file", stream_file, *args
    )
    assert_one_line_error(code, err, *fragments)
    assert out == ""


def test_listen_api_refuses_non_finite_hop_and_duration(tiny_bundles, stream_file):
    from edge_sed.core.errors import EdgeSedError
    from edge_sed.listen.run import listen

    for kw in ({"hop_ms": float("nan")}, {"duration_s": float("inf")}, {"hop_ms": -5.0}):
        with pytest.raises(EdgeSedError, match="finite number > 0"):
            listen(tiny_bundles[0] / "int8", file=stream_file, **kw)


def test_a_longer_window_makes_a_long_hop_fire(tiny_bundles, stream_file):
    """The refusal above names the way out: a window holding two 1 s hops fires again."""
    r = edge_sed(
        "listen",
        "--bundle",
        tiny_bundles[0] / "int8",
        "--file",
        stream_file,
        "--json",
        "--hop-ms",
        "1000",
        "--window-ms",
        "1000",
        "--threshold",
        "0",
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["events"] >= 1


class _NaNRunner:
    """A runner stand-in whose model has gone bad: NaN for one class, every window."""

    streaming = carried = False

    def __init__(self, labels):
        self.scores = np.full(len(labels), 0.1, np.float32)
        self.scores[0] = np.nan

    def predict(self, window):
        return self.scores


def test_non_finite_model_output_is_counted_never_an_event(tiny_bundles, capfd):
    bundle = load_bundle(tiny_bundles[0] / "int8")
    noise = np.random.default_rng(0).normal(0, 0.1, 16000 * 6).astype(np.float32)
    det = Detector(
        bundle,
        runner=_NaNRunner(bundle.labels),
        hop_frames=25,
        smoother=Smoother(bundle.labels, threshold=0.0, minimum_count=1),
    )
    capfd.readouterr()
    summary = run_loop(det, FlakySource(noise), [], clock=lambda: 0.0)
    err = capfd.readouterr().err
    assert summary["decisions"] > 10 and summary["nonfinite_decisions"] == summary["decisions"]
    assert summary["events"] == 0
    assert err.count("\n") == 1 and err.startswith("warning: ") and "non-finite" in err


HOST_SIDE = ["train", "convert", "firmware_sim", "torch", "tensorflow", "tflite_micro", "matplotlib"]
HOST_SIDE += [f"edge_sed.{p}" for p in ("data", "eval", "report", "deploy", "demo")]


def test_listen_runs_with_every_host_side_package_blocked(tiny_bundles, stream_file, tmp_path):
    """The device runtime is edge_sed.core + edge_sed.listen + the CLI: `listen` on a bundle must
    give the same events with the host-side subpackages (and train/convert/firmware_sim) made
    unimportable."""
    argv = ["listen", "--bundle", str(tiny_bundles[0] / "int8"), "--file", str(stream_file), "--json"]
    argv += ["--threshold", "0.3", "--min-count", "1"]
    script = tmp_path / "blocked_listen.py"
    script.write_text(
        "import importlib.abc, sys\n"
        f"BLOCKED = {HOST_SIDE!r}\n"
        "class Blocker(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if any(name == b or name.startswith(b + '.') for b in BLOCKED):\n"
        "            raise ImportError(f'{name} is blocked in this test')\n"
        "sys.meta_path.insert(0, Blocker())\n"
        "from edge_sed.cli import main\n"
        f"code = main({argv!r})\n"
        "loaded = sorted(n for n in sys.modules if any(n == b or n.startswith(b + '.') for b in BLOCKED))\n"
        "assert not loaded, loaded\n"
        "sys.exit(code)\n"
    )
    blocked = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert blocked.returncode == 0, blocked.stderr
    free = edge_sed(*argv)
    assert free.returncode == 0, free.stderr
    got, want = json.loads(blocked.stdout), json.loads(free.stdout)
    assert got["decisions"] == want["decisions"] > 0

    def events(summary):  # the decision latency is wall-clock time, the rest must be equal
        return [{k: v for k, v in e.items() if k != "decision_latency_ms"} for e in summary["detected"]]

    assert events(got) == events(want)


def test_portaudio_noise_is_kept_out_and_every_other_stderr_line_kept(tmp_path):
    """listen runs a microphone with fd 2 filtered (core.quiet.silenced_fds with noise): the ALSA
    lines go, what C code or Python writes otherwise comes back after the block, in order."""
    code = textwrap.dedent(
        """
        import os, sys
        from edge_sed.core.quiet import silenced_fds
        from edge_sed.listen.sources import PORTAUDIO_NOISE
        with silenced_fds((2,), noise=PORTAUDIO_NOISE):
            os.write(2, b"ALSA lib pcm.c:2664:(snd_pcm_open_noupdate) Unknown PCM\\n")
            os.write(2, b"Expression 'ret' failed in 'src/hostapi/alsa/pa_linux_alsa.c'\\n")
            os.write(2, b"a real C-level warning\\n")
            print("a Python warning", file=sys.stderr)
        with silenced_fds():
            os.write(1, b"gone\\n")
            os.write(2, b"gone too\\n")
        print("done")
        """
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "done\n"
    assert r.stderr == "a real C-level warning\na Python warning\n"
