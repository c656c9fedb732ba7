"""matterport's public functions called the way matterport's samples and notebooks call them.

Each test writes the call as matterport's code does (positional order, argument types) and
checks the result against hand cases or NumPy. Calls already made matterport's way elsewhere
are not repeated; they are listed here:

- Config(), .display(), computed attributes: tests/test_config.py
- utils.extract_bboxes, compute_overlaps_masks, minimize_mask / expand_mask, unmold_mask,
  resize_mask: tests/ops/test_masks.py; compute_overlaps, non_max_suppression,
  apply_box_deltas, box_refinement(_graph), norm_boxes / denorm_boxes: tests/ops/test_boxes.py;
  resize_image (every mode): tests/ops/test_image.py; generate_anchors,
  generate_pyramid_anchors: tests/ops/test_anchors.py; compose_image_meta /
  parse_image_meta(_graph): tests/ops/test_image_meta.py
- utils.compute_matches, compute_ap, compute_ap_range, compute_recall: tests/test_evaluation.py
- utils.Dataset add_class / add_image / prepare / map_source_class_id / get_source_class_id /
  image_ids / load_image / load_mask: tests/test_dataset.py
- model.load_image_gt (positional, augmentation), DataGenerator, data_generator without
  random ROIs: tests/test_data_generator.py; build_rpn_targets' rule: tests/test_targets.py
- MaskRCNN(mode, config, model_dir), detect on several sizes, run_graph by layer name,
  detect_molded: tests/test_model_build.py; train / compile / set_trainable / find_last /
  set_log_dir: tests/test_training.py; load_weights(by_name, exclude): tests/test_weights.py
- the loss and graph functions: tests/test_losses.py, tests/layers/
- every visualize function's signature: tests/test_visualize.py
- samples/coco/coco.py build_coco_results / evaluate_coco: tests/samples/test_coco.py
"""

import contextlib
import io

import numpy as np
import pytest

from mrcnn import model as modellib
from mrcnn import utils, visualize
from tests.conftest import TinyConfig


class ShapesTinyConfig(TinyConfig):
    """The shapes data (BG + 3 classes, 128 px) with a small ResNet: quick to build."""

    IMAGES_PER_GPU = 1
    DETECTION_MIN_CONFIDENCE = 0.0  # random weights: keep every detection
    TOP_DOWN_PYRAMID_SIZE = 64
    FPN_CLASSIF_FC_LAYERS_SIZE = 128


def _config():
    from samples.shapes.train import mini_backbone, mini_backbone_shapes

    return type("C", (ShapesTinyConfig,), {"BACKBONE": staticmethod(mini_backbone),
                                            "COMPUTE_BACKBONE_SHAPE":
                                                staticmethod(mini_backbone_shapes)})()


@pytest.fixture(scope="module")
def dataset():
    from samples.shapes.shapes import ShapesDataset

    ds = ShapesDataset()
    ds.load_shapes(6, 128, 128, seed=4)
    ds.prepare()
    return ds


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    import keras

    keras.utils.set_random_seed(7)
    return modellib.MaskRCNN(mode="inference", config=_config(),
                             model_dir=str(tmp_path_factory.mktemp("logs")))


# ---------------------------------------------------------------- utils


def test_utils_trim_zeros():
    x = np.array([[0, 0, 0, 0], [1, 2, 3, 4], [0, 0, 0, 0], [0, 0, 0, 5]])
    np.testing.assert_array_equal(utils.trim_zeros(x), [[1, 2, 3, 4], [0, 0, 0, 5]])


def test_utils_compute_iou():
    box = np.array([0, 0, 10, 10])
    boxes = np.array([[0, 0, 10, 10], [5, 5, 15, 15], [20, 20, 30, 30]])
    area = 100.0
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    np.testing.assert_allclose(utils.compute_iou(box, boxes, area, areas), [1, 25 / 175, 0])


