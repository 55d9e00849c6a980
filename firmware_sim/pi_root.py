"""An emulated Raspberry Pi userland: Debian bookworm's arm64 python3 (+ venv) and libstdc++6 with
the aarch64 ``ai-edge-litert`` and numpy wheels, run under QEMU user-mode emulation, and the QEMU
TCG plugins that count the guest's instructions. Both are built on first use and cached under
``$EDGE_SED_CACHE`` (default ``~/.cache/edge-sed``); ``install_in_venv`` installs a wheel there
as a Pi user would (a venv and pip, dependencies from ``pi-wheelhouse/<key>/``):

- ``pi-root/<key>/`` — ``mmdebstrap --variant=extract`` of python3, python3-venv and libstdc++6 (arm64, from
  deb.debian.org), then ``pip install --target /opt/edge-sed/site --platform
  manylinux_2_27_aarch64 --only-binary=:all:`` of the host's own ai-edge-litert and numpy
  versions (so host and emulated runs use the same runtime release). <key> hashes all of that.
  About 20 s and 150 MB the first time.
- ``qemu-plugins/<qemu source version>/`` — ``libinsn.so`` (QEMU's own tests/plugin/insn.c) and
  ``libedgesed-marks.so`` (firmware_sim/pi_marks.c: counts instructions between guest markers),
  compiled against ``qemu-plugin.h`` from Debian's source package of the installed qemu-user,
  fetched with ``apt-get source`` through a private apt configuration (its own deb-src list and
  state under the cache; the system's apt configuration is not touched).

Traps handled here:
- LiteRT's CPU detection (cpuinfo, used by XNNPACK) reads /sys and /proc/cpuinfo; QEMU user mode
  shows it the host's (x86) and it segfaults. EMPTY ``sys/devices/system/cpu/{possible,present}``
  stop the crash but make cpuinfo fail, and then LiteRT silently runs WITHOUT the XNNPACK
  delegate - not what a Pi does. So each emulated core gets a view of the root
  (``pi-root/<key>.views/<cpu>/``: symlinks to the root's directories plus its own ``sys`` and
  ``proc``) with what a 4-core Pi shows: possible/present "0-3" and a /proc/cpuinfo naming that
  core (CPU part 0xd03 / 0xd08 / 0xd0b), so XNNPACK is applied and picks its kernels as on the
  board. (The ISA features come from QEMU's -cpu model through AT_HWCAP.)
- the dynamic ``qemu-aarch64`` (which loads plugins) does not look the program itself up under
  ``-L``, so the program is always given as a host path inside the root.
- a path missing under the ``-L`` prefix goes to the host's file system: the guest can read and
  write the host's temporary files (requests, results), and cannot write .pyc files into the
  root (the host byte-compiles the root's Python instead).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from edge_sed.core.errors import EdgeSedError

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
DEB_PACKAGES = (
    "python3",
    "python3-venv",
    "libstdc++6",
    "busybox",
)  # venv: a Pi user's pip; busybox: pi-shell
GUEST_PYTHON = "/usr/bin/python3"  # Debian bookworm's python3.11
GUEST_SITE = "/opt/edge-sed/site"
WHEEL_PLATFORMS = ("manylinux_2_27_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64")
ROOT_FORMAT = 2  # bump when the way the root is built changes
# QEMU -cpu name -> (/proc/cpuinfo CPU part, variant, revision, Features, board) as on that Pi (Raspberry Pi
# OS 64-bit). All three cores are known to QEMU 7.2 (qemu-aarch64 -cpu help): no substitution.
QEMU_CPUS = {
    "cortex-a53": ("0xd03", "0x0", 4, "fp asimd evtstrm crc32 cpuid", "Raspberry Pi Zero 2 W Rev 1.0"),
    "cortex-a72": ("0xd08", "0x0", 3, "fp asimd evtstrm crc32 cpuid", "Raspberry Pi 4 Model B Rev 1.4"),
    "cortex-a76": (
        "0xd0b",
        "0x4",
        1,
        "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp",
        "Raspberry Pi 5 Model B Rev 1.0",
    ),
}
MARK_FD = -1517  # see pi_marks.c
PLUGIN_SOURCE = Path(__file__).with_name("pi_marks.c")


class PiRootError(EdgeSedError):
    """The emulated userland or the instruction-count plugin cannot be built or run."""


def cache_dir() -> Path:
    return Path(os.environ.get("EDGE_SED_CACHE", Path.home() / ".cache" / "edge-sed"))


def _log(message: str, log) -> None:
    if log:
        log(message)


def _need(*tools: str, hint: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise PiRootError(
            f"the Pi simulator needs {', '.join(missing)} ({hint}; scripts/setup.sh installs it)"
        )


def _run(cmd: list[str], what: str, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise PiRootError(f"{what} failed (exit {proc.returncode}): {tail[0]}")
    return proc


@contextlib.contextmanager
def _locked(path: Path):
    """One builder at a time (two test sessions or CLI runs may start together)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _host_version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        raise PiRootError(
            f"{dist} is not installed on the host: the emulated Pi installs the same version"
        ) from None


