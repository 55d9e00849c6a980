"""What is inside a .tflite file, read with the standard library only (a Pi has no TensorFlow):
the operators, the input/output tensors with dtype, shape and quantization, and the signature's
names for them.

A .tflite file is a FlatBuffer (schema: tensorflow/compiler/mlir/lite/schema/schema.fbs). This
reads only the few tables it needs, checks every offset against the buffer's length, and turns
any inconsistency into a ValueError, so a truncated or hostile file cannot crash or hang it.

Field numbers used (schema v3):
  Model:        1 operator_codes, 2 subgraphs, 7 signature_defs
  OperatorCode: 0 deprecated_builtin_code (int8), 1 custom_code, 3 builtin_code (int32)
  SubGraph:     0 tensors, 1 inputs, 2 outputs, 3 operators
  Operator:     0 opcode_index
  Tensor:       0 shape, 1 type, 3 name, 4 quantization
  Quantization: 2 scale (float), 3 zero_point (int64)
  SignatureDef: 0 inputs, 1 outputs, 2 signature_key, 4 subgraph_index; TensorMap: 0 name, 1 tensor_index
  Operator:     4 builtin_options; UnidirectionalSequenceLSTMOptions: 1 cell_clip (float)
"""

from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass, field

FILE_IDENTIFIER = b"TFL3"

# BuiltinOperator names by code (schema.fbs, codes 0..209 as of LiteRT 2.3); newer codes are
# shown as BUILTIN_<code>.
BUILTIN_OPERATORS = """
    ADD AVERAGE_POOL_2D CONCATENATION CONV_2D DEPTHWISE_CONV_2D DEPTH_TO_SPACE DEQUANTIZE
    EMBEDDING_LOOKUP FLOOR FULLY_CONNECTED HASHTABLE_LOOKUP L2_NORMALIZATION L2_POOL_2D
    LOCAL_RESPONSE_NORMALIZATION LOGISTIC LSH_PROJECTION LSTM MAX_POOL_2D MUL RELU RELU_N1_TO_1
    RELU6 RESHAPE RESIZE_BILINEAR RNN SOFTMAX SPACE_TO_DEPTH SVDF TANH CONCAT_EMBEDDINGS
    SKIP_GRAM CALL CUSTOM EMBEDDING_LOOKUP_SPARSE PAD UNIDIRECTIONAL_SEQUENCE_RNN GATHER
    BATCH_TO_SPACE_ND SPACE_TO_BATCH_ND TRANSPOSE MEAN SUB DIV SQUEEZE
    UNIDIRECTIONAL_SEQUENCE_LSTM STRIDED_SLICE BIDIRECTIONAL_SEQUENCE_RNN EXP TOPK_V2 SPLIT
    LOG_SOFTMAX DELEGATE BIDIRECTIONAL_SEQUENCE_LSTM CAST PRELU MAXIMUM ARG_MAX MINIMUM LESS
    NEG PADV2 GREATER GREATER_EQUAL LESS_EQUAL SELECT SLICE SIN TRANSPOSE_CONV SPARSE_TO_DENSE
    TILE EXPAND_DIMS EQUAL NOT_EQUAL LOG SUM SQRT RSQRT SHAPE POW ARG_MIN FAKE_QUANT
    REDUCE_PROD REDUCE_MAX PACK LOGICAL_OR ONE_HOT LOGICAL_AND LOGICAL_NOT UNPACK REDUCE_MIN
    FLOOR_DIV REDUCE_ANY SQUARE ZEROS_LIKE FILL FLOOR_MOD RANGE RESIZE_NEAREST_NEIGHBOR
    LEAKY_RELU SQUARED_DIFFERENCE MIRROR_PAD ABS SPLIT_V UNIQUE CEIL REVERSE_V2 ADD_N GATHER_ND
    COS WHERE RANK ELU REVERSE_SEQUENCE MATRIX_DIAG QUANTIZE MATRIX_SET_DIAG ROUND HARD_SWISH
    IF WHILE NON_MAX_SUPPRESSION_V4 NON_MAX_SUPPRESSION_V5 SCATTER_ND SELECT_V2 DENSIFY
    SEGMENT_SUM BATCH_MATMUL PLACEHOLDER_FOR_GREATER_OP_CODES CUMSUM CALL_ONCE BROADCAST_TO
    RFFT2D CONV_3D IMAG REAL COMPLEX_ABS HASHTABLE HASHTABLE_FIND HASHTABLE_IMPORT
    HASHTABLE_SIZE REDUCE_ALL CONV_3D_TRANSPOSE VAR_HANDLE READ_VARIABLE ASSIGN_VARIABLE
    BROADCAST_ARGS RANDOM_STANDARD_NORMAL BUCKETIZE RANDOM_UNIFORM MULTINOMIAL GELU
    DYNAMIC_UPDATE_SLICE RELU_0_TO_1 UNSORTED_SEGMENT_PROD UNSORTED_SEGMENT_MAX
    UNSORTED_SEGMENT_SUM ATAN2 UNSORTED_SEGMENT_MIN SIGN BITCAST BITWISE_XOR RIGHT_SHIFT
    STABLEHLO_LOGISTIC STABLEHLO_ADD STABLEHLO_DIVIDE STABLEHLO_MULTIPLY STABLEHLO_MAXIMUM
    STABLEHLO_RESHAPE STABLEHLO_CLAMP STABLEHLO_CONCATENATE STABLEHLO_BROADCAST_IN_DIM
    STABLEHLO_CONVOLUTION STABLEHLO_SLICE STABLEHLO_CUSTOM_CALL STABLEHLO_REDUCE STABLEHLO_ABS
    STABLEHLO_AND STABLEHLO_COSINE STABLEHLO_EXPONENTIAL STABLEHLO_FLOOR STABLEHLO_LOG
    STABLEHLO_MINIMUM STABLEHLO_NEGATE STABLEHLO_OR STABLEHLO_POWER STABLEHLO_REMAINDER
    STABLEHLO_RSQRT STABLEHLO_SELECT STABLEHLO_SUBTRACT STABLEHLO_TANH STABLEHLO_SCATTER
    STABLEHLO_COMPARE STABLEHLO_CONVERT STABLEHLO_DYNAMIC_SLICE STABLEHLO_DYNAMIC_UPDATE_SLICE
    STABLEHLO_PAD STABLEHLO_IOTA STABLEHLO_DOT_GENERAL STABLEHLO_REDUCE_WINDOW STABLEHLO_SORT
    STABLEHLO_WHILE STABLEHLO_GATHER STABLEHLO_TRANSPOSE DILATE STABLEHLO_RNG_BIT_GENERATOR
    REDUCE_WINDOW STABLEHLO_COMPOSITE STABLEHLO_SHIFT_LEFT STABLEHLO_CBRT STABLEHLO_CASE
""".split()

