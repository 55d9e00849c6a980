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
        return Split(
            np.asarray(xs, np.float32),
            np.asarray(ys),
            [f"g{i}" for i in range(len(ys))],
            [f"p{i}" for i in range(len(ys))],
        )

    return {"train": make(1.0), "val": make(0.5), "test": make(0.5)}


def config(tmp_path, **kw):
    base = dict(
        out=str(tmp_path / "run"),
        epochs=6,
        stage1_epochs=3,
        patience=10,
        batch_size=16,
        hidden=16,
        embed_dim=8,
        threads=1,
        lr=5e-3,
    )
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


@pytest.mark.parametrize(
    "objective", ["clustered", "focal", "class-balanced", "logit-adjusted", "oversample"]
)
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
    from edge_sed.cli.train import experiments, train as train_command

    for command in (train_command, experiments):
        for param in command.params:
            # an option without a default (None, or click 8.2's unset sentinel) takes the config's
            if (
                param.name in TrainConfig.__dataclass_fields__
                and not getattr(param, "is_flag", False)
                and isinstance(param.default, (int, float, str))
            ):
                assert param.default == getattr(TrainConfig(), param.name), (command.name, param.name)


def test_background_mixing_augmentation():
    """mix_backgrounds lays event windows over background windows on mel power: off by default
    (identity), backgrounds untouched, every mixed event at least as loud as the background
    under it and still carrying its own energy, deterministic by the generator."""
    from edge_sed.core.settings import BACKGROUND, LABELS

    rng = np.random.default_rng(0)
    y = np.array([0, 1, 2] * 4 + [LABELS.index(BACKGROUND)] * 12)
    x = np.log(
        rng.gamma(1.0, 1.0, (len(y), 20, 8)).astype(np.float32) * np.where(y == 3, 0.01, 1.0)[:, None, None]
        + 1e-6
    )
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


# ------------------------------------------------------------- bad numbers and diverging runs


@pytest.mark.parametrize(
    "field, value, fragment",
    [
        ("epochs", 0, "whole number from 1 to 10000"),
        ("epochs", -3, "from 1 to 10000"),
        ("epochs", 10**12, "to 10000"),
        ("epochs", 2.5, "whole number"),
        ("batch_size", 0, ">= 2"),
        ("batch_size", 1, ">= 2"),
        ("patience", 0, "from 1"),
        ("stage1_epochs", 0, "from 1"),
        ("seed", -1, "from 0 to 4294967295"),
        ("threads", -1, "from 0 to 1024"),
        ("hidden", 0, ">= 1"),
        ("sequences", 0, ">= 1"),
        ("lr", 0.0, "> 0"),
        ("lr", -1.0, "> 0"),
        ("lr", float("nan"), "finite"),
        ("lr", float("inf"), "finite"),
        ("lr", "0.1", "finite number"),
        ("finetune_lr", -1e-3, ">= 0"),
        ("weight_decay", float("nan"), "finite"),
        ("mix_background", 1.5, "from 0 to 1"),
        ("dropout", 1.0, "below 1"),
        ("ema", float("nan"), "below 1"),
        ("seq_s", 0.0, "> 0"),
        ("ebr_db", (float("nan"), 9.0), "two finite numbers"),
        ("bed_dbfs", (0.0, -50.0), "range"),
    ],
)
def test_train_config_refuses_numbers_out_of_range(field, value, fragment):
    """TrainConfig is made from Python too (experiments, the demo): its numbers are checked as the CLI's
    options are. epochs=0 trained nothing and then failed on the missing best.pt; batch_size=1 skipped
    every batch (batch norm needs two)."""
    from edge_sed.core.errors import EdgeSedError

    with pytest.raises(EdgeSedError) as err:
        TrainConfig(**{field: value})
    message = str(err.value)
    assert message.startswith(f"training setting {field}=") and fragment in message and "\n" not in message


def test_experiments_refuse_a_bad_setting_before_any_worker(tmp_path):
    from edge_sed.core.errors import EdgeSedError
    from train.experiments import run_table

    with pytest.raises(EdgeSedError, match="training setting seed=-1"):
        run_table("synthetic", seeds=[0, -1], out_dir=tmp_path, workers=1, epochs=1)
    with pytest.raises(EdgeSedError, match="training setting batch_size=1"):
        run_table("synthetic", seeds=[0], out_dir=tmp_path, workers=1, epochs=1, batch_size=1)
    assert not list(tmp_path.iterdir())