def test_utils_batch_slice():
    import tensorflow as tf

    a = tf.constant(np.arange(12, dtype=np.float32).reshape(2, 3, 2))
    b = tf.constant([[1.0, 2.0], [3.0, 4.0]])
    out = utils.batch_slice([a, b], lambda x, y: x * y, 2)
    np.testing.assert_allclose(out, np.asarray(a) * np.asarray(b)[:, None, :])
    s, m = utils.batch_slice(a, lambda x: (tf.reduce_sum(x), tf.reduce_max(x)), 2,
                             names=["sum", "max"])
    np.testing.assert_allclose(s, [15, 51])
    np.testing.assert_allclose(m, [5, 11])


def test_utils_resize():
    import skimage.transform

    image = np.random.default_rng(0).random((10, 12, 3))
    out = utils.resize(image, (20, 6), preserve_range=True)
    ref = skimage.transform.resize(image, (20, 6), order=1, mode="constant", cval=0,
                                   clip=True, preserve_range=True, anti_aliasing=False)
    assert out.shape == (20, 6, 3)
    np.testing.assert_allclose(out, ref)


def test_utils_mold_mask_is_the_upstream_stub():
    mask = np.ones((4, 4, 1), bool)
    with pytest.warns(UserWarning, match="never implemented"):
        assert utils.mold_mask(mask, None) is mask


def test_inspect_data_resize_calls(dataset):
    # inspect_data.ipynb: resize_image with the config's values, then resize_mask.
    config = _config()
    config.IMAGE_MAX_DIM = 256
    image = dataset.load_image(0)
    mask, class_ids = dataset.load_mask(0)
    image, window, scale, padding, _ = utils.resize_image(
        image, min_dim=config.IMAGE_MIN_DIM, max_dim=config.IMAGE_MAX_DIM,
        mode=config.IMAGE_RESIZE_MODE)
    mask = utils.resize_mask(mask, scale, padding)
    assert image.shape == (256, 256, 3) and mask.shape == (256, 256, len(class_ids))
    assert scale == 1 and window == (64, 64, 192, 192)
    np.testing.assert_array_equal(mask[64:192, 64:192], dataset.load_mask(0)[0])
    bbox = utils.extract_bboxes(mask)
    assert (bbox[:, :2] >= 64).all() and (bbox[:, 2:] <= 192).all()


def test_dataset_links_and_references(dataset):
    assert dataset.source_image_link(0) == dataset.image_info[0]["path"]
    plain = utils.Dataset(class_map=None)
    plain.add_image("mine", image_id="a.jpg", path="/data/a.jpg", width=4, height=3)
    plain.prepare(class_map=None)
    assert plain.image_reference(0) == ""
    assert plain.source_image_link(0) == "/data/a.jpg"
    assert plain.image_info[0]["width"] == 4  # add_image keeps the extra fields


# ---------------------------------------------------------------- model-level functions


def test_model_log_prints_shape_min_max_dtype():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        modellib.log("gt_bbox", np.array([[1, 5], [3, -2]], np.int32))
        modellib.log("empty", np.zeros((0, 4)))
        modellib.log("just text")
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("gt_bbox") and "shape: (2, 2)" in lines[0]
    assert "min:   -2.00000" in lines[0] and "max:    5.00000" in lines[0]
    assert lines[0].endswith("int32")
    assert "shape: (0, 4)" in lines[1] and lines[2] == "just text"


def test_compute_backbone_shapes():
    class Coco(TinyConfig):
        IMAGE_MIN_DIM = 800
        IMAGE_MAX_DIM = 1024

    config = Coco()
    shapes = modellib.compute_backbone_shapes(config, config.IMAGE_SHAPE)
    np.testing.assert_array_equal(shapes, [[256, 256], [128, 128], [64, 64], [32, 32],
                                           [16, 16]])
    np.testing.assert_array_equal(modellib.compute_backbone_shapes(config, (100, 70, 3)),
                                  [[25, 18], [13, 9], [7, 5], [4, 3], [2, 2]])


