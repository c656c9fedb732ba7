"""ops.crop: the gather twin against tf.image.crop_and_resize (values, gradients, XLA)."""

import numpy as np
import pytest
import tensorflow as tf

from mrcnn.ops.crop import crop_and_resize, multilevel_crop_and_resize


def _boxes(rng, k):
    """Boxes inside, straddling and outside the map, flipped (y1 > y2) and degenerate."""
    boxes = rng.uniform(-0.3, 1.3, size=(k, 4)).astype(np.float32)
    boxes[0] = [0, 0, 1, 1]
    boxes[1] = [0.5, 0.5, 0.5, 0.5]
    boxes[2] = [0.9, 0.8, 0.1, 0.2]
    boxes[3] = [1.0, 1.0, 1.0, 1.0]
    return boxes


@pytest.mark.parametrize("crop", [(7, 7), (1, 1), (3, 5), (1, 4)])
def test_gather_equals_crop_and_resize(crop):
    rng = np.random.default_rng(0)
    image = rng.normal(size=(3, 9, 13, 4)).astype(np.float32)
    boxes = _boxes(rng, 40)
    ind = rng.integers(0, 3, 40).astype(np.int32)
    ref = tf.image.crop_and_resize(image, boxes, ind, crop)
    out = crop_and_resize(image, boxes, ind, crop, sampler="gather")
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-5)
    assert (np.asarray(ref) == 0).any()  # some samples fell outside the map


def test_hand_computed_bilinear_sample():
    # A 2x3 map; the box's single sample (crop 1x1) sits at its centre: y = 0.5 * (0 + 1) * 1
    # = 0.5, x = 0.5 * (0.5 + 1) * 2 = 1.5 -> mean of cells (0,1),(0,2),(1,1),(1,2) = 3.
    image = np.arange(6, dtype=np.float32).reshape(1, 2, 3, 1)
    out = multilevel_crop_and_resize([image], np.array([[0, 0.5, 1, 1]], np.float32),
                                     np.array([0], np.int32), np.array([0], np.int32), (1, 1))
    assert float(np.asarray(out).squeeze()) == pytest.approx((1 + 2 + 4 + 5) / 4)


def test_multilevel_takes_each_box_from_its_level():
    rng = np.random.default_rng(1)
    maps = [rng.normal(size=(2, s, s + 3, 5)).astype(np.float32) for s in (16, 8, 4, 2)]
    boxes = _boxes(rng, 30)
    ind = rng.integers(0, 2, 30).astype(np.int32)
    levels = rng.integers(0, 4, 30).astype(np.int32)
    out = np.asarray(multilevel_crop_and_resize(maps, boxes, ind, levels, (4, 4)))
    for k in range(30):
        ref = tf.image.crop_and_resize(maps[levels[k]], boxes[k:k + 1], ind[k:k + 1], (4, 4))
        np.testing.assert_allclose(out[k], ref[0], rtol=0, atol=1e-5, err_msg=str(k))


def test_image_gradients_match_and_xla_compiles():
    rng = np.random.default_rng(2)
    image = tf.constant(rng.normal(size=(2, 10, 12, 3)).astype(np.float32))
    boxes = tf.constant(_boxes(rng, 25))
    ind = tf.constant(rng.integers(0, 2, 25).astype(np.int32))
    weights = tf.constant(rng.normal(size=(25, 6, 6, 3)).astype(np.float32))

    def grad(sampler):
        with tf.GradientTape() as tape:
            tape.watch(image)
            loss = tf.reduce_sum(crop_and_resize(image, boxes, ind, (6, 6), sampler) * weights)
        return tape.gradient(loss, image)

    np.testing.assert_allclose(grad("gather"), grad("crop_and_resize"), rtol=0, atol=1e-4)
    compiled = tf.function(lambda: grad("gather"), jit_compile=True)
    np.testing.assert_allclose(compiled(), grad("crop_and_resize"), rtol=0, atol=1e-4)
    with pytest.raises(ValueError, match="sampler"):
        crop_and_resize(image, boxes, ind, (6, 6), "nearest")
