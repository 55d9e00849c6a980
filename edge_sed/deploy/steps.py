"""Put a bundle on Raspberry Pi boards over SSH and keep ``edge-sed listen`` running there.

Transport: the system's OpenSSH client (``ssh``), run as a subprocess. It is what device
engineers already use, so ``~/.ssh/config`` (aliases, ProxyJump, ports), the ssh-agent,
``known_hosts`` and hardware keys all just work, and the runtime gains no dependency; a library
(paramiko, asyncssh) would re-implement and second-guess all of that. Files travel as one tar
stream over the same connection (no scp/sftp needed on the board).

Layout on a target (ROOT, default ``~/edge-sed``)::

    ROOT/bundles/<name>-<sha12>/     a bundle, content-addressed (same bundle, same directory)
    ROOT/runtimes/<version>-<id>/    a venv with that edge-sed wheel (id = hash of its RECORD)
    ROOT/current  -> bundles/...     what the service runs    (switched with ln -s + mv -T)
    ROOT/runtime  -> runtimes/...    the edge-sed it runs with
    ROOT/previous, ROOT/previous-runtime   the pair before: what --rollback returns to
    ROOT/logs/events.jsonl           the service's event log (edge-sed listen --log)
    ROOT/deployments.log             one line per deploy/rollback
    ROOT/.staging/                   uploads in progress (removed on success and on failure)

A deploy is three remote steps, and only the last one touches anything live:
1. preflight (read-only): OS, architecture, Python >= 3.9 with venv, free disk, audio inputs,
   write permission; any failure is a one-line refusal;
2. stage: upload bundle + wheel, check the sha256 on the target, install the runtime into a new
   venv (kept if it already exists), re-run the bundle's check windows with the target's own
   edge-sed and LiteRT (``edge-sed verify``: the bundle is then checked on that architecture),
   and only then move it into ``bundles/``;
3. switch: write the systemd unit, flip ``runtime``/``current`` atomically, restart the service
   and check it is up; if it is not, flip back and restart the old pair.
Several hosts run steps 1-2 in parallel and step 3 only on hosts whose steps 1-2 passed (with
``all_or_nothing``: only if every host passed). The same shell steps drive the generated
Ansible playbook (edge_sed.deploy.playbook) for real fleets.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from edge_sed.core.errors import EdgeSedError

DEFAULT_ROOT = "~/edge-sed"
DEFAULT_SERVICE = "edge-sed"
MIN_PYTHON = (3, 9)
RUNTIME_ARCHS = ("x86_64", "aarch64")
"""Architectures with a LiteRT (ai-edge-litert) build, i.e. where a bundle can be checked at all.
32-bit Raspberry Pi OS (armv7l/armv6l) has none: use the 64-bit image."""
RUNTIME_INSTALL_MB = 300
"""Disk a fresh runtime venv needs (numpy, LiteRT, soundfile, ... measured ~200 MB, plus pip's
temporary files)."""
SETTLE_S = 3.0
"""How long after a restart the service must still be active to count as up."""
REFUSED = 42
"""Exit status of a remote step that refused (its stdout has a 'REFUSED: reason' line)."""


class DeployError(EdgeSedError):
    """A deploy step that failed on one host; nothing was switched on that host. ``facts``: what
    the step had learnt about the target before it refused (arch, python, ...), for the table."""

    def __init__(self, message: str, facts: dict | None = None):
        super().__init__(message)
        self.facts = facts or {}


# ------------------------------------------------------------------------------ targets
#
# Every string from outside (options, manifest fields, the wheel's file name) is checked here
# against what it may be, before any host is contacted, and then reaches a remote script only as
# a single-quoted shell assignment (see _assign), never as shell syntax.

CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
"""Control characters (newline, tab, escape, ...) and Unicode line breaks."""
NAME = r"[A-Za-z0-9_][A-Za-z0-9_.-]*"
"""A user or host name (or ~/.ssh/config alias) for ssh: never starting with '-' (an ssh option)."""
ROOT_CHARS = "A-Za-z0-9._/+@-"
"""What --root (and the directory it resolves to on a target) may hold: it is written unquoted
into the systemd unit (WorkingDirectory=, ExecStart=), where whitespace, quotes, backslashes, $
and % all mean something."""
UNIT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]*")
COMMAND_WORD = re.compile(r"[A-Za-z0-9_./+@=:,-]+")
"""One word of --python / --systemctl: a command name, an absolute path or an option."""
WHEEL_NAME = re.compile(r"edge_sed-([A-Za-z0-9_.!+]+)(?:-\d[A-Za-z0-9_.]*)?(?:-[A-Za-z0-9_.]+){3}\.whl")
"""PEP 427: edge_sed-VERSION(-BUILD)?-PYTHON-ABI-PLATFORM.whl."""
ARCH_NAME = re.compile(r"[A-Za-z0-9_]+")
SHA256_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Target:
    """``[user@]host[:port]`` (host may be an ~/.ssh/config alias)."""

    host: str
    user: str | None = None
    port: int | None = None

    def __str__(self) -> str:
        return (f"{self.user}@" if self.user else "") + self.host + (f":{self.port}" if self.port else "")


def parse_target(spec: str, port: int | None = None) -> Target:
    m = re.fullmatch(rf"(?:({NAME})@)?({NAME}|\[[0-9a-fA-F:]+\])(?::(\d{{1,5}}))?", spec)
    if not m or (m.group(3) and not 0 < int(m.group(3)) < 65536):
        raise EdgeSedError(
            f"--host {spec!r}: expected [user@]host[:port] (names of letters, digits and "
            "_.-, not starting with '-')"
        )
    user, host, p = m.groups()
    return Target(host.strip("[]"), user, int(p) if p else port)


def listen_tokens(listen_args: str) -> list[str]:
    """The words of --listen-args (split as a shell would); none may hold a control character."""
    try:
        tokens = shlex.split(listen_args or "")
    except ValueError as exc:
        raise EdgeSedError(f"--listen-args {listen_args!r}: {exc} (quote as for a shell)") from None
    for t in tokens:
        if CONTROL.search(t):
            raise EdgeSedError(
                f"--listen-args: {t!r} holds a control character (a newline?); "
                "the unit's ExecStart= is one line"
            )
    return tokens


@dataclass
class Options:
    """Everything a deploy/rollback/status needs besides the bundle and the hosts. Checked when
    made: a value a remote shell, ssh or systemd could misread is refused with one line."""

    root: str = DEFAULT_ROOT
    service: str = DEFAULT_SERVICE
    identity: str | None = None
    ssh_options: tuple[str, ...] = ()
    python: str = "python3"
    systemctl: str = "systemctl"
    scope: str = "auto"  # auto | system | user
    listen_args: str = ""
    connect_timeout_s: int = 10
    settle_s: float = SETTLE_S
    keep: int = 3

    def __post_init__(self):
        def refuse(option, value, why):
            raise EdgeSedError(f"{option} {value!r}: {why}")

        if not re.fullmatch(rf"~|~/[{ROOT_CHARS}]*|/[{ROOT_CHARS}]*", self.root or ""):
            refuse(
                "--root",
                self.root,
                "give an absolute path or ~/PATH made of letters, digits and ._/+@- "
                "(it is written into the systemd unit)",
            )
        if not UNIT_NAME.fullmatch(self.service or "") or ".." in self.service or len(self.service) > 200:
            refuse(
                "--service",
                self.service,
                "not a systemd unit name (letters, digits and _.@-, starting with a letter or digit)",
            )
        if not COMMAND_WORD.fullmatch(self.python or "") or self.python.startswith("-"):
            refuse("--python", self.python, "give a command name or path (letters, digits and _./+@=:,-)")
        words = (self.systemctl or "").split(" ")
        if not all(COMMAND_WORD.fullmatch(w) for w in words) or words[0].startswith("-"):
            refuse(
                "--systemctl",
                self.systemctl,
                "give a command and its options, e.g. 'sudo systemctl' "
                "(words of letters, digits and _./+@=:,- separated by one space)",
            )
        if self.scope not in ("auto", "system", "user"):
            refuse("--scope", self.scope, "choose auto, system or user")
        listen_tokens(self.listen_args)
        for o in self.ssh_options:
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*=.+", o) or CONTROL.search(o):
                refuse("--ssh-option", o, "expected KEY=VALUE on one line (an ssh -o option)")
        if self.identity is not None and re.search(r"[%$]|" + CONTROL.pattern, str(self.identity)):
            refuse(
                "--identity",
                str(self.identity),
                "ssh would expand the % or $ in it, or it holds a control character: rename the key file",
            )
        if not (isinstance(self.settle_s, (int, float)) and 0 <= self.settle_s <= 3600):
            refuse("--settle", self.settle_s, "give seconds between 0 and 3600")
        for name in ("connect_timeout_s", "keep"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                refuse(name, getattr(self, name), "give a whole number >= 1")


def ssh_command(target: Target, opts: Options) -> list[str]:
    cmd = [
        "ssh",
        "-o",
        "BatchMode=yes",
        "-o",
        f"ConnectTimeout={opts.connect_timeout_s}",
        "-o",
        "ServerAliveInterval=15",
        "-o",
        "ServerAliveCountMax=4",
    ]
    if opts.identity:
        cmd += ["-i", str(opts.identity), "-o", "IdentitiesOnly=yes"]
    for o in opts.ssh_options:
        cmd += ["-o", o]
    if target.port:
        cmd += ["-p", str(target.port)]
    # "--" first: the destination is never read as an option, whatever it is
    return cmd + ["--", f"{target.user}@{target.host}" if target.user else target.host]


def _ssh_failure(target: Target, stderr: str) -> str:
    """One line for an ssh-level failure (exit 255)."""
    text = " ".join(stderr.split())
    for needle, reason in (
        (
            "Permission denied",
            "no permission: the SSH login was refused (check the user, --identity and "
            "the board's authorized_keys)",
        ),
        (
            "Host key verification failed",
            "host key verification failed (unknown or changed host key: check known_hosts)",
        ),
        ("Could not resolve hostname", "unreachable: cannot resolve the host name"),
        ("Connection refused", "unreachable: connection refused (is sshd running, is the port right?)"),
        ("timed out", "unreachable: connection timed out"),
        ("No route to host", "unreachable: no route to host"),
        ("Network is unreachable", "unreachable: network is unreachable"),
    ):
        if needle in text:
            return reason
    last = stderr.strip().splitlines()[-1] if stderr.strip() else "ssh failed"
    return f"ssh failed: {last[:200]}"


def run_remote(
    target: Target,
    opts: Options,
    script: str,
    data: bytes | None = None,
    timeout_s: float = 120,
    what: str = "remote step",
) -> dict:
    """Run a POSIX sh script on the target; returns its ``key=value`` lines as a dict (plus
    ``_warnings``). DeployError with one line on ssh failure, refusal or any non-zero exit."""
    if shutil.which("ssh") is None:
        raise EdgeSedError("no ssh client on this machine (Debian: apt-get install openssh-client)")
    cmd = ssh_command(target, opts) + ["sh -c " + shlex.quote(script)]
    try:
        proc = subprocess.run(
            cmd, input=data if data is not None else b"", capture_output=True, timeout=timeout_s
        )
    except subprocess.TimeoutExpired:
        raise DeployError(
            f"{target}: {what} took more than {timeout_s:.0f} s (unreachable or stuck)"
        ) from None
    out = proc.stdout.decode(errors="replace")
    err = proc.stderr.decode(errors="replace")
    if proc.returncode == 255:
        raise DeployError(f"{target}: {_ssh_failure(target, err)}")
    facts, warnings, refused = {}, [], None
    for line in out.splitlines():
        if line.startswith("REFUSED: "):
            refused = line[len("REFUSED: ") :]
        elif line.startswith("WARN: "):
            warnings.append(line[len("WARN: ") :])
        elif "=" in line and re.match(r"^[a-z_]+=", line):
            key, _, value = line.partition("=")
            if key == "event":
                facts.setdefault("events", []).append(value)
            else:
                facts[key] = value
    facts["_warnings"] = warnings
    if proc.returncode != 0:
        both = out + "\n" + err
        if refused is None and "No space left on device" in both:
            refused = f"disk full during {what}"
        elif refused is None and "Permission denied" in both:
            refused = f"no permission during {what}: " + _first_line_with(both, "Permission denied")
        if refused is None:
            lines = [l for l in err.strip().splitlines() if l.strip()] or [
                l for l in out.splitlines() if l.strip()
            ]
            refused = f"{what} failed (exit {proc.returncode}): {lines[-1][:300] if lines else 'no output'}"
        raise DeployError(f"{target}: {refused}", {k: v for k, v in facts.items() if k != "_warnings"})
    return facts


def _first_line_with(text: str, needle: str) -> str:
    return next((l.strip() for l in text.splitlines() if needle in l), needle)[:200]


# -------------------------------------------------------------------------- local side


@dataclass
class Artifact:
    """What is shipped: the bundle (verified here first) and the runtime wheel."""

    bundle_dir: Path
    manifest: dict
    bundle_id: str
    wheel: Path
    runtime_id: str
    tar: bytes = b""

    @property
    def bundle_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.bundle_dir.iterdir() if p.is_file())


def bundle_id(manifest: dict) -> str:
    name = str(manifest.get("name") or manifest["level"])
    return re.sub(r"[^A-Za-z0-9._-]", "_", name) + "-" + manifest["sha256"][:12]


def source_root() -> Path | None:
    """The project checkout edge_sed runs from, if any (its pyproject.toml names edge-sed)."""
    root = Path(__file__).resolve().parents[2]
    py = root / "pyproject.toml"
    return root if py.is_file() and 'name = "edge-sed"' in py.read_text() else None


def _isolation_args(root: Path) -> list[str]:
    """``--no-build-isolation`` where this Python already has the setuptools pyproject.toml asks
    for (no index needed); otherwise pip builds in an isolated environment it fills from the index
    (a fresh venv has no setuptools, or one too old for the SPDX license field)."""
    m = re.search(r'requires = \["setuptools>=(\d+)', (root / "pyproject.toml").read_text())
    try:
        from importlib.metadata import version

        have = int(version("setuptools").split(".")[0])
    except Exception:  # not installed, or a version string we cannot read
        return []
    return ["--no-build-isolation"] if m and have >= int(m.group(1)) else []


def build_wheel(out_dir: Path) -> Path:
    """``pip wheel --no-deps`` of this checkout, built from a clean copy of the sources so the
    checkout gets no build/ or egg-info litter. The target fetches the dependencies from PyPI."""
    root = source_root()
    if root is None:
        raise EdgeSedError(
            "edge-sed is not running from a source checkout, so there is no wheel to build: "
            "give --wheel PATH (a wheel built in a checkout: pip wheel --no-deps -w dist .)"
        )
    src = out_dir / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist")
    src.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (root / name).exists():
            shutil.copy2(root / name, src / name)
    for pkg in ("edge_sed", "train", "convert", "firmware_sim"):
        if (root / pkg).is_dir():
            shutil.copytree(root / pkg, src / pkg, ignore=ignore)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            *_isolation_args(root),
            "--disable-pip-version-check",
            "-q",
            "-w",
            str(out_dir / "wheel"),
            str(src),
        ],
        capture_output=True,
        text=True,
    )
    wheels = sorted((out_dir / "wheel").glob("edge_sed-*.whl"))
    if proc.returncode != 0 or not wheels:
        last = (proc.stderr.strip().splitlines() or ["no wheel produced"])[-1]
        raise EdgeSedError(f"building the edge-sed wheel failed: {last}")
    return wheels[0]


def runtime_id(wheel: Path) -> str:
    """``<version>-<sha12 of RECORD>``: RECORD lists every file's hash, so the id changes with
    the code and not with the zip's timestamps (same code, same venv, no reinstall)."""
    m = WHEEL_NAME.fullmatch(wheel.name)
    if not m:
        raise EdgeSedError(
            f"--wheel {wheel.name!r}: not an edge-sed wheel name (edge_sed-VERSION-PYTHON-ABI-PLATFORM.whl)"
        )
    try:
        with zipfile.ZipFile(wheel) as z:
            record = next(n for n in z.namelist() if n.endswith(".dist-info/RECORD"))
            digest = hashlib.sha256(z.read(record)).hexdigest()[:12]
    except (zipfile.BadZipFile, StopIteration, OSError) as exc:
        raise EdgeSedError(f"--wheel {str(wheel)!r}: not a usable wheel ({exc})") from None
    return f"{m.group(1)}-{digest}"