def test_mold_and_unmold_image_round_trip():
    config = _config()
    image = np.arange(256, dtype=np.uint8)[None, :, None].repeat(3, axis=2)
    molded = modellib.mold_image(image, config)
    assert molded.dtype == np.float32 and molded.shape == image.shape
    np.testing.assert_allclose(molded, image - config.MEAN_PIXEL, atol=1e-4)
    back = modellib.unmold_image(molded, config)
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, image)  # a plain cast used to give 199 for 200


@pytest.mark.parametrize("use_mini_mask", [False, True])
def test_load_image_gt_as_the_notebooks_call_it(dataset, use_mini_mask):
    config = _config()
    image_id = 2
    image, image_meta, gt_class_id, gt_bbox, gt_mask = \
        modellib.load_image_gt(dataset, config, image_id, use_mini_mask=use_mini_mask)
    masks, class_ids = dataset.load_mask(image_id)
    keep = masks.any(axis=(0, 1))
    assert image.shape == (128, 128, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image, dataset.load_image(image_id))  # 128 px: no resize
    assert image_meta.shape == (config.IMAGE_META_SIZE,)
    assert gt_class_id.dtype == np.int32 and gt_class_id.tolist() == class_ids[keep].tolist()
    assert gt_bbox.dtype == np.int32
    np.testing.assert_array_equal(gt_bbox, utils.extract_bboxes(masks[:, :, keep]))
    meta = modellib.parse_image_meta(image_meta[np.newaxis, ...])
    assert meta["original_image_shape"][0].tolist() == [128, 128, 3]
    assert meta["image_id"][0] == image_id
    assert meta["active_class_ids"][0].tolist() == [1, 1, 1, 1]
    if use_mini_mask:
        assert gt_mask.shape == tuple(config.MINI_MASK_SHAPE) + (len(gt_class_id),)
        full = utils.expand_mask(gt_bbox, gt_mask, image.shape)
        iou = np.diag(utils.compute_overlaps_masks(full, masks[:, :, keep]))
        assert (iou > 0.9).all()
    else:
        assert gt_mask.dtype == bool
        np.testing.assert_array_equal(gt_mask, masks[:, :, keep])


class OneMaskDataset(utils.Dataset):
    """One 64x64 image whose single mask has the class id given."""

    def __init__(self, class_id):
        super().__init__()
        self.class_id = class_id
        for c in (1, 2, 3):
            self.add_class("toy", c, f"c{c}")
        self.add_image("toy", image_id="img7", path="/data/img7.png")
        self.prepare()

    def load_image(self, image_id):
        return np.zeros((64, 64, 3), np.uint8)

    def load_mask(self, image_id):
        mask = np.zeros((64, 64, 1), bool)
        mask[10:20, 10:30] = True
        return mask, np.array([self.class_id], np.int32)


@pytest.mark.parametrize("class_id", [1, 3, -1, -3])
def test_load_image_gt_accepts_classes_and_crowd_markers(class_id):
    config = _config()  # NUM_CLASSES = 4
    assert modellib.load_image_gt(OneMaskDataset(class_id), config, 0)[2].tolist() == [class_id]


@pytest.mark.parametrize("class_id", [4, 9, -4, -7, 0])
def test_load_image_gt_rejects_class_ids_outside_num_classes(class_id):
    config = _config()  # NUM_CLASSES = 4: classes 1..3, crowd markers -1..-3
    with pytest.raises(ValueError) as err:
        modellib.load_image_gt(OneMaskDataset(class_id), config, 0)
    message = str(err.value)
    assert f"class id {class_id} " in message and "NUM_CLASSES = 4" in message
    assert "image_id 0" in message and "'img7'" in message and "/data/img7.png" in message


