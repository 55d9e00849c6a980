"""Shell metacharacters, newlines and EOF in every string an ``edge-sed deploy`` carries.

Each payload tries to run ``touch MARK`` wherever it lands; a test fails if MARK ever exists.
(a) Values that cannot be carried safely (a --root with a space or a newline, a --service with a
'/', a --host starting with '-', a checked_on entry that is not an architecture name, ...) are
refused through the real CLI: one line, exit 2, and ssh is never run.
(b) Legitimate values holding metacharacters (a --listen-args file name with spaces, $(...),
backticks, quotes, % and $; a manifest name; local paths; an --identity path; an --ssh-option)
go through full deploys, a status and a rollback, and through the Ansible playbook's scripts,
in a sandbox. Every script sent passes ``sh -n``; the unit file holds exactly the intended text,
and systemd's own parser (``systemd-analyze verify``, which dumps the command line it parsed)
reads ExecStart back as exactly the intended words.

The sandbox: a fake ``ssh`` first on PATH that checks its options, records its argv and runs the
remote command as sshd would (``sh -c``) under a temporary HOME; a fake ``systemctl`` that records
its calls and says active; a fake ``python3`` whose ``-m venv`` makes a runtime of two recording
scripts (bin/python for pip, bin/edge-sed) and which is the real Python otherwise. Everything
else is real: the CLI, the bundle's verification, the tar upload, sh, sha256sum, the symlinks.
"""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from edge_sed.cli import main

FAKE_SSH = r"""#!/bin/sh
# fake ssh: options, then "--" and the destination (anything else is refused like a bad option)
printf '%s\0' "$@" > "$(mktemp "$SANDBOX/ssh-calls/call.XXXXXX")"
while [ $# -gt 0 ]; do
  case "$1" in
    -o|-i|-p) shift 2;;
    --) shift; break;;
    *) echo "fake ssh: unexpected argument before -- and the destination: $1" >&2; exit 255;;
  esac
done
shift  # the destination
cd "$SANDBOX_HOME" && HOME="$SANDBOX_HOME" PATH="$SANDBOX/bin:$PATH" exec sh -c "$*"
"""

FAKE_SYSTEMCTL = r"""#!/bin/sh
printf '%s\0' "$@" > "$(mktemp "$SANDBOX/systemctl-calls/call.XXXXXX")"
case " $* " in *" is-active "*) case " $* " in *" --quiet "*) ;; *) echo active;; esac;; esac
exit 0
"""

FAKE_PYTHON = r"""#!/bin/sh
# fake python3: `-m venv DIR` makes a runtime of recording scripts; anything else: the real Python
if [ "${1:-}" = -m ] && [ "${2:-}" = venv ]; then
  mkdir -p "$3/bin" && cp "$SANDBOX/recorder" "$3/bin/python" && cp "$SANDBOX/recorder" "$3/bin/edge-sed"
  exit
fi
exec "$SANDBOX_PYTHON" "$@"
"""

RECORDER = r"""#!/bin/sh
{ printf '%s\0' "$0" "$@"; } > "$(mktemp "$SANDBOX/runtime-calls/call.XXXXXX")"
"""


