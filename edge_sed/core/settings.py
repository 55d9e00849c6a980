"""Constants shared by every stage, in one place (as micro_speech keeps them in micro_model_settings)."""

SAMPLE_RATE = 16_000
"""Every stage works on 16 kHz mono float32 audio in [-1, 1]."""

LABELS = ("dog", "baby_cry", "gunshot", "background")
"""The four classes, in the order used for ratios (``--ratio 2:2:1:26``) and model outputs."""

BACKGROUND = "background"
"""The class that never fires an event."""

CLIP_WINDOW_S = 1.0
"""Length of the training/evaluation window cut from every clip (see datasets.clip_to_window)."""

MAX_AUDIO_FILE_BYTES = 4 * 1024**3
"""A file bigger than this is never read whole; streaming readers handle long recordings."""

MAX_SEED = 2**32 - 1
"""Seeds are 0 .. 2^32 - 1 (numpy refuses a negative seed; torch one beyond 2^64)."""

MAX_EPOCHS = 10_000
"""Most epochs a run may ask for (the trainer lists every epoch's stage up front)."""

TRAIN_SYNTH_COUNTS = "120:120:60:1560"
"""Clips per class (dog:baby_cry:gunshot:background) of the built-in synthetic training set
(``train --synthetic``, the demo): the paper's 2:2:1:26 imbalance."""

LEVELS = ("fp32", "fp16", "dynamic-int8", "int8", "int16x8")
"""The quantization levels of a bundle (its manifest's ``level``)."""
BUNDLE_NAMES = (*LEVELS, "fp32-streaming", "int8-streaming", "int16x8-streaming")
"""Every bundle a windowed run converts to, in report order: the levels, then the streaming
form's (explicit LSTM state) levels."""
STATEFUL_LEVELS = ("fp32", "int8", "int16x8")
"""The levels a stateful run converts to (its fused LSTM keeps state across invokes)."""
PI_LEVELS = ("fp32", "int8")
"""Levels ``edge-sed report`` emulates on Pi profiles by default: emulating LiteRT on an aarch64
core under QEMU takes minutes per level and core; `edge-sed simulate BUNDLE --profile rpi-4` does
any other."""
