"""The deploy steps on one host, and what they ship: verify the bundle and build the wheel here,
then preflight, stage (sha256, runtime install, the target's own verify), switch (systemd unit,
atomic flip, health check, switch back on failure) and rollback, each a shell script run on the
target over edge_sed.deploy.ssh. The script bodies are files in ``scripts/`` (package data).

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
The order over hosts (and the Ansible playbook running the same scripts) is
edge_sed.deploy.playbook's.
"""

from __future__ import annotations

import functools
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
import time
import zipfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from edge_sed.core.errors import EdgeSedError
from edge_sed.deploy.options import Options, Target, listen_tokens
from edge_sed.deploy.ssh import DeployError, run_remote

MIN_PYTHON = (3, 9)
RUNTIME_ARCHS = ("x86_64", "aarch64")
"""Architectures with a LiteRT (ai-edge-litert) build, i.e. where a bundle can be checked at all.
32-bit Raspberry Pi OS (armv7l/armv6l) has none: use the 64-bit image."""
RUNTIME_INSTALL_MB = 300
"""Disk a fresh runtime venv needs (numpy, LiteRT, soundfile, ... measured ~200 MB, plus pip's
temporary files)."""
REFUSED = 42
"""Exit status of a remote step that refused (its stdout has a 'REFUSED: reason' line)."""
WHEEL_NAME = re.compile(r"edge_sed-([A-Za-z0-9_.!+]+)(?:-\d[A-Za-z0-9_.]*)?(?:-[A-Za-z0-9_.]+){3}\.whl")
"""PEP 427: edge_sed-VERSION(-BUILD)?-PYTHON-ABI-PLATFORM.whl."""
ARCH_NAME = re.compile(r"[A-Za-z0-9_]+")
SHA256_HEX = re.compile(r"[0-9a-f]{64}")


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
# (scripts/*.sh) are constants that only use those variables, always in double quotes ("$ROOT");
# the two generated functions (sctl, write_unit) are made of single-quoted literals too. So no
# string from a bundle, the command line or a target can become shell code, whatever it holds.


@functools.cache
def script_text(name: str) -> str:
    """The text of ``scripts/<name>`` (package data, shipped in the wheel)."""
    return resources.files("edge_sed.deploy").joinpath("scripts", name).read_text(encoding="utf-8")


def _assign(**values) -> str:
    return "".join(f"{name}={shlex.quote(str(value))}\n" for name, value in values.items())


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
        + script_text("common.sh")
        # the scope is only known on the target (auto = system as root, user otherwise)
        + f'sctl() {{ if [ "$SCOPE" = user ]; then {words} --user "$@"; else {words} "$@"; fi; }}\n'
    )


def _listens_to_file(opts: Options) -> bool:
    """The service reads a file (``--listen-args "--file ..."``): no microphone needed."""
    return any(a == "--file" or a.startswith("--file=") for a in listen_tokens(opts.listen_args))


def preflight_script(opts: Options, archs: list[str], need_kb: int, runtime: str) -> str:
    """Read-only: print the target's facts, then refuse on the first check that fails."""
    return _common(
        opts,
        ARCHS=" ".join(archs),
        ARCHS_TEXT=", ".join(archs),
        MIN_PYTHON=".".join(map(str, MIN_PYTHON)),
        NEED_KB=int(need_kb),
        RUNTIME_KB=RUNTIME_INSTALL_MB * 1024,
        RUNTIME_ID=runtime,
        SYSTEMCTL_COMMAND=opts.systemctl.split(" ")[0],
        NEEDS_MICROPHONE="no" if _listens_to_file(opts) else "yes",
    ) + script_text("preflight.sh")


def stage_script(opts: Options, art: Artifact, upload: str = "") -> str:
    """Unpack into .staging, check sha256 on the target, install the runtime venv if it is new,
    verify the bundle with the target's edge-sed, then move it into bundles/. Nothing live is
    touched; the staging directory is removed whatever happens. The tar comes on stdin, or (the
    playbook) from ``upload``, a path under ROOT."""
    return _common(
        opts,
        BUNDLE_ID=art.bundle_id,
        RUNTIME_ID=art.runtime_id,
        WHEEL=art.wheel.name,
        SHA256=art.manifest["sha256"],
        CHECK_SHA256=check_sha256(art.manifest),
        UPLOAD=upload,
    ) + script_text("stage.sh")


def systemd_word(arg: str) -> str:
    """``arg`` as one word of a systemd ExecStart= line that systemd reads back exactly: as it
    is if plain, else double-quoted with \\ and " escaped; $ (environment) and % (specifiers)
    are systemd's own expansions, quoted or not, so they become $$ and %%."""
    if re.fullmatch(r"[A-Za-z0-9_./:=,+@-]+", arg):
        return arg
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    return f'"{escaped}"'


def unit_text(opts: Options, root_abs: str, wanted_by: str) -> str:
    """The systemd unit (scripts/edge-sed.service); ``root_abs`` is only letters, digits and
    ._/+@- (checked on the target)."""
    args = " ".join(systemd_word(a) for a in listen_tokens(opts.listen_args))
    return script_text("edge-sed.service").format(
        root_abs=root_abs, args=" " + args if args else "", wanted_by=wanted_by
    )


def _printf(text: str) -> str:
    """A shell command printing ``text`` exactly, in which \\0NAME\\0 stands for the value of the
    script's variable NAME; the text travels as single-quoted literals."""
    return "printf '%s' " + " ".join(
        f'"${p}"' if i % 2 else shlex.quote(p) for i, p in enumerate(text.split("\0")) if p
    )


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
        + script_text("switch.sh")
    )


def status_script(opts: Options, lines: int) -> str:
    return _common(opts, LINES=int(lines)) + script_text("status.sh")


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
