"""Device profiles: one JSON file per device in firmware_sim/profiles/, every number with its source.

Schema (all kinds):
    name               str   file stem, e.g. "cortex-m4-80mhz"
    kind               str   "mcu" (this package's MCU simulator) or "pi" (firmware_sim.pi)
    description        str   what real board/chip the profile stands for
    clock_hz           int   core clock
    ram_bytes          int   RAM the application may use
    flash_bytes        int   program storage (MCU: on-chip flash; Pi: may be 0 = not a limit)
    sample_rate        int   Hz of the audio the DMA delivers
    dma_block_samples  int   samples per DMA block (the device clock's audio tick)
    sources            dict  field name -> where the number comes from (datasheet section, or
                             "assumption: ..." / "design choice: ..."); every numeric field
                             of the profile must have one
kind "mcu" adds:
    core               str   "cortex-m4" | "cortex-m7" | "cortex-m33"
    kernel_build       str   which QEMU-counted kernel build gives the instruction counts
                             (firmware_sim/c/counts.json: "cortex-m4" | "cortex-m7" | "cortex-m33")
    cpi                float cycles per instruction assumed for this core (cycles = insns * cpi)
    code_flash_bytes   int   flash allowance for code (runtime, kernels, front end, HAL)
    reserved_ram_bytes int   RAM allowance for stack and globals
Other kinds may add fields; the loader keeps them all in ``DeviceProfile.data``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from edge_sed.core.errors import EdgeSedError

PROFILE_DIR = Path(__file__).parent / "profiles"
KINDS = ("mcu", "pi")
COMMON = {
    "name": str,
    "kind": str,
    "description": str,
    "clock_hz": int,
    "ram_bytes": int,
    "flash_bytes": int,
    "sample_rate": int,
    "dma_block_samples": int,
    "sources": dict,
}
MCU = {
    "core": str,
    "kernel_build": str,
    "cpi": (int, float),
    "code_flash_bytes": int,
    "reserved_ram_bytes": int,
}


class ProfileError(EdgeSedError):
    """A device profile that is missing, unknown or malformed."""


@dataclass(frozen=True)
class DeviceProfile:
    data: dict

    def __getattr__(self, name):
        try:
            return self.data[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def block_s(self) -> float:
        """Seconds of audio per DMA block: the device clock's deadline for each block's work."""
        return self.dma_block_samples / self.sample_rate

    def with_changes(self, **changes) -> "DeviceProfile":
        """A copy with some numbers replaced (e.g. a slower clock in a what-if or a test)."""
        data = dict(self.data, **changes)
        data["sources"] = dict(self.data["sources"], **{k: "changed by the caller" for k in changes})
        return DeviceProfile(data)

    def check_runs(self, bundle, kind: str) -> None:
        """A one-line error unless this is a ``kind`` ("mcu", "pi") profile whose audio rate is the
        bundle front end's."""
        if self.kind != kind:
            what = "an MCU" if kind == "mcu" else "a Pi"
            raise EdgeSedError(f"profile {self.name} is a {self.kind} profile, not {what}")
        if self.sample_rate != bundle.frontend.sample_rate:
            raise EdgeSedError(
                f"profile {self.name} delivers {self.sample_rate} Hz audio, the bundle's "
                f"front end wants {bundle.frontend.sample_rate} Hz"
            )


def validate_profile(d, where: str) -> DeviceProfile:
    if not isinstance(d, dict):
        raise ProfileError(f"{where}: not a JSON object")
    kind = d.get("kind")
    if kind not in KINDS:
        raise ProfileError(f"{where}: 'kind' must be one of {', '.join(KINDS)}, got {kind!r}")
    fields = dict(COMMON, **MCU) if kind == "mcu" else COMMON
    for name, typ in fields.items():
        if name not in d:
            raise ProfileError(f"{where}: required field '{name}' is missing")
        if not isinstance(d[name], typ) or isinstance(d[name], bool):
            raise ProfileError(f"{where}: field '{name}' has the wrong type ({type(d[name]).__name__})")
    for name, value in d.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if value < 0 or (
                name in ("clock_hz", "ram_bytes", "sample_rate", "dma_block_samples", "cpi") and value <= 0
            ):
                raise ProfileError(f"{where}: field '{name}' must be positive, got {value}")
            if not str(d["sources"].get(name, "")).strip():
                raise ProfileError(f"{where}: number '{name}' has no entry in 'sources'")
    return DeviceProfile(d)


def profile_names() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.json"))


def load_profile(name_or_path: str) -> DeviceProfile:
    """A profile by name (firmware_sim/profiles/NAME.json) or by path to a JSON file."""
    path = Path(name_or_path)
    if not (path.suffix == ".json" and path.is_file()):
        path = PROFILE_DIR / f"{name_or_path}.json"
        if not path.is_file():
            raise ProfileError(
                f"unknown device profile {name_or_path!r} (known: {', '.join(profile_names())}; "
                "or give a path to a profile .json)"
            )
    try:
        d = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{path}: not valid JSON ({exc})") from None
    profile = validate_profile(d, str(path))
    if path.parent == PROFILE_DIR and profile.name != path.stem:
        raise ProfileError(f"{path}: name {profile.name!r} differs from the file name")
    return profile


def load_profiles(spec: str) -> list[DeviceProfile]:
    """ "all", "mcu"/"pi" (every profile of that kind), or a comma-separated list of names/paths."""
    if spec in ("all",) + KINDS:
        profiles = [load_profile(n) for n in profile_names()]
        return [p for p in profiles if spec == "all" or p.kind == spec]
    return [load_profile(s.strip()) for s in spec.split(",") if s.strip()]
