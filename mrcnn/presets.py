"""Config presets that reproduce other implementations' architecture choices.

TorchvisionMaskRCNNConfig is torchvision's maskrcnn_resnet50_fpn (v1, the COCO checkpoint
maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth): load its weights with
MaskRCNN.load_torchvision_weights. Subclass it to change NUM_CLASSES or training settings.
"""

import math

import numpy as np

from mrcnn.config import Config

__all__ = ["TorchvisionMaskRCNNConfig"]


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
