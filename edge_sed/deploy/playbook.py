"""The order of the deploy steps over a fleet: ``edge-sed deploy --host ...`` runs it here over
SSH, ``edge-sed deploy --inventory hosts.ini`` has Ansible run it.

Over SSH: several hosts run steps 1-2 (preflight, stage) in parallel and step 3 (switch) only on
hosts whose steps 1-2 passed (with ``all_or_nothing``: only if every host passed).

With an inventory we generate a playbook and run ``ansible-playbook`` (ansible-core, the ``deploy``
extra) rather than growing a fleet engine of our own: inventories, groups, host vars, SSH
multiplexing, forks, retries and reporting are Ansible's job. The playbook runs the very shell
steps of edge_sed.deploy.steps (preflight, stage, switch) as ``script`` tasks, so both paths
behave alike:

- ``serial: N`` rolls through the fleet N hosts at a time;
- ``any_errors_fatal: true`` + ``max_fail_percentage: 0``: a failure on any host of a batch ends
  the play for every host before the next task, and no later batch starts. Since every check
  (preflight, sha256 on the target, runtime install, the target's own ``edge-sed verify``) comes
  before the switch task, a failing host never leaves another host of its batch half-updated:
  they are staged, not switched.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from edge_sed.core.errors import EdgeSedError, install_extra
from edge_sed.deploy.options import Options, Target
from edge_sed.deploy.steps import (
    HostResult,
    check_syntax,
    host_scripts,
    prepare,
    stage_host,
    switch_host,
    switch_script,
)

# ------------------------------------------------------------------------- over SSH


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


# -------------------------------------------------------------------------- Ansible


TASKS = ("preflight", "staging directory", "upload", "stage", "switch")


def write_playbook(out_dir: Path, opts: Options, art, batch: int = 1) -> Path:
    """Write playbook.yml, the three scripts and upload.tar into ``out_dir``; returns the
    playbook's path. The playbook is JSON, which is YAML too (no YAML writer needed). The
    scripts are edge_sed.deploy.steps's (every outside value a quoted variable) and pass ``sh -n``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    upload = f".staging/upload-{art.bundle_id}.tar"  # under ROOT, as the target's shell resolves it
    scripts = host_scripts(opts, art, upload=upload)
    check_syntax(scripts)
    for name, text in scripts.items():
        (out_dir / name).write_text("#!/bin/sh\n" + text)
    (out_dir / "upload.tar").write_bytes(art.tar)

    def script(name, title, changed=True, register=None):
        task = {
            "name": title,
            "ansible.builtin.script": {"cmd": str(out_dir / name), "executable": "/bin/sh"},
            "changed_when": changed,
        }
        return {**task, "register": register} if register else task

    # ROOT as the target's shell sees it (Ansible's own ~ is the passwd home, which may differ)
    root = (
        "{{ preflight.stdout_lines | select('match', '^root_abs=') | first "
        "| regex_replace('^root_abs=', '') }}"
    )

    play = {
        "name": f"edge-sed deploy {art.bundle_id} (runtime {art.runtime_id})",
        "hosts": "all",
        "gather_facts": False,
        "serial": batch,
        "max_fail_percentage": 0,
        "any_errors_fatal": True,
        "tasks": [
            script(
                "preflight.sh",
                "preflight: OS, architecture, Python >= 3.9, disk, audio, permission",
                False,
                register="preflight",
            ),
            {
                "name": "staging directory",
                "ansible.builtin.file": {"path": root + "/.staging", "state": "directory"},
            },
            {
                "name": f"upload bundle {art.bundle_id} and the edge-sed wheel",
                "ansible.builtin.copy": {"src": str(out_dir / "upload.tar"), "dest": root + "/" + upload},
            },
            script("stage.sh", "stage: sha256 on the target, runtime venv, edge-sed verify on the target"),
            script("switch.sh", f"switch current and restart {opts.service}"),
        ],
    }
    path = out_dir / "playbook.yml"
    path.write_text(json.dumps([play], indent=2) + "\n")
    return path


def ansible_playbook() -> str:
    exe = shutil.which("ansible-playbook") or str(Path(sys.executable).parent / "ansible-playbook")
    if not os.access(exe, os.X_OK):
        raise EdgeSedError(f"ansible-playbook not found (ansible-core): {install_extra('deploy')}")
    return exe


def _ansible_env() -> dict:
    env = dict(
        os.environ,
        ANSIBLE_RETRY_FILES_ENABLED="0",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_PYTHON_INTERPRETER="auto_silent",
        ANSIBLE_DEPRECATION_WARNINGS="0",
    )
    env.setdefault("ANSIBLE_LOCAL_TEMP", tempfile.gettempdir() + "/edge-sed-ansible")
    return env


