"""Box operations, NumPy and TensorFlow twins side by side.

Conventions used throughout mrcnn:
    Boxes are (y1, x1, y2, x2).
    Pixel boxes: y2/x2 are exclusive (a one-pixel box at row 5 is y1=5, y2=6).
    Normalized boxes: norm_boxes maps pixel boxes into [0, 1] with (h - 1, w - 1) scaling and a
    (0, 0, 1, 1) shift, so y2/x2 become inclusive; denorm_boxes inverts it. This is matterport's
    convention, kept because the released weights depend on it.
    Deltas are (dy, dx, log(dh), log(dw)) relative to a box's center and size.

The TensorFlow functions (suffix _graph) accept any number of leading batch dimensions.
"""

import numpy as np
import tensorflow as tf

__all__ = [
    "compute_iou", "compute_overlaps", "overlaps_graph", "non_max_suppression",
    "apply_box_deltas", "apply_box_deltas_graph", "box_refinement", "box_refinement_graph",
    "clip_boxes_graph", "norm_boxes", "denorm_boxes", "norm_boxes_graph", "denorm_boxes_graph",
    "box_area", "batched_nms_graph", "unmold_boxes", "unmold_boxes_graph",
    "normalized_to_pixels_graph",
]


def box_area(boxes):
    """Areas of [..., (y1, x1, y2, x2)] boxes (NumPy); degenerate boxes give 0."""
    boxes = np.asarray(boxes, dtype=np.float64)
    heights = np.maximum(boxes[..., 2] - boxes[..., 0], 0)
    return heights * np.maximum(boxes[..., 3] - boxes[..., 1], 0)


def compute_iou(box, boxes, box_area, boxes_area):
    """IoU of one box with each of many boxes.

    box: [(y1, x1, y2, x2)]; boxes: [N, (y1, x1, y2, x2)]; box_area: float; boxes_area: [N].
    Returns [N] IoUs (0 where the union is empty).
    """
    y1 = np.maximum(box[0], boxes[:, 0])
    y2 = np.minimum(box[2], boxes[:, 2])
    x1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[3], boxes[:, 3])
    intersection = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    union = box_area + boxes_area[:] - intersection[:]
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, intersection / np.where(union > 0, union, 1), 0.0)
    return iou


def compute_overlaps(boxes1, boxes2):
    """IoU overlaps between two sets of boxes.

    boxes1: [N1, (y1, x1, y2, x2)], boxes2: [N2, (y1, x1, y2, x2)]. Returns [N1, N2].
    """
    boxes1 = np.asarray(boxes1, dtype=np.float64).reshape(-1, 4)
    boxes2 = np.asarray(boxes2, dtype=np.float64).reshape(-1, 4)
    area1 = box_area(boxes1)
    area2 = box_area(boxes2)
    overlaps = np.zeros((boxes1.shape[0], boxes2.shape[0]))
    for i in range(boxes2.shape[0]):
        overlaps[:, i] = compute_iou(boxes2[i], boxes1, area2[i], area1)
    return overlaps


def overlaps_graph(boxes1, boxes2):
    """IoU overlaps (TensorFlow). boxes1: [..., N1, 4], boxes2: [..., N2, 4] -> [..., N1, N2].

    Leading dimensions broadcast, so a batch [B, N1, 4] x [B, N2, 4] gives [B, N1, N2].
    Pairs whose union is empty get IoU 0.
    """
    b1 = tf.expand_dims(boxes1, -2)  # [..., N1, 1, 4]
    b2 = tf.expand_dims(boxes2, -3)  # [..., 1, N2, 4]
    y1 = tf.maximum(b1[..., 0], b2[..., 0])
    x1 = tf.maximum(b1[..., 1], b2[..., 1])
    y2 = tf.minimum(b1[..., 2], b2[..., 2])
    x2 = tf.minimum(b1[..., 3], b2[..., 3])
    inter = tf.maximum(y2 - y1, 0.0) * tf.maximum(x2 - x1, 0.0)
    a1 = tf.maximum(b1[..., 2] - b1[..., 0], 0.0) * tf.maximum(b1[..., 3] - b1[..., 1], 0.0)
    a2 = tf.maximum(b2[..., 2] - b2[..., 0], 0.0) * tf.maximum(b2[..., 3] - b2[..., 1], 0.0)
    union = a1 + a2 - inter
    return tf.math.divide_no_nan(inter, union)


