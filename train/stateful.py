"""The stateful streaming detector: the LSTM steps once per front-end frame with its state
carried through the stream (never reset), trained on mixtures with frame targets by truncated
back-propagation through time. Readable top to bottom, like train.trainer.

Data (edge_sed.data.mixer): every epoch ``sequences`` fresh mixtures of ``seq_s`` seconds drawn from
the training split only, deterministic by (seed, epoch): event spans of the split laid on beds
of the split's background recordings, EBR uniform in ``ebr_db``, bed level uniform in
``bed_dbfs``, events cut by the sequence edges, event-free sequences; mixed as audio, then the
real front end (log-mel, or PCEN with ``compression="pcen"``). Validation streams are built once from
the validation groups
(EBR -6/0/+6 dB, beds over 15 dB) and the checkpoint with the best validation event F1 is kept.

TBPTT: each batch of sequences is cut into chunks of ``tbptt_frames``; the state passes from
chunk to chunk (detached), so the net learns to run from any state, not only from zeros.

Objectives: the baselines' classification losses on frames (class counts = frame counts of an
epoch). ``clustered`` adds stage 1: the clustered-centroid loss on *segment* embeddings (the
embedding at the last frame of every event span, and at one frame per second of background),
clusters re-assigned by k-means every epoch on a no-grad pass; then stage 2 trains the
classifier on frames with the encoder fine-tuned.

Background-source loss (``bed_aux`` > 0, on by default): beside the frame loss, a training-only
linear head names, from each background step's embedding, the source class of the recording
playing under it (siren, street music, drilling, ... from the data's ``source_class``), weighted
``bed_aux``. "Background" is many sounds; making the embedding tell them apart keeps the tonal
and voiced ones away from the event classes. The head is never exported (best.pt holds the
detector only). The clustered objective splits the big class by k-means; this splits it by what
the data says it is.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edge_sed.core.atomic import write_json
from edge_sed.core.frontend import FrontendConfig, compress, log_mel, mel_energies
from edge_sed.data.mixer import (
    Banks,
    append_crossfaded,
    block_frame_targets,
    evaluation_streams,
    frame_targets,
    mix,
    rms,
    split_clips,
)
from edge_sed.eval.scoring import score_streams
from edge_sed.core.settings import BACKGROUND, LABELS, SAMPLE_RATE
from edge_sed.core.smoother import Smoother

from .models import build_model
from .objectives import make_objective
from .trainer import _atomic_save, _checkpoint, _diverged, _finite, _fresh_state, _optimizer, _resume, _stages

STATEFUL_SMOOTHER = {"average_window_ms": 200.0, "minimum_count": 3, "suppression_ms": 3000.0}
"""Per-frame decisions: a short average (a gunshot lasts 0.1-0.5 s) over >= 3 frames."""
SELECTION_THRESHOLDS = (0.5, 0.7, 0.9)
"""Checkpoint selection: the validation event F1 at the best of these global thresholds (the
per-class thresholds are calibrated once, on the chosen checkpoint)."""


def clip_splits(cfg) -> dict:
    """The clip lists of train/val/test for a config (same rules as the windowed trainer)."""
    from .data import synthetic_source

    source = synthetic_source(cfg.synth_counts, cfg.seed) if cfg.data == "synthetic" else cfg.data
    return split_clips(source, cfg.seed, cfg.ratio)


def floor_track(
    features: np.ndarray, up_s: float = 4.0, down_s: float = 0.2, hop_s: float = 0.01
) -> np.ndarray:
    """Experiment: log-mel minus a per-band background-floor tracker (rises slowly, falls fast),
    over (..., frames, n_mels), from the first frame."""
    a_up, a_down = hop_s / up_s, hop_s / down_s
    x = np.moveaxis(features, -2, 0)
    out = np.empty_like(x)
    m = x[0].copy()
    for t in range(len(x)):
        d = x[t] - m
        m += np.where(d > 0, a_up, a_down) * d
        out[t] = x[t] - m
    return np.moveaxis(out, 0, -2)


FEATURE_NORM = {
    "none": lambda f: f,
    "floor": floor_track,
    "both": lambda f: np.concatenate([f, floor_track(f)], -1),
}


def mixture_batch(
    banks: Banks,
    rng: np.random.Generator,
    count: int,
    seq_s: float,
    cfg_fe: FrontendConfig,
    norm: str = "none",
    bed_targets: bool = False,
    **mix_kw,
):
    """``count`` mixtures -> features (count, frames, n_mels), targets (count, frames), annotations;
    with ``bed_targets`` also (count, frames) the index in ``banks.bed_classes`` of the background
    recording's source class under every frame (what plays beneath, event or not)."""
    mels, ys, anns, beds = [], [], [], []
    active = mix_kw.pop("targets", "span") == "active"
    for _ in range(count):
        segments = [] if bed_targets else None
        if active:
            audio, ann, blocks = mix(banks, seq_s, rng, activity=True, segments=segments, **mix_kw)
        else:
            audio, ann = mix(banks, seq_s, rng, segments=segments, **mix_kw)
        mel = mel_energies(audio, cfg_fe)
        mels.append(mel)
        ys.append(
            block_frame_targets(blocks, len(mel), cfg_fe) if active else frame_targets(ann, len(mel), cfg_fe)
        )
        anns.append(ann)
        if bed_targets:
            centre = np.arange(len(mel)) * cfg_fe.hop_samples + cfg_fe.window_samples // 2
            starts = np.array([s for s, _ in segments])
            cls = np.array([banks.bed_classes.index(banks.bed_sources[g]) for _, g in segments])
            beds.append(cls[np.maximum(np.searchsorted(starts, centre, side="right") - 1, 0)])
    # the front end's compression over the whole batch at once (each mixture from its start)
    out = FEATURE_NORM[norm](compress(np.stack(mels), cfg_fe)), np.stack(ys), anns
    return (*out, np.stack(beds)) if bed_targets else out


