"""The layers of Mask Scoring R-CNN (Huang et al., CVPR 2019) around its MaskIoU head:
ClassMaskPool (the head's mask input), MaskIoUTargetLayer (its regression targets) and
MaskScores (class score x predicted MaskIoU of the detections)."""

import keras
import tensorflow as tf

from mrcnn.layers.graph_utils import Float32Layer

__all__ = ["MaskIoUTargetLayer", "ClassMaskPool", "MaskScores", "maskiou_targets_graph",
           "select_class_masks_graph", "mask_scores_graph"]


def select_class_masks_graph(masks, class_ids):
    """Each ROI's mask of one class (vectorized over the batch).

    masks: [batch, N, height, width, num_classes]; class_ids: [batch, N] (int, or float as in
    the detections; negatives and 0 select channel 0, the background's).
    Returns [batch, N, height, width] in the dtype of masks.
    """
    class_ids = tf.maximum(tf.cast(class_ids, tf.int32), 0)
    per_class = tf.transpose(masks, [0, 1, 4, 2, 3])  # [B, N, C, h, w]
    return tf.gather(per_class, class_ids, batch_dims=2)


def maskiou_targets_graph(pred_masks, target_masks, target_class_ids, threshold=0.5):
    """IoU between each positive ROI's binarised predicted mask of its GT class and its mask
    target, on the ROI's mask grid.

    pred_masks: [batch, R, h, w, num_classes] probabilities (the mask head's output on the first
    R sampled ROIs); target_masks: [batch, T, h, w] in {0, 1} (T >= R, DetectionTargetLayer's
    targets, cropped to the ROI); target_class_ids: [batch, T] int, > 0 for positive ROIs.
    Both masks are binarised with `> threshold`. The ground truth's area is that inside the
    ROI (the common simplification of the paper, which counts the whole instance's area).
    Returns [batch, R] float32: |P and G| / |P or G|, 0 where the union is empty and for
    negative ROIs. No gradient flows through it.
    """
    rows = tf.shape(pred_masks)[1]
    class_ids = tf.cast(target_class_ids[:, :rows], tf.int32)
    pred = select_class_masks_graph(tf.cast(pred_masks, tf.float32), class_ids) > threshold
    gt = tf.cast(target_masks[:, :rows], tf.float32) > threshold
    intersection = tf.reduce_sum(tf.cast(pred & gt, tf.float32), axis=[2, 3])
    union = tf.reduce_sum(tf.cast(pred | gt, tf.float32), axis=[2, 3])
    iou = tf.math.divide_no_nan(intersection, union)
    iou = tf.where(class_ids > 0, iou, tf.zeros_like(iou))
    return tf.stop_gradient(iou)


@keras.saving.register_keras_serializable(package="mrcnn")
class MaskIoUTargetLayer(Float32Layer):
    """MaskIoU targets of the sampled training ROIs the mask head saw (maskiou_targets_graph).

    Args:
        threshold: float, the probability above which a mask pixel is foreground (0.5).

    Call arguments:
        pred_masks: [batch, R, h, w, num_classes] probabilities (mrcnn_mask);
        target_masks: [batch, T, h, w] (target_mask); target_class_ids: [batch, T] int32.

    Returns target_maskiou [batch, R] float32 in [0, 1].
    """

    def __init__(self, threshold=0.5, **kwargs):
        super().__init__(**kwargs)
        self.threshold = float(threshold)

    def call(self, pred_masks, target_masks, target_class_ids):
        return maskiou_targets_graph(pred_masks, target_masks, target_class_ids, self.threshold)

    def compute_output_spec(self, pred_masks, target_masks, target_class_ids):
        return keras.KerasTensor((pred_masks.shape[0], pred_masks.shape[1]), "float32")

    def get_config(self):
        config = super().get_config()
        config.update({"threshold": self.threshold})
        return config


@keras.saving.register_keras_serializable(package="mrcnn")
class ClassMaskPool(Float32Layer):
    """The MaskIoU head's mask input: each ROI's predicted mask of one class, max-pooled 2x2
    (stride 2) to the RoI feature's size. The gradient is stopped: the MaskIoU loss does not
    train the mask head (as in the paper).

    Call arguments: masks [batch, N, h, w, num_classes] probabilities; class_ids [batch, N]
    (the GT class in training, the detected class at inference; int or float).
    Returns [batch, N, h // 2, w // 2, 1] float32.
    """

    def call(self, masks, class_ids):
        masks = tf.stop_gradient(tf.cast(masks, tf.float32))
        selected = select_class_masks_graph(masks, class_ids)  # [B, N, h, w]
        shape = tf.shape(selected)
        h, w = masks.shape[2], masks.shape[3]
        pooled = tf.nn.max_pool2d(tf.reshape(selected, [-1, h, w, 1]), 2, 2, "VALID")
        return tf.reshape(pooled, tf.stack([shape[0], shape[1], h // 2, w // 2, 1]))

    def compute_output_spec(self, masks, class_ids):
        return keras.KerasTensor((masks.shape[0], masks.shape[1], masks.shape[2] // 2,
                                  masks.shape[3] // 2, 1), "float32")


def mask_scores_graph(detections, pred_maskiou):
    """Mask scores of the detections: class score x predicted MaskIoU of the detected class,
    the prediction clipped to [0, 1] (a regression can leave that range).

    detections: [batch, D, (y1, x1, y2, x2, class_id, score)], zero-padded;
    pred_maskiou: [batch, D, num_classes]. Returns [batch, D] float32, 0 for padding rows.
    """
    class_ids = tf.cast(detections[..., 4], tf.int32)
    iou = tf.gather(tf.cast(pred_maskiou, tf.float32), tf.maximum(class_ids, 0), batch_dims=2)
    scores = tf.cast(detections[..., 5], tf.float32) * tf.clip_by_value(iou, 0.0, 1.0)
    return tf.where(class_ids > 0, scores, tf.zeros_like(scores))


@keras.saving.register_keras_serializable(package="mrcnn")
class MaskScores(Float32Layer):
    """mask_scores_graph as a layer. Call arguments: detections [batch, D, 6] (DetectionLayer),
    pred_maskiou [batch, D, num_classes] (the MaskIoU head). Returns [batch, D] float32."""

    def call(self, detections, pred_maskiou):
        return mask_scores_graph(detections, pred_maskiou)

    def compute_output_spec(self, detections, pred_maskiou):
        return keras.KerasTensor((detections.shape[0], detections.shape[1]), "float32")
