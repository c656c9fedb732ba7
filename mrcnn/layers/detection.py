"""DetectionLayer: classified, refined, per-class NMS'd detections for inference."""

import keras
import numpy as np
import tensorflow as tf

from mrcnn.layers.graph_utils import (
    Float32Layer,
    clamp_log_deltas_graph,
    pixel_frame_scale_graph,
    small_boxes_graph,
)
from mrcnn.ops.boxes import (
    apply_box_deltas_graph,
    batched_nms_graph,
    clip_boxes_graph,
    norm_boxes_graph,
    normalized_to_pixels_graph,
)
from mrcnn.ops.image_meta import parse_image_meta_graph

__all__ = ["DetectionLayer", "refine_detections_graph", "refine_detections_per_class_graph"]


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


def refine_detections_per_class_graph(pixel_rois, probs, deltas, pixel_window, max_instances,
                                      min_confidence, nms_threshold, bbox_std_dev,
                                      image_shape, min_size=0.0, delta_clamp=None):
    """Detections as torchvision's RoIHeads.postprocess_detections computes them (batched).

    pixel_rois: [batch, N, (y1, x1, y2, x2)] pixels, zero rows are padding; probs: [batch, N,
    num_classes]; deltas: [batch, N, num_classes, (dy, dx, log(dh), log(dw))]; pixel_window:
    [batch, (y1, x1, y2, x2)] pixels; image_shape: [batch, (height, width)] molded.

    Every ROI is refined with every class's deltas (log sizes capped at delta_clamp) and
    clipped to the window; every (ROI, class > 0) pair whose score exceeds min_confidence
    (strictly) and whose box is at least min_size pixels high and wide is a candidate; NMS per
    class; the max_instances best remain.
    Returns [batch, max_instances, (y1, x1, y2, x2, class_id, score)] with pixel boxes,
    zero-padded.
    """
    num_classes = tf.shape(probs)[2]
    deltas = clamp_log_deltas_graph(deltas * tf.constant(bbox_std_dev, tf.float32), delta_clamp)
    boxes = apply_box_deltas_graph(pixel_rois[:, :, None, :], deltas)[:, :, 1:]
    window = tf.cast(pixel_window, tf.float32)[:, None, None, :]
    boxes = clip_boxes_graph(boxes, window)
    scores = probs[:, :, 1:]
    class_ids = tf.broadcast_to(tf.range(1, num_classes)[None, None, :], tf.shape(scores))
    roi_nonempty = tf.reduce_sum(tf.abs(pixel_rois), axis=-1) > 0
    keep = (scores > min_confidence) & roi_nonempty[:, :, None] & \
        ~small_boxes_graph(boxes, min_size)
    batch = tf.shape(probs)[0]
    boxes = tf.reshape(boxes, [batch, -1, 4])
    scores = tf.reshape(tf.where(keep, scores, -tf.ones_like(scores)), [batch, -1])
    class_ids = tf.reshape(class_ids, [batch, -1])
    scale = pixel_frame_scale_graph(image_shape)
    indices, valid = batched_nms_graph(boxes / scale, scores, max_instances, nms_threshold,
                                       score_threshold=0.0, classes=class_ids)
    out = tf.concat([
        tf.gather(boxes, indices, batch_dims=1),
        tf.cast(tf.gather(class_ids, indices, batch_dims=1), tf.float32)[..., None],
        tf.gather(scores, indices, batch_dims=1)[..., None],
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
        per_class: bool (DETECTION_PER_CLASS). True: torchvision's post-processing
            (refine_detections_per_class_graph, in pixels); False: matterport's, one class per
            ROI (refine_detections_graph, on normalized boxes).
        min_size: float, pixels (DETECTION_MIN_SIZE; per_class only).
        delta_clamp: float or None (BBOX_DELTA_CLAMP; per_class only).

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
                 bbox_std_dev=(0.1, 0.1, 0.2, 0.2), per_class=False, min_size=0.0,
                 delta_clamp=None, **kwargs):
        super().__init__(**kwargs)
        self.max_instances = int(max_instances)
        self.min_confidence = float(min_confidence)
        self.nms_threshold = float(nms_threshold)
        self.bbox_std_dev = [float(v) for v in np.ravel(bbox_std_dev)]
        self.per_class = bool(per_class)
        self.min_size = float(min_size)
        self.delta_clamp = None if delta_clamp is None else float(delta_clamp)

    def call(self, rois, mrcnn_class, mrcnn_bbox, image_meta):
        meta = parse_image_meta_graph(image_meta)
        if self.per_class:
            image_shape = meta["image_shape"][:, :2]
            out = refine_detections_per_class_graph(
                normalized_to_pixels_graph(rois, image_shape), mrcnn_class, mrcnn_bbox,
                meta["window"], self.max_instances, self.min_confidence, self.nms_threshold,
                self.bbox_std_dev, image_shape, self.min_size, self.delta_clamp)
            boxes = norm_boxes_graph(out[..., :4], image_shape)
            valid = tf.cast(out[..., 5:] > 0, tf.float32)
            return tf.concat([boxes * valid, out[..., 4:]], axis=-1)
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
                       "nms_threshold": self.nms_threshold, "bbox_std_dev": self.bbox_std_dev,
                       "per_class": self.per_class, "min_size": self.min_size,
                       "delta_clamp": self.delta_clamp})
        return config
