"""Nothing is lost (issue 9): the real console script, killed with SIGKILL at a bad moment.

- training killed mid-epoch resumes (--resume) from the last checkpoint to bit-identical weights
  and the same metrics as a run that was never killed;
- conversion killed half-way never leaves a bundle directory that is half-written: every visible
  bundle verifies, a re-run completes;
- `listen --log` killed mid-stream keeps every event it logged, each a complete JSON line, and
  they are exactly the first events of an uninterrupted run;
- a long `listen --file` runs in flat memory and finds the same events as the same audio cut
  in pieces (the short version of benchmarks/soak_listen.py).
"""

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

EDGE_SED = str(Path(sys.executable).with_name("edge-sed"))


class Proc:
    """A running `edge-sed ...` whose stdout and stderr lines arrive on queues (no pipe ever
    fills up and blocks it), with its peak RSS sampled from /proc."""

    def __init__(self, *args, cwd=None):
        self.p = subprocess.Popen(
            [EDGE_SED, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd
        )
        self.out, self.err = queue.Queue(), queue.Queue()
        self.out_lines, self.err_lines = [], []
        for stream, q in ((self.p.stdout, self.out), (self.p.stderr, self.err)):
            threading.Thread(target=lambda s=stream, q=q: [q.put(l) for l in s], daemon=True).start()

    def wait_line(self, which: str, predicate, timeout: float) -> str:
        q, seen = (self.out, self.out_lines) if which == "out" else (self.err, self.err_lines)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = q.get(timeout=0.05)
            except queue.Empty:
                if self.p.poll() is not None and q.empty():
                    break
                continue
            seen.append(line)
            if predicate(line):
                return line
        raise AssertionError(
            f"no such line within {timeout} s; stdout {self.out_lines[-5:]}, "
            f"stderr {self.err_lines[-5:]}, exit {self.p.poll()}"
        )

    def kill(self):
        self.p.send_signal(signal.SIGKILL)
        assert self.p.wait(timeout=30) == -signal.SIGKILL

    def finish(self, timeout: float):
        code = self.p.wait(timeout=timeout)
        time.sleep(0.1)  # let the reader threads drain
        for q, seen in ((self.out, self.out_lines), (self.err, self.err_lines)):
            while not q.empty():
                seen.append(q.get())
        return code


# ----------------------------------------------------------------------------------- training


TRAIN_ARGS = [
    "--ratio",
    "none",
    "--objective",
    "clustered",
    "--stage1-epochs",
    "2",
    "--epochs",
    "2",
    "--batch-size",
    "6",
    "--threads",
    "1",
    "--seed",
    "3",
]


def test_training_killed_mid_epoch_resumes_to_the_same_weights(tiny_data, tmp_path):
    """Two-stage objective (the one with the most state: k-means clusters, EMA centroids, two
    optimisers). The kill lands ~40 % into epoch 3 (the first of stage 2), after 2 checkpoints."""
    torch = pytest.importorskip("torch")
    whole = Proc("train", "--data", tiny_data, "--out", tmp_path / "whole", *TRAIN_ARGS)
    killed = Proc("train", "--data", tiny_data, "--out", tmp_path / "killed", *TRAIN_ARGS)

    def epoch_line(n):
        return lambda l: l.startswith(f"epoch {n:>3} ")

    killed.wait_line("err", epoch_line(1), timeout=240)
    t1 = time.monotonic()
    killed.wait_line("err", epoch_line(2), timeout=120)
    epoch_s = time.monotonic() - t1
    time.sleep(0.4 * epoch_s)
    killed.kill()
    ckpt = torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=False)
    assert len(ckpt["state"]["history"]) == 2, "the kill was meant to land inside epoch 3"
    assert not (tmp_path / "killed" / "metrics.json").exists()

    resumed = Proc(
        "train", "--data", tiny_data, "--out", tmp_path / "killed", *TRAIN_ARGS, "--resume", "--json"
    )
    assert resumed.finish(timeout=300) == 0, resumed.err_lines[-5:]
    assert whole.finish(timeout=300) == 0, whole.err_lines[-5:]
    a = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=False)
    b = torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=False)
    for key, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][key]), key
    for key, tensor in a["embedding_loss"].items():
        assert torch.equal(tensor, b["embedding_loss"][key]), key
    assert a["state"]["history"] == b["state"]["history"]
    best_a = torch.load(tmp_path / "whole" / "best.pt", weights_only=True)
    best_b = torch.load(tmp_path / "killed" / "best.pt", weights_only=True)
    assert all(torch.equal(best_a[k], best_b[k]) for k in best_a)
    ma, mb = (json.loads((tmp_path / r / "metrics.json").read_text()) for r in ("whole", "killed"))
    assert ma["test"] == mb["test"] and ma["val"] == mb["val"] and ma["best_epoch"] == mb["best_epoch"]


