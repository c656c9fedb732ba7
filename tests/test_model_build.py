import numpy as np
import pytest

from mrcnn import model as modellib
from mrcnn.config import Config
from mrcnn.weights import layers_with_weights


class Coco(Config):
    NAME = "coco"
    NUM_CLASSES = 81
    IMAGES_PER_GPU = 1


@pytest.mark.parametrize("backbone,params,weighted", [("resnet101", 64_158_584, 233),
                                                      ("resnet50", 45_088_120, 131)])
def test_parameter_count_equals_matterports(backbone, params, weighted, tmp_path):
    config = type("C", (Coco,), {"BACKBONE": backbone})()
    model = modellib.MaskRCNN("inference", config, str(tmp_path))
    assert model.keras_model.count_params() == params
    assert len(layers_with_weights(model.keras_model)) == weighted


def test_mask_head_channels_set_the_mask_head_width(tmp_path):
    def mask_head_params(c, fpn=256, classes=81):
        """Hand count: conv1 3x3 fpn->c, conv2..4 3x3 c->c, 4 BatchNorms (4 c each),
        deconv 2x2 c->c, mrcnn_mask 1x1 c->classes; kernels plus biases."""
        return (9 * fpn * c + c) + 3 * (9 * c * c + c) + 4 * 4 * c + (4 * c * c + c) \
            + (c * classes + classes)

    config = type("C", (Coco,), {"BACKBONE": "resnet50", "MASK_HEAD_CHANNELS": 128})()
    km = modellib.MaskRCNN("inference", config, str(tmp_path)).keras_model
    assert km.get_layer("mrcnn_mask_conv2").get_weights()[0].shape == (3, 3, 128, 128)
    assert km.count_params() == 45_088_120 - mask_head_params(256) + mask_head_params(128)


def test_layer_names_are_matterports(tmp_path, tiny_config):
    km = modellib.MaskRCNN("training", tiny_config, str(tmp_path)).keras_model
    names = {layer.name for layer in km.layers}
    expected = {"conv1", "bn_conv1", "res2a_branch2a", "bn2a_branch2a", "res2a_branch1",
                "bn2a_branch1", "res4f_branch2c", "res5c_branch2c", "res4f_out", "fpn_c5p5",
                "fpn_c2p2", "fpn_p2", "fpn_p5", "fpn_p6", "fpn_p5upsampled", "fpn_p4add",
                "rpn_model", "rpn_class_logits", "rpn_class", "rpn_bbox", "ROI",
                "proposal_targets", "roi_align_classifier", "roi_align_mask", "pool_squeeze",
                "mrcnn_class_conv1", "mrcnn_class_bn1", "mrcnn_class_conv2", "mrcnn_class_bn2",
                "mrcnn_class_logits", "mrcnn_class", "mrcnn_bbox_fc", "mrcnn_bbox",
                "mrcnn_mask_conv1", "mrcnn_mask_bn4", "mrcnn_mask_deconv", "mrcnn_mask",
                "output_rois", "anchors", "input_image", "input_image_meta", "input_rpn_match",
                "input_rpn_bbox", "input_gt_class_ids", "input_gt_boxes", "input_gt_masks"}
    assert expected <= names
    rpn = km.get_layer("rpn_model")
    assert {"rpn_conv_shared", "rpn_class_raw", "rpn_bbox_pred"} <= {x.name for x in rpn.layers}
    assert "res4g_out" not in names  # resnet50 has blocks a..f in stage 4


def test_detect_on_images_of_different_sizes(tmp_path, tiny_config):
    tiny_config.IMAGE_RESIZE_MODE = "pad64"
    tiny_config.DETECTION_MIN_CONFIDENCE = 0.0
    model = modellib.MaskRCNN("inference", tiny_config, str(tmp_path))
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (100, 150, 3), dtype=np.uint8),
              rng.integers(0, 255, (128, 90), dtype=np.uint8)]
    results = model.detect(images)
    assert len(results) == 2
    for image, r in zip(images, results):
        n = len(r["class_ids"])
        assert n > 0  # random weights, no confidence threshold
        assert r["rois"].shape == (n, 4) and r["rois"].dtype == np.int32
        assert r["scores"].shape == (n,) and r["class_ids"].dtype == np.int32
        assert r["masks"].shape == image.shape[:2] + (n,) and r["masks"].dtype == bool
        assert (r["rois"][:, :2] >= 0).all()
        assert (r["rois"][:, 2] <= image.shape[0]).all()
        assert (r["rois"][:, 3] <= image.shape[1]).all()
        assert ((r["class_ids"] > 0) & (r["class_ids"] < 4)).all()


def test_batch_sizes_one_two_three_share_one_model(tmp_path, tiny_config):
    model = modellib.MaskRCNN("inference", tiny_config, str(tmp_path))
    image = np.full((128, 128, 3), 100, np.uint8)
    for n in (1, 2, 3):
        assert len(model.detect([image] * n)) == n


