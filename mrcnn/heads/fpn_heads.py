"""Box classifier/regressor head and mask head (mrcnn_* layer names)."""

from keras import layers as KL

from mrcnn.layers.graph_utils import BatchNorm, TimeDistributed
from mrcnn.layers.roi_align import PyramidROIAlign

__all__ = ["fpn_classifier_graph", "build_fpn_mask_graph"]


def _maybe_bn(x, name, train_bn, batch_norm, epsilon):
    if not batch_norm:
        return x
    return TimeDistributed(BatchNorm(frozen=not train_bn, epsilon=epsilon), name=name)(x)


def fpn_classifier_graph(rois, feature_maps, image_meta, pool_size, num_classes, train_bn=True,
                         fc_layers_size=1024, roi_align_mode="paper", sampling_ratio=2,
                         level_mapper="matterport", batch_norm=True,
                         sampler="crop_and_resize", head="2fc", bn_epsilon=1e-3):
    """Classifier and box regressor on pooled ROI features.

    rois: [batch, N, (y1, x1, y2, x2)] normalized; feature_maps: [P2, P3, P4, P5].
    roi_align_mode, sampling_ratio, level_mapper, sampler: see PyramidROIAlign. bn_epsilon:
    the BatchNorm layers' epsilon (Config.BN_EPSILON).
    head (Config.BOX_HEAD): "2fc", matterport's two FC layers (mrcnn_class_conv1/conv2), each
    followed by BatchNorm (mrcnn_class_bn1/bn2) unless batch_norm is False
    (Config.HEADS_BATCH_NORM; torchvision's TwoMLPHead); "4conv1fc", four 3x3 convs of the
    pooled features' width (mrcnn_box_conv1..4), each followed by BatchNorm (mrcnn_box_bn1..4,
    the convs then bias-free) if batch_norm, then one FC layer without BatchNorm
    (mrcnn_class_conv1): torchvision's FastRCNNConvFCHead of Mask R-CNN v2.
    Returns mrcnn_class_logits [batch, N, num_classes], mrcnn_probs [batch, N, num_classes],
    mrcnn_bbox [batch, N, num_classes, (dy, dx, log(dh), log(dw))].
    """
    x = PyramidROIAlign((pool_size, pool_size), mode=roi_align_mode,
                        sampling_ratio=sampling_ratio, level_mapper=level_mapper,
                        sampler=sampler, name="roi_align_classifier")(
        rois, image_meta, feature_maps)
    if head == "4conv1fc":
        for i in range(1, 5):
            x = TimeDistributed(KL.Conv2D(x.shape[-1], (3, 3), padding="same",
                                          use_bias=not batch_norm), name=f"mrcnn_box_conv{i}")(x)
            x = _maybe_bn(x, f"mrcnn_box_bn{i}", train_bn, batch_norm, bn_epsilon)
            x = KL.Activation("relu")(x)
    # 1024-wide "FC" layers, as convolutions (a kernel over the whole pooled map is an FC
    # layer on the features flattened in (y, x, channel) order).
    x = TimeDistributed(KL.Conv2D(fc_layers_size, (pool_size, pool_size), padding="valid"),
                        name="mrcnn_class_conv1")(x)
    if head == "2fc":
        x = _maybe_bn(x, "mrcnn_class_bn1", train_bn, batch_norm, bn_epsilon)
        x = KL.Activation("relu")(x)
        x = TimeDistributed(KL.Conv2D(fc_layers_size, (1, 1)), name="mrcnn_class_conv2")(x)
        x = _maybe_bn(x, "mrcnn_class_bn2", train_bn, batch_norm, bn_epsilon)
    x = KL.Activation("relu")(x)
    shared = KL.Reshape((-1, fc_layers_size), name="pool_squeeze")(x)
    mrcnn_class_logits = TimeDistributed(KL.Dense(num_classes), name="mrcnn_class_logits")(shared)
    mrcnn_probs = TimeDistributed(KL.Activation("softmax", dtype="float32"), dtype="float32",
                                  name="mrcnn_class")(mrcnn_class_logits)
    x = TimeDistributed(KL.Dense(num_classes * 4, activation="linear"), name="mrcnn_bbox_fc")(
        shared)
    mrcnn_bbox = KL.Reshape((-1, num_classes, 4), name="mrcnn_bbox")(x)
    return mrcnn_class_logits, mrcnn_probs, mrcnn_bbox


def build_fpn_mask_graph(rois, feature_maps, image_meta, pool_size, num_classes, train_bn=True,
                         roi_align_mode="paper", sampling_ratio=2, level_mapper="matterport",
                         batch_norm=True, return_features=False, channels=256,
                         sampler="crop_and_resize", bn_epsilon=1e-3):
    """Mask head: per-class sigmoid masks of size 2 * pool_size.

    channels: width of the four 3x3 convs and the deconv (Config.MASK_HEAD_CHANNELS).
    batch_norm: False leaves out mrcnn_mask_bn1..4 (torchvision's v1 MaskRCNNHeads); their
    epsilon is bn_epsilon (Config.BN_EPSILON).
    Returns [batch, N, 2 * pool_size, 2 * pool_size, num_classes] probabilities; with
    return_features also the RoI features [batch, N, pool_size, pool_size, channels] (the
    roi_align_mask output, which the MaskIoU head reads).
    """
    x = features = PyramidROIAlign((pool_size, pool_size), mode=roi_align_mode,
                                   sampling_ratio=sampling_ratio, level_mapper=level_mapper,
                                   sampler=sampler, name="roi_align_mask")(
        rois, image_meta, feature_maps)
    for i in range(1, 5):
        x = TimeDistributed(KL.Conv2D(channels, (3, 3), padding="same"),
                            name=f"mrcnn_mask_conv{i}")(x)
        x = _maybe_bn(x, f"mrcnn_mask_bn{i}", train_bn, batch_norm, bn_epsilon)
        x = KL.Activation("relu")(x)
    x = TimeDistributed(KL.Conv2DTranspose(channels, (2, 2), strides=2, activation="relu"),
                        name="mrcnn_mask_deconv")(x)
    # Output layers compute in float32 under mixed precision (Config.MIXED_PRECISION).
    x = TimeDistributed(KL.Conv2D(num_classes, (1, 1), strides=1, activation="sigmoid",
                                  dtype="float32"), dtype="float32", name="mrcnn_mask")(x)
    return (x, features) if return_features else x
