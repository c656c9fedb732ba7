"""DetectionLayer: classified, refined, per-class NMS'd detections for inference."""

import keras
import numpy as np
import tensorflow as tf

from mrcnn.layers.graph_utils import Float32Layer
from mrcnn.ops.boxes import (
    apply_box_deltas_graph,
    batched_nms_graph,
    clip_boxes_graph,
    norm_boxes_graph,
)
from mrcnn.ops.image_meta import parse_image_meta_graph

__all__ = ["DetectionLayer", "refine_detections_graph"]


def refine_detections_graph(rois, probs, deltas, window, max_instances, min_confidence,
                            nms_threshold, bbox_std_dev):
    """Batched detection refinement (vectorized; no static batch size needed).

    rois: [batch, N, (y1, x1, y2, x2)] normalized; probs: [batch, N, num_classes];
    deltas: [batch, N, num_classes, (dy, dx, log(dh), log(dw))]; window: [batch, (y1, x1, y2, x2)]
    normalized, the part of each image that is not padding.

    Each ROI takes its most probable class. Background, scores below min_confidence and empty
    ROIs are dropped; the class-specific deltas refine the box, which is clipped to the window;
    per-class NMS; the max_instances best remain.
    Returns [batch, max_instances, (y1, x1, y2, x2, class_id, score)], normalized, zero-padded.
    """
    class_ids = tf.argmax(probs, axis=-1, output_type=tf.int32)
    class_scores = tf.gather(probs, class_ids, batch_dims=2)
    class_deltas = tf.gather(deltas, class_ids, batch_dims=2)
    refined = apply_box_deltas_graph(rois, class_deltas * tf.constant(bbox_std_dev, tf.float32))
    refined = clip_boxes_graph(refined, window)
    roi_nonempty = tf.reduce_sum(tf.abs(rois), axis=-1) > 0
    keep = (class_ids > 0) & (class_scores >= min_confidence) & roi_nonempty
    scores = tf.where(keep, class_scores, -tf.ones_like(class_scores))
    indices, valid = batched_nms_graph(refined, scores, max_instances, nms_threshold,
                                       score_threshold=min_confidence, classes=class_ids)
    out = tf.concat([
        tf.gather(refined, indices, batch_dims=1),
        tf.cast(tf.gather(class_ids, indices, batch_dims=1), tf.float32)[..., None],
        tf.gather(class_scores, indices, batch_dims=1)[..., None],
    ], axis=-1)
    return out * tf.cast(valid, tf.float32)[..., None]


@keras.saving.register_keras_serializable(package="mrcnn")
class DetectionLayer(Float32Layer):
    """Final detections from the classifier head's outputs (see refine_detections_graph).

    Args:
        max_instances: int (DETECTION_MAX_INSTANCES).
        min_confidence: float (DETECTION_MIN_CONFIDENCE).
        nms_threshold: float (DETECTION_NMS_THRESHOLD).
        bbox_std_dev: 4 floats (BBOX_STD_DEV).

    Call arguments:
        rois: [batch, N, (y1, x1, y2, x2)] normalized proposals.
        mrcnn_class: [batch, N, num_classes] probabilities.
        mrcnn_bbox: [batch, N, num_classes, (dy, dx, log(dh), log(dw))].
        image_meta: [batch, meta_size].

    Returns:
        [batch, max_instances, (y1, x1, y2, x2, class_id, score)], normalized, zero-padded.
        The batch size is dynamic (matterport reshaped to config.BATCH_SIZE).
    """

    def __init__(self, max_instances=100, min_confidence=0.7, nms_threshold=0.3,
                 bbox_std_dev=(0.1, 0.1, 0.2, 0.2), **kwargs):
        super().__init__(**kwargs)
        self.max_instances = int(max_instances)
        self.min_confidence = float(min_confidence)
        self.nms_threshold = float(nms_threshold)
        self.bbox_std_dev = [float(v) for v in np.ravel(bbox_std_dev)]

    def call(self, rois, mrcnn_class, mrcnn_bbox, image_meta):
        meta = parse_image_meta_graph(image_meta)
        window = norm_boxes_graph(meta["window"][:, None, :], meta["image_shape"][:, :2])[:, 0]
        return refine_detections_graph(rois, mrcnn_class, mrcnn_bbox, window, self.max_instances,
                                       self.min_confidence, self.nms_threshold, self.bbox_std_dev)

    def compute_output_shape(self, rois_shape, mrcnn_class_shape, mrcnn_bbox_shape,
                             image_meta_shape):
        return (rois_shape[0], self.max_instances, 6)

    def get_config(self):
        config = super().get_config()
        config.update({"max_instances": self.max_instances,
                       "min_confidence": self.min_confidence,
                       "nms_threshold": self.nms_threshold, "bbox_std_dev": self.bbox_std_dev})
        return config
