"""Keras model -> .tflite bytes at one quantization level.

Levels (each becomes its own bundle):
- ``fp32``: float weights and activations.
- ``fp16``: weights stored as float16 (half the bytes), DEQUANTIZE'd to float32 at load time;
  the arithmetic is float32.
- ``dynamic-int8``: weights int8 (per channel), activations float; "hybrid" kernels quantize
  activations on the fly. Float input/output. Tensors under 1024 elements stay float (the
  converter's rule), so a tiny model may not shrink at all.
- ``int8``: full integer: int8 weights and activations, int8 input and output, ranges
  calibrated on representative windows from the TRAINING split. The one MCU level.
- ``int16x8``: int16 activations, int8 weights, int16 input/output. The converter does not
  implement it for the fused UNIDIRECTIONAL_SEQUENCE_LSTM ("Quantization to 16x8-bit not yet
  supported"), so for the LSTM it is offered with the LSTM unrolled into per-step
  FULLY_CONNECTED/LOGISTIC/TANH/MUL/ADD ops (a much bigger file); if that fails too the level is
  reported unsupported with the converter's reason.

``UnsupportedLevel`` carries the converter's own reason; callers report it, never skip silently.
"""

from __future__ import annotations

import contextlib
import io
import re
import struct
import tempfile
import warnings
from typing import Callable, Iterable

from edge_sed.core.settings import LEVELS as BUNDLE_LEVELS
from edge_sed.core.tflite_info import lstm_cell_clips, read_tflite_info

from ._quiet import import_tensorflow, silenced_fds

tf, _ = import_tensorflow()

LEVELS = BUNDLE_LEVELS  # every quantization level (edge_sed.core.bundle defines them)
FUSED_LSTM_OP = "UNIDIRECTIONAL_SEQUENCE_LSTM"


class UnsupportedLevel(Exception):
    """The converter cannot produce this level for this model; str() is its reason."""


def _first_error_line(exc: BaseException) -> str:
    """The informative line of a converter error (they are long MLIR dumps)."""
    text = str(exc)
    for pattern in (
        r"Quantization to 16x8-bit not yet supported for op: '[^']+'",
        r"error: ([^\n]+)",
        r"([^\n]*not (?:yet )?supported[^\n]*)",
    ):
        found = re.search(pattern, text)
        if found:
            return found.group(0).strip() if not found.groups() else found.group(1).strip()
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    return lines[0][:300] if lines else type(exc).__name__


def export_saved_model(keras_model, directory) -> str:
    """Save ``keras_model`` as a SavedModel (what ``from_keras_model`` does internally on every
    call, and most of its time); convert it at several levels with ``convert_saved_model``."""
    with silenced_fds(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tf.saved_model.save(keras_model, str(directory))
    return str(directory)


def convert_saved_model(
    saved_model_dir: str, level: str, representative: Callable[[], Iterable] | None = None
) -> bytes:
    """One level's .tflite bytes. ``representative()`` yields calibration samples (a list of
    arrays in the model's input order, or a dict by input name) for int8 and int16x8."""
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}; choose from {', '.join(LEVELS)}")
    conv = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
    if level != "fp32":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if level == "fp16":
        conv.target_spec.supported_types = [tf.float16]
    if level in ("int8", "int16x8"):
        if representative is None:
            raise ValueError(f"{level} needs representative data")
        conv.representative_dataset = representative
        if level == "int8":
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            conv.inference_input_type = conv.inference_output_type = tf.int8
        else:
            conv.target_spec.supported_ops = [
                tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
            ]
            conv.inference_input_type = conv.inference_output_type = tf.int16
    # The converter prints MLIR diagnostics and warnings; its exception carries the reason.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), silenced_fds():
        warnings.simplefilter("ignore")
        try:
            return bytes(conv.convert())
        except Exception as exc:  # ConverterError, RuntimeError, ValueError: all mean "cannot"
            raise UnsupportedLevel(_first_error_line(exc)) from exc


def convert_keras(keras_model, level: str, representative: Callable[[], Iterable] | None = None) -> bytes:
    """``convert_saved_model`` for a Keras model, through a temporary SavedModel."""
    with tempfile.TemporaryDirectory(prefix="edge-sed-savedmodel-") as tmp:
        return convert_saved_model(export_saved_model(keras_model, tmp), level, representative)


def remove_lstm_cell_clip(model_bytes: bytes) -> tuple[bytes, list[float]]:
    """The model with every fused LSTM's cell_clip set to 0 (no clipping), and the values that
    were there. The converter writes cell_clip = 10 into every Keras LSTM it fuses, but neither
    torch nor Keras clips the cell state; a trained LSTM's cell state does exceed 10 (up to ~24
    on real-dev), and the clip then moved fp32 probabilities by up to 0.019. Zeroing the
    float in place keeps the FlatBuffer's layout; LiteRT and tflite-micro both read 0 as "no
    clip". (Integer LSTMs still saturate at their int16 cell-state range.)"""
    clips = lstm_cell_clips(model_bytes)
    if not any(value for _, value in clips):
        return model_bytes, [value for _, value in clips]
    patched = bytearray(model_bytes)
    for pos, _ in clips:
        struct.pack_into("<f", patched, pos, 0.0)
    return bytes(patched), [value for _, value in clips]


def op_counts(model_bytes: bytes) -> dict[str, int]:
    return read_tflite_info(model_bytes).op_counts()


def has_fused_lstm(model_bytes: bytes) -> bool:
    return FUSED_LSTM_OP in op_counts(model_bytes)
