"""Small Keras layers that replace matterport's Lambda layers and wrappers.

All are registered serializable under the package name "mrcnn".
"""

import keras
import numpy as np
import tensorflow as tf

from mrcnn.ops.anchors import generate_pyramid_anchors_graph
from mrcnn.ops.boxes import norm_boxes_graph

__all__ = ["Float32Layer", "BatchNorm", "TimeDistributed", "NormBoxes", "PyramidAnchors",
           "pyramid_anchors_graph", "pixel_frame_scale_graph",
           "clamp_log_deltas_graph", "small_boxes_graph", "ZeroMasks"]


class Float32Layer(keras.layers.Layer):
    """Base of the box-geometry layers (proposals, RoIAlign, targets, detections, anchors):
    they compute in float32 whatever the dtype policy (Config.MIXED_PRECISION), so boxes, NMS
    and sampling coordinates never lose precision. Keras casts their floating inputs to float32.
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)


@keras.saving.register_keras_serializable(package="mrcnn")
class BatchNorm(keras.layers.BatchNormalization):
    """BatchNormalization that can be frozen for good.

    Args:
        frozen: bool. True: always normalizes with the moving statistics and never trains gamma or
            beta, whatever `trainable` is later set to by MaskRCNN.set_trainable. This is what
            Config.TRAIN_BN = False means (batches of 1-2 images make batch statistics useless).
    """

    def __init__(self, frozen=False, **kwargs):
        super().__init__(**kwargs)
        self.frozen = bool(frozen)
        if self.frozen:
            self.trainable = False

    def call(self, inputs, training=None, **kwargs):
        if self.frozen:
            training = False
        return super().call(inputs, training=training, **kwargs)

    def get_config(self):
        config = super().get_config()
        config.update({"frozen": self.frozen})
        return config


@keras.saving.register_keras_serializable(package="mrcnn")
class TimeDistributed(keras.layers.TimeDistributed):
    """Applies a layer to every ROI of [batch, num_rois, ...] by folding ROIs into the batch.

    Keras 3's TimeDistributed loops over the time axis; for hundreds of ROIs one reshape is much
    faster. The inner layer's input shape past the first two axes must be static.
    """

    def call(self, inputs, training=None, mask=None):
        shape = tf.shape(inputs)
        inner = tuple(inputs.shape[2:])
        x = tf.reshape(inputs, (-1,) + inner)
        kwargs = {"training": training} if self.layer._call_has_training_arg else {}
        y = self.layer(x, **kwargs)
        return tf.reshape(y, tf.concat([shape[:2], tf.shape(y)[1:]], axis=0))

    def compute_output_shape(self, input_shape):
        return super().compute_output_shape(input_shape)


@keras.saving.register_keras_serializable(package="mrcnn")
class NormBoxes(Float32Layer):
    """Pixel boxes -> normalized boxes, using the image tensor's height and width.

    Call arguments:
        boxes: [batch, N, (y1, x1, y2, x2)] in pixels.
        image: [batch, height, width, channels].
    Returns [batch, N, (y1, x1, y2, x2)] normalized (ops.boxes convention).
    """

    def call(self, boxes, image):
        return norm_boxes_graph(boxes, tf.shape(image)[1:3])

    def compute_output_shape(self, boxes_shape, image_shape):
        return boxes_shape


def pyramid_anchors_graph(image, scales, ratios, feature_strides, anchor_stride,
                          layout="matterport", return_levels=False):
    """Normalized anchors for images [batch, h, w, C]: [batch, anchors, (y1, x1, y2, x2)];
    with return_levels also [batch, anchors] int32 pyramid level index of each anchor."""
    hw = tf.shape(image)[1:3]
    anchors, levels = generate_pyramid_anchors_graph(hw, scales, ratios, feature_strides,
                                                     anchor_stride, layout, return_levels=True)
    anchors = norm_boxes_graph(anchors, hw)
    batch = tf.shape(image)[0]
    anchors = tf.tile(anchors[None], [batch, 1, 1])
    if return_levels:
        return anchors, tf.tile(levels[None], [batch, 1])
    return anchors


@keras.saving.register_keras_serializable(package="mrcnn")
class PyramidAnchors(Float32Layer):
    """Anchors for the input image's size, computed in the graph and tiled over the batch.

    Args:
        scales, ratios, feature_strides, anchor_stride: as Config.RPN_ANCHOR_SCALES,
            RPN_ANCHOR_RATIOS, BACKBONE_STRIDES, RPN_ANCHOR_STRIDE.
        layout: Config.RPN_ANCHOR_LAYOUT ("matterport" or "torchvision", see ops.anchors).
        return_levels: also return the pyramid level index of each anchor.
    Call arguments:
        image: [batch, height, width, channels].
    Returns [batch, anchors, (y1, x1, y2, x2)] normalized, and with return_levels
    [batch, anchors] int32 level indices (0 = first level).
    """

    def __init__(self, scales, ratios, feature_strides, anchor_stride, layout="matterport",
                 return_levels=False, **kwargs):
        super().__init__(**kwargs)
        self.scales = [float(s) for s in scales]
        self.ratios = [float(r) for r in ratios]
        self.feature_strides = [int(s) for s in feature_strides]
        self.anchor_stride = int(anchor_stride)
        self.layout = str(layout)
        self.return_levels = bool(return_levels)

    def call(self, image):
        return pyramid_anchors_graph(image, self.scales, self.ratios, self.feature_strides,
                                     self.anchor_stride, self.layout, self.return_levels)

    def compute_output_shape(self, image_shape):
        shape = self._anchors_shape(image_shape)
        if self.return_levels:
            return shape, shape[:2]
        return shape

    def _anchors_shape(self, image_shape):
        h, w = image_shape[1], image_shape[2]
        if h is None or w is None:
            return (image_shape[0], None, 4)
        per_cell = len(self.ratios)
        count = 0
        for s in self.feature_strides:
            fh, fw = -(-h // s), -(-w // s)
            count += int(np.ceil(fh / self.anchor_stride) * np.ceil(fw / self.anchor_stride))
        return (image_shape[0], count * per_cell, 4)

    def get_config(self):
        config = super().get_config()
        config.update({"scales": self.scales, "ratios": self.ratios,
                       "feature_strides": self.feature_strides,
                       "anchor_stride": self.anchor_stride, "layout": self.layout,
                       "return_levels": self.return_levels})
        return config


def pixel_frame_scale_graph(image_shape):
    """[batch, 1, (h, w, h, w)] float32: divides pixel boxes into [0, 1] for NMS (a per-axis
    scale, so IoUs are those of the pixel boxes)."""
    shape = tf.cast(image_shape, tf.float32)
    h, w = shape[:, 0], shape[:, 1]
    return tf.stack([h, w, h, w], axis=-1)[:, None, :]


def clamp_log_deltas_graph(deltas, clamp):
    """Caps the log(dh), log(dw) parts of de-normalized deltas [..., 4] at clamp (None: as
    is), as torchvision's BoxCoder does before exp()."""
    if clamp is None:
        return deltas
    return tf.concat([deltas[..., :2], tf.minimum(deltas[..., 2:], float(clamp))], axis=-1)


