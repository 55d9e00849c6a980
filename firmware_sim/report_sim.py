"""The device estimates of ``edge-sed report``: every profile x level of a model set through
``firmware_sim.simulate`` on the report's stream, turned into the report's device cells.

The report does not import firmware_sim: the CLI and the demo hand it ``SIMULATOR`` (the
``simulator`` argument of ``edge_sed.report.build.build_report``), which has the two things the
report asks for, ``profiles(spec)`` and ``devices(model_set, wav, spec, out_path, say, pi_levels)``.
"""

from __future__ import annotations

import json
from pathlib import Path

from edge_sed.core.atomic import atomic_path
from edge_sed.core.errors import EdgeSedError, install_extra
from edge_sed.core.settings import PI_LEVELS

DEVICE_POINTERS = {
    # report field: pointer inside a firmware_sim record
    "mcu": {
        "latency_ms": "cost/ms_per_decision",
        "duty_cycle": "clock/duty_cycle",
        "ram_bytes": "memory/ram_total_bytes",
        "flash_bytes": "memory/flash_total_bytes",
        "arena_bytes": "memory/ram/tensor_arena",
        "fits": "memory/fits",
        "f1": "events/f1",
        "latency_median_s": "events/latency_median_s",
        "worst_latency_ms": "clock/decision_latency_worst_ms",
        "overruns": "clock/overruns",
    },
    "pi": {
        "latency_ms": "cost/est_ms_per_inference",
        "duty_cycle": "clock/duty_cycle",
        "model_bytes": "model_bytes",
        "overall_error": "accuracy/overall_error",
        "f1": "events/f1",
        "latency_median_s": "events/latency_median_s",
        "worst_latency_ms": "clock/decision_latency_worst_ms",
        "overruns": "clock/overruns",
    },
}
LATENCY_UNIT = {"mcu": "ms per decision (front end + model + smoother)", "pi": "ms per inference (model)"}


def resolve_profiles(spec: str) -> list:
    """firmware_sim profiles for "all", "mcu", "pi", names, or a comma list of any of these;
    [] when firmware_sim's profiles cannot be loaded (the report then says so)."""
    try:
        from firmware_sim.profiles import load_profiles
    except ImportError:
        return []
    found = {}
    for item in (t.strip() for t in spec.split(",")):
        if item and item != "host":
            found.update((p.name, p) for p in load_profiles(item))
    return list(found.values())


def _not_simulated_reason(profile, stateful: bool, pi_levels) -> str:
    if stateful:
        return (
            "the report emulates windowed and streaming bundles on Pi profiles, "
            "not stateful ones (QEMU takes minutes per level and core): "
            f"edge-sed simulate BUNDLE --profile {profile.name}"
        )
    return (
        f"the report emulates {', '.join(pi_levels)} on Pi profiles "
        "(QEMU takes minutes per level and core): "
        f"edge-sed simulate BUNDLE --profile {profile.name}"
    )


def _profiles_for(name: str, lv: dict, chosen: list, pi_levels, result: dict) -> list[str]:
    """The profiles one level runs on; the others are noted in ``result["not_simulated"]``."""
    stateful = lv["manifest"].get("form") == "stateful"  # not emulated on Pi profiles by the report
    names = [
        p.name for p in chosen if p.kind != "pi" or not stateful and (pi_levels == "all" or name in pi_levels)
    ]
    for p in chosen:
        if p.name not in names:
            result["not_simulated"].append(
                {
                    "profile": p.name,
                    "kind": p.kind,
                    "bundle": lv["path"],
                    "reason": _not_simulated_reason(p, stateful, pi_levels),
                }
            )
    return names


def _simulate_levels(sim, model_set, wav, chosen: list, say, pi_levels) -> dict:
    """firmware_sim's records for every ok level of ``model_set`` (one ``simulate.run`` per level)."""
    result = {"format": None, "stream": None, "calibration": None, "records": [], "not_simulated": []}
    for name, lv in model_set.levels.items():
        if lv["status"] != "ok":
            continue
        names = _profiles_for(name, lv, chosen, pi_levels, result)
        if not names:
            continue
        say(f"simulating {name} on {', '.join(names)}")
        try:
            r = sim.run(lv["path"], ",".join(names), str(wav), log=say)
        except EdgeSedError as exc:  # e.g. the emulated Pi userland cannot be built here
            result["records"] += [
                {
                    "profile": n,
                    "kind": next(p.kind for p in chosen if p.name == n),
                    "bundle": lv["path"],
                    "skipped": f"simulator failed: {exc}",
                }
                for n in names
            ]
            continue
        result.update(format=r["format"], stream=r["stream"], calibration=r["calibration"])
        result["records"] += r["records"]
    return result


