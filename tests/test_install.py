"""Installed as users install it: the wheel `edge-sed deploy` builds (and `pip wheel .` would)
holds every file the packages have, and a fresh venv with that wheel alone (no extras, no
checkout on the path) runs the device runtime: verify, listen --file; with [sim] it runs the MCU
simulator. pip fetches the dependencies from the index (or its cache)."""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EDGE_SED = str(Path(sys.executable).with_name("edge-sed"))
PACKAGES = ("edge_sed", "train", "convert", "firmware_sim")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    from edge_sed.deploy.steps import build_wheel

    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="module")
def labelled_stream(tmp_path_factory):
    from edge_sed.data.datasets import load_clips
    from edge_sed.data.streams import make_stream, write_stream
    from edge_sed.data.synth import write_dataset

    root = tmp_path_factory.mktemp("install-stream")
    clips = load_clips(
        write_dataset(
            root / "held", {"dog": 3, "baby_cry": 3, "gunshot": 3, "background": 6}, seed=78, workers=1
        )
    )
    audio, ann = make_stream(clips, duration_s=20.0, n_events=4, seed=2, ebr_db=12.0)
    write_stream(root / "s.wav", audio, ann)
    return root / "s.wav"


@pytest.fixture(scope="module")
def fresh_venv(wheel, tmp_path_factory):
    venv = tmp_path_factory.mktemp("fresh") / "venv"
    subprocess.run(
        [getattr(sys, "_base_executable", sys.executable), "-m", "venv", str(venv)], check=True, timeout=300
    )
    pip(venv, "install", str(wheel))
    return venv


def pip(venv: Path, *args):
    r = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q", *args],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert r.returncode == 0, r.stderr[-2000:]


