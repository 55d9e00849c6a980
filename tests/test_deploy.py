"""edge-sed deploy against a real OpenSSH server on loopback.

The "boards" are sshd instances (Debian's openssh-server, each on its own free port of
127.0.0.1, a generated host key, an authorized test key) whose sessions get their own HOME via
sshd's SetEnv, so each is a separate target with its own ~/edge-sed:
- ``good``: a normal target;
- ``nopython``: its PATH has every tool of /usr/bin except python (a board without Python);
- ``full`` (when tmpfs can be mounted): HOME on an 8 MB tmpfs (a full SD card).

Only systemd is replaced: no systemd runs here, so the sessions' PATH starts with a directory
holding FAKE_SYSTEMCTL below, a shell script that records every call in
``$HOME/.fake-systemd/calls.log`` and keeps each service's state there. Its ``restart`` checks
the unit for real (``systemd-analyze verify``), stops the process it started before, and really
starts the unit's ExecStart in its WorkingDirectory in the background (pid and exit status in
``$HOME/.fake-systemd/``; ``is-active`` = that process is alive). The deployed ``edge-sed listen``
then runs from the deployed venv on a synthetic WAV (``--listen-args "--file ... --realtime"``:
no microphone here) and writes real events to ``logs/events.jsonl``, which ``--status`` shows.
No Restart=on-failure emulation. Everything else is real: ssh, the tar upload, sha256sum on the
target, ``python -m venv`` + ``pip install`` of the wheel built from this checkout (dependencies from
PyPI; the test sessions share the real pip cache so only the first install downloads), the target's own
``edge-sed verify`` through LiteRT, the symlink switches, and ansible-playbook.
"""

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from edge_sed.cli import main

pytestmark = pytest.mark.skipif(
    not (shutil.which("ssh") and Path("/usr/sbin/sshd").exists() and shutil.which("ssh-keygen")),
    reason="needs OpenSSH (scripts/setup.sh installs openssh-server/-client)",
)

FAKE_SYSTEMCTL = (
    r"""#!/bin/sh
# Fake systemctl for the deploy tests (see tests/test_deploy.py).
state="$HOME/.fake-systemd"; mkdir -p "$state"
echo "$*" >> "$state/calls.log"
if [ "${1:-}" = "--user" ]; then shift; units="$HOME/.config/systemd/user"; else units=/etc/systemd/system; fi
cmd=${1:-}; [ $# -gt 0 ] && shift
quiet=; [ "${1:-}" = "--quiet" ] && { quiet=1; shift; }
name=${1%.service}
pidf="$state/$name.pid"; rcf="$state/$name.rc"
stop() {  # SIGTERM the process, wait (<= 10 s) for its exit status to be written
  [ -f "$pidf" ] || return 0
  kill "$(cat "$pidf")" 2>/dev/null && { i=0; while [ ! -f "$rcf" ] && [ $i -lt 100 ]; do sleep 0.1; """
    r"""i=$((i + 1)); done; }
  rm -f "$pidf"
}
active_state() {
  if [ -f "$pidf" ] && [ ! -f "$rcf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; then echo active
  elif [ -f "$rcf" ]; then [ "$(cat "$rcf")" = 0 ] && echo inactive || echo failed
  else cat "$state/$name.state" 2>/dev/null || echo inactive; fi
}
case "$cmd" in
  --version) echo "systemd 252 (fake)";;
  daemon-reload) ;;
  enable) [ -f "$units/$name.service" ] || { echo "Unit $name.service not found." >&2; exit 1; }
          touch "$state/$name.enabled";;
  start|restart)
    unit="$units/$name.service"
    [ -f "$unit" ] || { echo "Unit $name.service not found." >&2; exit 5; }
    stop; rm -f "$rcf"
    ok=1
    if command -v systemd-analyze >/dev/null 2>&1; then
      systemd-analyze verify "$unit" >"$state/verify.log" 2>&1 || ok=0
    fi
    if [ $ok = 0 ]; then echo failed > "$state/$name.state"; exit 0; fi
    wd=$(sed -n 's/^WorkingDirectory=//p' "$unit"); exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
    (cd "$wd" && sh -c "$exec_start & echo \$! > '$pidf'; wait \$!; echo \$? > '$rcf'") \
      </dev/null >>"$state/$name.journal" 2>&1 &
    i=0; while [ ! -f "$pidf" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    date -u '+%a %Y-%m-%d %H:%M:%S UTC' > "$state/$name.since";;
  stop) stop; echo inactive > "$state/$name.state";;
  is-active) s=$(active_state); [ -n "$quiet" ] || echo "$s"; [ "$s" = active ];;
  show) echo "ActiveEnterTimestamp=$(cat "$state/$name.since" 2>/dev/null)"; echo "NRestarts=0"
        echo "MainPID=$(cat "$pidf" 2>/dev/null || echo 0)";;
  *) echo "fake systemctl: unsupported command: $cmd" >&2; exit 1;;
esac
"""
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"sshd did not listen on {port} within {timeout_s} s")


