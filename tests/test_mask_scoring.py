"""Mask Scoring R-CNN (Config.MASK_SCORING): the MaskIoU target, loss, head and mask scores
against NumPy, segm evaluation ranked by mask scores against pycocotools, and (slow) the model
training, detecting, loading weights by name and exporting with the head."""


import keras
import numpy as np
import pytest
import tensorflow as tf

from mrcnn import builder
from mrcnn import evaluation as E
from mrcnn.config import Config, ConfigError
from mrcnn.layers import CUSTOM_OBJECTS
from mrcnn.layers.mask_scoring import (
    ClassMaskPool,
    MaskIoUTargetLayer,
    MaskScores,
    mask_scores_graph,
    maskiou_targets_graph,
)
from mrcnn.losses import mrcnn_maskiou_loss_graph
from mrcnn.utils import Dataset
from tests.conftest import TinyConfig


def numpy_iou(pred, gt):
    """IoU of two binarised (> 0.5) masks, 0 for an empty union: the definition."""
    p, g = pred > 0.5, gt > 0.5
    union = np.logical_or(p, g).sum()
    return np.logical_and(p, g).sum() / union if union else 0.0


# ------------------------------------------------------------------ target
def test_maskiou_target_hand_cases():
    s, c = 4, 3
    pred = np.zeros((1, 5, s, s, c), np.float32)
    target = np.zeros((1, 6, s, s), np.float32)
    class_ids = np.array([[1, 2, 1, 2, 0, 0]], np.int32)  # 6 targets, the head saw 5 rows
    # Row 0: identical masks (values just over 0.5 count as foreground) -> 1.
    pred[0, 0, :2, :, 1] = 0.51
    target[0, 0, :2, :] = 1
    # Row 1: disjoint (top half vs bottom half) -> 0; the other class's channel is ignored.
    pred[0, 1, :2, :, 2] = 0.9
    pred[0, 1, 2:, :, 1] = 0.9
    target[0, 1, 2:, :] = 1
    # Row 2: half overlap: columns 0-1 vs columns 1-2 -> intersection 4, union 12 -> 1/3.
    pred[0, 2, :, :2, 1] = 0.8
    target[0, 2, :, 1:3] = 1
    # Row 3: 0.5 exactly is background: prediction empty -> 0 / 4 = 0.
    pred[0, 3, :, :1, 2] = 0.5
    target[0, 3, :, :1] = 1
    # Row 4: a negative ROI -> 0 although its masks match.
    pred[0, 4, :, :, 0] = 1.0
    target[0, 4] = 1
    got = np.asarray(maskiou_targets_graph(pred, target, class_ids))
    np.testing.assert_allclose(got, [[1.0, 0.0, 1 / 3, 0.0, 0.0]], atol=1e-7)


def test_maskiou_target_matches_numpy_on_random_masks():
    rng = np.random.default_rng(0)
    b, r, t, s, c = 2, 6, 9, 28, 4
    pred = rng.uniform(size=(b, r, s, s, c)).astype(np.float32)
    target = (rng.uniform(size=(b, t, s, s)) > 0.4).astype(np.float32)
    class_ids = rng.integers(0, c, size=(b, t)).astype(np.int32)
    got = np.asarray(MaskIoUTargetLayer()(pred, target, class_ids))
    want = np.zeros((b, r))
    for i in range(b):
        for j in range(r):
            k = class_ids[i, j]
            want[i, j] = numpy_iou(pred[i, j, :, :, k], target[i, j]) if k > 0 else 0.0
    assert got.shape == (b, r) and (want > 0).sum() > 4
    np.testing.assert_allclose(got, want, atol=1e-6)