def syntax_check(playbook: Path, inventory) -> str:
    proc = subprocess.run(
        [ansible_playbook(), "--syntax-check", "-i", str(inventory), str(playbook)],
        capture_output=True,
        text=True,
        env=_ansible_env(),
    )
    if proc.returncode != 0:
        raise EdgeSedError(
            f"the generated playbook fails ansible-playbook --syntax-check: "
            f"{(proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1]}"
        )
    return proc.stdout


def parse_run(output: str) -> list[HostResult]:
    """Per-host results from ansible-playbook's default output: the PLAY RECAP line of each host
    and, for a failed one, its REFUSED reason (or Ansible's message)."""
    reasons = {}
    for m in re.finditer(r"^fatal: \[([^\]]+)\]: (FAILED|UNREACHABLE)! => (\{.*\})\s*$", output, re.M):
        host, kind, body = m.groups()
        try:
            data = json.loads(body)
        except json.JSONDecodeError:
            data = {"msg": body}
        text = str(data.get("stdout", "")) + "\n" + str(data.get("msg", ""))
        refused = re.search(r"REFUSED: ([^\r\n]+)", text)
        reasons.setdefault(
            host,
            refused.group(1)
            if refused
            else ("unreachable: " if kind == "UNREACHABLE" else "")
            + str(data.get("msg", kind)).splitlines()[0][:300],
        )
    results = []
    for m in re.finditer(
        r"^(\S+)\s+:\s+ok=(\d+)\s+changed=\d+\s+unreachable=(\d+)\s+failed=(\d+)", output, re.M
    ):
        host, ok, unreachable, failed = m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4))
        r = HostResult(Target(host))
        if failed or unreachable:
            r.status, r.reason = "failed", reasons.get(host, "failed (see the ansible output above)")
        elif ok >= len(TASKS):
            r.status = "ok"
        else:
            r.status, r.reason = (
                "stopped",
                f"not switched: the play stopped after {ok} of {len(TASKS)} tasks "
                "(another host of its batch failed)",
            )
        results.append(r)
    return results


def run_playbook(
    inventory,
    bundle,
    opts: Options,
    wheel=None,
    batch: int = 1,
    dry_run: bool = False,
    log=None,
    keep_dir: str | None = None,
) -> list[HostResult]:
    """Verify the bundle and build the wheel here, write the playbook, syntax-check it, then (not
    with ``dry_run``) run it. One HostResult per host of the recap; hosts of batches that never
    started are listed as 'not started'."""
    log = log or (lambda m: None)
    exe = ansible_playbook()
    work = Path(keep_dir) if keep_dir else Path(tempfile.mkdtemp(prefix="edge-sed-playbook-"))
    keep = bool(keep_dir)
    try:
        art = prepare(bundle, work, wheel)
        playbook = write_playbook(work / "playbook", opts, art, batch)
        syntax_check(playbook, inventory)
        hosts = list_hosts(playbook, inventory)
        if dry_run:  # keep the playbook for inspection
            keep = True
            log(
                f"playbook: {playbook} (syntax ok: playbook and its sh scripts; "
                f"{len(hosts)} host(s): {', '.join(hosts)}; batches of {batch})"
            )
            return [HostResult(Target(h), status="dry-run") for h in hosts]
        return _run(exe, playbook, inventory, hosts, batch, log)
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def _run(exe, playbook: Path, inventory, hosts: list[str], batch: int, log) -> list[HostResult]:
    log(f"running {playbook} on {len(hosts)} host(s) in batches of {batch}")
    proc = subprocess.Popen(
        [exe, "-i", str(inventory), str(playbook)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_ansible_env(),
    )
    lines = []
    for line in proc.stdout:
        lines.append(line)
        log(line.rstrip("\n"))
    proc.wait()
    results = parse_run("".join(lines))
    seen = {str(r.target) for r in results}
    results += [
        HostResult(Target(h), status="not started", reason="an earlier batch failed")
        for h in hosts
        if h not in seen
    ]
    if proc.returncode != 0 and not any(r.status == "failed" for r in results):
        raise EdgeSedError(f"ansible-playbook failed (exit {proc.returncode}); see its output above")
    return results


def list_hosts(playbook: Path, inventory) -> list[str]:
    proc = subprocess.run(
        [ansible_playbook(), "--list-hosts", "-i", str(inventory), str(playbook)],
        capture_output=True,
        text=True,
        env=_ansible_env(),
    )
    if proc.returncode != 0:
        raise EdgeSedError(
            f"ansible-playbook --list-hosts failed: {(proc.stderr.strip() or 'no output').splitlines()[-1]}"
        )
    hosts = []
    for line in proc.stdout.splitlines():
        s = line.strip()
        if s and not s.startswith(("playbook:", "play #", "pattern:", "hosts (")) and " " not in s:
            hosts.append(s)
    return list(dict.fromkeys(hosts))
