"""Model bundles: load one safely, run it, verify it. numpy and the standard library only (plus
the TFLite runtime once a model has passed every check), because a Pi has no TensorFlow.

A bundle is a directory (written by ``edge-sed convert``; README "Convert" lists its files):
- ``model.tflite``;
- ``manifest.json`` — everything needed to feed the model and read its output (FIELDS below);
- ``check.npz`` — a few test windows with the outputs LiteRT and torch gave at conversion
  time, which ``verify`` re-runs (a device can drop it);
- for MCU levels: ``model_data.h`` / ``model_data.cc``, the model as a C array.

``load_bundle`` checks, in this order and before any runtime sees the model: file sizes, the
manifest's fields and format version, the TFLite identifier, the sha256, and that the model's
inputs/outputs (read from the FlatBuffer) are the ones the manifest describes, including the
number of labels. ``BundleRunner`` then loads the model into LiteRT (or any backend with the
same five methods, e.g. tflite-micro) and checks the output size once more against the labels.
Every failure is a one-line :class:`BundleError`.

Two forms of model:
- ``windowed``: input ``window`` (1, window_frames, n_mels) raw log-mel -> ``scores``
  (1, labels). A fused-LSTM model keeps its state in variable tensors between invokes in
  LiteRT, so the runner resets them before every window.
- ``streaming-explicit-state`` (LSTM only): inputs ``frame`` (1, 1, n_mels), ``h``, ``c``
  (1, H) -> ``scores``, ``h_out``, ``c_out``. One frame per invoke; the caller carries the
  state. After ``window_frames`` frames from a zero state the scores are the windowed
  model's; the runner resets the state every ``window_frames`` frames (the manifest's hop).
- ``stateful`` (the streaming detector, LSTM only): the same inputs and outputs, but ``frame``
  is the last ``window_frames`` frames (1, window_frames, n_mels; 1 without a conv front) and
  the state is carried through the whole stream, never reset; one invoke every ``hop_frames``
  frames (the model's stride: 1 = every frame, 4 = the LSTM steps every 40 ms on the last
  ``window_frames`` frames); every step's scores go to the smoother, whose settings (averaging
  window, minimum count, suppression, per-class thresholds calibrated on validation streams) the manifest's
  ``smoother`` holds.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_sed.core.errors import BundleError, EdgeSedError, printable
from edge_sed.core.frontend import FrontendConfig
from edge_sed.core.quiet import silenced_fds
from edge_sed.core.settings import LEVELS, SAMPLE_RATE
from edge_sed.core.tflite_info import TFLiteInfo, has_tflite_identifier, read_tflite_info

FORMAT_VERSION = 1
MODEL_FILE, MANIFEST_FILE, CHECK_FILE = "model.tflite", "manifest.json", "check.npz"
C_HEADER, C_SOURCE = "model_data.h", "model_data.cc"

MAX_MODEL_BYTES = 64 * 1024**2
"""Our models are 10-600 kB; a file this big is not one of ours (and would not fit a device)."""
MAX_MANIFEST_BYTES = 1024**2
MAX_CHECK_BYTES = 32 * 1024**2
MIN_MODEL_BYTES = 32
C_SOURCE_BYTES_PER_MODEL_BYTE = 7
"""model_data.cc spells each model byte as "0x00, " (6 characters) plus line breaks."""

FORMS = ("windowed", "streaming-explicit-state", "stateful")
ROLES = {
    "windowed": (("window",), ("scores",)),
    "streaming-explicit-state": (("frame", "h", "c"), ("scores", "h_out", "c_out")),
    "stateful": (("frame", "h", "c"), ("scores", "h_out", "c_out")),
}
STATE_FORMS = ("streaming-explicit-state", "stateful")
SMOOTHER_FIELDS = ("average_window_ms", "minimum_count", "suppression_ms", "thresholds")
DTYPES = ("float32", "int8", "int16", "uint8")

FIELDS = {
    # name: (type(s), what it is)
    "format_version": (int, f"bundle format, {FORMAT_VERSION}"),
    "labels": (list, "class names in output order"),
    "sample_rate": (int, "Hz of the audio the front end expects"),
    "frontend": (dict, "FrontendConfig.to_dict(): recomputes the log-mel exactly"),
    "window_frames": (int, "frames per model window"),
    "hop_frames": (int, "frames between windows (streaming: between state resets; stateful: between steps)"),
    "form": (str, " | ".join(FORMS)),
    "level": (str, "quantization level: " + " | ".join(LEVELS)),
    "inputs": (list, "input tensors in the model's order: role, name, index, dtype, shape, quantization"),
    "outputs": (list, "output tensors in the model's order"),
    "sha256": (str, "of model.tflite"),
    "model_bytes": (int, "size of model.tflite"),
    "ops": (dict, "operator -> count, read from the FlatBuffer"),
    "provenance": (dict, "objective, dataset, seed, git commit, model type"),
    "accuracy": (dict, "test-split metrics through LiteRT at conversion time, and vs torch"),
}

SEMANTIC_FIELDS = (
    "format_version",
    "labels",
    "sample_rate",
    "frontend",
    "window_frames",
    "hop_frames",
    "form",
    "level",
    "inputs",
    "outputs",
    "sha256",
    "model_bytes",
    "ops",
    "smoother",
)
"""The fields that decide what the model hears and what its answers mean. ``semantic_sha256``
(written by convert) is the sha256 of their canonical JSON, so an edited front end, label
order or quantization fails ``load_bundle`` like an edited model does."""
SEMANTIC_KEY = "semantic_sha256"
ARCH_NAME = re.compile(r"[A-Za-z0-9_]+")


def semantic_sha256(m: dict) -> str:
    """sha256 of the canonical JSON (sorted keys, no spaces, ASCII) of ``SEMANTIC_FIELDS``."""
    canonical = json.dumps(
        {k: m.get(k) for k in SEMANTIC_FIELDS},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
        allow_nan=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _size_checked(path: Path, limit: int, what: str) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes (a FIFO or a device would hang
    or never end; reading stops at the limit even if the file grows meanwhile)."""
    if not path.exists():
        raise BundleError(f"{path.parent}: no {path.name} ({what})")
    if not path.is_file():
        raise BundleError(f"{path}: not a regular file (a {what} must be one)")
    size = path.stat().st_size
    if size > limit:
        raise BundleError(f"{path}: {size} bytes, more than the {limit}-byte limit for a {what}")
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise BundleError(f"{path}: more than the {limit}-byte limit for a {what} (grew while read)")
    return data


