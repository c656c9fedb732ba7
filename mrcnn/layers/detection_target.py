"""DetectionTargetLayer: samples training ROIs from proposals and builds their head targets."""

import keras
import numpy as np
import tensorflow as tf

from mrcnn.layers.graph_utils import Float32Layer
from mrcnn.ops.boxes import box_refinement_graph, overlaps_graph
from mrcnn.ops.crop import SAMPLERS, crop_and_resize

__all__ = ["DetectionTargetLayer", "detection_targets_graph"]


def _safe_boxes(boxes, use):
    """Replaces the boxes not in `use` by a unit box so that no division by zero appears."""
    unit = tf.constant([0.0, 0.0, 1.0, 1.0], boxes.dtype)
    return tf.where(use[..., None], boxes, unit)


def detection_targets_graph(proposals, gt_class_ids, gt_boxes, gt_masks, random_keys,
                            train_rois_per_image, roi_positive_ratio, bbox_std_dev, mask_shape,
                            use_mini_mask, positive_iou=0.5, crowd_iou=0.001,
                            sampler="crop_and_resize"):
    """Batched detection targets (vectorized over the batch; see DetectionTargetLayer).

    proposals: [batch, P, (y1, x1, y2, x2)] normalized, zero-padded.
    gt_class_ids: [batch, G] int; 0 is padding, negative ids are crowds.
    gt_boxes: [batch, G, (y1, x1, y2, x2)] normalized.
    gt_masks: [batch, height, width, G] (mini masks [batch, mh, mw, G] when use_mini_mask).
    random_keys: [batch, P] uniform [0, 1) values that order the random sampling.
    sampler: how mask targets are cropped (ops.crop.crop_and_resize; "gather" for XLA).

    Sampling: positives are proposals with IoU >= positive_iou to a non-crowd GT box, at most
    int(train_rois_per_image * roi_positive_ratio) of them; the remaining slots are filled with
    negatives (IoU < positive_iou with every GT box and < crowd_iou with every crowd box), so an
    image without instances still gives background examples. Rows past the sampled ROIs are
    zero padding.

    Returns rois [batch, T, 4], target_class_ids [batch, T] int32, target_deltas [batch, T, 4]
    (divided by bbox_std_dev), target_masks [batch, T, mask_h, mask_w] float32 in {0, 1}.
    """
    t = int(train_rois_per_image)
    pos_cap = int(train_rois_per_image * roi_positive_ratio)
    proposals = tf.cast(proposals, tf.float32)
    gt_boxes = tf.cast(gt_boxes, tf.float32)
    gt_class_ids = tf.cast(gt_class_ids, tf.int32)
    batch = tf.shape(proposals)[0]
    p = tf.shape(proposals)[1]
    g = tf.shape(gt_boxes)[1]

    prop_valid = tf.reduce_sum(tf.abs(proposals), axis=-1) > 0
    gt_area = (gt_boxes[..., 2] - gt_boxes[..., 0]) * (gt_boxes[..., 3] - gt_boxes[..., 1])
    non_crowd = (gt_class_ids > 0) & (gt_area > 0)
    crowd = gt_class_ids < 0

    overlaps = overlaps_graph(proposals, gt_boxes)  # [B, P, G]
    ov = tf.where(non_crowd[:, None, :], overlaps, -tf.ones_like(overlaps))
    roi_iou_max = tf.reduce_max(ov, axis=-1)
    roi_gt = tf.argmax(ov, axis=-1, output_type=tf.int32)  # [B, P]
    crowd_max = tf.reduce_max(tf.where(crowd[:, None, :], overlaps, tf.zeros_like(overlaps)),
                              axis=-1)
    positive = prop_valid & (roi_iou_max >= positive_iou)
    negative = prop_valid & (roi_iou_max < positive_iou) & (crowd_max < crowd_iou)

    # Random subsets: the top keys among the candidates (non-candidates get key -1).
    keys = tf.cast(random_keys, tf.float32)
    k_pos = tf.minimum(pos_cap, p)
    pos_val, pos_idx = tf.math.top_k(tf.where(positive, keys, -tf.ones_like(keys)), k_pos)
    pos_count = tf.reduce_sum(tf.cast(pos_val >= 0, tf.int32), axis=1)  # [B]
    k_neg = tf.minimum(t, p)
    neg_val, neg_idx = tf.math.top_k(tf.where(negative, keys, -tf.ones_like(keys)), k_neg)
    neg_avail = tf.reduce_sum(tf.cast(neg_val >= 0, tf.int32), axis=1)
    neg_count = tf.minimum(neg_avail, t - pos_count)

    # Slot j holds positive j for j < pos_count, then negative j - pos_count.
    slot = tf.tile(tf.range(t)[None, :], [batch, 1])
    from_pos = slot < pos_count[:, None]
    neg_slot = slot - pos_count[:, None]
    if pos_cap > 0:
        take_pos = tf.gather(pos_idx, tf.minimum(slot, tf.maximum(k_pos - 1, 0)), batch_dims=1)
    else:
        take_pos = tf.zeros_like(slot)
    take_neg = tf.gather(neg_idx, tf.clip_by_value(neg_slot, 0, tf.maximum(k_neg - 1, 0)),
                         batch_dims=1)
    take = tf.where(from_pos, take_pos, take_neg)
    slot_valid = from_pos | (neg_slot < neg_count[:, None])
    is_pos = from_pos & slot_valid

    rois = tf.gather(proposals, take, batch_dims=1) * tf.cast(slot_valid, tf.float32)[..., None]
    gt_ix = tf.gather(roi_gt, take, batch_dims=1)  # [B, T]
    roi_gt_boxes = tf.gather(gt_boxes, gt_ix, batch_dims=1)
    roi_class_ids = tf.gather(gt_class_ids, gt_ix, batch_dims=1)
    target_class_ids = tf.where(is_pos, roi_class_ids, tf.zeros_like(roi_class_ids))

    safe_rois = _safe_boxes(rois, is_pos)
    safe_gt = _safe_boxes(roi_gt_boxes, is_pos)
    deltas = box_refinement_graph(safe_rois, safe_gt) / tf.constant(bbox_std_dev, tf.float32)
    deltas = tf.where(is_pos[..., None], deltas, tf.zeros_like(deltas))

    # Mask targets: crop each positive ROI out of its GT mask.
    mh, mw = tf.shape(gt_masks)[1], tf.shape(gt_masks)[2]
    masks = tf.transpose(tf.cast(gt_masks, tf.float32), [0, 3, 1, 2])  # [B, G, h, w]
    masks = tf.reshape(masks, tf.stack([-1, mh, mw, 1]))
    box_ind = tf.reshape(tf.range(batch)[:, None] * g + gt_ix, [-1])
    crop_boxes = safe_rois
    if use_mini_mask:
        # ROI in the coordinate frame of its GT box (where the mini mask lives).
        gy1, gx1, gy2, gx2 = tf.unstack(safe_gt, axis=-1)
        y1, x1, y2, x2 = tf.unstack(safe_rois, axis=-1)
        gh = gy2 - gy1
        gw = gx2 - gx1
        crop_boxes = tf.stack([(y1 - gy1) / gh, (x1 - gx1) / gw,
                               (y2 - gy1) / gh, (x2 - gx1) / gw], axis=-1)
    target_masks = crop_and_resize(masks, tf.reshape(crop_boxes, [-1, 4]), box_ind,
                                   tuple(mask_shape), sampler)
    target_masks = tf.round(tf.reshape(target_masks, tf.stack([batch, t, mask_shape[0],
                                                               mask_shape[1]])))
    target_masks = target_masks * tf.cast(is_pos, tf.float32)[..., None, None]
    return (tf.stop_gradient(rois), tf.stop_gradient(target_class_ids),
            tf.stop_gradient(deltas), tf.stop_gradient(target_masks))


