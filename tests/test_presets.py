"""The torchvision architecture switches of Config and their building blocks (no torch here:
tests/test_torchvision_parity.py compares the whole model with torchvision)."""

import numpy as np
import pytest
import tensorflow as tf

from mrcnn.config import Config, ConfigError
from mrcnn.layers.roi_align import roi_align_torchvision_graph, roi_levels_torchvision_graph
from mrcnn.ops.anchors import generate_pyramid_anchors, generate_pyramid_anchors_graph
from mrcnn.ops.image import mold_image, unmold_image
from mrcnn.presets import (
    TorchvisionKeypointRCNNConfig,
    TorchvisionMaskRCNNConfig,
    TorchvisionMaskRCNNV2Config,
)


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
    assert c.MASK_HEAD_CHANNELS == 256
    assert (c.FPN_BATCH_NORM, c.RPN_CONV_DEPTH, c.BOX_HEAD) == (False, 1, "2fc")


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
    ("MASK_HEAD_CHANNELS", 0), ("MASK_HEAD_CHANNELS", 64.0),
    ("RPN_ANCHOR_LAYOUT", "detectron"), ("BOX_DECODE_FRAME", "pixel"),
    ("ROI_LEVEL_MAPPER", "fpn"), ("RPN_MIN_SIZE", -1), ("BBOX_DELTA_CLAMP", 0),
    ("STD_PIXEL", [1, 2]), ("HEADS_BATCH_NORM", None), ("DETECTION_PER_CLASS", "yes"),
    ("FPN_BATCH_NORM", "yes"), ("RPN_CONV_DEPTH", 0), ("BOX_HEAD", "4conv2fc"),
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


def test_keypoint_preset_is_torchvisions_keypointrcnn():
    c = TorchvisionKeypointRCNNConfig()
    assert (c.NUM_CLASSES, c.NUM_KEYPOINTS, c.USE_MASK_HEAD) == (2, 17, False)
    assert (c.KEYPOINT_POOL_SIZE, list(c.KEYPOINT_MASK_SHAPE)) == (14, [56, 56])
    assert (c.KEYPOINT_HEAD_CONV_CHANNELS, c.KEYPOINT_HEAD_CONVS) == (512, 8)
    assert (c.ROI_ALIGN_MODE, c.ROI_ALIGN_SAMPLING_RATIO) == ("torchvision", 2)
    # Every flip pair is (left_x, right_x); every keypoint but the nose is in one.
    for a, b in c.KEYPOINT_FLIP_MAP:
        assert c.KEYPOINT_NAMES[a].replace("left_", "") == c.KEYPOINT_NAMES[b].replace("right_",
                                                                                       "")
        assert c.KEYPOINT_NAMES[a].startswith("left_")
    assert sorted(i for p in c.KEYPOINT_FLIP_MAP for i in p) == list(range(1, 17))
    # COCO's skeleton: 19 limbs joining all 17 keypoints.
    assert len(c.KEYPOINT_SKELETON) == 19
    assert {i for p in c.KEYPOINT_SKELETON for i in p} == set(range(17))
    # The Mask R-CNN preset keeps its mask head and no keypoints.
    m = TorchvisionMaskRCNNConfig()
    assert (m.NUM_KEYPOINTS, m.USE_MASK_HEAD) == (0, True)


def _torch_conv_transpose(x, kernel, bias, stride, padding):
    """torch.nn.ConvTranspose2d by its definition: input pixel i, kernel tap k feed output
    o = i * stride + k - padding. x: [H, W, C]; kernel: [kh, kw, out, C] (Keras layout)."""
    h, w, _ = x.shape
    kh, kw, out_c, _ = kernel.shape
    oh, ow = (h - 1) * stride - 2 * padding + kh, (w - 1) * stride - 2 * padding + kw
    out = np.tile(bias, (oh, ow, 1)).astype(np.float64)
    for i in range(h):
        for j in range(w):
            for a in range(kh):
                for b in range(kw):
                    y, z = i * stride + a - padding, j * stride + b - padding
                    if 0 <= y < oh and 0 <= z < ow:
                        out[y, z] += kernel[a, b] @ x[i, j]
    return out