def prepare(bundle_path, work_dir: Path, wheel: str | os.PathLike | None = None) -> Artifact:
    """Verify the bundle here (sha256, manifest, model I/O and the check windows through LiteRT),
    build (or take) the wheel, and pack both into one tar. Raises before anything is sent."""
    from edge_sed.core.bundle import MANIFEST_FILE, verify_bundle

    bundle_path = Path(bundle_path)
    if not (bundle_path / MANIFEST_FILE).is_file():
        raise EdgeSedError(f"{bundle_path}: not a bundle directory (no {MANIFEST_FILE})")
    try:
        verify_bundle(bundle_path)
    except EdgeSedError as exc:
        raise EdgeSedError(f"refusing to deploy: the bundle fails verification: {exc}") from None
    manifest = json.loads((bundle_path / MANIFEST_FILE).read_text())
    checked_archs(manifest)
    check_sha256(manifest)
    wheel_path = Path(wheel) if wheel else build_wheel(work_dir)
    art = Artifact(bundle_path, manifest, bundle_id(manifest), wheel_path, runtime_id(wheel_path))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for p in sorted(bundle_path.iterdir()):
            if p.is_file() and not p.name.startswith("."):
                tar.add(p, arcname=f"bundle/{p.name}")
        tar.add(wheel_path, arcname=f"wheel/{wheel_path.name}")
    art.tar = buf.getvalue()
    return art