def eval_audio(banks: Banks, seed: int, count: int, seconds: float) -> list:
    """Fixed evaluation streams as audio (edge_sed.data.mixer.evaluation_streams, what ``edge-sed data
    mix`` writes): [(audio, annotations, duration_s)]."""
    return evaluation_streams(banks, seed, count, seconds)


def eval_streams(
    banks: Banks, seed: int, count: int, seconds: float, cfg_fe: FrontendConfig, norm: str = "none"
) -> list:
    """``eval_audio`` through the front end: [(features, annotations, duration_s)]."""
    return [
        (FEATURE_NORM[norm](log_mel(a, cfg_fe)), ann, d)
        for a, ann, d in eval_audio(banks, seed, count, seconds)
    ]


@torch.no_grad()
def stream_probabilities(model, features: np.ndarray) -> np.ndarray:
    """(frames, n_mels) -> (frames, classes): one pass with the state carried from frame 0. With
    a stride, each step's probabilities hold over its ``stride`` frames (so frame
    k*stride + stride-1, the one ``detect(..., every=stride)`` reads, is step k's)."""
    model.eval()
    logits, _ = model.frame_logits(torch.from_numpy(features[None]))
    p = torch.softmax(logits[0], -1).numpy()
    stride = getattr(model, "stride", 1)
    if stride > 1:
        p = np.repeat(p, stride, 0)
        p = (
            np.concatenate([p, np.repeat(p[-1:], len(features) - len(p), 0)])
            if len(p)
            else np.zeros((len(features), logits.shape[-1]), np.float32)
        )
    return p


def freq_mask(x: np.ndarray, mean: np.ndarray, max_bands: int, rng: np.random.Generator) -> np.ndarray:
    """SpecAugment's frequency masking on (count, frames, n_mels) features: in each mixture a run
    of 0..``max_bands`` adjacent bands, the same for all its frames, set to the training mean
    (standardised to 0: no evidence there), so no single band can carry a class (another
    microphone, a band the background covers)."""
    x = x.copy()
    for i in range(len(x)):
        w = int(rng.integers(0, max_bands + 1))
        if w:
            f0 = int(rng.integers(0, x.shape[-1] - w + 1))
            x[i, :, f0 : f0 + w] = mean[f0 : f0 + w]
    return x


def bed_features(
    banks: Banks, cfg_fe: FrontendConfig, norm: str = "none", max_s: float = 30.0, level_dbfs: float = -30.0
) -> list:
    """Hard-negative mining's material: each background group of ``banks`` alone, its clips
    joined as ``make_bed`` joins them (at one level, at most ``max_s`` seconds), through the
    front end: [features] in the order of ``banks.groups``. Computed once (the features do not
    change; only the model that scores them does)."""
    out = []
    for g in banks.groups:
        pieces, have = [], 0
        for x in banks.backgrounds[g]:
            have += append_crossfaded(pieces, x * np.float32(10 ** (level_dbfs / 20) / rms(x)))
            if have >= max_s * SAMPLE_RATE:
                break
        out.append(FEATURE_NORM[norm](log_mel(np.concatenate(pieces)[: int(max_s * SAMPLE_RATE)], cfg_fe)))
    return out


