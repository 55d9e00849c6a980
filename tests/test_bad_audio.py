"""The bad-audio matrix (issue 9): every input a user can point edge-sed at, through every
command that reads audio. Each row either gives one line "error: ..." naming the file and a
non-zero exit, or is a documented conversion whose result is checked against the plain 16 kHz
mono reading of the same sound - never a traceback, a hang or a silently wrong answer.

Commands run in-process through edge_sed.cli.main (capfd sees fd-level output too, e.g. from
LiteRT); tests/test_reliability.py runs the console script as a subprocess for the kill tests.
"""

import csv
import json
import os
import re
import resource
import shutil
import socket
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from edge_sed.core.audio_io import iter_audio_blocks, read_audio
from edge_sed.cli import main
from edge_sed.core.errors import AudioError
from edge_sed.core.settings import SAMPLE_RATE

SECONDS = 20.0  # the reference stream: short, with events in it
LISTEN_ARGS = ["--threshold", "0.3", "--json"]  # the tiny model is unsure: a low threshold gives events


# ------------------------------------------------------------------------ running a command


def run_cli(capfd, *args):
    """(exit code, stdout, stderr) of `edge-sed args` run in this process."""
    capfd.readouterr()
    code = main([str(a) for a in args])
    out, err = capfd.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *fragments):
    """A user's mistake: exit 2 (1 is an internal error), no traceback, one line "error: ..."
    (click's own usage errors, e.g. for a path click checks itself, are printed that way too)."""
    assert "Traceback" not in err and "internal error" not in err, err
    assert code == 2, (code, err)
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err  # click's usage errors too (cli.main)
    message = lines[0]
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


# ------------------------------------------------------------------------------- the inputs


