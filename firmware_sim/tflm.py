"""tflite-micro on the host: the real TFLM kernels through tflite-micro's Python runtime.

- ``find_arena_bytes(model)``: the tensor arena a model needs. The smallest arena with which the
  tflite-micro Python interpreter both allocates and invokes the model, found by binary search to
  16 bytes, plus ``ARENA_MARGIN`` (10 %, at least 256 bytes, rounded up to 16). Measured with the
  x86-64 build of tflite-micro's Python runtime: its bookkeeping structures hold 64-bit pointers,
  so a 32-bit Cortex-M build of the same model needs somewhat less; kernels with target-specific
  scratch buffers (CMSIS-NN) may need a little more, which the margin is for.
- ``MicroBackend``: BundleRunner's backend on the TFLM interpreter (the MCU's scores).
- ``LiteRTReferenceBackend``: LiteRT with its reference kernels, to tell "TFLM rounds
  differently" from "XNNPACK rounds differently".

Used by firmware_sim (the MCU simulator) and by convert (arena size and C array at conversion
time); imports tflite_micro only when a function needs it.
"""

from __future__ import annotations

import math
import os

import numpy as np

from edge_sed.core.errors import EdgeSedError, install_extra
from edge_sed.core.quiet import silenced_fds


ARENA_MARGIN_FRACTION = 0.10
ARENA_MARGIN_MIN_BYTES = 256
ARENA_SEARCH_MAX_BYTES = 16 * 1024**2


def _runtime():
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError as exc:
        raise EdgeSedError(
            f"the MCU simulator runs the model in tflite-micro, which is not installed ({exc}): "
            f"{install_extra('sim')} (tflite-micro has wheels for Linux x86_64 only)"
        ) from None
    return runtime


def _zero_inputs(model_bytes: bytes) -> list[np.ndarray]:
    from edge_sed.core.tflite_info import read_tflite_info

    return [np.zeros(t.shape, t.dtype) for t in read_tflite_info(model_bytes).inputs]


def _try_arena(model_bytes: bytes, arena_bytes: int, inputs) -> bool:
    try:
        interp = _runtime().Interpreter.from_bytes(model_bytes, arena_size=arena_bytes)
        for i, x in enumerate(inputs):
            interp.set_input(x, i)
        interp.invoke()
        return True
    except (RuntimeError, ValueError):
        return False


def _allocates_and_invokes(model_bytes: bytes, arena_bytes: int, inputs) -> bool:
    """One probe of the arena search, in a forked child where the OS allows: with some arena
    sizes tflite-micro's Python runtime crashes (SIGSEGV) instead of reporting a failed
    allocation (seen with a lone FULLY_CONNECTED model), and a crash must count as "does not
    fit", not kill the caller."""
    if not hasattr(os, "fork"):
        return _try_arena(model_bytes, arena_bytes, inputs)
    _runtime()  # import before forking
    pid = os.fork()
    if pid == 0:  # child: report through the exit status only
        ok = False
        try:
            ok = _try_arena(model_bytes, arena_bytes, inputs)
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def find_arena_bytes(model_bytes: bytes) -> dict:
    """{"arena_min_bytes": smallest that works (host), "arena_bytes": with the margin, ...}."""
    inputs = _zero_inputs(model_bytes)
    with silenced_fds():
        hi = max(4096, 4 * len(model_bytes))
        while not _allocates_and_invokes(model_bytes, hi, inputs):
            hi *= 2
            if hi > ARENA_SEARCH_MAX_BYTES:
                raise RuntimeError(
                    f"tflite-micro cannot run the model even with a {ARENA_SEARCH_MAX_BYTES}-byte "
                    "arena (an unsupported operator?)"
                )
        lo = 0  # invariant: lo fails (or is 0), hi works
        while hi - lo > 16:
            mid = (lo + hi) // 2
            if _allocates_and_invokes(model_bytes, mid, inputs):
                hi = mid
            else:
                lo = mid
    margin = max(ARENA_MARGIN_MIN_BYTES, int(math.ceil(hi * ARENA_MARGIN_FRACTION)))
    return {
        "arena_min_bytes": hi,
        "arena_bytes": int(math.ceil((hi + margin) / 16) * 16),
        "margin": f"{ARENA_MARGIN_FRACTION:.0%} (at least {ARENA_MARGIN_MIN_BYTES} bytes), rounded up to 16",
        "measured_with": "tflite-micro Python runtime (x86-64 host build, 64-bit pointers), "
        "binary search to 16 bytes over allocate + invoke (each probe in a forked process)",
    }