class Sandbox:
    def __init__(self, root: Path, monkeypatch):
        self.root = root
        root.mkdir()
        self.bin, self.home, self.marks = root / "bin", root / "home", root / "marks"
        for d in (
            self.bin,
            self.home,
            self.marks,
            root / "ssh-calls",
            root / "systemctl-calls",
            root / "runtime-calls",
        ):
            d.mkdir()
        for name, text in (
            ("bin/ssh", FAKE_SSH),
            ("bin/systemctl", FAKE_SYSTEMCTL),
            ("bin/python3", FAKE_PYTHON),
            ("recorder", RECORDER),
        ):
            (root / name).write_text(text)
            (root / name).chmod(0o755)
        self.mark = self.marks / "pwned"
        monkeypatch.setenv("SANDBOX", str(root))
        monkeypatch.setenv("MARK_FILE", str(self.mark))  # for payloads in file names (no '/' there)
        monkeypatch.setenv("SANDBOX_HOME", str(self.home))
        monkeypatch.setenv("SANDBOX_PYTHON", sys.executable)
        monkeypatch.setenv("PATH", f"{self.bin}:{os.environ['PATH']}")

    def calls(self, kind: str) -> list[list[str]]:
        files = sorted((self.root / f"{kind}-calls").iterdir(), key=lambda p: p.stat().st_mtime_ns)
        return [p.read_text().split("\0")[:-1] for p in files]

    def env(self) -> dict:
        """The environment the fake ssh gives a remote command (for running scripts directly)."""
        return {**os.environ, "HOME": str(self.home), "PATH": f"{self.bin}:{os.environ['PATH']}"}


PAYLOADS = [
    "$(touch MARK)",
    "`touch MARK`",
    ";touch MARK;",
    "|touch MARK",
    "&touch MARK&",
    "'$(touch MARK)'",
    '"$(touch MARK)"',
    "\nEOF\ntouch MARK\nEOF\n",
]
"""Each tries to create MARK (replaced by the sandbox's marker path; in a file name, by
"$MARK_FILE", the same path from the environment) wherever a shell reads it."""
IN_NAME = '"$MARK_FILE"'


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    sb = Sandbox(tmp_path / "sb", monkeypatch)
    yield sb
    assert not list(sb.marks.iterdir()), "a payload ran"


@pytest.fixture
def wheel(sandbox):
    """A wheel-shaped zip (the fake venv installs nothing), in a directory with metacharacters."""
    d = sandbox.root / "w $(touch MARK) `touch MARK`;|&'\"\nEOF".replace("MARK", IN_NAME)
    d.mkdir()
    path = d / "edge_sed-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("edge_sed-0.1.0.dist-info/RECORD", "edge_sed/__init__.py,,\n")
    return path


@pytest.fixture(scope="module")
def bundles(tiny_bundles):
    return tiny_bundles[0]


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def base_args(bundle, wheel, *extra):
    return [
        "deploy",
        *([bundle] if bundle else []),
        "--host",
        "pi@board-1.local:2222",
        "--wheel",
        wheel,
        "--scope",
        "user",
        "--settle",
        "0",
        *extra,
    ]


def edited_bundle(bundles, dest: Path, **fields) -> Path:
    """A copy of the level ``dest.name`` with manifest ``fields`` changed."""
    b = shutil.copytree(bundles / dest.name, dest)
    manifest = json.loads((b / "manifest.json").read_text())
    manifest.update(fields)
    (b / "manifest.json").write_text(json.dumps(manifest))
    return b


def assert_refused_before_contact(sandbox, code, err, needle):
    assert code == 2, err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert needle in err, err
    assert sandbox.calls("ssh") == [], "refused values must be refused before any host is contacted"


# --------------------------------------------------------------------------- (a) refused


REFUSED = (
    [
        ("--root", v)
        for v in [f"~/x{s}" for s in PAYLOADS]
        + ["~/a b", "~/x\nExecStartPre=/bin/touch MARK", "", "relative/dir", "~/x%n", "~/x\\y", "/x y"]
    ]
    + [
        ("--service", v)
        for v in [f"x{s}" for s in PAYLOADS]
        + ["../../../evil", "", "a/b", "-x", "a..b", "x y", "x.service\n"]
    ]
    + [("--python", v) for v in [f"python3{s}" for s in PAYLOADS] + ["python3 -I", "-c", ""]]
    + [
        ("--systemctl", v)
        for v in [f"systemctl{s}" for s in PAYLOADS]
        + ["systemctl $(touch MARK)", "-x systemctl", "", "sudo\tsystemctl"]
    ]
    + [
        ("--listen-args", v)
        for v in [
            "--file 'a\nEOF\ntouch MARK\nEOF\n'",
            "--file 'unbalanced",
            '--x "$(touch MARK)\n"',
            "--file 'a\x1b[2Jb'",
        ]
    ]
    + [
        ("--host", v)
        for v in [
            "-oProxyCommand=touch MARK",
            "-oProxyCommand=sh${IFS}-c${IFS}touch${IFS}MARK",
            "pi@-oProxyCommand=/usr/bin/touch",
            "-oProxyCommand=x@board",
            "board$(id)",
            "board;id",
            "board`id`",
            "pi@-F/dev/null",
            *[f"board{s}" for s in PAYLOADS],
            "pi@board\n",
            "board:0",
            "board:99999",
            "pi@",
            "@board",
        ]
    ]
    + [
        ("--ssh-option", v)
        for v in ["ProxyCommand=x\nProxyCommand=touch MARK", "-oProxyCommand=x", "=x", "Port"]
    ]
)