# ------------------------------------------------------------------ loss
def test_maskiou_loss_is_l2_on_positives_only():
    rng = np.random.default_rng(1)
    b, r, c = 2, 5, 4
    pred = rng.normal(size=(b, r, c)).astype(np.float32)
    target = rng.uniform(size=(b, r)).astype(np.float32)
    class_ids = np.array([[2, 0, 1, 3, 0, 0, 0], [0, 1, 0, 0, 0, 0, 0]], np.int32)
    got = float(mrcnn_maskiou_loss_graph(target, class_ids, pred))
    pos = [(i, j) for i in range(b) for j in range(r) if class_ids[i, j] > 0]
    want = np.mean([(pred[i, j, class_ids[i, j]] - target[i, j]) ** 2 for i, j in pos])
    assert got == pytest.approx(want, rel=1e-6)
    # Negatives contribute nothing: changing their predictions and targets changes nothing.
    pred2, target2 = pred.copy(), target.copy()
    for i in range(b):
        for j in range(r):
            if class_ids[i, j] == 0:
                pred2[i, j] += 5.0
                target2[i, j] = 0.9
    assert float(mrcnn_maskiou_loss_graph(target2, class_ids, pred2)) == pytest.approx(want,
                                                                                      rel=1e-6)
    # Only negatives: exactly zero (not NaN).
    zero = mrcnn_maskiou_loss_graph(target, np.zeros_like(class_ids), pred)
    assert float(zero) == 0.0


# ------------------------------------------------------------------ head input and scores
def test_class_mask_pool_max_pools_the_class_channel_without_gradient():
    rng = np.random.default_rng(2)
    masks = rng.uniform(size=(2, 3, 28, 28, 4)).astype(np.float32)
    class_ids = np.array([[1, 3, 0], [2, 2, 1]], np.float32)  # detections carry float ids
    layer = ClassMaskPool()
    x = tf.constant(masks)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, class_ids)
        total = tf.reduce_sum(y)
    assert y.shape == (2, 3, 14, 14, 1)
    for i in range(2):
        for j in range(3):
            m = masks[i, j, :, :, int(class_ids[i, j])]
            want = m.reshape(14, 2, 14, 2).max(axis=(1, 3))
            np.testing.assert_array_equal(np.asarray(y)[i, j, :, :, 0], want)
    grad = tape.gradient(total, x)
    assert grad is None or not np.any(np.asarray(grad))


def test_mask_scores_are_class_score_times_clipped_maskiou():
    detections = np.zeros((1, 4, 6), np.float32)
    detections[0, :3, 4] = [1, 3, 2]
    detections[0, :3, 5] = [0.9, 0.8, 0.5]
    maskiou = np.array([[[0.1, 0.6, 0.2, 0.3], [0.0, 0.2, 0.1, 1.4],
                         [0.5, 0.5, -0.2, 0.5], [0.7, 0.7, 0.7, 0.7]]], np.float32)
    got = np.asarray(MaskScores()(detections, maskiou))
    np.testing.assert_allclose(got, [[0.9 * 0.6, 0.8 * 1.0, 0.0, 0.0]], atol=1e-7)
    np.testing.assert_allclose(got, np.asarray(mask_scores_graph(detections, maskiou)))


def test_layers_serialize_and_are_registered():
    for cls, kwargs in ((MaskIoUTargetLayer, {"threshold": 0.4}), (ClassMaskPool, {}),
                        (MaskScores, {})):
        assert CUSTOM_OBJECTS[cls.__name__] is cls
        layer = cls(name="x", **kwargs)
        clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
        assert type(clone) is cls and clone.get_config() == layer.get_config()
    assert MaskIoUTargetLayer(threshold=0.4).get_config()["threshold"] == 0.4


