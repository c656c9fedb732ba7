"""DetectionTargetLayer: samples training ROIs from proposals and builds their head targets."""

import keras
import numpy as np
import tensorflow as tf

from mrcnn.layers.graph_utils import Float32Layer
from mrcnn.ops.boxes import (
    box_refinement_graph,
    norm_boxes_graph,
    normalized_to_pixels_graph,
    overlaps_graph,
)
from mrcnn.ops.crop import SAMPLERS, crop_and_resize

__all__ = ["DetectionTargetLayer", "detection_targets_graph", "mask_targets_graph"]

MASK_SAMPLINGS = ("paper", "matterport")


def _safe_boxes(boxes, use):
    """Replaces the boxes not in `use` by a unit box so that no division by zero appears."""
    unit = tf.constant([0.0, 0.0, 1.0, 1.0], boxes.dtype)
    return tf.where(use[..., None], boxes, unit)


def mask_targets_graph(masks, box_indices, rois, gt_boxes, mask_shape, use_mini_mask,
                       image_hw=None, mode="paper", sampler="crop_and_resize"):
    """Each ROI's mask target, sampled out of its GT mask (before rounding).

    masks: [M, h, w, 1] float GT masks (mini masks [M, mh, mw, 1] inside their GT boxes with
    use_mini_mask). box_indices: [K] int32, the mask of each ROI. rois, gt_boxes: [K, (y1, x1,
    y2, x2)] normalized (norm_boxes: 0 and 1 are the centres of the image's first and last
    pixels), each ROI with its GT box. image_hw: (height, width) of the molded image (needed
    with mini masks in "paper" mode; else the masks' size).
    Returns [K, mask_h, mask_w, 1] float32 in [0, 1].

    mode "paper": one bilinear sample at the centre of each of the mask_h x mask_w bins of the
    ROI's pixels [y1, y2) (the inverse of norm_boxes), where detect()'s paste (unmold_mask, a
    resize of the mask onto those pixels) puts the mask's cells back; RoIAlign "paper" pools
    the features of bins within half a pixel of them. A mini mask is minimize_mask's resize of
    the GT box's pixels: its cell q covers pixels y1 + [q, q + 1) * (y2 - y1) / mh, so each
    sample is taken in that frame: inside the GT box from the mini mask (its edge cells extended
    to the box edge), outside it 0.
    mode "matterport": matterport's samples, from the ROI's first to its last pixel centre;
    with mini masks, the ROI relative to the GT box in normalized units, cropped edge to edge,
    which puts the mini mask's first and last cells on the GT box's first and last pixel
    centres: masks pasted from such targets come out up to 1/112 of the box smaller on each
    side (a pixel on a 112-pixel box).
    """
    rois = tf.cast(rois, tf.float32)
    gt_boxes = tf.cast(gt_boxes, tf.float32)
    crop_size = tuple(int(v) for v in mask_shape)
    if mode == "matterport":
        boxes = rois
        if use_mini_mask:
            gy1, gx1, gy2, gx2 = tf.unstack(gt_boxes, axis=-1)
            y1, x1, y2, x2 = tf.unstack(rois, axis=-1)
            gh, gw = gy2 - gy1, gx2 - gx1
            boxes = tf.stack([(y1 - gy1) / gh, (x1 - gx1) / gw, (y2 - gy1) / gh,
                              (x2 - gx1) / gw], axis=-1)
        return crop_and_resize(masks, boxes, box_indices, crop_size, sampler)
    if mode != "paper":
        raise ValueError(f"mode must be one of {MASK_SAMPLINGS}, got {mode!r}")
    if image_hw is None:
        if use_mini_mask:
            raise ValueError("mini-mask targets in 'paper' mode need the molded image's size")
        image_hw = tf.shape(masks)[1:3]
    roi_px = normalized_to_pixels_graph(rois, image_hw)  # pixel edges [y1, y2)
    cells_out = tf.constant([float(crop_size[0]), float(crop_size[1])])
    half = (roi_px[:, 2:] - roi_px[:, :2]) / (2.0 * cells_out)
    edges = tf.concat([roi_px[:, :2] + half, roi_px[:, 2:] - half], axis=-1)  # first/last bin
    if not use_mini_mask:
        # The pixel box whose first and last pixel centres are the first and last samples,
        # in norm_boxes' frame (crop_and_resize's: pixel centres at 0 and 1).
        first_last = norm_boxes_graph(edges + tf.constant([-0.5, -0.5, 0.5, 0.5]), image_hw)
        return crop_and_resize(masks, first_last, box_indices, crop_size, sampler)
    gt_px = normalized_to_pixels_graph(gt_boxes, image_hw)
    origin = tf.concat([gt_px[:, :2], gt_px[:, :2]], axis=-1)
    size = tf.concat([gt_px[:, 2:] - gt_px[:, :2]] * 2, axis=-1)
    cells = tf.cast(tf.tile(tf.shape(masks)[1:3], [2]), tf.float32)
    # Mini cell q's centre is at origin + (q + 0.5) * size / cells. The mini masks get one
    # replicated cell on each side (so samples in a box's outer half cell read its edge cell),
    # where crop_and_resize puts cell q at (q + 1) / (cells + 1).
    q = (edges - origin) * cells / size - 0.5
    padded = tf.pad(masks, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC")
    samples = crop_and_resize(padded, (q + 1.0) / (cells + 1.0), box_indices, crop_size,
                              sampler)
    # Samples outside the GT box are 0 (the mask is empty there).
    inside = []
    for axis, n in enumerate(crop_size):
        t = (tf.range(n, dtype=tf.float32) + 0.5) / float(n)
        pos = roi_px[:, axis:axis + 1] + (roi_px[:, axis + 2:axis + 3] -
                                          roi_px[:, axis:axis + 1]) * t[None, :]
        inside.append(tf.cast((pos >= gt_px[:, axis:axis + 1]) &
                              (pos < gt_px[:, axis + 2:axis + 3]), tf.float32))
    return samples * (inside[0][:, :, None] * inside[1][:, None, :])[..., None]


def detection_targets_graph(proposals, gt_class_ids, gt_boxes, gt_masks, random_keys,
                            train_rois_per_image, roi_positive_ratio, bbox_std_dev, mask_shape,
                            use_mini_mask, positive_iou=0.5, crowd_iou=0.001,
                            sampler="crop_and_resize", mask_sampling="paper", image_hw=None):
    """Batched detection targets (vectorized over the batch; see DetectionTargetLayer).

    proposals: [batch, P, (y1, x1, y2, x2)] normalized, zero-padded.
    gt_class_ids: [batch, G] int; 0 is padding, negative ids are crowds.
    gt_boxes: [batch, G, (y1, x1, y2, x2)] normalized.
    gt_masks: [batch, height, width, G] (mini masks [batch, mh, mw, G] when use_mini_mask).
    random_keys: [batch, P] uniform [0, 1) values that order the random sampling.
    sampler: how mask targets are cropped (ops.crop.crop_and_resize; "gather" for XLA).
    mask_sampling: where mask targets are sampled (mask_targets_graph). image_hw: (height,
    width) of the molded images (with mini masks in "paper" mode).

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
    target_masks = mask_targets_graph(masks, box_ind, tf.reshape(safe_rois, [-1, 4]),
                                      tf.reshape(safe_gt, [-1, 4]), mask_shape, use_mini_mask,
                                      image_hw, mask_sampling, sampler)
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
        mask_sampling: "paper" (default; "matterport" with ROI_ALIGN_MODE "matterport"): where
            mask targets are sampled, see mask_targets_graph.

    Call arguments:
        proposals: [batch, P, (y1, x1, y2, x2)] normalized, zero-padded.
        gt_class_ids: [batch, MAX_GT_INSTANCES] int32.
        gt_boxes: [batch, MAX_GT_INSTANCES, (y1, x1, y2, x2)] normalized.
        gt_masks: [batch, height, width, MAX_GT_INSTANCES] bool (mini masks [batch, mh, mw,
            MAX_GT_INSTANCES] with use_mini_mask).
        image: [batch, height, width, channels], the molded images (only their size is used);
            needed with mini masks in "paper" mode.

    Returns (see detection_targets_graph):
        rois [batch, T, 4] normalized, target_class_ids [batch, T] int32,
        target_bbox [batch, T, 4], target_mask [batch, T, mask_height, mask_width].
    """

    def __init__(self, train_rois_per_image, roi_positive_ratio, bbox_std_dev, mask_shape,
                 use_mini_mask, positive_iou=0.5, crowd_iou=0.001, seed=None,
                 sampler="crop_and_resize", mask_sampling="paper", **kwargs):
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
        if mask_sampling not in MASK_SAMPLINGS:
            raise ValueError(f"mask_sampling must be one of {MASK_SAMPLINGS}, "
                             f"got {mask_sampling!r}")
        self.mask_sampling = mask_sampling
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, proposals, gt_class_ids, gt_boxes, gt_masks, image=None):
        if image is None and self.use_mini_mask and self.mask_sampling == "paper":
            raise ValueError(
                "DetectionTargetLayer(use_mini_mask=True, mask_sampling='paper') needs the "
                "molded images as its fifth argument: their size maps mini masks to pixels")
        image_hw = None if image is None else tf.shape(image)[1:3]
        keys = keras.random.uniform(tf.shape(proposals)[:2], seed=self.seed_generator)
        return detection_targets_graph(
            proposals, gt_class_ids, gt_boxes, gt_masks, keys, self.train_rois_per_image,
            self.roi_positive_ratio, self.bbox_std_dev, self.mask_shape, self.use_mini_mask,
            self.positive_iou, self.crowd_iou, self.sampler, self.mask_sampling, image_hw)

    def compute_output_spec(self, proposals, gt_class_ids, gt_boxes, gt_masks, image=None):
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
            "sampler": self.sampler, "mask_sampling": self.mask_sampling})
        return config
