"""The TFLite runtime on the host and on a Pi.

Prefers ``ai_edge_litert`` (Google's renamed tflite-runtime, which works with numpy 2) and falls
back to the old ``tflite_runtime`` package, which is what older Raspberry Pi OS images have.
TensorFlow's own interpreter is deliberately not a fallback: a device never installs TensorFlow.
"""

from __future__ import annotations

import importlib
import os

from edge_sed.core.errors import EdgeSedError

RUNTIME_MODULES = ("ai_edge_litert.interpreter", "tflite_runtime.interpreter")


def interpreter_class():
    """The Interpreter class of the first runtime that imports, and its module's name."""
    problems = []
    for name in RUNTIME_MODULES:
        try:
            return importlib.import_module(name).Interpreter, name
        except ImportError as exc:
            problems.append(f"{name}: {exc}")
    raise EdgeSedError(
        "no TFLite runtime: pip install ai-edge-litert (or tflite-runtime on older Pi images); "
        + "; ".join(problems)
    )


def load_interpreter(model: str | os.PathLike | bytes, num_threads: int = 1):
    """An allocated Interpreter for a .tflite path or its bytes. ``num_threads=1`` by default
    because that is what the latency figures of a device profile assume."""
    cls, _ = interpreter_class()
    kwargs = {"num_threads": num_threads}
    if isinstance(model, (bytes, bytearray)):
        kwargs["model_content"] = bytes(model)
    else:
        kwargs["model_path"] = os.fspath(model)
    try:
        interpreter = cls(**kwargs)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EdgeSedError(f"the TFLite runtime refused the model: {first}") from None
    return interpreter