@pytest.mark.parametrize("option,value", REFUSED, ids=[f"{o}={v!r}" for o, v in REFUSED])
def test_refused_option_values(option, value, sandbox, bundles, wheel, capsys):
    value = value.replace("MARK", str(sandbox.mark))
    code, out, err = run(capsys, *base_args(bundles / "int8", wheel, option, value))
    assert_refused_before_contact(sandbox, code, err, option)
    if option not in ("--host", "--ssh-option"):  # the checks come first: --status and --rollback too
        for mode in ("--status", "--rollback"):
            code, out, err = run(capsys, *base_args(None, wheel, mode, option, value))
            assert_refused_before_contact(sandbox, code, err, option)


@pytest.mark.parametrize("name", ["key%d", "key${HOME}", "key$(touch MARK)", "key\nEOF"])
def test_refused_identity(name, sandbox, bundles, wheel, tmp_path, capsys):
    key = tmp_path / name.replace("MARK", IN_NAME)
    key.write_text("not a key\n")
    code, out, err = run(capsys, *base_args(bundles / "int8", wheel, "--identity", key))
    assert_refused_before_contact(sandbox, code, err, "--identity")


@pytest.mark.parametrize(
    "name",
    [
        "edge_sed-1.0$(touch MARK)-py3-none-any.whl",
        "edge_sed-1.0`touch MARK`-py3-none-any.whl",
        "edge_sed-1.0-py3-none-any.whl;touch MARK",
        "edge_sed-1.0 x-py3-none-any.whl",
        "edge_sed-1.0-py3-none-any.whl\nEOF",
        "other-1.0-py3-none-any.whl",
        "edge_sed-1.0.whl",
    ],
)
def test_refused_wheel_name(name, sandbox, bundles, wheel, tmp_path, capsys):
    bad = tmp_path / name.replace("MARK", IN_NAME)
    shutil.copy(wheel, bad)
    code, out, err = run(capsys, *base_args(bundles / "int8", bad, "--dry-run"))
    assert_refused_before_contact(sandbox, code, err, "wheel")


@pytest.mark.parametrize(
    "checked_on",
    [
        ["x86_64", "aarch64 $(touch MARK)"],
        ["x86_64`touch MARK`"],
        ["x86_64;touch MARK"],
        ["x86_64\nEOF\ntouch MARK\nEOF"],
        ["x86_64", "aarch64'"],
        "x86_64",
        [],
        [1],
        [""],
    ],
    ids=repr,
)
@pytest.mark.parametrize("via", ["--host", "--inventory"])
def test_refused_checked_on(checked_on, via, sandbox, bundles, wheel, tmp_path, capsys):
    """The issue's bundle: it passed `edge-sed verify` and ran `touch` on the board, even with --dry-run."""
    checked_on = json.loads(json.dumps(checked_on).replace("MARK", str(sandbox.mark)))
    b = edited_bundle(bundles, tmp_path / "int8", checked_on=checked_on)
    args = base_args(b, wheel, "--dry-run")
    if via == "--inventory":
        if not (
            shutil.which("ansible-playbook") or (Path(sys.executable).parent / "ansible-playbook").exists()
        ):
            pytest.skip("ansible-core is not installed")
        inv = tmp_path / "hosts.ini"
        inv.write_text("[boards]\nboard ansible_connection=local\n")
        args = ["deploy", b, "--inventory", inv, "--wheel", wheel, "--scope", "user", "--dry-run"]
    code, out, err = run(capsys, *args)
    assert_refused_before_contact(sandbox, code, err, "checked_on")