def root_spec() -> dict:
    """Everything the root's contents depend on."""
    return {
        "format": ROOT_FORMAT,
        "suite": SUITE,
        "mirror": MIRROR,
        "debs": list(DEB_PACKAGES),
        "wheels": {"ai-edge-litert": _host_version("ai-edge-litert"), "numpy": _host_version("numpy")},
        "platforms": list(WHEEL_PLATFORMS),
    }


def root_dir(spec: dict | None = None) -> Path:
    spec = spec or root_spec()
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    return cache_dir() / "pi-root" / key


def ensure_root(log=None) -> Path:
    """The cached emulated userland, built if missing. Returns its directory (the -L prefix)."""
    spec = root_spec()
    root = root_dir(spec)
    if (root / ".complete").exists():
        return root
    _need("mmdebstrap", hint="Debian package mmdebstrap")
    _need("qemu-aarch64-static", hint="Debian package qemu-user-static")
    with _locked(root.parent / ".lock"):
        if (root / ".complete").exists():
            return root
        tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=root.parent))
        try:
            _log(f"pi-root: extracting Debian {SUITE} arm64 {' '.join(DEB_PACKAGES)} with mmdebstrap", log)
            rootfs = tmp / "root"
            _run(
                [
                    "mmdebstrap",
                    "--variant=extract",
                    "--architectures=arm64",
                    "--quiet",
                    f"--include={','.join(DEB_PACKAGES)}",
                    SUITE,
                    str(rootfs),
                    MIRROR,
                ],
                "mmdebstrap",
            )
            wheels = [f"{name}=={v}" for name, v in spec["wheels"].items()]
            _log(f"pi-root: pip install --platform {WHEEL_PLATFORMS[0]} {' '.join(wheels)}", log)
            cmd = [
                sys.executable,
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                "--no-compile",
                "--target",
                str(rootfs / GUEST_SITE.lstrip("/")),
                "--only-binary=:all:",
                "--python-version",
                "3.11",
                "--implementation",
                "cp",
                "--abi",
                "cp311",
            ]
            for platform in WHEEL_PLATFORMS:
                cmd += ["--platform", platform]
            _run(cmd + wheels, "pip install of the aarch64 wheels")
            if sys.version_info[:2] == (3, 11):
                # Same .pyc format as the guest's 3.11: later runs start faster. (The guest itself
                # cannot write them: QEMU sends a path missing in the root to the host's file system.)
                _log("pi-root: byte-compiling the guest's Python", log)
                subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "compileall",
                        "-q",
                        "-j",
                        "0",
                        "-x",
                        "/test/|/tests/|idlelib|tkinter|lib2to3",
                        str(rootfs / "usr/lib/python3.11"),
                        str(rootfs / GUEST_SITE.lstrip("/")),
                    ],
                    capture_output=True,
                )
            (rootfs / ".complete").write_text(json.dumps(spec, indent=1))
            if root.exists():  # an incomplete leftover
                shutil.rmtree(root)
            rootfs.rename(root)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    _log(f"pi-root: ready at {root}", log)
    return root