def test_run_graph_reads_named_intermediates(tmp_path, tiny_config):
    model = modellib.MaskRCNN("inference", tiny_config, str(tmp_path))
    out = model.run_graph([np.zeros((128, 128, 3), np.uint8)],
                          [("proposals", "ROI"), ("res4", "res4f_out"), ("p2", "fpn_p2")])
    assert out["proposals"].shape == (1, tiny_config.POST_NMS_ROIS_INFERENCE, 4)
    assert out["res4"].shape == (1, 8, 8, 1024) and out["p2"].shape == (1, 32, 32, 256)


def test_repeated_detect_does_not_retrace(tmp_path, tiny_config):
    model = modellib.MaskRCNN("inference", tiny_config, str(tmp_path))
    images = [np.full((128, 128, 3), v, np.uint8) for v in (10, 200)]
    for _ in range(3):
        model.detect(images)
    assert model._predict_fn.experimental_get_tracing_count() == 1


def test_detect_molded_uses_the_whole_image(tmp_path, tiny_config):
    from mrcnn.data_generator import load_image_gt
    from samples.shapes.shapes import ShapesDataset

    tiny_config.DETECTION_MIN_CONFIDENCE = 0.0
    ds = ShapesDataset()
    ds.load_shapes(2, 128, 128, seed=0)
    ds.prepare()
    model = modellib.MaskRCNN("inference", tiny_config, str(tmp_path))
    image, meta, *_ = load_image_gt(ds, tiny_config, 0)
    r = model.detect_molded(modellib.mold_image(image[None], tiny_config), meta[None])[0]
    assert r["masks"].shape[:2] == (128, 128) and len(r["rois"]) == r["masks"].shape[-1] > 0


@pytest.mark.slow
def test_resnext50_trains_and_detects(tmp_path, shapes_datasets):
    """BACKBONE = "resnext50_32x4d": the training model builds and two steps with layers="all"
    give finite losses and move the grouped convs; the inference model detects."""
    train, val = shapes_datasets
    config = type("RX", (Coco,), {"BACKBONE": "resnext50_32x4d", "NUM_CLASSES": 4,
                                  "IMAGE_MIN_DIM": 128, "IMAGE_MAX_DIM": 128,
                                  "RPN_ANCHOR_SCALES": (8, 16, 32, 64, 128),
                                  "TRAIN_ROIS_PER_IMAGE": 32, "POST_NMS_ROIS_TRAINING": 200,
                                  "POST_NMS_ROIS_INFERENCE": 100, "MAX_GT_INSTANCES": 10,
                                  "DETECTION_MIN_CONFIDENCE": 0.0, "STEPS_PER_EPOCH": 2,
                                  "VALIDATION_STEPS": 1})()
    model = modellib.MaskRCNN("training", config, str(tmp_path))
    grouped = model.keras_model.get_layer("res3b_branch2b")
    assert grouped.groups == 32
    before = np.copy(grouped.get_weights()[0])
    history = model.train(train, val, 0.001, epochs=1, layers="all", seed=0, workers=1,
                          verbose=0)
    assert all(np.isfinite(v[0]) for v in history.history.values())
    assert not np.array_equal(before, grouped.get_weights()[0])
    path = str(tmp_path / "rx.h5")
    model.save_weights(path)

    inference = modellib.MaskRCNN("inference", config, str(tmp_path))
    inference.load_weights(path, by_name=True)
    np.testing.assert_array_equal(
        inference.keras_model.get_layer("res3b_branch2b").get_weights()[0],
        grouped.get_weights()[0])
    image = np.random.default_rng(0).integers(0, 255, (100, 150, 3), dtype=np.uint8)
    (r,) = inference.detect([image])
    n = len(r["class_ids"])
    assert n > 0 and r["masks"].shape == (100, 150, n)



@pytest.mark.slow
def test_v2_switches_train_save_and_detect(tmp_path, shapes_datasets, tiny_config):
    """FPN_BATCH_NORM, RPN_CONV_DEPTH = 2 and BOX_HEAD = "4conv1fc" (torchvision's v2 layout)
    on the tiny model: training moves the new layers, an h5 checkpoint loads them by name
    into the inference model, which detects."""
    train, val = shapes_datasets
    config = type("V2", (type(tiny_config),), {
        "FPN_BATCH_NORM": True, "RPN_CONV_DEPTH": 2, "BOX_HEAD": "4conv1fc",
        "BN_EPSILON": 1e-5, "DETECTION_MIN_CONFIDENCE": 0.0, "STEPS_PER_EPOCH": 2})()
    model = modellib.MaskRCNN("training", config, str(tmp_path))
    net = model.keras_model
    new = ["mrcnn_box_conv1", "mrcnn_box_conv4", "fpn_p2", "fpn_c5p5"]  # bias-free convs
    assert all(len(net.get_layer(n).get_weights()) == 1 for n in new)
    before = {n: np.copy(net.get_layer(n).get_weights()[0]) for n in new}
    rpn2 = net.get_layer("rpn_model").get_layer("rpn_conv_shared2")
    rpn_before = np.copy(rpn2.get_weights()[0])
    history = model.train(train, val, 0.001, epochs=1, layers="all", seed=0, workers=1,
                          verbose=0)
    assert all(np.isfinite(v[0]) for v in history.history.values())
    for n in new:
        assert not np.array_equal(before[n], net.get_layer(n).get_weights()[0]), n
    assert not np.array_equal(rpn_before, rpn2.get_weights()[0])
    path = str(tmp_path / "v2.h5")
    model.save_weights(path)
    inference = modellib.MaskRCNN("inference", config, str(tmp_path))
    inference.load_weights(path, by_name=True)
    for n in new + ["mrcnn_box_bn4", "fpn_p2_bn"]:
        for a, b in zip(inference.keras_model.get_layer(n).get_weights(),
                        net.get_layer(n).get_weights()):
            np.testing.assert_array_equal(a, b)
    # Two steps teach the classifier background first: favour class 1 to get detections.
    logits = inference.keras_model.get_layer("mrcnn_class_logits")
    kernel, bias = logits.get_weights()
    logits.set_weights([kernel, bias + np.array([-5.0, 5.0, 0.0, 0.0], np.float32)])
    image = np.random.default_rng(0).integers(0, 255, (100, 150, 3), dtype=np.uint8)
    (r,) = inference.detect([image])
    n = len(r["class_ids"])
    assert n > 0 and r["masks"].shape == (100, 150, n)


