"""ProposalLayer: turns RPN scores and deltas into a fixed number of proposals per image."""

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

FRAMES = ("normalized", "pixels")

__all__ = ["ProposalLayer"]


@keras.saving.register_keras_serializable(package="mrcnn")
class ProposalLayer(Float32Layer):
    """Selects RPN proposals: top-k anchors by score, apply deltas, clip, NMS, zero-pad.

    Vectorized over the batch (no per-image Python loop; the batch size may be dynamic).

    Args:
        proposal_count: int. Proposals kept per image after NMS (POST_NMS_ROIS_*).
        nms_threshold: float. IoU threshold of the NMS (RPN_NMS_THRESHOLD).
        pre_nms_limit: int. Anchors kept by score before NMS (PRE_NMS_LIMIT).
        rpn_bbox_std_dev: 4 floats. Delta de-normalization (RPN_BBOX_STD_DEV).
        decode_frame: "normalized" (matterport: deltas on normalized boxes, clip to [0, 1]) or
            "pixels" (torchvision: deltas on pixel boxes, clip to the image window; needs
            image_meta) (BOX_DECODE_FRAME).
        num_levels: int or None. When given, pre_nms_limit applies per pyramid level and NMS
            runs within each level (torchvision; RPN_NMS_PER_LEVEL); needs anchor_levels.
        min_size: float. Proposals narrower or lower than this many pixels ("pixels" frame) are
            dropped (RPN_MIN_SIZE).
        delta_clamp: float or None. Cap of log(dh), log(dw) (BBOX_DELTA_CLAMP).

    Call arguments:
        rpn_probs: [batch, anchors, (bg prob, fg prob)]
        rpn_bbox: [batch, anchors, (dy, dx, log(dh), log(dw))]
        anchors: [batch, anchors, (y1, x1, y2, x2)], normalized coordinates.
        image_meta: [batch, meta_size] (needed by the "pixels" frame).
        anchor_levels: [batch, anchors] int, pyramid level index of each anchor (per-level
            mode).

    Returns:
        [batch, proposal_count, (y1, x1, y2, x2)], normalized, by descending score, zero-padded.
    """

    def __init__(self, proposal_count, nms_threshold, pre_nms_limit=6000,
                 rpn_bbox_std_dev=(0.1, 0.1, 0.2, 0.2), decode_frame="normalized",
                 num_levels=None, min_size=0.0, delta_clamp=None, **kwargs):
        super().__init__(**kwargs)
        self.proposal_count = int(proposal_count)
        self.nms_threshold = float(nms_threshold)
        self.pre_nms_limit = int(pre_nms_limit)
        self.rpn_bbox_std_dev = [float(v) for v in np.ravel(rpn_bbox_std_dev)]
        if decode_frame not in FRAMES:
            raise ValueError(f"decode_frame must be one of {FRAMES}, got {decode_frame!r}")
        self.decode_frame = decode_frame
        self.num_levels = None if num_levels is None else int(num_levels)
        self.min_size = float(min_size)
        self.delta_clamp = None if delta_clamp is None else float(delta_clamp)

    def call(self, rpn_probs, rpn_bbox, anchors, image_meta=None, anchor_levels=None):
        if self.decode_frame == "pixels" or self.num_levels is not None:
            return self._call_pixels(rpn_probs, rpn_bbox, anchors, image_meta, anchor_levels)
        scores = rpn_probs[:, :, 1]
        deltas = rpn_bbox * tf.constant(self.rpn_bbox_std_dev, tf.float32)
        k = tf.minimum(self.pre_nms_limit, tf.shape(anchors)[1])
        scores, ix = tf.math.top_k(scores, k, sorted=True, name="top_anchors")
        deltas = tf.gather(deltas, ix, batch_dims=1)
        pre_nms_anchors = tf.gather(tf.cast(anchors, tf.float32), ix, batch_dims=1)
        boxes = apply_box_deltas_graph(pre_nms_anchors, deltas)
        boxes = clip_boxes_graph(boxes, tf.constant([0.0, 0.0, 1.0, 1.0]))
        indices, valid = batched_nms_graph(boxes, scores, self.proposal_count,
                                           self.nms_threshold, score_threshold=0.0)
        proposals = tf.gather(boxes, indices, batch_dims=1)
        return proposals * tf.cast(valid, proposals.dtype)[..., None]

    def _top_anchors(self, scores, anchor_levels):
        """Indices [batch, K] of the candidate anchors and their validity [batch, K]."""
        n = tf.shape(scores)[1]
        if self.num_levels is None:
            _, ix = tf.math.top_k(scores, tf.minimum(self.pre_nms_limit, n), sorted=True)
            return ix, tf.ones_like(ix, dtype=tf.bool)
        if anchor_levels is None:
            raise ValueError("ProposalLayer with num_levels needs anchor_levels")
        levels = tf.cast(anchor_levels, tf.int32)
        ixs, valids = [], []
        for level in range(self.num_levels):
            masked = tf.where(tf.equal(levels, level), scores, tf.fill(tf.shape(scores), -2.0))
            top, ix = tf.math.top_k(masked, tf.minimum(self.pre_nms_limit, n), sorted=True)
            ixs.append(ix)
            valids.append(top > -1.5)
        return tf.concat(ixs, axis=1), tf.concat(valids, axis=1)

    def _call_pixels(self, rpn_probs, rpn_bbox, anchors, image_meta, anchor_levels):
        """Proposals as torchvision's RPN.filter_proposals computes them (see the class doc)."""
        if image_meta is None:
            raise ValueError("ProposalLayer in the 'pixels' frame needs image_meta")
        meta = parse_image_meta_graph(image_meta)
        image_shape = meta["image_shape"][:, :2]
        scores = rpn_probs[:, :, 1]
        ix, valid = self._top_anchors(scores, anchor_levels)
        scores = tf.gather(scores, ix, batch_dims=1)
        deltas = tf.gather(rpn_bbox, ix, batch_dims=1) * tf.constant(self.rpn_bbox_std_dev)
        deltas = clamp_log_deltas_graph(deltas, self.delta_clamp)
        boxes = normalized_to_pixels_graph(tf.gather(anchors, ix, batch_dims=1), image_shape)
        boxes = apply_box_deltas_graph(boxes, deltas)
        boxes = clip_boxes_graph(boxes, tf.cast(meta["window"], tf.float32))
        valid = valid & ~small_boxes_graph(boxes, self.min_size)
        scores = tf.where(valid, scores, -tf.ones_like(scores))
        classes = None
        if self.num_levels is not None:
            classes = tf.gather(tf.cast(anchor_levels, tf.int32), ix, batch_dims=1)
        scale = pixel_frame_scale_graph(image_shape)
        indices, keep = batched_nms_graph(boxes / scale, scores, self.proposal_count,
                                          self.nms_threshold, score_threshold=0.0,
                                          classes=classes)
        proposals = norm_boxes_graph(tf.gather(boxes, indices, batch_dims=1), image_shape)
        return proposals * tf.cast(keep, proposals.dtype)[..., None]

    def compute_output_shape(self, rpn_probs_shape, rpn_bbox_shape, anchors_shape,
                             image_meta_shape=None, anchor_levels_shape=None):
        return (rpn_probs_shape[0], self.proposal_count, 4)

    def get_config(self):
        config = super().get_config()
        config.update({"proposal_count": self.proposal_count,
                       "nms_threshold": self.nms_threshold,
                       "pre_nms_limit": self.pre_nms_limit,
                       "rpn_bbox_std_dev": self.rpn_bbox_std_dev,
                       "decode_frame": self.decode_frame, "num_levels": self.num_levels,
                       "min_size": self.min_size, "delta_clamp": self.delta_clamp})
        return config