class Lab:
    """The loopback sshd hosts and the options every edge-sed deploy call needs."""

    def __init__(self, root: Path):
        self.root = root
        self.user = "root" if os.geteuid() == 0 else os.environ.get("USER") or "nobody"
        self.procs, self.hosts, self.homes, self.mounts = [], {}, {}, []
        self.wheel = self.stream = None

    @property
    def listen(self) -> str:
        """The unit's listen arguments: the synthetic stream, not a microphone."""
        return f"--file {self.stream} --realtime --threshold 0.05 --min-count 1"

    def args(self, *extra, identity=None):
        return [
            "deploy",
            *extra,
            "--wheel",
            str(self.wheel),
            "--listen-args",
            self.listen,
            "--identity",
            str(identity or self.root / "client_key"),
            "--ssh-option",
            f"UserKnownHostsFile={self.root / 'known_hosts'}",
            "--ssh-option",
            "StrictHostKeyChecking=yes",
            "--scope",
            "user",
            "--settle",
            "0.2",
        ]

    def host(self, name):
        return f"{self.user}@127.0.0.1:{self.hosts[name]}"


def write_stream(path: Path, seconds: int = 90) -> Path:
    """Synthetic audio for the service to listen to: events between backgrounds."""
    import numpy as np
    import soundfile as sf

    from edge_sed.data.synth import make_clip

    labels = ["background", "dog", "background", "gunshot", "background", "baby_cry"]
    clips = [make_clip(labels[i % len(labels)], i, seed=3, clip_s=2.0)[0] for i in range(seconds // 2)]
    sf.write(path, np.concatenate(clips), 16000)
    return path


def keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("ssh-lab")
    lab = Lab(root)
    from edge_sed.deploy.steps import build_wheel

    # built once from this checkout (what deploy does by default) and shipped with --wheel
    lab.wheel = build_wheel(root / "wheel-build")
    lab.stream = write_stream(root / "stream.wav")
    keygen(root / "host_key")
    keygen(root / "client_key")
    keygen(root / "stranger_key")  # never authorized
    (root / "authorized_keys").write_text((root / "client_key.pub").read_text())
    fakebin = root / "fakebin"
    fakebin.mkdir()
    (fakebin / "systemctl").write_text(FAKE_SYSTEMCTL)
    (fakebin / "systemctl").chmod(0o755)
    nopy = root / "bin-without-python"  # a PATH with every tool but python
    nopy.mkdir()
    for tool in Path("/usr/bin").iterdir():
        if not tool.name.startswith("python"):
            (nopy / tool.name).symlink_to(tool)
    std_path = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
    # the deployed venv's pip shares this machine's pip cache: only the first install downloads
    pip_cache = os.environ.get("PIP_CACHE_DIR") or str(Path.home() / ".cache" / "pip")
    hosts = {"good": f"{fakebin}:{std_path}", "nopython": f"{fakebin}:{nopy}"}
    full_home = root / "home-full"
    full_home.mkdir()
    if (
        os.geteuid() == 0
        and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(full_home)], capture_output=True
        ).returncode
        == 0
    ):
        lab.mounts.append(full_home)
        hosts["full"] = f"{fakebin}:{std_path}"
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # sshd's privilege-separation directory
    known = []
    for name, path in hosts.items():
        home = full_home if name == "full" else root / f"home-{name}"
        home.mkdir(exist_ok=True)
        port = free_port()
        config = root / f"sshd_config-{name}"
        config.write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {root / "host_key"}
