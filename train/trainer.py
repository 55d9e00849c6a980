"""One plain training loop, readable top to bottom.

Baselines train the whole net with their classification loss. ``clustered`` trains in two
stages: stage 1 ("embed") trains the embedding net with the clustered-centroid loss, clusters
re-assigned by k-means at the start of every epoch; stage 2 ("classify") trains the classifier
on the embeddings while the embedding net is fine-tuned at ``finetune_lr`` (or frozen with
``freeze_embedding``).

Early stopping and the best checkpoint use the validation balanced accuracy (1 - overall
error) of the classify stage. A checkpoint is written atomically after every epoch; every
epoch's randomness is seeded by (seed, epoch), so ``resume`` after a kill — even mid-epoch —
repeats exactly what the uninterrupted run would have done. A loss or a weight that stops being
finite (a diverging run, e.g. a learning rate far too high) stops the run with an EdgeSedError
naming the epoch and stage, before anything of that epoch is saved: checkpoint.pt and best.pt
stay the last good ones. TrainConfig checks its numbers when it is made (EdgeSedError naming
the field).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from edge_sed.config import STATEFUL_DEFAULTS, TrainConfig
from edge_sed.core.atomic import atomic_path, write_json
from edge_sed.core.errors import EdgeSedError
from edge_sed.core.frontend import FrontendConfig
from edge_sed.core.metrics import classification_metrics
from edge_sed.core.settings import LABELS

from .data import Split, load_splits
from .models import build_model, encoder_parameters
from .objectives import make_objective


def stateful_config(**kw) -> "TrainConfig":
    """A TrainConfig for the stateful form: STATEFUL_DEFAULTS, then ``kw``."""
    return TrainConfig(**{**STATEFUL_DEFAULTS, "form": "stateful", **kw})


def _atomic_save(obj, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _finite(model) -> bool:
    """Every weight and buffer (batch-norm statistics too) of ``model`` is finite."""
    return all(bool(torch.isfinite(t).all()) for t in model.state_dict().values() if t.is_floating_point())


def _diverged(cfg, state: dict, epoch: int, stage: str, what: str) -> EdgeSedError:
    """The error of a run whose loss or weights stopped being finite in ``epoch`` (0-based). It is
    raised before anything of that epoch is saved: checkpoint.pt and best.pt stay the last good ones."""
    if not state["epoch"]:
        kept = "no checkpoint was written"
    elif state["best_epoch"]:
        kept = f"checkpoint.pt (epoch {state['epoch']}) and best.pt (epoch {state['best_epoch']}) are kept"
    else:
        kept = f"checkpoint.pt (epoch {state['epoch']}) is kept"
    return EdgeSedError(
        f"{cfg.out}: training diverged at epoch {epoch + 1} ({stage} stage): {what}; {kept}; "
        f"try a lower learning rate than {cfg.lr:g}"
    )


@torch.no_grad()
def predict(model, x: np.ndarray, batch: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities (N, C), embeddings (N, D)) in eval mode."""
    model.eval()
    probs, embs = [], []
    for i in range(0, len(x), batch):
        z = model.embed(torch.from_numpy(x[i : i + batch]))
        embs.append(z.numpy())
        probs.append(torch.softmax(model.classify(z), 1).numpy())
    return np.concatenate(probs), np.concatenate(embs)


def _batches(n: int, batch_size: int, rng: np.random.Generator, weights=None):
    """Index batches for one epoch: a shuffle, or n draws with replacement by ``weights``."""
    order = rng.permutation(n) if weights is None else rng.choice(n, size=n, p=weights / weights.sum())
    for i in range(0, n, batch_size):
        batch = order[i : i + batch_size]
        if len(batch) > 1:  # batch norm needs two
            yield batch


def _stages(cfg: TrainConfig, two_stage: bool) -> list[str]:
    """The stage of every epoch, in order."""
    return ["embed"] * cfg.stage1_epochs * two_stage + ["classify"] * cfg.epochs


def _optimizer(cfg: TrainConfig, model, stage: str, two_stage: bool):
    if stage == "embed":
        params = [{"params": encoder_parameters(model), "lr": cfg.lr}]
    elif two_stage:
        head = list(model.classifier.parameters())
        params = [{"params": head, "lr": cfg.lr}]
        if not cfg.freeze_embedding:
            params.append({"params": encoder_parameters(model), "lr": cfg.finetune_lr})
    else:
        params = [{"params": list(model.parameters()), "lr": cfg.lr}]
    return torch.optim.AdamW(params, weight_decay=cfg.weight_decay)


