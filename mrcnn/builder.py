"""The only place that reads a Config to build the Keras graph.

build_inference_model(config) and build_training_model(config) return functional keras.Models
whose layer names are matterport's (so weights load by name).
"""

import contextlib
import functools

import keras
from keras import layers as KL

from mrcnn.backbone import ResNetStyle, build_backbone, fpn_graph
from mrcnn.heads.fpn_heads import build_fpn_mask_graph, fpn_classifier_graph
from mrcnn.heads.keypoint_head import build_fpn_keypoint_graph
from mrcnn.heads.mask_iou_head import build_maskiou_graph
from mrcnn.heads.rpn import build_rpn_model
from mrcnn.layers import (
    DetectionLayer,
    DetectionTargetLayer,
    KeypointTargetLayer,
    MaskIoUTargetLayer,
    MaskScores,
    NormBoxes,
    ProposalLayer,
    PyramidAnchors,
    ZeroMasks,
)
from mrcnn.precision import gpu_visible

__all__ = ["build_inference_model", "build_training_model", "TRAINING_OUTPUTS",
           "INFERENCE_OUTPUTS", "KEYPOINT_TRAINING_OUTPUTS", "MASK_SCORING_TRAINING_OUTPUTS",
           "MASK_SCORING_INFERENCE_OUTPUTS", "training_output_names",
           "inference_output_names", "train_bn_flag", "dtype_policy_scope"]

INFERENCE_OUTPUTS = ["mrcnn_detection", "mrcnn_class", "mrcnn_bbox", "mrcnn_mask", "ROI",
                     "rpn_class", "rpn_bbox"]
TRAINING_OUTPUTS = ["rpn_class_logits", "rpn_class", "rpn_bbox", "mrcnn_class_logits",
                    "mrcnn_class", "mrcnn_bbox", "mrcnn_mask", "rpn_rois", "output_rois",
                    "target_class_ids", "target_bbox", "target_mask"]
# Appended to the training outputs when Config.NUM_KEYPOINTS > 0.
KEYPOINT_TRAINING_OUTPUTS = ["mrcnn_keypoint", "target_keypoint_indices",
                             "target_keypoint_valid"]
# Appended (after the keypoint outputs) when Config.MASK_SCORING is True.
MASK_SCORING_TRAINING_OUTPUTS = ["mrcnn_maskiou", "target_maskiou"]
MASK_SCORING_INFERENCE_OUTPUTS = ["mrcnn_maskiou", "mrcnn_mask_scores"]
MASK_OUTPUTS = ("mrcnn_mask", "target_mask")


def training_output_names(config):
    """Names of the training model's outputs, in order: TRAINING_OUTPUTS (without the mask
    head's when USE_MASK_HEAD is False), then KEYPOINT_TRAINING_OUTPUTS with keypoints, then
    MASK_SCORING_TRAINING_OUTPUTS with MASK_SCORING: mrcnn_maskiou [batch, R, classes] and
    target_maskiou [batch, R] on the R ROIs the mask head sees."""
    names = [n for n in TRAINING_OUTPUTS if config.USE_MASK_HEAD or n not in MASK_OUTPUTS]
    names += KEYPOINT_TRAINING_OUTPUTS if config.NUM_KEYPOINTS else []
    return names + (MASK_SCORING_TRAINING_OUTPUTS if config.MASK_SCORING else [])


def inference_output_names(config):
    """Names of the inference model's outputs: INFERENCE_OUTPUTS, then "mrcnn_keypoint"
    [batch, DETECTION_MAX_INSTANCES, S, S, K] heatmap logits with keypoints, then with
    MASK_SCORING "mrcnn_maskiou" [batch, DETECTION_MAX_INSTANCES, classes] (predicted MaskIoU)
    and "mrcnn_mask_scores" [batch, DETECTION_MAX_INSTANCES] (class score x predicted MaskIoU
    of the detected class, 0 for padding). Without the mask head, mrcnn_mask is still an
    output: zeros [batch, DETECTION_MAX_INSTANCES, 28, 28, classes] so that detect() keeps one
    shape."""
    names = INFERENCE_OUTPUTS + (["mrcnn_keypoint"] if config.NUM_KEYPOINTS else [])
    return names + (MASK_SCORING_INFERENCE_OUTPUTS if config.MASK_SCORING else [])