# ------------------------------------------------------------------- (b) carried exactly

MANIFEST_NAME = "n$(touch MARK) `touch MARK`;|&'\"<>*?"
LISTEN = (
    "--file '/tmp/a b $(touch MARK).wav' --tag \"`touch MARK`\" --x ';' '|' '&' \"it's\" EOF "
    "'100%' '%n' '$HOME' '${HOME}' 'a\\b' '\"q\"' '' 'ü' --threshold=0.5"
)
# ExecStart words as systemd must read them, written by hand (not by edge_sed's quoting)
LISTEN_SYSTEMD = (
    '--file "/tmp/a b $$(touch MARK).wav" --tag "`touch MARK`" --x ";" "|" "&" "it\'s" EOF '
    '"100%%" "%%n" "$$HOME" "$${HOME}" "a\\\\b" "\\"q\\"" "" "ü" --threshold=0.5'
)
SERVICE = "edge-sed@inj.x_1"
SYSTEMCTL = "env -u NO_SUCH_VAR systemctl"


def expected_unit(root: str) -> str:
    """The unit edge_sed.deploy.steps.unit_text must write, spelled out here on purpose (a test that
    derived it from unit_text could not catch a wrong one)."""
    return f"""[Unit]
Description=edge-sed listen: rare sound event detection (managed by edge-sed deploy)
After=sound.target network.target

[Service]
Type=simple
WorkingDirectory={root}
ExecStart={root}/runtime/bin/edge-sed listen --bundle current --log logs/events.jsonl {LISTEN_SYSTEMD}
Restart=on-failure
RestartSec=5
Environment=PYTHONUNBUFFERED=1

[Install]
WantedBy=default.target
"""


def systemd_env(arg: str) -> str:
    """systemd's substitution when it runs ExecStart: $$ -> $, ${NAME} and a whole-word $NAME ->
    the variable (here <env>, which no intended word holds)."""
    if re.fullmatch(r"\$[A-Za-z_][A-Za-z0-9_]*", arg):
        return "<env>"
    return re.sub(r"\$\$|\$\{[^}]*\}", lambda m: "$" if m.group() == "$$" else "<env>", arg)


