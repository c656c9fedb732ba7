"""The Mask R-CNN losses (the paper's five, the keypoint head's and the MaskIoU head's), as plain
TensorFlow
functions (batched, no Python loops).

Each returns a scalar float32; a loss with nothing to average over (e.g. no positive ROIs)
returns 0, never NaN.
"""

import tensorflow as tf

__all__ = ["smooth_l1_loss", "rpn_class_loss_graph", "rpn_bbox_loss_graph",
           "mrcnn_class_loss_graph", "mrcnn_bbox_loss_graph", "mrcnn_mask_loss_graph",
           "mrcnn_keypoint_loss_graph", "mrcnn_maskiou_loss_graph", "l2_weight_decay"]


def smooth_l1_loss(y_true, y_pred):
    """Elementwise smooth-L1 (Huber with delta 1): 0.5 d^2 if |d| < 1 else |d| - 0.5."""
    diff = tf.abs(tf.cast(y_true, tf.float32) - tf.cast(y_pred, tf.float32))
    less_than_one = tf.cast(diff < 1.0, tf.float32)
    return (less_than_one * 0.5 * diff ** 2) + (1 - less_than_one) * (diff - 0.5)


def _masked_mean(values, weights):
    """sum(values * weights) / sum(weights), the denominator summed over all replicas.

    Under tf.distribute each replica returns its share of the global-batch mean, so the sum of
    the replicas' losses (and of their gradients) is exactly the single-device value. Outside
    a strategy this is the plain weighted mean.
    """
    values = tf.cast(values, tf.float32)
    weights = tf.cast(weights, tf.float32)
    total = tf.reduce_sum(weights)
    ctx = tf.distribute.get_replica_context()
    if ctx is not None and ctx.num_replicas_in_sync > 1:
        total = ctx.all_reduce(tf.distribute.ReduceOp.SUM, total)
    return tf.math.divide_no_nan(tf.reduce_sum(values * weights), total)


def rpn_class_loss_graph(rpn_match, rpn_class_logits):
    """RPN anchor classifier loss: softmax cross-entropy over non-neutral anchors.

    rpn_match: [batch, anchors, 1] or [batch, anchors]; 1 positive, -1 negative, 0 neutral.
    rpn_class_logits: [batch, anchors, 2] (background, foreground) logits.
    """
    rpn_match = tf.cast(rpn_match, tf.int32)
    if rpn_match.shape.rank == 3:
        rpn_match = rpn_match[..., 0]
    labels = tf.cast(tf.equal(rpn_match, 1), tf.int32)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=labels, logits=tf.cast(rpn_class_logits, tf.float32))
    return _masked_mean(ce, tf.not_equal(rpn_match, 0))


def rpn_bbox_loss_graph(config, target_bbox, rpn_match, rpn_bbox):
    """RPN box regression loss: smooth-L1 over positive anchors, mean over their coordinates.

    config: unused (matterport's signature). target_bbox: [batch, max_positives, (dy, dx,
    log(dh), log(dw))], the targets of the positive anchors in anchor order, zero-padded;
    rpn_match: [batch, anchors, 1]; rpn_bbox: [batch, anchors, 4] predictions.
    """
    del config
    rpn_match = tf.cast(rpn_match, tf.int32)
    if rpn_match.shape.rank == 3:
        rpn_match = rpn_match[..., 0]
    positive = tf.equal(rpn_match, 1)
    # The k-th positive anchor of an image owns row k of its target_bbox.
    row = tf.cumsum(tf.cast(positive, tf.int32), axis=1) - 1
    rows = tf.shape(target_bbox)[1]
    positive = positive & (row < rows)
    targets = tf.gather(target_bbox, tf.clip_by_value(row, 0, tf.maximum(rows - 1, 0)),
                        batch_dims=1)
    loss = smooth_l1_loss(targets, rpn_bbox)  # [B, A, 4]
    weights = tf.tile(tf.cast(positive, tf.float32)[..., None], [1, 1, 4])
    return _masked_mean(loss, weights)


def mrcnn_class_loss_graph(target_class_ids, pred_class_logits, active_class_ids,
                           roi_weights=None):
    """Classifier head loss: softmax cross-entropy over the sampled ROIs.

    target_class_ids: [batch, rois] int; pred_class_logits: [batch, rois, num_classes];
    active_class_ids: [batch, num_classes], 1 for the classes of each image's dataset (a
    prediction of a class not in the image's source is not penalised), per image;
    roi_weights: optional [batch, rois], 0 for zero-padding ROIs (which would otherwise be
    counted as background).
    """
    target_class_ids = tf.cast(target_class_ids, tf.int32)
    logits = tf.cast(pred_class_logits, tf.float32)
    pred_class_ids = tf.argmax(logits, axis=-1, output_type=tf.int32)
    pred_active = tf.gather(tf.cast(active_class_ids, tf.float32), pred_class_ids, batch_dims=1)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=target_class_ids, logits=logits)
    weights = pred_active if roi_weights is None else pred_active * tf.cast(roi_weights,
                                                                            tf.float32)
    return _masked_mean(ce, weights)