def train(
    cfg: TrainConfig,
    resume: bool = False,
    on_epoch=None,
    on_batch=None,
    splits: dict[str, Split] | None = None,
) -> dict:
    """Train, write the run directory, return metrics.json's content.

    ``on_epoch(info: dict)`` is called after each epoch, ``on_batch(done, total)`` during it
    (the CLI draws its progress with them). ``splits`` skips loading (tests, experiments)."""
    if cfg.form == "stateful":
        from .stateful import train_stateful

        return train_stateful(cfg, resume=resume, on_epoch=on_epoch, on_batch=on_batch)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    started = time.perf_counter()
    splits = splits or load_splits(cfg.data, cfg.ratio, cfg.seed, cfg.synth_counts)
    model, objective = _model_and_objective(cfg, splits["train"])
    stages = _stages(cfg, objective.two_stage)
    state = _fresh_state()
    optimizer, opt_stage = None, None
    if resume and (out / "checkpoint.pt").exists():
        _, state, optimizer, opt_stage = _resume(cfg, out / "checkpoint.pt", model, objective)
    write_json(asdict(cfg), out / "config.json")

    while state["epoch"] < len(stages) and not state.get("stopped"):
        epoch = state["epoch"]
        stage = stages[epoch]
        if stage != opt_stage:
            optimizer, opt_stage = _optimizer(cfg, model, stage, objective.two_stage), stage
        losses = _train_epoch(
            cfg, model, objective, optimizer, splits["train"], epoch, stage, state, on_batch
        )
        info = {"epoch": epoch + 1, "stage": stage, "loss": float(np.mean(losses)) if losses else None}
        if stage == "classify":
            _validate(cfg, model, splits["val"], epoch, state, info)
        state["history"].append(info)
        state["epoch"] = epoch + 1
        _atomic_save(_checkpoint(model, optimizer, opt_stage, state, objective), out / "checkpoint.pt")
        if on_epoch:
            on_epoch(info)

    model.load_state_dict(torch.load(out / "best.pt", weights_only=True))
    return _finish(cfg, model, objective, splits, state, time.perf_counter() - started)


def _fresh_state() -> dict:
    """The loop's state before the first epoch (a checkpoint's ``state``)."""
    return {"epoch": 0, "best_score": -1.0, "best_epoch": None, "bad_epochs": 0, "history": []}


def _model_and_objective(cfg: TrainConfig, train_set: Split):
    """The model (seeded, its standardisation fitted on the training windows) and the objective."""
    torch.manual_seed(cfg.seed)
    model = build_model(
        cfg.model,
        n_mels=train_set.x.shape[2],
        embed_dim=cfg.embed_dim,
        num_classes=len(LABELS),
        **({"hidden": cfg.hidden} if cfg.model == "lstm" else {}),
    )
    model.standardise.fit(torch.from_numpy(train_set.x))
    objective = make_objective(
        cfg.objective, train_set.counts(), embed_dim=cfg.embed_dim, **cfg.objective_params
    )
    return model, objective


def _resume(cfg, ckpt_path: Path, model, objective) -> tuple:
    """Load a checkpoint into ``model`` (and the objective's centroids): (the checkpoint, the
    loop's state, the optimizer, its stage)."""
    ckpt = torch.load(ckpt_path, weights_only=False)
    model.load_state_dict(ckpt["model"])
    if objective.two_stage:
        objective.embedding_loss.load_state_dict(ckpt["embedding_loss"])
    optimizer = _optimizer(cfg, model, ckpt["opt_stage"], objective.two_stage)
    optimizer.load_state_dict(ckpt["optimizer"])
    return ckpt, ckpt["state"], optimizer, ckpt["opt_stage"]


def _checkpoint(model, optimizer, opt_stage: str, state: dict, objective) -> dict:
    """What ``_resume`` needs to go on from the end of an epoch."""
    ckpt = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "opt_stage": opt_stage,
        "state": state,
    }
    if objective.two_stage:
        ckpt["embedding_loss"] = objective.embedding_loss.state_dict()
    return ckpt


