"""The bad-model matrix (issue 9): tampered, truncated, foreign and mis-described bundles through
every command that reads a model - the load_bundle API, `verify`, `listen --bundle`, `bench` and
`report`. Each is refused with one line naming the file, and the TFLite runtime never sees the
bytes of a refused model (load_bundle checks sizes, the manifest, the TFL3 identifier, the sha256
and the model's tensors first)."""

import hashlib
import json
import shutil

import numpy as np
import pytest
import soundfile as sf

import edge_sed.core.runtime
from edge_sed.core.bundle import MAX_MODEL_BYTES, load_bundle, verify_bundle
from edge_sed.core.errors import BundleError

from test_bad_audio import assert_one_line_error, run_cli


def _manifest(d):
    return json.loads((d / "manifest.json").read_text())


def _set_manifest(d, **changes):
    m = _manifest(d)
    for key, value in changes.items():
        if value is _DELETE:
            del m[key]
        else:
            m[key] = value
    (d / "manifest.json").write_text(json.dumps(m))


_DELETE = object()


def _replace_model(d, data: bytes, update_manifest: bool):
    (d / "model.tflite").write_bytes(data)
    if update_manifest:  # a consistent forgery: checksum and size describe the new bytes
        _set_manifest(d, sha256=hashlib.sha256(data).hexdigest(), model_bytes=len(data))