@keras.saving.register_keras_serializable(package="mrcnn")
class DetectionTargetLayer(Float32Layer):
    """Samples ROIs from proposals and builds class, box and mask targets for the heads.

    Args:
        train_rois_per_image: int (TRAIN_ROIS_PER_IMAGE), T below.
        roi_positive_ratio: float (ROI_POSITIVE_RATIO), the cap on the positive fraction.
        bbox_std_dev: 4 floats (BBOX_STD_DEV).
        mask_shape: (height, width) of mask targets (MASK_SHAPE).
        use_mini_mask: bool (USE_MINI_MASK): gt_masks are mini masks inside their boxes.
        positive_iou: float (ROI_POSITIVE_IOU). crowd_iou: float (CROWD_IOU_THRESHOLD).
        seed: optional int for the random ROI sampling.
        sampler: "crop_and_resize" (default) or "gather" (XLA-compilable mask-target crops,
            Config.XLA); see ops.crop.

    Call arguments:
        proposals: [batch, P, (y1, x1, y2, x2)] normalized, zero-padded.
        gt_class_ids: [batch, MAX_GT_INSTANCES] int32.
        gt_boxes: [batch, MAX_GT_INSTANCES, (y1, x1, y2, x2)] normalized.
        gt_masks: [batch, height, width, MAX_GT_INSTANCES] bool.

    Returns (see detection_targets_graph):
        rois [batch, T, 4] normalized, target_class_ids [batch, T] int32,
        target_bbox [batch, T, 4], target_mask [batch, T, mask_height, mask_width].
    """

    def __init__(self, train_rois_per_image, roi_positive_ratio, bbox_std_dev, mask_shape,
                 use_mini_mask, positive_iou=0.5, crowd_iou=0.001, seed=None,
                 sampler="crop_and_resize", **kwargs):
        super().__init__(**kwargs)
        self.train_rois_per_image = int(train_rois_per_image)
        self.roi_positive_ratio = float(roi_positive_ratio)
        self.bbox_std_dev = [float(v) for v in np.ravel(bbox_std_dev)]
        self.mask_shape = [int(v) for v in mask_shape]
        self.use_mini_mask = bool(use_mini_mask)
        self.positive_iou = float(positive_iou)
        self.crowd_iou = float(crowd_iou)
        self.seed = seed
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        self.sampler = sampler
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, proposals, gt_class_ids, gt_boxes, gt_masks):
        keys = keras.random.uniform(tf.shape(proposals)[:2], seed=self.seed_generator)
        return detection_targets_graph(
            proposals, gt_class_ids, gt_boxes, gt_masks, keys, self.train_rois_per_image,
            self.roi_positive_ratio, self.bbox_std_dev, self.mask_shape, self.use_mini_mask,
            self.positive_iou, self.crowd_iou, self.sampler)

    def compute_output_spec(self, proposals, gt_class_ids, gt_boxes, gt_masks):
        b, t = proposals.shape[0], self.train_rois_per_image
        return (keras.KerasTensor((b, t, 4), "float32"),
                keras.KerasTensor((b, t), "int32"),
                keras.KerasTensor((b, t, 4), "float32"),
                keras.KerasTensor((b, t) + tuple(self.mask_shape), "float32"))

    def get_config(self):
        config = super().get_config()
        config.update({
            "train_rois_per_image": self.train_rois_per_image,
            "roi_positive_ratio": self.roi_positive_ratio, "bbox_std_dev": self.bbox_std_dev,
            "mask_shape": self.mask_shape, "use_mini_mask": self.use_mini_mask,
            "positive_iou": self.positive_iou, "crowd_iou": self.crowd_iou, "seed": self.seed,
            "sampler": self.sampler})
        return config