def checked_archs(manifest: dict) -> list[str]:
    """Architectures this bundle may run on: those with a LiteRT build, narrowed to the
    manifest's ``checked_on`` list where a bundle carries one (a list of architecture names, or
    the bundle is refused). The on-target ``edge-sed verify`` then checks the bundle on the
    target's own architecture before anything is switched."""
    listed = manifest.get("checked_on")
    if listed is None:
        return list(RUNTIME_ARCHS)
    if not (
        isinstance(listed, list)
        and listed
        and all(isinstance(a, str) and ARCH_NAME.fullmatch(a) for a in listed)
    ):
        raise EdgeSedError(
            "refusing to deploy: manifest.json 'checked_on' is not a list of architecture names "
            f'like ["x86_64", "aarch64"]: {json.dumps(listed)[:200]}'
        )
    return listed


def check_sha256(manifest: dict) -> str:
    """The check windows' sha256 ('' if the bundle has none); it and the model's must be hex."""
    check = manifest.get("check") or {}
    digest = check.get("sha256") if isinstance(check, dict) else check
    for name, value in (("sha256", manifest.get("sha256")), ("check.sha256", digest)):
        if (value or name == "sha256") and not (isinstance(value, str) and SHA256_HEX.fullmatch(value)):
            raise EdgeSedError(
                f"refusing to deploy: manifest.json '{name}' is not 64 lowercase hex digits: "
                f"{json.dumps(value)[:100]}"
            )
    return digest or ""


