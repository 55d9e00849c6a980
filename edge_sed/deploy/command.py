"""``edge-sed deploy``: deploy, --rollback or --status to --host(s), or a deploy through Ansible
with --inventory; the per-host report (a table or JSON)."""

from __future__ import annotations

import json

from edge_sed.core.errors import EdgeSedError
from edge_sed.deploy.options import Options, Target, parse_target
from edge_sed.deploy.playbook import deploy, rollback, run_playbook
from edge_sed.deploy.ssh import DeployError
from edge_sed.deploy.steps import HostResult, status


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
        return _status(targets, opts, lines, as_json, say)
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


def _status(targets: list[Target], opts: Options, lines: int, as_json: bool, say) -> None:
    """``--status``: one report per target; EdgeSedError (one line) if any target failed."""
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
        raise EdgeSedError(errors[0] if len(errors) == 1 else f"{len(errors)} of {len(targets)} hosts failed")


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