def _strings(value):
    """Every string in a JSON value, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _refuse_json_constant(name):
    raise ValueError(f"{name} is not a JSON number")


def validate_manifest(m, where: str = "manifest") -> None:
    """BundleError naming the first missing or malformed field."""
    if not isinstance(m, dict):
        raise BundleError(f"{where}: not a JSON object")
    if "format_version" in m and m["format_version"] != FORMAT_VERSION:
        raise BundleError(
            f"{where}: format_version {m['format_version']!r} is not supported "
            f"(this edge-sed reads {FORMAT_VERSION})"
        )
    _check_fields(m, where)
    _check_optional(m, where)
    _check_kinds(m, where)
    _check_frontend(m, where)
    if not re.fullmatch(r"[0-9a-f]{64}", m["sha256"]):
        raise BundleError(f"{where}: 'sha256' is not 64 lowercase hex digits")
    _check_tensors(m, where)


def _check_fields(m: dict, where: str) -> None:
    """Every required field, of its type."""
    for name, (kind, what) in FIELDS.items():
        if name not in m:
            raise BundleError(f"{where}: required field '{name}' ({what}) is missing")
        value = m[name]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise BundleError(
                f"{where}: field '{name}' should be a {kind.__name__}, got {type(value).__name__}"
            )


def _check_optional(m: dict, where: str) -> None:
    """No control characters anywhere; the optional fields well formed."""
    for key, value in m.items():
        bad = next((t for t in _strings({key: value}) if printable(t) != t), None)
        if bad is not None:
            raise BundleError(
                f"{where}: field '{printable(key)}' holds a control character in {printable(bad)[:60]!r}"
            )
    for key in ("name",):
        if key in m and not isinstance(m[key], str):
            raise BundleError(f"{where}: field '{key}' should be a str, got {type(m[key]).__name__}")
    if "checked_on" in m and not (
        isinstance(m["checked_on"], list)
        and all(isinstance(a, str) and ARCH_NAME.fullmatch(a) for a in m["checked_on"])
    ):
        raise BundleError(f"{where}: 'checked_on' must be a list of architecture names (letters, digits, _)")
    check = m.get("check")
    if check is not None and not (
        isinstance(check, dict)
        and isinstance(check.get("sha256"), str)
        and re.fullmatch(r"[0-9a-f]{64}", check["sha256"])
    ):
        raise BundleError(
            f"{where}: 'check' must be an object with the sha256 (64 lowercase hex digits) of {CHECK_FILE}"
        )
    if SEMANTIC_KEY in m and not (
        isinstance(m[SEMANTIC_KEY], str) and re.fullmatch(r"[0-9a-f]{64}", m[SEMANTIC_KEY])
    ):
        raise BundleError(f"{where}: '{SEMANTIC_KEY}' is not 64 lowercase hex digits")


def _check_kinds(m: dict, where: str) -> None:
    """Labels, form, smoother and level."""
    labels = m["labels"]
    if (
        len(labels) < 2
        or not all(isinstance(l, str) and l for l in labels)
        or len(set(labels)) != len(labels)
    ):
        raise BundleError(f"{where}: 'labels' must be two or more distinct non-empty strings")
    if m["form"] not in FORMS:
        raise BundleError(f"{where}: unknown form {m['form']!r} (expected {' or '.join(FORMS)})")
    if "smoother" in m:
        _validate_smoother(m["smoother"], labels, where)
    if m["level"] not in LEVELS:
        raise BundleError(f"{where}: unknown level {m['level']!r} (expected one of {', '.join(LEVELS)})")


def _check_frontend(m: dict, where: str) -> None:
    """The front end, its sample rate and the window/hop frames."""
    missing = [f for f in FrontendConfig().to_dict() if f not in m["frontend"]]
    try:
        if missing:
            raise ValueError(f"missing {', '.join(missing)}")
        frontend = FrontendConfig.from_dict(m["frontend"])
    except (TypeError, ValueError) as exc:
        raise BundleError(f"{where}: bad 'frontend': {exc}") from None
    if m["sample_rate"] != frontend.sample_rate:
        raise BundleError(
            f"{where}: sample_rate {m['sample_rate']} disagrees with frontend "
            f"sample_rate {frontend.sample_rate}"
        )
    if frontend.sample_rate != SAMPLE_RATE:
        raise BundleError(
            f"{where}: sample_rate {frontend.sample_rate}: every stage works on {SAMPLE_RATE} Hz audio"
        )
    for name in ("window_frames", "hop_frames"):
        if m[name] <= 0:
            raise BundleError(f"{where}: '{name}' must be positive")
    if m["form"] == "stateful" and m["hop_frames"] > m["window_frames"]:
        raise BundleError(
            f"{where}: a stateful model stepping every {m['hop_frames']} frames on the last "
            f"{m['window_frames']} would never see some frames ('hop_frames' > 'window_frames')"
        )


def _check_tensors(m: dict, where: str) -> None:
    """Inputs and outputs: the form's roles, dtypes and quantization."""
    want_in, want_out = ROLES[m["form"]]
    for key, roles in (("inputs", want_in), ("outputs", want_out)):
        tensors = m[key]
        if not all(isinstance(t, dict) for t in tensors):
            raise BundleError(f"{where}: '{key}' must be a list of objects")
        got = sorted(str(t.get("role")) for t in tensors)
        if got != sorted(roles):
            raise BundleError(
                f"{where}: '{key}' roles {got} do not match a {m['form']} model {sorted(roles)}"
            )
        for t in tensors:
            for f in ("index", "dtype", "shape", "quantization"):
                if f not in t:
                    raise BundleError(f"{where}: {key} '{t['role']}' has no '{f}'")
            if t["dtype"] not in DTYPES:
                raise BundleError(f"{where}: {key} '{t['role']}' has unsupported dtype {t['dtype']!r}")
            q = t["quantization"]
            if t["dtype"] == "float32" and q is not None:
                raise BundleError(f"{where}: {key} '{t['role']}' is float32 but has a quantization")
            if t["dtype"] != "float32" and not (
                isinstance(q, dict)
                and isinstance(q.get("scale"), (int, float))
                and q["scale"] > 0
                and isinstance(q.get("zero_point"), int)
            ):
                raise BundleError(
                    f"{where}: {key} '{t['role']}' is {t['dtype']} but has no valid "
                    "per-tensor quantization {scale > 0, zero_point}"
                )