def test_build_rpn_targets_as_inspect_model_calls_it(dataset):
    config = _config()
    image, _, gt_class_id, gt_bbox, _ = modellib.load_image_gt(dataset, config, 1)
    backbone_shapes = modellib.compute_backbone_shapes(config, config.IMAGE_SHAPE)
    anchors = utils.generate_pyramid_anchors(config.RPN_ANCHOR_SCALES,
                                             config.RPN_ANCHOR_RATIOS, backbone_shapes,
                                             config.BACKBONE_STRIDES, config.RPN_ANCHOR_STRIDE)
    target_rpn_match, target_rpn_bbox = modellib.build_rpn_targets(
        image.shape, anchors, gt_class_id, gt_bbox, config)
    assert target_rpn_match.shape == (len(anchors),)
    assert target_rpn_bbox.shape == (config.RPN_TRAIN_ANCHORS_PER_IMAGE, 4)
    positive_anchor_ix = np.where(target_rpn_match[:] == 1)[0]
    negative_anchor_ix = np.where(target_rpn_match[:] == -1)[0]
    assert 0 < len(positive_anchor_ix) <= config.RPN_TRAIN_ANCHORS_PER_IMAGE // 2
    assert len(positive_anchor_ix) + len(negative_anchor_ix) == \
        config.RPN_TRAIN_ANCHORS_PER_IMAGE
    refined_anchors = utils.apply_box_deltas(
        anchors[positive_anchor_ix],
        target_rpn_bbox[:positive_anchor_ix.shape[0]] * config.RPN_BBOX_STD_DEV)
    # Each refined positive anchor lands on a GT box.
    iou = utils.compute_overlaps(refined_anchors, gt_bbox)
    assert (iou.max(axis=1) > 0.999).all()


def test_generate_random_rois(dataset):
    config = _config()
    image, _, gt_class_id, gt_bbox, _ = modellib.load_image_gt(dataset, config, 1)
    rois = modellib.generate_random_rois(image.shape, 500, gt_class_id, gt_bbox)
    assert rois.shape == (500, 4) and rois.dtype == np.int32
    assert (rois[:, 2] > rois[:, 0]).all() and (rois[:, 3] > rois[:, 1]).all()
    assert (rois >= 0).all() and (rois[:, 2] <= 128).all() and (rois[:, 3] <= 128).all()
    # 90% of them around the GT boxes: per GT, within the box grown by its size each side.
    per_gt = int(0.9 * 500 / len(gt_bbox))
    y1, x1, y2, x2 = gt_bbox[0]
    h, w = y2 - y1, x2 - x1
    first = rois[:per_gt]
    assert (first[:, 0] >= y1 - h).all() and (first[:, 2] <= y2 + h).all()
    assert (first[:, 1] >= x1 - w).all() and (first[:, 3] <= x2 + w).all()


def test_build_detection_targets(dataset):
    config = _config()
    image, _, gt_class_ids, gt_boxes, gt_masks = modellib.load_image_gt(
        dataset, config, 1, use_mini_mask=config.USE_MINI_MASK)
    rpn_rois = modellib.generate_random_rois(image.shape, 300, gt_class_ids, gt_boxes)
    rois, class_ids, bboxes, masks = modellib.build_detection_targets(
        rpn_rois, gt_class_ids, gt_boxes, gt_masks, config)
    t, nc = config.TRAIN_ROIS_PER_IMAGE, config.NUM_CLASSES
    assert rois.shape == (t, 4) and rois.dtype == np.int32
    assert class_ids.shape == (t,) and bboxes.shape == (t, nc, 4)
    assert masks.shape == (t,) + tuple(config.MASK_SHAPE) + (nc,)
    positives = np.where(class_ids > 0)[0]
    assert 0 < len(positives) <= int(t * config.ROI_POSITIVE_RATIO)
    for i in positives:
        c = class_ids[i]
        refined = utils.apply_box_deltas(rois[i:i + 1].astype(np.float32),
                                         bboxes[i:i + 1, c] * config.BBOX_STD_DEV)
        iou = utils.compute_overlaps(refined, gt_boxes[gt_class_ids == c])
        assert iou.max() > 0.999
        assert masks[i, :, :, c].any() and not np.delete(masks[i], c, axis=-1).any()


