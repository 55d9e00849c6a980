"""tflite-micro at conversion time: the tensor-arena size a model needs, a TFLM backend for
BundleRunner (to compare TFLM with LiteRT), and the C array a firmware build compiles in.

Arena size: the smallest arena with which the tflite-micro Python interpreter both allocates
and invokes the model, found by binary search to 16 bytes, plus ``ARENA_MARGIN`` (10 %, at
least 256 bytes, rounded up to 16). Measured with the x86-64 build of tflite-micro's Python
runtime: its bookkeeping structures hold 64-bit pointers, so a 32-bit Cortex-M build of the
same model needs somewhat less; kernels with target-specific scratch buffers (CMSIS-NN) may
need a little more, which the margin is for.
"""

from __future__ import annotations

import math

import numpy as np

from ._quiet import silenced_fds

ARENA_MARGIN_FRACTION = 0.10
ARENA_MARGIN_MIN_BYTES = 256
ARENA_SEARCH_MAX_BYTES = 16 * 1024**2


def _runtime():
    from tflite_micro.python.tflite_micro import runtime

    return runtime


def _zero_inputs(model_bytes: bytes) -> list[np.ndarray]:
    from edge_sed.tflite_info import read_tflite_info

    return [np.zeros(t.shape, t.dtype) for t in read_tflite_info(model_bytes).inputs]


def _allocates_and_invokes(model_bytes: bytes, arena_bytes: int, inputs) -> bool:
    try:
        interp = _runtime().Interpreter.from_bytes(model_bytes, arena_size=arena_bytes)
        for i, x in enumerate(inputs):
            interp.set_input(x, i)
        interp.invoke()
        return True
    except (RuntimeError, ValueError):
        return False


def find_arena_bytes(model_bytes: bytes) -> dict:
    """{"arena_min_bytes": smallest that works (host), "arena_bytes": with the margin, ...}."""
    inputs = _zero_inputs(model_bytes)
    with silenced_fds():
        hi = max(4096, 4 * len(model_bytes))
        while not _allocates_and_invokes(model_bytes, hi, inputs):
            hi *= 2
            if hi > ARENA_SEARCH_MAX_BYTES:
                raise RuntimeError(f"tflite-micro cannot run the model even with a {ARENA_SEARCH_MAX_BYTES}-byte "
                                   "arena (an unsupported operator?)")
        lo = 0  # invariant: lo fails (or is 0), hi works
        while hi - lo > 16:
            mid = (lo + hi) // 2
            if _allocates_and_invokes(model_bytes, mid, inputs):
                hi = mid
            else:
                lo = mid
    margin = max(ARENA_MARGIN_MIN_BYTES, int(math.ceil(hi * ARENA_MARGIN_FRACTION)))
    return {"arena_min_bytes": hi, "arena_bytes": int(math.ceil((hi + margin) / 16) * 16),
            "margin": f"{ARENA_MARGIN_FRACTION:.0%} (at least {ARENA_MARGIN_MIN_BYTES} bytes), rounded up to 16",
            "measured_with": "tflite-micro Python runtime (x86-64 host build, 64-bit pointers), "
                             "binary search to 16 bytes over allocate + invoke"}