def _new_device(profile: str, kind: str, device=None) -> dict:
    return {
        "profile": profile,
        "kind": kind,
        "estimate": True,
        "device": device,
        "latency_unit": LATENCY_UNIT.get(kind),
        "levels": {},
    }


def _device_cell(rec: dict, kind: str, source: str) -> dict:
    """The report's figures of one record, each with the JSON pointer it was read from."""
    cell = {"status": "ok", "estimate": True, "sources": {}}
    for key, pointer in DEVICE_POINTERS.get(kind, {}).items():
        v = rec
        try:
            for part in pointer.split("/"):
                v = v[part]
        except (KeyError, TypeError):
            continue
        cell[key] = v
        cell["sources"][key] = f"{source}/{pointer}"
    return cell


def _devices_from(result: dict, model_set, out_path: Path) -> list[dict]:
    """simulate.json (as written to ``out_path``) as the report's devices, one per profile."""
    devices: dict[str, dict] = {}
    for i, rec in enumerate(result["records"]):
        kind = rec.get("kind", "mcu")
        dev = devices.setdefault(rec["profile"], _new_device(rec["profile"], kind, rec.get("device")))
        name = Path(rec["bundle"]).name
        if "skipped" in rec:
            dev["levels"][name] = {
                "status": "cannot run",
                "reason": rec["skipped"],
                "source": f"{out_path}#/records/{i}/skipped",
            }
            continue
        dev["device"] = rec.get("device") or dev["device"]
        dev["estimate_note"] = rec.get("estimate_note")
        dev["levels"][name] = _device_cell(rec, kind, f"{out_path}#/records/{i}")
    for i, rec in enumerate(result["not_simulated"]):
        dev = devices.setdefault(rec["profile"], _new_device(rec["profile"], rec["kind"]))
        dev["levels"][Path(rec["bundle"]).name] = {
            "status": "not simulated",
            "reason": rec["reason"],
            "source": f"{out_path}#/not_simulated/{i}/reason",
        }
    for name, lv in model_set.levels.items():  # levels convert could not make: say so on every device
        for dev in devices.values():
            if name not in dev["levels"]:
                dev["levels"][name] = {
                    "status": "not built" if lv["status"] != "ok" else "not simulated",
                    "reason": lv["reason"] or "firmware_sim returned no record",
                }
    return list(devices.values())


def simulate_devices(
    model_set, wav, profiles: str, out_path: Path, say, pi_levels=None
) -> tuple[list[dict], str | None]:
    """Every profile x level of ``model_set`` (the report's ModelSet) through firmware_sim
    (``edge-sed simulate``'s Python entry, one level at a time) on the report's stream; the records
    are written to ``out_path`` and every figure the report shows points into it. Pi profiles get
    the levels in ``pi_levels`` (default PI_LEVELS; "all": every one). ([], reason) when there is
    no simulator to ask."""
    try:
        from firmware_sim import simulate as sim
    except ImportError as exc:
        return [], f"no device simulator in this installation (firmware_sim: {exc}); {install_extra('sim')}"
    if wav is None:
        return [], "no labelled stream to simulate on (see the stream notes)"
    result = _simulate_levels(sim, model_set, wav, resolve_profiles(profiles), say, pi_levels or PI_LEVELS)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_path) as tmp:
        tmp.write_text(sim.dumps(result))
    return _devices_from(json.loads(out_path.read_text()), model_set, out_path), None


class ReportSimulator:
    """What ``build_report(simulator=...)`` asks: the profiles a spec names, and the devices."""

    profiles = staticmethod(resolve_profiles)
    devices = staticmethod(simulate_devices)


SIMULATOR = ReportSimulator()