def test_data_generator_with_random_rois_as_inspect_data_unpacks_it(dataset):
    config = _config()
    g = modellib.data_generator(dataset, config, shuffle=True, random_rois=200, batch_size=2,
                                detection_targets=True)
    [normalized_images, image_meta, rpn_match, rpn_bbox, gt_class_ids, gt_boxes, gt_masks,
     rpn_rois, rois], [mrcnn_class_ids, mrcnn_bbox, mrcnn_mask] = next(g)
    b, t, nc = 2, config.TRAIN_ROIS_PER_IMAGE, config.NUM_CLASSES
    assert normalized_images.shape == (b, 128, 128, 3)
    assert rpn_match.shape[0] == b and rpn_match.shape[2] == 1
    assert rpn_bbox.shape == (b, config.RPN_TRAIN_ANCHORS_PER_IMAGE, 4)
    assert gt_masks.shape == (b,) + tuple(config.MINI_MASK_SHAPE) + (config.MAX_GT_INSTANCES,)
    assert rpn_rois.shape == (b, 200, 4) and rois.shape == (b, t, 4)
    assert mrcnn_class_ids.shape == (b, t, 1)  # the notebook drops the last axis itself
    assert mrcnn_bbox.shape == (b, t, nc, 4)
    assert mrcnn_mask.shape == (b, t) + tuple(config.MASK_SHAPE) + (nc,)
    image_id = modellib.parse_image_meta(image_meta)["image_id"][0]
    sample_image = modellib.unmold_image(normalized_images[0], config)
    np.testing.assert_array_equal(sample_image, dataset.load_image(image_id))
    n = int(np.sum(gt_class_ids[0] > 0))
    np.testing.assert_array_equal(
        gt_boxes[0, :n], modellib.load_image_gt(dataset, config, image_id)[3])
    assert len(np.where(rpn_match[0] == 1)[0]) > 0


# ---------------------------------------------------------------- MaskRCNN methods


def test_detect_of_no_images_is_an_empty_list(model):
    assert model.detect([]) == []
    assert model.detect([], verbose=1) == []
    config = model.config
    assert model.detect_molded(np.zeros((0, 128, 128, 3), np.float32),
                               np.zeros((0, config.IMAGE_META_SIZE), np.float32)) == []
    assert model.detect_molded([], []) == []


@pytest.mark.slow  # the first detect() traces the graph
def test_detect_as_demo_calls_it(model):
    image = np.random.default_rng(1).integers(0, 255, (90, 120, 3), dtype=np.uint8)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        results = model.detect([image], verbose=1)
    assert "Processing 1 images" in out.getvalue()
    r = results[0]
    assert set(r) == {"rois", "class_ids", "scores", "masks"}
    n = len(r["class_ids"])
    assert n > 0 and r["masks"].shape == (90, 120, n) and r["rois"].shape == (n, 4)


@pytest.mark.slow  # builds and traces a second model
def test_detect_calls_an_overridden_unmold_detections(tmp_path):
    """matterport's detect() unmolded through self.unmold_detections, so subclasses that
    override it (to filter or post-process) keep working."""
    calls = []

    class TopOne(modellib.MaskRCNN):
        def unmold_detections(self, detections, mrcnn_mask, original_image_shape,
                              image_shape, window):
            calls.append((original_image_shape, tuple(image_shape), tuple(window)))
            boxes, class_ids, scores, masks = super().unmold_detections(
                detections, mrcnn_mask, original_image_shape, image_shape, window)
            return boxes[:1], class_ids[:1], scores[:1] * 0 + 0.5, masks[:, :, :1]

    model = TopOne("inference", _config(), str(tmp_path))
    images = [np.random.default_rng(i).integers(0, 255, (90, 120, 3), dtype=np.uint8)
              for i in range(2)]
    results = model.detect(images)
    assert [c[0] for c in calls] == [(90, 120, 3), (90, 120, 3)]
    for r in results:
        assert set(r) == {"rois", "class_ids", "scores", "masks"}
        assert r["rois"].shape == (1, 4) and r["masks"].shape == (90, 120, 1)
        assert r["scores"].tolist() == [0.5]


