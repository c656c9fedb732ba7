import numpy as np

from mrcnn.layers import BatchNorm, NormBoxes, PyramidAnchors, TimeDistributed
from mrcnn.ops.anchors import backbone_shapes_from_strides, generate_pyramid_anchors
from mrcnn.ops.boxes import norm_boxes
from tests.helpers import assert_config_round_trip


def test_config_round_trips():
    import keras

    assert_config_round_trip(BatchNorm(frozen=True, name="bn_conv1"))
    assert_config_round_trip(NormBoxes(name="norm_gt_boxes"))
    assert_config_round_trip(PyramidAnchors((8, 16, 32, 64, 128), [0.5, 1, 2],
                                            [4, 8, 16, 32, 64], 1, name="anchors"))
    assert_config_round_trip(TimeDistributed(keras.layers.Dense(3), name="mrcnn_bbox_fc"))


def test_pyramid_anchors_match_numpy_and_tile_over_batch():
    layer = PyramidAnchors((8, 16, 32, 64, 128), [0.5, 1, 2], [4, 8, 16, 32, 64], 1)
    out = np.asarray(layer(np.zeros((3, 128, 192, 3), np.float32)))
    shapes = backbone_shapes_from_strides((128, 192), [4, 8, 16, 32, 64])
    ref = norm_boxes(generate_pyramid_anchors((8, 16, 32, 64, 128), [0.5, 1, 2], shapes,
                                              [4, 8, 16, 32, 64], 1), (128, 192))
    assert out.shape == (3,) + ref.shape
    np.testing.assert_allclose(out[2], ref, atol=1e-5)
    assert layer.compute_output_shape((None, 128, 192, 3)) == (None, ref.shape[0], 4)


def test_frozen_batchnorm_ignores_training_and_trainable():
    bn = BatchNorm(frozen=True)
    x = np.random.default_rng(0).normal(5.0, 2.0, (8, 4)).astype(np.float32)
    bn.build(x.shape)
    bn.trainable = True  # what set_trainable would do: BatchNorm still uses moving stats
    out = np.asarray(bn(x, training=True))
    np.testing.assert_allclose(out, x / np.sqrt(1 + bn.epsilon), rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(bn.moving_mean), np.zeros(4))


def test_time_distributed_folds_rois_into_the_batch():
    import keras

    dense = keras.layers.Dense(2, kernel_initializer="ones")
    td = TimeDistributed(dense)
    x = np.arange(2 * 5 * 3, dtype=np.float32).reshape(2, 5, 3)
    out = np.asarray(td(x))
    assert out.shape == (2, 5, 2)
    np.testing.assert_allclose(out[1, 4], [x[1, 4].sum()] * 2)
