"""The MaskIoU head of Mask Scoring R-CNN (Huang et al., CVPR 2019): mrcnn_maskiou_* layers."""

import keras
from keras import layers as KL

from mrcnn.layers.graph_utils import TimeDistributed
from mrcnn.layers.mask_scoring import ClassMaskPool

__all__ = ["build_maskiou_graph"]


def build_maskiou_graph(roi_features, masks, class_ids, num_classes, conv_channels=256,
                        fc_size=1024):
    """Predicted MaskIoU of each ROI's mask, per class.

    roi_features: [batch, N, p, p, channels], the mask head's RoIAlign output (roi_align_mask);
    masks: [batch, N, 2p, 2p, num_classes] the mask head's probabilities for the same ROIs;
    class_ids: [batch, N], the class whose mask is scored (GT class in training, detected class
    at inference).
    The paper's head: the class's mask max-pooled to p x p (gradient stopped, ClassMaskPool)
    concatenated with the RoI features, four 3x3 convolutions of conv_channels with ReLU (the
    last with stride 2), two FC layers of fc_size with ReLU and a linear FC layer to
    num_classes.
    Returns mrcnn_maskiou [batch, N, num_classes] float32; the caller takes each ROI's class.
    """
    pooled = ClassMaskPool(name="mrcnn_maskiou_mask_pool")(masks, class_ids)
    x = KL.Concatenate(axis=-1, name="mrcnn_maskiou_concat")([roi_features, pooled])
    # He (MSRA) initialisation, fan-out, as the paper's code (maskrcnn-benchmark).
    init = keras.initializers.VarianceScaling(2.0, mode="fan_out",
                                              distribution="untruncated_normal")
    for i in range(1, 5):
        x = TimeDistributed(KL.Conv2D(conv_channels, (3, 3), strides=2 if i == 4 else 1,
                                      padding="same", activation="relu",
                                      kernel_initializer=init),
                            name=f"mrcnn_maskiou_conv{i}")(x)
    side = x.shape[2] * x.shape[3] * conv_channels
    x = KL.Reshape((-1, side), name="mrcnn_maskiou_flatten")(x)
    for i in (1, 2):
        x = TimeDistributed(KL.Dense(fc_size, activation="relu"), name=f"mrcnn_maskiou_fc{i}")(x)
    # Output in float32 under mixed precision (Config.MIXED_PRECISION), like the other heads.
    return TimeDistributed(
        KL.Dense(num_classes, dtype="float32",
                 kernel_initializer=keras.initializers.RandomNormal(stddev=0.01)),
        dtype="float32", name="mrcnn_maskiou")(x)