def _validate_smoother(sm, labels, where: str) -> None:
    """The manifest's smoother settings: what ``listen`` uses by default, so bounded here."""
    if not isinstance(sm, dict) or set(sm) != set(SMOOTHER_FIELDS):
        raise BundleError(f"{where}: 'smoother' must hold exactly {', '.join(SMOOTHER_FIELDS)}")
    for key, lo, hi in (
        ("average_window_ms", 0, 10_000),
        ("suppression_ms", 0, 600_000),
        ("minimum_count", 1, 1000),
    ):
        v = sm[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
            raise BundleError(f"{where}: smoother '{key}' must be a number in [{lo}, {hi}], got {v!r}")
    thr = sm["thresholds"]
    values = thr.values() if isinstance(thr, dict) else [thr]
    if isinstance(thr, dict) and not set(thr) <= set(labels):
        raise BundleError(
            f"{where}: smoother thresholds name classes that are not labels: "
            f"{', '.join(sorted(map(str, set(thr) - set(labels))))}"
        )
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < 1 for v in values):
        raise BundleError(f"{where}: smoother thresholds must be probabilities in [0, 1)")


def _check_io_against_model(m: dict, info: TFLiteInfo, where: str) -> None:
    """The manifest's tensors are the model's, in the model's order, with the same dtype,
    shape and quantization; the window shape matches the front end; scores match the labels."""
    for key, tensors in (("inputs", info.inputs), ("outputs", info.outputs)):
        described = m[key]
        if len(described) != len(tensors):
            raise BundleError(f"{where}: manifest lists {len(described)} {key}, the model has {len(tensors)}")
        for d, t in zip(described, tensors):
            role = d["role"]
            if d["index"] != t.index:
                raise BundleError(
                    f"{where}: {key} '{role}' is tensor {d['index']} in the manifest, {t.index} in the model"
                )
            if d["dtype"] != t.dtype or list(d["shape"]) != t.shape:
                raise BundleError(
                    f"{where}: {key} '{role}' is {d['dtype']}{list(d['shape'])} in the manifest, "
                    f"{t.dtype}{t.shape} in the model"
                )
            q = t.quantization if t.dtype != "float32" else None
            mq = d["quantization"]
            if (q is None) != (mq is None) or (
                q is not None
                and (
                    not np.isclose(q["scale"], mq["scale"], rtol=1e-6, atol=0)
                    or q["zero_point"] != mq["zero_point"]
                )
            ):
                raise BundleError(
                    f"{where}: {key} '{role}' quantization {mq} in the manifest, {q} in the model"
                )
    roles = {d["role"]: d for d in m["inputs"] + m["outputs"]}
    n_mels = m["frontend"]["n_mels"]
    if m["form"] == "windowed":
        want = [1, m["window_frames"], n_mels]
        if list(roles["window"]["shape"]) != want:
            raise BundleError(
                f"{where}: the model's window input is {roles['window']['shape']}, "
                f"the manifest's front end and window_frames say {want}"
            )
    else:
        k = m["window_frames"] if m["form"] == "stateful" else 1
        if list(roles["frame"]["shape"]) != [1, k, n_mels]:
            raise BundleError(
                f"{where}: the model's frame input is {roles['frame']['shape']}, expected [1, {k}, {n_mels}]"
            )
        if roles["h"]["shape"] != roles["h_out"]["shape"] or roles["c"]["shape"] != roles["c_out"]["shape"]:
            raise BundleError(f"{where}: state inputs and outputs have different shapes")
    scores = roles["scores"]["shape"]
    if scores[-1] != len(m["labels"]):
        raise BundleError(f"{where}: {len(m['labels'])} labels but the model outputs {scores[-1]} scores")