# ------------------------------------------------------------------ config and graph
def test_config_mask_scoring_attributes():
    assert Config.MASK_SCORING is False
    base = TinyConfig()
    assert "mrcnn_maskiou" not in builder.training_output_names(base)
    assert "mrcnn_mask_scores" not in builder.inference_output_names(base)
    assert "mrcnn_maskiou_loss" not in base.LOSS_WEIGHTS  # matterport's five keys, unchanged

    class On(TinyConfig):
        MASK_SCORING = True
        LOSS_WEIGHTS = dict(TinyConfig.LOSS_WEIGHTS, mrcnn_maskiou_loss=0.5)

    on = On()
    assert builder.training_output_names(on)[-2:] == ["mrcnn_maskiou", "target_maskiou"]
    assert builder.inference_output_names(on)[-2:] == ["mrcnn_maskiou", "mrcnn_mask_scores"]
    for attrs, name in (({"MASK_SCORING": 1}, "MASK_SCORING"),
                        ({"MASK_SCORING": True, "MASKIOU_FC_SIZE": 0}, "MASKIOU_FC_SIZE"),
                        ({"MASKIOU_CONV_CHANNELS": 2.5}, "MASKIOU_CONV_CHANNELS"),
                        ({"LOSS_WEIGHTS": {"mrcnn_mask_iou_loss": 1.0}}, "LOSS_WEIGHTS")):
        with pytest.raises(ConfigError, match=name):
            type("Bad", (TinyConfig,), attrs)()
    with pytest.raises(ConfigError, match="MASK_SCORING.*USE_MASK_HEAD"):
        type("NoMask", (TinyConfig,), {"MASK_SCORING": True, "USE_MASK_HEAD": False,
                                       "NUM_KEYPOINTS": 17})()


def test_mask_scoring_command_line_option():
    from mrcnn import cli
    from samples.shapes import train as shapes_train

    task = cli.TrainingTask("shapes", shapes_train.ShapesTrainConfig,
                            shapes_train.ShapesInferenceConfig, None)

    class Shapes:
        num_classes = shapes_train.ShapesTrainConfig.NUM_CLASSES

    for argv, on in (([], False), (["--mask-scoring"], True)):
        train_cls, infer_cls = cli._config_classes(task, shapes_train.parse_args(argv), Shapes())
        assert train_cls().MASK_SCORING is on and infer_cls().MASK_SCORING is on
    assert (train_cls.MASKIOU_CONV_CHANNELS, train_cls.MASKIOU_FC_SIZE) == (128, 512)


def test_head_layers_and_shapes():
    from mrcnn.heads.mask_iou_head import build_maskiou_graph

    feats = keras.Input((3, 14, 14, 8), batch_size=2)
    masks = keras.Input((3, 28, 28, 5), batch_size=2)
    ids = keras.Input((3,), batch_size=2)
    out = build_maskiou_graph(feats, masks, ids, 5, conv_channels=16, fc_size=32)
    model = keras.Model([feats, masks, ids], out)
    names = {layer.name for layer in model.layers}
    assert {f"mrcnn_maskiou_conv{i}" for i in range(1, 5)} | {"mrcnn_maskiou_fc1",
                                                              "mrcnn_maskiou_fc2",
                                                              "mrcnn_maskiou"} <= names
    assert model.get_layer("mrcnn_maskiou_conv4").output.shape[2:] == (7, 7, 16)  # stride 2
    assert model.get_layer("mrcnn_maskiou_conv1").layer.kernel.shape == (3, 3, 8 + 1, 16)
    assert model.get_layer("mrcnn_maskiou_fc1").layer.kernel.shape == (7 * 7 * 16, 32)
    rng = np.random.default_rng(3)
    y = model([rng.normal(size=(2, 3, 14, 14, 8)).astype(np.float32),
               rng.uniform(size=(2, 3, 28, 28, 5)).astype(np.float32),
               np.array([[1, 2, 0], [4, 4, 3]], np.float32)])
    assert y.shape == (2, 3, 5) and y.dtype == "float32" and np.isfinite(np.asarray(y)).all()


# ------------------------------------------------------------------ evaluation
class _ToyDataset(Dataset):
    def __init__(self, gt_boxes):
        super().__init__()
        self.add_class("toy", 1, "thing")
        self.add_image("toy", image_id=0, path=None)
        self.gt_boxes = gt_boxes

    def load_image(self, image_id):
        return np.zeros((40, 40, 3), np.uint8)

    def load_mask(self, image_id):
        masks = np.zeros((40, 40, len(self.gt_boxes)), bool)
        for k, (y1, x1, y2, x2) in enumerate(self.gt_boxes):
            masks[y1:y2, x1:x2, k] = True
        return masks, np.ones(len(self.gt_boxes), np.int32)


