"""A trained run directory -> one bundle directory per quantization level, each proven to give
the trained model's answers (or to differ by a stated amount).

For every run: load best.pt, load the run's splits (its own data, ratio and seed, or --data),
port to Keras and refuse unless the port matches torch within 1e-5 on every test window. Then,
per bundle name (``BUNDLES``):
1. convert (convert.tflite), check the op list (the LSTM must be the fused
   UNIDIRECTIONAL_SEQUENCE_LSTM except where a level needs it unrolled);
2. run the whole test split through LiteRT with edge_sed.core.bundle.BundleRunner — the same code a
   device runs — and record per-class error, overall error, macro-F1, and the difference from
   torch; an fp32 model more than 1e-4 from torch is a failed conversion;
3. for MCU levels (int8, int8-streaming): find the tensor arena by running tflite-micro,
   compare tflite-micro's outputs with LiteRT's, and write model_data.h/.cc;
4. write model.tflite, check.npz, the C files and manifest.json into a temporary directory,
   re-verify it with edge_sed.core.bundle.verify_bundle, and rename it into place, so a kill never
   leaves a half bundle under a bundle's name.
SIGTERM (a service manager stopping the job, a batch scheduler's time limit) is handled as
Ctrl-C is: the temporary directories are removed, the bundles already renamed into place stay
(each whole), no report is written, one line says so, and the process exits 143.
Levels the converter cannot produce are reported "unsupported" with the converter's reason.
"""

from __future__ import annotations

import errno
import importlib.util
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_sed import __version__
from edge_sed.core.atomic import write_json
from edge_sed.core.bundle import (
    C_HEADER,
    C_SOURCE,
    CHECK_FILE,
    MANIFEST_FILE,
    MODEL_FILE,
    SEMANTIC_KEY,
    Bundle,
    BundleRunner,
    semantic_sha256,
    verify_bundle,
)
from edge_sed.core.settings import BUNDLE_NAMES
from edge_sed.core.errors import ConvertError
from edge_sed.core.metrics import classification_metrics
from edge_sed.core.tflite_info import TFLiteInfo, read_tflite_info

from . import port
from .manifest import by_role, check_entry, model_manifest, runtime_name, state_size
from .tflite import (
    FUSED_LSTM_OP,
    UnsupportedLevel,
    convert_saved_model,
    export_saved_model,
    remove_lstm_cell_clip,
)

BUNDLES = BUNDLE_NAMES
"""Bundle names: a quantization level, optionally in the LSTM's streaming form."""
MCU_BUNDLES = ("int8", "int8-streaming", "int16x8-streaming")
"""Full-integer bundles tflite-micro runs: they get an arena size, a TFLM check and C files.
int16x8-streaming is there because an int8 state fed back 98 times drifts (see the manifests'
vs_torch): int16 activations keep the streaming form close to the float model."""
STREAMING_SUFFIX = "-streaming"

FP32_TOLERANCE = 1e-4
"""Largest |probability difference| between an fp32 .tflite and torch on any test window
(measured: ~1e-6 on trained 64-unit LSTMs once the converter's LSTM cell clip is removed, see
convert.tflite.remove_lstm_cell_clip; with the clip it was 1.9e-2 on real-dev)."""
REPRESENTATIVE_PER_CLASS = 100
"""Calibration windows per class from the training split (class-balanced, so the rare classes'
ranges are seen as often as the background's)."""
CHECK_PER_CLASS = 3
"""Test windows per class stored in check.npz for ``verify``."""
TFLM_COMPARE_WINDOWS = 200
"""Test windows run through tflite-micro to compare with LiteRT (TFLM is slow on a host)."""
WARN_ERROR_INCREASE = 0.05
"""A bundle whose overall test error exceeds torch's by more than this (absolute), or whose
predictions agree with torch's on fewer than WARN_AGREEMENT of the test windows, is written
but carries a warning: it converted faithfully to the letter but lost accuracy."""
WARN_AGREEMENT = 0.9
WINDOWED_HOP_FRAMES = 50
"""Suggested hop between windowed-model invocations: 0.5 s, as the experiments evaluate."""