def bed_weights(model, beds: list, share: float) -> np.ndarray:
    """Hard-negative mining: how often ``make_bed`` should draw each background group. A group's
    score is the fraction of its frames where the model's top event class is above 0.5 (where it
    would fire, on background alone); ``share`` of the draws follow the scores, the rest stay
    uniform (so no recording is forgotten)."""
    events = [i for i, l in enumerate(LABELS) if l != BACKGROUND]
    fire = np.array([float((stream_probabilities(model, f)[:, events].max(1) > 0.5).mean()) for f in beds])
    uniform = np.full(len(beds), 1.0 / len(beds))
    if fire.sum() <= 0:
        return uniform
    return (1 - share) * uniform + share * fire / fire.sum()


def make_smoother(thresholds=0.5, **overrides) -> Smoother:
    return Smoother(LABELS, threshold=thresholds, **{**STATEFUL_SMOOTHER, **overrides})


def scored_streams(model, streams) -> list:
    """[(features, annotations, duration_s)] -> [(probabilities, annotations, duration_s)]."""
    return [(stream_probabilities(model, f), ann, d) for f, ann, d in streams]


def evaluate(model, streams, thresholds=0.5, **smoother_kw) -> dict:
    return score_streams(
        scored_streams(model, streams),
        make_smoother(thresholds, **smoother_kw),
        every=getattr(model, "stride", 1),
    )


@torch.no_grad()
def ema_update(ema: dict | None, model, decay: float) -> dict:
    """The exponential moving average of ``model``'s weights after one more step (``ema`` None:
    start from the current weights); integer buffers are copied."""
    if ema is None:
        return {k: v.detach().clone() for k, v in model.state_dict().items()}
    for k, v in model.state_dict().items():
        if v.dtype.is_floating_point:
            ema[k].mul_(decay).add_(v, alpha=1.0 - decay)
        else:
            ema[k].copy_(v)
    return ema


def stream_summary(scored, thresholds, every: int = 1) -> dict:
    """A run's summary of scored streams [(probabilities, annotations, duration_s)]: the
    events' causal-delay rule, and under "dcase" DCASE's rule (0.5 s collar on the onset)."""
    smoother = make_smoother(thresholds)
    return {
        **_summary(score_streams(scored, smoother, every=every)),
        "dcase": _summary(score_streams(scored, smoother, every=every, delay_s=0.0)),
    }


def calibrate(probs_streams, grid=np.round(np.arange(0.3, 0.96, 0.05), 2), every: int = 1) -> dict:
    """Per-class thresholds that maximise each class's validation event F1 (coordinate ascent,
    two rounds, from 0.5). ``probs_streams``: [(probabilities, annotations, duration_s)]."""
    thr = {l: 0.5 for l in LABELS if l != BACKGROUND}
    for _ in range(2):
        for label in thr:
            best = (-1.0, thr[label])
            for p in grid:
                m = score_streams(probs_streams, make_smoother({**thr, label: float(p)}), every=every)
                f = m["per_class"][label]["f1"] - 1e-3 * m["per_class"][label]["false_alarms_per_hour"]
                if f > best[0] + 1e-9:
                    best = (f, float(p))
            thr[label] = best[1]
    return thr


@dataclass
class StatefulRun:
    """Everything one stateful training holds: the data (fixed when it starts), the model and
    its objective, and what changes epoch by epoch (optimizer, state, averaged weights)."""

    cfg: Any
    out: Path
    fe: FrontendConfig
    banks: dict  # split name -> Banks
    mix_kw: dict  # the training mixtures' settings (edge_sed.data.mixer.mix)
    val_streams: list
    frame_counts: np.ndarray = None
    unit_counts: np.ndarray = None
    model: Any = None
    objective: Any = None
    stages: list = None
    bed_head: Any = None  # the background-source head (training only, never exported)
    bed_opt: Any = None
    beds: list = None  # hard-negative mining's background features
    optimizer: Any = None
    opt_stage: str = None
    ema: dict = None  # the averaged weights (cfg.ema), from the first classify step on
    state: dict = field(default_factory=_fresh_state)

    @property
    def two_stage(self) -> bool:
        return self.objective.two_stage