def cpu_view(root: Path, cpu: str) -> Path:
    """The -L prefix for ``cpu``: the root seen through symlinks, with a Pi's sys and proc (module doc)."""
    if cpu not in QEMU_CPUS:
        raise PiRootError(f"unknown emulated CPU {cpu!r} (known: {', '.join(QEMU_CPUS)})")
    view = root.parent / f"{root.name}.views" / cpu
    if (view / ".complete").exists():
        return view
    part, variant, revision, features, board = QEMU_CPUS[cpu]
    with _locked(root.parent / ".lock"):
        if (view / ".complete").exists():
            return view
        if view.exists():
            shutil.rmtree(view)
        view.mkdir(parents=True)
        for entry in root.iterdir():
            if entry.name not in ("sys", "proc", ".complete"):
                (view / entry.name).symlink_to(entry)
        sysfs = view / "sys/devices/system/cpu"
        sysfs.mkdir(parents=True)
        for name in ("possible", "present", "online"):
            (sysfs / name).write_text("0-3\n")
        (view / "proc").mkdir()
        (view / "proc/cpuinfo").write_text(
            "".join(
                f"processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: {features}\nCPU implementer\t: 0x41\n"
                f"CPU architecture: 8\nCPU variant\t: {variant}\nCPU part\t: {part}\n"
                f"CPU revision\t: {revision}\n\n"
                for i in range(4)
            )
            + f"Model\t\t: {board}\n"
        )
        (view / ".complete").write_text(cpu)
    return view


# ----------------------------------------------------------------------- QEMU plugins


def qemu_source_version() -> str:
    """Debian source version of the installed qemu-user (the plugin ABI must match it)."""
    _need("dpkg-query", hint="dpkg")
    proc = subprocess.run(
        ["dpkg-query", "-W", "-f=${source:Version}", "qemu-user"], capture_output=True, text=True
    )
    if proc.returncode != 0 or not proc.stdout.strip():
        raise PiRootError(
            "qemu-user is not installed (Debian package qemu-user: scripts/setup.sh installs it)"
        )
    return proc.stdout.strip()


def _apt_private(work: Path) -> list[str]:
    """apt-get options for a private deb-src configuration under ``work``."""
    (work / "lists/partial").mkdir(parents=True, exist_ok=True)
    (work / "cache/archives/partial").mkdir(parents=True, exist_ok=True)
    sources = work / "sources.list"
    keyring = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
    opt = f"[signed-by={keyring}] " if keyring.exists() else ""
    sources.write_text(
        f"deb-src {opt}{MIRROR} {SUITE} main\n"
        f"deb-src {opt}{MIRROR} {SUITE}-updates main\n"
        f"deb-src {opt}{MIRROR.rsplit('/', 1)[0]}/debian-security {SUITE}-security main\n"
    )
    opts = {
        "Dir::Etc::SourceList": sources,
        "Dir::Etc::SourceParts": "/dev/null",
        "Dir::State::Lists": work / "lists",
        "Dir::Cache": work / "cache",
        "Debug::NoLocking": "1",
        "APT::Sandbox::User": "root" if os.geteuid() == 0 else os.environ.get("USER", "nobody"),
    }
    return [a for k, v in opts.items() for a in ("-o", f"{k}={v}")]


