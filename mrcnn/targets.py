"""Training targets computed in NumPy: RPN anchor targets, random ROIs, and a NumPy twin of the
in-graph detection targets (for inspection and as a test oracle).

Boxes are pixel boxes (y1, x1, y2, x2) unless said otherwise.
"""

import numpy as np

from mrcnn.ops.boxes import box_area, box_refinement, compute_overlaps
from mrcnn.ops.image import resize

__all__ = ["build_rpn_targets", "rpn_targets", "generate_random_rois",
           "build_detection_targets"]


def rpn_targets(anchors, gt_class_ids, gt_boxes, train_anchors_per_image, rpn_bbox_std_dev,
                positive_iou=0.7, negative_iou=0.3, crowd_iou=0.001, rng=None):
    """RPN targets for one image.

    anchors: [A, 4] pixels; gt_class_ids: [G] (negative = crowd); gt_boxes: [G, 4] pixels.
    An anchor is positive when its IoU with a GT box is >= positive_iou, or when it is (one of)
    the best anchors of a GT box (ties included; a GT box that overlaps no anchor at all forces
    nothing); negative when its IoU with every GT box is < negative_iou and it does not overlap
    a crowd box (IoU >= crowd_iou); else neutral. Positives are capped at half of
    train_anchors_per_image and negatives fill the rest, both subsampled at random.
    Degenerate GT boxes (zero height or width) are ignored, so no NaN can arise.

    Returns rpn_match [A] int32 (1, -1, 0) and rpn_bbox [train_anchors_per_image, (dy, dx,
    log(dh), log(dw))] / rpn_bbox_std_dev: row k holds the target of the k-th positive anchor (in
    anchor order), zero-padded. A positive anchor regresses to its best GT box, or, when it is
    positive only as some GT box's best anchor, to that GT box.
    """
    rng = rng if rng is not None else np.random.default_rng()
    anchors = np.asarray(anchors, dtype=np.float64)
    gt_class_ids = np.asarray(gt_class_ids).reshape(-1)
    gt_boxes = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    rpn_match = np.zeros([anchors.shape[0]], dtype=np.int32)
    rpn_bbox = np.zeros((train_anchors_per_image, 4), dtype=np.float32)

    crowd = gt_class_ids < 0
    if crowd.any():
        crowd_overlaps = compute_overlaps(anchors, gt_boxes[crowd])
        no_crowd = np.max(crowd_overlaps, axis=1) < crowd_iou
    else:
        no_crowd = np.ones([anchors.shape[0]], dtype=bool)
    usable = (~crowd) & (gt_class_ids != 0) & (box_area(gt_boxes) > 0)
    gt_boxes = gt_boxes[usable]

    if gt_boxes.shape[0]:
        overlaps = compute_overlaps(anchors, gt_boxes)  # [A, G]
        anchor_iou_argmax = np.argmax(overlaps, axis=1)
        anchor_iou_max = overlaps[np.arange(overlaps.shape[0]), anchor_iou_argmax]
        rpn_match[(anchor_iou_max < negative_iou) & no_crowd] = -1
        target_gt = anchor_iou_argmax.copy()
        gt_iou_max = np.max(overlaps, axis=0)
        for g in np.argsort(gt_iou_max):  # the best-matched GT wins a shared anchor
            if gt_iou_max[g] <= 0:
                continue
            best = np.where(overlaps[:, g] == gt_iou_max[g])[0]
            rpn_match[best] = 1
            weak = best[anchor_iou_max[best] < positive_iou]
            target_gt[weak] = g
        rpn_match[anchor_iou_max >= positive_iou] = 1
    else:
        rpn_match[no_crowd] = -1
        target_gt = np.zeros([anchors.shape[0]], dtype=np.int64)

    ids = np.where(rpn_match == 1)[0]
    extra = len(ids) - train_anchors_per_image // 2
    if extra > 0:
        rpn_match[rng.choice(ids, extra, replace=False)] = 0
    ids = np.where(rpn_match == -1)[0]
    extra = len(ids) - (train_anchors_per_image - np.sum(rpn_match == 1))
    if extra > 0:
        rpn_match[rng.choice(ids, extra, replace=False)] = 0

    ids = np.where(rpn_match == 1)[0]
    if len(ids):
        deltas = box_refinement(anchors[ids], gt_boxes[target_gt[ids]])
        rpn_bbox[:len(ids)] = deltas / np.asarray(rpn_bbox_std_dev)
    return rpn_match, rpn_bbox


def build_rpn_targets(image_shape, anchors, gt_class_ids, gt_boxes, config, rng=None):
    """matterport's signature for rpn_targets, with thresholds and sizes taken from config."""
    del image_shape
    return rpn_targets(anchors, gt_class_ids, gt_boxes, config.RPN_TRAIN_ANCHORS_PER_IMAGE,
                       config.RPN_BBOX_STD_DEV, config.RPN_POSITIVE_IOU,
                       config.RPN_NEGATIVE_IOU, config.CROWD_IOU_THRESHOLD, rng=rng)