# --------------------------------------------------------------------------------- conversion


def test_conversion_killed_half_way_leaves_no_half_bundle(tiny_run, tmp_path):
    """SIGKILL as soon as the first bundle has its name (while the next level is being
    written): every visible bundle verifies, the half-done level is at most a hidden temporary
    that verify and listen never look at, and a re-run into the same folder completes."""
    from edge_sed.core.bundle import verify_bundle

    out = tmp_path / "bundles"
    proc = Proc("convert", tiny_run, "--out", out, "--levels", "fp32,int8")
    deadline = time.monotonic() + 300
    while not any(p.is_dir() and not p.name.startswith(".") for p in (out.iterdir() if out.exists() else [])):
        assert proc.p.poll() is None, proc.err_lines
        assert time.monotonic() < deadline
        time.sleep(0.005)
    proc.kill()
    visible = [p for p in out.iterdir() if not p.name.startswith(".")]
    assert visible and not (out / "convert-report.json").exists()
    for d in visible:
        verify_bundle(d)  # raises if half-written
    result = subprocess.run([EDGE_SED, "verify", out], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.count(": OK ") == len(visible), result.stderr

    rerun = subprocess.run(
        [EDGE_SED, "convert", tiny_run, "--out", out, "--levels", "int8", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "convert-report.json",
        "fp32",
        "int8",
    ]
    for name in ("fp32", "int8"):
        verify_bundle(out / name)


# ---------------------------------------------------------------------------------- listening


@pytest.fixture(scope="module")
def stream(tiny_data, tmp_path_factory):
    """Six minutes of labelled stream (16 kHz WAV), events every ~9 s."""
    from edge_sed.data.streams import make_stream

    audio, _ = make_stream(tiny_data, 360.0, 40, seed=4, min_gap_s=4.0)
    audio = (audio * (0.9 / np.abs(audio).max())).astype(np.float32)
    path = tmp_path_factory.mktemp("stream") / "six minutes.wav"
    sf.write(path, audio, 16000, subtype="PCM_16")
    return path


LISTEN = ["--threshold", "0.3"]


def _events(log: Path):
    lines = log.read_text().splitlines()
    return [json.loads(l) for l in lines]  # every line complete JSON, or this raises


def test_listen_log_survives_a_kill(tiny_bundles, stream, tmp_path):
    bundle = tiny_bundles[0] / "fp32"
    full = subprocess.run(
        [EDGE_SED, "listen", "--bundle", bundle, "--file", stream, *LISTEN, "--log", tmp_path / "full.jsonl"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert full.returncode == 0, full.stderr
    everything = _events(tmp_path / "full.jsonl")
    assert len(everything) >= 10

    proc = Proc("listen", "--bundle", bundle, "--file", stream, *LISTEN, "--log", tmp_path / "killed.jsonl")
    printed = [proc.wait_line("out", lambda l: " s  " in l, timeout=120) for _ in range(len(everything) // 2)]
    proc.kill()
    logged = _events(tmp_path / "killed.jsonl")
    assert len(logged) < len(everything), "the kill came after the end of the stream"

    def key(e):
        return (e["class"], e["stream_s"], e["score"])

    assert [key(e) for e in logged] == [key(e) for e in everything[: len(logged)]]
    # every event the console showed before the kill is in the log (the log is written first)
    shown = [(l.split()[2], float(l.split()[0])) for l in printed]
    assert len(logged) >= len(shown)
    for (c, t), e in zip(shown, logged):
        assert c == e["class"] and abs(t - e["stream_s"]) <= 0.0051, (c, t, e)


def _rss_kb(pid) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return 0


def listen_with_memory(bundle, path, *extra, interval_s=0.1):
    """Run `listen --file --json`; returns (summary, RSS samples in kB)."""
    import tempfile

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:  # a pipe could fill up
        p = subprocess.Popen(
            [EDGE_SED, "listen", "--bundle", str(bundle), "--file", str(path), "--json", *map(str, extra)],
            stdout=out,
            stderr=err,
            text=True,
        )
        samples, deadline = [], time.monotonic() + 600
        while p.poll() is None:
            assert time.monotonic() < deadline, "listen did not finish"
            samples.append(_rss_kb(p.pid))
            time.sleep(interval_s)
        out.seek(0), err.seek(0)
        assert p.returncode == 0, err.read()
        return json.loads(out.read()), [s for s in samples if s]


def test_long_listen_memory_is_flat_and_pieces_agree(tiny_bundles, stream, tmp_path):
    """Six minutes in one run vs the same audio in three 2-minute files: the same events away
    from the cuts, and RSS flat over the run. Without suppression an event depends only on the
    last 1.75 s of audio (a 1 s model window, a 750 ms average): the tiny model's weak scores
    would otherwise chain suppression periods across a cut."""
    bundle = tiny_bundles[0] / "fp32"
    args = [*LISTEN, "--suppression-ms", "0"]
    whole, rss = listen_with_memory(bundle, stream, *args)
    assert whole["audio_s"] == 360.0 and whole["events"] >= 10
    assert whole["dropped_blocks"] == 0 and whole["overflows"] == 0
    # memory: after start-up (the first quarter), the peak grows by less than 8 MB
    settled = rss[len(rss) // 4 :]
    assert len(settled) >= 10 and max(settled) - settled[0] < 8 * 1024, (settled[0], max(settled))

    audio, sr = sf.read(stream, dtype="float32")
    piece_s, got = 120, []
    for k in range(3):
        piece = tmp_path / f"piece{k}.wav"
        sf.write(piece, audio[k * piece_s * sr : (k + 1) * piece_s * sr], sr, subtype="PCM_16")
        summary, _ = listen_with_memory(bundle, piece, *args)
        got += [(e["class"], round(e["stream_s"] + k * piece_s, 2)) for e in summary["detected"]]
    want = [(e["class"], round(e["stream_s"], 2)) for e in whole["detected"]]

    def near_cut(t):
        return any(-0.1 < t - c < 2.0 for c in (piece_s, 2 * piece_s))

    assert [e for e in got if not near_cut(e[1])] == [e for e in want if not near_cut(e[1])]


# ---------------------------------------------------------------------------------- full disk


@pytest.fixture
def full_dir(tmp_path):
    """A directory on a tiny tmpfs filled to the last byte (needs root to mount; else skipped)."""
    d = tmp_path / "full"
    d.mkdir()
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(d)], capture_output=True
    ).returncode:
        pytest.skip("cannot mount a tmpfs here (not root)")
    try:
        with open(d / "filler", "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * 4096)
            except OSError:
                pass
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], capture_output=True)


def test_listen_on_a_full_disk_keeps_detecting(tiny_bundles, stream, tmp_path, full_dir):
    """--log to /dev/full (every write fails with ENOSPC) and --record on a full filesystem:
    the same events as with room to spare, one warning line each, and the summary counts the
    events the log lost. It used to crash at the first event."""
    bundle = tiny_bundles[0] / "fp32"
    room = subprocess.run(
        [
            EDGE_SED,
            "listen",
            "--bundle",
            bundle,
            "--file",
            stream,
            *LISTEN,
            "--json",
            "--log",
            tmp_path / "ok.jsonl",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert room.returncode == 0, room.stderr
    want = json.loads(room.stdout)
    assert want["events"] >= 1 and "log_error" not in want

    filler = full_dir / "filler"
    os.truncate(filler, filler.stat().st_size - 16 * 1024)  # room for the header and half a second
    full = subprocess.run(
        [
            EDGE_SED,
            "listen",
            "--bundle",
            bundle,
            "--file",
            stream,
            *LISTEN,
            "--json",
            "--log",
            "/dev/full",
            "--record",
            full_dir / "heard.wav",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert full.returncode == 0, full.stderr
    got = json.loads(full.stdout)
    assert got["detected"] == [
        dict(e, decision_latency_ms=g["decision_latency_ms"])
        for e, g in zip(want["detected"], got["detected"])
    ]
    assert got["events_not_logged"] == got["events"] == want["events"]
    assert "No space left" in got["log_error"] and "record_error" in got
    warnings = full.stderr.strip().splitlines()
    assert len(warnings) == 2 and all(w.startswith("warning: ") for w in warnings), full.stderr
    assert any("/dev/full" in w and "event log is lost" in w for w in warnings)
    lost = next(w for w in warnings if "heard.wav" in w)
    assert "recording is lost after" in lost and "disk full" in lost and not lost.count("after 0.00 s")
    text = subprocess.run(
        [EDGE_SED, "listen", "--bundle", bundle, "--file", stream, *LISTEN, "--log", "/dev/full"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert text.returncode == 0 and f"{want['events']} events not logged" in text.stdout.splitlines()[-1]


def test_a_full_disk_is_one_line_exit_2(tiny_data, tmp_path, full_dir):
    """Anywhere an OSError ENOSPC escapes (here: data prepare writing its CSVs, listen printing
    its summary to a full stdout), main() says so in one line and exits 2."""
    r = subprocess.run(
        [EDGE_SED, "data", "prepare", tiny_data, "--out", full_dir / "splits", "--no-check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: disk full: "), r.stderr
    with open("/dev/full", "w") as stdout:
        r = subprocess.run(
            [EDGE_SED, "devices", "--json"], stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=120
        )
    assert r.returncode == 2 and r.stderr.startswith("error: disk full: ") and r.stderr.count("\n") == 1, (
        r.stderr
    )