def non_max_suppression(boxes, scores, threshold):
    """Greedy non-maximum suppression (NumPy).

    boxes: [N, (y1, x1, y2, x2)]; scores: [N]; threshold: a box is suppressed when its IoU with a
    kept, higher-scoring box is greater than this. Returns int32 indices of kept boxes, by
    descending score. N = 0 returns an empty array.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores)
    if boxes.shape[0] == 0:
        return np.zeros([0], np.int32)
    area = box_area(boxes)
    ixs = np.argsort(-scores, kind="stable")
    pick = []
    while len(ixs) > 0:
        i = ixs[0]
        pick.append(i)
        iou = compute_iou(boxes[i], boxes[ixs[1:]], area[i], area[ixs[1:]])
        ixs = ixs[1:][iou <= threshold]
    return np.array(pick, dtype=np.int32)


def _apply_deltas(boxes, deltas, exp, stack):
    height = boxes[..., 2] - boxes[..., 0]
    width = boxes[..., 3] - boxes[..., 1]
    center_y = boxes[..., 0] + 0.5 * height + deltas[..., 0] * height
    center_x = boxes[..., 1] + 0.5 * width + deltas[..., 1] * width
    height = height * exp(deltas[..., 2])
    width = width * exp(deltas[..., 3])
    y1 = center_y - 0.5 * height
    x1 = center_x - 0.5 * width
    return stack([y1, x1, y1 + height, x1 + width], axis=-1)


def apply_box_deltas(boxes, deltas):
    """Applies deltas to boxes (NumPy). boxes: [N, (y1, x1, y2, x2)]; deltas: [N, (dy, dx,
    log(dh), log(dw))]. Returns float boxes [N, 4] in the boxes' frame."""
    return _apply_deltas(np.asarray(boxes, dtype=np.float32),
                         np.asarray(deltas, dtype=np.float32), np.exp, np.stack)


def apply_box_deltas_graph(boxes, deltas):
    """Applies deltas to boxes (TensorFlow). boxes, deltas: [..., 4] -> [..., 4]."""
    return _apply_deltas(boxes, deltas, tf.exp, tf.stack)


def _refinement(box, gt_box, log, stack):
    """(dy, dx, log(dh), log(dw)) from box to gt_box, with the array library's log/stack."""
    height = box[..., 2] - box[..., 0]
    width = box[..., 3] - box[..., 1]
    gt_height = gt_box[..., 2] - gt_box[..., 0]
    gt_width = gt_box[..., 3] - gt_box[..., 1]
    dy = (gt_box[..., 0] + 0.5 * gt_height - box[..., 0] - 0.5 * height) / height
    dx = (gt_box[..., 1] + 0.5 * gt_width - box[..., 1] - 0.5 * width) / width
    return stack([dy, dx, log(gt_height / height), log(gt_width / width)], axis=-1)


def box_refinement(box, gt_box):
    """Deltas that turn box into gt_box (NumPy). box, gt_box: [N, (y1, x1, y2, x2)], both with
    positive size. Returns [N, (dy, dx, log(dh), log(dw))]."""
    return _refinement(np.asarray(box, dtype=np.float32), np.asarray(gt_box, dtype=np.float32),
                       np.log, np.stack)


def box_refinement_graph(box, gt_box):
    """Deltas that turn box into gt_box (TensorFlow). [..., 4] -> [..., 4]."""
    return _refinement(tf.cast(box, tf.float32), tf.cast(gt_box, tf.float32), tf.math.log,
                       tf.stack)