# ------------------------------------------------------------------------ remote steps
#
# A remote script is VALUES + fixed text. VALUES assigns each value from outside (option,
# manifest field, file name) to a shell variable, single-quoted by shlex.quote: inside '...'
# no character is syntax for sh, not $, a backtick, a quote or a newline. The script bodies
# below are constants that only use those variables, always in double quotes ("$ROOT"); the two
# generated functions (sctl, write_unit) are made of single-quoted literals too. So no string
# from a bundle, the command line or a target can become shell code, whatever it holds.


def _assign(**values) -> str:
    return "".join(f"{name}={shlex.quote(str(value))}\n" for name, value in values.items())


_COMMON = r"""set -u
refuse() { echo "REFUSED: $*"; exit "$REFUSED_EXIT"; }
case "$ROOT" in "~") ROOT=$HOME;; "~/"*) ROOT=$HOME/${ROOT#??};; esac
if [ "$SCOPE" = auto ]; then if [ "$(id -u)" = 0 ]; then SCOPE=system; else SCOPE=user; fi; fi
if [ "$SCOPE" = system ]; then UNIT_DIR=/etc/systemd/system; else UNIT_DIR="$HOME/.config/systemd/user"; fi
UNIT="$UNIT_DIR/$SERVICE.service"
root_ok() {  # the unit holds $ROOT unquoted (systemd reads whitespace, quotes, \, $ and % in it)
  case "$ROOT" in *[!A-Za-z0-9._/+@-]*) return 1;; esac
}
"""


def _common(opts: Options, **values) -> str:
    words = " ".join(shlex.quote(w) for w in opts.systemctl.split(" "))
    return (
        _assign(
            ROOT=opts.root,
            SERVICE=opts.service,
            PY=opts.python,
            SCOPE=opts.scope,
            SYSTEMCTL=opts.systemctl,
            REFUSED_EXIT=REFUSED,
            **values,
        )
        + _COMMON
        # the scope is only known on the target (auto = system as root, user otherwise)
        + f'sctl() {{ if [ "$SCOPE" = user ]; then {words} --user "$@"; else {words} "$@"; fi; }}\n'
    )


def _listens_to_file(opts: Options) -> bool:
    """The service reads a file (``--listen-args "--file ..."``): no microphone needed."""
    return any(a == "--file" or a.startswith("--file=") for a in listen_tokens(opts.listen_args))


_PREFLIGHT = r"""
echo "root_abs=$ROOT"
echo "os=$( (. /etc/os-release && echo "${PRETTY_NAME:-$NAME}") 2>/dev/null || uname -s)"
arch=$(uname -m); echo "arch=$arch"
echo "uid=$(id -u)"; echo "scope=$SCOPE"; echo "unit=$UNIT"
pyver=$("$PY" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null || true)
echo "python=$pyver"
venv=no; [ -n "$pyver" ] && "$PY" -c 'import venv, ensurepip' 2>/dev/null && venv=yes; echo "venv=$venv"
d="$ROOT"; while [ ! -e "$d" ]; do d=$(dirname "$d"); done
free_kb=$(df -Pk "$d" | awk 'NR==2 {print $4}'); echo "free_kb=$free_kb"
writable=no; [ -w "$d" ] && writable=yes; echo "writable=$writable"
audio_inputs=0; [ -r /proc/asound/pcm ] && audio_inputs=$(grep -c capture /proc/asound/pcm || true); \
  echo "audio_inputs=$audio_inputs"
echo "current=$(readlink "$ROOT/current" 2>/dev/null || true)"
echo "runtime=$(readlink "$ROOT/runtime" 2>/dev/null || true)"
echo "previous=$(readlink "$ROOT/previous" 2>/dev/null || true)"
root_ok || refuse "install directory $ROOT: a systemd unit can hold only letters, digits \
and ._/+@- there (give another --root)"
case " $ARCHS " in *" $arch "*) ;; *) \
  refuse "target architecture $arch: this bundle was not checked on it (checked on: $ARCHS_TEXT; \
32-bit Pi OS has no LiteRT: use the 64-bit image)";; esac
[ -n "$pyver" ] \
  || refuse "no Python on the target ($PY not found; Debian/Pi OS: apt-get install python3 python3-venv)"
"$PY" -c \
  'import sys; sys.exit(sys.version_info[:2] < tuple(map(int, sys.argv[1].split("."))))' "$MIN_PYTHON" \
  || refuse "Python $pyver on the target, edge-sed needs >= $MIN_PYTHON"
[ "$venv" = yes ] || refuse "$PY has no venv/ensurepip module (Debian/Pi OS: apt-get install python3-venv)"
[ "$writable" = yes ] || refuse "no permission to write $d (needed for $ROOT)"
need=$NEED_KB
[ -f "$ROOT/runtimes/$RUNTIME_ID/.complete" ] || need=$((need + RUNTIME_KB))
[ "$free_kb" -ge "$need" ] \
  || refuse "disk full: $((free_kb / 1024)) MB free under $d, the deploy needs ~$((need / 1024)) MB"
command -v "$SYSTEMCTL_COMMAND" >/dev/null 2>&1 || refuse "no systemd on the target ($SYSTEMCTL not found)"
if [ "$NEEDS_MICROPHONE" = yes ] && [ "$audio_inputs" = 0 ]; then
  echo "WARN: no audio input device found (/proc/asound): the service will fail \
until a microphone is plugged in"
fi
"""


def preflight_script(opts: Options, archs: list[str], need_kb: int, runtime: str) -> str:
    """Read-only: print the target's facts, then refuse on the first check that fails."""
    return (
        _common(
            opts,
            ARCHS=" ".join(archs),
            ARCHS_TEXT=", ".join(archs),
            MIN_PYTHON=".".join(map(str, MIN_PYTHON)),
            NEED_KB=int(need_kb),
            RUNTIME_KB=RUNTIME_INSTALL_MB * 1024,
            RUNTIME_ID=runtime,
            SYSTEMCTL_COMMAND=opts.systemctl.split(" ")[0],
            NEEDS_MICROPHONE="no" if _listens_to_file(opts) else "yes",
        )
        + _PREFLIGHT
    )