def train_stateful(cfg, resume: bool = False, on_epoch=None, on_batch=None) -> dict:
    """Train the stateful form, write the run directory, return metrics.json's content (the
    arguments as for train.trainer.train)."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    started = time.perf_counter()
    run = _setup_data(cfg)
    _setup_model(run, _sample_epoch(run))
    _setup_training(run, resume)
    while run.state["epoch"] < len(run.stages) and not run.state.get("stopped"):
        epoch = run.state["epoch"]
        stage = run.stages[epoch]
        if stage != run.opt_stage:
            run.optimizer, run.opt_stage = _optimizer(cfg, run.model, stage, run.two_stage), stage
        losses = _train_epoch(run, epoch, stage, on_batch)
        info = {"epoch": epoch + 1, "stage": stage, "loss": float(np.mean(losses)) if losses else None}
        if stage == "classify":
            _validate(run, epoch, info)
        run.state["history"].append(info)
        run.state["epoch"] = epoch + 1
        _save_checkpoint(run)
        if on_epoch:
            on_epoch(info)
    return _write_outputs(run, started)


def _setup_data(cfg) -> StatefulRun:
    """The splits' banks, the validation streams and the mixtures' settings."""
    fe = FrontendConfig(compression=cfg.compression)
    banks = {name: Banks(clips) for name, clips in clip_splits(cfg).items()}
    mix_kw = dict(
        events_per_min=cfg.events_per_min,
        ebr_db=tuple(cfg.ebr_db),
        bed_dbfs=tuple(cfg.bed_dbfs),
        targets=cfg.frame_targets,
        **({"augment": True} if cfg.augment else {}),
    )
    val_streams = eval_streams(
        banks["val"], cfg.seed, cfg.val_streams, cfg.val_stream_s, fe, cfg.feature_norm
    )
    return StatefulRun(cfg, Path(cfg.out), fe, banks, mix_kw, val_streams)


def _sample_epoch(run: StatefulRun) -> np.ndarray:
    """A sample epoch's frame counts (the frame losses' class weights) and segment counts (stage 1
    of clustered: clusters of about the rarest class's segment count); returns its features (the
    standardisation statistics)."""
    cfg = run.cfg
    rng = np.random.default_rng([cfg.seed, 999_983])
    x0, y0, anns0 = mixture_batch(
        run.banks["train"], rng, min(cfg.sequences, 64), cfg.seq_s, run.fe, cfg.feature_norm, **run.mix_kw
    )
    run.frame_counts = np.maximum(np.bincount(y0.ravel(), minlength=len(LABELS)), 1)
    units = _segment_units(anns0, y0.shape[1], run.fe)
    run.unit_counts = np.maximum(np.bincount(units[:, 2], minlength=len(LABELS)), 1)
    return x0


def _setup_model(run: StatefulRun, x0: np.ndarray) -> None:
    """The model (seeded, standardised on ``x0``), the objective and the epochs' stages."""
    cfg = run.cfg
    torch.manual_seed(cfg.seed)
    run.model = build_model(
        cfg.model,
        n_mels=x0.shape[-1],
        embed_dim=cfg.embed_dim,
        num_classes=len(LABELS),
        hidden=cfg.hidden,
        context_frames=cfg.context_frames,
        conv_channels=cfg.conv_channels,
        stride=cfg.frame_stride,
        dropout=cfg.dropout,
    )
    stride = run.model.stride
    if cfg.tbptt_frames % stride:
        raise ValueError(f"tbptt_frames ({cfg.tbptt_frames}) must be a multiple of frame_stride ({stride})")
    run.model.standardise.fit(torch.from_numpy(x0))
    objective = make_objective(
        cfg.objective, run.frame_counts.tolist(), embed_dim=cfg.embed_dim, **cfg.objective_params
    )
    if objective.two_stage:  # stage 1 counts segments; the frame losses keep the frame counts' weights
        frame_weights = objective.class_weights
        objective = make_objective(
            cfg.objective, run.unit_counts.tolist(), embed_dim=cfg.embed_dim, **cfg.objective_params
        )
        objective.class_weights = frame_weights
    run.objective = objective
    run.stages = _stages(cfg, objective.two_stage)