PidFile {root / f"sshd-{name}.pid"}
AuthorizedKeysFile {root / "authorized_keys"}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
Subsystem sftp internal-sftp
SetEnv HOME={home} PATH={path} PIP_CACHE_DIR={pip_cache}
""")
        proc = subprocess.Popen(
            ["/usr/sbin/sshd", "-D", "-e", "-f", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=open(root / f"sshd-{name}.log", "w"),
        )
        lab.procs.append(proc)
        wait_for_port(port, proc)
        lab.hosts[name], lab.homes[name] = port, home
        known.append(f"[127.0.0.1]:{port} {(root / 'host_key.pub').read_text().strip()}")
    (root / "known_hosts").write_text("\n".join(known) + "\n")
    yield lab
    for pid_file in root.glob("home-*/.fake-systemd/*.pid"):  # services the fake systemctl started
        try:
            os.kill(int(pid_file.read_text()), 15)
        except (ValueError, OSError):
            pass
    for proc in lab.procs:
        proc.terminate()
        proc.wait(timeout=10)
    for mount in lab.mounts:
        subprocess.run(["umount", str(mount)], capture_output=True)


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def bundles(tiny_bundles):
    return tiny_bundles[0]


def target_state(home: Path, root="edge-sed"):
    r = home / root

    def link(name):
        return os.readlink(r / name) if (r / name).is_symlink() else None

    return {
        "current": link("current"),
        "previous": link("previous"),
        "runtime": link("runtime"),
        "bundles": sorted(p.name for p in (r / "bundles").iterdir()) if (r / "bundles").is_dir() else [],
    }


def sha_of(bundle: Path) -> str:
    return json.loads((bundle / "manifest.json").read_text())["sha256"]


# ------------------------------------------------------------------------------- tests


def test_deploy_status_redeploy_rollback(lab, bundles, capsys):
    home, host = lab.homes["good"], lab.host("good")
    int8, fp32 = bundles / "int8", bundles / "fp32"

    code, out, err = run(capsys, *lab.args(int8, "--host", host, "--dry-run"))
    assert "--listen-args" in lab.args()
    assert code == 0, err
    assert "plan" in out and "mv -T" in out and "x86_64" in out
    assert not (home / "edge-sed").exists(), "a dry run must change nothing"

    code, out, err = run(capsys, *lab.args(int8, "--host", host))
    assert code == 0, err
    int8_id = f"int8-{sha_of(int8)[:12]}"
    assert f"current -> bundles/{int8_id}" in out and "service edge-sed active" in out
    assert "runtime" in out and "installed" in out
    state = target_state(home)
    assert state["current"] == f"bundles/{int8_id}" and state["previous"] is None
    root = home / "edge-sed"
    # the real venv: the deployed edge-sed runs and verifies the bundle through LiteRT on the target
    edge_sed = root / "runtime" / "bin" / "edge-sed"
    assert (
        subprocess.run([str(edge_sed), "verify", str(root / "current")], capture_output=True).returncode == 0
    )
    has_torch = (
        subprocess.run(
            [str(root / "runtime" / "bin" / "python"), "-c", "import torch"], capture_output=True
        ).returncode
        == 0
    )
    assert not has_torch, "the device runtime must not install torch"
    unit = (home / ".config/systemd/user/edge-sed.service").read_text()
    assert f"ExecStart={root}/runtime/bin/edge-sed listen --bundle current --log logs/events.jsonl" in unit
    assert "Restart=on-failure" in unit and f"WorkingDirectory={root}" in unit
    calls = (home / ".fake-systemd/calls.log").read_text().splitlines()
    assert "--user daemon-reload" in calls and "--user restart edge-sed" in calls
    assert not list((root / ".staging").iterdir()), "staging must be cleaned up"

    # the service really runs the deployed edge-sed listen; its events reach the log and --status
    events_log = root / "logs" / "events.jsonl"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (events_log.exists() and events_log.read_text().strip()):
        time.sleep(0.5)
    journal = (
        (home / ".fake-systemd" / "edge-sed.journal").read_text()
        if (home / ".fake-systemd" / "edge-sed.journal").exists()
        else ""
    )
    assert events_log.exists() and events_log.read_text().strip(), (
        f"no events from the service; journal: {journal[-2000:]}"
    )
    code, out, err = run(capsys, *lab.args("--status", "--host", host, "--lines", "3"))
    assert code == 0, err
    assert "service active" in out and int8_id in out and "event(s) from" in out, out
    code, out, err = run(capsys, *lab.args("--status", "--host", host, "--json"))
    status = json.loads(out)
    assert status["service"] == "active" and status["bundle"]["level"] == "int8" and int(status["pid"]) > 0
    logged = [json.loads(l) for l in events_log.read_text().splitlines()[-10:]]
    assert status["events"] == logged

    # redeploy another bundle: same wheel -> the runtime venv is kept, not reinstalled
    code, out, err = run(capsys, *lab.args(fp32, "--host", host))
    assert code == 0, err
    fp32_id = f"fp32-{sha_of(fp32)[:12]}"
    assert "already there" in out
    state = target_state(home)
    assert state["current"] == f"bundles/{fp32_id}" and state["previous"] == f"bundles/{int8_id}"

    # redeploying the same bundle is idempotent (previous stays the int8)
    code, out, err = run(capsys, *lab.args(fp32, "--host", host))
    assert code == 0, err
    assert target_state(home)["previous"] == f"bundles/{int8_id}"

    unit_before = (home / ".config/systemd/user/edge-sed.service").read_text()
    code, out, err = run(capsys, *lab.args("--rollback", "--host", host, "--listen-args", "--ignored"))
    assert code == 0, err
    assert f"rolled back: current -> bundles/{int8_id}" in out
    state = target_state(home)
    assert state["current"] == f"bundles/{int8_id}" and state["previous"] == f"bundles/{fp32_id}"
    assert (home / ".config/systemd/user/edge-sed.service").read_text() == unit_before, (
        "rollback keeps the unit"
    )
    log = (root / "deployments.log").read_text().split("\n")
    assert [l.split()[1] for l in log if l] == ["deploy", "deploy", "deploy", "rollback"]


def test_stateful_bundle_deploys_and_its_service_listens(lab, stateful_bundles, capsys):
    """The streaming detector's int8 bundle (its LSTM state carried between invokes) deployed as
    a user ships it, beside another service: verified on the target, its service listens to the
    stream and logs events, and --status reads them."""
    home, host = lab.homes["good"], lab.host("good")
    bundle = stateful_bundles[0] / "int8"
    assert json.loads((bundle / "manifest.json").read_text())["form"] == "stateful"
    where = ["--host", host, "--root", "~/stateful", "--service", "edge-sed-stateful"]
    code, out, err = run(capsys, *lab.args(bundle, *where))
    assert code == 0, err
    assert "service edge-sed-stateful active" in out, out
    root = home / "stateful"
    assert target_state(home, "stateful")["current"] == f"bundles/int8-{sha_of(bundle)[:12]}"
    assert (
        subprocess.run(
            [str(root / "runtime" / "bin" / "edge-sed"), "verify", str(root / "current")], capture_output=True
        ).returncode
        == 0
    )
    unit = (home / ".config/systemd/user/edge-sed-stateful.service").read_text()
    assert f"WorkingDirectory={root}" in unit
    events_log = root / "logs" / "events.jsonl"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (events_log.exists() and events_log.read_text().strip()):
        time.sleep(0.5)
    journal = home / ".fake-systemd" / "edge-sed-stateful.journal"
    assert events_log.exists() and events_log.read_text().strip(), (
        "no events from the stateful service; journal: "
        f"{journal.read_text()[-2000:] if journal.exists() else ''}"
    )
    logged = [json.loads(l) for l in events_log.read_text().splitlines()]
    assert all(e["onset_s"] <= e["stream_s"] for e in logged)  # the estimated onset rides along
    code, out, err = run(capsys, *lab.args("--status", *where, "--json"))
    assert code == 0, err
    status = json.loads(out)
    assert status["service"] == "active" and status["bundle"]["level"] == "int8"


def test_service_that_does_not_stay_up_is_switched_back(lab, bundles, capsys):
    """A new deploy whose service dies (here: listen given an option it does not know) is switched
    back to the old bundle, runtime and unit, and the old service runs again."""
    host, home = lab.host("good"), lab.homes["good"]
    args = lab.args("--root", "~/autorollback", "--host", host)
    assert run(capsys, *args[:1], bundles / "int8", *args[1:])[0] == 0
    unit_path = home / ".config/systemd/user/edge-sed.service"
    unit_before = unit_path.read_text()
    code, out, err = run(
        capsys, *args[:1], bundles / "fp32", *args[1:], "--listen-args", "--no-such-option", "--settle", "4"
    )
    assert code == 2
    assert "did not stay up on bundles/fp32-" in err and "switched back to bundles/int8-" in err, err
    assert "it runs again" in err, err
    state = target_state(home, "autorollback")
    assert state["current"].startswith("bundles/int8-") and state["previous"] is None
    assert unit_path.read_text() == unit_before
    assert "no such option" in (home / ".fake-systemd" / "edge-sed.journal").read_text().lower()


def test_tampered_bundle_is_refused_before_anything_is_sent(lab, bundles, tmp_path, capsys):
    bad = shutil.copytree(bundles / "int8", tmp_path / "int8")
    data = bytearray((bad / "model.tflite").read_bytes())
    data[-100] ^= 0xFF
    (bad / "model.tflite").write_bytes(bytes(data))
    code, out, err = run(capsys, *lab.args(bad, "--host", lab.host("good"), "--root", "~/tampered"))
    assert code == 2
    assert err.startswith("error: refusing to deploy: the bundle fails verification") and "sha256" in err
    assert len(err.strip().splitlines()) == 1
    assert not (lab.homes["good"] / "tampered").exists()


def test_architecture_the_bundle_was_not_checked_on(lab, bundles, tmp_path, capsys):
    b = shutil.copytree(bundles / "int8", tmp_path / "int8")
    manifest = json.loads((b / "manifest.json").read_text())
    manifest["checked_on"] = ["aarch64"]
    (b / "manifest.json").write_text(json.dumps(manifest))
    code, out, err = run(capsys, *lab.args(b, "--host", lab.host("good"), "--root", "~/arch"))
    assert code == 2
    assert "target architecture x86_64: this bundle was not checked on it (checked on: aarch64" in err
    assert not (lab.homes["good"] / "arch").exists()


def test_unreachable_host_and_refused_login(lab, bundles, capsys):
    start = time.monotonic()
    code, out, err = run(capsys, *lab.args(bundles / "int8", "--host", f"{lab.user}@127.0.0.1:{free_port()}"))
    assert code == 2 and "unreachable: connection refused" in err
    assert time.monotonic() - start < 60
    code, out, err = run(
        capsys, *lab.args("--status", "--host", lab.host("good"), identity=lab.root / "stranger_key")
    )
    assert code == 2 and "no permission: the SSH login was refused" in err
    assert len(err.strip().splitlines()) == 1


def test_two_hosts_one_without_python(lab, bundles, capsys):
    good, bad = lab.host("good"), lab.host("nopython")
    args = lab.args(bundles / "int8", "--host", good, "--host", bad, "--root", "~/fleet")
    code, out, err = run(capsys, *args)
    assert code == 2
    lines = out.splitlines()
    header = next(i for i, l in enumerate(lines) if l.startswith("host "))
    table = {l.split()[0]: l for l in lines[header + 1 : header + 3]}
    assert " ok " in table[good] and "current -> bundles/int8-" in table[good]
    assert " failed " in table[bad] and "no Python on the target" in table[bad]
    assert "1 of 2 hosts not deployed" in err
    assert target_state(lab.homes["good"], "fleet")["current"].startswith("bundles/int8-")
    assert not (lab.homes["nopython"] / "fleet").exists()

    # --all-or-nothing: the good host is staged but not switched
    code, out, err = run(capsys, *args, "--all-or-nothing")
    assert code == 2
    assert "not switched: another host failed" in out
    code, out, err = run(
        capsys,
        *lab.args(bundles / "fp32", "--host", good, "--host", bad, "--root", "~/fleet", "--all-or-nothing"),
    )
    assert code == 2
    state = target_state(lab.homes["good"], "fleet")
    assert state["current"].startswith("bundles/int8-"), "the good host must not switch"
    assert any(b.startswith("fp32-") for b in state["bundles"]), "but it is staged"


def test_disk_full(lab, bundles, capsys):
    if "full" not in lab.hosts:
        pytest.skip("cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN) to make a full disk")
    code, out, err = run(capsys, *lab.args(bundles / "int8", "--host", lab.host("full")))
    assert code == 2
    assert "disk full:" in err and "MB free under" in err
    assert not (lab.homes["full"] / "edge-sed").exists()


def test_usage_errors(capsys):
    code, out, err = run(capsys, "deploy", "--status", "--wheel", __file__)
    assert code == 2 and "give --host" in err
    code, out, err = run(capsys, "deploy", "--host", "pi@", "--status")
    assert code == 2 and "[user@]host[:port]" in err


# ------------------------------------------------------------------------------ ansible


def write_inventory(path: Path, lab, names, root):
    lines = ["[boards]"]
    for name in names:
        lines.append(
            f"{name} ansible_host=127.0.0.1 ansible_port={lab.hosts[name]} ansible_user={lab.user} "
            f"ansible_ssh_private_key_file={lab.root / 'client_key'} "
            f"ansible_ssh_common_args='-o UserKnownHostsFile={lab.root / 'known_hosts'} "
            f"-o StrictHostKeyChecking=yes'"
        )
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def ansible():
    if (
        not shutil.which("ansible-playbook")
        and not (Path(os.sys.executable).parent / "ansible-playbook").exists()
    ):
        pytest.skip("ansible-core is not installed (the deploy extra)")


def test_playbook_syntax_and_rolling_stop(lab, bundles, tmp_path, capsys, ansible):
    from edge_sed.deploy.options import Options
    from edge_sed.deploy.playbook import syntax_check, write_playbook
    from edge_sed.deploy.steps import prepare

    inv = write_inventory(tmp_path / "hosts.ini", lab, ["good", "nopython"], "~/ans")
    art = prepare(bundles / "int8", tmp_path / "work", lab.wheel)
    play = write_playbook(tmp_path / "play", Options(root="~/ans", scope="user", settle_s=0.2), art, batch=2)
    syntax_check(play, inv)
    spec = json.loads(play.read_text())[0]
    assert spec["serial"] == 2 and spec["max_fail_percentage"] == 0 and spec["any_errors_fatal"] is True
    assert [t["name"].split(":")[0] for t in spec["tasks"]][-1].startswith("switch")

    # one batch holding both hosts: nopython fails preflight -> the good host is not switched either
    common = [
        "--wheel",
        lab.wheel,
        "--root",
        "~/ans",
        "--scope",
        "user",
        "--settle",
        "0.2",
        "--listen-args",
        lab.listen,
    ]
    code, out, err = run(capsys, "deploy", bundles / "int8", "--inventory", inv, "--batch", "2", *common)
    assert code == 2, err
    assert "no Python on the target" in out
    assert "not switched" in out
    assert not (lab.homes["good"] / "ans" / "current").exists()

    # batches of one with the good host first: it is deployed, then the failing batch stops the play
    inv1 = write_inventory(tmp_path / "hosts1.ini", lab, ["good", "nopython"], "~/ans")
    code, out, err = run(capsys, "deploy", bundles / "int8", "--inventory", inv1, "--batch", "1", *common)
    assert code == 2
    table = out[out.rindex("host ") :]
    assert "good" in table and " ok " in table.splitlines()[1]
    assert target_state(lab.homes["good"], "ans")["current"].startswith("bundles/int8-")