def test_mold_inputs(model):
    config = model.config
    image = np.random.default_rng(2).integers(0, 255, (64, 100, 3), dtype=np.uint8)
    molded_images, image_metas, windows = model.mold_inputs([image])
    resized, window, scale, _, _ = utils.resize_image(
        image, min_dim=config.IMAGE_MIN_DIM, max_dim=config.IMAGE_MAX_DIM,
        min_scale=config.IMAGE_MIN_SCALE, mode=config.IMAGE_RESIZE_MODE)
    assert molded_images.shape == (1, 128, 128, 3) and molded_images.dtype == np.float32
    np.testing.assert_allclose(molded_images[0], modellib.mold_image(resized, config))
    np.testing.assert_array_equal(windows[0], window)
    expected = modellib.compose_image_meta(0, image.shape, resized.shape, window, scale,
                                           np.zeros([config.NUM_CLASSES], np.int32))
    np.testing.assert_allclose(image_metas[0], expected)


def test_unmold_detections_hand_case(model):
    nc = model.config.NUM_CLASSES
    # A 64x128 image molded into 128x128: not scaled, padded by 32 rows above and below.
    original_shape, molded_shape, window = (64, 128, 3), (128, 128, 3), np.array([32, 0, 96,
                                                                                  128])
    detections = np.zeros((5, 6), np.float32)
    detections[0] = [40 / 127, 16 / 127, 71 / 127, 79 / 127, 2, 0.8]  # molded px (40,16,72,80)
    mrcnn_mask = np.zeros((5, 28, 28, nc), np.float32)
    mrcnn_mask[0, :, :, 2] = 1.0
    boxes, class_ids, scores, masks = model.unmold_detections(
        detections, mrcnn_mask, original_shape, molded_shape, window)
    np.testing.assert_array_equal(boxes, [[8, 16, 40, 80]])
    assert boxes.dtype == np.int32 and class_ids.tolist() == [2]
    np.testing.assert_allclose(scores, [0.8])
    assert masks.shape == (64, 128, 1) and masks.dtype == bool
    assert masks[8:40, 16:80, 0].all() and masks[..., 0].sum() == 32 * 64
    # The same molded detection from a 640x1280 photo (scaled by 0.1): its pixel edges scale
    # by 10 (matterport's map gave (81, 161, 397, 797): every edge moved, the box 4 pixels
    # shorter and narrower).
    boxes, _, _, masks = model.unmold_detections(detections, mrcnn_mask, (640, 1280, 3),
                                                 molded_shape, window)
    np.testing.assert_array_equal(boxes, [[80, 160, 400, 800]])
    assert masks[80:400, 160:800, 0].all() and masks[..., 0].sum() == 320 * 640
    boxes, class_ids, scores, masks = model.unmold_detections(
        np.zeros((5, 6), np.float32), mrcnn_mask, original_shape, molded_shape, window)
    assert boxes.shape == (0, 4) and class_ids.shape == (0,) and masks.shape == (64, 128, 0)


def test_get_anchors_and_model_anchors(model):
    config = model.config
    anchors = model.get_anchors((128, 128, 3))
    expected = utils.generate_pyramid_anchors(
        config.RPN_ANCHOR_SCALES, config.RPN_ANCHOR_RATIOS,
        modellib.compute_backbone_shapes(config, (128, 128, 3)), config.BACKBONE_STRIDES,
        config.RPN_ANCHOR_STRIDE)
    np.testing.assert_allclose(model.anchors, expected)  # pixels, for the notebooks
    np.testing.assert_allclose(anchors, utils.norm_boxes(expected, (128, 128)), atol=1e-6)
    model.get_anchors((256, 128, 3))
    assert model.get_anchors((128, 128, 3)) is anchors  # cached
    np.testing.assert_allclose(model.anchors, expected)  # and model.anchors follows