def parse_levels(text: str) -> list[str]:
    if text.strip().lower() == "all":
        return list(BUNDLES)
    names = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [n for n in names if n not in BUNDLES]
    if unknown or not names:
        raise ValueError(
            f"unknown level(s) {', '.join(unknown) or text!r}; choose from all, {', '.join(BUNDLES)}"
        )
    return list(dict.fromkeys(names))


@dataclass
class LevelResult:
    name: str
    status: str  # ok | unsupported | failed
    reason: str | None = None
    path: str | None = None
    manifest: dict = field(default_factory=dict)

    def summary(self) -> dict:
        m = self.manifest
        out = {"name": self.name, "status": self.status, "reason": self.reason, "path": self.path}
        if m:
            acc = m["accuracy"]
            out.update(
                model_bytes=m["model_bytes"],
                ops=m["ops"],
                form=m["form"],
                lstm=m.get("lstm"),
                vs_torch=acc["vs_torch"],
                notes=m.get("notes", []),
                warnings=m.get("warnings", []),
            )
            keys = (
                (
                    "event_f1",
                    "dcase_event_f1",
                    "false_alarms_per_hour",
                    "latency_median_s",
                    "per_class_f1",
                    "torch",
                )
                if m["form"] == "stateful"
                else ("overall_error", "per_class_error", "macro_f1")
            )
            out.update({k: acc[k] for k in keys})
            if m.get("tflm"):
                out["tflm"] = {
                    k: m["tflm"][k]
                    for k in ("arena_bytes", "arena_min_bytes", "vs_litert", "vs_litert_reference_kernels")
                    if k in m["tflm"]
                }
        return out


def _git(*args) -> str | None:
    try:
        out = subprocess.run(
            ["git", "--no-optional-locks", *args],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_commit() -> dict:
    commit = _git("rev-parse", "HEAD")
    dirty = _git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"git_commit": commit, "git_dirty": bool(dirty) if dirty is not None else None}


