"""The training loop on small in-memory problems: it learns, it writes a complete run
directory, and an interrupted run resumes to exactly the uninterrupted result."""

import json

import numpy as np
import pytest
import torch

from train.data import Split
from train.trainer import TrainConfig, train


def toy_splits(seed=0, counts=(12, 12, 6, 78), frames=20, mels=8):
    """Four classes, each a different spectro-temporal pattern in noise; background has
    several modes, as real background does."""
    rng = np.random.default_rng(seed)
    patterns = rng.normal(0, 1, (4 + 3, frames, mels)).astype(np.float32)

    def make(scale):
        xs, ys = [], []
        for c, n in enumerate(counts):
            n = max(2, int(n * scale))
            for i in range(n):
                mode = c if c < 3 else 3 + i % 4 if i % 4 < 3 else 3
                xs.append(patterns[min(mode, 6)] * 1.5 + rng.normal(0, 1, (frames, mels)))
                ys.append(c)
        return Split(np.asarray(xs, np.float32), np.asarray(ys), [f"g{i}" for i in range(len(ys))],
                     [f"p{i}" for i in range(len(ys))])

    return {"train": make(1.0), "val": make(0.5), "test": make(0.5)}


def config(tmp_path, **kw):
    base = dict(out=str(tmp_path / "run"), epochs=6, stage1_epochs=3, patience=10, batch_size=16,
                hidden=16, embed_dim=8, threads=1, lr=5e-3)
    return TrainConfig(**{**base, **kw})


def test_weighted_ce_learns_a_separable_problem(tmp_path):
    metrics = train(config(tmp_path, epochs=12), splits=toy_splits())
    assert metrics["test"]["balanced_accuracy"] > 0.9
    run = tmp_path / "run"
    for name in ("config.json", "metrics.json", "history.json", "best.pt", "checkpoint.pt", "confusion.png"):
        assert (run / name).exists(), name
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["test"]["overall_error"] == pytest.approx(1 - metrics["test"]["balanced_accuracy"])
    assert set(saved["test"]["per_class_error"]) == {"dog", "baby_cry", "gunshot", "background"}


@pytest.mark.parametrize("objective", ["clustered", "focal", "class-balanced", "logit-adjusted", "oversample"])
def test_every_objective_trains(tmp_path, objective):
    metrics = train(config(tmp_path, objective=objective, epochs=8), splits=toy_splits())
    assert metrics["test"]["balanced_accuracy"] > 0.6, metrics["test"]
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    stages = [h["stage"] for h in history]
    assert stages[:3] == (["embed"] * 3 if objective == "clustered" else ["classify"] * 3)


class Kill(Exception):
    pass


@pytest.mark.parametrize("objective", ["weighted-ce", "clustered"])
def test_resume_after_an_interrupted_epoch_gives_the_same_weights(tmp_path, objective):
    splits = toy_splits()
    whole = config(tmp_path / "a", objective=objective)
    train(whole, splits=splits)

    broken = config(tmp_path / "b", objective=objective)
    epochs_seen = []

    def kill_mid_epoch_4(done, total):
        if len(epochs_seen) == 0 and done == 1:
            epochs_seen.append(1)
        if done == total // 2 and len(_history(broken)) == 3:
            raise Kill()

    with pytest.raises(Kill):
        train(broken, splits=splits, on_batch=kill_mid_epoch_4)
    assert len(_history(broken)) == 3  # three epochs checkpointed, the fourth lost mid-way
    train(broken, splits=splits, resume=True)

    a = torch.load(tmp_path / "a" / "run" / "checkpoint.pt", weights_only=False)
    b = torch.load(tmp_path / "b" / "run" / "checkpoint.pt", weights_only=False)
    for key, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][key]), key
    assert a["state"]["history"] == b["state"]["history"]


def _history(cfg):
    path = f"{cfg.out}/checkpoint.pt"
    try:
        return torch.load(path, weights_only=False)["state"]["history"]
    except FileNotFoundError:
        return []


def test_train_command_defaults_are_the_config_defaults():
    """The CLI cannot import TrainConfig (torch) at definition time, so its defaults are
    literals: they must not drift from the dataclass."""
    from edge_sed.cli import experiments, train as train_command

    for command in (train_command, experiments):
        for param in command.params:
            # an option without a default (None, or click 8.2's unset sentinel) takes the config's
            if param.name in TrainConfig.__dataclass_fields__ and not getattr(param, "is_flag", False) \
                    and isinstance(param.default, (int, float, str)):
                assert param.default == getattr(TrainConfig(), param.name), (command.name, param.name)


def test_background_mixing_augmentation():
    """mix_backgrounds lays event windows over background windows on mel power: off by default
    (identity), backgrounds untouched, every mixed event at least as loud as the background
    under it and still carrying its own energy, deterministic by the generator."""
    from edge_sed.settings import BACKGROUND, LABELS

    rng = np.random.default_rng(0)
    y = np.array([0, 1, 2] * 4 + [LABELS.index(BACKGROUND)] * 12)
    x = np.log(rng.gamma(1.0, 1.0, (len(y), 20, 8)).astype(np.float32) * np.where(y == 3, 0.01, 1.0)[:, None, None] + 1e-6)
    split = Split(x.astype(np.float32), y, [f"g{i}" for i in range(len(y))], [None] * len(y))
    assert split.mix_backgrounds(split.x, np.random.default_rng(1), 0.0) is split.x
    a = split.mix_backgrounds(split.x, np.random.default_rng(1), 1.0)
    b = split.mix_backgrounds(split.x, np.random.default_rng(1), 1.0)
    assert np.array_equal(a, b) and a.dtype == np.float32 and np.isfinite(a).all()
    bg = y == LABELS.index(BACKGROUND)
    assert np.array_equal(a[bg], split.x[bg])
    assert not np.allclose(a[~bg], split.x[~bg])
    # power adds: no mixed bin is quieter than the quietest background bin
    assert (np.exp(a[~bg]) + 1e-3 >= np.exp(split.x[bg]).min()).all()
    g = split.mix_backgrounds(split.x, np.random.default_rng(2), 0.0, gain_db=6.0)
    ratio = (np.exp(g) - 1e-6).mean(axis=(1, 2)) / (np.exp(split.x) - 1e-6).mean(axis=(1, 2))
    assert ((ratio > 10 ** (-6.01 / 10)) & (ratio < 10 ** (6.01 / 10))).all() and np.ptp(ratio) > 0.5