def ensure_plugins(log=None) -> dict[str, Path]:
    """{"insn": libinsn.so, "marks": libedgesed-marks.so}, built if missing."""
    src_version = qemu_source_version()
    digest = hashlib.sha256(PLUGIN_SOURCE.read_bytes()).hexdigest()[:8]
    out = cache_dir() / "qemu-plugins" / f"{src_version.replace(':', '_')}-{digest}"
    plugins = {"insn": out / "libinsn.so", "marks": out / "libedgesed-marks.so"}
    if all(p.exists() for p in plugins.values()):
        return plugins
    _need("apt-get", "dpkg-source", hint="Debian packages apt and dpkg-dev")
    _need("gcc", hint="Debian package gcc")
    _need("pkg-config", hint="Debian package pkg-config")
    glib = subprocess.run(["pkg-config", "--cflags", "glib-2.0"], capture_output=True, text=True)
    if glib.returncode != 0:
        raise PiRootError(
            "no glib headers for the QEMU plugin "
            "(Debian package libglib2.0-dev; scripts/setup.sh installs it)"
        )
    with _locked(out.parent / ".lock"):
        if all(p.exists() for p in plugins.values()):
            return plugins
        with tempfile.TemporaryDirectory(prefix="qemu-src-") as tmp:
            work = Path(tmp)
            apt = ["apt-get", "-q"] + _apt_private(work / "apt")
            _log(f"qemu plugins: apt-get source qemu={src_version} (Debian's source package, ~24 MB)", log)
            _run(apt + ["update"], "apt-get update (private deb-src list)")
            try:
                _run(
                    apt + ["source", "--download-only", f"qemu={src_version}"],
                    "apt-get source qemu",
                    cwd=work,
                )
            except PiRootError:
                # that exact revision left the archive (a newer security update replaced it): any
                # revision of the same upstream release has the same plugin API
                _log(
                    f"qemu plugins: qemu={src_version} is no longer in the archive; "
                    "using bookworm's current qemu source",
                    log,
                )
                _run(apt + ["source", "--download-only", "qemu"], "apt-get source qemu", cwd=work)
                upstream = src_version.split(":")[-1].split("-")[0]
                got = next(work.glob("qemu_*.dsc")).name
                if upstream not in got:
                    raise PiRootError(
                        f"Debian's qemu source is {got}, the installed qemu-user is {src_version}: "
                        "the plugin would not match (apt-get upgrade qemu-user)"
                    ) from None
            dsc = next(work.glob("qemu_*.dsc"), None)
            if dsc is None:
                raise PiRootError("apt-get source qemu downloaded no .dsc")
            _run(["dpkg-source", "--no-check", "-x", dsc.name, "qemu"], "dpkg-source -x (qemu)", cwd=work)
            header = work / "qemu/include/qemu/qemu-plugin.h"
            insn_c = work / "qemu/tests/plugin/insn.c"
            out.mkdir(parents=True, exist_ok=True)
            cflags = ["-O2", "-shared", "-fPIC", "-I", str(header.parent)] + glib.stdout.split()
            libs = subprocess.run(
                ["pkg-config", "--libs", "glib-2.0"], capture_output=True, text=True
            ).stdout.split()
            _log(
                "qemu plugins: compiling libinsn.so (QEMU's tests/plugin/insn.c) and libedgesed-marks.so", log
            )
            for src, dst in ((insn_c, plugins["insn"]), (PLUGIN_SOURCE, plugins["marks"])):
                tmp_out = dst.with_suffix(".so.tmp")
                _run(["gcc", *cflags, str(src), "-o", str(tmp_out), *libs], f"compiling {src.name}")
                tmp_out.rename(dst)
            shutil.copy2(
                header, out / "qemu-plugin.h"
            )  # kept for reference: the API the plugins were built against
    return plugins


# ------------------------------------------------------------------------------ running


def _guest_env(extra_path: list[str] = ()) -> dict:
    """A clean environment: nothing of the host's Python (venv, PYTHONPATH) leaks into the guest."""
    # One thread, as the profiles assume; OpenBLAS (numpy) would otherwise start one per core, whose
    # spinning shows up in the instruction counts (a process-wide counter).
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "PYTHONHASHSEED": "0",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONPATH": ":".join([GUEST_SITE, *extra_path]),
    }


