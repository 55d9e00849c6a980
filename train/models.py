"""The two networks. Both map log-mel windows (B, frames, n_mels) to an embedding and the
embedding to class logits, and use only layers that become TFLite builtins (LSTM -> the fused
UNIDIRECTIONAL_SEQUENCE_LSTM, Conv2D, MaxPool, Mean, FullyConnected, elementwise ops).

- ``lstm``: the device model. One LSTM layer (64 units) over the frames; its last hidden state
  -> a 32-d embedding (linear) -> batch norm + linear classifier. ~2.6 M MACs per 1 s window.
- ``cnn``: the larger comparison model. Four 3x3 conv blocks (16-32-64-64 channels, batch
  norm, ReLU, 2x2 max pool after the first three), global average pool, a 32-d embedding and a
  batch norm + linear classifier. ~12 M MACs per window.

Both start with a fixed per-band standardisation (mean and std of the training set's log-mel,
stored as buffers), so a bundle needs nothing but the front end's log-mel.
"""

from __future__ import annotations

import torch
from torch import nn


class _Standardise(nn.Module):
    def __init__(self, n_mels: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_mels))
        self.register_buffer("std", torch.ones(n_mels))

    def fit(self, features: torch.Tensor) -> None:
        """Per-band statistics over (N, frames, n_mels) training features."""
        flat = features.reshape(-1, features.shape[-1])
        self.mean.copy_(flat.mean(0))
        self.std.copy_(flat.std(0).clamp_min(1e-3))

    def forward(self, x):
        return (x - self.mean) / self.std


def _classifier(embed_dim: int, num_classes: int) -> nn.Sequential:
    """Batch norm, then linear. The norm matters for the clustered objective: its stage 1 loss
    sees only the embedding's direction, so the raw embedding's scale is arbitrary (often
    ~0.4) and a bare linear head on it learns slowly. At inference the norm is an affine map
    that folds into the linear layer's weights."""
    return nn.Sequential(nn.BatchNorm1d(embed_dim), nn.Linear(embed_dim, num_classes))


class LSTMNet(nn.Module):
    """``context_frames`` > 1 with ``conv_channels`` > 0 puts a causal convolution before the
    LSTM (the last ``context_frames`` standardised frames -> ``conv_channels`` with ReLU: one
    FULLY_CONNECTED on stacked frames in the streaming graph), so the LSTM reads local
    spectro-temporal patterns rather than single spectra. ``stride`` > 1 (stateful form, with
    the conv spanning at least ``stride`` frames) steps the LSTM on every ``stride``-th frame only
    (frames stride-1, 2*stride-1, ...): a step per ``stride`` frames of audio, fewer cycles.
    ``dropout`` (training only) drops conv and LSTM outputs in the stateful form."""

    def __init__(
        self,
        n_mels: int = 40,
        hidden: int = 64,
        embed_dim: int = 32,
        num_classes: int = 4,
        context_frames: int = 1,
        conv_channels: int = 0,
        stride: int = 1,
        dropout: float = 0.0,
    ):
        super().__init__()
        if stride > 1 and not (conv_channels and context_frames >= stride):
            raise ValueError(f"a stride of {stride} frames needs a conv over at least {stride} frames")
        self.stride = int(stride)
        self.standardise = _Standardise(n_mels)
        self.context_frames = int(context_frames)
        self.conv = nn.Linear(n_mels * context_frames, conv_channels) if conv_channels else None
        self.lstm = nn.LSTM(conv_channels or n_mels, hidden, num_layers=1, batch_first=True)
        self.embedding = nn.Linear(hidden, embed_dim)
        self.classifier = _classifier(embed_dim, num_classes)
        # stateful training only: dropout on the conv's output and the LSTM's (no weights: the
        # exported graph and the state dict are the same with or without it)
        self.dropout = nn.Dropout(dropout)

    def _conv(self, x: torch.Tensor, previous: torch.Tensor | None, every: int = 1):
        """(B, T, n_mels) standardised -> (B, T // every, conv_channels) at frames every-1,
        2*every-1, ... (the frames the LSTM steps on: no conv work for the ones it skips), and the
        last context_frames - 1 input frames (what the next chunk of the stream needs). Before the
        stream starts the context is the first frame repeated (what a device's frame buffer holds
        at start-up)."""
        k = self.context_frames
        if previous is None:
            previous = x[:, :1].expand(-1, k - 1, -1)
        full = torch.cat([previous, x], 1)
        windows = full.unfold(1, k, 1)[:, every - 1 :: every]  # (B, T // every, n_mels, k)
        stacked = windows.transpose(2, 3).reshape(x.shape[0], windows.shape[1], -1)
        return torch.relu(self.conv(stacked)), full[:, full.shape[1] - (k - 1) :]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(B, frames, n_mels) log-mel -> (B, embed_dim)."""
        _, (h, _) = self.lstm(self.standardise(x))
        return self.embedding(h[-1])

    def classify(self, z: torch.Tensor) -> torch.Tensor:
        """(B, embed_dim) -> (B, num_classes) logits."""
        return self.classifier(z)

    def forward(self, x):
        return self.classify(self.embed(x))

    def frame_embed(self, x: torch.Tensor, state=None):
        """Stateful form: (B, T, n_mels) -> (B, T // stride, embed_dim) embeddings of every step
        (frames stride-1, 2*stride-1, ... of the chunk; T a multiple of stride), and the state after
        the last one (pass it back in to continue the stream)."""
        x = self.standardise(x)
        if self.conv is None:
            out, state = self.lstm(x, state)
            return self.embedding(out), state
        hc, previous = (None, None) if state is None else (state[:2], state[2])
        x, previous = self._conv(x, previous, self.stride)
        out, hc = self.lstm(self.dropout(x), hc)
        return self.embedding(self.dropout(out)), (*hc, previous)

    def frame_logits(self, x: torch.Tensor, state=None):
        """(B, T, n_mels) -> (B, T // stride, num_classes) logits of every step, and the state."""
        z, state = self.frame_embed(x, state)
        return self.classify(z.reshape(-1, z.shape[-1])).reshape(z.shape[0], z.shape[1], -1), state


def _conv_block(c_in: int, c_out: int, pool: bool) -> nn.Sequential:
    layers = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class CNNNet(nn.Module):
    def __init__(
        self,
        n_mels: int = 40,
        embed_dim: int = 32,
        num_classes: int = 4,
        channels: tuple[int, ...] = (16, 32, 64, 64),
    ):
        super().__init__()
        self.standardise = _Standardise(n_mels)
        blocks, c_in = [], 1
        for i, c_out in enumerate(channels):
            blocks.append(_conv_block(c_in, c_out, pool=i < len(channels) - 1))
            c_in = c_out
        self.features = nn.Sequential(*blocks)
        self.embedding = nn.Linear(c_in, embed_dim)
        self.classifier = _classifier(embed_dim, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(B, frames, n_mels) log-mel -> (B, embed_dim)."""
        h = self.features(self.standardise(x).unsqueeze(1))
        return self.embedding(h.mean(dim=(2, 3)))

    def classify(self, z: torch.Tensor) -> torch.Tensor:
        return self.classifier(z)

    def forward(self, x):
        return self.classify(self.embed(x))


MODELS = {"lstm": LSTMNet, "cnn": CNNNet}


def build_model(name: str, **kwargs) -> nn.Module:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    return MODELS[name](**kwargs)


def encoder_parameters(model: nn.Module):
    """Everything but the classifier: what stage 2 fine-tunes at a lower learning rate."""
    return [p for n, p in model.named_parameters() if not n.startswith("classifier.")]