def mrcnn_bbox_loss_graph(target_bbox, target_class_ids, pred_bbox):
    """Box head loss: smooth-L1 of the target class's deltas over positive ROIs.

    target_bbox: [batch, rois, 4]; target_class_ids: [batch, rois]; pred_bbox: [batch, rois,
    num_classes, 4].
    """
    target_class_ids = tf.cast(target_class_ids, tf.int32)
    positive = target_class_ids > 0
    pred = tf.gather(tf.cast(pred_bbox, tf.float32), tf.maximum(target_class_ids, 0),
                     batch_dims=2)  # [B, R, 4]
    loss = smooth_l1_loss(target_bbox, pred)
    weights = tf.tile(tf.cast(positive, tf.float32)[..., None], [1, 1, 4])
    return _masked_mean(loss, weights)


def mrcnn_mask_loss_graph(target_masks, target_class_ids, pred_masks):
    """Mask head loss: per-pixel binary cross-entropy of the target class's sigmoid mask, mean
    over the pixels of positive ROIs.

    target_masks: [batch, rois, height, width] in {0, 1}; target_class_ids: [batch, rois];
    pred_masks: [batch, rois, height, width, num_classes] probabilities.
    """
    target_class_ids = tf.cast(target_class_ids, tf.int32)
    positive = tf.cast(target_class_ids > 0, tf.float32)
    pred = tf.transpose(tf.cast(pred_masks, tf.float32), [0, 1, 4, 2, 3])  # [B, R, C, h, w]
    pred = tf.gather(pred, tf.maximum(target_class_ids, 0), batch_dims=2)  # [B, R, h, w]
    eps = 1e-7
    pred = tf.clip_by_value(pred, eps, 1.0 - eps)
    y = tf.cast(target_masks, tf.float32)
    bce = -(y * tf.math.log(pred) + (1.0 - y) * tf.math.log(1.0 - pred))
    weights = positive[..., None, None] * tf.ones_like(bce)
    return _masked_mean(bce, weights)


def mrcnn_keypoint_loss_graph(target_indices, target_valid, target_class_ids, pred_logits):
    """Keypoint head loss (paper §5): for each labelled keypoint of a positive ROI, softmax
    cross-entropy over the S*S cells of its heatmap, the target being the keypoint's one-hot
    cell. Normalised by the number of such keypoints in the (global) batch, as detectron2 does.

    target_indices: [batch, rois, K] int, cell index row * S + column;
    target_valid: [batch, rois, K] bool, labelled and inside the ROI;
    target_class_ids: [batch, rois] int, > 0 for positive ROIs;
    pred_logits: [batch, rois, S, S, K] heatmap logits.
    """
    shape = tf.shape(pred_logits)
    logits = tf.transpose(tf.cast(pred_logits, tf.float32), [0, 1, 4, 2, 3])  # [B, R, K, S, S]
    logits = tf.reshape(logits, [shape[0], shape[1], shape[4], shape[2] * shape[3]])
    rows = tf.shape(logits)[1]
    target_indices = tf.cast(target_indices[:, :rows], tf.int32)
    positive = tf.cast(target_class_ids[:, :rows], tf.int32) > 0
    weights = tf.cast(target_valid[:, :rows], tf.bool) & positive[..., None]
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=target_indices, logits=logits)
    return _masked_mean(ce, weights)


def mrcnn_maskiou_loss_graph(target_maskiou, target_class_ids, pred_maskiou):
    """MaskIoU head loss (Mask Scoring R-CNN): squared error between the predicted MaskIoU of
    each positive ROI's GT class and its target, mean over the positive ROIs (0 without any;
    negatives contribute nothing).

    target_maskiou: [batch, rois] (MaskIoUTargetLayer); target_class_ids: [batch, rois'] int
    with rois' >= rois (only the first rois rows are read), > 0 for positive ROIs;
    pred_maskiou: [batch, rois, num_classes].
    """
    rows = tf.shape(pred_maskiou)[1]
    class_ids = tf.cast(target_class_ids[:, :rows], tf.int32)
    pred = tf.gather(tf.cast(pred_maskiou, tf.float32), tf.maximum(class_ids, 0),
                     batch_dims=2)  # [B, R]
    squared = tf.square(pred - tf.cast(target_maskiou[:, :rows], tf.float32))
    return _masked_mean(squared, class_ids > 0)


def l2_weight_decay(variables, weight_decay):
    """0.5 * weight_decay * sum of squared weights, BatchNorm gamma and beta excluded.

    This is the paper's SGD weight decay (gradient weight_decay * w). matterport divided each
    term by the weight's size, which made the decay negligible for large layers.
    """
    terms = [tf.reduce_sum(tf.square(tf.cast(v.value, tf.float32))) for v in variables
             if v.name.split("/")[-1].split(":")[0] not in ("gamma", "beta")]
    if not terms or weight_decay == 0:
        return tf.constant(0.0)
    return 0.5 * weight_decay * tf.add_n(terms)