TENSOR_TYPES = (
    "float32",
    "float16",
    "int32",
    "uint8",
    "int64",
    "string",
    "bool",
    "int16",
    "complex64",
    "int8",
    "float64",
    "complex128",
    "uint64",
    "resource",
    "variant",
    "uint32",
    "uint16",
    "int4",
    "bfloat16",
    "int2",
    "uint4",
    "float8_e4m3fn",
    "float8_e5m2",
)


@dataclass
class TensorInfo:
    index: int  # the tensor's index in its subgraph (= the interpreter's "index")
    name: str
    dtype: str  # numpy-style name: "float32", "int8", ...
    shape: list[int]
    scale: list[float] = field(default_factory=list)  # empty: not quantized
    zero_point: list[int] = field(default_factory=list)

    @property
    def quantization(self) -> dict | None:
        """{"scale", "zero_point"} for a per-tensor quantized tensor, None for a float one."""
        if not self.scale:
            return None
        if len(self.scale) == 1:
            return {"scale": self.scale[0], "zero_point": self.zero_point[0] if self.zero_point else 0}
        return {"scale": self.scale, "zero_point": self.zero_point}


@dataclass
class TFLiteInfo:
    ops: list[str]  # every operator of the main subgraph, in execution order
    inputs: list[TensorInfo]  # the main subgraph's inputs, in the interpreter's order
    outputs: list[TensorInfo]
    signature_inputs: dict[str, int]  # signature name -> tensor index (serving_default or the first)
    signature_outputs: dict[str, int]
    num_subgraphs: int

    def op_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(self.ops).items()))


class _Reader:
    """Bounds-checked access to FlatBuffer tables, vectors and strings."""

    def __init__(self, buf: bytes):
        self.buf = memoryview(buf)
        self.n = len(buf)

    def _unpack(self, fmt: str, pos: int):
        size = struct.calcsize(fmt)
        if pos < 0 or pos + size > self.n:
            raise ValueError(f"offset {pos} outside the file ({self.n} bytes)")
        return struct.unpack_from(fmt, self.buf, pos)[0]

    def root(self) -> int:
        return self._unpack("<I", 0)

    def _field_pos(self, table: int, slot: int) -> int | None:
        vtable = table - self._unpack("<i", table)
        vt_size = self._unpack("<H", vtable)
        if 4 + 2 * slot + 2 > vt_size:
            return None
        off = self._unpack("<H", vtable + 4 + 2 * slot)
        return table + off if off else None

    def scalar(self, table: int, slot: int, fmt: str, default=0):
        pos = self._field_pos(table, slot)
        return default if pos is None else self._unpack(fmt, pos)

    def _indirect(self, pos: int) -> int:
        return pos + self._unpack("<I", pos)

    def table(self, table: int, slot: int) -> int | None:
        pos = self._field_pos(table, slot)
        return None if pos is None else self._indirect(pos)

    def _vector(self, table: int, slot: int) -> tuple[int, int]:
        pos = self._field_pos(table, slot)
        if pos is None:
            return 0, 0
        start = self._indirect(pos)
        length = self._unpack("<I", start)
        if length > self.n:
            raise ValueError(f"vector of {length} elements in a {self.n}-byte file")
        return start + 4, length

    def scalars(self, table: int, slot: int, fmt: str) -> list:
        start, length = self._vector(table, slot)
        size = struct.calcsize(fmt)
        if start + size * length > self.n:
            raise ValueError("vector runs past the end of the file")
        return list(struct.unpack_from(f"<{length}{fmt[-1]}", self.buf, start)) if length else []

    def tables(self, table: int, slot: int) -> list[int]:
        start, length = self._vector(table, slot)
        return [self._indirect(start + 4 * i) for i in range(length)]

    def string(self, table: int, slot: int) -> str:
        pos = self._field_pos(table, slot)
        if pos is None:
            return ""
        start = self._indirect(pos)
        length = self._unpack("<I", start)
        if start + 4 + length > self.n:
            raise ValueError("string runs past the end of the file")
        return bytes(self.buf[start + 4 : start + 4 + length]).decode("utf-8", "replace")


