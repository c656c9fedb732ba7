"""Keypoint operations for the keypoint head (He et al. 2017, §5 and Appendix), NumPy and TF twins.

Keypoints are [instances, K, (x, y, v)]: x and y are continuous pixel coordinates (the centre of
pixel column i is x = i + 0.5, so a keypoint at COCO's integer pixel index i is stored as
i + 0.5), v is COCO's visibility (0 not labelled, 1 labelled but occluded, 2 visible). Boxes
are (y1, x1, y2, x2) in the same units as the keypoints (pixels, or both normalized).

Heatmap targets follow the paper: each labelled keypoint of a positive ROI becomes one target
cell of an S x S grid over the ROI (a one-hot mask); a keypoint outside its ROI, or with v = 0,
is ignored. Decoding upsamples each heatmap to the ROI's size in pixels, takes the arg-max and
places the keypoint at the centre of that pixel.
"""

import numpy as np
import tensorflow as tf

__all__ = ["keypoints_to_heatmap_indices", "keypoints_to_heatmap_indices_graph",
           "heatmaps_to_keypoints", "flip_keypoints", "scale_keypoints", "keypoint_boxes"]


def keypoints_to_heatmap_indices(keypoints, rois, heatmap_size):
    """Target cells of keypoints in the heatmap grid of their ROIs (NumPy).

    keypoints: [N, K, (x, y, v)]; rois: [N, (y1, x1, y2, x2)], same units.
    heatmap_size: S, the side of the square heatmap.
    Returns indices [N, K] int32 (row * S + column, 0 where invalid) and valid [N, K] bool:
    labelled (v > 0) and inside the ROI. A keypoint exactly on the ROI's far edge (x == x2 or
    y == y2) goes to the last cell rather than being dropped.
    """
    keypoints = np.asarray(keypoints, dtype=np.float64)
    rois = np.asarray(rois, dtype=np.float64)
    y1, x1, y2, x2 = (rois[:, i:i + 1] for i in range(4))
    x, y, v = keypoints[..., 0], keypoints[..., 1], keypoints[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        col = np.floor((x - x1) * (heatmap_size / (x2 - x1)))
        row = np.floor((y - y1) * (heatmap_size / (y2 - y1)))
    col = np.where(x == x2, heatmap_size - 1, col)
    row = np.where(y == y2, heatmap_size - 1, row)
    inside = (col >= 0) & (row >= 0) & (col < heatmap_size) & (row < heatmap_size)
    valid = inside & (v > 0) & (x2 > x1) & (y2 > y1)
    indices = np.where(valid, row * heatmap_size + col, 0).astype(np.int32)
    return indices, valid


def keypoints_to_heatmap_indices_graph(keypoints, rois, heatmap_size):
    """TensorFlow twin of keypoints_to_heatmap_indices, for any leading dimensions.

    keypoints: [..., K, (x, y, v)]; rois: [..., (y1, x1, y2, x2)].
    Returns indices [..., K] int32 and valid [..., K] bool.
    """
    keypoints = tf.cast(keypoints, tf.float32)
    rois = tf.cast(rois, tf.float32)
    size = float(heatmap_size)
    y1, x1, y2, x2 = (rois[..., i:i + 1] for i in range(4))
    x, y, v = keypoints[..., 0], keypoints[..., 1], keypoints[..., 2]
    col = tf.floor((x - x1) * tf.math.divide_no_nan(size, x2 - x1))
    row = tf.floor((y - y1) * tf.math.divide_no_nan(size, y2 - y1))
    col = tf.where(tf.equal(x, x2), size - 1, col)
    row = tf.where(tf.equal(y, y2), size - 1, row)
    inside = (col >= 0) & (row >= 0) & (col < size) & (row < size)
    valid = inside & (v > 0) & (x2 > x1) & (y2 > y1)
    indices = tf.where(valid, row * size + col, tf.zeros_like(col))
    return tf.cast(indices, tf.int32), valid


def heatmaps_to_keypoints(heatmaps, rois):
    """Keypoints from heatmap logits (NumPy; cv2 for the bicubic resize).

    heatmaps: [N, S, S, K] logits of N ROIs; rois: [N, (y1, x1, y2, x2)] pixels.
    Each map is resized (bicubic) to the ROI's size rounded up to whole pixels, the arg-max
    pixel is found and the keypoint placed at that pixel's centre, scaled back to the ROI's
    exact size. Returns [N, K, (x, y, score)] float32 pixels; score is the resized logit at the
    arg-max.
    """
    import cv2

    heatmaps = np.asarray(heatmaps, dtype=np.float32)
    rois = np.asarray(rois, dtype=np.float32)
    n, k = heatmaps.shape[0], heatmaps.shape[-1]
    out = np.zeros((n, k, 3), dtype=np.float32)
    for i in range(n):
        y1, x1, y2, x2 = rois[i]
        width, height = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
        w_px, h_px = int(np.ceil(width)), int(np.ceil(height))
        maps = cv2.resize(heatmaps[i], (w_px, h_px), interpolation=cv2.INTER_CUBIC)
        maps = maps.reshape(h_px, w_px, k)
        flat = maps.reshape(-1, k)
        pos = np.argmax(flat, axis=0)
        row, col = np.divmod(pos, w_px)
        out[i, :, 0] = (col + 0.5) * (width / w_px) + x1
        out[i, :, 1] = (row + 0.5) * (height / h_px) + y1
        out[i, :, 2] = flat[pos, np.arange(k)]
    return out


def flip_keypoints(keypoints, width, flip_map):
    """Keypoints of the horizontally flipped image: x -> width - x, and the left/right pairs
    of flip_map [(i, j), ...] swapped. keypoints: [N, K, (x, y, v)]; returns a new array."""
    keypoints = np.array(keypoints, dtype=np.float32, copy=True)
    keypoints[..., 0] = width - keypoints[..., 0]
    order = np.arange(keypoints.shape[1])
    for i, j in flip_map or []:
        order[i], order[j] = j, i
    return keypoints[:, order]


def scale_keypoints(keypoints, scale, padding, crop=None):
    """Keypoints of an image resized like ops.image.resize_image (scale, then pad or crop):
    x -> x * scale + left pad - crop x. padding: [(top, bottom), (left, right), ...]; crop:
    (y, x, h, w) or None. Keypoints that leave a crop window get v = 0."""
    keypoints = np.array(keypoints, dtype=np.float32, copy=True)
    keypoints[..., :2] *= scale
    keypoints[..., 0] += padding[1][0]
    keypoints[..., 1] += padding[0][0]
    if crop is not None:
        cy, cx, ch, cw = crop
        keypoints[..., 0] -= cx
        keypoints[..., 1] -= cy
        outside = ((keypoints[..., 0] < 0) | (keypoints[..., 1] < 0) |
                   (keypoints[..., 0] > cw) | (keypoints[..., 1] > ch))
        keypoints[..., 2] = np.where(outside, 0, keypoints[..., 2])
    return keypoints


def keypoint_boxes(keypoints):
    """Tight boxes [N, (y1, x1, y2, x2)] around each instance's labelled keypoints (zeros for
    an instance without any), e.g. for OKS areas or detections without masks."""
    keypoints = np.asarray(keypoints, dtype=np.float32)
    labelled = keypoints[..., 2] > 0
    big = np.float32(np.inf)
    xs = keypoints[..., 0]
    ys = keypoints[..., 1]
    x1 = np.where(labelled, xs, big).min(axis=1)
    y1 = np.where(labelled, ys, big).min(axis=1)
    x2 = np.where(labelled, xs, -big).max(axis=1)
    y2 = np.where(labelled, ys, -big).max(axis=1)
    boxes = np.stack([y1, x1, y2, x2], axis=1)
    return np.where(labelled.any(axis=1)[:, None], boxes, 0).astype(np.float32)