def generate_random_rois(image_shape, count, gt_class_ids, gt_boxes, rng=None):
    """Random ROIs [count, 4] int32 pixels: 90% around the GT boxes, the rest anywhere in the
    image (for training the heads without the RPN, USE_RPN_ROIS = False)."""
    rng = rng if rng is not None else np.random.default_rng()
    h, w = image_shape[:2]
    gt_boxes = np.asarray(gt_boxes).reshape(-1, 4)
    rois = np.zeros((count, 4), dtype=np.int32)

    def random_boxes(n, y_lo, y_hi, x_lo, x_hi):
        out = np.zeros((n, 4), dtype=np.int32)
        filled = 0
        while filled < n:
            ys = rng.integers(y_lo, y_hi, (n * 2, 2))
            xs = rng.integers(x_lo, x_hi, (n * 2, 2))
            ok = (np.abs(ys[:, 0] - ys[:, 1]) >= 1) & (np.abs(xs[:, 0] - xs[:, 1]) >= 1)
            ys, xs = np.sort(ys[ok], axis=1), np.sort(xs[ok], axis=1)
            take = min(n - filled, len(ys))
            out[filled:filled + take] = np.stack(
                [ys[:take, 0], xs[:take, 0], ys[:take, 1], xs[:take, 1]], axis=1)
            filled += take
        return out

    per_gt = int(0.9 * count / max(len(gt_boxes), 1)) if len(gt_boxes) else 0
    pos = 0
    for gy1, gx1, gy2, gx2 in gt_boxes:
        if per_gt == 0:
            break
        gh, gw = gy2 - gy1, gx2 - gx1
        rois[pos:pos + per_gt] = random_boxes(
            per_gt, max(gy1 - gh, 0), max(min(gy2 + gh, h), max(gy1 - gh, 0) + 2),
            max(gx1 - gw, 0), max(min(gx2 + gw, w), max(gx1 - gw, 0) + 2))
        pos += per_gt
    rois[pos:] = random_boxes(count - pos, 0, h, 0, w)
    return rois


def build_detection_targets(rpn_rois, gt_class_ids, gt_boxes, gt_masks, config, rng=None):
    """NumPy twin of the in-graph detection targets (layers.detection_target), for one image.

    rpn_rois: [N, 4] pixels; gt_class_ids: [G]; gt_boxes: [G, 4] pixels; gt_masks: [h, w, G]
    (mini masks when config.USE_MINI_MASK). Same sampling rule as the layer: positives (IoU >=
    ROI_POSITIVE_IOU) capped at int(TRAIN_ROIS_PER_IMAGE * ROI_POSITIVE_RATIO), negatives fill
    the rest. Returns rois [T, 4] (rpn_rois' dtype), class_ids [T], bboxes [T, NUM_CLASSES, 4]
    (class-specific deltas / BBOX_STD_DEV) and masks [T, mask_h, mask_w, NUM_CLASSES].
    """
    rng = rng if rng is not None else np.random.default_rng()
    t = config.TRAIN_ROIS_PER_IMAGE
    rois_dtype = np.asarray(rpn_rois).dtype  # int32 from generate_random_rois, as matterport
    gt_class_ids = np.asarray(gt_class_ids)
    usable = (gt_class_ids > 0) & (box_area(gt_boxes) > 0)
    crowd = gt_class_ids < 0
    rpn_rois = np.asarray(rpn_rois, dtype=np.float64)
    valid = box_area(rpn_rois) > 0
    overlaps = compute_overlaps(rpn_rois, gt_boxes)
    ov = np.where(usable[None, :], overlaps, -1.0)
    iou_max = ov.max(axis=1) if ov.shape[1] else np.full(len(rpn_rois), -1.0)
    iou_arg = ov.argmax(axis=1) if ov.shape[1] else np.zeros(len(rpn_rois), np.int64)
    crowd_max = np.where(crowd[None, :], overlaps, 0).max(axis=1) if ov.shape[1] else \
        np.zeros(len(rpn_rois))
    pos_ids = np.where(valid & (iou_max >= config.ROI_POSITIVE_IOU))[0]
    neg_ids = np.where(valid & (iou_max < config.ROI_POSITIVE_IOU)
                       & (crowd_max < config.CROWD_IOU_THRESHOLD))[0]
    pos_cap = int(t * config.ROI_POSITIVE_RATIO)
    if len(pos_ids) > pos_cap:
        pos_ids = rng.choice(pos_ids, pos_cap, replace=False)
    if len(neg_ids) > t - len(pos_ids):
        neg_ids = rng.choice(neg_ids, t - len(pos_ids), replace=False)
    keep = np.concatenate([pos_ids, neg_ids]).astype(np.int64)
    rois = np.zeros((t, 4), dtype=rois_dtype)
    rois[:len(keep)] = rpn_rois[keep]
    class_ids = np.zeros([t], dtype=np.int32)
    class_ids[:len(pos_ids)] = gt_class_ids[iou_arg[pos_ids]]
    bboxes = np.zeros((t, config.NUM_CLASSES, 4), dtype=np.float32)
    masks = np.zeros((t,) + tuple(config.MASK_SHAPE) + (config.NUM_CLASSES,), dtype=np.float32)
    for i, roi_id in enumerate(pos_ids):
        g = iou_arg[roi_id]
        cid = class_ids[i]
        bboxes[i, cid] = box_refinement(rpn_rois[roi_id][None], gt_boxes[g][None])[0] \
            / config.BBOX_STD_DEV
        y1, x1, y2, x2 = rpn_rois[roi_id].astype(np.int64)
        if config.USE_MINI_MASK:
            gy1, gx1, gy2, gx2 = np.asarray(gt_boxes[g]).astype(np.int64)
            full = np.zeros((max(y2, gy2), max(x2, gx2)), dtype=np.float32)
            full[gy1:gy2, gx1:gx2] = resize(gt_masks[:, :, g].astype(np.float32),
                                            (gy2 - gy1, gx2 - gx1))
            m = full[y1:y2, x1:x2]
        else:
            m = gt_masks[y1:y2, x1:x2, g].astype(np.float32)
        masks[i, :, :, cid] = np.round(resize(m, config.MASK_SHAPE))
    return rois, class_ids, bboxes, masks
