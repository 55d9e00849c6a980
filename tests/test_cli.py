"""The edge-sed command as a user runs it: the installed console script, in a subprocess."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge_sed.core.audio_io import write_audio

EDGE_SED = str(Path(sys.executable).with_name("edge-sed"))
SUBCOMMANDS = ["data", "train", "convert", "verify", "simulate", "listen", "report", "demo"]


def run(*args, timeout=300):
    return subprocess.run([EDGE_SED, *map(str, args)], capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(result, code, text):
    assert result.returncode == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and text in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_help_lists_every_subcommand():
    result = run("--help")
    assert result.returncode == 0
    for name in SUBCOMMANDS:
        assert name in result.stdout


@pytest.mark.parametrize(
    "args",
    [[c, "--help"] for c in SUBCOMMANDS] + [["data", c, "--help"] for c in ("synth", "prepare", "stats")],
)
def test_every_command_has_help(args):
    result = run(*args)
    assert result.returncode == 0 and "Usage:" in result.stdout


def test_simulate_bad_bundle_is_a_one_line_error(tmp_path):
    # every stage is built now (simulate: issue 5, listen: the device loop), so none exits 3
    assert_one_line_error(run("simulate", tmp_path, "--stream", tmp_path / "none.wav"), 2, "neither a bundle")


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    result = run("data", "synth", "--out", out, "--counts", "15:15:15:75", "--seed", "3", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["counts"] == {"dog": 15, "baby_cry": 15, "gunshot": 15, "background": 75}
    return out


def test_synth_then_stats_with_png(synth_dir, tmp_path):
    png = tmp_path / "ex.png"
    result = run("data", "stats", synth_dir, "--png", png, "--json")
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)["classes"]
    assert {k: v["clips"] for k, v in stats.items()} == {
        "dog": 15,
        "baby_cry": 15,
        "gunshot": 15,
        "background": 75,
    }
    assert stats["dog"]["duration_s"] == pytest.approx(30.0)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_prepare_keeps_the_ratio_and_groups_apart(synth_dir, tmp_path):
    result = run(
        "data",
        "prepare",
        synth_dir,
        "--ratio",
        "dog=2,baby_cry=2,gunshot=1,background=10",
        "--out",
        tmp_path,
        "--json",
        "--split",
        "0.34,0.33,0.33",
        "--ratio-on",
        "all",
    )
    assert result.returncode == 0, result.stderr
    splits = json.loads(result.stdout)["splits"]
    groups = {}
    for name, counts in splits.items():
        k = counts["gunshot"]
        assert k >= 1 and counts == {"dog": 2 * k, "baby_cry": 2 * k, "gunshot": k, "background": 10 * k}
        with open(tmp_path / f"{name}.csv") as f:
            groups[name] = {row["group"] for row in csv.DictReader(f)}
    assert not (
        groups["train"] & groups["val"] or groups["train"] & groups["test"] or groups["val"] & groups["test"]
    )


def test_synth_counts_and_ratio_forms(tmp_path):
    result = run("data", "synth", "--out", tmp_path, "--total", "31", "--ratio", "2:2:1:26", "--json")
    assert json.loads(result.stdout)["counts"] == {"dog": 2, "baby_cry": 2, "gunshot": 1, "background": 26}


@pytest.mark.parametrize(
    "args,text",
    [
        (["data", "synth", "--out", "{tmp}", "--counts", "1:2"], "ratio"),
        (["data", "synth", "--out", "{tmp}", "--counts", "cat=3"], "unknown label 'cat'"),
        (["data", "prepare", "{tmp}", "--out", "{tmp}/o"], "no audio"),
        (["data", "stats", "{tmp}/nonexistent"], "does not exist"),
        (["data", "prepare", "{synth}", "--out", "{tmp}/o", "--ratio", "1:1:1:500"], "needs at least"),
        (["data", "prepare", "{synth}", "--out", "{tmp}/o", "--split", "0.9,0.9"], "--split"),
    ],
)
def test_user_mistakes_are_one_line(tmp_path, synth_dir, args, text):
    args = [a.format(tmp=tmp_path, synth=synth_dir) for a in args]
    result = run(*args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert text in result.stderr and "Traceback" not in result.stderr
    assert (
        len([l for l in result.stderr.splitlines() if l.strip() and not l.startswith(("Usage:", "Try "))])
        == 1
    )


@pytest.mark.parametrize("bad", ["empty", "text", "nan", "truncated"])
def test_a_bad_file_in_a_data_set_is_named(tmp_path, bad):
    for i in range(3):
        write_audio(tmp_path / "dog" / f"d{i}.wav", np.zeros(8000))
    path = tmp_path / "dog" / "broken file.wav"
    if bad == "empty":
        path.write_bytes(b"")
    elif bad == "text":
        path.write_text("not audio at all")
    elif bad == "nan":
        import soundfile as sf

        sf.write(path, np.array([0.0, np.nan] * 100, np.float32), 16000, subtype="FLOAT")
    else:
        write_audio(path, np.zeros(16000))
        path.write_bytes(path.read_bytes()[:3000])
    result = run("data", "stats", tmp_path, "--png", tmp_path / "x.png")
    assert_one_line_error(result, 2, "broken file.wav")
    assert "1 of 4 audio files" in result.stderr
    assert not (tmp_path / "x.png").exists()


def test_train_from_prepared_splits_writes_a_run(synth_dir, tmp_path):
    splits = tmp_path / "splits"
    assert (
        run(
            "data", "prepare", synth_dir, "--out", splits, "--ratio", "1:1:1:5", "--split", "0.34,0.33,0.33"
        ).returncode
        == 0
    )
    result = run(
        "train",
        "--data",
        splits,
        "--out",
        tmp_path / "run",
        "--epochs",
        "3",
        "--json",
        "--objective",
        "clustered",
        "--stage1-epochs",
        "2",
        "--param",
        "margin=0.4",
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert metrics["epochs_run"] == 5 and metrics["objective"] == "clustered"
    assert 0 <= metrics["test"]["overall_error"] <= 1
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["objective_params"] == {"margin": 0.4}


@pytest.mark.parametrize(
    "args,text",
    [
        (["train", "--out", "x"], "exactly one of --data PATH or --synthetic"),
        (["train", "--synthetic", "--out", "x", "--objective", "magic"], "unknown objective"),
        (["train", "--synthetic", "--out", "x", "--param", "nonsense"], "NAME=VALUE"),
    ],
)
def test_train_usage_errors(args, text):
    result = run(*args)
    assert result.returncode == 2 and text in result.stderr, result.stderr


# ------------------------------------------------------------ numeric options (issue 18)


@pytest.mark.parametrize(
    "args, text",
    [
        (["data", "stream", "{tmp}", "--out", "{tmp}/s.wav", "--duration", "nan"], "not a finite number"),
        (["data", "stream", "{tmp}", "--out", "{tmp}/s.wav", "--duration", "inf"], "--duration"),
        (["data", "stream", "{tmp}", "--out", "{tmp}/s.wav", "--duration", "1e12"], "--duration"),
        (["data", "stream", "{tmp}", "--out", "{tmp}/s.wav", "--ebr-db", "nan"], "not a finite number"),
        (["simulate", "{tmp}", "--stream", "{tmp}", "--duration", "nan"], "not a finite number"),
        (["simulate", "{tmp}", "--stream", "{tmp}", "--duration", "inf"], "--duration"),
        (["simulate", "{tmp}", "--stream", "{tmp}", "--duration", "1e12"], "--duration"),
        (["train", "--synthetic", "--out", "{tmp}/r", "--lr", "nan"], "not a finite number"),
        (["data", "synth", "--out", "{tmp}/d", "--clip-s", "nan"], "not a finite number"),
        (["report", "--bundles", "{tmp}", "--stream-s", "nan"], "not a finite number"),
        (["deploy", "--settle", "nan"], "not a finite number"),
    ],
)
def test_nan_and_inf_never_reach_a_command(tmp_path, args, text):
    """click's FloatRange lets "nan" through (every comparison with NaN is False): simulate of a
    1e12 s stream tried to build it in memory, data stream --duration nan crashed."""
    result = run(*[a.format(tmp=tmp_path) for a in args])
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert text in result.stderr.strip().splitlines()[-1] and "Traceback" not in result.stderr


T = ["train", "--synthetic", "--out", "{tmp}/r"]
E = ["experiments", "--synthetic", "--out", "{tmp}/e"]


@pytest.mark.parametrize(
    "args, text",
    [
        (T + ["--epochs", "0"], "Invalid value for '--epochs': 0 is not in the range 1<=x<=10000"),
        (T + ["--epochs", "-1"], "'--epochs'"),
        (T + ["--epochs", "99999999999"], "'--epochs'"),
        (T + ["--epochs", "nan"], "'--epochs'"),
        (T + ["--batch-size", "0"], "Invalid value for '--batch-size': 0 is not in the range x>=2"),
        (T + ["--batch-size", "1"], "'--batch-size'"),
        (T + ["--batch-size", "-64"], "'--batch-size'"),
        (T + ["--patience", "0"], "'--patience'"),
        (T + ["--stage1-epochs", "0"], "'--stage1-epochs'"),
        (T + ["--threads", "-1"], "'--threads'"),
        (T + ["--threads", "100000"], "'--threads'"),
        (T + ["--seed", "-1"], "'--seed'"),
        (T + ["--seed", "99999999999999999999"], "'--seed'"),
        (T + ["--lr", "-1"], "'--lr'"),
        (T + ["--lr", "0"], "'--lr'"),
        (T + ["--lr", "inf"], "'--lr'"),
        (T + ["--lr", "1e9"], "'--lr'"),
        (T + ["--finetune-lr", "-1"], "'--finetune-lr'"),
        (E + ["--epochs", "0"], "'--epochs'"),
        (E + ["--stage1-epochs", "0"], "'--stage1-epochs'"),
        (E + ["--patience", "0"], "'--patience'"),
        (E + ["--seeds", "0,-1"], "--seeds '0,-1': at most 1000 seeds, each from 0 to 4294967295"),
        (E + ["--seeds", "0-99999999999999999999"], "at most 1000 seeds"),
        (["data", "synth", "--out", "{tmp}/d", "--seed", "-1"], "'--seed'"),
        (
            ["data", "synth", "--out", "{tmp}/d", "--counts", "1e30:1:1:1"],
            "must be a whole number from 0 to 100000",
        ),
        (
            ["data", "synth", "--out", "{tmp}/d", "--total", "1000000000000"],
            "must be a whole number from 0 to 100000",
        ),
        (["data", "synth", "--out", "{tmp}/d", "--total", "0"], "'--total'"),
        (["data", "stream", "{tmp}", "--out", "{tmp}/s.wav", "--events", "1000000"], "'--events'"),
        (["data", "stream", "{tmp}", "--out", "{tmp}/s.wav", "--events", "-1"], "'--events'"),
        (["simulate", "{tmp}", "--stream", "{tmp}", "--seed", "-1"], "'--seed'"),
        (["simulate", "{tmp}", "--stream", "{tmp}", "--events", "1000000"], "'--events'"),
        (["report", "--bundles", "{tmp}", "--latency-rounds", "0"], "'--latency-rounds'"),
        (["report", "--bundles", "{tmp}", "--latency-rounds", "1000000000"], "'--latency-rounds'"),
        (["report", "--bundles", "{tmp}", "--stream-events", "1000000"], "'--stream-events'"),
        (["bench", "{tmp}", "--rounds", "1000000000"], "'--rounds'"),
        (["bench", "{tmp}", "--hop-frames", "0"], "'--hop-frames'"),
        (["demo", "--seed", "-1"], "'--seed'"),
    ],
)
def test_zero_negative_and_absurd_numbers_are_refused(tmp_path, args, text):
    """train --epochs 0 trained nothing and then failed ("internal error" on the missing best.pt),
    --batch-size 1 skipped every batch, a negative --seed was numpy's ValueError, 10^12 clips or
    10^20 seeds ran out of memory before saying anything."""
    result = run(*[a.format(tmp=tmp_path) for a in args])
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert text in result.stderr.strip().splitlines()[-1] and "Traceback" not in result.stderr, result.stderr
    assert "internal error" not in result.stderr
    assert not (tmp_path / "d").exists() and not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "args, line",
    [
        (
            ["train", "--synthetic", "--epochs", "0"],
            "error: Invalid value for '--epochs': 0 is not in the range 1<=x<=10000. "
            "(see edge-sed train --help)",
        ),
        (["listen", "--nope"], "error: No such option '--nope'. (see edge-sed listen --help)"),
        (["nocmd"], "error: No such command 'nocmd'. (see edge-sed --help)"),
    ],
)
def test_a_bad_option_is_one_line_too(args, line):
    """click's own usage errors (Usage: / Try ... / Error: ...) are printed as the project's
    one line, naming the command's --help."""
    result = run(*args)
    assert result.returncode == 2 and result.stderr.splitlines() == [line], result.stderr


