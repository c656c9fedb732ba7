"""Config: every hyper-parameter of Mask R-CNN, with matterport's names and defaults.

Subclass it and override class attributes, as with matterport::

    class ShapesConfig(Config):
        NAME = "shapes"
        NUM_CLASSES = 1 + 3

    config = ShapesConfig()   # validated here: a bad value raises ConfigError naming it

Attributes that matterport buried in code as literals are attributes here, with the same values
(RPN_POSITIVE_IOU, RPN_NEGATIVE_IOU, ROI_POSITIVE_IOU, CROWD_IOU_THRESHOLD). Attributes that
are new in mrcnn are marked "mrcnn:" below.
"""

import copy
import inspect
import math

import numpy as np

__all__ = ["Config", "ConfigError", "BACKBONE_NAMES"]

# The named backbones: matterport's ResNets and torchvision's ResNeXts (mrcnn/backbone/).
BACKBONE_NAMES = ("resnet50", "resnet101", "resnext50_32x4d", "resnext101_32x8d")

RESIZE_MODES = ("none", "square", "pad64", "crop")
PRECISIONS = (None, "mixed_float16", "mixed_bfloat16")
LOSS_NAMES = ("rpn_class_loss", "rpn_bbox_loss", "mrcnn_class_loss", "mrcnn_bbox_loss",
              "mrcnn_mask_loss")
# The keypoint head's loss, present when NUM_KEYPOINTS > 0.
KEYPOINT_LOSS_NAMES = ("mrcnn_keypoint_loss",)
# The MaskIoU head's loss, present when MASK_SCORING is True.
MASK_SCORING_LOSS_NAMES = ("mrcnn_maskiou_loss",)


class ConfigError(ValueError):
    """A Config attribute has an invalid value. The message names the attribute."""


