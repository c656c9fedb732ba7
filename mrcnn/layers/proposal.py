"""ProposalLayer: turns RPN scores and deltas into a fixed number of proposals per image."""

import keras
import numpy as np
import tensorflow as tf

from mrcnn.layers.graph_utils import Float32Layer
from mrcnn.ops.boxes import apply_box_deltas_graph, batched_nms_graph, clip_boxes_graph

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

    Call arguments:
        rpn_probs: [batch, anchors, (bg prob, fg prob)]
        rpn_bbox: [batch, anchors, (dy, dx, log(dh), log(dw))]
        anchors: [batch, anchors, (y1, x1, y2, x2)], normalized coordinates.

    Returns:
        [batch, proposal_count, (y1, x1, y2, x2)], normalized, by descending score, zero-padded.
    """

    def __init__(self, proposal_count, nms_threshold, pre_nms_limit=6000,
                 rpn_bbox_std_dev=(0.1, 0.1, 0.2, 0.2), **kwargs):
        super().__init__(**kwargs)
        self.proposal_count = int(proposal_count)
        self.nms_threshold = float(nms_threshold)
        self.pre_nms_limit = int(pre_nms_limit)
        self.rpn_bbox_std_dev = [float(v) for v in np.ravel(rpn_bbox_std_dev)]

    def call(self, rpn_probs, rpn_bbox, anchors):
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

    def compute_output_shape(self, rpn_probs_shape, rpn_bbox_shape, anchors_shape):
        return (rpn_probs_shape[0], self.proposal_count, 4)

    def get_config(self):
        config = super().get_config()
        config.update({"proposal_count": self.proposal_count,
                       "nms_threshold": self.nms_threshold,
                       "pre_nms_limit": self.pre_nms_limit,
                       "rpn_bbox_std_dev": self.rpn_bbox_std_dev})
        return config
