"""Runs INSIDE the emulated Pi (Debian arm64 python3, aarch64 numpy + ai-edge-litert, a copy of
edge_sed): ``python3 pi_guest.py REQUEST.json``. Started by firmware_sim.pi, never imported by
the host. Uses only the standard library, numpy and edge_sed, like an installed device.

For every bundle in the request it
1. runs BundleRunner.predict on every window (the same code a Pi runs), and writes the scores; a
   stateful bundle's "windows" are feature sequences, run with ``run_stream`` (state carried, a
   predict marker around every step), its scores one row per step;
2. runs the device loop (edge_sed.core.loop.Detector: front end, model, smoother) on a stretch of audio
   in blocks, as ``edge-sed listen`` would.
Around each invoke, each predict, each pushed block and, inside those, the front end's push and
the smoother's update, it drops a marker (a failing lseek on a
magic descriptor) that the host's QEMU plugin (pi_marks.c) logs with the instruction count, so
the host can count exactly those regions without Python's and LiteRT's start-up. Markers: tag =
(kind * 64 + bundle) * 2 (+1 at the end of the region); kinds below.
"""

import json
import os
import sys

import numpy as np

MARK_FD = -1517
KIND_EMPTY, KIND_INVOKE, KIND_PREDICT, KIND_BLOCK, KIND_FRONTEND, KIND_SMOOTHER = 1, 2, 3, 4, 5, 6


def mark(tag):
    try:
        os.lseek(MARK_FD, tag, 0)
    except OSError:
        pass


def tag(kind, b, end):
    return (kind * 64 + b) * 2 + end


def delegated(runner):
    """Whether LiteRT applied a delegate (XNNPACK) to the model, as it does on a Pi."""
    try:
        return any(d["op_name"] == "DELEGATE" for d in runner.backend.interpreter._get_ops_details())
    except Exception:  # a private API: its absence is no reason to fail the run
        return None


def main(request_path):
    from edge_sed.core.bundle import BundleRunner, load_bundle
    from edge_sed.core.loop import Detector

    req = json.load(open(request_path))
    windows = np.load(req["windows"]) if req.get("windows") else None
    audio = np.load(req["audio"]) if req.get("audio") else None
    block = int(req.get("block_samples", 320))
    for _ in range(int(req.get("calibration_marks", 20))):  # the cost of a marker pair itself
        mark(tag(KIND_EMPTY, 0, 0))
        mark(tag(KIND_EMPTY, 0, 1))
    results = []
    for b, path in enumerate(req["bundles"]):
        bundle = load_bundle(path)
        runner = BundleRunner(bundle, num_threads=int(req.get("threads", 1)))
        invoke = runner.backend.invoke

        def marked_invoke(b=b, invoke=invoke):
            mark(tag(KIND_INVOKE, b, 0))
            invoke()
            mark(tag(KIND_INVOKE, b, 1))

        runner.backend.invoke = marked_invoke
        out = {"bundle": path, "delegated": delegated(runner)}
        if windows is not None and runner.carried:
            step = runner.step

            def marked_step(frames, b=b, step=step):
                mark(tag(KIND_PREDICT, b, 0))
                s = step(frames)
                mark(tag(KIND_PREDICT, b, 1))
                return s

            runner.step = marked_step
            out["scores"] = np.concatenate([runner.run_stream(w) for w in windows]).tolist()
            runner.step = step
        elif windows is not None:
            scores = np.zeros((len(windows), len(bundle.labels)), np.float32)
            for i, w in enumerate(windows):
                mark(tag(KIND_PREDICT, b, 0))
                scores[i] = runner.predict(w)
                mark(tag(KIND_PREDICT, b, 1))
            out["scores"] = scores.tolist()
        if audio is not None:
            runner.backend.invoke = invoke  # no markers nested inside the loop's blocks
            det = Detector(bundle, runner=runner)
            push, update = det.frontend.push, det.smoother.update

            def marked_push(block, b=b, push=push):
                mark(tag(KIND_FRONTEND, b, 0))
                frames = push(block)
                mark(tag(KIND_FRONTEND, b, 1))
                return frames

            def marked_update(t_s, scores, b=b, update=update):
                mark(tag(KIND_SMOOTHER, b, 0))
                event = update(t_s, scores)
                mark(tag(KIND_SMOOTHER, b, 1))
                return event

            det.frontend.push, det.smoother.update = marked_push, marked_update
            blocks = []
            for start in range(0, len(audio) - block + 1, block):
                frames, inferences = det.frames_seen, det.inferences
                mark(tag(KIND_BLOCK, b, 0))
                decisions = det.push(audio[start : start + block])
                mark(tag(KIND_BLOCK, b, 1))
                blocks.append([det.frames_seen - frames, det.inferences - inferences, len(decisions)])
            out["blocks"] = blocks
        results.append(out)
    with open(req["out"], "w") as f:
        json.dump({"results": results, "machine": os.uname().machine}, f)


if __name__ == "__main__":
    main(sys.argv[1])
