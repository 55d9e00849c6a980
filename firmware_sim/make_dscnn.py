"""Build the MLPerf Tiny keyword-spotting DS-CNN as an int8 .tflite for the cost-model check.

Only its operator graph and tensor shapes matter (the estimator counts MACs), so the weights are
random and the int8 calibration uses random data; nothing is downloaded. Architecture as in
mlcommons/tiny benchmark/training/keyword_spotting (keras_model.py, "ds_cnn"): 49x10 MFCC input,
conv 64 10x4 stride 2 + BN + ReLU, 4x (depthwise 3x3 + BN + ReLU, pointwise 64 + BN + ReLU),
average pool, fully connected 12, softmax.

    python -m firmware_sim.make_dscnn [--out firmware_sim/data/dscnn-kws-int8.tflite]

Needs tensorflow and tf-keras (the [convert] extra) - only this script does.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

DEFAULT_OUT = Path(__file__).parent / "data" / "dscnn-kws-int8.tflite"


def build_tflite(seed: int = 0) -> bytes:
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    import tf_keras as keras
    from tf_keras import layers

    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=(49, 10, 1))
    x = layers.Conv2D(64, (10, 4), strides=(2, 2), padding="same", use_bias=False)(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    for _ in range(4):
        x = layers.DepthwiseConv2D((3, 3), padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.Conv2D(64, (1, 1), padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
    x = layers.AveragePooling2D(pool_size=(25, 5))(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(12, activation="softmax")(x)
    model = keras.Model(inputs, outputs)

    rng = np.random.default_rng(seed)

    def representative():
        for _ in range(20):
            yield [rng.standard_normal((1, 49, 10, 1)).astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return converter.convert()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    data = build_tflite()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(data)
    print(f"wrote {args.out} ({len(data)} bytes)")


if __name__ == "__main__":
    main()
