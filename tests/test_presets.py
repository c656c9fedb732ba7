"""The torchvision architecture switches of Config and their building blocks (no torch here:
tests/test_torchvision_parity.py compares the whole model with torchvision)."""

import numpy as np
import pytest
import tensorflow as tf

from mrcnn.config import Config, ConfigError
from mrcnn.layers.roi_align import roi_align_torchvision_graph, roi_levels_torchvision_graph
from mrcnn.ops.anchors import generate_pyramid_anchors, generate_pyramid_anchors_graph
from mrcnn.ops.image import mold_image, unmold_image
from mrcnn.presets import TorchvisionMaskRCNNConfig


class _Cfg(Config):
    NAME = "t"
    NUM_CLASSES = 2


def test_defaults_are_matterports():
    c = _Cfg()
    assert (c.RESNET_STRIDE_ON_3X3, c.RESNET_SYMMETRIC_PADDING, c.BN_EPSILON) == (False, False,
                                                                                   1e-3)
    assert (c.RPN_CONV_CHANNELS, c.RPN_ANCHOR_LAYOUT, c.RPN_NMS_PER_LEVEL) == (512, "matterport",
                                                                               False)
    assert (c.BOX_DECODE_FRAME, c.ROI_LEVEL_MAPPER, c.HEADS_BATCH_NORM) == ("normalized",
                                                                            "matterport", True)
    assert (c.DETECTION_PER_CLASS, c.BBOX_DELTA_CLAMP, c.STD_PIXEL) == (False, None, None)
    assert c.RPN_MIN_SIZE == c.DETECTION_MIN_SIZE == 0


def test_preset_validates_and_matches_torchvision_values():
    c = TorchvisionMaskRCNNConfig()
    assert c.NUM_CLASSES == 91 and c.BACKBONE == "resnet50"
    np.testing.assert_allclose(c.RPN_BBOX_STD_DEV, [1, 1, 1, 1])
    # BoxCoder weights (10, 10, 5, 5) -> std (0.1, 0.1, 0.2, 0.2); clamp log(1000 / 16).
    np.testing.assert_allclose(c.BBOX_STD_DEV, [0.1, 0.1, 0.2, 0.2])
    assert c.BBOX_DELTA_CLAMP == pytest.approx(4.135166556742356)
    np.testing.assert_allclose(c.MEAN_PIXEL / 255, [0.485, 0.456, 0.406])
    np.testing.assert_allclose(c.STD_PIXEL / 255, [0.229, 0.224, 0.225])


@pytest.mark.parametrize("attr, value", [
    ("RESNET_STRIDE_ON_3X3", "yes"), ("BN_EPSILON", 0), ("RPN_CONV_CHANNELS", 0),
    ("RPN_ANCHOR_LAYOUT", "detectron"), ("BOX_DECODE_FRAME", "pixel"),
    ("ROI_LEVEL_MAPPER", "fpn"), ("RPN_MIN_SIZE", -1), ("BBOX_DELTA_CLAMP", 0),
    ("STD_PIXEL", [1, 2]), ("HEADS_BATCH_NORM", None), ("DETECTION_PER_CLASS", "yes"),
])
def test_bad_values_name_the_attribute(attr, value):
    cfg = type("Bad", (_Cfg,), {attr: value})
    with pytest.raises(ConfigError, match=attr):
        cfg()


def test_torchvision_modes_need_the_pixel_frame():
    for attr, value in [("RPN_NMS_PER_LEVEL", True), ("ROI_ALIGN_MODE", "torchvision")]:
        with pytest.raises(ConfigError, match=attr):
            type("Bad", (_Cfg,), {attr: value})()