def _truncated(path, subtype="PCM_16"):
    full = path.with_name("full-" + path.name)
    sf.write(
        full, np.random.default_rng(0).normal(0, 0.1, 32000).astype(np.float32), SAMPLE_RATE, subtype=subtype
    )
    data = full.read_bytes()
    full.unlink()
    path.write_bytes(data[: len(data) // 2])


def write_long_wav(path, hours: float, sample_rate: int = SAMPLE_RATE, channels: int = 1) -> int:
    """A valid 16-bit WAV of ``hours`` of silence, written as a header plus a sparse hole:
    instant, and ~no disk, however long. Returns the data bytes."""
    n_bytes = int(hours * 3600 * sample_rate) * 2 * channels
    header = (
        b"RIFF"
        + struct.pack("<I", 36 + n_bytes)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<IHHIIHH", 16, 1, channels, sample_rate, sample_rate * 2 * channels, 2 * channels, 16)
        + b"data"
        + struct.pack("<I", n_bytes)
    )
    with open(path, "wb") as f:
        f.write(header)
        f.truncate(len(header) + n_bytes)
    return n_bytes


def _write(path, audio, sr=SAMPLE_RATE, subtype="FLOAT"):
    sf.write(path, audio, sr, subtype=subtype)


def _absurd_rate(path, ref):
    """A valid WAV whose header's sample-rate field (bytes 24-27) then says 2^31 - 1 Hz."""
    _write(path, ref, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    data[24:28] = struct.pack("<I", 2**31 - 1)
    path.write_bytes(bytes(data))


def _resampled(ref, sr):
    from edge_sed.core.audio_io import resample

    return resample(ref, SAMPLE_RATE, sr)


# name -> (file name, writer(path, reference audio)). Refused inputs:
BAD = {
    "missing file": ("missing.wav", None),
    "empty file (0 bytes)": ("empty.wav", lambda p, r: p.write_bytes(b"")),
    "zero-length audio": (
        "zero-length.wav",
        lambda p, r: _write(p, np.zeros(0, np.float32), subtype="PCM_16"),
    ),
    "truncated WAV": ("truncated.wav", lambda p, r: _truncated(p)),
    "truncated FLAC": ("truncated.flac", lambda p, r: _truncated(p)),
    "text named .wav": (
        "text.wav",
        lambda p, r: p.write_text("RIFF? no: just a text file named .wav\n" * 20),
    ),
    "NaN samples": (
        "nan.wav",
        lambda p, r: _write(p, np.where(np.arange(len(r)) == 5000, np.nan, r).astype(np.float32)),
    ),
    "Inf samples": (
        "inf.wav",
        lambda p, r: _write(p, np.where(np.arange(len(r)) == 9000, -np.inf, r).astype(np.float32)),
    ),
    "sample rate 2^31-1 Hz": ("sr2147483647.wav", _absurd_rate),
    # float samples far beyond full scale: the front end's powers overflowed float32 (numpy warnings, then a
    # silently useless run)
    "float samples of 1e30": (
        "huge.wav",
        lambda p, r: _write(p, np.where(np.arange(len(r)) == 7000, 1e30, r).astype(np.float32)),
    ),
}
if "MP3" in sf.available_formats():  # libsndfile >= 1.1: its libmpg123 prints each bad frame on fd 2
    BAD["damaged MP3 (truncated)"] = ("damaged.mp3", lambda p, r: _truncated(p, subtype="MPEG_LAYER_III"))
BAD_MESSAGE = {
    "missing file": "no such file",
    "empty file (0 bytes)": "empty file",
    "zero-length audio": "zero length",
    "truncated WAV": "truncated",
    "truncated FLAC": "corrupt audio data",
    "text named .wav": "not a readable audio file",
    "NaN samples": "NaN or Inf",
    "Inf samples": "NaN or Inf",
    "sample rate 2^31-1 Hz": "sample rate 2147483647 Hz in the header is outside 1000..384000 Hz",
    "float samples of 1e30": "samples reach 1e+30, more than 1000 times full scale",
    "damaged MP3 (truncated)": "truncated",
}
# Converted inputs (documented in README "Audio in"), and how close to the reference they must come:
# "same": the same events within a frame; "runs": exit 0 and the same number of decisions.
CONVERTED = {
    "all-zero audio": ("silence.wav", lambda p, r: _write(p, np.zeros_like(r), subtype="PCM_16"), "runs"),
    "fully clipped audio": (
        "clipped.wav",
        lambda p, r: _write(p, np.sign(r + 1e-9).astype(np.float32), subtype="PCM_16"),
        "runs",
    ),
    "8-bit WAV": ("u8.wav", lambda p, r: _write(p, r, subtype="PCM_U8"), "runs"),
    "24-bit WAV": ("s24.wav", lambda p, r: _write(p, r, subtype="PCM_24"), "same"),
    "float WAV": ("float.wav", lambda p, r: _write(p, r, subtype="FLOAT"), "same"),
    "stereo (mixdown)": (
        "stereo.wav",
        lambda p, r: _write(p, np.stack([r * 1.5, r * 0.5], 1), subtype="FLOAT"),
        "same",
    ),
    "8 kHz": ("sr8000.wav", lambda p, r: _write(p, _resampled(r, 8000), 8000), "runs"),
    "22.05 kHz": ("sr22050.wav", lambda p, r: _write(p, _resampled(r, 22050), 22050), "same"),
    "44.1 kHz": (
        "sr44100.flac",
        lambda p, r: _write(p, _resampled(r, 44100), 44100, subtype="PCM_24"),
        "same",
    ),
    "48 kHz": ("sr48000.wav", lambda p, r: _write(p, _resampled(r, 48000), 48000), "same"),
    "unicode and spaces in path": (
        "dír with spaces/ünïcødé 吠える.flac",
        lambda p, r: _write(p, r, subtype="PCM_24"),
        "same",
    ),
    "float beyond full scale (peak 1.5, clipped)": (
        "loud-float.wav",
        lambda p, r: _write(p, r * np.float32(1.5 / np.abs(r).max())),
        "runs",
    ),
}


@pytest.fixture(scope="module")
def reference(tiny_data, tmp_path_factory):
    """A 20 s labelled stream from the tiny data set (float32, 16 kHz), as a float WAV."""
    from edge_sed.data.streams import make_stream

    from edge_sed.core.events import write_annotations

    audio, annotations = make_stream(tiny_data, SECONDS, 4, seed=2, min_gap_s=3.0)
    audio = (audio * (0.9 / np.abs(audio).max())).astype(np.float32)  # room for 8/16/24-bit files
    path = tmp_path_factory.mktemp("ref") / "reference.wav"
    _write(path, audio)
    write_annotations(path.with_suffix(".csv"), annotations)  # for simulate --stream
    return path, audio


@pytest.fixture(scope="module")
def inputs(reference, tmp_path_factory):
    """Every case of BAD and CONVERTED written once: name -> path."""
    root = tmp_path_factory.mktemp("inputs")
    _, ref = reference
    out = {}
    for name, (filename, make, *_) in {**BAD, **CONVERTED}.items():
        path = root / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        if make is not None:
            make(path, ref)
        out[name] = path
    return out


@pytest.fixture(scope="module")
def bundle(tiny_bundles):
    return tiny_bundles[0] / "fp32"


# ---------------------------------------------------------------------------- the Python API


@pytest.mark.filterwarnings("error::RuntimeWarning")  # a numpy overflow warning must not leak either
@pytest.mark.parametrize("case", list(BAD))
def test_api_refuses_bad_audio_in_one_line(inputs, case):
    path = inputs[case]
    for read in (lambda: read_audio(path), lambda: list(iter_audio_blocks(path, 1600))):
        with pytest.raises(AudioError) as err:
            read()
        message = str(err.value)
        assert "\n" not in message and BAD_MESSAGE[case] in message and path.name in message, message


@pytest.mark.parametrize("case", list(CONVERTED))
def test_api_converts_to_16k_mono(inputs, reference, case):
    """read_audio gives 16 kHz mono float32 of the reference's length; iter_audio_blocks gives the
    same samples at the file's own rate (a streaming resampler is the caller's: listen has one)."""
    path, ref = inputs[case], reference[1]
    audio = read_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1 and abs(len(audio) - len(ref)) <= 1
    assert np.isfinite(audio).all() and np.abs(audio).max() <= 1.0 + 1e-6
    if CONVERTED[case][2] == "same":  # a lossless-enough conversion: the reference's samples
        err = np.abs(audio[200:-200] - ref[200:-200]).max()  # stereo: (1.5 r + 0.5 r) / 2 = r
        assert err < (2e-3 if "kHz" in case else 1e-4), err
    info = sf.info(str(path))
    blocks = list(iter_audio_blocks(path, 1000, sample_rate=info.samplerate))
    assert sum(len(b) for b in blocks) == info.frames and all(b.ndim == 1 for b in blocks)


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_api_float_samples_beyond_full_scale(tmp_path):
    """Float audio has headroom: samples up to MAX_FLOAT_PEAK (1000) are clipped to [-1, 1] (as the
    device's 16-bit microphone clips), beyond it the file is refused, in every channel before the
    mixdown (whose mean of 3e38 would overflow float32)."""
    from edge_sed.core.audio_io import MAX_FLOAT_PEAK

    x = np.array([0.5, 1.5, -2.0, 999.0, -MAX_FLOAT_PEAK, 0.25] * 1000, np.float32)
    sf.write(tmp_path / "loud.wav", x, SAMPLE_RATE, subtype="FLOAT")
    assert np.array_equal(read_audio(tmp_path / "loud.wav"), np.clip(x, -1, 1))
    assert np.array_equal(
        np.concatenate(list(iter_audio_blocks(tmp_path / "loud.wav", 700))), np.clip(x, -1, 1)
    )
    for name, audio in (
        ("over.wav", np.where(np.arange(len(x)) == 4000, 1000.5, 0.1)),
        ("stereo.wav", np.stack([np.full(6000, 3e38), np.full(6000, 3e38)], 1)),
    ):
        sf.write(tmp_path / name, audio.astype(np.float32), SAMPLE_RATE, subtype="FLOAT")
        for read in (
            lambda: read_audio(tmp_path / name),
            lambda: list(iter_audio_blocks(tmp_path / name, 1600)),
        ):
            with pytest.raises(
                AudioError, match=f"{name}: samples reach .*, more than 1000 times full scale"
            ):
                read()


def _special_files(tmp_path) -> dict:
    """name -> (path, the reason read_audio gives, the one a stream reader gives)."""
    fifo = tmp_path / "named pipe.wav"
    os.mkfifo(fifo)
    sock = tmp_path / "socket.wav"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock))
    return {
        "/dev/zero": (
            Path("/dev/zero"),
            "not a regular file: character device",
            "not a regular file or pipe: character device",
        ),
        "/dev/null": (
            Path("/dev/null"),
            "not a regular file: character device",
            "not a regular file or pipe: character device",
        ),
        "a socket": (sock, "not a regular file: socket", "not a regular file or pipe: socket"),
        "a named pipe": (fifo, "not a regular file: pipe", None),
    }  # a stream reader plays it (test_listen)


def test_api_special_files_get_their_reason(tmp_path):
    """A FIFO or a device was "empty file (0 bytes)" (st_size 0): each says what it is, and nothing
    opens (or waits on) it."""
    for name, (path, whole, stream) in _special_files(tmp_path).items():
        with pytest.raises(AudioError, match=re.escape(f"{path}: {whole}") + "$"):
            read_audio(path)
        if stream:
            with pytest.raises(AudioError, match=re.escape(f"{path}: {stream}") + "$"):
                list(iter_audio_blocks(path, 1600))


def test_api_ten_hour_file_streams_in_bounded_memory(tmp_path):
    """read_audio refuses 10 h (230 MB a hour as float32) at once, without reading it;
    iter_audio_blocks streams it. The stream runs in a child process whose peak RSS must stay
    small: 10 h of 16-bit audio is 1.15 GB on disk (a sparse file here). The peak is the child's
    VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec, so a child spawned by a big pytest
    process (torch and TensorFlow loaded) reports the parent's size."""
    path = tmp_path / "ten hours.wav"
    n_bytes = write_long_wav(path, 10.0)
    with pytest.raises(AudioError, match="36000 s of audio is longer than the 3600 s read whole; stream it"):
        read_audio(path)
    script = (
        "import sys\n"
        "from edge_sed.core.audio_io import iter_audio_blocks\n"
        "n = 0\n"
        "for block in iter_audio_blocks(sys.argv[1], 1 << 20):\n"
        "    n += len(block); assert not block.any()\n"
        "hwm = next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:'))\n"
        "print(n, hwm)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    samples, peak_kb = map(int, result.stdout.split())
    assert samples == n_bytes // 2 == 10 * 3600 * SAMPLE_RATE
    assert peak_kb < 200 * 1024, f"peak RSS {peak_kb / 1024:.0f} MB while streaming 10 h"


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("headroom_mb", [300, 1100])
def test_api_a_file_too_big_for_the_memory_is_one_line_naming_it(tmp_path, headroom_mb):
    """Half an hour of 48 kHz stereo (within the hour read_audio reads whole) in a process
    allowed only ``headroom_mb`` more address space: 300 MB fails reading the samples (it
    said "corrupt audio data"), 1100 MB in the mixdown or the resampler (a bare MemoryError
    naming nothing). Both are one AudioError naming the file and what to do. (This case was 1400
    MB until resample_poly became the streaming resampler fed in pieces, which needs less: the
    file now reads whole with 1300 MB, where the old resampler failed with 1600.)"""
    path = tmp_path / "field recording.wav"
    write_long_wav(path, 0.5, sample_rate=48000, channels=2)
    script = (
        "import resource, sys\n"
        "from edge_sed.core.audio_io import read_audio\n"
        "from edge_sed.core.errors import AudioError\n"
        "vm = next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmSize:')) * 1024\n"
        "resource.setrlimit(resource.RLIMIT_AS, (vm + int(sys.argv[2]) * 2**20, resource.RLIM_INFINITY))\n"
        "try:\n"
        "    read_audio(sys.argv[1])\n"
        "except AudioError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(path), str(headroom_mb)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OPENBLAS_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout == (
        f"{path}: not enough memory to read 1800 s of 2-channel audio at 48000 Hz whole "
        "(691 MB as float32); convert it to 16000 Hz mono first (e.g. with sox)\n"
    )


# ------------------------------------------------------------------------- edge-sed listen


@pytest.fixture(scope="module")
def listened(bundle, reference, tmp_path_factory):
    """`listen --file` on the reference: the summary every converted row is compared with."""
    import io
    from contextlib import redirect_stdout

    buf = io.StringIO()
    with redirect_stdout(buf):
        code = main(["listen", "--bundle", str(bundle), "--file", str(reference[0]), *LISTEN_ARGS])
    assert code == 0
    summary = json.loads(buf.getvalue())
    assert summary["events"] > 0, "the reference must have events, or 'same events' proves nothing"
    return summary


@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize(
    "case", list(BAD) + ["a directory", "10-hour file (header only)", "/dev/zero", "a socket"]
)
def test_listen_refuses_bad_files(capfd, inputs, bundle, tmp_path, case):
    """One line on stderr: capfd sees fd 2, so a C decoder's own messages (libmpg123) would show."""
    if case == "a directory":
        path, fragment = tmp_path, "is a directory"
    elif case in ("/dev/zero", "a socket"):
        path, _, fragment = _special_files(tmp_path)[case]
    elif case == "10-hour file (header only)":
        # a 10-hour header with 1 s of data: truncated, found before any audio is played
        path, fragment = tmp_path / "long.wav", "truncated"
        write_long_wav(path, 10.0)
        with open(path, "r+b") as f:
            f.truncate(44 + 32000)
    else:
        path, fragment = inputs[case], BAD_MESSAGE[case]
    code, out, err = run_cli(capfd, "listen", "--bundle", bundle, "--file", path, *LISTEN_ARGS)
    assert_one_line_error(code, err, fragment)


@pytest.mark.parametrize("case", list(CONVERTED))
def test_listen_converts(capfd, inputs, bundle, listened, case):
    code, out, err = run_cli(capfd, "listen", "--bundle", bundle, "--file", inputs[case], *LISTEN_ARGS)
    assert code == 0, err
    assert "Traceback" not in err
    summary = json.loads(out)
    assert abs(summary["audio_s"] - listened["audio_s"]) < 0.002
    assert summary["decisions"] == listened["decisions"] and summary["stopped_by"] == "end"
    if case == "all-zero audio":
        assert summary["detected"] == [], "silence must not raise events"
    if CONVERTED[case][2] == "same":
        got = [(e["class"], e["stream_s"]) for e in summary["detected"]]
        want = [(e["class"], e["stream_s"]) for e in listened["detected"]]
        assert [c for c, _ in got] == [c for c, _ in want], (got, want)
        assert all(abs(a - b) < 0.011 for (_, a), (_, b) in zip(got, want)), (got, want)


def test_listen_ten_hour_file_streams_without_loading_it(capfd, bundle, tmp_path):
    """A 10-hour WAV starts at once and runs in bounded memory (--duration stops it after 30 s
    of audio): the file is streamed block by block, never read whole."""
    path = tmp_path / "ten hours.wav"
    write_long_wav(path, 10.0)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    code, out, err = run_cli(
        capfd, "listen", "--bundle", bundle, "--file", path, "--duration", "30", "--json"
    )
    assert code == 0, err
    summary = json.loads(out)
    assert summary["audio_s"] == 30.0 and summary["stopped_by"] == "duration"
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 100, f"peak RSS grew by {grown_mb:.0f} MB"


# ------------------------------------------------------------------------ edge-sed evaluate


@pytest.mark.parametrize("case", [c for c in BAD if c != "missing file"] + ["/dev/zero", "a named pipe"])
def test_evaluate_refuses_bad_streams(capfd, inputs, reference, bundle, tmp_path, case):
    """evaluate reads each stream whole (read_audio), its annotations beside it."""
    if case in ("/dev/zero", "a named pipe"):
        path, fragment, _ = _special_files(tmp_path)[case]
    else:
        path, fragment = tmp_path / inputs[case].name, BAD_MESSAGE[case]
        shutil.copy(inputs[case], path)
        shutil.copy(reference[0].with_suffix(".csv"), path.with_suffix(".csv"))
    code, out, err = run_cli(capfd, "evaluate", bundle, path, "--json")
    assert_one_line_error(code, err, fragment, path.name)


def test_evaluate_refuses_settings_that_could_never_fire(capfd, reference, bundle):
    """--min-count 1000 gave a report of 0 detections; listen refused it already."""
    code, out, err = run_cli(capfd, "evaluate", bundle, reference[0], "--min-count", "1000")
    assert_one_line_error(code, err, "minimum count 1000", "no event could ever fire")


# --------------------------------------------------------------- data stats / prepare / train


@pytest.fixture(scope="module")
def dataset_rows(tiny_data):
    """The tiny data set's metadata rows with absolute paths (so copies can live anywhere)."""
    with open(tiny_data, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["path"] = str((Path(tiny_data).parent / r["path"]).resolve())
    return rows


def dataset_with(rows, folder: Path, extra: dict) -> Path:
    """A copy of the data set's metadata.csv in ``folder`` plus one dog clip per ``extra`` path
    (each its own recording group)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [dict(r) for r in rows]
    for i, path in enumerate(extra.values()):
        rows.append(
            {
                **rows[0],
                "path": str(path),
                "group": f"extra-{i}",
                "duration_s": "",
                "onset_s": "",
                "offset_s": "",
            }
        )
    with open(folder / "metadata.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return folder


DATA_BAD = [c for c in BAD if c != "missing file"]


@pytest.mark.parametrize("command", ["stats", "prepare"])
@pytest.mark.parametrize("case", DATA_BAD)
def test_data_stats_and_prepare_name_the_bad_file(capfd, dataset_rows, inputs, tmp_path, case, command):
    """Both decode every file first (--no-check skips it), so the file is named before any split
    is written or any training starts."""
    folder = dataset_with(dataset_rows, tmp_path / "set", {case: inputs[case]})
    args = ["--no-png"] if command == "stats" else ["--out", tmp_path / "splits"]
    code, out, err = run_cli(capfd, "data", command, folder, *args)
    message = assert_one_line_error(code, err, "1 of 73 audio files are unusable", inputs[case].name)
    assert BAD_MESSAGE[case] in message
    assert not (tmp_path / "splits").exists()


@pytest.mark.parametrize("case", DATA_BAD)
def test_train_names_the_bad_file_before_training(capfd, dataset_rows, inputs, tmp_path, case):
    folder = dataset_with(dataset_rows, tmp_path / "set", {case: inputs[case]})
    code, out, err = run_cli(
        capfd,
        "train",
        "--data",
        folder,
        "--ratio",
        "none",
        "--out",
        tmp_path / "run",
        "--epochs",
        "1",
        "--threads",
        "1",
        "--json",
    )
    assert_one_line_error(code, err, inputs[case].name, BAD_MESSAGE[case])
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_missing_file_in_a_data_set(capfd, dataset_rows, tmp_path):
    folder = dataset_with(dataset_rows, tmp_path / "set", {"missing": tmp_path / "gone.wav"})
    for args in (
        ["data", "stats", folder, "--no-png"],
        ["data", "prepare", folder, "--out", tmp_path / "o"],
        ["train", "--data", folder, "--out", tmp_path / "run", "--epochs", "1"],
    ):
        code, out, err = run_cli(capfd, *args)
        assert_one_line_error(code, err, "gone.wav")


def test_data_commands_on_a_folder_without_audio(capfd, tmp_path):
    (tmp_path / "empty" / "dog").mkdir(parents=True)
    (tmp_path / "empty" / "notes.txt").write_text("no audio here")
    for args in (
        ["data", "stats", tmp_path / "empty"],
        ["data", "prepare", tmp_path / "empty", "--out", tmp_path / "o"],
        ["train", "--data", tmp_path / "empty", "--out", tmp_path / "run"],
        ["data", "stream", tmp_path / "empty", "--out", tmp_path / "s.wav"],
    ):
        code, out, err = run_cli(capfd, *args)
        assert_one_line_error(code, err, "no audio files found")
    assert not (tmp_path / "o").exists() and not (tmp_path / "s.wav").exists()


def test_data_commands_accept_every_converted_format(capfd, dataset_rows, inputs, tmp_path):
    """One data set holding every CONVERTED row: stats decodes them all, prepare splits them,
    train reads them (one epoch) - and the windows train sees are the reference's windows."""
    folder = dataset_with(dataset_rows, tmp_path / "set", {c: inputs[c] for c in CONVERTED})
    code, out, err = run_cli(capfd, "data", "stats", folder, "--no-png", "--json")
    assert code == 0, err
    assert json.loads(out)["classes"]["dog"]["clips"] == 12 + len(CONVERTED)
    code, out, err = run_cli(capfd, "data", "prepare", folder, "--out", tmp_path / "splits", "--json")
    assert code == 0, err
    code, out, err = run_cli(
        capfd,
        "train",
        "--data",
        tmp_path / "splits",
        "--ratio",
        "none",
        "--out",
        tmp_path / "run",
        "--epochs",
        "1",
        "--threads",
        "1",
        "--batch-size",
        "32",
        "--json",
    )
    assert code == 0, err
    assert json.loads(out)["epochs_run"] == 1


# ------------------------------------------------------------------------ edge-sed simulate


def simulate(capfd, bundle, stream, annotations, out):
    return run_cli(
        capfd,
        "simulate",
        bundle,
        "--profile",
        "cortex-m4-80mhz",
        "--stream",
        stream,
        "--annotations",
        annotations,
        "--out",
        out,
        "--json",
    )


@pytest.fixture(scope="module")
def simulated(tiny_bundles, reference, tmp_path_factory):
    """`simulate --stream` on the reference (the MCU simulator: int8 bundle, tflite-micro)."""
    pytest.importorskip("tflite_micro")
    out = tmp_path_factory.mktemp("sim") / "sim.json"
    assert (
        main(
            [
                "simulate",
                str(tiny_bundles[0] / "int8"),
                "--profile",
                "cortex-m4-80mhz",
                "--stream",
                str(reference[0]),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    return json.loads(out.read_text())["records"][0]


@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize(
    "case", [c for c in BAD if "MP3" not in c] + ["10-hour file"]
)  # --stream: .wav/.flac by name
def test_simulate_refuses_bad_streams(capfd, tiny_bundles, inputs, reference, simulated, tmp_path, case):
    """simulate reads a stream whole (read_audio): a 10-hour file is refused, not loaded."""
    if case == "10-hour file":
        path, fragment = tmp_path / "long.wav", "stream it instead"
        write_long_wav(path, 10.0)
    else:
        path, fragment = inputs[case], BAD_MESSAGE[case]
    code, out, err = simulate(
        capfd, tiny_bundles[0] / "int8", path, reference[0].with_suffix(".csv"), tmp_path / "sim.json"
    )
    assert_one_line_error(code, err, fragment, path.name)
    assert not (tmp_path / "sim.json").exists()


@pytest.mark.parametrize("case", list(CONVERTED))
def test_simulate_converts(capfd, tiny_bundles, inputs, reference, simulated, tmp_path, case):
    code, out, err = simulate(
        capfd, tiny_bundles[0] / "int8", inputs[case], reference[0].with_suffix(".csv"), tmp_path / "sim.json"
    )
    assert code == 0, err
    record = json.loads(out)["records"][0]
    assert record["clock"]["decisions"] == simulated["clock"]["decisions"]
    assert abs(record["clock"]["duration_s"] - simulated["clock"]["duration_s"]) < 0.002
    if CONVERTED[case][2] == "same":
        assert record["events"]["detected"] == simulated["events"]["detected"]
        assert record["events"]["tp"] == simulated["events"]["tp"]