def test_keypoint_head_upsampling_is_torchvisions():
    """mrcnn's keypoint head ends as in build_fpn_keypoint_graph with Conv2DTranspose(K, 4,
    stride 2, "same") and UpSampling2D(2, bilinear): equal to torchvision's
    ConvTranspose2d(C, K, 4, stride=2, padding=1) and interpolate(scale_factor=2, "bilinear",
    align_corners=False), so the preset needs no switch."""
    import keras

    from mrcnn.torchvision_postprocess import resize_bilinear

    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 6, 3)).astype(np.float32)
    deconv = keras.layers.Conv2DTranspose(4, (4, 4), strides=2, padding="same")
    deconv.build((1, 5, 6, 3))
    kernel = rng.normal(size=(4, 4, 4, 3)).astype(np.float32)
    bias = rng.normal(size=4).astype(np.float32)
    deconv.set_weights([kernel, bias])
    got = np.asarray(deconv(x[None]))[0]
    want = _torch_conv_transpose(x.astype(np.float64), kernel, bias, 2, 1)
    assert got.shape == want.shape == (10, 12, 4)
    np.testing.assert_allclose(got, want, atol=1e-4)
    up = np.asarray(keras.layers.UpSampling2D(2, interpolation="bilinear")(got[None]))[0]
    np.testing.assert_allclose(up, resize_bilinear(got, 20, 24), atol=1e-5)


def test_keypoint_key_map_and_config_check():
    from mrcnn.torchvision_weights import (
        TorchvisionWeightsError,
        load_torchvision_weights,
        torchvision_key_map,
    )

    entries = torchvision_key_map(mask_head=False, keypoint_convs=8)
    keys = [k for _, ks, _ in entries for k in ks]
    assert not [k for k in keys if "mask" in k]
    assert [k for k in keys if "keypoint_head" in k and k.endswith("weight")] == \
        [f"roi_heads.keypoint_head.{2 * i}.weight" for i in range(8)]
    assert ("mrcnn_keypoint_deconv", ["roi_heads.keypoint_predictor.kps_score_lowres.weight",
                                      "roi_heads.keypoint_predictor.kps_score_lowres.bias"]) \
        in [(n, ks) for n, ks, _ in entries]
    # torch (in, out, kh, kw) -> Keras Conv2DTranspose (kh, kw, out, in).
    transform = dict((n, t) for n, _, t in entries)["mrcnn_keypoint_deconv"]
    w = np.arange(512 * 17 * 16, dtype=np.float32).reshape(512, 17, 4, 4)
    kernel, _ = transform(w, np.zeros(17, np.float32))
    assert kernel.shape == (4, 4, 17, 512) and kernel[1, 2, 3, 4] == w[4, 3, 1, 2]
    bad = type("Bad", (TorchvisionKeypointRCNNConfig,),
               {"KEYPOINT_POOL_SIZE": 7, "KEYPOINT_MASK_SHAPE": [28, 28]})()
    with pytest.raises(TorchvisionWeightsError, match="KEYPOINT_POOL_SIZE = 7"):
        load_torchvision_weights(None, bad, {})


def test_keypoints_torchvision_hand_case():
    """One detection on a 300x400 molded image holding a 150x200 resize of a 300x400 image:
    heatmap peaks decoded on the box in resized pixels, then scaled by 2 per axis."""
    from mrcnn.torchvision_postprocess import keypoints_torchvision

    h, w = 300, 400
    # Box (y1, x1, y2, x2) = (10, 20, 178, 132) resized pixels: 112 wide (2 pixels per heatmap
    # cell), 168 high (3 per cell).
    box = np.array([10, 20, 177, 131]) / np.array([h - 1, w - 1, h - 1, w - 1])
    detections = np.zeros((3, 6), np.float32)
    detections[0] = np.concatenate([box, [1, 0.9]])
    maps = np.zeros((3, 56, 56, 2), np.float32)
    peaks = [(14, 42), (50, 5)]  # (row, column) of the 56x56 heatmap
    for k, (row, col) in enumerate(peaks):
        maps[0, row, col, k] = 50.0
    kp = keypoints_torchvision(detections, maps, (300, 400, 3), (h, w, 3), (0, 0, 150, 200))
    assert kp.shape == (1, 2, 3)
    # Cell c's centre is at box offset (c + 0.5) * pixels per cell; the keypoint lands there
    # (within half a resized pixel: with 2 pixels per cell the centre is a pixel border).
    for k, (row, col) in enumerate(peaks):
        want = [2 * (20 + (col + 0.5) * 2), 2 * (10 + (row + 0.5) * 3)]
        np.testing.assert_allclose(kp[0, k, :2], want, atol=1.0 + 1e-4)
        assert kp[0, k, 2] > 10