class MicroBackend:
    """BundleRunner's backend interface on the tflite-micro interpreter."""

    name = "tflm"

    def __init__(self, model_bytes: bytes, arena_bytes: int):
        from edge_sed.tflite_info import read_tflite_info

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

        self.interpreter = Interpreter(model_content=model_bytes,
                                       experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
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
    return {"windows": int(len(a)), "max_abs_prob_diff": float(diff.max()),
            "max_output_steps": int(steps.max()), "identical_windows": float(np.mean(steps.max(1) == 0)),
            "argmax_agreement": float(np.mean(a.argmax(1) == b.argmax(1)))}


def _c_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def c_array_files(model_bytes: bytes, manifest: dict, arena_bytes: int) -> tuple[str, str]:
    """(model_data.h, model_data.cc) text: the model as an alignas(16) byte array, its length,
    the labels, the tensor-arena size, and the input/output quantization."""
    labels = manifest["labels"]
    inputs = {d["role"]: d for d in manifest["inputs"]}
    outputs = {d["role"]: d for d in manifest["outputs"]}
    first_in = inputs.get("window") or inputs["frame"]
    q_in, q_out = first_in["quantization"] or {}, outputs["scores"]["quantization"] or {}
    streaming = manifest["form"] != "windowed"
    tflm = manifest.get("tflm") or {}
    min_note = (f"{tflm['arena_min_bytes']} bytes is the smallest that allocated and invoked on the host"
                if "arena_min_bytes" in tflm else "measured on the host")
    margin_note = tflm.get("margin", "see the manifest")
    header = f"""// Generated by edge-sed convert. Do not edit: re-run the conversion.
// Level {manifest['level']}, form {manifest['form']}, model sha256 {manifest['sha256']}.
#ifndef EDGE_SED_MODEL_DATA_H_
#define EDGE_SED_MODEL_DATA_H_

#include <cstddef>
#include <cstdint>

// The .tflite FlatBuffer (alignas(16): tflite-micro reads it in place).
extern const unsigned char g_model_data[];
extern const unsigned int g_model_data_len;

// Class names in output order.
constexpr int kNumLabels = {len(labels)};
extern const char* const kLabels[kNumLabels];

// Tensor arena for tflite::MicroInterpreter, found by running tflite-micro on this model:
// {min_note}, plus a margin ({margin_note}).
constexpr size_t kTensorArenaSize = {arena_bytes};

// Front end: {manifest['frontend']['n_mels']} log-mel bands, {manifest['window_frames']} frames per window.
constexpr int kNumMels = {manifest['frontend']['n_mels']};
constexpr int kWindowFrames = {manifest['window_frames']};
constexpr int kHopFrames = {manifest['hop_frames']};

// Quantization: q = round(x / scale) + zero_point; x = (q - zero_point) * scale.
constexpr float kInputScale = {q_in.get('scale', 0.0)!r}f;
constexpr int kInputZeroPoint = {q_in.get('zero_point', 0)};
constexpr float kOutputScale = {q_out.get('scale', 0.0)!r}f;
constexpr int kOutputZeroPoint = {q_out.get('zero_point', 0)};
"""
    if streaming:
        header += f"""
// Streaming form: one frame per invoke; feed h_out/c_out back as h/c (dequantize with the
// output's parameters, quantize with the input's), and zero the state every kHopFrames frames.
constexpr int kStateSize = {inputs['h']['shape'][-1]};
"""
        for role in ("frame", "h", "c"):
            d = inputs[role]
            header += (f"constexpr int kInput_{role} = {manifest['inputs'].index(d)};  "
                       f"// scale {d['quantization']['scale']!r}, zero point {d['quantization']['zero_point']}\n")
        for role in ("scores", "h_out", "c_out"):
            d = outputs[role]
            header += (f"constexpr int kOutput_{role} = {manifest['outputs'].index(d)};  "
                       f"// scale {d['quantization']['scale']!r}, zero point {d['quantization']['zero_point']}\n")
    header += "\n#endif  // EDGE_SED_MODEL_DATA_H_\n"

    rows = []
    for i in range(0, len(model_bytes), 12):
        rows.append("  " + ", ".join(f"0x{b:02x}" for b in model_bytes[i:i + 12]) + ",")
    source = (f"// Generated by edge-sed convert: {len(model_bytes)} bytes of model.tflite "
              f"(sha256 {manifest['sha256']}).\n"
              '#include "model_data.h"\n\n'
              "alignas(16) const unsigned char g_model_data[] = {\n" + "\n".join(rows) + "\n};\n"
              f"const unsigned int g_model_data_len = {len(model_bytes)};\n\n"
              "const char* const kLabels[kNumLabels] = {" + ", ".join(_c_string(l) for l in labels) + "};\n")
    return header, source
