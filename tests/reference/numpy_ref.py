"""Slow, direct NumPy implementations of the paper's definitions, used as test oracles.

They are written from the definitions (loops over boxes, bins and samples), not from mrcnn's
vectorized code.
"""

import math

import numpy as np


def iou(a, b):
    """IoU of two (y1, x1, y2, x2) boxes."""
    ih = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iw = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ih * iw
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def greedy_nms(boxes, scores, threshold, limit):
    order = sorted(range(len(boxes)), key=lambda i: -scores[i])
    keep = []
    for i in order:
        if all(iou(boxes[i], boxes[k]) <= threshold for k in keep):
            keep.append(i)
        if len(keep) == limit:
            break
    return keep


def apply_delta(box, delta):
    h, w = box[2] - box[0], box[3] - box[1]
    cy, cx = box[0] + 0.5 * h + delta[0] * h, box[1] + 0.5 * w + delta[1] * w
    h, w = h * math.exp(delta[2]), w * math.exp(delta[3])
    return [cy - 0.5 * h, cx - 0.5 * w, cy + 0.5 * h, cx + 0.5 * w]


def bilinear(fm, y, x):
    """Bilinear sample of fm [H, W, C] at index coordinates (y, x); 0 outside [0, H-1]x[0, W-1]."""
    h, w = fm.shape[:2]
    if y < 0 or y > h - 1 or x < 0 or x > w - 1:
        return np.zeros(fm.shape[2])
    y0, x0 = int(math.floor(y)), int(math.floor(x))
    y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
    ly, lx = y - y0, x - x0
    return ((1 - ly) * (1 - lx) * fm[y0, x0] + (1 - ly) * lx * fm[y0, x1]
            + ly * (1 - lx) * fm[y1, x0] + ly * lx * fm[y1, x1])


def roi_align(fm, box, pool, ratio):
    """RoIAlign (He et al. 2017): bins of equal size, no quantization, each the mean of
    ratio x ratio bilinear samples at the centres of a regular grid inside the bin.
    box: normalized (y1, x1, y2, x2), 0/1 = first/last cell centre."""
    h, w = fm.shape[:2]
    y1, x1, y2, x2 = box[0] * (h - 1), box[1] * (w - 1), box[2] * (h - 1), box[3] * (w - 1)
    bh, bw = (y2 - y1) / pool, (x2 - x1) / pool
    out = np.zeros((pool, pool, fm.shape[2]))
    for i in range(pool):
        for j in range(pool):
            acc = 0
            for a in range(ratio):
                for b in range(ratio):
                    acc = acc + bilinear(fm, y1 + (i + (a + 0.5) / ratio) * bh,
                                         x1 + (j + (b + 0.5) / ratio) * bw)
            out[i, j] = acc / ratio ** 2
    return out


def crop_sample(fm, box, pool):
    """matterport's sampling: pool x pool bilinear samples from edge to edge of the box."""
    h, w = fm.shape[:2]
    out = np.zeros((pool, pool, fm.shape[2]))
    for i in range(pool):
        for j in range(pool):
            y = (box[0] + i * (box[2] - box[0]) / (pool - 1)) * (h - 1)
            x = (box[1] + j * (box[3] - box[1]) / (pool - 1)) * (w - 1)
            out[i, j] = bilinear(fm, y, x)
    return out


def fpn_level(box, image_area):
    h, w = box[2] - box[0], box[3] - box[1]
    if h * w <= 0:
        return 2
    level = 4 + np.round(math.log2(math.sqrt(h * w) / (224.0 / math.sqrt(image_area))))
    return int(min(5, max(2, level)))


def pixel_bin_sample(fm, box, pool):
    """One bilinear sample at the centre of each of pool x pool bins of a box's pixels: box
    normalized as norm_boxes makes it, its pixels [y1, y2) with y1 = box[0] * (h - 1) and
    y2 = box[2] * (h - 1) + 1; bin k's centre is the point y1 + (k + 0.5) * (y2 - y1) / pool,
    pixel index y1 + (k + 0.5) * (y2 - y1) / pool - 0.5 (a resize of those pixels to pool
    cells puts cell k there)."""
    h, w = fm.shape[:2]
    y1, x1 = box[0] * (h - 1), box[1] * (w - 1)
    y2, x2 = box[2] * (h - 1) + 1, box[3] * (w - 1) + 1
    out = np.zeros((pool, pool, fm.shape[2]))
    for i in range(pool):
        for j in range(pool):
            out[i, j] = bilinear(fm, y1 + (i + 0.5) * (y2 - y1) / pool - 0.5,
                                 x1 + (j + 0.5) * (x2 - x1) / pool - 0.5)
    return out