_STAGE = r"""
mkdir -p "$ROOT/.staging" "$ROOT/bundles" "$ROOT/runtimes" "$ROOT/logs" \
  || refuse "no permission to create $ROOT"
ST=$(mktemp -d "$ROOT/.staging/$BUNDLE_ID.XXXXXX") || refuse "cannot create a staging directory under $ROOT"
if [ -n "$UPLOAD" ]; then TARFILE="$ROOT/$UPLOAD"; else TARFILE=-; fi
trap 'rm -rf "$ST"; [ "$TARFILE" = - ] || rm -f "$TARFILE"' EXIT
tar -xf "$TARFILE" -C "$ST" 2>"$ST/.tar-err" || { \
  grep -q "No space" "$ST/.tar-err" && refuse "disk full while copying the bundle"; \
  refuse "copying the bundle failed: $(tail -n1 "$ST/.tar-err")"; }
cd "$ST/bundle" || refuse "the upload has no bundle"
[ "$(sha256sum model.tflite | cut -d' ' -f1)" = "$SHA256" ] \
  || refuse "model.tflite sha256 on the target does not match the manifest (corrupted in transfer?)"
if [ -n "$CHECK_SHA256" ]; then
  [ "$(sha256sum check.npz | cut -d' ' -f1)" = "$CHECK_SHA256" ] \
    || refuse "check.npz sha256 mismatch on the target (corrupted in transfer?)"
fi
echo "sha256=ok"
RT="$ROOT/runtimes/$RUNTIME_ID"
if [ -f "$RT/.complete" ]; then
  echo "runtime_install=kept"
else
  rm -rf "$RT"
  "$PY" -m venv "$RT" >"$ST/venv.log" 2>&1 \
    || refuse "python -m venv failed: $(tail -n1 "$ST/venv.log")"
  "$RT/bin/python" -m pip install --disable-pip-version-check -q "$ST/wheel/$WHEEL" \
    >"$ST/pip.log" 2>&1 || {
    grep -q "No space left" "$ST/pip.log" \
      && { rm -rf "$RT"; refuse "disk full while installing the runtime"; }
    rm -rf "$RT"; \
    refuse "installing edge-sed on the target failed: $(grep -i error "$ST/pip.log" | tail -n1)"; }
  touch "$RT/.complete"
  echo "runtime_install=new"
fi
"$RT/bin/edge-sed" verify "$ST/bundle" >"$ST/verify.log" 2>&1 \
  || refuse "the bundle fails its check on this target ($(uname -m)): $(tail -n1 "$ST/verify.log")"
echo "target_verify=$(uname -m)"
B="$ROOT/bundles/$BUNDLE_ID"
if [ -d "$B" ] && [ "$(sha256sum "$B/model.tflite" 2>/dev/null | cut -d' ' -f1)" = "$SHA256" ]; then
  echo "bundle=kept"
else
  [ -d "$B" ] && echo "WARN: bundles/$BUNDLE_ID on the target was damaged: replaced"
  rm -rf "$B.old"; [ -d "$B" ] && mv "$B" "$B.old"
  cd "$ROOT" && mv "$ST/bundle" "$B" || refuse "moving the bundle into place failed"
  rm -rf "$B.old"
  echo "bundle=new"
fi
"""


def stage_script(opts: Options, art: Artifact, upload: str = "") -> str:
    """Unpack into .staging, check sha256 on the target, install the runtime venv if it is new,
    verify the bundle with the target's edge-sed, then move it into bundles/. Nothing live is
    touched; the staging directory is removed whatever happens. The tar comes on stdin, or (the
    playbook) from ``upload``, a path under ROOT."""
    return (
        _common(
            opts,
            BUNDLE_ID=art.bundle_id,
            RUNTIME_ID=art.runtime_id,
            WHEEL=art.wheel.name,
            SHA256=art.manifest["sha256"],
            CHECK_SHA256=check_sha256(art.manifest),
            UPLOAD=upload,
        )
        + _STAGE
    )


def systemd_word(arg: str) -> str:
    """``arg`` as one word of a systemd ExecStart= line that systemd reads back exactly: as it
    is if plain, else double-quoted with \\ and " escaped; $ (environment) and % (specifiers)
    are systemd's own expansions, quoted or not, so they become $$ and %%."""
    if re.fullmatch(r"[A-Za-z0-9_./:=,+@-]+", arg):
        return arg
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    return f'"{escaped}"'


def unit_text(opts: Options, root_abs: str, wanted_by: str) -> str:
    """The systemd unit; ``root_abs`` is only letters, digits and ._/+@- (checked on the target)."""
    args = " ".join(systemd_word(a) for a in listen_tokens(opts.listen_args))
    return f"""[Unit]
Description=edge-sed listen: rare sound event detection (managed by edge-sed deploy)
After=sound.target network.target

[Service]
Type=simple
WorkingDirectory={root_abs}
ExecStart={root_abs}/runtime/bin/edge-sed listen --bundle current \
--log logs/events.jsonl{" " + args if args else ""}
Restart=on-failure
RestartSec=5
Environment=PYTHONUNBUFFERED=1

[Install]
WantedBy={wanted_by}
"""


def _printf(text: str) -> str:
    """A shell command printing ``text`` exactly, in which \\0NAME\\0 stands for the value of the
    script's variable NAME; the text travels as single-quoted literals."""
    return "printf '%s' " + " ".join(
        f'"${p}"' if i % 2 else shlex.quote(p) for i, p in enumerate(text.split("\0")) if p
    )


