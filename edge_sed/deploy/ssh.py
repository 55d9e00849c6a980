"""The transport: run a POSIX sh script on a board over SSH, with a tar stream on its stdin.

It is the system's OpenSSH client (``ssh``), run as a subprocess. It is what device engineers
already use, so ``~/.ssh/config`` (aliases, ProxyJump, ports), the ssh-agent, ``known_hosts``
(host keys: ``--ssh-option UserKnownHostsFile=...``, ``StrictHostKeyChecking=...``) and hardware
keys all just work, and the runtime gains no dependency; a library (paramiko, asyncssh) would
re-implement and second-guess all of that. Files travel as one tar stream over the same
connection (no scp/sftp needed on the board).
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess

from edge_sed.core.errors import EdgeSedError
from edge_sed.deploy.options import Options, Target


class DeployError(EdgeSedError):
    """A deploy step that failed on one host; nothing was switched on that host. ``facts``: what
    the step had learnt about the target before it refused (arch, python, ...), for the table."""

    def __init__(self, message: str, facts: dict | None = None):
        super().__init__(message)
        self.facts = facts or {}


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