def clip_boxes_graph(boxes, window):
    """Clips boxes to a window (TensorFlow).

    boxes: [..., (y1, x1, y2, x2)]; window: [(y1, x1, y2, x2)], or one window per batch item
    [batch, 4] for boxes [batch, N, 4]. Same coordinate frame for both.
    """
    boxes = tf.convert_to_tensor(boxes)
    window = tf.cast(window, boxes.dtype)
    if window.shape.rank >= 2 and window.shape.rank < boxes.shape.rank:
        window = tf.expand_dims(window, -2)
    low = tf.concat([window[..., :2], window[..., :2]], axis=-1)
    high = tf.concat([window[..., 2:], window[..., 2:]], axis=-1)
    return tf.minimum(tf.maximum(boxes, low), high, name="clipped_boxes")


def norm_boxes(boxes, shape):
    """Pixel boxes [..., 4] -> normalized float32 boxes. shape: (height, width) in pixels."""
    h, w = shape[:2]
    scale = np.array([h - 1, w - 1, h - 1, w - 1])
    shift = np.array([0, 0, 1, 1])
    return np.divide((np.asarray(boxes) - shift), scale).astype(np.float32)


def denorm_boxes(boxes, shape):
    """Normalized boxes [..., 4] -> int32 pixel boxes (rounded). shape: (height, width)."""
    h, w = shape[:2]
    scale = np.array([h - 1, w - 1, h - 1, w - 1])
    shift = np.array([0, 0, 1, 1])
    return np.around(np.multiply(boxes, scale) + shift).astype(np.int32)


def _shape_scale_graph(shape):
    shape = tf.cast(shape, tf.float32)
    h, w = shape[..., 0], shape[..., 1]
    return tf.stack([h, w, h, w], axis=-1) - 1.0


def norm_boxes_graph(boxes, shape):
    """Pixel boxes [..., 4] -> normalized (TensorFlow). shape: [(height, width)] or a batch
    [B, (height, width)] matching boxes [B, N, 4]."""
    scale = _shape_scale_graph(shape)
    if scale.shape.rank == 2:
        scale = scale[:, None, :]
    shift = tf.constant([0.0, 0.0, 1.0, 1.0])
    return tf.math.divide(tf.cast(boxes, tf.float32) - shift, scale)


def normalized_to_pixels_graph(boxes, shape):
    """Normalized boxes [..., 4] -> float32 pixel boxes [y1, y2), without rounding (TensorFlow):
    the inverse of norm_boxes_graph, pixels = normalized * (size - 1) + (0, 0, 1, 1).
    shape as norm_boxes_graph."""
    scale = _shape_scale_graph(shape)
    if scale.shape.rank == 2:
        scale = scale[:, None, :]
    return tf.cast(boxes, tf.float32) * scale + tf.constant([0.0, 0.0, 1.0, 1.0])


def denorm_boxes_graph(boxes, shape):
    """Normalized boxes [..., 4] -> int32 pixel boxes (TensorFlow). shape as norm_boxes_graph."""
    return tf.cast(tf.round(normalized_to_pixels_graph(boxes, shape)), tf.int32)