@dataclass
class Bundle:
    """A bundle that passed every check of ``load_bundle``."""

    path: Path
    manifest: dict
    model_bytes: bytes
    info: TFLiteInfo

    @property
    def labels(self) -> list[str]:
        return list(self.manifest["labels"])

    @property
    def frontend(self) -> FrontendConfig:
        return FrontendConfig.from_dict(self.manifest["frontend"])

    @property
    def form(self) -> str:
        return self.manifest["form"]

    @property
    def level(self) -> str:
        return self.manifest["level"]

    @property
    def window_frames(self) -> int:
        return self.manifest["window_frames"]

    @property
    def hop_frames(self) -> int:
        return self.manifest["hop_frames"]

    def check_data(self) -> dict | None:
        """The check windows (x, y, litert, torch) stored at conversion time, or None."""
        path = self.path / CHECK_FILE
        meta = self.manifest.get("check")
        if not os.path.lexists(path) or not meta:
            return None
        data = _size_checked(path, MAX_CHECK_BYTES, "check file")
        if hashlib.sha256(data).hexdigest() != meta.get("sha256"):
            raise BundleError(f"{path}: checksum does not match the manifest (file changed or corrupt)")
        import io

        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (ValueError, OSError, KeyError) as exc:
            raise BundleError(f"{path}: unreadable ({exc})") from None