@pytest.mark.slow  # builds probe models over the whole graph
def test_run_graph_with_keras_tensors(model):
    config = model.config
    image = np.full((128, 128, 3), 120, np.uint8)
    out = model.run_graph([image], [
        ("rpn_class", model.keras_model.get_layer("rpn_class").output),
        ("proposals", model.keras_model.get_layer("ROI").output),
    ])
    assert list(out) == ["rpn_class", "proposals"]
    n_anchors = len(model.get_anchors((128, 128, 3)))
    assert out["rpn_class"].shape == (1, n_anchors, 2)
    np.testing.assert_allclose(out["rpn_class"].sum(-1), 1.0, atol=1e-5)
    assert out["proposals"].shape == (1, config.POST_NMS_ROIS_INFERENCE, 4)
    # inspect_model.ipynb's stage 2 cell.
    kl = model.keras_model
    mrcnn = model.run_graph([image], [
        ("input_image", kl.get_layer("input_image").output),
        ("proposals", kl.get_layer("ROI").output),
        ("probs", kl.get_layer("mrcnn_class").output),
        ("deltas", kl.get_layer("mrcnn_bbox").output),
        ("masks", kl.get_layer("mrcnn_mask").output),
        ("detections", kl.get_layer("mrcnn_detection").output),
    ])
    p, d, nc = config.POST_NMS_ROIS_INFERENCE, config.DETECTION_MAX_INSTANCES, config.NUM_CLASSES
    np.testing.assert_allclose(mrcnn["input_image"], model.mold_inputs([image])[0])
    assert mrcnn["probs"].shape == (1, p, nc) and mrcnn["deltas"].shape == (1, p, nc, 4)
    np.testing.assert_allclose(mrcnn["probs"].sum(-1), 1.0, atol=1e-5)
    assert mrcnn["masks"].shape == (1, d) + tuple(config.MASK_SHAPE) + (nc,)
    detections = mrcnn["detections"][0]
    assert detections.shape == (d, 6)
    count = int(np.sum(detections[:, 4] > 0))
    assert (detections[count:] == 0).all()  # zero padding after the detections
    assert (np.diff(detections[:count, 5]) <= 0).all()  # by descending score


def test_trainable_layers_and_ancestor(model):
    import keras

    layers = model.get_trainable_layers()
    assert layers and all(layer.weights for layer in layers)
    assert not any(isinstance(layer, keras.layers.TimeDistributed) for layer in layers)
    wrapped = model.keras_model.get_layer("mrcnn_class_conv1")
    assert model.find_trainable_layer(wrapped) is wrapped.layer
    conv1 = model.keras_model.get_layer("conv1")
    assert model.find_trainable_layer(conv1) is conv1 and conv1 in layers
    with pytest.raises(NotImplementedError, match="run_graph"):
        model.ancestor(None, "ROI/pre_nms_anchors:0")


@pytest.mark.slow  # the first detect() traces the graph
def test_inspect_model_evaluation_cells(model, dataset):
    # compute_batch_ap and the detection cells of inspect_model.ipynb.
    image_id = 3
    image, image_meta, gt_class_id, gt_bbox, gt_mask = \
        modellib.load_image_gt(dataset, model.config, image_id, use_mini_mask=False)
    results = model.detect_molded(np.expand_dims(image, 0), np.expand_dims(image_meta, 0),
                                  verbose=1)
    assert results[0]["masks"].shape[:2] == image.shape[:2]
    r = model.detect([image], verbose=0)[0]
    AP, precisions, recalls, overlaps = utils.compute_ap(
        gt_bbox, gt_class_id, gt_mask, r["rois"], r["class_ids"], r["scores"], r["masks"])
    assert 0.0 <= AP <= 1.0 and precisions.shape == recalls.shape
    assert overlaps.shape == (len(r["rois"]), len(gt_bbox))
    np.testing.assert_allclose(overlaps, utils.compute_overlaps_masks(r["masks"], gt_mask))
    ap = utils.compute_ap_range(gt_bbox, gt_class_id, gt_mask, r["rois"], r["class_ids"],
                                r["scores"], r["masks"], verbose=0)
    assert 0.0 <= ap <= AP + 1e-9
    assert visualize.plot_precision_recall(AP, precisions, recalls) is not None
    assert visualize.plot_overlaps(gt_class_id, r["class_ids"], r["scores"], overlaps,
                                   dataset.class_names) is not None