def small_boxes_graph(boxes, min_size):
    """bool [...]: boxes [..., (y1, x1, y2, x2)] narrower or lower than min_size."""
    return ((boxes[..., 2] - boxes[..., 0]) < min_size) | \
        ((boxes[..., 3] - boxes[..., 1]) < min_size)


@keras.saving.register_keras_serializable(package="mrcnn")
class ZeroMasks(Float32Layer):
    """All-zero mask probabilities for models without a mask head (Config.USE_MASK_HEAD False),
    so that the inference outputs keep one layout.

    Args:
        mask_shape: (height, width) (MASK_SHAPE); num_classes: int (NUM_CLASSES).
    Call arguments:
        boxes: [batch, N, (y1, x1, y2, x2)].
    Returns [batch, N, height, width, num_classes] zeros.
    """

    def __init__(self, mask_shape, num_classes, **kwargs):
        super().__init__(**kwargs)
        self.mask_shape = [int(v) for v in mask_shape]
        self.num_classes = int(num_classes)

    def call(self, boxes):
        shape = tf.shape(boxes)
        return tf.zeros(tf.concat([shape[:2], self.mask_shape, [self.num_classes]], 0))

    def compute_output_shape(self, boxes_shape):
        return tuple(boxes_shape[:2]) + tuple(self.mask_shape) + (self.num_classes,)

    def get_config(self):
        config = super().get_config()
        config.update({"mask_shape": self.mask_shape, "num_classes": self.num_classes})
        return config