class MicroBackend:
    """BundleRunner's backend interface on the tflite-micro interpreter."""

    name = "tflm"

    def __init__(self, model_bytes: bytes, arena_bytes: int):
        from edge_sed.core.tflite_info import read_tflite_info

        with silenced_fds():
            self.interpreter = _runtime().Interpreter.from_bytes(model_bytes, arena_size=arena_bytes)
        self._outputs = [t.shape for t in read_tflite_info(model_bytes).outputs]

    def output_shapes(self) -> list[list[int]]:
        return self._outputs

    def set_input(self, position: int, value: np.ndarray) -> None:
        self.interpreter.set_input(np.ascontiguousarray(value), position)

    def invoke(self) -> None:
        self.interpreter.invoke()

    def get_output(self, position: int) -> np.ndarray:
        return np.array(self.interpreter.get_output(position))

    def reset(self) -> None:
        self.interpreter.reset()


class LiteRTReferenceBackend:
    """LiteRT with its reference kernels and no XNNPACK delegate: separates "TFLM's kernels
    round differently" from "XNNPACK rounds differently" when TFLM and LiteRT disagree."""

    name = "litert-reference"

    def __init__(self, model_bytes: bytes):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        self.interpreter = Interpreter(
            model_content=model_bytes, experimental_op_resolver_type=OpResolverType.BUILTIN_REF
        )
        self.interpreter.allocate_tensors()
        self._in = [d["index"] for d in self.interpreter.get_input_details()]
        self._out = [d["index"] for d in self.interpreter.get_output_details()]

    def output_shapes(self):
        return [d["shape"].tolist() for d in self.interpreter.get_output_details()]

    def set_input(self, position, value):
        self.interpreter.set_tensor(self._in[position], value)

    def invoke(self):
        self.interpreter.invoke()

    def get_output(self, position):
        return self.interpreter.get_tensor(self._out[position]).copy()

    def reset(self):
        self.interpreter.reset_all_variables()


def compare_outputs(a: np.ndarray, b: np.ndarray, scale: float) -> dict:
    """How far two runtimes' probabilities are apart, in probability and in output steps."""
    diff = np.abs(a - b)
    steps = np.round(diff / scale).astype(int)
    return {
        "windows": int(len(a)),
        "max_abs_prob_diff": float(diff.max()),
        "max_output_steps": int(steps.max()),
        "identical_windows": float(np.mean(steps.max(1) == 0)),
        "argmax_agreement": float(np.mean(a.argmax(1) == b.argmax(1))),
    }


def bundle_backend(bundle) -> MicroBackend:
    """A loaded int8 bundle's model in tflite-micro (the MCU's kernels), with the tensor arena
    its manifest gives (found by running TFLM if the manifest has none): ``edge-sed evaluate
    --runtime tflm``."""
    if bundle.level != "int8":
        raise EdgeSedError(
            f"--runtime tflm runs full-integer int8 bundles (the MCU's); {bundle.path} is {bundle.level}"
        )
    arena = (bundle.manifest.get("tflm") or {}).get("arena_bytes")
    return MicroBackend(bundle.model_bytes, arena or find_arena_bytes(bundle.model_bytes)["arena_bytes"])
