"""TiledConv2D / tiled_conv2d against a NumPy convolution and against Conv2D."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mrcnn.layers.tiled_conv import TiledConv2D, tiled_conv2d


def numpy_same_conv(x, k):
    """Stride-1 "same" cross-correlation by its definition: out[n, y, x, o] = sum over taps
    (i, j) and channels c of in[n, y + i - kh // 2, x + j - kw // 2, c] * k[i, j, c, o], with
    zeros outside the image."""
    kh, kw = k.shape[:2]
    n, h, w, _ = x.shape
    padded = np.pad(x.astype(np.float64), ((0, 0), (kh // 2,) * 2, (kw // 2,) * 2, (0, 0)))
    out = np.zeros((n, h, w, k.shape[-1]))
    for i in range(kh):
        for j in range(kw):
            out += padded[:, i:i + h, j:j + w] @ k[i, j].astype(np.float64)
    return out


@pytest.mark.parametrize("shape,kernel,tiles", [
    ((1, 13, 17, 5), 3, 2),     # sizes that do not split evenly
    ((2, 16, 16, 3), 3, 4),
    ((1, 9, 7, 4), 5, 3),       # 5x5 kernel: a halo of 2
    ((1, 3, 2, 2), 3, 2),       # fewer pixels than tiles in a row
])
def test_matches_the_definition(shape, kernel, tiles):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    k = rng.standard_normal((kernel, kernel, shape[-1], 6)).astype(np.float32)
    got = tiled_conv2d(tf.constant(x), tf.constant(k), tiles).numpy()
    np.testing.assert_allclose(got, numpy_same_conv(x, k), rtol=1e-4, atol=1e-4)


def test_unknown_sizes_and_gradients():
    rng = np.random.default_rng(1)
    k = tf.constant(rng.standard_normal((3, 3, 8, 4)).astype(np.float32))
    fn = tf.function(lambda x: tiled_conv2d(x, k, 2),
                     input_signature=[tf.TensorSpec([None, None, None, 8])])
    for shape in [(1, 20, 30, 8), (3, 11, 5, 8)]:
        x = tf.constant(rng.standard_normal(shape).astype(np.float32))
        np.testing.assert_allclose(fn(x).numpy(), tf.nn.conv2d(x, k, 1, "SAME").numpy(),
                                   rtol=1e-5, atol=1e-5)
    x = tf.constant(rng.standard_normal((2, 12, 10, 8)).astype(np.float32))
    grads = []
    for conv in (lambda x, k: tiled_conv2d(x, k, 3), lambda x, k: tf.nn.conv2d(x, k, 1, "SAME")):
        with tf.GradientTape() as tape:
            tape.watch([x, k])
            loss = tf.reduce_sum(conv(x, k) ** 2)
        grads.append(tape.gradient(loss, [x, k]))
    for a, b in zip(*grads):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-3)
    with pytest.raises(ValueError, match="odd kernel"):
        tiled_conv2d(x, tf.zeros([2, 2, 8, 4]), 2)


def test_layer_equals_conv2d_with_the_same_weights():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 24, 20, 6)).astype(np.float32)
    for strides in (1, 2):  # stride 2 is not tiled: Conv2D's own op
        kwargs = dict(filters=5, kernel_size=3, strides=strides, padding="same",
                      activation="relu", name="fpn_p2")
        plain = keras.layers.Conv2D(**kwargs)
        tiled = TiledConv2D(tiles=2, min_size=16, **kwargs)
        plain.build(x.shape)
        tiled.build(x.shape)
        tiled.set_weights([w + 0.1 * rng.standard_normal(w.shape).astype(np.float32)
                           for w in plain.get_weights()])
        plain.set_weights(tiled.get_weights())
        assert tiled._tiled() == (strides == 1)
        np.testing.assert_allclose(tiled(x).numpy(), plain(x).numpy(), rtol=1e-5, atol=1e-5)
        assert [w.path for w in tiled.weights] == [w.path for w in plain.weights]


def test_config_round_trip_and_bad_arguments():
    layer = TiledConv2D(7, (3, 3), padding="same", tiles=3, min_size=64, name="rpn_conv_shared")
    config = layer.get_config()
    assert config["tiles"] == 3 and config["min_size"] == 64
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(again, TiledConv2D) and (again.tiles, again.min_size) == (3, 64)
    assert again.name == "rpn_conv_shared"
    with pytest.raises(ValueError, match="tiles must be >= 1"):
        TiledConv2D(4, 3, tiles=0)
    with pytest.raises(ValueError, match="channels_last"):
        TiledConv2D(4, 3, tiles=2, data_format="channels_first")


def test_small_maps_are_not_tiled(monkeypatch):
    """Below min_size on either side the layer runs Conv2D's own op; at and above it, the
    tiled one (eagerly, tf.cond runs one branch: counted), with the same values either way,
    also in a graph of unknown sizes."""
    import mrcnn.layers.tiled_conv as module

    calls = []
    monkeypatch.setattr(module, "tiled_conv2d",
                        lambda *a: calls.append(1) or tiled_conv2d(*a))
    layer = TiledConv2D(4, 3, padding="same", tiles=2, min_size=12)
    plain = keras.layers.Conv2D(4, 3, padding="same")
    layer.build((None, None, None, 3))
    plain.build((None, None, None, 3))
    plain.set_weights(layer.get_weights())
    fn = tf.function(lambda x: layer(x), input_signature=[tf.TensorSpec([None] * 3 + [3])])
    rng = np.random.default_rng(3)
    for shape, tiled in [((1, 11, 40, 3), False), ((2, 12, 12, 3), True)]:
        x = rng.standard_normal(shape).astype(np.float32)
        calls.clear()
        np.testing.assert_allclose(layer(x).numpy(), plain(x).numpy(), rtol=1e-5, atol=1e-5)
        assert bool(calls) == tiled
        np.testing.assert_allclose(fn(x).numpy(), plain(x).numpy(), rtol=1e-5, atol=1e-5)
    # Sizes known when traced (the training model's fixed image shape): decided then, so the
    # graph holds one path and no tf.cond.
    for shape, tiled in [((1, 11, 40, 3), False), ((2, 12, 12, 3), True)]:
        calls.clear()
        graph = tf.function(lambda x: layer(x)).get_concrete_function(
            tf.TensorSpec(shape)).graph
        assert bool(calls) == tiled
        assert not {op.type for op in graph.get_operations()} & {"If", "StatelessIf"}
