"""Keeping the C++ layers' chatter out of the user's terminal and out of ``--json`` output."""

from __future__ import annotations

import os

from edge_sed.core.quiet import silenced_fds


def import_tensorflow():
    """(tensorflow, tf_keras), legacy Keras 2 selected, start-up logging silenced. Keras 2 is
    what turns an LSTM layer into the fused TFLite op; TF_USE_LEGACY_KERAS must be set before
    tensorflow is first imported."""
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with silenced_fds((2,)):
        import tensorflow as tf
        import tf_keras

        tf.config.list_physical_devices("GPU")  # the CUDA probe logs an error on CPU-only hosts
    return tf, tf_keras
