"""The MCU cost model: work counted from the .tflite graph, turned into instructions with the
coefficients fitted to the project's C kernels on QEMU (firmware_sim/calibrate.py,
firmware_sim/c/counts.json), and into cycles with the profile's CPI.

Work per operator (read from the FlatBuffer: operator inputs/outputs, tensor shapes - no TF):
- FULLY_CONNECTED: MACs = rows x in x out; + per output (requantization) -> fc_s8 coefficients
- CONV_2D: MACs = outputs x kh x kw x cin, as an im2col GEMM -> conv_gemm_s8 (the im2col copy
  itself, one byte per MAC / cout, is not counted)
- DEPTHWISE_CONV_2D: MACs = outputs x kh x kw -> dwconv3x3_s8 coefficients (per MAC)
- UNIDIRECTIONAL_SEQUENCE_LSTM: per step 4 H (I + H) MACs and H cell updates -> lstm_step_s8
- RESHAPE/SQUEEZE/EXPAND_DIMS: free (TFLM aliases the buffer)
- SPLIT/SPLIT_V/SLICE/STRIDED_SLICE/PACK/UNPACK, and CONCATENATION whose inputs share the
  output's quantization: a copy of every output byte (COPY_INSNS_PER_BYTE) and a call
- AVERAGE_POOL_2D/MEAN/SUM: a reduction - input elements at the FC kernel's per-MAC cost plus
  its per-output requantization
- MUL: output elements x the int8 MUL kernel's per-element cost (one requantization)
- everything else (ADD, SOFTMAX, LOGISTIC, TANH, (de)quantize, a requantizing concatenation...): output
  elements x the
  int8 ADD kernel's per-element cost (three requantizations per element) - measured for ADD, an
  approximation for the others (TFLM's int8 LOGISTIC/TANH go through a fixed-point int16 path
  of similar length; (de)quantize is cheaper: an overestimate).
Front end: the fixed-point frame kernel's count per 10 ms frame; with PCEN compression, plus
the PCEN stage on its output (pcen_frame_q16: per band and per call). Every number says it is an
estimate calibrated on the QEMU instruction counts and a CPI assumption.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from edge_sed.core.errors import EdgeSedError
from edge_sed.core.tflite_info import TensorInfo, _op_name, _Reader, _tensor

FREE_OPS = {"RESHAPE", "SQUEEZE", "EXPAND_DIMS"}
COPY_OPS = {"SPLIT", "SPLIT_V", "SLICE", "STRIDED_SLICE", "PACK", "UNPACK", "CONCATENATION"}
COPY_CALL_INSNS = 50  # a copy kernel's call, loop set-up and per-output bookkeeping
POOL_OPS = {"AVERAGE_POOL_2D", "MAX_POOL_2D", "MEAN", "SUM"}


@dataclass
class OpInfo:
    name: str
    inputs: list  # TensorInfo, or None for an optional input left out (-1)
    outputs: list


def read_ops(model_bytes: bytes) -> list[OpInfo]:
    """Every operator of the main subgraph with its input/output tensors (shapes, dtypes)."""
    r = _Reader(model_bytes)
    try:
        model = r.root()
        codes = [_op_name(r, c) for c in r.tables(model, 1)]
        sub = r.tables(model, 2)[0]
        tensors = r.tables(sub, 0)
        ops = []
        for op in r.tables(sub, 3):
            ins = [None if i < 0 else _tensor(r, tensors, i) for i in r.scalars(op, 1, "<i")]
            outs = [_tensor(r, tensors, i) for i in r.scalars(op, 2, "<i")]
            ops.append(OpInfo(codes[r.scalar(op, 0, "<I")], ins, outs))
    except (struct.error, IndexError) as exc:
        raise ValueError(f"corrupt TFLite FlatBuffer ({exc})") from None
    return ops


def _n(t: TensorInfo | None) -> int:
    return int(np.prod(t.shape)) if t is not None and t.shape else 1


def op_work(op: OpInfo) -> dict:
    """{"kernel": coefficient group, and the counts that group's coefficients multiply}."""
    out = op.outputs[0] if op.outputs else None
    if op.name == "FULLY_CONNECTED":
        units, n_in = op.inputs[1].shape[0], op.inputs[1].shape[-1]
        rows = _n(out) // units
        return {"kernel": "fully_connected", "macs": rows * units * n_in, "outputs": _n(out), "calls": 1}
    if op.name == "CONV_2D":
        _, kh, kw, cin = op.inputs[1].shape
        return {"kernel": "conv", "macs": _n(out) * kh * kw * cin, "outputs": _n(out), "calls": 1}
    if op.name == "DEPTHWISE_CONV_2D":
        _, kh, kw, _ = op.inputs[1].shape
        return {"kernel": "depthwise_conv", "macs": _n(out) * kh * kw, "outputs": _n(out), "calls": 1}
    if op.name == "UNIDIRECTIONAL_SEQUENCE_LSTM":
        x = op.inputs[0]
        n_units = (op.inputs[2] or op.inputs[1]).shape[0]  # input_to_forget [H, I]
        n_in = x.shape[-1]
        steps = int(np.prod(x.shape[:-1]))  # batch x time
        return {
            "kernel": "lstm_step",
            "macs": steps * 4 * n_units * (n_in + n_units),
            "units": steps * n_units,
            "calls": steps,
            "steps": steps,
            "n_units": n_units,
            "n_input": n_in,
        }
    if op.name in FREE_OPS:
        return {"kernel": None, "elements": _n(out)}
    if op.name in COPY_OPS and (
        op.name != "CONCATENATION"
        or all(i is None or (i.scale, i.zero_point) == (out.scale, out.zero_point) for i in op.inputs)
    ):
        n_bytes = sum(_n(o) * np.dtype(o.dtype).itemsize for o in op.outputs)
        return {"kernel": "copy", "bytes": n_bytes, "calls": 1}
    if op.name in POOL_OPS:
        return {"kernel": "fully_connected", "macs": _n(op.inputs[0]), "outputs": _n(out), "calls": 1}
    if op.name == "MUL":
        return {"kernel": "multiply", "elements": _n(out), "calls": 1}
    return {"kernel": "elementwise", "elements": _n(out), "calls": 1}


def kernel_insns(work: dict, coef: dict) -> float:
    kernel = work["kernel"]
    if kernel is None:
        return 0.0
    if kernel == "copy":
        return work["bytes"] * COPY_INSNS_PER_BYTE + COPY_CALL_INSNS * work["calls"]
    c = coef[kernel]
    if kernel in ("fully_connected", "conv"):
        return (
            c["insns_per_mac"] * work["macs"] + c["insns_per_output"] * work["outputs"] + c["insns_per_call"]
        )
    if kernel == "depthwise_conv":
        return c["insns_per_mac"] * work["macs"] + c["insns_per_call"]
    if kernel == "lstm_step":
        return (
            c["insns_per_mac"] * work["macs"]
            + c["insns_per_unit"] * work["units"]
            + c["insns_per_call"] * work["calls"]
        )
    if kernel in ("elementwise", "multiply"):
        return max(0.0, c["insns_per_element"] * work["elements"] + c["insns_per_call"])
    raise ValueError(kernel)


def model_cost(model_bytes: bytes, coef: dict) -> dict:
    """Instructions per invoke of the model, per operator and in total."""
    ops = []
    for i, op in enumerate(read_ops(model_bytes)):
        work = op_work(op)
        ops.append({"index": i, "op": op.name, **work, "insns": kernel_insns(work, coef)})
    total = sum(o["insns"] for o in ops)
    return {"ops": ops, "insns": total, "macs": sum(o.get("macs", 0) for o in ops)}


@dataclass
class StageCosts:
    """Cycles of each firmware-loop stage on one profile (estimates)."""

    frontend_frame_cycles: float  # one 10 ms front-end frame
    invoke_cycles: float  # one model invoke (incl. quantizing its input)
    decision_cycles: float  # smoother update per decision
    model: dict  # model_cost() of the bundle's model
    cpi: float

    def block_cycles(self, frames: int, inferences: int, decisions: int) -> float:
        return (
            frames * self.frontend_frame_cycles
            + inferences * self.invoke_cycles
            + decisions * self.decision_cycles
        )


COPY_INSNS_PER_BYTE = 0.5  # a word copy loop (LDR/STR + loop) moves 4 bytes in ~2 instructions


def pcen_insns(coef: dict, n_mels: int) -> float:
    """Instructions of the PCEN stage on one frame of n_mels bands."""
    if "pcen" not in coef:
        raise EdgeSedError("counts.json has no PCEN kernel counts: run `python -m firmware_sim.calibrate`")
    return coef["pcen"]["insns_per_band"] * n_mels + coef["pcen"]["insns_per_call"]


def stage_costs(bundle, profile, coef: dict) -> StageCosts:
    """Per-stage cycles of a bundle's firmware loop on an MCU profile:
    - a front-end frame: the fixed-point frame kernel (with PCEN compression, plus the PCEN stage
      on its log-mel output), plus quantizing its n_mels values into the int8 feature ring (one
      requantization each, the MUL kernel's per-element cost);
    - a model invoke: the graph's operators, plus copying the input tensor (window or frame and
      state) from the feature ring into the arena;
    - a decision: the smoother's average over its window (~8 decisions x labels) and threshold,
      at the element-wise per-element cost."""
    model = model_cost(bundle.model_bytes, coef)
    elem = coef["elementwise"]["insns_per_element"]
    requant = coef["multiply"]["insns_per_element"]
    in_bytes = sum(_n(t) * np.dtype(t.dtype).itemsize for t in bundle.info.inputs)
    labels = len(bundle.labels)
    cpi = float(profile.cpi)
    frontend = coef["frontend"]["insns_per_frame"] + bundle.frontend.n_mels * requant
    if getattr(bundle.frontend, "compression", "log") == "pcen":
        frontend += pcen_insns(coef, bundle.frontend.n_mels)
    return StageCosts(
        frontend_frame_cycles=frontend * cpi,
        invoke_cycles=(model["insns"] + in_bytes * COPY_INSNS_PER_BYTE) * cpi,
        decision_cycles=labels * 8 * elem * cpi,
        model=model,
        cpi=cpi,
    )