def _poisoned(monkeypatch, module, after_epochs: int, what: str):
    """Make ``module``'s training go bad in the epoch after ``after_epochs`` good ones: its loss NaN
    (``what="loss"``), or a weight Inf after the epoch's last optimizer step (``what="weights"``)."""
    done, models = [], []
    real_objective, real_model = module.make_objective, module.build_model

    def make_objective(*a, **kw):
        objective = real_objective(*a, **kw)
        loss = objective.classification_loss
        objective.classification_loss = lambda *x: (
            loss(*x) * (float("nan") if len(done) >= after_epochs else 1.0)
        )
        return objective

    def build_model(*a, **kw):
        models.append(real_model(*a, **kw))
        return models[-1]

    def on_batch(b, n):
        if what == "weights" and b == n and len(done) >= after_epochs:
            with torch.no_grad():
                next(models[-1].parameters()).fill_(float("inf"))

    monkeypatch.setattr(module, "build_model", build_model)
    if what == "loss":
        monkeypatch.setattr(module, "make_objective", make_objective)
    return dict(on_epoch=done.append, on_batch=on_batch)


def _assert_kept(run, epoch: int, best_epoch: int):
    ckpt = torch.load(run / "checkpoint.pt", weights_only=False)
    assert ckpt["state"]["epoch"] == epoch and ckpt["state"]["best_epoch"] == best_epoch
    for tensors in (ckpt["model"], torch.load(run / "best.pt", weights_only=True)):
        assert all(torch.isfinite(t).all() for t in tensors.values() if t.is_floating_point())
    assert not (run / "metrics.json").exists()


@pytest.mark.parametrize(
    "what, said", [("loss", "the loss is nan"), ("weights", "the weights are no longer finite")]
)
def test_a_diverging_run_stops_in_one_line_keeping_the_last_good_checkpoint(
    tmp_path, monkeypatch, what, said
):
    """A NaN loss at epoch 3 went on training NaN weights, and best.pt / checkpoint.pt could keep
    them; now the run stops before anything of that epoch is saved."""
    import train.trainer as trainer
    from edge_sed.core.errors import EdgeSedError

    cfg = config(tmp_path, epochs=6)
    with pytest.raises(EdgeSedError) as err:
        train(cfg, splits=toy_splits(), **_poisoned(monkeypatch, trainer, 2, what))
    best = _best(cfg)
    assert str(err.value) == (
        f"{cfg.out}: training diverged at epoch 3 (classify stage): {said}; checkpoint.pt "
        f"(epoch 2) and best.pt (epoch {best}) are kept; try a lower learning rate than 0.005"
    )
    _assert_kept(tmp_path / "run", 2, best)


def _best(cfg):
    return torch.load(f"{cfg.out}/checkpoint.pt", weights_only=False)["state"]["best_epoch"]


def test_a_huge_learning_rate_diverges_in_one_line(tmp_path):
    """A real divergence (lr 1e6: the loss overflows to NaN within a few epochs), not a patched one."""
    from edge_sed.core.errors import EdgeSedError

    cfg = config(tmp_path, epochs=8, lr=1e6)
    with pytest.raises(
        EdgeSedError,
        match=r"training diverged at epoch \d+ \(classify stage\): the (loss is (nan|inf)"
        r"|weights are no longer finite); .*try a lower learning rate than 1e\+06",
    ):
        train(cfg, splits=toy_splits())
    if (tmp_path / "run" / "checkpoint.pt").exists():  # what is kept is finite
        state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["state"]
        _assert_kept(tmp_path / "run", state["epoch"], state["best_epoch"])


def test_a_diverging_stateful_run_stops_in_one_line(tiny_data, tmp_path, monkeypatch):
    import train.stateful as stateful
    from edge_sed.core.errors import EdgeSedError

    cfg = TrainConfig(
        data=str(tiny_data),
        out=str(tmp_path / "run"),
        form="stateful",
        ratio=None,
        epochs=3,
        patience=50,
        sequences=4,
        seq_s=3.0,
        batch_size=2,
        hidden=8,
        embed_dim=4,
        threads=1,
        lr=1e-2,
        val_streams=1,
        val_stream_s=10.0,
        tbptt_frames=100,
    )
    with pytest.raises(
        EdgeSedError,
        match=r"training diverged at epoch 2 \(classify stage\): the loss is nan; "
        r"checkpoint.pt \(epoch 1\) and best.pt \(epoch 1\) are kept",
    ):
        train(cfg, **_poisoned(monkeypatch, stateful, 1, "loss"))
    _assert_kept(tmp_path / "run", 1, 1)