def load_bundle(path: str | os.PathLike) -> Bundle:
    """Read and check a bundle directory; BundleError (one line) on the first problem. The
    model is not handed to any runtime here."""
    path = Path(path)
    if not path.is_dir():
        raise BundleError(f"{path}: not a bundle directory")
    raw = _size_checked(path / MANIFEST_FILE, MAX_MANIFEST_BYTES, "manifest")
    try:
        manifest = json.loads(raw, parse_constant=_refuse_json_constant)
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise BundleError(f"{path / MANIFEST_FILE}: not valid JSON ({printable(str(exc))})") from None
    validate_manifest(manifest, str(path / MANIFEST_FILE))
    model_path = path / MODEL_FILE
    model = _size_checked(model_path, MAX_MODEL_BYTES, "model")
    if len(model) < MIN_MODEL_BYTES or not has_tflite_identifier(model):
        raise BundleError(f"{model_path}: not a TFLite model (no 'TFL3' identifier at bytes 4..8)")
    if len(model) != manifest["model_bytes"]:
        raise BundleError(
            f"{model_path}: {len(model)} bytes, the manifest says {manifest['model_bytes']} "
            "(truncated or replaced)"
        )
    digest = hashlib.sha256(model).hexdigest()
    if digest != manifest["sha256"]:
        raise BundleError(
            f"{model_path}: sha256 {digest[:12]}... does not match the manifest's "
            f"{manifest['sha256'][:12]}... (file changed or corrupt)"
        )
    try:
        info = read_tflite_info(model)
    except ValueError as exc:
        raise BundleError(f"{model_path}: {exc}") from None
    _check_io_against_model(manifest, info, str(path))
    if SEMANTIC_KEY in manifest and semantic_sha256(manifest) != manifest[SEMANTIC_KEY]:
        raise BundleError(
            f"{path / MANIFEST_FILE}: labels, front end, windows or tensors do not match the "
            f"manifest's {SEMANTIC_KEY} (edited after conversion, or corrupt)"
        )
    return Bundle(path, manifest, model, info)