def guest_command(
    root: Path,
    argv: list[str],
    cpu: str = "cortex-a72",
    plugin: Path | None = None,
    plugin_args: str = "",
    extra_path: list[str] = (),
) -> tuple[list[str], dict]:
    """(command, environment) that runs ``argv`` (argv[0]: a program in the root, e.g. python3 or
    /usr/bin/python3) in the emulated userland on ``cpu``. With ``plugin`` the dynamic
    qemu-aarch64 (which loads TCG plugins) is used, else qemu-aarch64-static."""
    if not argv:
        argv = ["python3"]
    view = cpu_view(root, cpu)
    candidates = (
        [argv[0]]
        if "/" in argv[0]
        else [f"{d}/{argv[0]}" for d in ("/usr/bin", "/bin", "/usr/sbin", "/sbin")]
    )
    program = next((c for c in candidates if (view / c.lstrip("/")).exists()), candidates[0])
    host_program = view / program.lstrip("/")
    if not host_program.exists():
        raise PiRootError(f"{program}: no such program in the emulated root ({root})")
    qemu = "qemu-aarch64" if plugin else "qemu-aarch64-static"
    _need(qemu, hint="Debian package qemu-user" if plugin else "Debian package qemu-user-static")
    cmd = [qemu, "-L", str(view), "-cpu", cpu]
    if plugin:
        cmd += ["-plugin", f"{plugin}{',' + plugin_args if plugin_args else ''}"]
    return cmd + [str(host_program), *argv[1:]], _guest_env(list(extra_path))


def shell(argv: list[str], cpu: str = "cortex-a72", count_insns: bool = False, log=None) -> int:
    """``edge-sed pi-shell``: run a command in the emulated userland with the terminal attached;
    with ``count_insns``, QEMU's insn plugin prints the instructions executed at the end."""
    root = ensure_root(log)
    plugin = ensure_plugins(log)["insn"] if count_insns else None
    with tempfile.TemporaryDirectory(prefix="edge-sed-pi-") as tmp:
        cmd, env = guest_command(
            root,
            list(argv),
            cpu,
            plugin,
            "inline=on" if plugin else "",
            extra_path=[str(stage_edge_sed(Path(tmp)))],
        )
        if plugin:
            cmd[1:1] = ["-d", "plugin"]  # the plugin's "insns: N" goes to QEMU's log (stderr)
        return subprocess.run(cmd, env=env).returncode


def stage_edge_sed(folder: Path) -> Path:
    """Copy this checkout's edge_sed package (its .py files, as a device installs them) into
    ``folder``/edge_sed and return ``folder`` for the guest's PYTHONPATH. A copy, not the host's
    site-packages: those hold x86 builds of numpy and friends."""
    import edge_sed

    src = Path(edge_sed.__file__).parent
    for f in src.rglob("*.py"):
        dst = folder / "edge_sed" / f.relative_to(src)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, dst)
    return folder


# ------------------------------------------------------------- a Pi user's install, emulated

# Debian bookworm (Raspberry Pi OS 12) has glibc 2.36: the manylinux tags its pip accepts
GUEST_GLIBC_TAGS = tuple(f"manylinux_2_{m}_aarch64" for m in (17, 27, 28, 31, 34, 35, 36)) + (
    "manylinux2014_aarch64",
)
GUEST_PIP_WHEEL = "/usr/share/python-wheels/pip-23.0.1-py3-none-any.whl"  # bookworm's python3-pip-whl


