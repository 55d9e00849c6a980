"""torch -> tf_keras: the trained network rebuilt layer for layer in legacy Keras 2, with the
torch weights copied in, and proof that it computes the same thing.

Why legacy Keras (tf_keras) and not Keras 3: the TFLite converter turns a Keras 2 ``LSTM``
layer (unroll=False, fixed batch size) into the fused UNIDIRECTIONAL_SEQUENCE_LSTM builtin,
which LiteRT and tflite-micro run as one kernel with an int8 implementation.

The mapping, layer by layer:
- standardisation ``(x - mean) / std`` -> ``x * (1/std) + (-mean/std)``: two elementwise ops
  (MUL, ADD) on the raw log-mel, so a bundle's input is exactly the front end's output;
- ``nn.LSTM`` (batch_first, 1 layer) -> ``LSTM``: both order the gates i, f, g(c), o, so
  kernel = W_ih^T, recurrent_kernel = W_hh^T, bias = b_ih + b_hh;
- ``nn.Linear`` -> ``Dense`` with kernel = W^T;
- the classifier's BatchNorm1d (eval mode: an affine map) is folded into the Linear after it;
  each conv block's BatchNorm2d is folded into its (bias-free) Conv2d's kernel and a new bias;
- the output is softmax probabilities (the torch model outputs logits; training applies the
  softmax inside the loss).

``assert_parity`` compares softmax outputs on real windows; nothing is converted until it
passes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edge_sed.core.errors import ConvertError

from ._quiet import import_tensorflow

tf, keras = import_tensorflow()  # sets TF_USE_LEGACY_KERAS=1 first: keras is tf_keras (Keras 2)

PARITY_TOLERANCE = 1e-5
"""Largest |softmax difference| allowed between the torch model and its Keras port."""


@dataclass
class TorchRun:
    """A trained run directory: the model (eval mode, best.pt) and what it was trained with."""

    path: Path
    model: torch.nn.Module
    config: dict
    metrics: dict

    @property
    def model_type(self) -> str:
        return self.config["model"]


def load_run(run_dir: str | os.PathLike) -> TorchRun:
    from train.models import build_model

    run_dir = Path(run_dir)
    for name in ("config.json", "best.pt"):
        if not (run_dir / name).is_file():
            raise ConvertError(f"{run_dir} is not a finished run directory: {name} is missing")
    config = json.loads((run_dir / "config.json").read_text())
    metrics_path = run_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    state = torch.load(run_dir / "best.pt", weights_only=True, map_location="cpu")
    n_mels = int(state["standardise.mean"].shape[0])
    kwargs = {
        "n_mels": n_mels,
        "embed_dim": int(state["embedding.weight"].shape[0]),
        "num_classes": int(state["classifier.1.weight"].shape[0]),
    }
    if config["model"] == "lstm":
        kwargs["hidden"] = int(state["lstm.weight_hh_l0"].shape[1])
        if "conv.weight" in state:
            kwargs["conv_channels"] = int(state["conv.weight"].shape[0])
            kwargs["context_frames"] = int(state["conv.weight"].shape[1]) // n_mels
            kwargs["stride"] = int(config.get("frame_stride", 1))  # stateful: a step every this many frames
    model = build_model(config["model"], **kwargs)
    model.load_state_dict(state)
    model.eval()
    return TorchRun(run_dir, model, config, metrics)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float32)


def standardise_affine(model) -> tuple[np.ndarray, np.ndarray]:
    """(scale, shift) with standardise(x) = x * scale + shift."""
    mean, std = _np(model.standardise.mean), _np(model.standardise.std)
    return (1.0 / std).astype(np.float32), (-mean / std).astype(np.float32)


def folded_classifier(model) -> tuple[np.ndarray, np.ndarray]:
    """The classifier's BatchNorm1d (eval) folded into its Linear: (kernel (E, C), bias (C,))."""
    bn, linear = model.classifier[0], model.classifier[1]
    s = _np(bn.weight) / np.sqrt(_np(bn.running_var) + bn.eps)
    t = _np(bn.bias) - _np(bn.running_mean) * s
    w, b = _np(linear.weight), _np(linear.bias)  # (C, E), (C,)
    return (w * s[None, :]).T.astype(np.float32), (w @ t + b).astype(np.float32)


