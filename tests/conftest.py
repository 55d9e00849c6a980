"""Session fixtures shared by the convert and bundle tests: one tiny trained LSTM run and its
bundles at every level, and a tiny stateful streaming run with its fp32/int8 bundles, made once
(TensorFlow conversion is the slow part); and the skip mark of
the tests that need the emulated Pi's tools."""

import shutil

import pytest

PI_TOOLS = (
    "qemu-aarch64",
    "qemu-aarch64-static",
    "mmdebstrap",
    "gcc",
    "pkg-config",
    "dpkg-source",
    "apt-get",
)
PI_MISSING = [t for t in PI_TOOLS if shutil.which(t) is None]
needs_qemu = pytest.mark.skipif(
    bool(PI_MISSING), reason=f"not installed: {', '.join(PI_MISSING)} (scripts/setup.sh installs them)"
)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    from edge_sed.data.synth import write_dataset

    root = tmp_path_factory.mktemp("tiny-data")
    return write_dataset(
        root, {"dog": 12, "baby_cry": 12, "gunshot": 12, "background": 36}, seed=5, workers=1
    )


def train_tiny(tiny_data, out, model="lstm", epochs=4):
    from train.trainer import TrainConfig, train

    cfg = TrainConfig(
        data=str(tiny_data),
        out=str(out),
        model=model,
        ratio=None,
        epochs=epochs,
        patience=50,
        batch_size=16,
        hidden=8,
        embed_dim=4,
        threads=1,
        lr=1e-2,
    )
    train(cfg)
    return out


@pytest.fixture(scope="session")
def tiny_run(tiny_data, tmp_path_factory):
    """A run directory of an LSTM with 8 units, trained for a few epochs on 72 synthetic clips."""
    return train_tiny(tiny_data, tmp_path_factory.mktemp("tiny-run") / "run")


@pytest.fixture(scope="session")
def tiny_cnn_run(tiny_data, tmp_path_factory):
    """A run directory of the CNN (default size), trained for two epochs."""
    return train_tiny(tiny_data, tmp_path_factory.mktemp("tiny-cnn-run") / "run", model="cnn", epochs=2)


@pytest.fixture(scope="session")
def tiny_bundles(tiny_run, tmp_path_factory):
    """(bundles directory, convert report) for every level of the tiny LSTM."""
    from convert.bundles import convert_run

    out = tmp_path_factory.mktemp("bundles")
    return out, convert_run(tiny_run, out)


@pytest.fixture(scope="session")
def stateful_run(tiny_data, tmp_path_factory):
    """(run directory, metrics) of a tiny stateful streaming LSTM: mixtures, TBPTT, bed-aux."""
    from train.trainer import TrainConfig, train

    out = tmp_path_factory.mktemp("stateful-run") / "run"
    cfg = TrainConfig(
        data=str(tiny_data),
        out=str(out),
        form="stateful",
        ratio=None,
        epochs=3,
        patience=50,
        sequences=16,
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
        bed_aux=0.3,
    )
    metrics = train(cfg)
    return out, metrics


@pytest.fixture(scope="session")
def stateful_bundles(stateful_run, tmp_path_factory):
    """(bundles directory, convert report): its fp32 and int8 bundles."""
    from convert.bundles import convert_run

    out = tmp_path_factory.mktemp("stateful-bundles")
    return out, convert_run(stateful_run[0], out, ["fp32", "int8"])
