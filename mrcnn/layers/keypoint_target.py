"""KeypointTargetLayer: heatmap targets of the keypoint head for the sampled training ROIs."""

import keras
import tensorflow as tf

from mrcnn.layers.graph_utils import Float32Layer
from mrcnn.ops.boxes import normalized_to_pixels_graph, overlaps_graph
from mrcnn.ops.keypoints import keypoints_to_heatmap_indices_graph

__all__ = ["KeypointTargetLayer", "keypoint_targets_graph"]


def keypoint_targets_graph(rois, target_class_ids, gt_class_ids, gt_boxes, gt_keypoints,
                           image_shape, heatmap_size):
    """Batched keypoint targets (vectorized over the batch).

    rois: [batch, T, (y1, x1, y2, x2)] normalized, DetectionTargetLayer's sampled ROIs.
    target_class_ids: [batch, T] int, > 0 for positive ROIs.
    gt_class_ids: [batch, G] int (0 padding, negative crowds); gt_boxes: [batch, G, (y1, x1, y2,
    x2)] normalized; gt_keypoints: [batch, G, K, (x, y, v)] pixels of the molded image.
    image_shape: (height, width) of the molded images.

    Each positive ROI belongs to the non-crowd GT box it overlaps most: the same arg-max as
    DetectionTargetLayer, so it is the GT whose class and box it was given. Its ROI is turned
    into pixels (the inverse of norm_boxes: y1 * (h - 1), y2 * (h - 1) + 1) and that GT's
    keypoints into heatmap cells (ops.keypoints).
    Returns indices [batch, T, K] int32 and valid [batch, T, K] bool (False for negatives).
    """
    rois = tf.cast(rois, tf.float32)
    gt_boxes = tf.cast(gt_boxes, tf.float32)
    gt_class_ids = tf.cast(gt_class_ids, tf.int32)
    gt_area = (gt_boxes[..., 2] - gt_boxes[..., 0]) * (gt_boxes[..., 3] - gt_boxes[..., 1])
    non_crowd = (gt_class_ids > 0) & (gt_area > 0)
    overlaps = overlaps_graph(rois, gt_boxes)  # [B, T, G]
    overlaps = tf.where(non_crowd[:, None, :], overlaps, -tf.ones_like(overlaps))
    gt_ix = tf.argmax(overlaps, axis=-1, output_type=tf.int32)
    keypoints = tf.gather(tf.cast(gt_keypoints, tf.float32), gt_ix, batch_dims=1)  # [B,T,K,3]
    pixel_rois = normalized_to_pixels_graph(rois, image_shape)
    indices, valid = keypoints_to_heatmap_indices_graph(keypoints, pixel_rois, heatmap_size)
    positive = tf.cast(target_class_ids, tf.int32) > 0
    valid = valid & positive[..., None]
    indices = tf.where(valid, indices, tf.zeros_like(indices))
    return tf.stop_gradient(indices), tf.stop_gradient(valid)


@keras.saving.register_keras_serializable(package="mrcnn")
class KeypointTargetLayer(Float32Layer):
    """Heatmap-cell targets of the keypoint head for DetectionTargetLayer's ROIs.

    Args:
        heatmap_size: int, the heatmap side S (KEYPOINT_MASK_SHAPE[0]).

    Call arguments:
        rois: [batch, T, (y1, x1, y2, x2)] normalized; target_class_ids: [batch, T] int32;
        gt_class_ids: [batch, MAX_GT_INSTANCES] int32; gt_boxes: [batch, MAX_GT_INSTANCES,
        (y1, x1, y2, x2)] normalized; gt_keypoints: [batch, MAX_GT_INSTANCES, K, (x, y, v)]
        pixels; image: [batch, height, width, channels], the molded images.

    Returns target_keypoint_indices [batch, T, K] int32 (row * S + column) and
    target_keypoint_valid [batch, T, K] bool (see keypoint_targets_graph).
    """

    def __init__(self, heatmap_size, **kwargs):
        super().__init__(**kwargs)
        self.heatmap_size = int(heatmap_size)

    def call(self, rois, target_class_ids, gt_class_ids, gt_boxes, gt_keypoints, image):
        return keypoint_targets_graph(rois, target_class_ids, gt_class_ids, gt_boxes,
                                      gt_keypoints, tf.shape(image)[1:3], self.heatmap_size)

    def compute_output_spec(self, rois, target_class_ids, gt_class_ids, gt_boxes, gt_keypoints,
                            image):
        shape = (rois.shape[0], rois.shape[1], gt_keypoints.shape[2])
        return keras.KerasTensor(shape, "int32"), keras.KerasTensor(shape, "bool")

    def get_config(self):
        config = super().get_config()
        config.update({"heatmap_size": self.heatmap_size})
        return config