# ------------------------------------------------------------------------------ running


def quantize(x: np.ndarray, q: dict | None, dtype: str) -> np.ndarray:
    """float -> the tensor's dtype: round(x / scale) + zero_point, saturated."""
    if q is None:
        return np.asarray(x, np.float32)
    info = np.iinfo(dtype)
    v = np.round(np.asarray(x, np.float64) / q["scale"]) + q["zero_point"]
    return np.clip(v, info.min, info.max).astype(dtype)


def dequantize(v: np.ndarray, q: dict | None) -> np.ndarray:
    if q is None:
        return np.asarray(v, np.float32)
    return ((np.asarray(v, np.float64) - q["zero_point"]) * q["scale"]).astype(np.float32)


class LiteRTBackend:
    """The five methods BundleRunner needs, on edge_sed.core.runtime's LiteRT interpreter. Inputs and
    outputs are addressed by position in the model's input/output lists."""

    name = "litert"

    def __init__(self, model_bytes: bytes, num_threads: int = 1):
        from edge_sed.core.runtime import load_interpreter

        with silenced_fds((2,)):
            self.interpreter = load_interpreter(model_bytes, num_threads=num_threads)
        self._in = [d["index"] for d in self.interpreter.get_input_details()]
        self._out = [d["index"] for d in self.interpreter.get_output_details()]

    def output_shapes(self) -> list[list[int]]:
        return [d["shape"].tolist() for d in self.interpreter.get_output_details()]

    def set_input(self, position: int, value: np.ndarray) -> None:
        self.interpreter.set_tensor(self._in[position], value)

    def invoke(self) -> None:
        self.interpreter.invoke()

    def get_output(self, position: int) -> np.ndarray:
        return self.interpreter.get_tensor(self._out[position]).copy()

    def reset(self) -> None:
        """Zero the variable tensors (the fused LSTM's state)."""
        self.interpreter.reset_all_variables()


