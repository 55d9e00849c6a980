"""The stateful streaming detector end to end on the tiny synthetic set: train (mixtures, TBPTT)
-> convert (fp32, int8) -> the device loop with the state carried -> evaluate, data mix, listen;
and the event metric cross-checked against sed_eval (the DCASE toolbox)."""

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest

from edge_sed.core.bundle import BundleRunner, load_bundle
from edge_sed.core.events import Annotation, Event, event_metrics, read_annotations
from edge_sed.core.frontend import log_mel

from conftest import needs_qemu

pytestmark = pytest.mark.slow


def run(*args, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "edge_sed.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_training_writes_calibrated_thresholds_and_stream_metrics(stateful_run):
    out, m = stateful_run
    assert m["form"] == "stateful" and m["best_epoch"] is not None
    assert set(m["smoother"]["thresholds"]) == {"dog", "baby_cry", "gunshot"}
    assert all(0.3 <= t <= 0.95 for t in m["smoother"]["thresholds"].values())
    for key in ("val_stream", "test_stream"):
        assert m[key]["reference"] > 0 and 0.0 <= m[key]["f1"] <= 1.0
        d = m[key]["dcase"]  # DCASE's onset rule on the same events: same references and detections
        assert d["reference"] == m[key]["reference"] and d["tp"] + d["fp"] == m[key]["tp"] + m[key]["fp"]
    history = json.loads((out / "history.json").read_text())
    assert len(history) == 3 and all("val_event_f1" in h for h in history)


def test_conversion_is_stateful_and_fp32_equals_torch(stateful_bundles):
    out, report = stateful_bundles
    assert [l["status"] for l in report["levels"]] == ["ok", "ok"], report["levels"]
    fp32 = load_bundle(out / "fp32")
    m = fp32.manifest
    assert m["form"] == "stateful" and m["hop_frames"] == 1 and m["window_frames"] == 3
    assert m["state"]["mode"] == "carried" and m["smoother"]["thresholds"]
    assert m["parity"]["tflite_vs_torch_max_abs"] < 1e-4
    int8 = load_bundle(out / "int8")
    assert int8.manifest["tflm"]["arena_bytes"] > 0 and (out / "int8" / "model_data.cc").is_file()
    header = (out / "int8" / "model_data.h").read_text()
    assert "Stateful form" in header and "never reset" in header and "zero the state" not in header
    assert f"kTensorArenaSize = {int8.manifest['tflm']['arena_bytes']};" in header
    assert {i["dtype"] for i in int8.manifest["inputs"]} == {"int8"}


def test_device_loop_carries_the_state_through_the_whole_stream(stateful_bundles, tiny_data):
    """The Detector's per-frame scores are the model run once over the whole stream from frame 0;
    a reset anywhere would change them (checked: the second half alone gives other scores)."""
    from edge_sed.core.loop import Detector
    from edge_sed.data.streams import make_stream

    bundle = load_bundle(stateful_bundles[0] / "fp32")
    audio, _ = make_stream(tiny_data, 30.0, 6, seed=2)
    detector = Detector(bundle)
    rng = np.random.default_rng(0)
    scores, i = [], 0
    while i < len(audio):  # blocks of random sizes, as a microphone gives
        n = int(rng.integers(50, 3000))
        scores += [d.scores for d in detector.push(audio[i : i + n])]
        i += n
    scores = np.asarray(scores)
    whole = BundleRunner(bundle).run_stream(log_mel(audio, bundle.frontend))
    assert scores.shape == whole.shape  # a decision every frame
    assert np.abs(scores - whole).max() < 1e-5
    half = len(whole) // 2
    restarted = BundleRunner(bundle).run_stream(log_mel(audio, bundle.frontend)[half:])
    assert np.abs(restarted[:50] - whole[half : half + 50]).max() > 1e-4


def test_verify_reruns_the_carried_state_check(stateful_bundles):
    out, _ = stateful_bundles
    r = run("verify", out / "int8", "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["form"] == "stateful" and rep["check_windows"] == 400
    r = run("verify", out / "fp32", "--data", "run")
    assert r.returncode == 2 and "streams" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_data_mix_evaluate_and_listen_use_the_calibrated_smoother(stateful_bundles, tiny_data, tmp_path):
    out, _ = stateful_bundles
    streams = tmp_path / "streams"
    r = run(
        "data", "mix", tiny_data, "--out", streams, "--split", "test", "--streams", "2", "--seconds", "30"
    )
    assert r.returncode == 0, r.stderr
    ann = read_annotations(streams / "mix-000.csv")
    assert ann and all(a.ebr_db in (-6.0, 0.0, 6.0) and a.bed_dbfs is not None for a in ann)
    r = run("evaluate", out / "int8", streams, "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    manifest = load_bundle(out / "int8").manifest
    assert rep["smoother"]["thresholds"] == {**{"background": 0.6}, **manifest["smoother"]["thresholds"]}
    assert rep["streams"] == 2 and rep["reference_events"] == sum(
        len(read_annotations(p)) for p in streams.glob("*.csv")
    )
    assert (
        set(rep["event"]["per_class"]) == {"dog", "baby_cry", "gunshot"}
        and "ebr_db" in rep["detection"]["recall_by"]
    )
    table = run("evaluate", out / "int8", streams / "mix-000.wav")
    assert table.returncode == 0 and "event F1" in table.stdout and "by EBR" in table.stdout
    if importlib.util.find_spec("tflite_micro"):  # the MCU's kernels on the same streams
        r = run("evaluate", out / "int8", streams, "--runtime", "tflm", "--json")
        assert r.returncode == 0, r.stderr
        micro = json.loads(r.stdout)
        assert micro["runtime"] == "tflm" and micro["reference_events"] == rep["reference_events"]
        assert abs(micro["event"]["f1"] - rep["event"]["f1"]) <= 0.1
        r = run("evaluate", out / "fp32", streams, "--runtime", "tflm")
        assert r.returncode == 2 and "int8" in r.stderr
    r = run("listen", "--bundle", out / "int8", "--file", streams / "mix-000.wav", "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["hop_ms"] == 10.0
    (streams / "mix-001.csv").unlink()
    r = run("evaluate", out / "int8", streams)
    assert r.returncode == 2 and "mix-001" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_event_metric_equals_sed_eval_dcase_event_based():
    """Our event F1 / error rate with a 0.5 s onset collar on the estimated onset (the smoother's
    onset_s, else the decision time) against sed_eval's EventBasedMetrics (t_collar 0.5, onset
    only), on random streams; the decisions come up to 1.5 s after the estimated onsets."""
    sed_eval = pytest.importorskip("sed_eval")
    dcase_util = pytest.importorskip("dcase_util")
    rng = np.random.default_rng(0)
    labels = ["dog", "baby_cry", "gunshot"]
    for trial in range(20):
        refs, dets = [], []
        t = 1.0
        for _ in range(15):  # references >= 3 s apart, detections near some of them, plus strays
            t += rng.uniform(3, 6)
            lab = labels[rng.integers(3)]
            refs.append(Annotation(round(t, 3), round(t + rng.uniform(0.2, 2), 3), lab))
            if rng.random() < 0.7:
                onset = round(t + rng.uniform(-0.7, 0.9), 3)
                late = rng.random() < 0.5  # half decided later than the onset they estimate
                dets.append(
                    Event(
                        lab if rng.random() < 0.8 else labels[rng.integers(3)],
                        0.9,
                        round(onset + rng.uniform(0, 1.5), 3) if late else onset,
                        onset if late else None,
                    )
                )
        for _ in range(3):
            dets.append(Event(labels[rng.integers(3)], 0.9, round(rng.uniform(0, t), 3)))
        ours = event_metrics(refs, dets, t + 5, collar_s=0.5, delay_s=0.0, labels=labels)
        ref_c = dcase_util.containers.MetaDataContainer(
            [
                {"event_label": a.label, "onset": a.onset_s, "offset": a.offset_s, "filename": "s"}
                for a in refs
            ]
        )
        est_c = dcase_util.containers.MetaDataContainer(
            [
                {
                    "event_label": e.label,
                    "onset": e.estimated_onset_s,
                    "offset": e.estimated_onset_s + 0.1,
                    "filename": "s",
                }
                for e in dets
            ]
        )
        theirs = sed_eval.sound_event.EventBasedMetrics(
            event_label_list=labels, t_collar=0.5, evaluate_onset=True, evaluate_offset=False
        )
        theirs.evaluate(ref_c, est_c)
        o = theirs.results_overall_metrics()
        assert ours["f1"] == pytest.approx(o["f_measure"]["f_measure"], abs=1e-9), trial
        assert ours["error_rate"] == pytest.approx(o["error_rate"]["error_rate"], abs=1e-9), trial
        for lab in labels:
            c = theirs.results_class_wise_metrics()[lab]["f_measure"]["f_measure"]
            assert ours["per_class"][lab]["f1"] == pytest.approx(0.0 if np.isnan(c) else c, abs=1e-9), (
                trial,
                lab,
            )


@pytest.fixture(scope="module")
def strided_bundles(tiny_data, tmp_path_factory):
    """A run on PCEN features whose LSTM steps every 2nd frame on its conv's last 3 frames, with
    hard-negative mining every epoch and frequency masks, converted."""
    from convert.bundles import convert_run
    from train.trainer import TrainConfig, train

    run_dir = tmp_path_factory.mktemp("strided-run") / "run"
    cfg = TrainConfig(
        data=str(tiny_data),
        out=str(run_dir),
        form="stateful",
        ratio=None,
        epochs=2,
        patience=50,
        sequences=16,
        seq_s=6.0,
        batch_size=8,
        hidden=8,
        embed_dim=4,
        context_frames=3,
        conv_channels=6,
        frame_stride=2,
        tbptt_frames=100,
        compression="pcen",
        threads=1,
        lr=1e-2,
        val_streams=1,
        val_stream_s=20.0,
        hard_negatives=0.5,
        mine_every=1,
        freq_mask=3,
    )
    metrics = train(cfg)
    out = tmp_path_factory.mktemp("strided-bundles")
    return run_dir, metrics, out, convert_run(run_dir, out, ["fp32", "int8"])


def test_a_strided_pcen_model_steps_and_decides_every_stride_frames(strided_bundles, tiny_data):
    from edge_sed.core.loop import Detector
    from edge_sed.data.streams import make_stream

    run_dir, metrics, out, report = strided_bundles
    assert metrics["frame_stride"] == 2 and metrics["test_stream"]["reference"] > 0
    assert [l["status"] for l in report["levels"]] == ["ok", "ok"], report["levels"]
    bundle = load_bundle(out / "fp32")
    assert bundle.manifest["hop_frames"] == 2 and bundle.manifest["window_frames"] == 3
    assert bundle.frontend.compression == "pcen" and metrics["frontend"]["compression"] == "pcen"
    assert bundle.manifest["parity"]["tflite_vs_torch_max_abs"] < 1e-4
    audio, _ = make_stream(tiny_data, 20.0, 4, seed=3)
    features = log_mel(audio, bundle.frontend)
    detector = Detector(bundle)
    decisions = detector.push(audio)
    assert detector.inferences == len(decisions) == len(features) // 2  # one invoke per 2 frames
    assert decisions[0].t_s == pytest.approx(detector.frame_end_s(2))
    whole = BundleRunner(bundle).run_stream(features)
    assert np.abs(np.stack([d.scores for d in decisions]) - whole).max() < 1e-5
    detector.reset()  # a new stream starts from a zero state, whatever the last one left
    again = detector.push(audio)
    assert np.array_equal(np.stack([d.scores for d in again]), np.stack([d.scores for d in decisions]))
    # the same scores as the torch model's strided pass over the stream
    import torch
    from train.models import LSTMNet
    from train.stateful import stream_probabilities

    cfg = json.loads((run_dir / "config.json").read_text())
    model = LSTMNet(
        n_mels=features.shape[1],
        hidden=cfg["hidden"],
        embed_dim=cfg["embed_dim"],
        context_frames=cfg["context_frames"],
        conv_channels=cfg["conv_channels"],
        stride=2,
    )
    model.load_state_dict(torch.load(run_dir / "best.pt", weights_only=True))
    p = stream_probabilities(model, features)
    assert p.shape == (len(features), 4) and np.abs(p[1::2][: len(whole)] - whole).max() < 1e-4
    with pytest.raises(Exception, match="multiple of 2"):
        Detector(bundle, hop_frames=3)
    assert len(Detector(bundle, hop_frames=4).push(audio)) == len(features) // 4
    r = run("verify", out / "int8", "--json")
    assert r.returncode == 0, r.stderr
    r = run("bench", out, "--rounds", "2", "--json")
    assert r.returncode == 0, r.stderr
    levels = json.loads(r.stdout)["latency"]["levels"]
    assert {v["invokes_per_s_audio"] for v in levels.values()} == {
        50.0
    }  # 100 frames a second, one step per 2


@needs_qemu
def test_the_pi_simulator_runs_a_stateful_bundle_step_by_step(strided_bundles, tiny_data):
    """simulate on a Pi profile: the emulated aarch64 LiteRT runs the check sequence with the state
    carried (the host's per-step scores), and the stream on the device clock."""
    from edge_sed.data.streams import make_stream
    from firmware_sim import pi
    from firmware_sim.profiles import load_profile

    bundle = load_bundle(strided_bundles[2] / "int8")
    audio, annotations = make_stream(tiny_data, 20.0, 3, seed=4)
    model = pi.prepare(bundle)
    assert model.x.shape == (1, 400, 40) and model.y is None and "state carried" in model.windows_what
    assert len(model.host_scores) == 200  # a step every 2 frames
    rec = pi.simulate_profile(model, load_profile("rpi-4"), audio, annotations, {"source": "test"})
    assert rec["parity"]["ok"], rec["parity"]  # within one output step of the host (ARM kernels)
    assert rec["accuracy"]["overall_error"] is None and "step (2 frames)" in rec["summary"]
    assert rec["cost"]["insns_per_inference"] > 1e3 and rec["clock"]["overruns"] == 0
    assert rec["events"]["reference"] == len(annotations)
    table = pi.format_table(pi.simulate_pi(strided_bundles[2], "rpi-4", levels=("fp32", "int8")))
    assert "state carried" in table and table.count("rpi-4") == 2


def test_hard_negative_mining_reweighs_the_beds_and_frequency_masks_mask(strided_bundles):
    import torch

    from train.stateful import freq_mask

    run_dir = strided_bundles[0]
    history = json.loads((run_dir / "history.json").read_text())
    assert all(0.0 < h["hard_negative_top_share"] <= 1.0 for h in history)
    w = np.asarray(torch.load(run_dir / "checkpoint.pt", weights_only=False)["state"]["bed_weights"])
    assert w.sum() == pytest.approx(1.0) and (w >= 0.5 / len(w) - 1e-12).all()  # half the draws stay uniform
    x = np.random.default_rng(0).standard_normal((6, 50, 40)).astype(np.float32)
    mean = np.arange(40, dtype=np.float32)
    a, b = freq_mask(x, mean, 8, np.random.default_rng(1)), freq_mask(x, mean, 8, np.random.default_rng(1))
    assert np.array_equal(a, b) and not np.array_equal(a, x)
    for i in range(6):
        masked = np.flatnonzero((a[i] != x[i]).any(0))
        assert len(masked) <= 8 and (np.diff(masked) == 1).all()
        assert np.array_equal(a[i][:, masked], np.broadcast_to(mean[masked], (50, len(masked))))


def test_stateful_only_options_are_refused_for_the_windowed_form(tmp_path, tiny_data):
    for opt in (["--hard-negatives", "0.5"], ["--freq-mask", "4"], ["--dropout", "0.2"], ["--ema", "0.999"]):
        r = run("train", "--data", tiny_data, *opt, "--out", tmp_path / "r")
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        (line,) = r.stderr.strip().splitlines()
        assert line.startswith(f"error: {opt[0]} is for --form stateful") and line.endswith(
            "(see edge-sed train --help)"
        )


def test_a_stride_the_model_cannot_run_is_refused(tmp_path, tiny_data):
    from train.models import LSTMNet

    with pytest.raises(ValueError, match="conv over at least 4"):
        LSTMNet(context_frames=3, conv_channels=6, stride=4)
    r = run(
        "train",
        "--data",
        tiny_data,
        "--form",
        "stateful",
        "--frame-stride",
        "8",
        "--context-frames",
        "4",
        "--out",
        tmp_path / "r",
    )
    assert r.returncode == 2 and "--frame-stride 8 needs a conv over at least 8 frames" in r.stderr
    r = run("train", "--data", tiny_data, "--frame-stride", "2", "--out", tmp_path / "r")
    assert r.returncode == 2 and "--form stateful" in r.stderr
    r = run(
        "train",
        "--data",
        tiny_data,
        "--form",
        "stateful",
        "--frame-stride",
        "3",
        "--context-frames",
        "6",
        "--out",
        tmp_path / "r",
    )
    assert r.returncode == 2 and "TBPTT" in r.stderr


def test_a_stateful_manifest_stepping_past_its_context_is_refused(strided_bundles, tmp_path):
    import shutil

    from edge_sed.core.errors import BundleError

    src = strided_bundles[2] / "fp32"
    bad = tmp_path / "fp32"
    shutil.copytree(src, bad)
    m = json.loads((bad / "manifest.json").read_text())
    m["hop_frames"] = 4
    (bad / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="'hop_frames' > 'window_frames'"):
        load_bundle(bad)


def test_the_background_source_loss_trains_a_head_that_is_never_exported(stateful_run):
    """The checkpoint carries the training-only head (one output per background source class of
    the data), best.pt the detector alone (so conversion, verify and the device never see it)."""
    import torch

    run_dir = stateful_run[0]
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["bed_aux"] == 0.3
    ckpt = torch.load(run_dir / "checkpoint.pt", weights_only=False)
    head = ckpt["bed_head"]["weight"]
    assert (
        head.shape[1] == cfg["embed_dim"] and head.shape[0] >= 2
    )  # the tiny set's beds: several synth sources
    assert not any(k.startswith("bed") for k in torch.load(run_dir / "best.pt", weights_only=True))


def test_weight_averaging_keeps_the_averaged_weights_and_dropout_only_trains(tiny_data, tmp_path):
    """--ema: best.pt holds the moving average (validated and kept), the checkpoint both;
    dropout changes training outputs only, not eval ones nor the state dict."""
    import torch

    from train.models import LSTMNet
    from train.stateful import ema_update
    from train.trainer import TrainConfig, train

    net = torch.nn.Linear(3, 2)
    ema = ema_update(None, net, 0.9)
    start = {k: v.clone() for k, v in ema.items()}
    with torch.no_grad():
        net.weight.add_(1.0)
    ema = ema_update(ema, net, 0.9)
    assert torch.allclose(ema["weight"], 0.9 * start["weight"] + 0.1 * net.weight)
    assert torch.equal(ema["bias"], start["bias"])  # unchanged weights: the average stays

    m = LSTMNet(n_mels=8, hidden=4, embed_dim=3, context_frames=2, conv_channels=5, dropout=0.5)
    assert set(m.state_dict()) == set(
        LSTMNet(n_mels=8, hidden=4, embed_dim=3, context_frames=2, conv_channels=5).state_dict()
    )
    x = torch.randn(2, 10, 8)
    m.train()
    assert not torch.equal(m.frame_logits(x)[0], m.frame_logits(x)[0])
    m.eval()
    assert torch.equal(m.frame_logits(x)[0], m.frame_logits(x)[0])

    out = tmp_path / "run"
    cfg = TrainConfig(
        data=str(tiny_data),
        out=str(out),
        form="stateful",
        ratio=None,
        epochs=1,
        patience=50,
        sequences=8,
        seq_s=6.0,
        batch_size=8,
        hidden=8,
        embed_dim=4,
        context_frames=3,
        conv_channels=6,
        threads=1,
        lr=1e-2,
        val_streams=1,
        val_stream_s=20.0,
        ema=0.5,
        dropout=0.2,
    )
    assert train(cfg)["best_epoch"] == 1
    ckpt = torch.load(out / "checkpoint.pt", weights_only=False)
    best = torch.load(out / "best.pt", weights_only=True)
    assert all(torch.equal(best[k], ckpt["ema"][k]) for k in best)
    assert any(not torch.equal(best[k], ckpt["model"][k]) for k in best)  # the average, not the last step


def test_int8_calibrates_the_cell_state_on_a_percentile_of_its_magnitude():
    """A few LSTM units carry a large cell state; min/max calibration gave c an int8 step coarser
    than tanh's whole range. int8 clips the calibration samples of c at the 90th percentile of |c|
    (chosen on validation streams; int16x8 keeps them whole); frames and h are never touched."""
    from types import SimpleNamespace

    from convert.stateful import INT8_CELL_PERCENTILE, StatefulConverter

    assert INT8_CELL_PERCENTILE == 90.0
    rng = np.random.default_rng(0)
    c = rng.standard_normal((1000, 8)).astype(np.float32)
    c[:, 0] *= 200.0  # one "counter" unit
    frames, h = rng.standard_normal((1000, 3, 5)).astype(np.float32), np.tanh(rng.standard_normal((1000, 8)))
    fake = SimpleNamespace(rep=(frames, h.astype(np.float32), c))
    whole = [d["c"] for d in StatefulConverter._rep(fake)()]
    clipped = list(StatefulConverter._rep(fake, INT8_CELL_PERCENTILE)())
    lim = np.percentile(np.abs(c), INT8_CELL_PERCENTILE)
    assert np.array_equal(np.concatenate(whole), c)
    got = np.concatenate([d["c"] for d in clipped])
    assert np.abs(got).max() == pytest.approx(lim) and lim < 0.6 * np.abs(c).max()
    assert np.array_equal(got[np.abs(c) <= lim], c[np.abs(c) <= lim])
    assert np.array_equal(np.concatenate([d["frame"] for d in clipped]), frames)