def test_a_stream_too_big_for_memory_is_refused(capfd, tmp_path, monkeypatch):
    import edge_sed.cli.common as cli

    from test_bad_audio import assert_one_line_error, run_cli

    monkeypatch.setattr(cli, "_available_memory_bytes", lambda: 2 * 1024**3)
    code, out, err = run_cli(
        capfd, "data", "stream", tmp_path, "--out", tmp_path / "s.wav", "--duration", "86400"
    )
    assert_one_line_error(code, err, "--duration 86400", "GB of memory", "2.0 GB is available")
    assert not (tmp_path / "s.wav").exists()
    monkeypatch.undo()
    if Path("/proc/meminfo").exists():  # the real figure, where Linux gives one
        assert cli._available_memory_bytes() > 0


def test_control_characters_in_arguments_are_escaped(tmp_path):
    """A path (or label) with a newline printed a fake `error:` line, an ANSI escape drove the
    terminal; main() prints every message with them escaped."""
    result = run("listen", "--bundle", f"{tmp_path}/a\x1b[2Jb\nerror: fake", "--file", tmp_path / "x.wav")
    assert_one_line_error(result, 2, "not a bundle directory")
    assert "\x1b" not in result.stderr and "\\x1b[2Jb\\nerror: fake" in result.stderr
    result = run("verify", f"{tmp_path}/no\nerror: fake")
    assert result.returncode == 2 and "\\nerror: fake" in result.stderr
    assert not any(l.startswith("error: fake") for l in result.stderr.splitlines())