def has_tflite_identifier(data: bytes) -> bool:
    """True when bytes 4..8 are the TFLite FlatBuffer identifier "TFL3"."""
    return len(data) >= 8 and bytes(data[4:8]) == FILE_IDENTIFIER


def _op_name(r: _Reader, code_table: int) -> str:
    deprecated = r.scalar(code_table, 0, "<b")
    code = max(deprecated, r.scalar(code_table, 3, "<i"))  # the schema's rule for the two fields
    if code == 32:  # CUSTOM
        return f"CUSTOM:{r.string(code_table, 1)}"
    return BUILTIN_OPERATORS[code] if 0 <= code < len(BUILTIN_OPERATORS) else f"BUILTIN_{code}"


def _tensor(r: _Reader, tensors: list[int], index: int) -> TensorInfo:
    if not 0 <= index < len(tensors):
        raise ValueError(f"tensor index {index} out of range ({len(tensors)} tensors)")
    t = tensors[index]
    type_code = r.scalar(t, 1, "<b")
    dtype = TENSOR_TYPES[type_code] if 0 <= type_code < len(TENSOR_TYPES) else f"type{type_code}"
    q = r.table(t, 4)
    scale = [float(s) for s in r.scalars(q, 2, "<f")] if q is not None else []
    zero_point = [int(z) for z in r.scalars(q, 3, "<q")] if q is not None else []
    return TensorInfo(
        index, r.string(t, 3), dtype, [int(d) for d in r.scalars(t, 0, "<i")], scale, zero_point
    )


def read_tflite_info(data: bytes) -> TFLiteInfo:
    """Ops and I/O of a .tflite file's main subgraph. ValueError if it is not a readable TFLite
    FlatBuffer."""
    if not has_tflite_identifier(data):
        raise ValueError("not a TFLite model (no 'TFL3' identifier at bytes 4..8)")
    r = _Reader(data)
    try:
        model = r.root()
        codes = [_op_name(r, c) for c in r.tables(model, 1)]
        subgraphs = r.tables(model, 2)
        if not subgraphs:
            raise ValueError("the model has no subgraph")
        sub = subgraphs[0]
        tensors = r.tables(sub, 0)
        ops = []
        for op in r.tables(sub, 3):
            i = r.scalar(op, 0, "<I")
            if i >= len(codes):
                raise ValueError(f"operator code {i} out of range")
            ops.append(codes[i])
        inputs = [_tensor(r, tensors, i) for i in r.scalars(sub, 1, "<i")]
        outputs = [_tensor(r, tensors, i) for i in r.scalars(sub, 2, "<i")]
        sig_in, sig_out = {}, {}
        signatures = r.tables(model, 7)
        chosen = [s for s in signatures if r.string(s, 2) == "serving_default"] or signatures[:1]
        for s in chosen:
            if r.scalar(s, 4, "<I") != 0:
                continue
            sig_in = {r.string(m, 0): r.scalar(m, 1, "<I") for m in r.tables(s, 0)}
            sig_out = {r.string(m, 0): r.scalar(m, 1, "<I") for m in r.tables(s, 1)}
    except (struct.error, IndexError, RecursionError) as exc:
        raise ValueError(f"corrupt TFLite FlatBuffer ({exc})") from None
    return TFLiteInfo(ops, inputs, outputs, sig_in, sig_out, len(subgraphs))


def lstm_cell_clips(data: bytes) -> list[tuple[int, float]]:
    """(byte offset, value) of the cell_clip option of every fused UNIDIRECTIONAL_SEQUENCE_LSTM
    that stores one. The TFLite converter sets cell_clip = 10 when it fuses a Keras LSTM; a
    torch LSTM never clips, so convert zeroes it in place (see convert.tflite)."""
    r = _Reader(data)
    try:
        model = r.root()
        codes = [_op_name(r, c) for c in r.tables(model, 1)]
        found = []
        for sub in r.tables(model, 2):
            for op in r.tables(sub, 3):
                i = r.scalar(op, 0, "<I")
                if i < len(codes) and codes[i] == "UNIDIRECTIONAL_SEQUENCE_LSTM":
                    options = r.table(op, 4)
                    pos = None if options is None else r._field_pos(options, 1)
                    if pos is not None:
                        found.append((pos, float(r._unpack("<f", pos))))
    except (struct.error, IndexError) as exc:
        raise ValueError(f"corrupt TFLite FlatBuffer ({exc})") from None
    return found
