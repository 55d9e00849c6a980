"""The TFLite runtime loader: ai_edge_litert first, tflite_runtime as the fallback, a real model
through the real runtime."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from edge_sed.core.errors import EdgeSedError
from edge_sed.core.runtime import interpreter_class, load_interpreter


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A real .tflite (y = softmax(x W + b)) made by TensorFlow's converter in a subprocess, so
    this test process never imports TensorFlow."""
    path = tmp_path_factory.mktemp("model") / "tiny.tflite"
    code = textwrap.dedent(
        f"""
        import numpy as np, tensorflow as tf
        w = tf.constant(np.arange(12, dtype=np.float32).reshape(4, 3) / 10)
        @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32)])
        def f(x):
            return tf.nn.softmax(tf.matmul(x, w) + 0.5)
        conv = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f)
        open(r"{path}", "wb").write(conv.convert())
        """
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300, env=env, capture_output=True)
    return path


def test_prefers_ai_edge_litert():
    _, module = interpreter_class()
    assert module == "ai_edge_litert.interpreter"


def test_real_model_runs(tiny_model):
    interp = load_interpreter(tiny_model)
    x = np.array([[1, 0, -1, 2]], np.float32)
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    y = interp.get_tensor(interp.get_output_details()[0]["index"])
    logits = x @ (np.arange(12, dtype=np.float32).reshape(4, 3) / 10) + 0.5
    np.testing.assert_allclose(y, np.exp(logits) / np.exp(logits).sum(), rtol=1e-5)
    # from bytes as well as from a path
    assert load_interpreter(tiny_model.read_bytes()).get_input_details()[0]["shape"].tolist() == [1, 4]


def test_garbage_model_is_refused_in_one_line(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(EdgeSedError) as err:
        load_interpreter(bad)
    assert "refused the model" in str(err.value) and "\n" not in str(err.value)


def _run_with(tmp_path, block, fake_tflite_runtime):
    if fake_tflite_runtime:
        pkg = tmp_path / "tflite_runtime"
        pkg.mkdir()
        (pkg / "__init__.py").write_text("")
        (pkg / "interpreter.py").write_text("class Interpreter:\n    marker = 'old-pi-runtime'\n")
    code = textwrap.dedent(
        f"""
        import importlib.abc, sys
        class Blocker(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name.split(".")[0] in {block!r}:
                    raise ImportError("blocked")
        sys.meta_path.insert(0, Blocker())
        sys.path.insert(0, r"{tmp_path}")
        from edge_sed.core.runtime import interpreter_class
        from edge_sed.core.errors import EdgeSedError
        try:
            cls, module = interpreter_class()
            print(module, getattr(cls, "marker", ""))
        except EdgeSedError as exc:
            print("error:", exc)
        """
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout


def test_falls_back_to_tflite_runtime_on_old_pi_images(tmp_path):
    out = _run_with(tmp_path, {"ai_edge_litert"}, fake_tflite_runtime=True)
    assert out.strip() == "tflite_runtime.interpreter old-pi-runtime"


def test_no_runtime_says_what_to_install(tmp_path):
    out = _run_with(tmp_path, {"ai_edge_litert", "tflite_runtime"}, fake_tflite_runtime=False)
    assert out.startswith("error: no TFLite runtime: pip install ai-edge-litert")