_SWITCH = r"""
flip() {  # flip LINK TARGET: atomic symlink switch (a reader sees the old or the new link)
  ln -sfn "$2" "$ROOT/.$1.tmp" && mv -T "$ROOT/.$1.tmp" "$ROOT/$1"
}
health() {  # is the service up, and still up after the settle time?
  sleep "$SETTLE"
  sctl is-active --quiet "$SERVICE"
}
if [ "$ACTION" = rollback ]; then
  NEW_B=$(readlink "$ROOT/previous" 2>/dev/null) \
    || refuse "nothing to roll back to on this target (no previous bundle)"
  NEW_R=$(readlink "$ROOT/previous-runtime" 2>/dev/null || readlink "$ROOT/runtime")
  [ -d "$ROOT/$NEW_B" ] && [ -x "$ROOT/$NEW_R/bin/edge-sed" ] \
    || refuse "the previous bundle or runtime is gone from $ROOT"
else
  NEW_B=bundles/$BUNDLE_ID; NEW_R=runtimes/$RUNTIME_ID
  [ -d "$ROOT/$NEW_B" ] && [ -f "$ROOT/$NEW_R/.complete" ] || refuse "the staged bundle or runtime is missing"
fi
cd "$ROOT" || refuse "no $ROOT on the target"
ROOT=$(pwd -P)
OLD_B=$(readlink current 2>/dev/null || true); OLD_R=$(readlink runtime 2>/dev/null || true)
OLD_PB=$(readlink previous 2>/dev/null || true); OLD_PR=$(readlink previous-runtime 2>/dev/null || true)
UNIT_CHANGED=
if [ "$ACTION" = deploy ]; then  # a rollback keeps the unit as it is
  root_ok || refuse "install directory $ROOT: a systemd unit can hold only letters, digits \
and ._/+@- there (give another --root)"
  mkdir -p "$UNIT_DIR" || refuse "no permission to create $UNIT_DIR"
  if [ "$SCOPE" = system ]; then WANTED_BY=multi-user.target; else WANTED_BY=default.target; fi
  write_unit > "$UNIT.tmp" || refuse "no permission to write $UNIT"
  if cmp -s "$UNIT.tmp" "$UNIT"; then rm -f "$UNIT.tmp"; else
    [ -f "$UNIT" ] && cp -p "$UNIT" "$UNIT.prev"
    mv "$UNIT.tmp" "$UNIT" && sctl daemon-reload || refuse "systemctl daemon-reload failed"
    UNIT_CHANGED=1; echo "unit_written=yes"
  fi
  sctl enable "$SERVICE" >/dev/null 2>&1 \
    || echo "WARN: systemctl enable $SERVICE failed (the service will not start at boot)"
  if [ "$SCOPE" = user ]; then loginctl enable-linger "$(id -un)" >/dev/null 2>&1 \
    || echo "WARN: loginctl enable-linger failed: the user service stops at logout \
and does not start at boot"; \
  fi
fi
[ -f "$UNIT" ] || refuse "no unit $UNIT on the target"
if [ "$OLD_B" != "$NEW_B" ] || [ "$OLD_R" != "$NEW_R" ]; then
  [ -n "$OLD_B" ] && flip previous "$OLD_B"
  [ -n "$OLD_R" ] && flip previous-runtime "$OLD_R"
fi
flip runtime "$NEW_R"
flip current "$NEW_B"
echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) $ACTION $NEW_B $NEW_R" >> deployments.log
echo "current=$NEW_B"; echo "runtime=$NEW_R"; echo "previous=$OLD_B"
if sctl restart "$SERVICE" && health; then
  echo "service=active"
  # prune: runtimes (~200 MB each) nothing points at; bundles beyond the newest $KEEP
  for d in runtimes/*; do
    [ -d "$d" ] && [ "$d" != "$(readlink runtime)" ] && [ "$d" != "$(readlink previous-runtime)" ] \
      && rm -rf "$d" && echo "pruned=$d"
  done
  ls -1t bundles | tail -n "+$((KEEP + 1))" | while read -r b; do
    [ "bundles/$b" != "$(readlink current)" ] && [ "bundles/$b" != "$(readlink previous)" ] \
      && rm -rf "bundles/$b"
  done
else
  state=$(sctl is-active "$SERVICE" 2>/dev/null || true)
  if [ -n "$OLD_B" ] && [ -n "$OLD_R" ] && [ "$OLD_B" != "$NEW_B" -o "$OLD_R" != "$NEW_R" ]; then
    flip runtime "$OLD_R"; flip current "$OLD_B"
    if [ -n "$OLD_PB" ]; then flip previous "$OLD_PB"; else rm -f previous; fi
    if [ -n "$OLD_PR" ]; then flip previous-runtime "$OLD_PR"; else rm -f previous-runtime; fi
    if [ -n "$UNIT_CHANGED" ] && [ -f "$UNIT.prev" ]; then mv "$UNIT.prev" "$UNIT"; sctl daemon-reload; fi
    echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) auto-rollback $OLD_B $OLD_R" >> deployments.log
    if sctl restart "$SERVICE" && health; then back="it runs again"; else back="it does not start either"; fi
    refuse "service $SERVICE did not stay up on $NEW_B (state: ${state:-unknown}): \
switched back to $OLD_B, $back"
  fi
  refuse "service $SERVICE did not stay up on $NEW_B (state: ${state:-unknown}); \
see: journalctl $( [ "$SCOPE" = user ] && echo --user ) -u $SERVICE"
fi
"""


def switch_script(opts: Options, art: Artifact | None, rollback: bool = False) -> str:
    """Write the unit, flip runtime/current (remembering the old pair as previous), restart,
    check the service stays up; if not, flip back, restart the old pair, refuse. With
    ``rollback``: swap current/runtime with previous/previous-runtime instead."""
    unit = unit_text(opts, "\0ROOT\0", "\0WANTED_BY\0")
    return (
        _common(
            opts,
            ACTION="rollback" if rollback else "deploy",
            SETTLE=f"{opts.settle_s:g}",
            KEEP=int(opts.keep),
            BUNDLE_ID=art.bundle_id if art else "",
            RUNTIME_ID=art.runtime_id if art else "",
        )
        + f"write_unit() {{ {_printf(unit)}; }}\n"
        + _SWITCH
    )


_STATUS = r"""
[ -d "$ROOT" ] || refuse "nothing deployed here ($ROOT does not exist)"
cd "$ROOT"
echo "root=$(pwd -P)"
echo "current=$(readlink current 2>/dev/null || true)"
echo "runtime=$(readlink runtime 2>/dev/null || true)"
echo "previous=$(readlink previous 2>/dev/null || true)"
echo "arch=$(uname -m)"
echo "service=$(sctl is-active "$SERVICE" 2>/dev/null || true)"
sctl show "$SERVICE" -p ActiveEnterTimestamp -p NRestarts -p MainPID 2>/dev/null \
  | sed 's/^ActiveEnterTimestamp=/since=/; s/^NRestarts=/restarts=/; s/^MainPID=/pid=/'
[ -f current/manifest.json ] && echo "manifest=$(tr -d '\n' < current/manifest.json | head -c 200000)"
echo "last_deploy=$(tail -n1 deployments.log 2>/dev/null || true)"
echo "log=$(pwd -P)/logs/events.jsonl"
tail -n "$LINES" logs/events.jsonl 2>/dev/null | sed 's/^/event=/'
"""


def status_script(opts: Options, lines: int) -> str:
    return _common(opts, LINES=int(lines)) + _STATUS


def host_scripts(opts: Options, art: Artifact, upload: str = "") -> dict[str, str]:
    """The three scripts of a deploy, by file name (what the playbook writes)."""
    return {
        "preflight.sh": preflight_script(opts, checked_archs(art.manifest), _need_kb(art), art.runtime_id),
        "stage.sh": stage_script(opts, art, upload),
        "switch.sh": switch_script(opts, art),
    }