def flip_byte(d, others):
    data = bytearray((d / "model.tflite").read_bytes())
    data[len(data) // 2] ^= 0x01
    (d / "model.tflite").write_bytes(bytes(data))


def truncate(d, others):
    data = (d / "model.tflite").read_bytes()
    (d / "model.tflite").write_bytes(data[: len(data) * 2 // 3])


def truncate_consistently(d, others):
    data = (d / "model.tflite").read_bytes()
    _replace_model(d, data[: len(data) * 2 // 3], update_manifest=True)


def foreign_model(d, others):
    """A valid .tflite that is not this bundle's model: the streaming model (inputs frame/h/c),
    with a manifest whose sha256 and size were updated to match it."""
    _replace_model(d, (others / "fp32-streaming" / "model.tflite").read_bytes(), update_manifest=True)


def foreign_model_same_io_kind(d, others):
    """Another windowed model with the right checksum but different quantization: int8 in/out."""
    _replace_model(d, (others / "int8" / "model.tflite").read_bytes(), update_manifest=True)


def zip_named_tflite(d, others):
    _replace_model(d, b"PK\x03\x04" + b"a zip file, not a model " * 40, update_manifest=True)


def garbage_with_identifier(d, others):
    _replace_model(d, b"\x18\x00\x00\x00TFL3" + bytes(range(256)) * 4, update_manifest=True)


def oversized(d, others):
    """A model.tflite over the size limit (a sparse file: nothing is written, nothing is read)."""
    with open(d / "model.tflite", "r+b") as f:
        f.truncate(MAX_MODEL_BYTES + 1)


def no_model(d, others):
    (d / "model.tflite").unlink()


def manifest_not_json(d, others):
    (d / "manifest.json").write_text('{"format_version": 1, "labels": ["dog",')


def manifest_missing_labels(d, others):
    _set_manifest(d, labels=_DELETE)


def manifest_missing_sha256(d, others):
    _set_manifest(d, sha256=_DELETE)


def manifest_wrong_type(d, others):
    _set_manifest(d, window_frames="98")


def manifest_wrong_version(d, others):
    _set_manifest(d, format_version=2)


def manifest_wrong_sample_rate(d, others):
    _set_manifest(d, sample_rate=44100)


def manifest_wrong_frontend(d, others):
    m = _manifest(d)
    _set_manifest(d, frontend={**m["frontend"], "n_mels": 64})


def labels_fewer_than_outputs(d, others):
    _set_manifest(d, labels=["dog", "baby_cry", "background"])


def labels_more_than_outputs(d, others):
    _set_manifest(d, labels=["dog", "baby_cry", "gunshot", "background", "siren"])


def _manifest_case(**changes):
    return lambda d, others: _set_manifest(d, **changes)


def _frontend_case(**changes):
    return lambda d, others: _set_manifest(d, frontend={**_manifest(d)["frontend"], **changes})


def swapped_labels(d, others):
    """Same labels, two of them swapped: every field still valid, the answers mean other classes."""
    labels = _manifest(d)["labels"]
    labels[0], labels[2] = labels[2], labels[0]
    _set_manifest(d, labels=labels)


def nan_in_manifest(d, others):
    (d / "manifest.json").write_text(
        (d / "manifest.json").read_text().replace('"log_floor": 1e-06', '"log_floor": NaN')
    )


def huge_manifest(d, others):
    (d / "manifest.json").write_text(json.dumps({**_manifest(d), "padding": "x" * (2 * 1024**2)}))


# case -> (tamper(bundle dir, all bundles dir), fragments of the one-line error)
CASES = {
    "one flipped byte": (flip_byte, ["model.tflite", "sha256", "does not match"]),
    "truncated .tflite": (truncate, ["model.tflite", "truncated or replaced"]),
    "truncated .tflite, manifest updated": (truncate_consistently, ["model.tflite"]),
    "valid .tflite, not our model (streaming I/O)": (foreign_model, ["inputs"]),
    "valid .tflite, not our model (int8 I/O)": (foreign_model_same_io_kind, ["window", "float32", "int8"]),
    "zip named model.tflite": (zip_named_tflite, ["not a TFLite model", "TFL3"]),
    "garbage with the TFL3 identifier": (garbage_with_identifier, ["model.tflite"]),
    "model over the size limit": (oversized, ["model.tflite", "limit"]),
    "no model.tflite": (no_model, ["no model.tflite"]),
    "manifest not JSON": (manifest_not_json, ["manifest.json", "not valid JSON"]),
    "manifest over the size limit": (huge_manifest, ["manifest.json", "limit"]),
    "manifest missing 'labels'": (manifest_missing_labels, ["'labels'", "missing"]),
    "manifest missing 'sha256'": (manifest_missing_sha256, ["'sha256'", "missing"]),
    "manifest field of the wrong type": (manifest_wrong_type, ["'window_frames' should be a int"]),
    "manifest from a newer edge-sed": (manifest_wrong_version, ["format_version 2 is not supported"]),
    "manifest sample rate not the front end's": (manifest_wrong_sample_rate, ["sample_rate 44100"]),
    "manifest front end not the model's": (manifest_wrong_frontend, ["window input", "64"]),
    "manifest missing 'form'": (_manifest_case(form=_DELETE), ["'form'", "missing"]),
    "manifest missing 'level'": (_manifest_case(level=_DELETE), ["'level'", "missing"]),
    "manifest missing 'inputs'": (_manifest_case(inputs=_DELETE), ["'inputs'", "missing"]),
    "manifest with an unknown form": (_manifest_case(form="weird"), ["unknown form 'weird'"]),
    "manifest with an unknown level": (_manifest_case(level="int4"), ["unknown level 'int4'"]),
    "manifest with a malformed sha256": (_manifest_case(sha256="abc"), ["'sha256' is not 64 lowercase hex"]),
    "duplicate labels": (
        _manifest_case(labels=["dog", "dog", "gunshot", "background"]),
        ["'labels' must be", "distinct"],
    ),
    "fewer labels than outputs": (labels_fewer_than_outputs, ["3 labels", "4 scores"]),
    # the front end (issue 18): each of these passed verify and then broke listen
    "front end log_floor -1 (NaN scores)": (_frontend_case(log_floor=-1), ["'frontend'", "log_floor"]),
    "front end window_ms 0": (_frontend_case(window_ms=0), ["'frontend'", "window_ms"]),
    "front end hop_ms 1000": (_frontend_case(hop_ms=1000), ["'frontend'", "hop_ms"]),
    "front end fmin_hz 3999.9 (empty bands)": (
        _frontend_case(fmin_hz=3999.9),
        ["'frontend'", "fmin_hz", "no FFT bin"],
    ),
    "front end n_fft 512.5": (_frontend_case(n_fft=512.5), ["'frontend'", "n_fft"]),
    "front end n_fft 2**24 (a hang)": (
        _frontend_case(n_fft=16777216),
        ["'frontend'", "n_fft", "power of two"],
    ),
    "front end without a field": (
        lambda d, o: _set_manifest(
            d, frontend={k: v for k, v in _manifest(d)["frontend"].items() if k != "log_floor"}
        ),
        ["'frontend'", "missing log_floor"],
    ),
    "NaN in the manifest": (nan_in_manifest, ["not valid JSON", "NaN"]),
    # valid fields, but not the ones convert wrote: the semantic checksum
    "front end edited within bounds": (_frontend_case(fmax_hz=3900.0), ["semantic_sha256", "edited"]),
    "labels swapped": (swapped_labels, ["semantic_sha256"]),
    "windows hop edited": (_manifest_case(hop_frames=25), ["semantic_sha256"]),
    "semantic_sha256 malformed": (
        _manifest_case(semantic_sha256="abc"),
        ["'semantic_sha256'", "64 lowercase hex"],
    ),
    # strings that would reach a terminal or a shell
    "a label with a newline": (
        _manifest_case(labels=["dog\nerror: fake", "baby_cry", "gunshot", "background"]),
        ["'labels'", "control character", "\\n"],
    ),
    "a label with an ANSI escape": (
        _manifest_case(labels=["\x1b[2Jdog", "baby_cry", "gunshot", "background"]),
        ["'labels'", "control character", "\\x1b"],
    ),
    "a name with a control character": (_manifest_case(name="fp32\r"), ["'name'", "control character"]),
    "check that is not an object": (_manifest_case(check="abc"), ["'check'", "sha256"]),
    "checked_on with a shell command": (
        _manifest_case(checked_on=["aarch64 $(touch /tmp/x)"]),
        ["'checked_on'"],
    ),
    "checked_on not a list": (_manifest_case(checked_on="aarch64"), ["'checked_on'"]),
    "more labels than outputs": (labels_more_than_outputs, ["5 labels", "4 scores"]),
}


@pytest.fixture
def broken(tiny_bundles, tmp_path, request, monkeypatch):
    """A private copy of the tiny fp32 bundle (in a bundles folder of its own), broken by the
    case's tamper function. The TFLite runtime is watched: it records every model it is given."""
    case = request.param
    bundles = tmp_path / "bundles"
    d = shutil.copytree(tiny_bundles[0] / "fp32", bundles / "fp32")
    CASES[case][0](d, tiny_bundles[0])
    seen = []
    real = edge_sed.core.runtime.load_interpreter

    def watched(model, *args, **kw):
        seen.append(model)
        return real(model, *args, **kw)

    monkeypatch.setattr(edge_sed.core.runtime, "load_interpreter", watched)
    return case, d, seen


ALL = pytest.mark.parametrize("broken", list(CASES), indirect=True)


@pytest.fixture(scope="module")
def wav(tmp_path_factory):
    path = tmp_path_factory.mktemp("wav") / "three seconds.wav"
    sf.write(path, np.random.default_rng(0).normal(0, 0.1, 48000).astype(np.float32), 16000)
    return path


@ALL
def test_load_bundle_refuses(broken):
    case, d, seen = broken
    with pytest.raises(BundleError) as err:
        load_bundle(d)
    message = str(err.value)
    assert "\n" not in message
    for fragment in CASES[case][1]:
        assert fragment in message, (fragment, message)
    with pytest.raises(BundleError):
        verify_bundle(d)
    assert seen == [], "the runtime was handed a model that failed the checks"


@ALL
def test_verify_refuses(capfd, broken):
    case, d, seen = broken
    for path in (d, d.parent):  # the bundle, and the bundles folder holding it
        code, out, err = run_cli(capfd, "verify", path)
        assert_one_line_error(code, err, *CASES[case][1])
    assert seen == []


@ALL
def test_listen_refuses(capfd, broken, wav):
    case, d, seen = broken
    code, out, err = run_cli(capfd, "listen", "--bundle", d, "--file", wav, "--json")
    assert_one_line_error(code, err, *CASES[case][1])
    assert out == "" and seen == []


@ALL
def test_bench_refuses(capfd, broken):
    case, d, seen = broken
    code, out, err = run_cli(capfd, "bench", d.parent, "--rounds", "1", "--json")
    assert_one_line_error(code, err, *CASES[case][1])
    assert seen == []


@pytest.mark.parametrize("part", ["check.npz", "model_data.cc"])
def test_verify_catches_what_listen_does_not_need(capfd, tiny_bundles, tmp_path, part):
    """check.npz (parity windows) and the C array are not read by listen; verify (and deploy,
    which runs verify) refuses them when they do not match the manifest / model.tflite."""
    d = shutil.copytree(tiny_bundles[0] / "int8", tmp_path / "int8")
    data = bytearray((d / part).read_bytes())
    if part == "check.npz":
        data[-40] ^= 0x01
    else:
        i = data.index(b"0x", data.index(b"g_model_data[]")) + 2
        data[i : i + 2] = b"ff" if data[i : i + 2] != b"ff" else b"fe"
    (d / part).write_bytes(bytes(data))
    code, out, err = run_cli(capfd, "verify", d)
    assert_one_line_error(code, err, part)


def test_every_single_byte_flip_is_caught(tiny_bundles, tmp_path):
    """Not just one position: 64 random positions across the file, each flipped alone."""
    d = shutil.copytree(tiny_bundles[0] / "int8", tmp_path / "int8")
    good = (d / "model.tflite").read_bytes()
    rng = np.random.default_rng(1)
    for i in rng.choice(len(good), 64, replace=False):
        data = bytearray(good)
        data[i] ^= 1 << int(rng.integers(8))
        (d / "model.tflite").write_bytes(bytes(data))
        with pytest.raises(BundleError, match="sha256|TFL3"):
            load_bundle(d)
    (d / "model.tflite").write_bytes(good)
    assert load_bundle(d).level == "int8"


def test_report_lists_an_invalid_bundle_and_goes_on(capfd, tiny_bundles, tmp_path):
    """report is a summary over many bundles: one broken level is listed as invalid with its
    reason (not an error, not a crash); the good levels are still reported."""
    bundles = tmp_path / "bundles"
    for name in ("fp32", "int8"):
        shutil.copytree(tiny_bundles[0] / name, bundles / name)
    flip_byte(bundles / "int8", None)
    code, out, err = run_cli(
        capfd,
        "report",
        "--bundles",
        bundles,
        "--out",
        tmp_path / "report",
        "--stream-s",
        "20",
        "--stream-events",
        "2",
        "--latency-rounds",
        "1",
        "--no-plots",
        "--profiles",
        "none",
        "--json",
    )
    assert code == 0, err
    assert "Traceback" not in err
    text = (tmp_path / "report" / "report.json").read_text()
    assert "invalid" in text and "sha256" in text


@pytest.mark.parametrize("tamper", ["flipped byte", "3 labels for 4 outputs"])
def test_simulate_refuses_a_bad_int8_bundle(capfd, tiny_bundles, wav, tmp_path, tamper):
    """The MCU simulator loads the bundle through the same checks: a broken int8 bundle is refused
    in one line before tflite-micro sees it, and no simulate.json is written."""
    pytest.importorskip("tflite_micro")
    d = shutil.copytree(tiny_bundles[0] / "int8", tmp_path / "int8")
    if tamper == "flipped byte":
        flip_byte(d, None)
        fragments = ["model.tflite", "sha256"]
    else:
        labels_fewer_than_outputs(d, None)
        fragments = ["3 labels", "4 scores"]
    out = tmp_path / "sim.json"
    code, stdout, err = run_cli(
        capfd, "simulate", d, "--profile", "cortex-m4-80mhz", "--stream", wav, "--out", out
    )
    assert_one_line_error(code, err, *fragments)
    assert not out.exists()


@pytest.mark.parametrize("kind", ["fifo", "/dev/zero", "oversized"])
def test_model_data_cc_is_read_with_limits(tiny_bundles, tmp_path, kind):
    """model_data.cc gets the limits of the other bundle files: a FIFO hung verify, /dev/zero
    read until memory ran out. Run as a subprocess, so a regression fails on the timeout."""
    import os
    import subprocess
    import sys

    d = shutil.copytree(tiny_bundles[0] / "int8", tmp_path / "int8")
    cc = d / "model_data.cc"
    cc.unlink()
    if kind == "fifo":
        os.mkfifo(cc)
    elif kind == "/dev/zero":
        cc.symlink_to("/dev/zero")
    else:
        with open(cc, "wb") as f:
            f.truncate(8 * len((d / "model.tflite").read_bytes()) + 2**20)
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from edge_sed.cli import main; sys.exit(main())",
            "verify",
            str(d),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: ") and "model_data.cc" in r.stderr
    assert ("not a regular file" if kind != "oversized" else "limit") in r.stderr


def test_a_manifest_without_semantic_checksum_loads_but_does_not_verify(capfd, tiny_bundles, tmp_path):
    """A bundle from before the semantic checksum still loads (listen, bench run it), but verify
    -- and so deploy -- cannot vouch for its front end and labels: one line saying re-convert."""
    d = shutil.copytree(tiny_bundles[0] / "fp32", tmp_path / "fp32")
    assert load_bundle(d).manifest["semantic_sha256"]
    assert verify_bundle(d)["semantic_sha256"] == "ok"
    _set_manifest(d, semantic_sha256=_DELETE)
    assert load_bundle(d).level == "fp32"
    code, out, err = run_cli(capfd, "verify", d)
    assert_one_line_error(code, err, "semantic_sha256", "re-convert")


def test_fields_outside_the_checksum_may_change(tiny_bundles, tmp_path):
    """Provenance, notes or a deploy's checked_on are not what the model hears: editing them
    keeps the bundle valid (deploy's tests narrow checked_on this way)."""
    d = shutil.copytree(tiny_bundles[0] / "fp32", tmp_path / "fp32")
    _set_manifest(d, checked_on=["aarch64", "x86_64"], notes=["re-labelled by hand"])
    assert verify_bundle(d)["semantic_sha256"] == "ok"