def systemd_argv(unit: Path) -> list[str] | None:
    """ExecStart as systemd parses it (systemd-analyze verify's debug dump of the unit on stdout,
    a line of shell-quoted words), or None without systemd-analyze."""
    if not shutil.which("systemd-analyze"):
        return None
    proc = subprocess.run(
        ["systemd-analyze", "verify", str(unit)],
        capture_output=True,
        text=True,
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "debug"},
    )
    complaints = [l for l in proc.stderr.splitlines() if l.startswith(f"{unit}:")]
    assert proc.returncode == 0 and not complaints, complaints or proc.stderr[-2000:]
    lines = [l.split("Command Line: ", 1)[1] for l in proc.stdout.splitlines() if "Command Line: " in l]
    assert len(lines) == 1, lines
    words = subprocess.run(
        ["sh", "-c", 'eval "set -- $1" && printf "%s\\0" "$@"', "sh", lines[0]],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")[:-1]
    return [systemd_env(w) for w in words]


def check_unit(sandbox, root: Path) -> None:
    unit = sandbox.home / ".config/systemd/user" / f"{SERVICE}.service"
    mark = str(sandbox.mark)
    assert unit.read_text() == expected_unit(str(root)).replace("MARK", mark)
    argv = systemd_argv(unit)
    if argv is not None:
        intended = [
            f"{root}/runtime/bin/edge-sed",
            "listen",
            "--bundle",
            "current",
            "--log",
            "logs/events.jsonl",
            *shlex.split(LISTEN.replace("MARK", mark)),
        ]
        assert argv == intended


def sent_scripts(sandbox) -> list[str]:
    """The scripts the fake ssh received, after checking how ssh was called."""
    scripts = []
    for argv in sandbox.calls("ssh"):
        dash = argv.index("--")
        assert argv[dash + 1] == "pi@board-1.local" and len(argv) == dash + 3, argv
        assert argv[argv.index("-p") + 1] == "2222"
        words = shlex.split(argv[-1])
        assert words[:2] == ["sh", "-c"] and len(words) == 3
        scripts.append(words[2])
    return scripts


def assert_sh_n(script: str) -> None:
    proc = subprocess.run(["sh", "-n"], input=script, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_deploy_status_rollback_carry_metacharacters_exactly(sandbox, bundles, wheel, tmp_path, capsys):
    mark = str(sandbox.mark)
    name = MANIFEST_NAME.replace("MARK", mark)
    where = tmp_path / "b $(touch MARK) `touch MARK`;|&'\"\nEOF".replace("MARK", IN_NAME)
    where.mkdir()
    int8 = edited_bundle(bundles, where / "int8", name=name)
    fp32 = edited_bundle(bundles, where / "fp32", name=name)
    key = tmp_path / "key ;&|'\"`()<>*?"  # no $ or %: ssh would expand them (refused above)
    key.write_text("not a key\n")
    ssh_option = f"SetEnv=X=$(touch {mark}) `touch {mark}`;|&'\""
    common = [
        "--root",
        "~/inj-root",
        "--service",
        SERVICE,
        "--systemctl",
        SYSTEMCTL,
        "--identity",
        key,
        "--ssh-option",
        ssh_option,
        "--listen-args",
        LISTEN.replace("MARK", mark),
    ]

    code, out, err = run(capsys, *base_args(int8, wheel, *common, "--dry-run"))
    assert code == 0, err
    assert "ExecStart=" in out and not (sandbox.home / "inj-root").exists(), "a dry run changes nothing"
    code, out, err = run(capsys, *base_args(int8, wheel, *common))
    assert code == 0, err
    code, out, err = run(capsys, *base_args(fp32, wheel, *common))
    assert code == 0, err
    code, out, err = run(capsys, *base_args(None, wheel, "--status", *common))
    assert code == 0, err
    assert "service active" in out and "bundle:   bundles/" in out
    code, out, err = run(capsys, *base_args(None, wheel, "--rollback", *common))
    assert code == 0, err

    root = sandbox.home / "inj-root"
    ids = [
        re.sub(r"[^A-Za-z0-9._-]", "_", name)
        + "-"
        + json.loads((b / "manifest.json").read_text())["sha256"][:12]
        for b in (int8, fp32)
    ]
    assert (
        os.readlink(root / "current") == f"bundles/{ids[0]}"
        and os.readlink(root / "previous") == f"bundles/{ids[1]}"
    )
    check_unit(sandbox, root)

    scripts = sent_scripts(sandbox)
    assert len(scripts) == 1 + 3 + 3 + 1 + 1  # dry run, two deploys, status, rollback
    for script in scripts:
        assert_sh_n(script)
    for argv in sandbox.calls("ssh"):
        assert argv[argv.index("-i") + 1] == str(key) and ssh_option in argv
    runtime = sandbox.calls("runtime")
    pip = [c for c in runtime if c[0].endswith("/bin/python")]
    assert len(pip) == 1 and pip[0][1:5] == ["-m", "pip", "install", "--disable-pip-version-check"]
    assert pip[0][-1].endswith("/wheel/edge_sed-0.1.0-py3-none-any.whl")
    verify = [c[1:] for c in runtime if c[0].endswith("/bin/edge-sed")]
    assert [v[0] for v in verify] == ["verify", "verify"] and all(v[1].endswith("/bundle") for v in verify)
    systemctl = sandbox.calls("systemctl")
    assert ["--user", "restart", SERVICE] in systemctl and ["--user", "daemon-reload"] in systemctl
    assert all(SERVICE in c or c == ["--user", "daemon-reload"] for c in systemctl), systemctl


def test_playbook_scripts_carry_metacharacters_exactly(sandbox, bundles, wheel, tmp_path, capsys):
    """The playbook's preflight/stage/switch scripts, run as its tasks would run them."""
    if not (shutil.which("ansible-playbook") or (Path(sys.executable).parent / "ansible-playbook").exists()):
        pytest.skip("ansible-core is not installed")
    mark = str(sandbox.mark)
    inv = tmp_path / "hosts.ini"
    inv.write_text("[boards]\nboard ansible_connection=local\n")
    b = edited_bundle(bundles, tmp_path / "int8", name=MANIFEST_NAME.replace("MARK", mark))
    code, out, err = run(
        capsys,
        "deploy",
        b,
        "--inventory",
        inv,
        "--wheel",
        wheel,
        "--dry-run",
        "--scope",
        "user",
        "--root",
        "~/inj-root",
        "--service",
        SERVICE,
        "--systemctl",
        SYSTEMCTL,
        "--settle",
        "0",
        "--listen-args",
        LISTEN.replace("MARK", mark),
    )
    assert code == 0, err
    playbook = Path(re.search(r"^playbook: (\S+) \(syntax ok", out, re.M).group(1))
    try:
        tasks = json.loads(playbook.read_text())[0]["tasks"]
        upload = tasks[2]["ansible.builtin.copy"]["dest"].rsplit("}}", 1)[1].lstrip("/")
        env = sandbox.env()
        root = None  # set from preflight.sh's output, which runs before stage.sh needs it
        for name in ("preflight.sh", "stage.sh", "switch.sh"):
            script = playbook.parent / name
            assert_sh_n(script.read_text())
            if name == "stage.sh":  # the playbook's file and copy tasks
                (root / ".staging").mkdir(parents=True, exist_ok=True)
                shutil.copy(playbook.parent / "upload.tar", root / upload)
            proc = subprocess.run(
                ["/bin/sh", str(script)], cwd=sandbox.home, env=env, capture_output=True, text=True
            )
            assert proc.returncode == 0, proc.stdout + proc.stderr
            if name == "preflight.sh":
                root = Path(re.search(r"^root_abs=(.*)$", proc.stdout, re.M).group(1))
                assert root == sandbox.home / "inj-root"
    finally:
        shutil.rmtree(playbook.parent.parent, ignore_errors=True)
    assert not (root / upload).exists(), "stage removes the upload"
    assert os.readlink(root / "current").startswith("bundles/n_")
    check_unit(sandbox, root)


@pytest.mark.parametrize(
    "fields",
    [
        {"name": "n\nEOF\n$(touch MARK)\nEOF"},
        {"labels": ["dog$(touch MARK)", "baby_cry`touch MARK`", "gunshot;|&'\"", "background\nEOF"]},
        {"level_note": "x\nEOF $(touch MARK)"},
    ],
)
def test_other_manifest_strings_are_refused_or_carried(fields, sandbox, bundles, wheel, tmp_path, capsys):
    """Manifest strings no script needs: `verify` may refuse them (one line, nothing sent), or
    the deploy carries them as data; never does one run."""
    fields = json.loads(json.dumps(fields).replace("MARK", str(sandbox.mark)))
    b = edited_bundle(bundles, tmp_path / "int8", **fields)
    code, out, err = run(capsys, *base_args(b, wheel, "--root", "~/r"))
    if code != 0:
        assert_refused_before_contact(sandbox, code, err, "")
    else:
        for script in sent_scripts(sandbox):
            assert_sh_n(script)
        assert (sandbox.home / "r" / "current").is_symlink()