def check_syntax(scripts: dict[str, str]) -> None:
    """``sh -n`` here on each generated script, before any host sees it (a script the target's
    shell could not parse would be a bug in edge-sed: refused, not half run)."""
    if shutil.which("sh") is None:
        return
    for name, text in scripts.items():
        proc = subprocess.run(["sh", "-n"], input=text, capture_output=True, text=True)
        if proc.returncode != 0:
            raise EdgeSedError(
                f"the generated {name} fails sh -n (a bug in edge-sed, please report it): "
                f"{(proc.stderr.strip().splitlines() or ['?'])[-1]}"
            )


# ---------------------------------------------------------------------------- one host


@dataclass
class HostResult:
    target: Target
    status: str = "pending"  # ok | failed | staged | dry-run
    reason: str = ""
    facts: dict = field(default_factory=dict)
    steps: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {
            "host": str(self.target),
            "status": self.status,
            "reason": self.reason,
            "facts": {k: v for k, v in self.facts.items() if not k.startswith("_")},
            "steps": self.steps,
            "warnings": self.warnings,
            "seconds": round(self.seconds, 1),
        }


def _need_kb(art: Artifact) -> int:
    return (2 * art.bundle_bytes + 2 * art.wheel.stat().st_size) // 1024 + 20 * 1024


def _record(res: HostResult, facts: dict, step: str) -> None:
    res.warnings += facts.pop("_warnings", [])
    res.facts.update(facts)
    res.steps.append(step)


def describe_target(f: dict) -> str:
    free = int(f.get("free_kb") or 0) / 1024**2
    return (
        f"{f.get('os', '?')}, {f.get('arch', '?')}, Python {f.get('python') or 'none'}, "
        f"{free:.1f} GB free, {f.get('audio_inputs', '0')} audio input(s), {f.get('scope', '?')} service"
    )


def stage_host(target: Target, opts: Options, art: Artifact, dry_run: bool = False, log=None) -> HostResult:
    """Steps 1-2 on one host (preflight, stage). Never raises: the result says what failed."""
    log = log or (lambda m: None)
    res = HostResult(target)
    start = time.perf_counter()
    try:
        scripts = host_scripts(opts, art)
        facts = run_remote(target, opts, scripts["preflight.sh"], what="preflight")
        _record(res, facts, "checked: " + describe_target(facts))
        log(f"{target}: checked: {describe_target(facts)}")
        if dry_run:
            res.steps += plan_steps(opts, art, facts)
            res.status = "dry-run"
            return res
        facts = run_remote(target, opts, scripts["stage.sh"], data=art.tar, timeout_s=1800, what="staging")
        step = (
            f"staged {art.bundle_id} (sha256 ok on the target), runtime {art.runtime_id} "
            f"{'installed' if facts.get('runtime_install') == 'new' else 'already there'}, "
            f"bundle re-checked by the target's edge-sed on {facts.get('target_verify')}"
        )
        _record(res, facts, step)
        log(f"{target}: {step}")
        res.status = "staged"
    except DeployError as exc:
        res.status, res.reason = "failed", str(exc).split(": ", 1)[-1]
        res.facts = {**exc.facts, **res.facts}
    finally:
        res.seconds = time.perf_counter() - start
    return res


def switch_host(
    res: HostResult, opts: Options, art: Artifact | None, rollback: bool = False, log=None
) -> HostResult:
    """Step 3 on one host."""
    log = log or (lambda m: None)
    start = time.perf_counter()
    try:
        facts = run_remote(
            res.target,
            opts,
            switch_script(opts, art, rollback=rollback),
            timeout_s=300,
            what="rollback" if rollback else "switch",
        )
        prev = facts.get("previous") or "nothing"
        step = (
            f"{'rolled back' if rollback else 'switched'}: current -> {facts.get('current')} "
            f"(was {prev}), runtime -> {facts.get('runtime')}, service {opts.service} {facts.get('service')}"
        )
        _record(res, facts, step)
        log(f"{res.target}: {step}")
        res.status = "ok"
    except DeployError as exc:
        res.status, res.reason = "failed", str(exc).split(": ", 1)[-1]
    res.seconds += time.perf_counter() - start
    return res


def plan_steps(opts: Options, art: Artifact, facts: dict) -> list[str]:
    root, rt = opts.root, art.runtime_id
    exec_start = next(
        line
        for line in unit_text(opts, facts.get("root_abs") or root, "").splitlines()
        if line.startswith("ExecStart=")
    )
    have_rt = "keep" if facts.get("runtime") == f"runtimes/{rt}" else "install (if not already there)"
    return [
        f"upload {art.bundle_dir} ({art.bundle_bytes / 1024:.0f} kB) and {art.wheel.name} "
        f"to {root}/.staging/",
        f"check sha256 {art.manifest['sha256'][:12]}... of model.tflite on the target",
        f"runtime {root}/runtimes/{rt}: {have_rt} "
        "(python -m venv + pip install of the wheel; deps from PyPI)",
        f"re-run the bundle's check windows with the target's edge-sed verify ({facts.get('arch')})",
        f"move to {root}/bundles/{art.bundle_id}",
        f"write {facts.get('unit')} ({exec_start}; Restart=on-failure)",
        f"previous -> {facts.get('current') or '(none)'}; runtime -> runtimes/{rt}; "
        f"current -> bundles/{art.bundle_id} (ln -s + mv -T)",
        f"{opts.systemctl} restart {opts.service}; check it is still active after {opts.settle_s:g} s, "
        "else switch back",
    ]


# ------------------------------------------------------------------------------ fleets


def deploy(
    bundle_path,
    targets: list[Target],
    opts: Options,
    wheel=None,
    dry_run: bool = False,
    all_or_nothing: bool = False,
    log=None,
    parallel: int = 4,
) -> list[HostResult]:
    """Deploy to every target: preflight + stage in parallel, then switch the hosts that passed
    (all_or_nothing: none unless all passed). Returns one HostResult per target; raises only for
    problems before any host is touched (the bundle, the wheel)."""
    with tempfile.TemporaryDirectory(prefix="edge-sed-deploy-") as tmp:
        art = prepare(bundle_path, Path(tmp), wheel)
        check_syntax(host_scripts(opts, art))
        with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(targets)))) as pool:
            results = list(pool.map(lambda t: stage_host(t, opts, art, dry_run, log), targets))
            if dry_run:
                return results
            if all_or_nothing and any(r.status != "staged" for r in results):
                for r in results:
                    if r.status == "staged":
                        r.status, r.reason = "staged", "not switched: another host failed (--all-or-nothing)"
                return results
            staged = [r for r in results if r.status == "staged"]
            list(pool.map(lambda r: switch_host(r, opts, art, log=log), staged))
    return results