def _setup_training(run: StatefulRun, resume: bool) -> None:
    """The background-source head, the checkpoint to resume from (if asked and there), the
    hard-negative features; writes config.json."""
    cfg = run.cfg
    if cfg.bed_aux > 0:  # from the embedding of a background step, which kind of recording plays
        run.bed_head = torch.nn.Linear(cfg.embed_dim, len(run.banks["train"].bed_classes))
        run.bed_opt = torch.optim.AdamW(run.bed_head.parameters(), lr=cfg.lr)
    ckpt_path = run.out / "checkpoint.pt"
    if resume and ckpt_path.exists():
        ckpt, run.state, run.optimizer, run.opt_stage = _resume(cfg, ckpt_path, run.model, run.objective)
        if run.bed_head is not None:
            run.bed_head.load_state_dict(ckpt["bed_head"])
            run.bed_opt.load_state_dict(ckpt["bed_opt"])
        run.ema = ckpt.get("ema")
    if run.state.get("bed_weights") is not None:
        run.banks["train"].bed_weights = np.asarray(run.state["bed_weights"])
    if cfg.hard_negatives > 0:
        run.beds = bed_features(run.banks["train"], run.fe, cfg.feature_norm)
    write_json(asdict(cfg), run.out / "config.json")


def _train_epoch(run: StatefulRun, epoch: int, stage: str, on_batch) -> list:
    """One epoch of ``stage`` on fresh mixtures (seeded by (seed, epoch)), each batch by TBPTT
    chunks: the chunks' losses."""
    cfg, model = run.cfg, run.model
    rng = np.random.default_rng([cfg.seed, epoch])
    batch = mixture_batch(
        run.banks["train"],
        rng,
        cfg.sequences,
        cfg.seq_s,
        run.fe,
        cfg.feature_norm,
        bed_targets=run.bed_head is not None,
        **run.mix_kw,
    )
    x, y, anns = batch[:3]
    if cfg.freq_mask:
        x = freq_mask(x, model.standardise.mean.numpy(), cfg.freq_mask, rng)
    units = cluster_ids = None
    if stage == "embed":
        units = _segment_units(anns, y.shape[1], run.fe)
        cluster_ids = run.objective.embedding_loss.assign(
            _unit_embeddings(model, x, units), torch.from_numpy(units[:, 2]), seed=cfg.seed * 1000 + epoch
        )
    torch.manual_seed(cfg.seed * 1000 + epoch)
    model.train()
    order = rng.permutation(len(x))
    losses = []
    n_batches = -(-len(x) // cfg.batch_size)
    for b in range(n_batches):
        idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
        xb, yb = torch.from_numpy(x[idx]), torch.from_numpy(y[idx])
        bb = torch.from_numpy(batch[3][idx]) if run.bed_head is not None else None
        hc = None
        for t0 in range(0, xb.shape[1], cfg.tbptt_frames):
            t1 = min(t0 + cfg.tbptt_frames, xb.shape[1])
            z, hc = model.frame_embed(xb[:, t0:t1], hc)
            hc = tuple(s.detach() for s in hc)
            zs = cid = None
            if stage == "classify":
                loss = _frame_loss(run, z, yb, bb, t0, t1)
            else:
                sel = _units_in(units, idx, t0, t1)
                if not len(sel):
                    continue
                loss, zs, cid = _segment_loss(run, z, units, sel, idx, t0, cluster_ids)
            if cfg.lr_schedule == "cosine":
                _cosine_lr(run, stage, (epoch + (b + t0 / xb.shape[1]) / n_batches) / len(run.stages))
            losses.append(_step(run, loss, epoch, stage, zs, cid))
        if on_batch:
            on_batch(b + 1, n_batches)
    if not _finite(model):  # the last step of the epoch: before best.pt or checkpoint.pt could keep it
        raise _diverged(cfg, run.state, epoch, stage, "the weights are no longer finite")
    return losses


def _frame_loss(run: StatefulRun, z, yb, bb, t0: int, t1: int):
    """Classify stage: the frame loss of one chunk's steps, plus the background-source loss."""
    stride = run.model.stride
    logits = run.model.classify(z.reshape(-1, z.shape[-1]))
    target = yb[:, t0 + stride - 1 : t1 : stride].reshape(-1)
    loss = run.objective.classification_loss(logits, target)
    if run.bed_head is not None:
        quiet = target == LABELS.index(BACKGROUND)
        if quiet.any():
            bed = bb[:, t0 + stride - 1 : t1 : stride].reshape(-1)[quiet]
            loss = loss + run.cfg.bed_aux * torch.nn.functional.cross_entropy(
                run.bed_head(z.reshape(-1, z.shape[-1])[quiet]), bed
            )
    return loss


def _segment_loss(run: StatefulRun, z, units, sel, idx, t0: int, cluster_ids):
    """Embed stage: the clustered-centroid loss of the segment units ``sel`` in one chunk; (loss,
    their embeddings, their cluster ids)."""
    row_of = {int(seq): r for r, seq in enumerate(idx)}
    rows = torch.tensor([row_of[int(s)] for s in units[sel, 0]])
    zs = z[rows, torch.from_numpy(np.minimum((units[sel, 1] - t0) // run.model.stride, z.shape[1] - 1))]
    cid = cluster_ids[torch.from_numpy(sel)]
    return run.objective.embedding_loss(zs, torch.from_numpy(units[sel, 2]), cid), zs, cid


def _cosine_lr(run: StatefulRun, stage: str, done: float) -> None:
    """Set the optimizer's learning rates ``done`` (0..1) of the way down the cosine."""
    for g, base in zip(run.optimizer.param_groups, _base_lrs(run.cfg, stage, run.two_stage)):
        g["lr"] = base * 0.5 * (1 + np.cos(np.pi * min(done, 1.0)))


def _step(run: StatefulRun, loss, epoch: int, stage: str, zs, cid) -> float:
    """One optimizer step on ``loss`` (the head's too, and the averaged weights and centroids);
    its value. A loss that is not finite stops the run before the step."""
    cfg = run.cfg
    value = loss.item()
    if not math.isfinite(value):
        raise _diverged(cfg, run.state, epoch, stage, f"the loss is {value}")
    run.optimizer.zero_grad()
    if run.bed_opt is not None:
        run.bed_opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(run.model.parameters(), 5.0)
    run.optimizer.step()
    if run.bed_opt is not None and stage == "classify":
        run.bed_opt.step()
    if cfg.ema and stage == "classify":
        run.ema = ema_update(run.ema, run.model, cfg.ema)
    if stage == "embed":
        run.objective.embedding_loss.update_centroids(zs.detach(), cid)
    return value


def _validate(run: StatefulRun, epoch: int, info: dict) -> None:
    """After a classify epoch: the validation event F1 (of the averaged weights with cfg.ema)
    into ``info``; best.pt and early stopping in the state; hard-negative mining's new bed weights."""
    cfg, state = run.cfg, run.state
    judged = run.model
    if run.ema is not None:  # validate (and keep) the averaged weights
        judged = copy.deepcopy(run.model)
        judged.load_state_dict(run.ema)
    probs = scored_streams(judged, run.val_streams)
    m = max(
        (score_streams(probs, make_smoother(p), every=run.model.stride) for p in SELECTION_THRESHOLDS),
        key=lambda r: r["f1"],
    )
    info.update(val_event_f1=m["f1"], val_false_alarms_per_hour=m["false_alarms_per_hour"])
    if m["f1"] > state["best_score"]:
        state.update(best_score=m["f1"], best_epoch=epoch + 1, bad_epochs=0)
        _atomic_save(judged.state_dict(), run.out / "best.pt")
    else:
        state["bad_epochs"] += 1
        if state["bad_epochs"] >= cfg.patience:
            state["stopped"] = f"no better val event F1 for {cfg.patience} epochs"
    if run.beds is not None and (epoch + 1) % cfg.mine_every == 0:
        w = bed_weights(run.model, run.beds, cfg.hard_negatives)
        run.banks["train"].bed_weights, state["bed_weights"] = w, w.tolist()
        info["hard_negative_top_share"] = float(np.sort(w)[-max(1, len(w) // 10) :].sum())


def _save_checkpoint(run: StatefulRun) -> None:
    ckpt = _checkpoint(run.model, run.optimizer, run.opt_stage, run.state, run.objective)
    if run.bed_head is not None:
        ckpt["bed_head"], ckpt["bed_opt"] = run.bed_head.state_dict(), run.bed_opt.state_dict()
    if run.ema is not None:
        ckpt["ema"] = run.ema
    _atomic_save(ckpt, run.out / "checkpoint.pt")  # a kill mid-write must not break --resume


def _write_outputs(run: StatefulRun, started: float) -> dict:
    """The best checkpoint's per-class thresholds (calibrated on the validation streams), its
    validation and test stream figures: metrics.json and history.json."""
    cfg, model, state = run.cfg, run.model, run.state
    model.load_state_dict(torch.load(run.out / "best.pt", weights_only=True))
    stride = model.stride
    val_probs = scored_streams(model, run.val_streams)
    thresholds = calibrate(val_probs, every=stride)
    test_streams = eval_streams(
        run.banks["test"], cfg.seed + 1, cfg.val_streams, cfg.val_stream_s, run.fe, cfg.feature_norm
    )
    metrics = {
        "objective": cfg.objective,
        "model": cfg.model,
        "form": "stateful",
        "seed": cfg.seed,
        "data": cfg.data,
        "ratio": cfg.ratio,
        "frame_counts": dict(zip(LABELS, run.frame_counts.tolist())),
        "segment_counts": dict(zip(LABELS, run.unit_counts.tolist())),
        "best_epoch": state["best_epoch"],
        "epochs_run": state["epoch"],
        "stopped": state.get("stopped"),
        "train_seconds": round(time.perf_counter() - started, 2),
        "frontend": run.fe.to_dict(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "smoother": {**STATEFUL_SMOOTHER, "thresholds": thresholds},
        "frame_stride": stride,
        "val_stream": stream_summary(val_probs, thresholds, stride),
        "test_stream": stream_summary(scored_streams(model, test_streams), thresholds, stride),
    }
    write_json(metrics, run.out / "metrics.json")
    write_json(state["history"], run.out / "history.json")
    return metrics


def _summary(m: dict) -> dict:
    keep = (
        "f1",
        "precision",
        "recall",
        "error_rate",
        "false_alarms_per_hour",
        "latency_median_s",
        "reference",
        "tp",
        "fp",
        "false_alarm_kinds",
    )
    return {
        **{k: m[k] for k in keep},
        "per_class": {
            l: {k: v for k, v in c.items() if k in ("f1", "tp", "fp", "fn", "reference", "latency_median_s")}
            for l, c in m["per_class"].items()
        },
    }


def _base_lrs(cfg, stage: str, two_stage: bool) -> list[float]:
    if stage == "embed" or not two_stage:
        return [cfg.lr]
    return [cfg.lr] + ([] if cfg.freeze_embedding else [cfg.finetune_lr])


def _segment_units(anns, n_frames: int, fe: FrontendConfig) -> np.ndarray:
    """Stage-1 units (sequence, frame, class): the last frame of every event span, and one
    frame per second of each sequence that holds no event."""
    bg = LABELS.index(BACKGROUND)
    rows = []
    hop_s = fe.hop_samples / fe.sample_rate
    per_s = int(round(1.0 / hop_s))
    for i, ann in enumerate(anns):
        y = np.zeros(n_frames, bool)
        for a in ann:
            last = min(n_frames - 1, int((a.offset_s - fe.window_samples / fe.sample_rate / 2) / hop_s))
            first = max(0, int(a.onset_s / hop_s))
            y[first : last + 1] = True
            rows.append((i, max(first, last), LABELS.index(a.label)))
        for t in range(per_s // 2, n_frames, per_s):
            if not y[max(0, t - per_s // 2) : t + 1].any():
                rows.append((i, t, bg))
    return np.asarray(rows, np.int64).reshape(-1, 3)


@torch.no_grad()
def _unit_embeddings(model, x: np.ndarray, units: np.ndarray, batch: int = 64) -> torch.Tensor:
    model.eval()
    out = torch.zeros(len(units), model.embedding.out_features)
    for b in range(0, len(x), batch):
        z, _ = model.frame_embed(torch.from_numpy(x[b : b + batch]))
        sel = np.flatnonzero((units[:, 0] >= b) & (units[:, 0] < b + batch))
        steps = np.minimum(units[sel, 1] // model.stride, z.shape[1] - 1)
        out[sel] = z[torch.from_numpy(units[sel, 0] - b), torch.from_numpy(steps)]
    return out


def _units_in(units: np.ndarray, idx: np.ndarray, t0: int, t1: int) -> np.ndarray:
    return np.flatnonzero(np.isin(units[:, 0], idx) & (units[:, 1] >= t0) & (units[:, 1] < t1))
