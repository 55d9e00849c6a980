"""The training settings, in one place: ``TrainConfig`` (each field with its help text and the range
or choices the CLI offers, in ``field(metadata=...)``) and the stateful form's defaults.

Plain Python (no torch, no numpy): the CLI builds the options of ``edge-sed train`` and ``edge-sed
experiments`` from these fields without loading the trainer. ``train.trainer`` re-exports both
names. TrainConfig checks its numbers when it is made (EdgeSedError naming the field).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field, replace

from edge_sed.core.errors import EdgeSedError
from edge_sed.core.settings import MAX_EPOCHS, MAX_SEED, TRAIN_SYNTH_COUNTS


def _opt(default, help: str, **cli):
    """A field with its help text and, for the CLI, ``range=(low, high)`` (``min_open``) or ``choices``."""
    return field(default=default, metadata={"help": help, **cli})


@dataclass
class TrainConfig:
    data: str = _opt("synthetic", "A data set path, a prepared-splits folder, or 'synthetic'.")
    out: str = _opt("runs/default", "Run directory.")
    model: str = _opt("lstm", "The network.", choices=("lstm", "cnn"))
    objective: str = _opt(
        "weighted-ce", "weighted-ce | clustered | class-balanced | focal | logit-adjusted | oversample"
    )  # train.objectives.OBJECTIVES
    ratio: str | None = _opt(
        "2:2:1:26",
        "Class ratio (dog:baby_cry:gunshot:background) imposed on every split ('none' keeps the data's own).",
    )
    seed: int = _opt(0, "Split, subsample, init and batch order.", range=(0, MAX_SEED))
    synth_counts: str = _opt(TRAIN_SYNTH_COUNTS, "Clips per class of the synthetic set.")
    epochs: int = _opt(120, "Most epochs of the classify stage.", range=(1, MAX_EPOCHS))
    stage1_epochs: int = _opt(15, "clustered: epochs of the embed stage.", range=(1, MAX_EPOCHS))
    patience: int = _opt(
        25,
        "Early stopping: classify-stage epochs without a better val balanced accuracy (stateful: val "
        "event F1).",
        range=(1, MAX_EPOCHS),
    )
    batch_size: int = _opt(
        64, "Windows (stateful: mixtures) per step; at least 2 (batch norm needs two).", range=(2, None)
    )
    lr: float = _opt(1e-3, "Learning rate.", range=(0, 10), min_open=True)
    # (1e-4 was 37 % worse on val)
    finetune_lr: float = _opt(1e-3, "clustered stage 2: embedding net's lr.", range=(0, 10))
    freeze_embedding: bool = _opt(False, "clustered stage 2: do not fine-tune the embedding net.")
    stage2_embedding_weight: float = _opt(
        0.0,
        "clustered stage 2: also keep this weight x the centroid loss beside the classifier's loss "
        "(0: classifier loss only).",
        range=(0, 1000),
    )
    weight_decay: float = _opt(1e-4, "The optimizer's weight decay.")
    hidden: int = _opt(64, "LSTM units.", range=(4, 512))
    embed_dim: int = _opt(32, "Size of the embedding the classifier reads.")
    threads: int = _opt(0, "torch threads (0: torch's default).", range=(0, 1024))
    mix_background: float = _opt(
        0.0,
        "Augmentation: probability an event window is laid over a random background window "
        "(EBR -3..+12 dB), as in a stream.",
        range=(0, 1),
    )
    gain_db: float = _opt(0.0, "Augmentation: random gain of every window, +-this many dB.", range=(0, 40))
    crop_jitter_s: float = _opt(
        0.3,
        "Augmentation: event windows shift up to +-this many seconds, background windows anywhere in "
        "the clip (0: the fixed policy windows).",
    )
    objective_params: dict = field(
        default_factory=dict, metadata={"help": "Objective parameters (NAME=VALUE options)."}
    )
    # the stateful streaming form (train.stateful): per-frame LSTM trained on mixtures
    form: str = _opt(
        "windowed",
        "windowed: one 1 s window per clip (the paper's protocol); stateful: the streaming detector, "
        "a per-frame LSTM with its state carried, trained on fresh audio mixtures every epoch.",
        choices=("windowed", "stateful"),
    )
    seq_s: float = _opt(12.0, "stateful: seconds per training mixture.", range=(2, 600))
    sequences: int = _opt(192, "stateful: fresh mixtures per epoch.", range=(2, 100_000))
    tbptt_frames: int = _opt(200, "stateful: frames per truncated-BPTT chunk.")
    events_per_min: float = _opt(12.0, "stateful: event density of the training mixtures.")
    ebr_db: tuple = _opt((-9.0, 9.0), "stateful: event-to-background ratio range (dB).")
    bed_dbfs: tuple = _opt((-50.0, -10.0), "stateful: background level range (dBFS RMS), +-20 dB.")
    val_streams: int = _opt(
        6, "stateful: 60 s validation (and test) streams of the val/test groups.", range=(1, 1000)
    )
    val_stream_s: float = _opt(60.0, "stateful: seconds per validation stream.")
    feature_norm: str = _opt("none", "stateful experiment: none | floor | both.")
    compression: str = _opt(
        "log",
        "stateful: the front end's compression of the mel energies: log, or per-channel energy "
        "normalization (an automatic gain per band).",
        choices=("log", "pcen"),
    )
    lr_schedule: str = _opt(
        "constant", "Learning rate over the epochs (per step).", choices=("constant", "cosine")
    )
    frame_targets: str = _opt(
        "span",
        "stateful: frames labelled with the event: its whole span or its loud blocks only.",
        choices=("span", "active"),
    )
    augment: bool = _opt(False, "stateful: events at a random speed (0.9-1.1) and tilt, beds tilted.")
    context_frames: int = _opt(
        1,
        "lstm: frames a causal conv before the LSTM sees (1: no conv; give --conv-channels too).",
        range=(1, 32),
    )
    conv_channels: int = _opt(0, "lstm: that conv's channels (0: no conv).", range=(0, 512))
    frame_stride: int = _opt(
        1,
        "stateful: the LSTM steps (and decides) every this many 10 ms frames, on the conv's last "
        "--context-frames frames (needs context >= stride).",
        range=(1, 10),
    )
    freq_mask: int = _opt(
        0,
        "stateful: frequency masking (SpecAugment-style), up to this many adjacent mel bands of each "
        "training mixture set to their mean (0: off).",
        range=(0, 40),
    )
    bed_aux: float = _opt(
        0.0,
        "stateful: weight of an auxiliary loss that names the background recording's source class "
        "(siren, street music, ...) from each background step's embedding, through a training-only "
        "head (0: off).",
        range=(0, 10),
    )
    hard_negatives: float = _opt(
        0.0,
        "stateful: hard-negative mining; every --mine-every epochs the model scores each training "
        "background recording alone, and this share of the beds is drawn where it fires (0: uniform "
        "beds).",
        range=(0, 1),
    )
    mine_every: int = _opt(5, "stateful: re-score the training backgrounds every this many epochs.")
    dropout: float = _opt(
        0.0, "stateful: dropout on the conv's and the LSTM's outputs in training (0: off).", range=(0, 0.9)
    )
    ema: float = _opt(
        0.0,
        "stateful: validate and keep an exponential moving average of the weights, this decay per "
        "optimizer step (0: off, e.g. 0.999).",
        range=(0, 0.99999),
    )

    def __post_init__(self):
        _check_numbers(self)


_WHOLE = {
    "seed": (0, MAX_SEED),
    "epochs": (1, MAX_EPOCHS),
    "stage1_epochs": (1, MAX_EPOCHS),
    "patience": (1, MAX_EPOCHS),
    "batch_size": (2, None),
    "hidden": (1, None),
    "embed_dim": (1, None),
    "threads": (0, 1024),
    "sequences": (1, None),
    "tbptt_frames": (1, None),
    "val_streams": (1, None),
    "context_frames": (1, None),
    "conv_channels": (0, None),
    "frame_stride": (1, None),
    "freq_mask": (0, None),
    "mine_every": (1, None),
}
"""Whole-number fields of TrainConfig: (least, most). A batch needs two windows (batch norm):
``_batches`` skips a batch of one, so a batch size of 1 would train nothing."""
_POSITIVE, _NON_NEGATIVE = (lambda v: v > 0, "> 0"), (lambda v: v >= 0, ">= 0")
_FRACTION, _BELOW_ONE = (lambda v: 0 <= v <= 1, "from 0 to 1"), (lambda v: 0 <= v < 1, "from 0 to below 1")
_REAL = {
    "lr": _POSITIVE,
    "seq_s": _POSITIVE,
    "val_stream_s": _POSITIVE,
    "finetune_lr": _NON_NEGATIVE,
    "stage2_embedding_weight": _NON_NEGATIVE,
    "weight_decay": _NON_NEGATIVE,
    "gain_db": _NON_NEGATIVE,
    "crop_jitter_s": _NON_NEGATIVE,
    "events_per_min": _NON_NEGATIVE,
    "bed_aux": _NON_NEGATIVE,
    "mix_background": _FRACTION,
    "hard_negatives": _FRACTION,
    "dropout": _BELOW_ONE,
    "ema": _BELOW_ONE,
}
"""Real-valued fields of TrainConfig: each finite and within (test, as said in the error)."""


def _check_numbers(cfg: "TrainConfig") -> None:
    """EdgeSedError (one line, naming the field) for a numeric field out of its range: a config
    made in Python (experiments, the demo) is held to what the CLI's options allow."""
    number = lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool)  # noqa: E731
    for name, (lo, hi) in _WHOLE.items():
        v = getattr(cfg, name)
        if not (
            isinstance(v, numbers.Integral)
            and not isinstance(v, bool)
            and lo <= v
            and (hi is None or v <= hi)
        ):
            raise EdgeSedError(
                f"training setting {name}={v!r}: must be a whole number "
                + (f">= {lo}" if hi is None else f"from {lo} to {hi}")
            )
    for name, (within, said) in _REAL.items():
        v = getattr(cfg, name)
        if not (number(v) and math.isfinite(v) and within(v)):
            raise EdgeSedError(f"training setting {name}={v!r}: must be a finite number {said}")
    for name in ("ebr_db", "bed_dbfs"):
        v = getattr(cfg, name)
        if not (
            isinstance(v, (list, tuple))
            and len(v) == 2
            and all(number(x) and math.isfinite(x) for x in v)
            and v[0] <= v[1]
        ):
            raise EdgeSedError(
                f"training setting {name}={v!r}: must be a range (low, high) of two finite numbers"
            )