def balanced_sample(y: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Indices: up to ``per_class`` of each class, seeded, sorted."""
    rng = np.random.default_rng(seed)
    picks = [rng.permutation(np.flatnonzero(y == c))[:per_class] for c in np.unique(y)]
    return np.sort(np.concatenate(picks)) if picks else np.zeros(0, int)


def lstm_trajectories(model, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frames, h, c) at every step of the float LSTM over ``windows``: what the streaming
    model's inputs look like in use, for calibrating its state inputs."""
    kernel, recurrent, bias = port.lstm_weights(model)
    scale, shift = port.standardise_affine(model)
    n, t, _ = windows.shape
    hidden = recurrent.shape[0]
    h = np.zeros((n, hidden), np.float32)
    c = np.zeros((n, hidden), np.float32)
    hs, cs = [], []
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    for step in range(t):
        hs.append(h)
        cs.append(c)
        z = (windows[:, step] * scale + shift) @ kernel + h @ recurrent + bias
        i, f, g, o = np.split(z, 4, axis=1)
        c = sig(f) * c + sig(i) * np.tanh(g)
        h = sig(o) * np.tanh(c)
    return windows.transpose(1, 0, 2).reshape(-1, 1, windows.shape[2]), np.concatenate(hs), np.concatenate(cs)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's process: leave its files alone
    return True


def sweep_stale(out_dir: Path, name: str) -> list[Path]:
    """Remove the hidden ``.{name}.tmp-PID-*`` / ``.{name}.old-PID-*`` directories that a killed
    conversion left behind (their process is gone); a live conversion's are kept. Returns what went."""
    gone = []
    for p in list(out_dir.glob(f".{name}.tmp-*")) + list(out_dir.glob(f".{name}.old-*")):
        try:
            pid = int(p.name.split("-")[1])
        except (IndexError, ValueError):
            continue
        if p.is_dir() and pid != os.getpid() and not _pid_alive(pid):
            shutil.rmtree(p, ignore_errors=True)
            gone.append(p)
    return gone


def _write_bundle_dir(out_dir: Path, name: str, files: dict[str, bytes]) -> Path:
    """Write every file into a hidden temporary directory, manifest last, then rename it to
    ``out_dir/name`` (replacing an older bundle of that name). A killed conversion's leftovers of
    that name go first (``sweep_stale``)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    sweep_stale(out_dir, name)
    tmp = out_dir / f".{name}.tmp-{os.getpid()}-{secrets.token_hex(3)}"
    tmp.mkdir()
    try:
        for fname, data in sorted(files.items(), key=lambda kv: kv[0] == MANIFEST_FILE):
            with open(tmp / fname, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        verify_bundle(tmp)  # the bundle as written must verify, or it never gets its name
        final = out_dir / name
        old = None
        if final.exists():
            old = out_dir / f".{name}.old-{os.getpid()}-{secrets.token_hex(3)}"
            os.replace(final, old)
        os.replace(tmp, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return final
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


class Converter:
    """Holds what every level shares: the run, its splits, torch's answers, the Keras ports."""

    def __init__(self, run_dir, data: str | None = None, log=None):
        self.log = log or (lambda msg: None)
        self.run = port.load_run(run_dir)
        cfg = self.run.config
        from train.data import load_splits

        self.data = data or cfg["data"]
        self.log(f"loading {self.data} (ratio {cfg.get('ratio')}, seed {cfg['seed']})")
        splits = load_splits(self.data, cfg.get("ratio"), cfg["seed"], cfg.get("synth_counts"))
        self.train, self.test = splits["train"], splits["test"]
        if len(self.test.y) == 0:
            raise ConvertError("the test split is empty: nothing to prove parity or accuracy on")
        self.frames, self.n_mels = self.test.x.shape[1:]
        model = self.run.model
        if model.standardise.mean.shape[0] != self.n_mels:
            raise ConvertError(
                f"the model takes {model.standardise.mean.shape[0]} mel bands, the data has {self.n_mels}"
            )
        from edge_sed.core.settings import LABELS

        self.labels = list(LABELS)[: model.classifier[1].out_features]
        self.torch_test = port.torch_probabilities(model, self.test.x)
        self.torch_metrics = classification_metrics(self.test.y, self.torch_test.argmax(1), self.labels)
        self.log("checking the Keras port against torch on every test window")
        self.keras_parity = port.assert_parity(
            model, port.keras_windowed(model, self.frames, batch_size=None), self.test.x
        )
        self._saved_models = {}  # kind -> SavedModel directory, exported once, converted per level
        self._tmp = None  # the SavedModels' directory, made when the first is exported
        seed = cfg["seed"]
        self.rep_x = self.train.x[balanced_sample(self.train.y, REPRESENTATIVE_PER_CLASS, seed)]
        self.check_idx = balanced_sample(self.test.y, CHECK_PER_CLASS, seed + 1)
        self.is_lstm = self.run.model_type == "lstm"
        self.provenance = {
            "objective": cfg.get("objective"),
            "model": self.run.model_type,
            "dataset": self.data,
            "ratio": cfg.get("ratio"),
            "synth_counts": cfg.get("synth_counts") if self.data == "synthetic" else None,
            "seed": seed,
            "run_dir": str(Path(run_dir).resolve()),
            "best_epoch": self.run.metrics.get("best_epoch"),
            **git_commit(),
            "edge_sed_version": __version__,
            "tensorflow": port.tf.__version__,
            "tf_keras": port.keras.__version__,
            "torch": port.torch.__version__,
            "hidden": getattr(getattr(model, "lstm", None), "hidden_size", None),
            "embed_dim": model.embedding.out_features,
            "converted_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()

    def report_facts(self) -> dict:
        return {
            "form": "windowed",
            "test_windows": int(len(self.test.y)),
            "torch": {k: self.torch_metrics[k] for k in ("per_class_error", "overall_error", "macro_f1")},
        }

    def _saved_model(self, kind: str) -> str:
        """The SavedModel of the windowed ("fused" or "unrolled" LSTM) or "streaming" port."""
        if kind not in self._saved_models:
            model = self.run.model
            if kind == "streaming":
                keras_model = port.keras_streaming(model)
            else:
                keras_model = port.keras_windowed(model, self.frames, batch_size=1, unroll=kind == "unrolled")
            if self._tmp is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="edge-sed-convert-")
            self._saved_models[kind] = export_saved_model(keras_model, Path(self._tmp.name) / kind)
        return self._saved_models[kind]

    # -- models and calibration data per level

    def _windowed_rep(self):
        def gen():
            for w in self.rep_x:
                yield [w[None]]

        return gen

    def _streaming_rep(self, samples: int = 1000):
        frames, h, c = lstm_trajectories(self.run.model, self.rep_x)
        idx = np.random.default_rng(self.run.config["seed"]).permutation(len(frames))[:samples]

        def gen():
            for i in idx:
                yield {"frame": frames[i][None], "h": h[i][None], "c": c[i][None]}

        return gen

    def build(self, name: str) -> tuple[bytes, dict]:
        """(.tflite bytes, facts for the manifest) or UnsupportedLevel."""
        streaming = name.endswith(STREAMING_SUFFIX)
        level = name[: -len(STREAMING_SUFFIX)] if streaming else name
        if streaming:
            if not self.is_lstm:
                raise UnsupportedLevel("the streaming (explicit-state) form exists only for the LSTM model")
            rep = self._streaming_rep() if level in ("int8", "int16x8") else None
            return convert_saved_model(self._saved_model("streaming"), level, rep), {
                "level": level,
                "form": "streaming-explicit-state",
                "lstm": "cell",
                "roles": {
                    "frame": "frame",
                    "h": "h",
                    "c": "c",
                    "scores": "scores",
                    "h_out": "h_out",
                    "c_out": "c_out",
                },
            }
        rep = self._windowed_rep() if level in ("int8", "int16x8") else None
        facts = {
            "level": level,
            "form": "windowed",
            "lstm": "fused" if self.is_lstm else None,
            "roles": {"window": "window", "scores": "scores"},
            "notes": [],
        }
        try:
            model_bytes = convert_saved_model(self._saved_model("windowed"), level, rep)
        except UnsupportedLevel as fused_error:
            if not (self.is_lstm and level == "int16x8"):
                raise
            try:
                model_bytes = convert_saved_model(self._saved_model("unrolled"), level, rep)
            except UnsupportedLevel as unrolled_error:
                raise UnsupportedLevel(
                    f"fused LSTM: {fused_error}; unrolled LSTM: {unrolled_error}"
                ) from None
            facts["lstm"] = "unrolled"
            facts["notes"].append(
                f"fused LSTM not convertible at int16x8 ({fused_error}); converted with the "
                f"LSTM unrolled into {self.frames} steps of elementwise ops"
            )
        if facts["lstm"] == "fused":
            if FUSED_LSTM_OP not in read_tflite_info(model_bytes).op_counts():
                raise ConvertError(f"the converter did not produce the fused {FUSED_LSTM_OP} op")
            model_bytes, clips = remove_lstm_cell_clip(model_bytes)
            if any(clips):
                facts["notes"].append(
                    f"the converter set the fused LSTM's cell_clip to {clips[0]:g}; set to 0 "
                    "(no clip) as in the torch model"
                )
        return model_bytes, facts

    # -- one bundle

    def make_bundle(self, name: str, out_dir: Path, progress=None) -> LevelResult:
        try:
            model_bytes, facts = self.build(name)
        except UnsupportedLevel as exc:
            return LevelResult(name, "unsupported", str(exc))
        manifest, info = self._manifest(name, model_bytes, facts)
        bundle = Bundle(out_dir, manifest, model_bytes, info)
        litert = BundleRunner(bundle).predict_many(self.test.x, progress=progress)
        diff = np.abs(litert - self.torch_test)
        manifest["accuracy"] = self._accuracy(litert, diff)
        manifest["warnings"] = self._warnings(name, manifest["accuracy"])
        manifest["parity"] = {
            "keras_vs_torch_max_abs": self.keras_parity,
            "keras_tolerance": port.PARITY_TOLERANCE,
            "tflite_vs_torch_max_abs": float(diff.max()),
        }
        if facts["level"] == "fp32":
            manifest["parity"]["fp32_tolerance"] = FP32_TOLERANCE
            if not diff.max() < FP32_TOLERANCE:
                return LevelResult(
                    name,
                    "failed",
                    f"fp32 TFLite differs from torch by {diff.max():.2e} "
                    f"(> {FP32_TOLERANCE:.0e}): a conversion bug, not quantization",
                )
        idx = self.check_idx
        check, manifest["check"] = check_entry(
            {
                "x": self.test.x[idx],
                "y": self.test.y[idx],
                "litert": litert[idx],
                "torch": self.torch_test[idx],
            },
            "windows",
            "test windows with LiteRT's and torch's outputs at conversion; verify re-runs them",
        )
        files = {MODEL_FILE: model_bytes, CHECK_FILE: check}
        tflm = self._tflm(bundle, litert) if name in MCU_BUNDLES and tflm_available(manifest) else None
        return finish_bundle(out_dir, name, manifest, files, tflm)

    def _manifest(self, name: str, model_bytes: bytes, facts: dict) -> tuple[dict, TFLiteInfo]:
        """The manifest before the model has run: what it is, its tensors, and how to use it."""
        streaming = facts["form"] != "windowed"
        manifest, info = model_manifest(
            model_bytes,
            facts["roles"],
            name=name,
            labels=self.labels,
            sample_rate=self.run.metrics.get("frontend", {}).get("sample_rate", 16000),
            frontend=self.run.metrics.get("frontend") or _default_frontend(),
            window_frames=int(self.frames),
            hop_frames=int(self.frames if streaming else WINDOWED_HOP_FRAMES),
            form=facts["form"],
            level=facts["level"],
            lstm=facts["lstm"],
            provenance=self.provenance,
        )
        manifest["accuracy"] = {}
        manifest["notes"] = facts.get("notes", [])
        if streaming:
            manifest["state"] = {
                "size": state_size(manifest["inputs"]),
                "usage": "one frame per invoke; feed h_out/c_out back as h/c (dequantize with the output's "
                "quantization, quantize with the input's); zero the state every hop_frames frames: the "
                "scores after window_frames frames from zero are the windowed model's. For a shorter "
                "hop run several staggered states.",
            }
        else:
            manifest["usage"] = (
                "invoke on window_frames log-mel frames; a fused-LSTM model keeps state in "
                "variable tensors between invokes in LiteRT: reset_all_variables() before each "
                "window (BundleRunner does)"
            )
        return manifest, info

    def _accuracy(self, litert: np.ndarray, diff: np.ndarray) -> dict:
        """The bundle's scores on the test split (LiteRT), torch's, and how far apart they are."""
        metrics = classification_metrics(self.test.y, litert.argmax(1), self.labels)
        keys = ("per_class_error", "overall_error", "macro_f1", "accuracy", "support", "confusion_matrix")
        return {
            "split": "test",
            "windows": int(len(self.test.y)),
            "runtime": runtime_name(),
            "metric_note": "per-class error = 1 - recall; overall error = mean of per-class errors; macro-F1",
            **{k: metrics[k] for k in keys},
            "torch": {k: self.torch_metrics[k] for k in ("per_class_error", "overall_error", "macro_f1")},
            "vs_torch": {
                "overall_error_diff": metrics["overall_error"] - self.torch_metrics["overall_error"],
                "macro_f1_diff": metrics["macro_f1"] - self.torch_metrics["macro_f1"],
                "prediction_agreement": float(np.mean(litert.argmax(1) == self.torch_test.argmax(1))),
                "max_abs_prob_diff": float(diff.max()),
                "mean_abs_prob_diff": float(diff.mean()),
            },
        }

    def _warnings(self, name: str, accuracy: dict) -> list[str]:
        """A bundle that converted faithfully but lost accuracy against torch says so."""
        vs = accuracy["vs_torch"]
        if not (
            vs["overall_error_diff"] > WARN_ERROR_INCREASE or vs["prediction_agreement"] < WARN_AGREEMENT
        ):
            return []
        advice = (
            "; an int8 LSTM state fed back every frame is too coarse: prefer int16x8-streaming "
            "or the windowed int8 model"
            if name == "int8-streaming"
            else ""
        )
        return [
            f"{name} loses accuracy: overall error {accuracy['overall_error']:.3f} vs torch "
            f"{self.torch_metrics['overall_error']:.3f}, predictions agree on "
            f"{vs['prediction_agreement']:.1%} of test windows{advice}"
        ]

    def _tflm(self, bundle: Bundle, litert: np.ndarray) -> dict:
        """Arena size, and tflite-micro's outputs against LiteRT's (as the Pi runs it, with
        XNNPACK) and against LiteRT's reference kernels, on the first test windows."""
        from firmware_sim.tflm import LiteRTReferenceBackend, MicroBackend, compare_outputs, find_arena_bytes

        arena = find_arena_bytes(bundle.model_bytes)
        n = min(TFLM_COMPARE_WINDOWS, len(self.test.x))
        micro = BundleRunner(bundle, backend=MicroBackend(bundle.model_bytes, arena["arena_bytes"]))
        micro_out = micro.predict_many(self.test.x[:n])
        reference_backend = LiteRTReferenceBackend(bundle.model_bytes)
        reference = BundleRunner(bundle, backend=reference_backend).predict_many(self.test.x[:n])
        scale = by_role(bundle.manifest["outputs"], "scores")["quantization"]["scale"]
        arena["vs_litert"] = compare_outputs(micro_out, litert[:n], scale)
        arena["vs_litert_reference_kernels"] = compare_outputs(micro_out, reference, scale)
        arena["litert_xnnpack_vs_reference_kernels"] = compare_outputs(litert[:n], reference, scale)
        return arena


def tflm_available(manifest: dict) -> bool:
    """Whether tflite-micro can size an MCU level's arena here; if not (it has wheels for Linux
    x86_64 only), the bundle is written without arena, TFLM check and C array, and says so."""
    if importlib.util.find_spec("tflite_micro") is not None:
        return True
    manifest["warnings"].append(
        "no tensor arena size, TFLM check or C array: tflite-micro is not installed here "
        "(it has wheels for Linux x86_64 only; convert there with edge-sed[sim] for an MCU)"
    )
    return False


def finish_bundle(out_dir: Path, name: str, manifest: dict, files: dict, tflm: dict | None) -> LevelResult:
    """The end every converter shares: tflite-micro's facts and the C array for an MCU level,
    the semantic checksum, manifest.json, and the directory written whole (_write_bundle_dir)."""
    if tflm is not None:
        manifest["tflm"] = tflm
        header, source = _c_files(files[MODEL_FILE], manifest)
        files[C_HEADER], files[C_SOURCE] = header.encode(), source.encode()
    manifest[SEMANTIC_KEY] = semantic_sha256(manifest)
    files[MANIFEST_FILE] = (json.dumps(manifest, indent=2) + "\n").encode()
    path = _write_bundle_dir(out_dir, name, files)
    return LevelResult(name, "ok", None, str(path), manifest)


def _c_files(model_bytes, manifest):
    from .micro import c_array_files

    return c_array_files(model_bytes, manifest, manifest["tflm"]["arena_bytes"])


def _default_frontend() -> dict:
    from edge_sed.core.frontend import FrontendConfig

    return FrontendConfig().to_dict()


class Terminated(SystemExit):
    """SIGTERM arrived during a conversion: raised in the main thread, like Ctrl-C's
    KeyboardInterrupt, so every clean-up on the way out runs; exits 143 (128 + SIGTERM)."""

    def __init__(self):
        super().__init__(128 + signal.SIGTERM)


@contextmanager
def _sigterm_raises_terminated():
    """Within the block SIGTERM raises :class:`Terminated` (its default action ends the process
    on the spot, leaving the temporary directories); a second one is ignored while cleaning
    up. Yields a dict whose "set" turns true at the signal, for code that must notice it even
    where TensorFlow turned the exception into one of its own."""
    state = {"set": False}
    if threading.current_thread() is not threading.main_thread():  # signals only reach that one
        yield state
        return

    def handler(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        state["set"] = True
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield state
    except Terminated:  # the clean-up inside the block has run by now
        print(
            "error: convert stopped by SIGTERM: temporary files removed, the bundles written before "
            "it are whole, no report written",
            file=sys.stderr,
            flush=True,
        )
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run_form(run_dir) -> str:
    try:
        return json.loads((Path(run_dir) / "config.json").read_text()).get("form", "windowed")
    except (OSError, ValueError):
        return "windowed"  # Converter says what is wrong with the run


def convert_run(
    run_dir, out_dir, levels=BUNDLES, data: str | None = None, log=None, on_level=None, progress=None
) -> dict:
    """Convert ``run_dir`` into ``out_dir/<level>/`` for each of ``levels``; returns the report
    also written to ``out_dir/convert-report.json``. ``on_level(LevelResult)`` after each level,
    ``progress(done, total)`` within one (test windows run). SIGTERM raises
    :class:`Terminated` after cleaning up (module doc)."""
    with _sigterm_raises_terminated() as sigterm:
        return _convert_run(run_dir, Path(out_dir), levels, data, log, on_level, progress, sigterm)


def _convert_run(run_dir, out_dir: Path, levels, data, log, on_level, progress, sigterm) -> dict:
    started = time.perf_counter()
    if _run_form(run_dir) == "stateful":
        from .stateful import STATEFUL_BUNDLES, StatefulConverter

        conv = StatefulConverter(run_dir, data, log)
        if list(levels) == list(BUNDLES):  # "all": every level the stateful form has
            levels = STATEFUL_BUNDLES
    else:
        conv = Converter(run_dir, data, log)
    results = []
    try:
        for name in levels:
            (log or (lambda m: None))(f"converting {name}")
            try:
                result = conv.make_bundle(name, out_dir, progress)
            except ConvertError as exc:
                result = LevelResult(name, "failed", str(exc))
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as exc:  # one level's failure must not hide the others' results
                if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
                    raise  # a full disk fails every later level too
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                result = LevelResult(name, "failed", f"{type(exc).__name__}: {first}")
            if sigterm["set"]:  # TensorFlow turned the signal's exception into its own, or ate it
                raise Terminated()
            results.append(result)
            if on_level:
                on_level(result)
    finally:
        conv.close()
    report = {
        "run_dir": str(Path(run_dir).resolve()),
        "out": str(out_dir.resolve()),
        "model": conv.run.model_type,
        "objective": conv.run.config.get("objective"),
        **conv.report_facts(),
        "keras_vs_torch_max_abs": conv.keras_parity,
        "levels": [r.summary() for r in results],
        "seconds": round(time.perf_counter() - started, 1),
    }
    write_json(report, out_dir / "convert-report.json")
    return report