def unmold_boxes(boxes, window, image_shape, original_shape):
    """Normalized boxes of a molded image -> unrounded pixel boxes of the original image.

    boxes: [N, (y1, x1, y2, x2)] normalized in the molded image (the network's output frame).
    window: (y1, x1, y2, x2) pixels of the molded image that hold the resized original.
    image_shape: (h, w, ...) of the molded image; original_shape: (H, W, ...).
    Returns float64 [N, (y1, x1, y2, x2)] original pixels, y2/x2 exclusive.

    The box's pixel edges in the molded image (denorm_boxes, unrounded) lose the window's
    corner and are scaled by original size / window size per axis: resize_image maps molded
    pixel i onto original pixels [i / s, (i + 1) / s). matterport renormalized the box to the
    window's first and last pixel indices and then applied denorm_boxes for the original shape,
    which moves both edges inward (which one more depends on the box's position) and makes the
    box up to 1/s - 1 original pixels shorter and narrower: 5.4 pixels for a 2048-pixel photo
    molded at 320. Both agree when the image is not resized.
    """
    h, w = image_shape[:2]
    px = np.asarray(boxes, np.float64) * [h - 1, w - 1, h - 1, w - 1] + [0, 0, 1, 1]
    wy1, wx1, wy2, wx2 = np.asarray(window, np.float64)
    ratio = np.array([original_shape[0] / (wy2 - wy1), original_shape[1] / (wx2 - wx1)] * 2)
    return (px - [wy1, wx1, wy1, wx1]) * ratio


def unmold_boxes_graph(boxes, window, image_hw, original_hw):
    """unmold_boxes in TensorFlow for a batch: boxes [B, N, 4] normalized in the molded images
    of size image_hw (h, w); window [B, (y1, x1, y2, x2)] molded pixels; original_hw (H, W) of
    the original images. Returns float32 [B, N, 4] unrounded original pixels."""
    px = normalized_to_pixels_graph(boxes, image_hw)
    window = tf.cast(window, tf.float32)
    corner = tf.concat([window[:, :2], window[:, :2]], -1)[:, None]
    H, W = tf.unstack(tf.cast(original_hw, tf.float32))
    ratio = tf.stack([H / (window[:, 2] - window[:, 0]), W / (window[:, 3] - window[:, 1])], -1)
    return (px - corner) * tf.concat([ratio, ratio], -1)[:, None]


def batched_nms_graph(boxes, scores, max_output_size, iou_threshold, score_threshold,
                      classes=None):
    """Greedy NMS over a batch, per class when classes are given (TensorFlow).

    boxes: [batch, N, (y1, x1, y2, x2)], normalized (coordinates within [0, 1]).
    scores: [batch, N]. Boxes scoring below score_threshold are never kept.
    classes: optional [batch, N] int; boxes of different classes never suppress each other (each
        class is shifted to its own region of the plane, so one NMS pass is per-class NMS).
    Returns indices [batch, max_output_size] int32 into N, by descending score, and
    valid [batch, max_output_size] bool marking the real entries (the rest are padding, index 0).
    """
    boxes = tf.cast(boxes, tf.float32)
    scores = tf.cast(scores, tf.float32)
    if classes is not None:
        offset = tf.cast(classes, tf.float32)[..., None] * 2.0
        boxes = boxes + offset
    n = tf.shape(boxes)[1]
    # Below-threshold boxes get a score that sorts them last; they are then marked invalid.
    keep_score = scores >= score_threshold
    masked = tf.where(keep_score, scores, tf.fill(tf.shape(scores), -1.0))
    order = tf.argsort(masked, axis=1, direction="DESCENDING", stable=True)
    sorted_boxes = tf.gather(boxes, order, batch_dims=1)
    sorted_scores = tf.gather(masked, order, batch_dims=1)
    sel, num_valid = tf.image.non_max_suppression_padded(
        sorted_boxes, sorted_scores, max_output_size, iou_threshold=iou_threshold,
        score_threshold=-0.5, pad_to_max_output_size=True, sorted_input=True,
        canonicalized_coordinates=True)
    # Static shapes: non_max_suppression_padded only pads to max_output_size when n permits.
    sel = sel[:, :max_output_size]
    pad = tf.maximum(max_output_size - tf.shape(sel)[1], 0)
    sel = tf.pad(sel, [[0, 0], [0, pad]])
    valid = tf.range(max_output_size)[None, :] < tf.minimum(num_valid, n)[:, None]
    indices = tf.gather(order, tf.minimum(sel, tf.maximum(n - 1, 0)), batch_dims=1)
    indices = tf.where(valid, indices, tf.zeros_like(indices))
    return indices, valid
