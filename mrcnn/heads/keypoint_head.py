"""Keypoint head (He et al. 2017, §5 and Appendix): K heatmaps of 56 x 56 per ROI."""

import keras
from keras import layers as KL

from mrcnn.layers.graph_utils import TimeDistributed
from mrcnn.layers.roi_align import PyramidROIAlign

__all__ = ["build_fpn_keypoint_graph"]


def build_fpn_keypoint_graph(rois, feature_maps, image_meta, num_keypoints, pool_size=14,
                             conv_channels=512, num_convs=8, roi_align_mode="paper",
                             sampling_ratio=2, level_mapper="matterport",
                             sampler="crop_and_resize"):
    """Keypoint heatmap logits on pooled ROI features.

    rois: [batch, N, (y1, x1, y2, x2)] normalized; feature_maps: [P2, P3, P4, P5].
    The paper's head: RoIAlign pool_size x pool_size on the ROI's FPN level, num_convs 3x3
    convolutions of conv_channels with ReLU, a stride-2 4x4 deconvolution to num_keypoints
    maps and a 2x bilinear upsampling: 4 * pool_size cells a side (56 for pool_size 14).
    Returns [batch, N, 4 * pool_size, 4 * pool_size, num_keypoints] float32 logits (a spatial
    softmax per keypoint is applied by the loss and at decoding).
    """
    x = PyramidROIAlign((pool_size, pool_size), mode=roi_align_mode,
                        sampling_ratio=sampling_ratio, level_mapper=level_mapper,
                        sampler=sampler, name="roi_align_keypoint")(
        rois, image_meta, feature_maps)
    # He (MSRA) initialisation, fan-out, as the paper's Detectron code.
    init = keras.initializers.VarianceScaling(2.0, mode="fan_out",
                                              distribution="untruncated_normal")
    for i in range(1, num_convs + 1):
        x = TimeDistributed(KL.Conv2D(conv_channels, (3, 3), padding="same", activation="relu",
                                      kernel_initializer=init),
                            name=f"mrcnn_keypoint_conv{i}")(x)
    x = TimeDistributed(KL.Conv2DTranspose(num_keypoints, (4, 4), strides=2, padding="same",
                                           kernel_initializer=init),
                        name="mrcnn_keypoint_deconv")(x)
    # Logits are float32 under mixed precision (Config.MIXED_PRECISION), like the other outputs.
    x = TimeDistributed(KL.UpSampling2D(2, interpolation="bilinear", dtype="float32"),
                        dtype="float32", name="mrcnn_keypoint")(x)
    return x
