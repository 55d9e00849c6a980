"""Loading, running and verifying bundles (edge_sed.core.bundle, numpy only) and reading .tflite
files without TensorFlow (edge_sed.core.tflite_info). Every broken bundle is refused with a one-line
BundleError before a runtime sees the model."""

import hashlib
import json
import os
import shutil

import numpy as np
import pytest

from edge_sed.core.bundle import (
    FIELDS,
    Bundle,
    BundleRunner,
    load_bundle,
    quantize,
    dequantize,
    verify_bundle,
)
from edge_sed.core.errors import BundleError
from edge_sed.core.runtime import load_interpreter
from edge_sed.core.tflite_info import read_tflite_info


@pytest.fixture
def bundle_dir(tiny_bundles, tmp_path):
    """A private copy of the tiny int8 bundle, free to break."""
    return shutil.copytree(tiny_bundles[0] / "int8", tmp_path / "int8")


def manifest_of(path):
    return json.loads((path / "manifest.json").read_text())


def write_manifest(path, manifest):
    (path / "manifest.json").write_text(json.dumps(manifest))


def refused(path, *fragments):
    with pytest.raises(BundleError) as err:
        load_bundle(path)
    message = str(err.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_a_good_bundle_loads_and_predicts(bundle_dir):
    bundle = load_bundle(bundle_dir)
    assert bundle.labels == ["dog", "baby_cry", "gunshot", "background"]
    assert bundle.level == "int8" and bundle.form == "windowed"
    assert bundle.frontend.n_mels == 40 and bundle.window_frames == 98
    check = bundle.check_data()
    probs = BundleRunner(bundle).predict(check["x"][0])
    assert probs.shape == (4,) and probs.dtype == np.float32
    assert abs(probs.sum() - 1) < 0.02  # int8 softmax: steps of 1/256
    np.testing.assert_allclose(probs, check["litert"][0], atol=1e-6)


def test_flipped_byte_is_refused(bundle_dir):
    model = bundle_dir / "model.tflite"
    data = bytearray(model.read_bytes())
    data[100] ^= 0x40
    model.write_bytes(bytes(data))
    refused(bundle_dir, "sha256", "does not match")


def test_truncated_model_is_refused(bundle_dir):
    model = bundle_dir / "model.tflite"
    model.write_bytes(model.read_bytes()[:1000])
    refused(bundle_dir, "truncated")


def test_non_tflite_file_is_refused_even_with_a_matching_checksum(bundle_dir):
    fake = b"PK\x03\x04 this is a zip file, not a model " * 20
    (bundle_dir / "model.tflite").write_bytes(fake)
    m = manifest_of(bundle_dir)
    m.update(sha256=hashlib.sha256(fake).hexdigest(), model_bytes=len(fake))
    write_manifest(bundle_dir, m)
    refused(bundle_dir, "not a TFLite model", "TFL3")


def test_corrupt_flatbuffer_with_the_identifier_is_refused(bundle_dir):
    fake = b"\x10\x00\x00\x00TFL3" + b"\xff" * 200  # right identifier, nonsense tables
    (bundle_dir / "model.tflite").write_bytes(fake)
    m = manifest_of(bundle_dir)
    m.update(sha256=hashlib.sha256(fake).hexdigest(), model_bytes=len(fake))
    write_manifest(bundle_dir, m)
    refused(bundle_dir, "model.tflite")


@pytest.mark.parametrize("field", sorted(FIELDS))
def test_manifest_missing_a_required_field_is_refused(bundle_dir, field):
    m = manifest_of(bundle_dir)
    del m[field]
    write_manifest(bundle_dir, m)
    refused(bundle_dir, f"'{field}'")


@pytest.mark.parametrize(
    "change, fragment",
    [
        ({"format_version": 99}, "format_version 99 is not supported"),
        ({"window_frames": "98"}, "'window_frames' should be a int"),
        ({"level": "int4"}, "unknown level"),
        ({"form": "sliding"}, "unknown form"),
        ({"sha256": "abc"}, "64 lowercase hex"),
        ({"sample_rate": 8000}, "disagrees with frontend"),
        ({"frontend": {"n_mels": 40, "bogus": 1}}, "bad 'frontend'"),
        ({"window_frames": 49}, "window_frames say"),
        ({"labels": ["dog", "dog", "gunshot", "background"]}, "distinct"),
    ],
)
def test_manifest_with_a_wrong_field_is_refused(bundle_dir, change, fragment):
    write_manifest(bundle_dir, {**manifest_of(bundle_dir), **change})
    refused(bundle_dir, fragment)


def test_manifest_quantization_that_is_not_the_models_is_refused(bundle_dir):
    m = manifest_of(bundle_dir)
    m["inputs"][0]["quantization"]["scale"] *= 1.5
    write_manifest(bundle_dir, m)
    refused(bundle_dir, "quantization")


def test_invalid_json_and_missing_files_are_refused(bundle_dir, tmp_path):
    (bundle_dir / "manifest.json").write_text("{not json")
    refused(bundle_dir, "not valid JSON")
    (bundle_dir / "manifest.json").unlink()
    refused(bundle_dir, "no manifest.json")
    refused(tmp_path / "nowhere", "not a bundle directory")


def test_oversized_model_is_refused_before_reading(bundle_dir, monkeypatch):
    import edge_sed.core.bundle as bundle_module

    monkeypatch.setattr(bundle_module, "MAX_MODEL_BYTES", 1000)
    refused(bundle_dir, "limit")


def test_labels_not_matching_the_outputs_are_refused(bundle_dir):
    m = manifest_of(bundle_dir)
    m["labels"] = ["dog", "baby_cry", "background"]
    write_manifest(bundle_dir, m)
    refused(bundle_dir, "3 labels", "4 scores")
    # and, should a Bundle reach the runtime unchecked, the runner checks the loaded model too
    m["labels"] = ["a", "b", "c"]
    model = (bundle_dir / "model.tflite").read_bytes()
    bundle = Bundle(bundle_dir, m, model, read_tflite_info(model))
    with pytest.raises(BundleError, match="outputs 4 scores for 3 labels"):
        BundleRunner(bundle)


def test_verify_checks_the_c_array_and_the_check_windows(bundle_dir):
    report = verify_bundle(bundle_dir)
    assert report["c_array"] == "ok" and report["max_diff_vs_conversion"] <= report["tolerance"]
    cc = bundle_dir / "model_data.cc"
    text = cc.read_text()
    assert ", 0x00," in text
    cc.write_text(text.replace(", 0x00,", ", 0x01,", 1))
    with pytest.raises(BundleError, match="C array"):
        verify_bundle(bundle_dir)
    cc.write_text(text)
    check = bundle_dir / "check.npz"
    check.write_bytes(check.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(BundleError, match="check.npz: checksum"):
        verify_bundle(bundle_dir)


def test_verify_refuses_outputs_that_drifted(bundle_dir):
    """A model that loads but answers differently from conversion time (here: the recorded
    outputs are edited, with the check file's checksum updated) fails verification."""
    check = dict(np.load(bundle_dir / "check.npz"))
    check["litert"] = np.roll(check["litert"], 1, axis=1)
    np.savez(bundle_dir / "check.npz", **check)
    m = manifest_of(bundle_dir)
    m["check"]["sha256"] = hashlib.sha256((bundle_dir / "check.npz").read_bytes()).hexdigest()
    write_manifest(bundle_dir, m)
    with pytest.raises(BundleError, match="differ from the conversion-time outputs"):
        verify_bundle(bundle_dir)


def test_a_killed_conversion_leaves_no_bundle(tiny_bundles, tmp_path, monkeypatch):
    """Files are written into a hidden temporary directory and renamed into place only after
    the bundle verifies; a failure half-way leaves neither a bundle nor the temporary."""
    import convert.bundles as bundles

    src = tiny_bundles[0] / "fp32"
    files = {p.name: p.read_bytes() for p in src.iterdir()}

    def killed(path):
        raise KeyboardInterrupt

    monkeypatch.setattr(bundles, "verify_bundle", killed)
    with pytest.raises(KeyboardInterrupt):
        bundles._write_bundle_dir(tmp_path, "fp32", files)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    path = bundles._write_bundle_dir(tmp_path, "fp32", files)
    assert load_bundle(path).level == "fp32" and [p.name for p in tmp_path.iterdir()] == ["fp32"]
    # replacing an existing bundle also goes through the temporary directory
    bundles._write_bundle_dir(tmp_path, "fp32", files)
    assert [p.name for p in tmp_path.iterdir()] == ["fp32"]
    # a SIGKILL leaves its temporary behind (no handler runs): the next conversion of that level
    # removes it once its process is gone, and keeps a live conversion's
    import subprocess

    dead = subprocess.Popen(["true"])
    dead.wait()  # its pid is free now
    for stale in (
        f".fp32.tmp-{dead.pid}-abc123",
        f".fp32.old-{dead.pid}-abc123",
        f".fp32.tmp-{os.getppid()}-def456",
    ):
        (tmp_path / stale).mkdir()
        (tmp_path / stale / "model.tflite").write_bytes(b"half")
    bundles._write_bundle_dir(tmp_path, "fp32", files)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["fp32", f".fp32.tmp-{os.getppid()}-def456"])


def test_quantize_round_trip():
    q = {"scale": 0.1, "zero_point": -3}
    x = np.array([-20.0, -1.0, 0.0, 0.04, 0.06, 12.4, 100.0], np.float32)
    v = quantize(x, q, "int8")
    assert v.dtype == np.int8 and v.tolist() == [-128, -13, -3, -3, -2, 121, 127]
    np.testing.assert_allclose(dequantize(v, q)[1:-1], np.round(x[1:-1] / 0.1) * 0.1, atol=1e-6)
    assert quantize(x, None, "float32") is not None and dequantize(x, None).dtype == np.float32


# ------------------------------------------------------------------ .tflite without TF


def test_tflite_info_agrees_with_the_interpreter(tiny_bundles):
    for name in ("fp32", "int8", "int8-streaming"):
        model = (tiny_bundles[0] / name / "model.tflite").read_bytes()
        info = read_tflite_info(model)
        interp = load_interpreter(model)
        for ours, theirs in (
            (info.inputs, interp.get_input_details()),
            (info.outputs, interp.get_output_details()),
        ):
            assert [t.index for t in ours] == [d["index"] for d in theirs]
            assert [t.shape for t in ours] == [d["shape"].tolist() for d in theirs]
            assert [t.dtype for t in ours] == [np.dtype(d["dtype"]).name for d in theirs]
        # the interpreter lists the model's nodes first, then any XNNPACK DELEGATE nodes it added
        assert [op["op_name"] for op in interp._get_ops_details()][: len(info.ops)] == info.ops
    assert (
        "UNIDIRECTIONAL_SEQUENCE_LSTM"
        in read_tflite_info((tiny_bundles[0] / "fp32" / "model.tflite").read_bytes()).op_counts()
    )


def test_tflite_info_never_crashes_on_damaged_files(tiny_bundles):
    model = (tiny_bundles[0] / "int8" / "model.tflite").read_bytes()
    rng = np.random.default_rng(0)
    for cut in list(rng.integers(8, len(model), 40)) + [8, 12, 16, 64]:
        try:
            read_tflite_info(model[:cut])
        except ValueError:
            pass
    for _ in range(40):
        data = bytearray(model)
        for i in rng.integers(8, len(data), 20):
            data[i] = rng.integers(0, 256)
        try:
            read_tflite_info(bytes(data))
        except ValueError:
            pass


def test_verify_runs_on_a_device_without_tensorflow_or_torch(tiny_bundles, tmp_path):
    """What a Pi has: numpy, LiteRT, edge_sed. verify loads, lists ops and re-runs the check
    windows with tensorflow, tf_keras, torch and tflite_micro made unimportable."""
    import subprocess
    import sys
    import textwrap

    script = tmp_path / "device.py"
    script.write_text(
        textwrap.dedent(f"""
        import importlib.abc, sys
        class Blocker(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name.split(".")[0] in {{"torch", "tensorflow", "tf_keras", "keras", "tflite_micro",
                                           "train", "convert"}}:
                    raise ImportError(name + " is blocked")
        sys.meta_path.insert(0, Blocker())
        from edge_sed.cli import main
        sys.exit(main(["verify", r"{tiny_bundles[0]}"]))
    """)
    )
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(": OK ") == sum(l["status"] == "ok" for l in tiny_bundles[1]["levels"])