def test_conv_tiles_change_no_output(tmp_path, tiny_config):
    """CONV_TILES tiles the inference model's FPN and RPN 3x3 convs: same layer names and
    weights, and the same feature maps and RPN outputs as untiled convs (at 512 px, where P2
    is 128x128: big enough to be tiled). The training model tiles them too, with the
    gradients of the untiled convs."""
    import keras
    import tensorflow as tf

    from mrcnn.builder import conv_tiles
    from mrcnn.layers.tiled_conv import TiledConv2D

    assert conv_tiles(tiny_config) == 2  # "auto", float32, no GPU here
    assert conv_tiles(type("B", (type(tiny_config),),
                           {"MIXED_PRECISION": "mixed_bfloat16"})()) == 1
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (512, 512, 3), dtype=np.uint8)]
    names = [("p2", "fpn_p2"), ("p5", "fpn_p5"), ("rpn_class", "rpn_class"),
             ("rpn_bbox", "rpn_bbox")]
    outputs, weights = [], None
    for tiles in (1, 2):
        config = type("Big", (type(tiny_config),), {"IMAGE_MIN_DIM": 512, "IMAGE_MAX_DIM": 512,
                                                    "IMAGES_PER_GPU": 1, "CONV_TILES": tiles})()
        model = modellib.MaskRCNN("inference", config, str(tmp_path))
        km = model.keras_model
        conv = km.get_layer("rpn_model").get_layer("rpn_conv_shared")
        assert isinstance(conv, TiledConv2D) and conv.tiles == tiles
        assert km.get_layer("fpn_p2").tiles == tiles
        if weights is None:
            weights = km.get_weights()
        km.set_weights(weights)
        outputs.append(model.run_graph(images, names))
    assert outputs[0]["p2"].shape == (1, 128, 128, 256)
    for key, _ in names:
        # Float32 round-off, on the map's scale: another summation order (AVX2 kernels) moved
        # one of P2's 4M values (of up to 40) by 4e-4. A tiling error is of the map's size.
        scale = float(np.abs(outputs[0][key]).max())
        np.testing.assert_allclose(outputs[1][key], outputs[0][key], rtol=1e-4,
                                   atol=max(1e-4, 2e-5 * scale), err_msg=key)
    # Training: the RPN outputs' gradients with respect to every weight under them (trunk,
    # FPN, RPN), tiled and untiled, on the same weights.
    image = tf.constant(np.stack(images).astype(np.float32) - 128)
    grads, start = [], None
    for tiles in (1, 2):
        config = type("Big", (type(tiny_config),), {"IMAGE_MIN_DIM": 512, "IMAGE_MAX_DIM": 512,
                                                    "IMAGES_PER_GPU": 1, "CONV_TILES": tiles})()
        km = modellib.MaskRCNN("training", config, str(tmp_path)).keras_model
        assert km.get_layer("fpn_p2").tiles == tiles
        rpn = keras.Model(km.get_layer("input_image").output,
                          [km.get_layer("rpn_class_logits").output,
                           km.get_layer("rpn_bbox").output])
        start = start or {w.path: w.numpy() for w in rpn.weights}
        for w in rpn.weights:
            w.assign(start[w.path])
        with tf.GradientTape() as tape:
            logits, deltas = rpn(image)
            loss = tf.reduce_mean(logits ** 2) + tf.reduce_mean(deltas ** 2)
        grads.append({w.path: g for w, g in zip(rpn.trainable_weights,
                                                tape.gradient(loss, rpn.trainable_weights))})
    assert "fpn_p2/kernel" in grads[0] and "conv1/kernel" in grads[0]
    assert grads[0].keys() == grads[1].keys()
    for path, g in grads[0].items():
        assert g is not None and grads[1][path] is not None, path
        scale = float(tf.reduce_max(tf.abs(g))) + 1e-12
        np.testing.assert_allclose(grads[1][path].numpy() / scale, g.numpy() / scale,
                                   atol=1e-4, err_msg=path)