def _mask_head(config, rois, feature_maps, image_meta):
    """The mask head and its RoI features (the MaskIoU head reads them)."""
    return build_fpn_mask_graph(rois, feature_maps, image_meta, config.MASK_POOL_SIZE,
                                config.NUM_CLASSES, return_features=True,
                                channels=config.MASK_HEAD_CHANNELS, **_heads_kwargs(config))


def _keypoint_head(config, rois, feature_maps, image_meta):
    return build_fpn_keypoint_graph(
        rois, feature_maps, image_meta, config.NUM_KEYPOINTS,
        pool_size=config.KEYPOINT_POOL_SIZE, conv_channels=config.KEYPOINT_HEAD_CONV_CHANNELS,
        num_convs=config.KEYPOINT_HEAD_CONVS, roi_align_mode=config.ROI_ALIGN_MODE,
        sampling_ratio=config.ROI_ALIGN_SAMPLING_RATIO, level_mapper=config.ROI_LEVEL_MAPPER,
        sampler=roi_sampler(config))


def _maskiou_head(config, roi_features, masks, class_ids):
    return build_maskiou_graph(roi_features, masks, class_ids, config.NUM_CLASSES,
                               conv_channels=config.MASKIOU_CONV_CHANNELS,
                               fc_size=config.MASKIOU_FC_SIZE)


def train_bn_flag(config):
    """Config.TRAIN_BN -> whether BatchNorm layers train (False freezes them)."""
    return config.TRAIN_BN is not False


