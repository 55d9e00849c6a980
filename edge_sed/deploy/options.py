"""What a deploy is told, checked before any host is contacted: the targets (``[user@]host[:port]``)
and the options (install directory, service, ssh options, ...).

Every string from outside (options, manifest fields, the wheel's file name) is checked against
what it may be, before any host is contacted, and then reaches a remote script only as a
single-quoted shell assignment (edge_sed.deploy.steps._assign), never as shell syntax.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from edge_sed.core.errors import EdgeSedError

DEFAULT_ROOT = "~/edge-sed"
DEFAULT_SERVICE = "edge-sed"
SETTLE_S = 3.0
"""How long after a restart the service must still be active to count as up."""

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