class BundleRunner:
    """``predict(window_log_mel) -> probabilities`` for any bundle, whatever its form and
    quantization. ``backend`` defaults to LiteRT; firmware_sim passes a tflite-micro one."""

    def __init__(self, bundle: Bundle, backend=None, num_threads: int = 1):
        self.bundle = bundle
        m = bundle.manifest
        try:
            self.backend = backend or LiteRTBackend(bundle.model_bytes, num_threads)
        except EdgeSedError as exc:
            raise BundleError(f"{bundle.path}: {exc}") from None
        shapes = self.backend.output_shapes()
        self._in = {d["role"]: (i, d) for i, d in enumerate(m["inputs"])}
        self._out = {d["role"]: (i, d) for i, d in enumerate(m["outputs"])}
        n_scores = int(np.prod(shapes[self._out["scores"][0]]))
        if n_scores != len(bundle.labels):
            raise BundleError(
                f"{bundle.path}: the loaded model outputs {n_scores} scores for {len(bundle.labels)} labels"
            )
        self.streaming = bundle.form in STATE_FORMS
        self.carried = bundle.form == "stateful"
        if self.streaming:
            self.state_size = int(self._in["h"][1]["shape"][-1])
            self.reset()

    # -- windowed and streaming alike

    def predict(self, window: np.ndarray) -> np.ndarray:
        """(window_frames, n_mels) float32 log-mel -> (labels,) float32 probabilities."""
        window = np.asarray(window, np.float32)
        want = (self.bundle.window_frames, self.bundle.frontend.n_mels)
        if window.shape != want:
            raise ValueError(f"window of shape {window.shape}, the model wants {want}")
        if self.streaming:
            self.reset()
            for frame in window:
                scores = self.step(frame)
            return scores
        i, d = self._in["window"]
        self.backend.set_input(i, quantize(window[None], d["quantization"], d["dtype"]))
        self.backend.reset()  # a fused LSTM would otherwise start from the previous window's state
        self.backend.invoke()
        return self._scores()

    def predict_many(self, windows: np.ndarray, progress=None) -> np.ndarray:
        out = np.zeros((len(windows), len(self.bundle.labels)), np.float32)
        for n, w in enumerate(windows):
            out[n] = self.predict(w)
            if progress:
                progress(n + 1, len(windows))
        return out

    def _scores(self) -> np.ndarray:
        i, d = self._out["scores"]
        return dequantize(self.backend.get_output(i), d["quantization"]).reshape(-1)

    # -- streaming only

    def reset(self) -> None:
        """Zero the carried state (streaming form)."""
        self.h = np.zeros((1, self.state_size), np.float32)
        self.c = np.zeros((1, self.state_size), np.float32)

    def step(self, frame: np.ndarray) -> np.ndarray:
        """One (n_mels,) log-mel frame in (a stateful bundle with a conv front: the last
        window_frames frames, (window_frames, n_mels)); the scores after it out. The state is
        kept here in float and re-quantized with the input tensors' parameters, since the
        model's h_out/c_out may be quantized with different scales than its h/c inputs."""
        if not self.streaming:
            raise ValueError("step() is for streaming bundles; use predict(window)")
        shape = self._in["frame"][1]["shape"]
        for role, value in (
            ("frame", np.asarray(frame, np.float32).reshape(shape)),
            ("h", self.h),
            ("c", self.c),
        ):
            i, d = self._in[role]
            self.backend.set_input(i, quantize(value, d["quantization"], d["dtype"]))
        self.backend.invoke()
        for role in ("h", "c"):
            i, d = self._out[f"{role}_out"]
            setattr(self, role, dequantize(self.backend.get_output(i), d["quantization"]).reshape(1, -1))
        return self._scores()

    def run_stream(self, features: np.ndarray) -> np.ndarray:
        """Stateful form: (frames, n_mels) -> (frames // stride, labels), one step every
        ``hop_frames`` (the stride) frames, at frames stride-1, 2*stride-1, ..., from a zero state,
        the context starting as the first frame repeated (as the device loop does)."""
        if not self.carried:
            raise ValueError("run_stream() is for stateful bundles")
        features = np.asarray(features, np.float32)
        k, stride = self.bundle.window_frames, self.bundle.hop_frames
        padded = np.concatenate([np.repeat(features[:1], k - 1, 0), features]) if len(features) else features
        self.reset()
        steps = range(stride - 1, len(features), stride)
        return (
            np.stack([self.step(padded[t : t + k]) for t in steps])
            if len(steps)
            else np.zeros((0, len(self.bundle.labels)), np.float32)
        )


# ----------------------------------------------------------------------------- verifying


def read_c_array(
    path: str | os.PathLike, max_bytes: int = C_SOURCE_BYTES_PER_MODEL_BYTE * MAX_MODEL_BYTES
) -> bytes:
    """The bytes of the model array in a model_data.cc written by convert (a regular file of
    at most ``max_bytes``)."""
    text = _size_checked(Path(path), max_bytes, "C array source").decode("utf-8", errors="replace")
    body = text.split("g_model_data[]", 1)[-1].split("};", 1)[0]
    return bytes(int(v, 16) for v in re.findall(r"0x([0-9a-fA-F]{2})", body))