def wheelhouse(wheel: Path, log=None) -> Path:
    """The aarch64 (CPython 3.11, glibc 2.36) wheels of ``wheel``'s run-time dependencies, downloaded
    once by the host's pip from the index and cached under ``$EDGE_SED_CACHE/pi-wheelhouse/<key>``
    (key: the wheel's Requires-Dist lines), so the guest installs offline and a second run fetches
    nothing."""
    import zipfile

    with zipfile.ZipFile(wheel) as z:
        meta = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    requires = sorted(
        line for line in meta.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line
    )
    key = hashlib.sha256(json.dumps([requires, GUEST_GLIBC_TAGS]).encode()).hexdigest()[:12]
    house = cache_dir() / "pi-wheelhouse" / key
    if (house / ".complete").exists():
        return house
    with _locked(house.parent / ".lock"):
        if (house / ".complete").exists():
            return house
        _log(f"pi-wheelhouse: pip download of {wheel.name}'s dependencies for aarch64", log)
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--disable-pip-version-check",
            "--only-binary=:all:",
            "--python-version",
            "3.11",
            "--implementation",
            "cp",
            "--abi",
            "cp311",
            "-d",
            str(house),
        ]
        for tag in GUEST_GLIBC_TAGS:
            cmd += ["--platform", tag]
        _run(cmd + [str(wheel)], "pip download of the aarch64 wheels")
        for own in house.glob(
            "edge_sed-*.whl"
        ):  # the code is installed from the wheel given, never from here
            own.unlink()
        (house / ".complete").write_text("\n".join(requires))
    return house


def install_in_venv(venv: Path, wheel: Path, log=None) -> Path:
    """What a Pi user does — ``python3 -m venv DIR; DIR/bin/pip install edge_sed-….whl`` — in the
    emulated userland, offline from ``wheelhouse(wheel)``. Two emulation details: the venv is
    made with ``--copies`` and its pip is bootstrapped from Debian's pip wheel in-process, since
    QEMU user mode cannot run a guest program that the guest itself starts (no binfmt_misc);
    and both run on the root itself, not a CPU view (whose symlinks send realpath() outside
    the root). Returns the venv."""
    root = ensure_root(log)
    house = wheelhouse(wheel, log)
    _need("qemu-aarch64-static", hint="Debian package qemu-user-static")
    tmp = venv.parent / f".{venv.name}-tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    env = {**_guest_env(), "TMPDIR": str(tmp), "PIP_CONFIG_FILE": os.devnull}
    env.pop("PYTHONPATH")
    qemu = ["qemu-aarch64-static", "-L", str(root), "-cpu", "cortex-a72"]
    python = str(venv / "bin" / "python3")
    _log(f"pi-venv: python3 -m venv {venv}", log)
    _run(
        qemu + [str(root / GUEST_PYTHON.lstrip("/")), "-m", "venv", "--copies", "--without-pip", str(venv)],
        "python3 -m venv in the emulated Pi",
        env=env,
    )
    _run(
        qemu
        + [python, f"{GUEST_PIP_WHEEL}/pip", "install", "-q", "--no-index", "--no-compile", GUEST_PIP_WHEEL],
        "bootstrapping pip in the emulated Pi's venv",
        env=env,
    )
    _log(f"pi-venv: pip install {wheel.name} (dependencies from {house})", log)
    _run(
        qemu
        + [
            python,
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "--no-index",
            "--no-compile",
            "--find-links",
            str(house),
            str(wheel),
        ],
        "pip install of the wheel in the emulated Pi",
        env=env,
    )
    return venv


def venv_command(venv: Path, argv: list[str], cpu: str = "cortex-a72") -> tuple[list[str], dict]:
    """(command, environment) running ``argv`` (argv[0]: a console script of ``venv``, e.g.
    edge-sed) with the venv's Python, in the emulated userland seen as a Pi with ``cpu``."""
    view = cpu_view(ensure_root(), cpu)
    env = {**_guest_env(), "TMPDIR": str(venv.parent / f".{venv.name}-tmp")}
    env.pop("PYTHONPATH")
    return (
        [
            "qemu-aarch64-static",
            "-L",
            str(view),
            "-cpu",
            cpu,
            str(venv / "bin" / "python3"),
            str(venv / "bin" / argv[0]),
            *map(str, argv[1:]),
        ],
        env,
    )
