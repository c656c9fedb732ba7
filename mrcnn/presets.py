"""Config presets that reproduce other implementations' architecture choices.

TorchvisionMaskRCNNConfig is torchvision's maskrcnn_resnet50_fpn (v1, the COCO checkpoint
maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth): load its weights with
MaskRCNN.load_torchvision_weights. Subclass it to change NUM_CLASSES or training settings.
TorchvisionMaskRCNNV2Config is maskrcnn_resnet50_fpn_v2 (maskrcnn_resnet50_fpn_v2_coco-73cbd019.pth:
BatchNorm in the FPN and the heads, two RPN convs, a four-conv box head).
TorchvisionKeypointRCNNConfig is torchvision's keypointrcnn_resnet50_fpn (the COCO person
keypoint checkpoint keypointrcnn_resnet50_fpn_coco-fc266e95.pth): the same backbone, RPN and box
head, no mask head, and the keypoint head.
"""

import math

import numpy as np

from mrcnn.config import Config

__all__ = ["TorchvisionMaskRCNNConfig", "TorchvisionMaskRCNNV2Config",
           "TorchvisionKeypointRCNNConfig",
           "COCO_PERSON_KEYPOINT_NAMES", "COCO_PERSON_FLIP_MAP", "COCO_PERSON_SKELETON"]


class TorchvisionMaskRCNNConfig(Config):
    """torchvision.models.detection.maskrcnn_resnet50_fpn, attribute by attribute.

    Values are read off torchvision's source (models/detection/{mask_rcnn, faster_rcnn, rpn,
    roi_heads, anchor_utils, transform}.py, ops/{poolers, misc}.py).
    """

    NAME = "torchvision_coco"
    NUM_CLASSES = 91  # torchvision's COCO label space: background + 90 ids (some unused)
    IMAGES_PER_GPU = 1
    BACKBONE = "resnet50"
    # ResNet-50 v1.5 with FrozenBatchNorm2d(eps=1e-5) and PyTorch padding.
    RESNET_STRIDE_ON_3X3 = True
    RESNET_SYMMETRIC_PADDING = True
    BN_EPSILON = 1e-5
    TRAIN_BN = False
    # RPNHead(256, 3): a 256-wide 3x3 conv; AnchorGenerator(((32,), (64,), (128,), (256,),
    # (512,)), aspect ratios (0.5, 1.0, 2.0) as height / width, i.e. width / height 2, 1, 0.5.
    RPN_CONV_CHANNELS = 256
    RPN_ANCHOR_SCALES = (32, 64, 128, 256, 512)
    RPN_ANCHOR_RATIOS = [2.0, 1.0, 0.5]
    RPN_ANCHOR_LAYOUT = "torchvision"
    # rpn_pre_nms_top_n_test 1000 per level, rpn_post_nms_top_n_test 1000, nms 0.7,
    # min_size 1e-3; the RPN's BoxCoder weights are (1, 1, 1, 1).
    RPN_NMS_PER_LEVEL = True
    PRE_NMS_LIMIT = 1000
    POST_NMS_ROIS_INFERENCE = 1000
    POST_NMS_ROIS_TRAINING = 2000
    RPN_NMS_THRESHOLD = 0.7
    RPN_MIN_SIZE = 1e-3
    RPN_BBOX_STD_DEV = np.array([1.0, 1.0, 1.0, 1.0])
    # RoIHeads' BoxCoder weights (10, 10, 5, 5) as (wx, wy, ww, wh): 1 / weight in (y, x, h, w).
    BBOX_STD_DEV = np.array([0.1, 0.1, 0.2, 0.2])
    BBOX_DELTA_CLAMP = math.log(1000.0 / 16)
    BOX_DECODE_FRAME = "pixels"
    # MultiScaleRoIAlign(["0", "1", "2", "3"], 7 / 14, sampling_ratio=2), aligned=False.
    ROI_ALIGN_MODE = "torchvision"
    ROI_ALIGN_SAMPLING_RATIO = 2
    ROI_LEVEL_MAPPER = "torchvision"
    POOL_SIZE = 7
    MASK_POOL_SIZE = 14
    MASK_SHAPE = [28, 28]
    # TwoMLPHead(256 * 7 * 7, 1024) and MaskRCNNHeads without BatchNorm.
    FPN_CLASSIF_FC_LAYERS_SIZE = 1024
    HEADS_BATCH_NORM = False
    # box_score_thresh 0.05 (strict), box_nms_thresh 0.5 per class, 100 detections, boxes
    # under 1e-2 px dropped; every (ROI, class) pair is a candidate.
    DETECTION_PER_CLASS = True
    DETECTION_MIN_CONFIDENCE = 0.05
    DETECTION_NMS_THRESHOLD = 0.5
    DETECTION_MAX_INSTANCES = 100
    DETECTION_MIN_SIZE = 1e-2
    # Training-time sampling (box_batch_size_per_image 512, box_positive_fraction 0.25).
    TRAIN_ROIS_PER_IMAGE = 512
    ROI_POSITIVE_RATIO = 0.25
    # GeneralizedRCNNTransform: ImageNet mean/std on [0, 1] pixels = 255 * mean, 255 * std on
    # [0, 255]; min_size 800, max_size 1333.
    MEAN_PIXEL = np.array([0.485, 0.456, 0.406]) * 255.0
    STD_PIXEL = np.array([0.229, 0.224, 0.225]) * 255.0
    IMAGE_RESIZE_MODE = "pad64"
    IMAGE_MIN_DIM = 800
    IMAGE_MAX_DIM = 1333