@contextlib.contextmanager
def dtype_policy_scope(name):
    """Layers created inside use the Keras dtype policy `name` (None: "float32"); the global
    policy is restored on exit, so building a mixed-precision model changes nothing else."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name or "float32")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _with_config_precision(build):
    """Builds under the dtype policy of Config.MIXED_PRECISION."""

    @functools.wraps(build)
    def wrapper(config):
        with dtype_policy_scope(config.MIXED_PRECISION):
            return build(config)

    return wrapper


def _check_image_shape(config):
    h, w = config.IMAGE_SHAPE[:2]
    if config.IMAGE_RESIZE_MODE in ("square", "crop") and (h % 64 or w % 64):
        raise ValueError("Image size must be divisible by 64 (2^6): use sizes such as 256, "
                         f"320, 384, 448, 512, ... got {h}x{w}")


def _image_inputs(config):
    input_image = keras.Input(shape=[None, None, config.IMAGE_CHANNEL_COUNT], name="input_image")
    input_image_meta = keras.Input(shape=[config.IMAGE_META_SIZE], name="input_image_meta")
    return input_image, input_image_meta


def conv_tiles(config):
    """Config.CONV_TILES resolved: "auto" is 2 in float32 where TensorFlow sees no GPU, else 1
    (measured on CPUs: 10% faster inference and 5-7% faster training at float32, inference
    8-15% slower in bfloat16; README, Speed)."""
    if config.CONV_TILES != "auto":
        return int(config.CONV_TILES)
    return 1 if config.MIXED_PRECISION or gpu_visible() else 2


def _backbone_rpn(config, input_image, tiles=1):
    """Backbone, FPN and RPN. Returns (rpn_feature_maps, mrcnn_feature_maps, rpn outputs).
    tiles: the FPN's and RPN's 3x3 convs run on tiles x tiles tiles (forward pass only)."""
    train_bn = train_bn_flag(config)
    style = ResNetStyle(stride_on_3x3=config.RESNET_STRIDE_ON_3X3,
                        symmetric_padding=config.RESNET_SYMMETRIC_PADDING,
                        bn_epsilon=config.BN_EPSILON)
    C2, C3, C4, C5 = build_backbone(input_image, config.BACKBONE, train_bn, style)
    P2, P3, P4, P5, P6 = fpn_graph(C2, C3, C4, C5, config.TOP_DOWN_PYRAMID_SIZE, tiles,
                                   batch_norm=config.FPN_BATCH_NORM, train_bn=train_bn,
                                   bn_epsilon=config.BN_EPSILON)
    rpn_feature_maps = [P2, P3, P4, P5, P6]
    mrcnn_feature_maps = [P2, P3, P4, P5]
    rpn = build_rpn_model(config.RPN_ANCHOR_STRIDE, len(config.RPN_ANCHOR_RATIOS),
                          config.TOP_DOWN_PYRAMID_SIZE, config.RPN_CONV_CHANNELS, tiles,
                          config.RPN_CONV_DEPTH)
    level_outputs = [rpn([p]) for p in rpn_feature_maps]
    names = ["rpn_class_logits", "rpn_class", "rpn_bbox"]
    # float32 under mixed precision: proposals and losses read them.
    rpn_outputs = [KL.Concatenate(axis=1, dtype="float32", name=n)([lo[i] for lo in level_outputs])
                   for i, n in enumerate(names)]
    return rpn_feature_maps, mrcnn_feature_maps, rpn_outputs


def _heads_kwargs(config):
    return {"train_bn": train_bn_flag(config), "roi_align_mode": config.ROI_ALIGN_MODE,
            "sampling_ratio": config.ROI_ALIGN_SAMPLING_RATIO,
            "level_mapper": config.ROI_LEVEL_MAPPER, "batch_norm": config.HEADS_BATCH_NORM,
            "bn_epsilon": config.BN_EPSILON,
            "sampler": roi_sampler(config)}


def roi_sampler(config):
    """PyramidROIAlign's and DetectionTargetLayer's sampler: "gather" when Config.XLA (TF has
    no XLA kernel for CropAndResize), else tf.image.crop_and_resize."""
    return "gather" if config.XLA else "crop_and_resize"


def mask_sampling(config):
    """DetectionTargetLayer's mask_sampling: mask targets are sampled where RoIAlign pools the
    mask head's features: matterport's grid with ROI_ALIGN_MODE "matterport", else the centres
    of the mask's bins ("paper"; torchvision's RoIAlign bins are within half a pixel)."""
    return "matterport" if config.ROI_ALIGN_MODE == "matterport" else "paper"


def _proposal_layer(config, proposal_count):
    return ProposalLayer(
        proposal_count=proposal_count, nms_threshold=config.RPN_NMS_THRESHOLD,
        pre_nms_limit=config.PRE_NMS_LIMIT, rpn_bbox_std_dev=config.RPN_BBOX_STD_DEV,
        decode_frame=config.BOX_DECODE_FRAME,
        num_levels=len(config.BACKBONE_STRIDES) if config.RPN_NMS_PER_LEVEL else None,
        min_size=config.RPN_MIN_SIZE, delta_clamp=config.BBOX_DELTA_CLAMP, name="ROI")


def _pyramid_anchors(config, input_image, return_levels=False):
    return PyramidAnchors(config.RPN_ANCHOR_SCALES, config.RPN_ANCHOR_RATIOS,
                          config.BACKBONE_STRIDES, config.RPN_ANCHOR_STRIDE,
                          layout=config.RPN_ANCHOR_LAYOUT, return_levels=return_levels,
                          name="anchors")(input_image)


def _proposals(config, proposal_count, rpn_class, rpn_bbox, anchors, input_image,
               input_image_meta):
    """ROI proposals. Matterport's configuration uses `anchors` (None: computed in the graph);
    torchvision's (anchor layout, pixel frame, per-level NMS) computes the anchors and their
    levels in the graph from the image size, and reads the image window from the meta."""
    if (config.RPN_ANCHOR_LAYOUT == "matterport" and not config.RPN_NMS_PER_LEVEL
            and config.BOX_DECODE_FRAME == "normalized"):
        if anchors is None:
            anchors = _pyramid_anchors(config, input_image)
        return _proposal_layer(config, proposal_count)(rpn_class, rpn_bbox, anchors)
    anchors, levels = _pyramid_anchors(config, input_image, return_levels=True)
    return _proposal_layer(config, proposal_count)(rpn_class, rpn_bbox, anchors,
                                                   input_image_meta, levels)


@_with_config_precision
def build_inference_model(config):
    """Inference graph.

    Inputs: input_image [batch, h, w, C] (molded), input_image_meta [batch, IMAGE_META_SIZE],
    input_anchors [batch, anchors, 4] normalized.
    Outputs (INFERENCE_OUTPUTS): detections [batch, DETECTION_MAX_INSTANCES, (y1, x1, y2, x2,
    class_id, score)] normalized, mrcnn_class [batch, N, classes], mrcnn_bbox [batch, N, classes,
    4], mrcnn_mask [batch, DETECTION_MAX_INSTANCES, 28, 28, classes], rpn_rois [batch, N, 4],
    rpn_class [batch, anchors, 2], rpn_bbox [batch, anchors, 4].
    """
    _check_image_shape(config)
    input_image, input_image_meta = _image_inputs(config)
    input_anchors = keras.Input(shape=[None, 4], name="input_anchors")
    _, mrcnn_feature_maps, (rpn_class_logits, rpn_class, rpn_bbox) = _backbone_rpn(
        config, input_image, conv_tiles(config))
    rpn_rois = _proposals(config, config.POST_NMS_ROIS_INFERENCE, rpn_class, rpn_bbox,
                          input_anchors, input_image, input_image_meta)
    _, mrcnn_class, mrcnn_bbox = fpn_classifier_graph(
        rpn_rois, mrcnn_feature_maps, input_image_meta, config.POOL_SIZE, config.NUM_CLASSES,
        fc_layers_size=config.FPN_CLASSIF_FC_LAYERS_SIZE, head=config.BOX_HEAD,
        **_heads_kwargs(config))
    detections = DetectionLayer(
        max_instances=config.DETECTION_MAX_INSTANCES,
        min_confidence=config.DETECTION_MIN_CONFIDENCE,
        nms_threshold=config.DETECTION_NMS_THRESHOLD, bbox_std_dev=config.BBOX_STD_DEV,
        per_class=config.DETECTION_PER_CLASS, min_size=config.DETECTION_MIN_SIZE,
        delta_clamp=config.BBOX_DELTA_CLAMP, name="mrcnn_detection")(
        rpn_rois, mrcnn_class, mrcnn_bbox, input_image_meta)
    detection_boxes = detections[..., :4]
    if config.USE_MASK_HEAD:
        mrcnn_mask, mask_features = _mask_head(config, detection_boxes, mrcnn_feature_maps,
                                               input_image_meta)
    else:
        mrcnn_mask = ZeroMasks(config.MASK_SHAPE, config.NUM_CLASSES, name="mrcnn_mask")(
            detection_boxes)
    outputs = [detections, mrcnn_class, mrcnn_bbox, mrcnn_mask, rpn_rois, rpn_class, rpn_bbox]
    if config.NUM_KEYPOINTS:
        outputs.append(_keypoint_head(config, detection_boxes, mrcnn_feature_maps,
                                      input_image_meta))
    if config.MASK_SCORING:
        # Each detection's mask of its detected class is scored.
        mrcnn_maskiou = _maskiou_head(config, mask_features, mrcnn_mask, detections[..., 4])
        outputs += [mrcnn_maskiou,
                    MaskScores(name="mrcnn_mask_scores")(detections, mrcnn_maskiou)]
    return keras.Model([input_image, input_image_meta, input_anchors], outputs, name="mask_rcnn")


@_with_config_precision
def build_training_model(config):
    """Training graph.

    Inputs: input_image, input_image_meta, input_rpn_match [batch, anchors, 1] int32,
    input_rpn_bbox [batch, RPN_TRAIN_ANCHORS_PER_IMAGE, 4], input_gt_class_ids [batch,
    MAX_GT_INSTANCES] int32, input_gt_boxes [batch, MAX_GT_INSTANCES, 4] pixels,
    input_gt_masks [batch, h, w, MAX_GT_INSTANCES] bool (mini masks when USE_MINI_MASK), and
    input_roi [batch, POST_NMS_ROIS_TRAINING, 4] pixels when USE_RPN_ROIS is False.
    Outputs: the tensors named by training_output_names(config), in that order; mrcnn.losses
    turns them into the five losses (and those of the optional heads). Unlike matterport,
    mrcnn_mask covers only the first int(TRAIN_ROIS_PER_IMAGE * ROI_POSITIVE_RATIO) ROIs, where
    all positive ROIs are.
    """
    _check_image_shape(config)
    input_image, input_image_meta = _image_inputs(config)
    input_rpn_match = keras.Input(shape=[None, 1], name="input_rpn_match", dtype="int32")
    input_rpn_bbox = keras.Input(shape=[None, 4], name="input_rpn_bbox", dtype="float32")
    input_gt_class_ids = keras.Input(shape=[None], name="input_gt_class_ids", dtype="int32")
    input_gt_boxes = keras.Input(shape=[None, 4], name="input_gt_boxes", dtype="float32")
    if config.USE_MINI_MASK:
        mask_shape = [config.MINI_MASK_SHAPE[0], config.MINI_MASK_SHAPE[1], None]
    else:
        mask_shape = [int(config.IMAGE_SHAPE[0]), int(config.IMAGE_SHAPE[1]), None]
    input_gt_masks = keras.Input(shape=mask_shape, name="input_gt_masks", dtype="bool")
    inputs = [input_image, input_image_meta, input_rpn_match, input_rpn_bbox,
              input_gt_class_ids, input_gt_boxes, input_gt_masks]
    gt_boxes = NormBoxes(name="norm_gt_boxes")(input_gt_boxes, input_image)

    _, mrcnn_feature_maps, (rpn_class_logits, rpn_class, rpn_bbox) = _backbone_rpn(
        config, input_image, conv_tiles(config))
    rpn_rois = _proposals(config, config.POST_NMS_ROIS_TRAINING, rpn_class, rpn_bbox, None,
                          input_image, input_image_meta)
    if config.USE_RPN_ROIS:
        target_rois = rpn_rois
    else:
        input_rois = keras.Input(shape=[config.POST_NMS_ROIS_TRAINING, 4], name="input_roi",
                                 dtype="int32")
        inputs.append(input_rois)
        target_rois = NormBoxes(name="norm_input_roi")(input_rois, input_image)

    rois, target_class_ids, target_bbox, target_mask = DetectionTargetLayer(
        train_rois_per_image=config.TRAIN_ROIS_PER_IMAGE,
        roi_positive_ratio=config.ROI_POSITIVE_RATIO, bbox_std_dev=config.BBOX_STD_DEV,
        mask_shape=config.MASK_SHAPE, use_mini_mask=config.USE_MINI_MASK,
        positive_iou=config.ROI_POSITIVE_IOU, crowd_iou=config.CROWD_IOU_THRESHOLD,
        sampler=roi_sampler(config), mask_sampling=mask_sampling(config),
        name="proposal_targets")(target_rois, input_gt_class_ids, gt_boxes, input_gt_masks,
                                 input_image)
    mrcnn_class_logits, mrcnn_class, mrcnn_bbox = fpn_classifier_graph(
        rois, mrcnn_feature_maps, input_image_meta, config.POOL_SIZE, config.NUM_CLASSES,
        fc_layers_size=config.FPN_CLASSIF_FC_LAYERS_SIZE, head=config.BOX_HEAD,
        **_heads_kwargs(config))
    # DetectionTargetLayer puts the positive ROIs first, so the first int(T * ratio) rows hold
    # every ROI that has a mask target: the mask head runs on those only (its loss ignores the
    # rest), about a third of matterport's mask-head work in training.
    mask_rows = max(int(config.TRAIN_ROIS_PER_IMAGE * config.ROI_POSITIVE_RATIO), 1)
    output_rois = KL.Identity(dtype="float32", name="output_rois")(rois)
    named = {"rpn_class_logits": rpn_class_logits, "rpn_class": rpn_class, "rpn_bbox": rpn_bbox,
             "mrcnn_class_logits": mrcnn_class_logits, "mrcnn_class": mrcnn_class,
             "mrcnn_bbox": mrcnn_bbox, "rpn_rois": rpn_rois, "output_rois": output_rois,
             "target_class_ids": target_class_ids, "target_bbox": target_bbox,
             "target_mask": target_mask}
    if config.USE_MASK_HEAD:
        named["mrcnn_mask"], mask_features = _mask_head(config, rois[:, :mask_rows],
                                                        mrcnn_feature_maps, input_image_meta)
    if config.MASK_SCORING:
        # Each positive ROI's mask of its GT class is scored, against its IoU with the mask
        # target (MaskIoUTargetLayer); negatives have no target (their loss weight is 0).
        named["mrcnn_maskiou"] = _maskiou_head(config, mask_features, named["mrcnn_mask"],
                                               target_class_ids[:, :mask_rows])
        named["target_maskiou"] = MaskIoUTargetLayer(name="maskiou_targets")(
            named["mrcnn_mask"], target_mask, target_class_ids)
    if config.NUM_KEYPOINTS:
        # Pixel keypoints of the molded image, like input_gt_boxes.
        input_gt_keypoints = keras.Input(shape=[None, config.NUM_KEYPOINTS, 3],
                                         name="input_gt_keypoints", dtype="float32")
        inputs.append(input_gt_keypoints)
        named["target_keypoint_indices"], named["target_keypoint_valid"] = KeypointTargetLayer(
            config.KEYPOINT_MASK_SHAPE[0], name="keypoint_targets")(
            rois, target_class_ids, input_gt_class_ids, gt_boxes, input_gt_keypoints,
            input_image)
        # Like the mask head, on the rows where the positive ROIs are.
        named["mrcnn_keypoint"] = _keypoint_head(config, rois[:, :mask_rows],
                                                 mrcnn_feature_maps, input_image_meta)
    outputs = [named[n] for n in training_output_names(config)]
    return keras.Model(inputs, outputs, name="mask_rcnn")