def _train_epoch(cfg, model, objective, optimizer, train_set: Split, epoch: int, stage: str, state, on_batch):
    """One epoch of ``stage``, seeded by (seed, epoch): its batch losses."""
    y_train = torch.from_numpy(train_set.y)
    rng = np.random.default_rng([cfg.seed, epoch])
    centroid_weight = 1.0 if stage == "embed" else cfg.stage2_embedding_weight if objective.two_stage else 0.0
    cluster_ids = None
    if centroid_weight:
        _, emb = predict(model, train_set.x)
        cluster_ids = objective.embedding_loss.assign(
            torch.from_numpy(emb), y_train, seed=cfg.seed * 1000 + epoch
        )
    if stage == "embed":
        weights = objective.stage1_sample_weights(train_set.y, cluster_ids.numpy())
    else:
        weights = objective.sample_weights(train_set.y)

    model.train()
    if stage == "classify" and objective.two_stage and cfg.freeze_embedding:
        model.eval()  # frozen encoder: its batch-norm statistics stay as stage 1 left them
        model.classifier.train()
    torch.manual_seed(cfg.seed * 1000 + epoch)
    losses, n_batches = [], -(-len(y_train) // cfg.batch_size)
    jitter = int(round(cfg.crop_jitter_s * 1000 / FrontendConfig().hop_ms))
    aug_rng = np.random.default_rng([cfg.seed, epoch, 1])
    x_epoch = train_set.random_crops(aug_rng, jitter)
    x_epoch = torch.from_numpy(
        train_set.mix_backgrounds(x_epoch, aug_rng, cfg.mix_background, gain_db=cfg.gain_db)
    )
    for b, idx in enumerate(_batches(len(y_train), cfg.batch_size, rng, weights)):
        idx = torch.from_numpy(idx)
        z = model.embed(x_epoch[idx])
        loss = 0.0
        if stage == "classify":
            loss = objective.classification_loss(model.classify(z), y_train[idx])
        if centroid_weight:
            loss = loss + centroid_weight * objective.embedding_loss(z, y_train[idx], cluster_ids[idx])
        value = loss.item()
        if not math.isfinite(value):
            raise _diverged(cfg, state, epoch, stage, f"the loss is {value}")
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        if centroid_weight:
            objective.embedding_loss.update_centroids(z.detach(), cluster_ids[idx])
        losses.append(value)
        if on_batch:
            on_batch(b + 1, n_batches)
    if not _finite(model):  # the last step of the epoch: before best.pt or checkpoint.pt could keep it
        raise _diverged(cfg, state, epoch, stage, "the weights are no longer finite")
    return losses


def _validate(cfg, model, val: Split, epoch: int, state: dict, info: dict) -> None:
    """After a classify epoch: the validation balanced accuracy into ``info``; best.pt and early
    stopping in ``state``."""
    probs, _ = predict(model, val.x)
    score = classification_metrics(val.y, probs.argmax(1))["balanced_accuracy"]
    info["val_balanced_accuracy"] = score
    if score > state["best_score"]:
        state.update(best_score=score, best_epoch=epoch + 1, bad_epochs=0)
        _atomic_save(model.state_dict(), Path(cfg.out) / "best.pt")
    else:
        state["bad_epochs"] += 1
        if state["bad_epochs"] >= cfg.patience:
            state["stopped"] = f"no better val score for {cfg.patience} epochs"


def _finish(cfg, model, objective, splits, state, seconds) -> dict:
    """metrics.json, the history and the figures of a finished run."""
    out = Path(cfg.out)
    metrics = {
        "objective": cfg.objective,
        "model": cfg.model,
        "seed": cfg.seed,
        "data": cfg.data,
        "ratio": cfg.ratio,
        "train_counts": dict(zip(LABELS, splits["train"].counts())),
        "best_epoch": state["best_epoch"],
        "epochs_run": state["epoch"],
        "stopped": state.get("stopped"),
        "train_seconds": round(seconds, 2),
        "frontend": FrontendConfig().to_dict(),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    embeddings = {}
    for name in ("val", "test"):
        probs, embeddings[name] = predict(model, splits[name].x)
        metrics[name] = classification_metrics(splits[name].y, probs.argmax(1))
    write_json(metrics, out / "metrics.json")
    write_json(state["history"], out / "history.json")
    try:
        from .plots import plot_confusion, plot_embeddings

        plot_confusion(metrics["test"], out / "confusion.png", title=f"{cfg.model} {cfg.objective} (test)")
        centroids = objective.embedding_loss if objective.two_stage else None
        plot_embeddings(embeddings["test"], splits["test"].y, out / "embeddings.png", centroids)
    except ImportError:  # matplotlib not installed: the numbers are in metrics.json anyway
        pass
    return metrics
