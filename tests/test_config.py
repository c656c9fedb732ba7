import numpy as np
import pytest

from mrcnn.config import Config, ConfigError

# matterport's 45 attributes and defaults (reference section 1.1).
MATTERPORT_DEFAULTS = {
    "NAME": None, "GPU_COUNT": 1, "IMAGES_PER_GPU": 2, "STEPS_PER_EPOCH": 1000,
    "VALIDATION_STEPS": 50, "BACKBONE": "resnet101", "COMPUTE_BACKBONE_SHAPE": None,
    "BACKBONE_STRIDES": [4, 8, 16, 32, 64], "FPN_CLASSIF_FC_LAYERS_SIZE": 1024,
    "TOP_DOWN_PYRAMID_SIZE": 256, "NUM_CLASSES": 1, "RPN_ANCHOR_SCALES": (32, 64, 128, 256, 512),
    "RPN_ANCHOR_RATIOS": [0.5, 1, 2], "RPN_ANCHOR_STRIDE": 1, "RPN_NMS_THRESHOLD": 0.7,
    "RPN_TRAIN_ANCHORS_PER_IMAGE": 256, "PRE_NMS_LIMIT": 6000, "POST_NMS_ROIS_TRAINING": 2000,
    "POST_NMS_ROIS_INFERENCE": 1000, "USE_MINI_MASK": True, "MINI_MASK_SHAPE": (56, 56),
    "IMAGE_RESIZE_MODE": "square", "IMAGE_MIN_DIM": 800, "IMAGE_MAX_DIM": 1024,
    "IMAGE_MIN_SCALE": 0, "IMAGE_CHANNEL_COUNT": 3, "MEAN_PIXEL": [123.7, 116.8, 103.9],
    "TRAIN_ROIS_PER_IMAGE": 200, "ROI_POSITIVE_RATIO": 0.33, "POOL_SIZE": 7,
    "MASK_POOL_SIZE": 14, "MASK_SHAPE": [28, 28], "MAX_GT_INSTANCES": 100,
    "RPN_BBOX_STD_DEV": [0.1, 0.1, 0.2, 0.2], "BBOX_STD_DEV": [0.1, 0.1, 0.2, 0.2],
    "DETECTION_MAX_INSTANCES": 100, "DETECTION_MIN_CONFIDENCE": 0.7,
    "DETECTION_NMS_THRESHOLD": 0.3, "LEARNING_RATE": 0.001, "LEARNING_MOMENTUM": 0.9,
    "WEIGHT_DECAY": 0.0001,
    "LOSS_WEIGHTS": {"rpn_class_loss": 1.0, "rpn_bbox_loss": 1.0, "mrcnn_class_loss": 1.0,
                     "mrcnn_bbox_loss": 1.0, "mrcnn_mask_loss": 1.0},
    "USE_RPN_ROIS": True, "TRAIN_BN": False, "GRADIENT_CLIP_NORM": 5.0,
}


class Coco(Config):
    NAME = "coco"
    NUM_CLASSES = 81


def test_class_defaults_are_matterports():
    assert len(MATTERPORT_DEFAULTS) == 45
    for name, value in MATTERPORT_DEFAULTS.items():
        actual = getattr(Config, name)
        if isinstance(actual, np.ndarray):
            actual = actual.tolist()
        assert actual == value, name


def test_computed_attributes():
    c = Coco()
    assert c.BATCH_SIZE == 2 and c.IMAGE_META_SIZE == 93
    assert c.IMAGE_SHAPE.tolist() == [1024, 1024, 3]
    crop = type("Crop", (Coco,), {"IMAGE_RESIZE_MODE": "crop", "IMAGE_MIN_DIM": 512})()
    assert crop.IMAGE_SHAPE.tolist() == [512, 512, 3]


def test_mutable_attributes_are_not_shared():
    a, b = Coco(), Coco()
    a.LOSS_WEIGHTS["mrcnn_mask_loss"] = 5.0
    a.MEAN_PIXEL[0] = 0
    assert b.LOSS_WEIGHTS["mrcnn_mask_loss"] == 1.0 and Config.LOSS_WEIGHTS["mrcnn_mask_loss"] == 1
    assert b.MEAN_PIXEL[0] == pytest.approx(123.7)