def lstm_weights(model) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keras LSTM weights [kernel (M, 4H), recurrent_kernel (H, 4H), bias (4H,)]."""
    lstm = model.lstm
    if lstm.num_layers != 1 or lstm.bidirectional or not lstm.batch_first or lstm.proj_size:
        raise ConvertError("only a one-layer, unidirectional, batch_first LSTM without projection ports")
    return (
        _np(lstm.weight_ih_l0).T.copy(),
        _np(lstm.weight_hh_l0).T.copy(),
        _np(lstm.bias_ih_l0) + _np(lstm.bias_hh_l0),
    )


def _dense(linear: torch.nn.Linear, name: str):
    layer = keras.layers.Dense(linear.out_features, name=name)
    return layer, [_np(linear.weight).T.copy(), _np(linear.bias)]


def _standardise(x, model):
    scale, shift = standardise_affine(model)
    return keras.layers.Lambda(lambda v: v * scale + shift, name="standardise")(x)


def _head(z, model, layers_weights):
    """embedding Dense -> classifier Dense (batch norm folded) -> softmax."""
    emb, w = _dense(model.embedding, "embedding")
    layers_weights.append((emb, w))
    kernel, bias = folded_classifier(model)
    cls = keras.layers.Dense(kernel.shape[1], name="classifier")
    layers_weights.append((cls, [kernel, bias]))
    return keras.layers.Softmax(name="scores")(cls(emb(z)))


def _set_weights(layers_weights) -> None:
    for layer, weights in layers_weights:
        layer.set_weights(weights)


def keras_windowed(model, frames: int = 98, batch_size: int | None = 1, unroll: bool = False):
    """The Keras twin of an LSTMNet or CNNNet: input ``window`` (batch, frames, n_mels) raw
    log-mel, output ``scores`` (batch, classes) softmax. ``batch_size=1`` is what the
    converter needs for the fused LSTM; ``None`` is handy for checking parity on many windows
    at once. ``unroll=True`` spells the LSTM out step by step (no fused op)."""
    from train.models import CNNNet, LSTMNet

    n_mels = model.standardise.mean.shape[0]
    inp = keras.Input((frames, n_mels), batch_size=batch_size, name="window")
    x = _standardise(inp, model)
    layers_weights = []
    if isinstance(model, LSTMNet):
        lstm = keras.layers.LSTM(model.lstm.hidden_size, unroll=unroll, name="lstm")
        layers_weights.append((lstm, list(lstm_weights(model))))
        z = lstm(x)
    elif isinstance(model, CNNNet):
        x = keras.layers.Reshape((frames, n_mels, 1), name="to_image")(x)  # NHWC: H=frames, W=mels
        for i, block in enumerate(model.features):
            conv, bn = block[0], block[1]
            s = _np(bn.weight) / np.sqrt(_np(bn.running_var) + bn.eps)
            kernel = _np(conv.weight).transpose(2, 3, 1, 0) * s  # (kh, kw, in, out)
            bias = _np(bn.bias) - _np(bn.running_mean) * s
            if conv.bias is not None:
                bias = bias + _np(conv.bias) * s
            layer = keras.layers.Conv2D(conv.out_channels, conv.kernel_size, padding="same", name=f"conv{i}")
            _check_conv(conv)
            layers_weights.append((layer, [kernel.astype(np.float32), bias.astype(np.float32)]))
            x = keras.layers.ReLU(name=f"relu{i}")(layer(x))
            if len(block) > 3:
                x = keras.layers.MaxPool2D(block[3].kernel_size, name=f"pool{i}")(x)
        z = keras.layers.GlobalAveragePooling2D(name="mean")(x)
    else:
        raise ConvertError(f"no Keras port for {type(model).__name__}")
    out = _head(z, model, layers_weights)
    keras_model = keras.Model(inp, out, name=f"{type(model).__name__.lower()}_windowed")
    _set_weights(layers_weights)
    return keras_model


def _check_conv(conv) -> None:
    k = conv.kernel_size
    if (
        conv.stride != (1, 1)
        or conv.dilation != (1, 1)
        or conv.groups != 1
        or conv.padding != (k[0] // 2, k[1] // 2)
        or k[0] % 2 == 0
        or k[1] % 2 == 0
    ):
        raise ConvertError("only odd-sized, stride-1, 'same'-padded convolutions port")


def keras_streaming(model):
    """The LSTM as one step per invoke with the state as explicit tensors:
    inputs ``frame`` (1, 1, n_mels), ``h`` (1, H), ``c`` (1, H); outputs ``scores`` (1, C),
    ``h_out``, ``c_out``. Built from LSTMCell arithmetic (FULLY_CONNECTED, ADD, MUL,
    LOGISTIC, TANH), because tflite-micro's fused LSTM kernel starts from a zero state on every
    invoke. Feeding h_out/c_out back in for ``frames`` steps from zeros gives the windowed
    model's scores."""
    from train.models import LSTMNet

    if not isinstance(model, LSTMNet):
        raise ConvertError("the streaming form exists only for the LSTM model")
    n_mels, hidden = model.standardise.mean.shape[0], model.lstm.hidden_size
    k = model.context_frames if model.conv is not None else 1
    frame = keras.Input((k, n_mels), batch_size=1, name="frame")
    h = keras.Input((hidden,), batch_size=1, name="h")
    c = keras.Input((hidden,), batch_size=1, name="c")
    kernel, recurrent, bias = lstm_weights(model)
    scale, shift = (np.tile(v, k) for v in standardise_affine(model))
    x = keras.layers.Lambda(lambda v: v * scale + shift, name="standardise")(
        keras.layers.Reshape((k * n_mels,), name="flatten")(frame)
    )
    layers_weights = []
    if model.conv is not None:  # the causal conv: one Dense on the stacked frames, then ReLU
        conv, w = _dense(model.conv, "conv")
        layers_weights.append((conv, w))
        x = keras.layers.ReLU(name="conv_relu")(conv(x))
    in_proj = keras.layers.Dense(4 * hidden, name="lstm_input")
    rec_proj = keras.layers.Dense(4 * hidden, use_bias=False, name="lstm_recurrent")
    layers_weights += [(in_proj, [kernel, bias]), (rec_proj, [recurrent])]
    z = keras.layers.Add(name="gates")([in_proj(x), rec_proj(h)])
    i, f, g, o = keras.layers.Lambda(lambda v: tf.split(v, 4, axis=-1), name="split")(z)
    i = keras.layers.Activation("sigmoid", name="input_gate")(i)
    f = keras.layers.Activation("sigmoid", name="forget_gate")(f)
    g = keras.layers.Activation("tanh", name="cell_candidate")(g)
    o = keras.layers.Activation("sigmoid", name="output_gate")(o)
    c_new = keras.layers.Add(name="c_out")(
        [keras.layers.Multiply(name="keep")([f, c]), keras.layers.Multiply(name="write")([i, g])]
    )
    h_new = keras.layers.Multiply(name="h_out")([o, keras.layers.Activation("tanh", name="c_tanh")(c_new)])
    scores = _head(h_new, model, layers_weights)
    keras_model = keras.Model([frame, h, c], [scores, h_new, c_new], name="lstm_streaming")
    _set_weights(layers_weights)
    return keras_model