def rollback(targets: list[Target], opts: Options, log=None) -> list[HostResult]:
    check_syntax({"switch.sh": switch_script(opts, None, rollback=True)})
    with ThreadPoolExecutor(max_workers=max(1, min(4, len(targets)))) as pool:
        return list(
            pool.map(lambda t: switch_host(HostResult(t), opts, None, rollback=True, log=log), targets)
        )


def status(target: Target, opts: Options, lines: int = 10) -> dict:
    """Running bundle, runtime, service state and the last ``lines`` events of one target."""
    facts = run_remote(target, opts, status_script(opts, lines), what="status")
    out = {"host": str(target), **{k: v for k, v in facts.items() if not k.startswith("_")}}
    out["warnings"] = facts["_warnings"]
    try:
        m = json.loads(facts.get("manifest") or "{}")
    except json.JSONDecodeError:
        m = {}
    out["bundle"] = {k: m.get(k) for k in ("name", "level", "form", "sha256", "labels")} if m else None
    out.pop("manifest", None)
    events = []
    for line in facts.get("events", []):  # JSON lines where they are JSON
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            events.append(line)
    out["events"] = events
    return out


def format_table(results: list[HostResult]) -> str:
    rows = [("host", "arch", "python", "result", "seconds", "detail")]
    for r in results:
        f = r.facts
        detail = r.reason or (
            f"current -> {f.get('current')}"
            if r.status == "ok"
            else f"would deploy (runtime {'kept' if f.get('runtime') else 'new'})"
            if r.status == "dry-run"
            else ""
        )
        rows.append(
            (
                str(r.target),
                f.get("arch", "?"),
                f.get("python") or ("none" if f.get("arch") else "?"),
                r.status,
                f"{r.seconds:.1f}",
                detail,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row[:5], widths)) + "  " + row[5] for row in rows)


def format_status(s: dict) -> str:
    b = s.get("bundle") or {}
    lines = [
        f"{s['host']}: service {s.get('service') or 'unknown'}"
        + (f" since {s['since']}" if s.get("since") else "")
        + (f", restarts {s['restarts']}" if s.get("restarts") else "")
        + (f", pid {s['pid']}" if s.get("pid") and s.get("pid") != "0" else ""),
        f"  bundle:   {s.get('current') or '(none)'}"
        + (
            f"  ({b.get('level')} {b.get('form')}, sha256 {str(b.get('sha256'))[:12]}..., labels "
            f"{', '.join(b.get('labels') or [])})"
            if b
            else ""
        ),
        f"  runtime:  {s.get('runtime') or '(none)'}",
        f"  previous: {s.get('previous') or '(none: nothing to roll back to)'}",
        f"  last deploy: {s.get('last_deploy') or '(none)'}",
        f"  last {len(s['events'])} event(s) from {s.get('log')}:"
        if s["events"]
        else f"  no events yet in {s.get('log')}",
    ]
    for e in s["events"]:
        lines.append(
            "    " + (json.dumps(e, separators=(", ", ": ")) if isinstance(e, (dict, list)) else str(e))
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------- the command


def command(
    bundle,
    hosts: list[str],
    inventory,
    opts: Options,
    *,
    port=None,
    wheel=None,
    dry_run=False,
    do_rollback=False,
    do_status=False,
    lines=10,
    all_or_nothing=False,
    batch=1,
    as_json=False,
    say=print,
) -> None:
    """``edge-sed deploy``: one of deploy / --rollback / --status to --host(s), or a deploy through
    Ansible with --inventory. Prints a report; EdgeSedError (one line) if anything failed."""
    modes = sum(bool(x) for x in (do_rollback, do_status))
    if modes > 1:
        raise EdgeSedError("give at most one of --rollback and --status")
    if bool(hosts) == bool(inventory):
        raise EdgeSedError("give --host (repeatable) or --inventory, not both, not neither")
    if inventory:
        if modes:
            raise EdgeSedError(
                "--rollback and --status take --host; with an inventory run "
                "`edge-sed deploy --rollback --host ...` per host or use ansible directly"
            )
        if bundle is None:
            raise EdgeSedError("give the BUNDLE directory to deploy")
        from edge_sed.deploy.playbook import run_playbook

        results = run_playbook(
            inventory,
            bundle,
            opts,
            wheel=wheel,
            batch=batch,
            dry_run=dry_run,
            log=None if as_json else (lambda m: say(m)),
        )
        return _report(results, as_json, say)
    targets = [parse_target(h, port) for h in hosts]
    log = None if as_json else say
    if do_status:
        if bundle is not None:
            raise EdgeSedError("--status takes no BUNDLE")
        reports, errors = [], []
        for t in targets:
            try:
                reports.append(status(t, opts, lines))
            except DeployError as exc:
                errors.append(str(exc))
                reports.append({"host": str(t), "error": str(exc).split(": ", 1)[-1]})
        if as_json:
            say(json.dumps(reports if len(reports) > 1 else reports[0], indent=2))
        else:
            for r in reports:
                say(format_status(r) if "error" not in r else f"{r['host']}: {r['error']}")
        if errors:
            raise EdgeSedError(
                errors[0] if len(errors) == 1 else f"{len(errors)} of {len(targets)} hosts failed"
            )
        return None
    if do_rollback:
        if bundle is not None:
            raise EdgeSedError("--rollback takes no BUNDLE (it returns to the previous one)")
        return _report(rollback(targets, opts, log=log), as_json, say)
    if bundle is None:
        raise EdgeSedError("give the BUNDLE directory to deploy (or --rollback / --status)")
    results = deploy(
        bundle, targets, opts, wheel=wheel, dry_run=dry_run, all_or_nothing=all_or_nothing, log=log
    )
    if dry_run and not as_json:
        for r in results:
            if r.status == "dry-run":
                say(f"{r.target}: plan")
                for i, step in enumerate(r.steps[1:], 1):
                    say(f"  {i}. {step}")
    return _report(results, as_json, say)


def _report(results: list[HostResult], as_json: bool, say) -> None:
    if as_json:
        say(json.dumps([r.to_dict() for r in results], indent=2))
    elif len(results) > 1 or any(r.status not in ("ok", "dry-run") for r in results):
        say(format_table(results))
    for r in results:
        for w in r.warnings:
            if not as_json:
                say(f"{r.target}: warning: {w}")
    bad = [r for r in results if r.status not in ("ok", "dry-run")]
    if len(results) == 1 and bad:
        raise DeployError(f"{bad[0].target}: {bad[0].reason}")
    if bad:
        raise DeployError(
            f"{len(bad)} of {len(results)} hosts not deployed: "
            + "; ".join(f"{r.target}: {r.reason}" for r in bad)
        )