def run(venv: Path, *args, cwd):
    return subprocess.run(
        [str(venv / "bin" / "edge-sed"), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
    )


def test_the_wheel_holds_every_file_of_the_packages(wheel):
    tracked = subprocess.run(
        ["git", "ls-files", *PACKAGES], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert any(f.endswith("counts.json") for f in tracked)  # the listing is the checkout's
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    missing = [f for f in tracked if f not in names]
    assert not missing, f"the wheel lacks {missing}"
    assert not [n for n in names if n.startswith(("tests/", ".cache/", "out/")) or "__pycache__" in n]
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "Requires-Python: >=3.10" in meta
    sim = next(line for line in meta.splitlines() if line.startswith("Requires-Dist: tflite-micro"))
    assert (
        'platform_machine == "x86_64"' in sim and 'sys_platform == "linux"' in sim and 'extra == "sim"' in sim
    )


def test_a_fresh_venv_with_the_wheel_alone_runs_the_device_runtime(
    fresh_venv, stateful_bundles, labelled_stream, tmp_path
):
    r = subprocess.run(
        [
            str(fresh_venv / "bin" / "python"),
            "-c",
            "import importlib.util as u, edge_sed; print(edge_sed.__file__); "
            "print([m for m in ('torch', 'tensorflow', 'tflite_micro') if u.find_spec(m)])",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    where, heavy = r.stdout.splitlines()
    assert where.startswith(str(fresh_venv)) and heavy == "[]"
    bundle = stateful_bundles[0] / "int8"
    r = run(fresh_venv, "verify", bundle, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = run(fresh_venv, "listen", "--bundle", bundle, "--file", labelled_stream, "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    mine = subprocess.run(
        [EDGE_SED, "listen", "--bundle", str(bundle), "--file", str(labelled_stream), "--json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert json.loads(r.stdout)["detected"] == json.loads(mine.stdout)["detected"]
    # the MCU simulator needs tflite-micro ([sim]): without it, one line that says so
    r = run(
        fresh_venv,
        "simulate",
        bundle,
        "--profile",
        "cortex-m4-80mhz",
        "--stream",
        labelled_stream,
        "--out",
        tmp_path / "sim.json",
        cwd=tmp_path,
    )
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode != 0 and last.startswith("error: ") and "install the 'sim' extra" in last, r.stderr
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr


def test_with_the_sim_extra_the_mcu_simulator_runs(
    fresh_venv, wheel, stateful_bundles, labelled_stream, tmp_path
):
    pip(fresh_venv, "install", f"{wheel}[sim]")
    out = tmp_path / "sim.json"
    r = run(
        fresh_venv,
        "simulate",
        stateful_bundles[0] / "int8",
        "--profile",
        "cortex-m4-80mhz",
        "--stream",
        labelled_stream,
        "--out",
        out,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    rec = json.loads(out.read_text())["records"][0]
    assert rec["profile"] == "cortex-m4-80mhz" and 0 < rec["clock"]["duty_cycle"] < 1
    assert rec["memory"]["fits"] and "goals" in rec and "duty cycle" in r.stdout


def test_deploy_builds_its_wheel_in_a_fresh_venv(fresh_venv, tmp_path):
    """`deploy` builds the wheel it ships with the Python it runs on. A fresh venv has pip and an
    old setuptools without bdist_wheel (3.11: 65.x); --no-build-isolation failed there
    ("invalid command 'bdist_wheel'"), so pip now builds in isolation when the backend is too old."""
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(Path.home())}
    r = subprocess.run(
        [
            str(fresh_venv / "bin" / "python"),
            "-c",
            "import sys; from pathlib import Path; from importlib.metadata import version; "
            "from edge_sed.deploy.steps import build_wheel, _isolation_args, source_root; "
            "print(version('setuptools')); print(_isolation_args(source_root())); "
            "print(build_wheel(Path(sys.argv[1])))",
            str(tmp_path / "w"),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    setuptools, isolation, built = r.stdout.splitlines()[-3:]
    assert isolation == ("[]" if int(setuptools.split(".")[0]) < 77 else "['--no-build-isolation']")
    with zipfile.ZipFile(built) as z:
        assert "firmware_sim/c/counts.json" in z.namelist()


def test_in_the_emulated_pi_the_wheel_installs_in_a_venv_and_listens(
    wheel, stateful_bundles, labelled_stream, tmp_path
):
    """A Pi user's install (firmware_sim's emulated Debian bookworm arm64 userland): a venv, pip
    install of the same wheel (dependencies from the cached aarch64 wheelhouse), then
    `edge-sed listen --file` on a bundle. The events match the host's; the int8 kernels on
    aarch64 (XNNPACK's NEON paths) round a little differently from x86-64's, so scores and times
    are compared within a tolerance."""
    from firmware_sim import pi_root

    venv = pi_root.install_in_venv(tmp_path / "venv", wheel)
    assert pi_root.wheelhouse(wheel) == pi_root.wheelhouse(wheel)  # cached: the second call fetches nothing
    assert not list((venv / "lib" / "python3.11" / "site-packages").glob("torch*"))
    bundle = stateful_bundles[0] / "int8"
    args = [
        "listen",
        "--bundle",
        str(bundle),
        "--file",
        str(labelled_stream),
        "--json",
        "--threshold",
        "0.3",
        "--min-count",
        "1",
    ]
    cmd, env = pi_root.venv_command(venv, ["edge-sed", *args])
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    pi = json.loads(r.stdout)
    host = json.loads(subprocess.run([EDGE_SED, *args], capture_output=True, text=True, timeout=600).stdout)
    assert host["detected"], "the comparison needs events"
    assert pi["decisions"] == host["decisions"] and pi["audio_s"] == host["audio_s"]
    assert [e["class"] for e in pi["detected"]] == [e["class"] for e in host["detected"]]
    for a, b in zip(pi["detected"], host["detected"]):
        assert abs(a["stream_s"] - b["stream_s"]) <= 0.1 and abs(a["score"] - b["score"]) <= 0.05