@pytest.mark.parametrize("attrs,attr_name", [
    ({"IMAGE_MAX_DIM": 1000}, "IMAGE_MAX_DIM"),
    ({"NUM_CLASSES": 1}, "NUM_CLASSES"),
    ({"RPN_ANCHOR_SCALES": (32, 64, 128)}, "RPN_ANCHOR_SCALES"),
    ({"IMAGE_RESIZE_MODE": "stretch"}, "IMAGE_RESIZE_MODE"),
    ({"BACKBONE": "vgg16"}, "BACKBONE"),
    ({"BACKBONE": "resnext50"}, "BACKBONE"),
    ({"MEAN_PIXEL": np.array([1.0, 2.0])}, "MEAN_PIXEL"),
    ({"MASK_SHAPE": [56, 56]}, "MASK_SHAPE"),
    ({"IMAGES_PER_GPU": 0}, "IMAGES_PER_GPU"),
    ({"ROI_POSITIVE_RATIO": 0}, "ROI_POSITIVE_RATIO"),
    ({"LOSS_WEIGHTS": {"mask": 1.0}}, "LOSS_WEIGHTS"),
    ({"TRAIN_BN": "yes"}, "TRAIN_BN"),
    ({"IMAGE_MIN_DIM": 2048}, "IMAGE_MIN_DIM"),
    ({"MIXED_PRECISION": "float16"}, "MIXED_PRECISION"),
    ({"CHECKPOINT_EVERY_STEPS": 0}, "CHECKPOINT_EVERY_STEPS"),
    ({"CHECKPOINT_EVERY_STEPS": 2.5}, "CHECKPOINT_EVERY_STEPS"),
    ({"CHECKPOINT_EVERY_STEPS": True}, "CHECKPOINT_EVERY_STEPS"),
    ({"KEEP_CHECKPOINTS": 0}, "KEEP_CHECKPOINTS"),
    ({"KEEP_CHECKPOINTS": "3"}, "KEEP_CHECKPOINTS"),
    ({"MAX_NONFINITE_STEPS": 0}, "MAX_NONFINITE_STEPS"),
    ({"MAX_NONFINITE_STEPS": None}, "MAX_NONFINITE_STEPS"),
    ({"CONV_TILES": 0}, "CONV_TILES"),
    ({"CONV_TILES": True}, "CONV_TILES"),
    ({"CONV_TILES": "2"}, "CONV_TILES"),
])
def test_invalid_values_fail_at_construction_naming_the_attribute(attrs, attr_name):
    bad = type("Bad", (Coco,), attrs)
    with pytest.raises(ConfigError, match=rf"Bad\.{attr_name} ="):
        bad()


def test_to_dict_from_dict_round_trip():
    c = Coco()
    d = c.to_dict()
    assert d["IMAGE_META_SIZE"] == 93 and d["MEAN_PIXEL"] == [123.7, 116.8, 103.9]
    again = Coco.from_dict(d)
    assert again.to_dict() == d


def test_display_prints_every_attribute(capsys):
    Coco().display()
    out = capsys.readouterr().out
    for name in MATTERPORT_DEFAULTS:
        assert name in out


def _backbone(input_image, stage5=True, train_bn=True):
    return [input_image] * 5


def test_callable_backbone_stays_unbound():
    cfg = type("Callable", (Coco,), {"BACKBONE": _backbone,
                                     "COMPUTE_BACKBONE_SHAPE": lambda shape: [[1, 1]] * 5})()
    assert cfg.BACKBONE is _backbone and cfg.BACKBONE("x")[0] == "x"
    assert cfg.COMPUTE_BACKBONE_SHAPE((64, 64)) == [[1, 1]] * 5
    with pytest.raises(ConfigError, match="COMPUTE_BACKBONE_SHAPE"):
        type("NoShape", (Coco,), {"BACKBONE": _backbone})()


def test_resumable_training_attributes():
    c = Coco()
    assert (c.CHECKPOINT_EVERY_STEPS, c.MAX_NONFINITE_STEPS, c.KEEP_CHECKPOINTS) == (None, 5, None)
    ok = type("Ok", (Coco,), {"CHECKPOINT_EVERY_STEPS": 50, "KEEP_CHECKPOINTS": 3,
                              "MAX_NONFINITE_STEPS": 1})()
    assert (ok.CHECKPOINT_EVERY_STEPS, ok.KEEP_CHECKPOINTS, ok.MAX_NONFINITE_STEPS) == (50, 3, 1)
    with pytest.raises(ConfigError, match="must be a positive integer or None"):
        type("Bad", (Coco,), {"KEEP_CHECKPOINTS": -2})()


@pytest.mark.parametrize("backbone", ["resnet50", "resnet101", "resnext50_32x4d",
                                      "resnext101_32x8d"])
def test_named_backbones_are_accepted(backbone):
    assert type("B", (Coco,), {"BACKBONE": backbone})().BACKBONE == backbone