STATEFUL_DEFAULTS = {
    "lr": 2e-3,
    "lr_schedule": "cosine",
    "batch_size": 16,
    "tbptt_frames": 100,
    "epochs": 120,
    "patience": 40,
    "hidden": 32,
    "context_frames": 8,
    "conv_channels": 32,
    "frame_stride": 4,
    "compression": "pcen",
    "val_streams": 12,
    "frame_targets": "active",
    "bed_aux": 0.3,
}
"""What the stateful form trains with unless told otherwise (TrainConfig's own defaults are the
windowed trainer's). Chosen on real-dev validation streams (README, "The streaming detector"):
lr 2e-3 with a cosine decay over 100-frame TBPTT chunks of 16 mixtures learns where 1e-3
constant over 200-frame chunks of 32 barely moved in 40 epochs; frame targets on the event's loud
blocks only (not the gaps between barks) gave validation event F1 0.393 vs 0.342 (seed 0, 12
validation streams); PCEN features instead of log-mel 0.486 vs 0.331 (seed 0, stride 4; seed 1:
0.515 with PCEN where the log-mel default had 0.18); the LSTM stepping every 4th frame on a conv over
the last 8 frames costs a
quarter of the per-frame LSTM's cycles for validation F1 0.486 vs 0.530 (seed 0, PCEN, 60 epochs:
within seed noise); 120 epochs 0.551 vs 60 epochs 0.486 (seed 0); the background-source auxiliary
loss (``bed_aux`` 0.3) 0.555 vs 0.520 over 5 paired seeds (4 of 5 higher) (README, "What was tried");
32 LSTM units after a conv of 32 channels (issue 15: the cheapest point that meets every
cortex-m4-80mhz goal, duty cycle 10.0 %, model 31.9 KB) 0.510 +- 0.032 vs 64 x 64 0.527 +- 0.030
and 48 x 48 0.509 +- 0.017 (seeds 0-1; README, "Accuracy against cost"); over 5 paired seeds 0.520
vs 0.563 (-0.042): the price of the M4 budget; --hidden 64 --conv-channels 64 where it is not needed."""


def from_options(values: dict, given=()) -> TrainConfig:
    """``TrainConfig(**values)`` as `edge-sed train` makes it: with ``form="stateful"``,
    STATEFUL_DEFAULTS then replace every field not named in ``given`` (the options the user gave)."""
    cfg = TrainConfig(**values)
    if cfg.form != "stateful":
        return cfg
    return replace(cfg, **{k: v for k, v in STATEFUL_DEFAULTS.items() if k not in given})