def test_std_pixel_molding_round_trip():
    c = TorchvisionMaskRCNNConfig()
    image = np.arange(2 * 3 * 3).reshape(1, 2, 3, 3).astype(np.uint8) * 9
    molded = mold_image(image, c)
    expected = (image / 255.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(molded, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(unmold_image(molded + 1e-4, c), image)


def test_torchvision_anchor_layout_by_hand():
    # 800 x 1088 image: P6 grid ceil(800 / 64) = 13 rows -> centre spacing 800 // 13 = 61.
    shapes = np.array([[200, 272], [100, 136], [50, 68], [25, 34], [13, 17]])
    a = generate_pyramid_anchors((32, 64, 128, 256, 512), [2, 1, 0.5], shapes,
                                 [4, 8, 16, 32, 64], 1, layout="torchvision",
                                 image_shape=(800, 1088))
    # First cell of P2: ratio w/h 2 -> w = 32 * sqrt(2) = 45.25, h = 22.63; half sides rounded
    # to 23 and 11, centred at the origin.
    np.testing.assert_array_equal(a[0], [-11, -23, 11, 23])
    np.testing.assert_array_equal(a[1], [-16, -16, 16, 16])
    np.testing.assert_array_equal(a[2], [-23, -11, 23, 11])
    p6 = a[-13 * 17 * 3:].reshape(13, 17, 3, 4)
    np.testing.assert_array_equal(p6[1, 1, 1], [61 - 256, 64 - 256, 61 + 256, 64 + 256])
    graph = generate_pyramid_anchors_graph(tf.constant([800, 1088]), (32, 64, 128, 256, 512),
                                           [2, 1, 0.5], [4, 8, 16, 32, 64], 1,
                                           layout="torchvision")
    np.testing.assert_array_equal(graph.numpy(), a)


def _roi_align_numpy(feature, box, pool, stride, ratio):
    """torchvision's roi_align (aligned=False) for one box, written from its definition."""
    h, w, _ = feature.shape
    x1, y1, x2, y2 = (v / stride for v in (box[1], box[0], box[3], box[2]))
    bh, bw = max(y2 - y1, 1.0) / pool, max(x2 - x1, 1.0) / pool

    def bilinear(y, x):
        if y < -1 or y > h or x < -1 or x > w:
            return np.zeros(feature.shape[-1])
        y, x = max(y, 0.0), max(x, 0.0)
        y0, x0 = int(y), int(x)
        if y0 >= h - 1:
            y0 = y1_ = h - 1
            y = float(y0)
        else:
            y1_ = y0 + 1
        if x0 >= w - 1:
            x0 = x1_ = w - 1
            x = float(x0)
        else:
            x1_ = x0 + 1
        ly, lx = y - y0, x - x0
        return ((1 - ly) * (1 - lx) * feature[y0, x0] + (1 - ly) * lx * feature[y0, x1_]
                + ly * (1 - lx) * feature[y1_, x0] + ly * lx * feature[y1_, x1_])

    out = np.zeros((pool, pool, feature.shape[-1]))
    for i in range(pool):
        for j in range(pool):
            for a in range(ratio):
                for b in range(ratio):
                    y = y1 + i * bh + (a + 0.5) * bh / ratio
                    x = x1 + j * bw + (b + 0.5) * bw / ratio
                    out[i, j] += bilinear(y, x)
    return out / ratio ** 2


def test_roi_align_torchvision_matches_its_definition():
    rng = np.random.default_rng(0)
    feature = rng.normal(size=(1, 12, 16, 3)).astype(np.float32)
    stride = 8
    # Inside, touching the bottom/right edge (last-cell clamping), tiny (min size 1 cell).
    boxes = np.array([[10.0, 20.0, 60.0, 90.0], [40.0, 70.0, 96.0, 128.0],
                      [30.0, 30.0, 32.5, 31.0]], np.float32)
    got = roi_align_torchvision_graph(tf.constant(feature), tf.constant(boxes),
                                      tf.zeros([3], tf.int32), (7, 7), stride, 2).numpy()
    for k, box in enumerate(boxes):
        np.testing.assert_allclose(got[k], _roi_align_numpy(feature[0], box, 7, stride, 2),
                                   atol=1e-5)


def test_torchvision_level_mapper():
    # floor(4 + log2(side / 224) + 1e-6): 224 -> 4, 112 -> 3, 111 -> 2, 448 -> 5, 447 -> 4,
    # 2000 -> 5 (clamped), an empty box -> 2 (clamped).
    sides = [224.0, 112.0, 111.0, 448.0, 447.0, 2000.0, 0.0]
    boxes = tf.constant([[[0.0, 0.0, s, s] for s in sides]])
    levels = roi_levels_torchvision_graph(boxes).numpy()[0]
    np.testing.assert_array_equal(levels, [4, 3, 2, 5, 4, 5, 2])


def test_data_generator_anchors_follow_the_layout():
    # The training targets must be built on the anchors the graph's ProposalLayer uses.
    from mrcnn.data_generator import batch_anchors

    c = TorchvisionMaskRCNNConfig()
    a = batch_anchors(c, (800, 1088, 3))
    graph = generate_pyramid_anchors_graph(tf.constant([800, 1088]), c.RPN_ANCHOR_SCALES,
                                           c.RPN_ANCHOR_RATIOS, c.BACKBONE_STRIDES, 1,
                                           layout="torchvision")
    np.testing.assert_array_equal(a, graph.numpy())
    m = batch_anchors(_Cfg(), (256, 256, 3))
    np.testing.assert_array_equal(m[0], [-16 / np.sqrt(0.5), -16 * np.sqrt(0.5),
                                         16 / np.sqrt(0.5), 16 * np.sqrt(0.5)])
