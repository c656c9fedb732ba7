"""GroupedConv2D against a NumPy grouped convolution and against Keras' own Conv2D(groups)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mrcnn.layers import grouped_conv
from mrcnn.layers.grouped_conv import GroupedConv2D


def _numpy_grouped_conv(x, kernel, groups, stride):
    """[h, w, c] "valid" grouped convolution by its definition: output channel o of group g sums
    kernel[dy, dx, i, o] * x[y * stride + dy, x * stride + dx, g * c_in + i]."""
    kh, kw, c_in, c_out = kernel.shape
    per_out = c_out // groups
    oh, ow = (x.shape[0] - kh) // stride + 1, (x.shape[1] - kw) // stride + 1
    out = np.zeros((oh, ow, c_out))
    for o in range(c_out):
        g = o // per_out
        for yy in range(oh):
            for xx in range(ow):
                patch = x[yy * stride:yy * stride + kh, xx * stride:xx * stride + kw,
                          g * c_in:(g + 1) * c_in]
                out[yy, xx, o] = np.sum(patch * kernel[..., o])
    return out


@pytest.mark.parametrize("stride", [1, 2])
def test_matches_the_definition(stride):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 7, 6, 8)).astype(np.float32)
    layer = GroupedConv2D(6, 3, strides=stride, groups=2, use_bias=False)
    layer.build(x.shape)
    assert tuple(layer.kernel.shape) == (3, 3, 4, 6)
    kernel = rng.normal(size=(3, 3, 4, 6)).astype(np.float32)
    layer.set_weights([kernel])
    np.testing.assert_allclose(np.asarray(layer(x))[0],
                               _numpy_grouped_conv(x[0], kernel, 2, stride), rtol=1e-5,
                               atol=1e-5)


@pytest.mark.parametrize("padding,stride", [("same", 1), ("same", 2), ("valid", 2)])
def test_equals_keras_conv2d_groups_with_gradients(padding, stride):
    """Same output and gradients (input and kernel) as keras.layers.Conv2D(groups=32), which
    runs XLA's grouped convolution; float32 sums in another order, so 1e-5 relative."""
    rng = np.random.default_rng(1)
    x = tf.constant(rng.normal(size=(2, 9, 8, 64)).astype(np.float32))
    ours = GroupedConv2D(64, 3, strides=stride, padding=padding, groups=32)
    ref = keras.layers.Conv2D(64, 3, strides=stride, padding=padding, groups=32)
    ours.build(x.shape)
    ref.build(x.shape)
    ref.set_weights(ours.get_weights())

    def run(layer):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(y * y)
        return [y] + tape.gradient(loss, [x, layer.kernel, layer.bias])

    for a, b in zip(run(ours), run(ref)):
        b = np.asarray(b)
        np.testing.assert_allclose(np.asarray(a), b, atol=1e-5 * np.abs(b).max())


def test_falls_back_to_keras_op_and_serializes(monkeypatch):
    layer = GroupedConv2D(8, 3, groups=4, padding="same", name="g")
    x = np.random.default_rng(2).normal(size=(1, 5, 5, 8)).astype(np.float32)
    native = np.asarray(layer(x))
    monkeypatch.setattr(grouped_conv, "native_grouped_conv", lambda: False)
    np.testing.assert_allclose(np.asarray(layer(x)), native, rtol=1e-5, atol=1e-5)
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(clone, GroupedConv2D) and clone.get_config() == layer.get_config()
    with pytest.raises(ValueError, match="channels_last"):
        GroupedConv2D(8, 3, groups=4, data_format="channels_first")