def run_streaming_keras(streaming, windows: np.ndarray) -> np.ndarray:
    """Scores after the last frame of each window, the state starting at zero per window
    (a float reference for the streaming form; slow, for a few windows)."""
    hidden = streaming.inputs[1].shape[-1]
    out = []
    for w in windows:
        h = np.zeros((1, hidden), np.float32)
        c = np.zeros((1, hidden), np.float32)
        for t in range(len(w)):
            scores, h, c = (v.numpy() for v in streaming([w[None, t : t + 1], h, c], training=False))
        out.append(scores[0])
    return np.asarray(out)


@torch.no_grad()
def torch_probabilities(model, x: np.ndarray, batch: int = 256) -> np.ndarray:
    model.eval()
    return (
        np.concatenate(
            [
                torch.softmax(model(torch.from_numpy(x[i : i + batch])), 1).numpy()
                for i in range(0, len(x), batch)
            ]
        )
        if len(x)
        else np.zeros((0, 0), np.float32)
    )


def keras_probabilities(keras_model, x: np.ndarray, batch: int = 256) -> np.ndarray:
    return np.concatenate(
        [keras_model(x[i : i + batch], training=False).numpy() for i in range(0, len(x), batch)]
    )


def assert_parity(model, keras_model, x: np.ndarray, tolerance: float = PARITY_TOLERANCE) -> float:
    """Max |softmax(torch) - keras| over the windows ``x``; ConvertError if above tolerance."""
    if len(x) == 0:
        raise ConvertError("no windows to check parity on (empty test split)")
    diff = float(np.abs(torch_probabilities(model, x) - keras_probabilities(keras_model, x)).max())
    if not diff < tolerance:
        raise ConvertError(
            f"the Keras port differs from the torch model by {diff:.2e} (> {tolerance:.0e}) "
            f"on {len(x)} windows; refusing to convert"
        )
    return diff