class TorchvisionMaskRCNNV2Config(TorchvisionMaskRCNNConfig):
    """torchvision.models.detection.maskrcnn_resnet50_fpn_v2 (the improved recipe of Li et al.,
    "Benchmarking Detection Transfer Learning with Vision Transformers", 2021): v1's backbone,
    anchors, box coding and detection settings, with

    - the FPN's convs bias-free and followed by BatchNorm (_resnet_fpn_extractor with
      norm_layer=BatchNorm2d): FPN_BATCH_NORM;
    - RPNHead(256, 3, conv_depth=2): two 3x3 conv + ReLU layers, RPN_CONV_DEPTH = 2;
    - FastRCNNConvFCHead((256, 7, 7), [256] * 4, [1024], BatchNorm2d): four 3x3 convs with
      BatchNorm, then one FC layer: BOX_HEAD = "4conv1fc";
    - MaskRCNNHeads(256, [256] * 4, 1, BatchNorm2d): the mask convs with BatchNorm, which
      matterport's mask head also has (HEADS_BATCH_NORM; its conv biases load as zeros).

    torchvision trains its backbone's BatchNorm (batches of 2 images on each of 8 GPUs);
    TRAIN_BN stays False here (frozen), as for v1. COCO val2017 (torchvision's docs, not
    measured here): box AP 47.4, mask AP 41.8, against v1's 37.9 and 34.6.
    """

    NAME = "torchvision_v2_coco"
    FPN_BATCH_NORM = True
    RPN_CONV_DEPTH = 2
    BOX_HEAD = "4conv1fc"
    HEADS_BATCH_NORM = True


# COCO's person keypoints (torchvision/models/_meta.py _COCO_PERSON_KEYPOINT_NAMES, the order of
# COCO's annotations), the left/right pairs a horizontal flip swaps, and COCO's person skeleton
# (person_keypoints_*.json "skeleton", 1-based there, 0-based here).
COCO_PERSON_KEYPOINT_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle")
COCO_PERSON_FLIP_MAP = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))
COCO_PERSON_SKELETON = tuple((a - 1, b - 1) for a, b in (
    (16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13), (6, 7), (6, 8), (7, 9),
    (8, 10), (9, 11), (2, 3), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7)))


class TorchvisionKeypointRCNNConfig(TorchvisionMaskRCNNConfig):
    """torchvision.models.detection.keypointrcnn_resnet50_fpn (models/detection/keypoint_rcnn.py
    and roi_heads.py keypointrcnn_inference / heatmaps_to_keypoints).

    Backbone, RPN, box head and detection settings are Faster R-CNN's, as in the Mask R-CNN
    preset; the label space is (background, person). The keypoint head:
    MultiScaleRoIAlign(["0", "1", "2", "3"], 14, sampling_ratio=2) (ROI_ALIGN_MODE and
    ROI_LEVEL_MAPPER as the box head), KeypointRCNNHeads(256, (512,) * 8): eight 3x3 convs
    with ReLU, KeypointRCNNPredictor: ConvTranspose2d(512, 17, 4, stride=2, padding=1) and a
    2x bilinear upsampling (align_corners=False) to 56 x 56. mrcnn's keypoint head computes the
    same thing (tests/test_presets.py checks the deconvolution and the upsampling against
    torch's definitions), so no switch is needed. torchvision trains with a short side drawn
    from (640, ..., 800); inference uses 800 (IMAGE_MIN_DIM).
    """

    NAME = "torchvision_coco_keypoints"
    NUM_CLASSES = 2
    USE_MASK_HEAD = False
    NUM_KEYPOINTS = 17
    KEYPOINT_NAMES = COCO_PERSON_KEYPOINT_NAMES
    KEYPOINT_FLIP_MAP = COCO_PERSON_FLIP_MAP
    KEYPOINT_SKELETON = COCO_PERSON_SKELETON
    KEYPOINT_POOL_SIZE = 14
    KEYPOINT_MASK_SHAPE = [56, 56]
    KEYPOINT_HEAD_CONV_CHANNELS = 512
    KEYPOINT_HEAD_CONVS = 8