def output_tolerance(bundle: Bundle) -> float:
    """How far a re-run may drift from the conversion-time output: float levels 1e-4 (XNNPACK
    and reference kernels sum in different orders); integer outputs 2 quantization steps but at
    least 1e-3 (another machine's kernels may round a step apart, and a streaming state feeds
    any difference back; int16 steps are only 3e-5)."""
    outputs = bundle.manifest["outputs"]
    q = outputs[[d["role"] for d in outputs].index("scores")]["quantization"]
    return 1e-4 if q is None else max(2 * q["scale"], 1e-3) + 1e-6


def verify_bundle(
    path: str | os.PathLike, windows: np.ndarray | None = None, y: np.ndarray | None = None
) -> dict:
    """Re-check a bundle: checksum and manifest (load_bundle), op list against the manifest, C
    array against model.tflite, labels against the loaded model's outputs, and parity: the
    stored check windows re-run through LiteRT must give the conversion-time outputs within
    ``output_tolerance``. With ``windows``/``y`` (e.g. the test split), also re-measures the
    accuracy and compares it with the manifest's (within 0.01 overall error). Returns a report;
    BundleError on the first failure."""
    from edge_sed.core.metrics import classification_metrics

    bundle = load_bundle(path)
    m = bundle.manifest
    report = {
        "bundle": str(bundle.path),
        "level": m["level"],
        "form": m["form"],
        "sha256": "ok",
        "manifest": "ok",
        "model_bytes": len(bundle.model_bytes),
    }
    ops = bundle.info.op_counts()
    if ops != m["ops"]:
        raise BundleError(f"{bundle.path}: the model's operators {ops} differ from the manifest's {m['ops']}")
    report["ops"] = ops
    if SEMANTIC_KEY not in m:
        raise BundleError(
            f"{bundle.path / MANIFEST_FILE}: no '{SEMANTIC_KEY}' (written by an older convert): its "
            "labels and front end cannot be verified; re-convert the run"
        )
    report[SEMANTIC_KEY] = "ok"
    source = bundle.path / C_SOURCE
    if os.path.lexists(source):
        limit = C_SOURCE_BYTES_PER_MODEL_BYTE * len(bundle.model_bytes) + 2**20
        if read_c_array(source, limit) != bundle.model_bytes:
            raise BundleError(f"{bundle.path / C_SOURCE}: the C array is not model.tflite's bytes")
        report["c_array"] = "ok"
    runner = BundleRunner(bundle)
    check = bundle.check_data()
    tol = output_tolerance(bundle)
    if check is not None:
        got = runner.run_stream(check["x"]) if runner.carried else runner.predict_many(check["x"])
        diff = float(np.abs(got - check["litert"]).max())
        report["check_windows"] = len(check["x"])
        report["max_diff_vs_conversion"] = diff
        report["max_diff_vs_torch"] = float(np.abs(got - check["torch"]).max())
        report["tolerance"] = tol
        if diff > tol:
            raise BundleError(
                f"{bundle.path}: outputs on the check windows differ from the conversion-time "
                f"outputs by {diff:.3g} (> {tol:.3g})"
            )
    elif windows is None:
        raise BundleError(f"{bundle.path}: no {CHECK_FILE} and no data given: nothing to check parity on")
    if windows is not None and runner.carried:
        raise BundleError(
            f"{bundle.path}: a stateful bundle is measured on streams, not windows: "
            "use `edge-sed evaluate BUNDLE STREAMS`"
        )
    if windows is not None:
        probs = runner.predict_many(windows)
        metrics = classification_metrics(y, probs.argmax(1), bundle.labels)
        recorded = m["accuracy"].get("overall_error")
        report["test_windows"] = len(windows)
        report["overall_error"] = metrics["overall_error"]
        report["recorded_overall_error"] = recorded
        if recorded is not None and abs(metrics["overall_error"] - recorded) > 0.01:
            raise BundleError(
                f"{bundle.path}: overall error {metrics['overall_error']:.4f} on the given data, "
                f"{recorded:.4f} recorded at conversion (is it the same test split?)"
            )
    return report