# ---------------------------------------------------------------- visualize in a notebook


def test_visualize_shows_its_own_figures_in_a_notebook(monkeypatch, dataset):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    assert not visualize._in_notebook()  # under pytest: figures are returned
    shown = []
    monkeypatch.setattr(visualize, "_in_notebook", lambda: True)
    monkeypatch.setattr(visualize, "_display", shown.append)
    image = dataset.load_image(0)
    mask, class_ids = dataset.load_mask(0)
    bbox = utils.extract_bboxes(mask)
    # matterport's train_shapes.ipynb draws in a loop: each call must show its figure.
    for image_id in dataset.image_ids[:2]:
        m, ids = dataset.load_mask(image_id)
        assert visualize.display_top_masks(dataset.load_image(image_id), m, ids,
                                           dataset.class_names) is None
    assert len(shown) == 2
    assert visualize.display_instances(image, bbox, mask, class_ids, dataset.class_names,
                                       figsize=(8, 8)) is None
    assert len(shown) == 3 and isinstance(shown[-1], Figure)
    fig = Figure()
    ax = fig.add_subplot(1, 1, 1)  # the caller's axes: drawn into, not shown
    assert visualize.display_instances(image, bbox, mask, class_ids, dataset.class_names,
                                       ax=ax) is fig
    assert len(shown) == 3


def test_display_images_keeps_activation_maps(tmp_path):
    # inspect_model.ipynb: display_images(np.transpose(activations[0, :, :, :4], [2, 0, 1])).
    activations = np.random.default_rng(3).normal(0, 0.3, (1, 8, 8, 4)).astype(np.float32)
    maps = np.transpose(activations[0, :, :, :4], [2, 0, 1])
    fig = visualize.display_images(maps, cmap="Blues")
    for k, ax in enumerate(fig.axes):
        np.testing.assert_array_equal(ax.images[0].get_array(), maps[k])  # not cast to uint8
    rgb = np.full((8, 8, 3), 300.0)
    fig = visualize.display_images([rgb])
    assert fig.axes[0].images[0].get_array().dtype == np.uint8
    assert (fig.axes[0].images[0].get_array() == 255).all()


def test_plt_savefig_after_display_instances_as_nucleus_does(tmp_path, dataset):
    # samples/nucleus/nucleus.py: visualize.display_instances(...) then plt.savefig(path).
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import skimage.io

    image = dataset.load_image(0)
    mask, class_ids = dataset.load_mask(0)
    before = len(plt.get_fignums())
    fig = visualize.display_instances(image, utils.extract_bboxes(mask), mask, class_ids,
                                      dataset.class_names, show_bbox=False, figsize=(4, 4),
                                      colors=[(1.0, 0.0, 0.0)] * len(class_ids),
                                      title="Predictions")
    assert plt.gcf() is fig
    plt.savefig(str(tmp_path / "nucleus.png"))
    out = skimage.io.imread(str(tmp_path / "nucleus.png"))[..., :3].astype(int)
    assert ((out[..., 0] > out[..., 1] + 60) & (out[..., 0] > out[..., 2] + 60)).sum() > 100
    plt.close(fig)
    # A figure written to save_path is released from pyplot (no pile-up in loops).
    visualize.display_instances(image, utils.extract_bboxes(mask), mask, class_ids,
                                dataset.class_names, save_path=str(tmp_path / "x.png"))
    assert len(plt.get_fignums()) == before
