"""The keypoint head's graph: the paper's layer sequence, output size, names and dtypes."""

import keras
import numpy as np

from mrcnn.heads.keypoint_head import build_fpn_keypoint_graph
from mrcnn.ops.image_meta import compose_image_meta


def test_keypoint_head_shapes_layers_and_spatial_structure():
    size, channels, k = 128, 8, 5
    rois = keras.Input((3, 4), batch_size=2)
    meta = keras.Input((12 + 2,), batch_size=2)
    maps = [keras.Input((size // s, size // s, channels), batch_size=2) for s in (4, 8, 16, 32)]
    out = build_fpn_keypoint_graph(rois, maps, meta, num_keypoints=k, pool_size=14,
                                   conv_channels=16, num_convs=8)
    model = keras.Model([rois, meta] + maps, out)
    names = [layer.name for layer in model.layers]
    for i in range(1, 9):
        assert f"mrcnn_keypoint_conv{i}" in names
    assert "mrcnn_keypoint_conv9" not in names
    assert {"roi_align_keypoint", "mrcnn_keypoint_deconv", "mrcnn_keypoint"} <= set(names)

    rng = np.random.default_rng(0)
    boxes = np.array([[[0.1, 0.1, 0.5, 0.6], [0.2, 0.3, 0.9, 0.8], [0, 0, 0, 0]]] * 2,
                     dtype=np.float32)
    metas = np.stack([compose_image_meta(0, (size, size, 3), (size, size, 3),
                                         (0, 0, size, size), 1.0, np.ones(2))] * 2)
    feats = [rng.normal(size=(2, size // s, size // s, channels)).astype(np.float32)
             for s in (4, 8, 16, 32)]
    y = model([boxes, metas.astype(np.float32)] + feats)
    assert y.shape == (2, 3, 56, 56, k)
    assert y.dtype == "float32"
    y = np.asarray(y)
    assert np.isfinite(y).all() and y[0, 0].std() > 0
    # The last step is a 2x bilinear upsampling (half-pixel centres, as torch's
    # interpolate(align_corners=False)) of the 28 x 28 deconvolution output.
    import tensorflow as tf

    probe = keras.Model(model.inputs, model.get_layer("mrcnn_keypoint_deconv").output)
    deconv = np.asarray(probe([boxes, metas.astype(np.float32)] + feats))
    assert deconv.shape == (2, 3, 28, 28, k)
    want = tf.image.resize(deconv.reshape(6, 28, 28, k), (56, 56), method="bilinear")
    np.testing.assert_allclose(y.reshape(6, 56, 56, k), want, rtol=1e-5, atol=1e-5)