def test_v2_preset_has_torchvisions_parameter_count():
    """maskrcnn_resnet50_fpn_v2 has 46,359,409 parameters (MaskRCNN_ResNet50_FPN_V2_Weights'
    num_params). mrcnn's model has, besides, matterport's zero biases on the ResNet convs and
    the mask convs, and a second objectness logit per anchor (1 input channel + 1 bias each:
    the two-way softmax); BatchNorm moving statistics are buffers in torch."""
    import keras

    from mrcnn import builder

    config = TorchvisionMaskRCNNV2Config()
    model = builder.build_inference_model(config)
    total = sum(int(np.prod(w.shape)) for w in model.weights if "moving" not in w.path)
    trunk_biases = sum(int(np.prod(layer.bias.shape)) for layer in model.layers
                       if isinstance(layer, keras.layers.Conv2D) and layer.use_bias
                       and (layer.name == "conv1" or layer.name.startswith("res")))
    mask_biases = 4 * config.MASK_HEAD_CHANNELS
    anchors = len(config.RPN_ANCHOR_RATIOS)
    rpn_extra = anchors * (config.TOP_DOWN_PYRAMID_SIZE + 1)
    assert trunk_biases == 26560  # ResNet-50's BatchNorm channels: one bias per conv output
    assert total - trunk_biases - mask_biases - rpn_extra == 46359409
    names = {layer.name for layer in model.layers}
    assert {"fpn_c2p2_bn", "fpn_p5_bn", "mrcnn_box_conv4", "mrcnn_box_bn4"} <= names
    assert "mrcnn_class_conv2" not in names and "mrcnn_class_bn1" not in names
    rpn = model.get_layer("rpn_model")
    assert [la.name for la in rpn.layers if la.name.startswith("rpn_conv")] == [
        "rpn_conv_shared", "rpn_conv_shared2"]
    assert not model.get_layer("fpn_p2").use_bias and model.get_layer("mrcnn_mask_bn1")


def test_v2_key_map():
    from mrcnn.torchvision_weights import TorchvisionWeightsError, torchvision_key_map

    entries = {name: (keys, t) for name, keys, t in torchvision_key_map(
        batch_norm_heads=True, v2=True)}
    assert entries["fpn_c3p3"][0] == ["backbone.fpn.inner_blocks.1.0.weight"]
    assert entries["fpn_p3_bn"][0][0] == "backbone.fpn.layer_blocks.1.1.weight"
    assert entries["rpn_model/rpn_conv_shared2"][0][0] == "rpn.head.conv.1.0.weight"
    assert entries["mrcnn_box_bn4"][0][3] == "roi_heads.box_head.3.1.running_var"
    assert entries["mrcnn_class_conv1"][0][0] == "roi_heads.box_head.5.weight"
    assert "mrcnn_class_conv2" not in entries
    # The mask convs: OIHW -> HWIO and a zero bias for matterport's biased conv.
    keys, transform = entries["mrcnn_mask_conv2"]
    assert keys == ["roi_heads.mask_head.1.0.weight"]
    w = np.arange(4 * 3 * 3 * 3, dtype=np.float32).reshape(4, 3, 3, 3)
    kernel, bias = transform(w)
    assert kernel.shape == (3, 3, 3, 4) and kernel[2, 1, 0, 3] == w[3, 0, 2, 1]
    assert bias.shape == (4,) and not bias.any()
    with pytest.raises(TorchvisionWeightsError, match="HEADS_BATCH_NORM = True"):
        torchvision_key_map(v2=True)