class _FixedModel:
    def __init__(self, result):
        self.result = result

    def detect(self, images, verbose=0):
        return [dict(self.result)]


def _hand_case():
    """One GT square; detection A: high class score, mask IoU 0.4 with the GT (a miss at
    every COCO threshold), low predicted MaskIoU; detection B: lower class score, exact mask,
    high predicted MaskIoU."""
    boxes = [(5, 5, 25, 13), (5, 5, 25, 25)]
    masks = np.zeros((40, 40, 2), bool)
    for k, (y1, x1, y2, x2) in enumerate(boxes):
        masks[y1:y2, x1:x2, k] = True
    return {"rois": np.array(boxes, np.int32), "class_ids": np.array([1, 1], np.int32),
            "scores": np.array([0.9, 0.6], np.float32), "masks": masks,
            "mask_scores": np.array([0.9 * 0.3, 0.6 * 0.9], np.float32)}


def _pycocotools_segm_ap(result, score_key):
    """COCO segm AP of the hand case computed with pycocotools directly."""
    import contextlib
    import io

    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    def rle(m):
        r = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        r["counts"] = r["counts"].decode("ascii")
        return r

    gt_mask = np.zeros((40, 40), bool)
    gt_mask[5:25, 5:25] = True
    gt = COCO()
    gt.dataset = {"images": [{"id": 0, "height": 40, "width": 40}],
                  "categories": [{"id": 1, "name": "thing"}],
                  "annotations": [{"id": 1, "image_id": 0, "category_id": 1, "iscrowd": 0,
                                   "segmentation": rle(gt_mask), "area": 400.0,
                                   "bbox": [5, 5, 20, 20]}]}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        dt = gt.loadRes([{"image_id": 0, "category_id": 1, "score": float(result[score_key][k]),
                          "segmentation": rle(result["masks"][:, :, k])} for k in range(2)])
        ev = COCOeval(gt, dt, "segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0])


def test_segm_evaluation_ranks_by_mask_scores_as_pycocotools():
    result = _hand_case()
    dataset = _ToyDataset([(5, 5, 25, 25)])
    dataset.prepare()
    metrics = E.evaluate_dataset(_FixedModel(result), dataset, verbose=0)
    # Ranked by mask score, B (a hit) comes first: AP 1. By class score, A (a miss) first:
    # precision 1/2 at every recall, AP 1/2. pycocotools agrees on both.
    by_mask = _pycocotools_segm_ap(result, "mask_scores")
    by_class = _pycocotools_segm_ap(result, "scores")
    assert by_mask == pytest.approx(1.0) and by_class == pytest.approx(0.5)
    assert metrics["coco_segm"]["AP"] == pytest.approx(by_mask)
    assert metrics["coco_segm_class_scores"]["AP"] == pytest.approx(by_class)
    assert metrics["mask_mAP50"] == pytest.approx(1.0)
    assert metrics["mask_mAP50_class_scores"] == pytest.approx(0.5)
    # Boxes rank by class score: A's box [5, 5, 25, 13] also misses (IoU 0.4).
    assert metrics["coco_bbox"]["AP"] == pytest.approx(0.5, abs=0.01)
    # matterport's build_coco_results call still works, and with mask_scores ranks by them.
    plain = E.build_coco_results(dataset, [0], result["rois"], result["class_ids"],
                                 result["scores"], result["masks"].astype(np.uint8))
    assert all("mask_score" not in r for r in plain)
    scored = E.build_coco_results(dataset, [0], result["rois"], result["class_ids"],
                                  result["scores"], result["masks"],
                                  mask_scores=result["mask_scores"])
    gt = E.build_coco_gt(dataset, [0], [{"class_ids": np.array([1]),
                                         "masks": dataset.load_mask(0)[0]}])
    assert E.coco_metrics(gt, plain, "segm")["AP"] == pytest.approx(by_class)
    assert E.coco_metrics(gt, scored, "segm")["AP"] == pytest.approx(by_mask)
    assert E.coco_metrics(gt, scored, "segm", use_mask_scores=False)["AP"] == \
        pytest.approx(by_class)
    with pytest.raises(ValueError, match="1 mask_scores"):
        E.build_coco_results(dataset, [0], result["rois"], result["class_ids"],
                             result["scores"], result["masks"], mask_scores=[0.5])


# ------------------------------------------------------------------ the model (slow)
class MaskScoringConfig(TinyConfig):
    MASK_SCORING = True
    MASKIOU_CONV_CHANNELS = 32
    MASKIOU_FC_SIZE = 64
    STEPS_PER_EPOCH = 2
    DETECTION_MIN_CONFIDENCE = 0.0


class MaskScoringInferenceConfig(MaskScoringConfig):
    IMAGES_PER_GPU = 1


@pytest.mark.slow
def test_maskiou_gradient_stops_at_the_mask_head(shapes_datasets):
    from mrcnn.data_generator import DataGenerator
    from mrcnn.training import compute_losses

    class GivenRois(MaskScoringConfig):
        USE_RPN_ROIS = False  # ROIs around the GT boxes: positive ROIs from the first step

    config = GivenRois()
    net = builder.build_training_model(config)
    train, _ = shapes_datasets
    batch = DataGenerator(train, config, shuffle=False, seed=0,
                          random_rois=config.POST_NMS_ROIS_TRAINING).batch(0)
    inputs = {k: tf.constant(v) for k, v in batch.items()}
    names = builder.training_output_names(config)
    watched = {n: net.get_layer(n).trainable_weights[0]
               for n in ("mrcnn_mask_conv1", "mrcnn_mask", "mrcnn_maskiou_fc1", "fpn_p2")}
    with tf.GradientTape() as tape:
        outputs = net(inputs, training=True)
        losses = compute_losses(inputs, outputs, names)
    o = dict(zip(names, outputs))
    assert float(losses["mrcnn_maskiou_loss"]) > 0
    grads = dict(zip(watched, tape.gradient(losses["mrcnn_maskiou_loss"],
                                            list(watched.values()))))
    # The MaskIoU loss trains its head and (through the RoI features) the FPN, never the mask
    # head: the predicted mask enters the head with its gradient stopped.
    for name in ("mrcnn_mask_conv1", "mrcnn_mask"):
        assert grads[name] is None or not np.any(np.asarray(grads[name])), name
    assert np.any(np.asarray(grads["mrcnn_maskiou_fc1"]))
    assert np.any(np.asarray(grads["fpn_p2"]))
    # The target in the graph is the IoU of the binarised class mask with the mask target.
    rows = o["mrcnn_mask"].shape[1]
    ids = np.asarray(o["target_class_ids"])[:, :rows]
    pred = np.asarray(o["mrcnn_mask"])
    tgt = np.asarray(o["target_mask"])
    want = np.array([[numpy_iou(pred[i, j, :, :, ids[i, j]], tgt[i, j]) if ids[i, j] > 0
                      else 0.0 for j in range(rows)] for i in range(len(ids))])
    np.testing.assert_allclose(np.asarray(o["target_maskiou"]), want, atol=1e-6)


@pytest.mark.slow
def test_train_detect_weights_by_name_and_export(tmp_path, shapes_datasets):
    from mrcnn import model as modellib
    from tests.test_export import serve_in_fresh_process

    train, val = shapes_datasets
    model = modellib.MaskRCNN("training", MaskScoringConfig(), str(tmp_path / "logs"))
    history = model.train(train, val, 0.001, epochs=1, layers="all", seed=0, workers=1,
                          verbose=0)
    loss = history.history["mrcnn_maskiou_loss"]
    assert len(loss) == 1 and np.isfinite(loss[0])

    # Detection and export on the randomly initialised model: it has detections (two training
    # steps teach the classifier background first, which can leave none).
    infer = modellib.MaskRCNN("inference", MaskScoringInferenceConfig(), str(tmp_path / "logs"))
    # Predicted MaskIoU about 0.5 (+- a little per class and detection): nonzero mask scores.
    head = infer.keras_model.get_layer("mrcnn_maskiou")
    kernel, bias = head.get_weights()
    head.set_weights([kernel * 0.02, bias + 0.5])
    image = val.load_image(val.image_ids[0])
    r = infer.detect([image])[0]
    n = len(r["class_ids"])
    assert n > 0 and r["mask_scores"].shape == (n,) and r["scores"].shape == (n,)
    # mask_scores = class score x the head's MaskIoU of the detected class, clipped to [0, 1].
    g = infer.run_graph([image], [("det", "mrcnn_detection"), ("iou", "mrcnn_maskiou")])
    det, iou = g["det"][0], g["iou"][0]
    valid = det[:, 4] > 0
    want = det[valid, 5] * np.clip(iou[valid, det[valid, 4].astype(int)], 0, 1)
    np.testing.assert_allclose(r["mask_scores"], want, rtol=1e-5, atol=1e-6)
    assert np.all(r["mask_scores"] > 0.3 * r["scores"]) and np.all(r["mask_scores"] <
                                                                   0.7 * r["scores"])
    np.testing.assert_allclose(r["scores"], det[valid, 5], rtol=1e-6)

    # SavedModel export serves mask_scores too (reloaded in a fresh process).
    _, got = serve_in_fresh_process(infer, image, tmp_path)
    k = int(got["num_detections"][0])
    assert k == n
    np.testing.assert_allclose(got["mask_scores"][0, :k], r["mask_scores"], atol=1e-5)
    assert not np.any(got["mask_scores"][0, k:])

    # The trained head loads by name from the h5 checkpoint into the inference model.
    report = infer.load_weights(model.find_last(), by_name=True, verbose=0)
    for name in ("mrcnn_maskiou_conv1", "mrcnn_maskiou_fc2", "mrcnn_maskiou"):
        assert name in report["loaded"]
        for a, b in zip(infer.keras_model.get_layer(name).get_weights(),
                        model.keras_model.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    r = infer.detect([image])[0]
    assert r["mask_scores"].shape == r["scores"].shape


@pytest.mark.slow
def test_detect_torchvision_returns_mask_scores(tmp_path):
    from mrcnn import model as modellib
    from mrcnn.presets import TorchvisionMaskRCNNConfig
    from mrcnn.torchvision_postprocess import detect_torchvision, mold_inputs_torchvision

    class Config(TorchvisionMaskRCNNConfig):
        NAME = "tv_mask_scoring"
        NUM_CLASSES = 3
        IMAGE_MIN_DIM = 128
        IMAGE_MAX_DIM = 160
        MASK_SCORING = True
        MASKIOU_CONV_CHANNELS = 32
        MASKIOU_FC_SIZE = 64
        DETECTION_MIN_CONFIDENCE = 0.0

    config = Config()
    infer = modellib.MaskRCNN("inference", config, str(tmp_path))
    head = infer.keras_model.get_layer("mrcnn_maskiou")  # predicted MaskIoU about 0.5
    kernel, bias = head.get_weights()
    head.set_weights([kernel * 0.02, bias + 0.5])
    image = np.random.default_rng(0).integers(0, 255, (120, 150, 3), dtype=np.uint8)
    (r,) = detect_torchvision(infer.keras_model, config, [image])
    n = len(r["class_ids"])
    assert n > 0 and r["mask_scores"].shape == (n,) and r["mask_scores"].dtype == np.float32
    # The same rows as the boxes: class score x the head's MaskIoU of the detected class.
    molded, metas, _ = mold_inputs_torchvision([image], config)
    outputs = dict(zip(builder.inference_output_names(config), infer.keras_model.predict(
        [molded, metas, np.zeros((1, 1, 4), np.float32)], verbose=0)))
    det, iou = outputs["mrcnn_detection"][0], outputs["mrcnn_maskiou"][0]
    valid = det[:, 5] > 0
    want = det[valid, 5] * np.clip(iou[valid, det[valid, 4].astype(int)], 0, 1)
    np.testing.assert_allclose(r["mask_scores"], want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(r["scores"], det[valid, 5], rtol=1e-6)
    assert np.all(r["mask_scores"] > 0.3 * r["scores"])
