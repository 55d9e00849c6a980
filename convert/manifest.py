"""The parts of a bundle's manifest that both converters (convert.bundles for the windowed and
streaming forms, convert.stateful for the stateful one) write alike: the model's description and
tensors, the runtime's name, and the check file with its manifest entry."""

from __future__ import annotations

import hashlib
import io

import numpy as np

from edge_sed.core.bundle import CHECK_FILE, FORMAT_VERSION
from edge_sed.core.errors import ConvertError
from edge_sed.core.tflite_info import TFLiteInfo, read_tflite_info


def io_spec(info: TFLiteInfo, roles: dict[str, str]) -> tuple[list, list]:
    """Manifest inputs/outputs in the model's order, each tensor's role from the signature."""
    by_index = {}
    for sig in (info.signature_inputs, info.signature_outputs):
        for name, index in sig.items():
            if name in roles:
                by_index[index] = roles[name]

    def spec(t):
        if t.index not in by_index:
            raise ConvertError(
                f"tensor {t.name} has no role in the model's signature {info.signature_inputs}, "
                f"{info.signature_outputs}"
            )
        q = t.quantization if t.dtype != "float32" else None
        return {
            "role": by_index[t.index],
            "name": t.name,
            "index": t.index,
            "dtype": t.dtype,
            "shape": t.shape,
            "quantization": q,
        }

    return [spec(t) for t in info.inputs], [spec(t) for t in info.outputs]


def by_role(specs: list[dict], role: str) -> dict:
    """The manifest input or output (``io_spec``'s) of that role."""
    return specs[[d["role"] for d in specs].index(role)]


def model_manifest(
    model_bytes: bytes,
    roles: dict[str, str],
    *,
    name: str,
    labels: list[str],
    sample_rate: int,
    frontend: dict,
    window_frames: int,
    hop_frames: int,
    form: str,
    level: str,
    lstm: str | None,
    provenance: dict,
) -> tuple[dict, TFLiteInfo]:
    """(manifest, the model's TFLiteInfo): the manifest's first keys, in the order every bundle
    has them; ``roles`` names each signature tensor's role (``io_spec``)."""
    info = read_tflite_info(model_bytes)
    inputs, outputs = io_spec(info, roles)
    manifest = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "labels": labels,
        "sample_rate": sample_rate,
        "frontend": frontend,
        "window_frames": window_frames,
        "hop_frames": hop_frames,
        "form": form,
        "level": level,
        "lstm": lstm,
        "inputs": inputs,
        "outputs": outputs,
        "sha256": hashlib.sha256(model_bytes).hexdigest(),
        "model_bytes": len(model_bytes),
        "ops": info.op_counts(),
        "provenance": provenance,
    }
    return manifest, info


def state_size(inputs: list[dict]) -> int:
    """The LSTM state's width: the last dimension of the input ``h``."""
    return int(by_role(inputs, "h")["shape"][-1])


def check_entry(arrays: dict[str, np.ndarray], count_key: str, note: str) -> tuple[bytes, dict]:
    """(check.npz's bytes, its manifest entry) for ``arrays``, of which ``x`` holds the inputs
    (their number goes under ``count_key``)."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    data = buf.getvalue()
    entry = {
        "file": CHECK_FILE,
        "sha256": hashlib.sha256(data).hexdigest(),
        count_key: int(len(arrays["x"])),
        "note": note,
    }
    return data, entry


def runtime_name() -> str:
    """The host's LiteRT (or TensorFlow Lite) module and its version, for the manifest's accuracy."""
    from edge_sed.core.runtime import interpreter_class

    _, module = interpreter_class()
    top = module.split(".")[0]
    try:
        from importlib.metadata import version

        return f"{top} {version(top.replace('_', '-'))}"
    except Exception:
        return top