class Config:
    """Base configuration class. Override the attributes you need in a subclass."""

    # Name of the configuration, used in log directory and checkpoint names. Must be overridden.
    NAME = None
    # Number of GPUs (replicas). More than 1 trains under tf.distribute.MirroredStrategy.
    GPU_COUNT = 1
    # Images per GPU (per replica). A 12GB GPU typically handles 2 images of 1024x1024.
    IMAGES_PER_GPU = 2
    # Training steps per epoch and validation steps run at the end of every epoch.
    STEPS_PER_EPOCH = 1000
    VALIDATION_STEPS = 50
    # "resnet50", "resnet101", "resnext50_32x4d", "resnext101_32x8d" (mrcnn: ResNeXt, grouped
    # 3x3 convs, torchvision's layout) or a callable with the signature of resnet_graph; then
    # COMPUTE_BACKBONE_SHAPE must be a callable (image_shape) -> [[h, w], ...] per stride.
    BACKBONE = "resnet101"
    COMPUTE_BACKBONE_SHAPE = None
    # Strides of the FPN levels P2..P6.
    BACKBONE_STRIDES = [4, 8, 16, 32, 64]
    # Size of the fully-connected layers in the classification graph.
    FPN_CLASSIF_FC_LAYERS_SIZE = 1024
    # Channels of the top-down FPN layers.
    TOP_DOWN_PYRAMID_SIZE = 256
    # Number of classes, including background.
    NUM_CLASSES = 1
    # Square anchor side lengths in pixels, one per pyramid level; ratios are width/height.
    RPN_ANCHOR_SCALES = (32, 64, 128, 256, 512)
    RPN_ANCHOR_RATIOS = [0.5, 1, 2]
    # 1: an anchor at every feature-map cell; 2: every other cell, ...
    RPN_ANCHOR_STRIDE = 1
    # NMS threshold for RPN proposals.
    RPN_NMS_THRESHOLD = 0.7
    # Anchors per image sampled for RPN training (at most half positive).
    RPN_TRAIN_ANCHORS_PER_IMAGE = 256
    # Anchors kept by score before proposal NMS.
    PRE_NMS_LIMIT = 6000
    # Proposals kept after NMS, training and inference.
    POST_NMS_ROIS_TRAINING = 2000
    POST_NMS_ROIS_INFERENCE = 1000
    # Store instance masks resized to MINI_MASK_SHAPE inside their boxes, to save memory.
    USE_MINI_MASK = True
    MINI_MASK_SHAPE = (56, 56)
    # "none", "square", "pad64" or "crop"; see utils.resize_image.
    IMAGE_RESIZE_MODE = "square"
    IMAGE_MIN_DIM = 800
    IMAGE_MAX_DIM = 1024
    # Minimum scaling ratio, applied after IMAGE_MIN_DIM.
    IMAGE_MIN_SCALE = 0
    # 3 for RGB. Other counts need MEAN_PIXEL of that length and a load_image that returns them.
    IMAGE_CHANNEL_COUNT = 3
    # Mean pixel subtracted from images (RGB).
    MEAN_PIXEL = np.array([123.7, 116.8, 103.9])
    # ROIs per image fed to the classifier/mask heads in training, and their positive fraction.
    TRAIN_ROIS_PER_IMAGE = 200
    ROI_POSITIVE_RATIO = 0.33
    # ROI pooling sizes of the classifier and mask heads.
    POOL_SIZE = 7
    MASK_POOL_SIZE = 14
    # Output mask size. Must be 2 * MASK_POOL_SIZE: the mask head upsamples once.
    MASK_SHAPE = [28, 28]
    # Maximum number of ground truth instances used per image.
    MAX_GT_INSTANCES = 100
    # Bounding box refinement standard deviation for RPN and final detections.
    RPN_BBOX_STD_DEV = np.array([0.1, 0.1, 0.2, 0.2])
    BBOX_STD_DEV = np.array([0.1, 0.1, 0.2, 0.2])
    # Maximum number of final detections, minimum score, and per-class NMS threshold.
    DETECTION_MAX_INSTANCES = 100
    DETECTION_MIN_CONFIDENCE = 0.7
    DETECTION_NMS_THRESHOLD = 0.3
    # SGD learning rate and momentum. The paper's 0.02 tends to make weights explode here.
    LEARNING_RATE = 0.001
    LEARNING_MOMENTUM = 0.9
    # L2 weight decay (BatchNorm gamma/beta excluded).
    WEIGHT_DECAY = 0.0001
    # Weight of each loss in the total. Losses of optional heads (mrcnn_keypoint_loss,
    # mrcnn_maskiou_loss) may be added here; a loss missing from the dict has weight 1.0.
    LOSS_WEIGHTS = {
        "rpn_class_loss": 1.0,
        "rpn_bbox_loss": 1.0,
        "mrcnn_class_loss": 1.0,
        "mrcnn_bbox_loss": 1.0,
        "mrcnn_mask_loss": 1.0,
    }
    # Use RPN proposals to train the heads (False: the training model takes ROIs as input_roi).
    USE_RPN_ROIS = True
    # False: BatchNorm layers are frozen (moving statistics used, gamma/beta not trained), the
    # right choice for small batches. True or None: BatchNorm layers train normally.
    TRAIN_BN = False
    # Gradient norm clipping.
    GRADIENT_CLIP_NORM = 5.0

    # --- Thresholds matterport hard-coded (same values) ---
    # Anchors with IoU >= RPN_POSITIVE_IOU to a GT box are positive, < RPN_NEGATIVE_IOU negative.
    RPN_POSITIVE_IOU = 0.7
    RPN_NEGATIVE_IOU = 0.3
    # Proposals with IoU >= ROI_POSITIVE_IOU to a GT box are positive ROIs, others negative.
    ROI_POSITIVE_IOU = 0.5
    # Negative ROIs must overlap every crowd box by less than this.
    CROWD_IOU_THRESHOLD = 0.001

    # --- mrcnn: new attributes ---
    # "paper": RoIAlign as He et al. define it, each bin the mean of ROI_ALIGN_SAMPLING_RATIO^2
    # bilinear samples; mask targets sampled at the bins' centres. "matterport": one
    # crop_and_resize sample per bin and matterport's mask targets, as mask_rcnn_coco.h5 was
    # trained. "torchvision": torchvision's RoIAlign, aligned=False (bins on pixel boxes /
    # stride, ROIs >= 1 feature cell wide, samples past the last cell take its value; mask
    # targets as "paper"); needs BOX_DECODE_FRAME = "pixels".
    ROI_ALIGN_MODE = "paper"
    ROI_ALIGN_SAMPLING_RATIO = 2
    # True: images with no instances are skipped in training (matterport's behaviour). False: they
    # are used as background-only examples.
    SKIP_EMPTY_IMAGES = False
    # Mixed precision: None (float32 everywhere), "mixed_float16" (GPUs; dynamic loss scaling)
    # or "mixed_bfloat16" (TPUs, recent GPUs and CPUs). Convolutions and dense layers compute in
    # the low precision with float32 weights; box geometry, NMS, RoIAlign sampling, the output
    # softmax/sigmoid layers and every loss stay float32.
    MIXED_PRECISION = None
    # True: the train/test step and detect() are compiled by XLA (jit_compile=True), and RoI
    # crops use gathers (TF has no XLA kernel for CropAndResize; same values, ops/crop.py).
    # False (default): measured faster on CPUs (README, Speed); try True on GPUs.
    XLA = False
    # The FPN's and RPN's wide 3x3 convs run on CONV_TILES x CONV_TILES overlapping tiles of
    # each image, stacked in the batch (layers/tiled_conv.py; the forward pass, in training
    # and inference): the same numbers, faster with oneDNN's float32 CPU kernels at batch 1
    # (README, Speed). 1: off.
    # "auto": 2 in float32 (MIXED_PRECISION None) where TensorFlow sees no GPU, else 1.
    CONV_TILES = "auto"
    # Resumable training (README "When training stops"). Besides the per-epoch checkpoints,
    # train() keeps <log_dir>/resume_<name>.h5 with the weights, optimizer state and data
    # position, written at each epoch end and, when this is a positive integer, every
    # CHECKPOINT_EVERY_STEPS training steps. None: at epoch ends only.
    CHECKPOINT_EVERY_STEPS = None
    # A step whose loss or gradients are not finite is not applied. After this many consecutive
    # such steps training stops with NonFiniteLossError (naming the step, losses and images).
    MAX_NONFINITE_STEPS = 5
    # Keep only the newest KEEP_CHECKPOINTS per-epoch checkpoint files of a run (older ones are
    # deleted after each save). None keeps all of them, as matterport did.
    KEEP_CHECKPOINTS = None

    # --- mrcnn: architecture switches (torchvision's Mask R-CNN: see mrcnn/presets.py) ---
    # Every default is matterport's behaviour (mask_rcnn_coco.h5 needs them).
    # ResNet "v1.5": a downsampling bottleneck strides its 3x3 conv, not its first 1x1 conv
    # (resnet50/101 only: the ResNeXts always do, as the paper and torchvision).
    RESNET_STRIDE_ON_3X3 = False
    # Strided 3x3 convs and the stem max-pool pad 1 pixel on every side (PyTorch) instead of
    # Keras "same" padding (bottom/right only on even inputs).
    RESNET_SYMMETRIC_PADDING = False
    # Epsilon of every BatchNorm layer (Keras default 1e-3; torchvision 1e-5).
    BN_EPSILON = 1e-3
    # Channels of the RPN's shared 3x3 conv (matterport 512, torchvision 256).
    RPN_CONV_CHANNELS = 512
    # Channels of the mask head's four 3x3 convs and its deconv (matterport and the paper 256).
    MASK_HEAD_CHANNELS = 256
    # "matterport": anchor sizes as computed, centres at i * BACKBONE_STRIDES[level].
    # "torchvision": half-sides rounded to integers, centres at i * (image_size // grid_size)
    # per axis (AnchorGenerator; P6 of an 800-px image then has stride 61, not 64).
    RPN_ANCHOR_LAYOUT = "matterport"
    # True: PRE_NMS_LIMIT anchors per pyramid level, NMS within each level (torchvision);
    # False: PRE_NMS_LIMIT over all levels and one NMS (matterport).
    RPN_NMS_PER_LEVEL = False
    # Proposals and detections narrower or lower than this many pixels are dropped (0: none).
    RPN_MIN_SIZE = 0.0
    DETECTION_MIN_SIZE = 0.0
    # Upper bound of the de-normalized log(dh), log(dw) deltas (None: no bound; torchvision
    # log(1000 / 16)).
    BBOX_DELTA_CLAMP = None
    # "normalized": deltas are applied to normalized boxes and proposals are clipped to the
    # whole padded image (matterport). "pixels": deltas are applied to pixel boxes (widths
    # x2 - x1 without +1) and boxes are clipped to the image window (torchvision).
    BOX_DECODE_FRAME = "normalized"
    # RoI -> pyramid level. "matterport": round(4 + log2(sqrt(wh) / (224 / sqrt(image area))))
    # on normalized boxes. "torchvision": floor(4 + log2(sqrt(wh) / 224 + 1e-6)), wh in pixels.
    ROI_LEVEL_MAPPER = "matterport"
    # BatchNorm layers after the box head's FC layers (its convs with BOX_HEAD "4conv1fc")
    # and the mask head's convs (matterport's heads have them, torchvision's v1 heads do not).
    HEADS_BATCH_NORM = True
    # torchvision's Mask R-CNN v2: bias-free FPN convs with BatchNorm; 2 RPN 3x3 convs (the
    # second rpn_conv_shared2); box head "4conv1fc" (four 3x3 convs, one FC) for "2fc".
    FPN_BATCH_NORM = False
    RPN_CONV_DEPTH = 1
    BOX_HEAD = "2fc"
    # False: each ROI gives one detection, of its most probable class (matterport). True: every
    # (ROI, class) pair scoring above DETECTION_MIN_CONFIDENCE is a candidate (torchvision).
    DETECTION_PER_CLASS = False
    # Per-channel divisor applied after MEAN_PIXEL is subtracted (None: 1, matterport).
    STD_PIXEL = None

    # --- mrcnn: the keypoint head (paper §5; 0 keypoints = no keypoint head) ---
    # Keypoints per instance; Dataset.load_keypoints(image_id) gives [instances, K, (x, y, v)].
    NUM_KEYPOINTS = 0
    # Names of the keypoints (K of them, or empty), pairs (left, right) of keypoint indices
    # that a horizontal flip swaps, and pairs of indices joined when drawing a skeleton.
    KEYPOINT_NAMES = ()
    KEYPOINT_FLIP_MAP = ()
    KEYPOINT_SKELETON = ()
    # Heatmap side of the keypoint head (4 * KEYPOINT_POOL_SIZE: deconvolution + upsampling),
    # its RoIAlign size, and its eight 3x3 convolutions' width.
    KEYPOINT_MASK_SHAPE = [56, 56]
    KEYPOINT_POOL_SIZE = 14
    KEYPOINT_HEAD_CONV_CHANNELS = 512
    KEYPOINT_HEAD_CONVS = 8
    # OKS sigmas per keypoint for evaluation (None: COCO's 17 person sigmas when K = 17).
    KEYPOINT_OKS_SIGMAS = None
    # False: no mask head (keypoints only, like torchvision's keypointrcnn); the dataset still
    # gives masks, from which the GT boxes come.
    USE_MASK_HEAD = True

    # --- mrcnn: Mask Scoring R-CNN (Huang et al., CVPR 2019; README "Mask Scoring") ---
    # True adds the MaskIoU head: it regresses the IoU of each predicted mask with its ground
    # truth (loss "mrcnn_maskiou_loss", L2 on positive ROIs), and detect() also returns
    # mask_scores = class score x predicted MaskIoU, by which COCO segm evaluation ranks.
    # Needs the mask head (USE_MASK_HEAD).
    MASK_SCORING = False
    # Width of the MaskIoU head's four 3x3 convolutions and of its two hidden FC layers.
    MASKIOU_CONV_CHANNELS = 256
    MASKIOU_FC_SIZE = 1024

    def __init__(self):
        # A function assigned as a class attribute would bind to the instance: keep it plain.
        for name in ("BACKBONE", "COMPUTE_BACKBONE_SHAPE"):
            value = inspect.getattr_static(self, name)
            if isinstance(value, staticmethod):
                value = value.__func__
            setattr(self, name, value)
        # Copy mutable class attributes so that instances never share them.
        for name in ("LOSS_WEIGHTS", "MEAN_PIXEL", "RPN_BBOX_STD_DEV", "BBOX_STD_DEV",
                     "BACKBONE_STRIDES", "RPN_ANCHOR_RATIOS", "MASK_SHAPE",
                     "KEYPOINT_MASK_SHAPE"):
            setattr(self, name, copy.deepcopy(getattr(self, name)))
        self.MEAN_PIXEL = np.asarray(self.MEAN_PIXEL, dtype=np.float64)
        self.RPN_BBOX_STD_DEV = np.asarray(self.RPN_BBOX_STD_DEV, dtype=np.float64)
        self.BBOX_STD_DEV = np.asarray(self.BBOX_STD_DEV, dtype=np.float64)
        self.validate()
        self.BATCH_SIZE = self.IMAGES_PER_GPU * self.GPU_COUNT
        if self.IMAGE_RESIZE_MODE == "crop":
            side = self.IMAGE_MIN_DIM
        else:
            side = self.IMAGE_MAX_DIM
        self.IMAGE_SHAPE = np.array([side, side, self.IMAGE_CHANNEL_COUNT])
        # image_id(1) + original_image_shape(3) + image_shape(3) + window(4) + scale(1)
        # + active_class_ids(NUM_CLASSES)
        self.IMAGE_META_SIZE = 1 + 3 + 3 + 4 + 1 + self.NUM_CLASSES

    # ------------------------------------------------------------------ validation
    def validate(self):
        """Checks every attribute; raises ConfigError naming the first bad one."""

        def fail(attr, msg):
            raise ConfigError(f"{type(self).__name__}.{attr} = {getattr(self, attr)!r}: {msg}")

        def positive_int(attr, also=()):
            """A positive integer, or one of the values `also`."""
            v = getattr(self, attr)
            if any(v is a or (isinstance(a, str) and v == a) for a in also):
                return
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                fail(attr, "must be a positive integer" + "".join(f" or {a!r}" for a in also))

        def fraction(attr, low_open=False):
            v = getattr(self, attr)
            if not isinstance(v, (int, float, np.floating)) or not (0 <= v <= 1):
                fail(attr, "must be a number in [0, 1]")
            if low_open and v == 0:
                fail(attr, "must be greater than 0")

        if self.NAME is not None and (not isinstance(self.NAME, str) or not self.NAME):
            fail("NAME", "must be a non-empty string")
        for attr in ("CHECKPOINT_EVERY_STEPS", "KEEP_CHECKPOINTS"):
            positive_int(attr, also=(None,))
        positive_int("MAX_NONFINITE_STEPS")
        positive_int("CONV_TILES", also=("auto",))
        for attr in ("GPU_COUNT", "IMAGES_PER_GPU", "STEPS_PER_EPOCH", "VALIDATION_STEPS",
                     "FPN_CLASSIF_FC_LAYERS_SIZE", "TOP_DOWN_PYRAMID_SIZE", "RPN_ANCHOR_STRIDE",
                     "RPN_TRAIN_ANCHORS_PER_IMAGE", "PRE_NMS_LIMIT", "POST_NMS_ROIS_TRAINING",
                     "POST_NMS_ROIS_INFERENCE", "IMAGE_CHANNEL_COUNT", "TRAIN_ROIS_PER_IMAGE",
                     "POOL_SIZE", "MASK_POOL_SIZE", "MAX_GT_INSTANCES", "DETECTION_MAX_INSTANCES",
                     "ROI_ALIGN_SAMPLING_RATIO", "RPN_CONV_CHANNELS", "MASK_HEAD_CHANNELS",
                     "RPN_CONV_DEPTH"):
            positive_int(attr)
        n = self.NUM_CLASSES
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
            fail("NUM_CLASSES", "must be an integer >= 2 (background plus at least one class)")
        if callable(self.BACKBONE):
            if not callable(self.COMPUTE_BACKBONE_SHAPE):
                fail("COMPUTE_BACKBONE_SHAPE", "must be a callable when BACKBONE is a callable")
        elif not isinstance(self.BACKBONE, str) or self.BACKBONE not in BACKBONE_NAMES:
            fail("BACKBONE", f"must be one of {', '.join(map(repr, BACKBONE_NAMES))} or a "
                             "callable")
        if len(self.BACKBONE_STRIDES) != 5:
            fail("BACKBONE_STRIDES", "must give 5 strides, one per pyramid level P2..P6")
        if len(self.RPN_ANCHOR_SCALES) != len(self.BACKBONE_STRIDES):
            fail("RPN_ANCHOR_SCALES",
                 f"must give one scale per pyramid level ({len(self.BACKBONE_STRIDES)})")
        if not self.RPN_ANCHOR_RATIOS or any(r <= 0 for r in self.RPN_ANCHOR_RATIOS):
            fail("RPN_ANCHOR_RATIOS", "must be a non-empty list of positive numbers")
        if any(s <= 0 for s in self.RPN_ANCHOR_SCALES):
            fail("RPN_ANCHOR_SCALES", "must be positive")
        if self.IMAGE_RESIZE_MODE not in RESIZE_MODES:
            fail("IMAGE_RESIZE_MODE", f"must be one of {RESIZE_MODES}")
        positive_int("IMAGE_MAX_DIM")
        if self.IMAGE_RESIZE_MODE in ("square", "crop") or self.IMAGE_MIN_DIM:
            positive_int("IMAGE_MIN_DIM")
        if self.IMAGE_RESIZE_MODE == "square":
            if self.IMAGE_MAX_DIM % 64:
                fail("IMAGE_MAX_DIM", "must be a multiple of 64 (the image is halved 6 times)")
            if self.IMAGE_MIN_DIM > self.IMAGE_MAX_DIM:
                fail("IMAGE_MIN_DIM", f"must not exceed IMAGE_MAX_DIM ({self.IMAGE_MAX_DIM})")
        if self.IMAGE_RESIZE_MODE == "crop" and self.IMAGE_MIN_DIM % 64:
            fail("IMAGE_MIN_DIM", "must be a multiple of 64 in crop mode")
        if self.IMAGE_MIN_SCALE is None or self.IMAGE_MIN_SCALE < 0:
            fail("IMAGE_MIN_SCALE", "must be >= 0")
        if np.size(self.MEAN_PIXEL) != self.IMAGE_CHANNEL_COUNT:
            fail("MEAN_PIXEL", f"must have IMAGE_CHANNEL_COUNT ({self.IMAGE_CHANNEL_COUNT}) values")
        for attr in ("RPN_BBOX_STD_DEV", "BBOX_STD_DEV"):
            v = np.asarray(getattr(self, attr))
            if v.shape != (4,) or np.any(v <= 0):
                fail(attr, "must be 4 positive numbers")
        if list(self.MASK_SHAPE) != [2 * self.MASK_POOL_SIZE] * 2:
            fail("MASK_SHAPE", f"must be [2*MASK_POOL_SIZE]*2 = {[2 * self.MASK_POOL_SIZE] * 2}: "
                               "the mask head upsamples its pooled features once")
        if len(self.MINI_MASK_SHAPE) != 2 or min(self.MINI_MASK_SHAPE) < 1:
            fail("MINI_MASK_SHAPE", "must be (height, width) with positive sizes")
        for attr in ("RPN_NMS_THRESHOLD", "DETECTION_MIN_CONFIDENCE", "DETECTION_NMS_THRESHOLD",
                     "RPN_POSITIVE_IOU", "RPN_NEGATIVE_IOU", "ROI_POSITIVE_IOU",
                     "CROWD_IOU_THRESHOLD", "LEARNING_MOMENTUM"):
            fraction(attr)
        fraction("ROI_POSITIVE_RATIO", low_open=True)
        if self.RPN_NEGATIVE_IOU > self.RPN_POSITIVE_IOU:
            fail("RPN_NEGATIVE_IOU", "must not exceed RPN_POSITIVE_IOU")
        if not self.LEARNING_RATE > 0:
            fail("LEARNING_RATE", "must be > 0")
        if self.WEIGHT_DECAY < 0:
            fail("WEIGHT_DECAY", "must be >= 0")
        if self.GRADIENT_CLIP_NORM is not None and not self.GRADIENT_CLIP_NORM > 0:
            fail("GRADIENT_CLIP_NORM", "must be > 0 or None")
        known = LOSS_NAMES + KEYPOINT_LOSS_NAMES + MASK_SCORING_LOSS_NAMES
        unknown = set(self.LOSS_WEIGHTS) - set(known)
        if unknown:
            fail("LOSS_WEIGHTS", f"unknown loss names {sorted(unknown)}; known: {known}")
        self._validate_keypoints(fail)
        self._validate_mask_scoring(fail)
        if self.TRAIN_BN not in (True, False, None):
            fail("TRAIN_BN", "must be True, False or None")
        if self.ROI_ALIGN_MODE not in ("paper", "matterport", "torchvision"):
            fail("ROI_ALIGN_MODE", "must be 'paper', 'matterport' or 'torchvision'")
        if self.MIXED_PRECISION not in PRECISIONS:
            fail("MIXED_PRECISION", f"must be one of {PRECISIONS}")
        self._validate_architecture_switches(fail)
        if not math.isfinite(float(self.DETECTION_MIN_CONFIDENCE)):
            fail("DETECTION_MIN_CONFIDENCE", "must be finite")

    def _validate_architecture_switches(self, fail):
        for attr in ("RESNET_STRIDE_ON_3X3", "RESNET_SYMMETRIC_PADDING", "RPN_NMS_PER_LEVEL",
                     "HEADS_BATCH_NORM", "DETECTION_PER_CLASS", "XLA", "FPN_BATCH_NORM"):
            if getattr(self, attr) not in (True, False):
                fail(attr, "must be True or False")
        if not isinstance(self.BN_EPSILON, (int, float)) or not self.BN_EPSILON > 0:
            fail("BN_EPSILON", "must be a number > 0")
        choices = {"RPN_ANCHOR_LAYOUT": ("matterport", "torchvision"),
                   "BOX_DECODE_FRAME": ("normalized", "pixels"),
                   "ROI_LEVEL_MAPPER": ("matterport", "torchvision"),
                   "BOX_HEAD": ("2fc", "4conv1fc")}
        for attr, allowed in choices.items():
            if getattr(self, attr) not in allowed:
                fail(attr, f"must be one of {allowed}")
        for attr in ("RPN_MIN_SIZE", "DETECTION_MIN_SIZE"):
            v = getattr(self, attr)
            if not isinstance(v, (int, float)) or v < 0:
                fail(attr, "must be a number >= 0")
        if self.BBOX_DELTA_CLAMP is not None and not (
                isinstance(self.BBOX_DELTA_CLAMP, (int, float)) and self.BBOX_DELTA_CLAMP > 0):
            fail("BBOX_DELTA_CLAMP", "must be None or a number > 0")
        if self.STD_PIXEL is not None:
            v = np.asarray(self.STD_PIXEL, dtype=np.float64)
            if v.size != self.IMAGE_CHANNEL_COUNT or np.any(v <= 0):
                fail("STD_PIXEL", f"must be None or IMAGE_CHANNEL_COUNT "
                                  f"({self.IMAGE_CHANNEL_COUNT}) positive numbers")
        if self.RPN_NMS_PER_LEVEL and self.BOX_DECODE_FRAME != "pixels":
            fail("RPN_NMS_PER_LEVEL", "True needs BOX_DECODE_FRAME = 'pixels'")
        if self.ROI_ALIGN_MODE == "torchvision" and self.BOX_DECODE_FRAME != "pixels":
            fail("ROI_ALIGN_MODE", "'torchvision' needs BOX_DECODE_FRAME = 'pixels'")

    def _validate_keypoints(self, fail):
        k = self.NUM_KEYPOINTS
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 0:
            fail("NUM_KEYPOINTS", "must be an int >= 0")
        if self.KEYPOINT_NAMES and len(self.KEYPOINT_NAMES) != k:
            fail("KEYPOINT_NAMES", f"must name NUM_KEYPOINTS = {k} keypoints (or be empty)")
        for attr in ("KEYPOINT_FLIP_MAP", "KEYPOINT_SKELETON"):
            for pair in getattr(self, attr):
                if len(pair) != 2 or not all(0 <= int(i) < k for i in pair):
                    fail(attr, f"pairs of keypoint indices in [0, {k}) expected, got {pair!r}")
        flipped = [i for pair in self.KEYPOINT_FLIP_MAP for i in pair]
        if len(set(flipped)) != len(flipped):
            fail("KEYPOINT_FLIP_MAP", "a keypoint appears in more than one pair")
        if list(self.KEYPOINT_MASK_SHAPE) != [4 * self.KEYPOINT_POOL_SIZE] * 2:
            fail("KEYPOINT_MASK_SHAPE", f"must be [4*KEYPOINT_POOL_SIZE]*2 = "
                                        f"{[4 * self.KEYPOINT_POOL_SIZE] * 2}: a stride-2 "
                                        "deconvolution and a 2x upsampling")
        for attr in ("KEYPOINT_POOL_SIZE", "KEYPOINT_HEAD_CONV_CHANNELS", "KEYPOINT_HEAD_CONVS"):
            v = getattr(self, attr)
            if not isinstance(v, (int, np.integer)) or v < 1:
                fail(attr, "must be a positive int")
        sigmas = self.KEYPOINT_OKS_SIGMAS
        if sigmas is not None and (len(sigmas) != k or min(sigmas) <= 0):
            fail("KEYPOINT_OKS_SIGMAS", f"must be NUM_KEYPOINTS = {k} positive numbers or None")
        if sigmas is None and k not in (0, 17):
            fail("KEYPOINT_OKS_SIGMAS", f"must be given for NUM_KEYPOINTS = {k} (COCO's "
                                        "sigmas are the default only for its 17 keypoints)")
        if self.USE_MASK_HEAD not in (True, False):
            fail("USE_MASK_HEAD", "must be True or False")
        if not self.USE_MASK_HEAD and k == 0:
            fail("USE_MASK_HEAD", "False needs a keypoint head (NUM_KEYPOINTS > 0)")

    def _validate_mask_scoring(self, fail):
        if not isinstance(self.MASK_SCORING, (bool, np.bool_)):
            fail("MASK_SCORING", "must be True or False")
        if self.MASK_SCORING and not self.USE_MASK_HEAD:
            fail("MASK_SCORING", "True needs the mask head (USE_MASK_HEAD = True): the MaskIoU "
                                 "head scores its masks")
        for attr in ("MASKIOU_CONV_CHANNELS", "MASKIOU_FC_SIZE"):
            v = getattr(self, attr)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                fail(attr, "must be a positive integer")

    # ------------------------------------------------------------------ helpers
    def to_dict(self):
        """All upper-case attributes as a dict of plain Python values (JSON-friendly)."""
        out = {}
        for name in dir(self):
            if not name.isupper() or name.startswith("_"):
                continue
            value = getattr(self, name)
            if callable(value) and name != "BACKBONE":
                continue
            if isinstance(value, np.ndarray):
                value = value.tolist()
            elif isinstance(value, tuple):
                value = list(value)
            elif callable(value):
                value = getattr(value, "__name__", repr(value))
            out[name] = value
        return out

    @classmethod
    def from_dict(cls, values):
        """A Config (subclass of cls) with the given attributes overridden; validated."""
        computed = {"BATCH_SIZE", "IMAGE_SHAPE", "IMAGE_META_SIZE"}
        attrs = {k: v for k, v in values.items() if k not in computed}
        for k in ("MEAN_PIXEL", "RPN_BBOX_STD_DEV", "BBOX_STD_DEV"):
            if k in attrs:
                attrs[k] = np.array(attrs[k])
        return type(cls.__name__, (cls,), attrs)()

    def display(self):
        """Prints every configuration value."""
        print("\nConfigurations:")
        for name, value in sorted(self.to_dict().items()):
            print(f"{name:30} {value}")
        print("\n")
