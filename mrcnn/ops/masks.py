"""Instance-mask operations (NumPy).

Masks are [height, width, instances] bool arrays, one channel per instance. Boxes are pixel boxes
(y1, x1, y2, x2) with y2/x2 exclusive (see ops.boxes).
"""

import numpy as np

from mrcnn.ops.image import resize

__all__ = ["extract_bboxes", "compute_overlaps_masks", "resize_mask", "minimize_mask",
           "expand_mask", "unmold_mask", "unmold_masks"]


def extract_bboxes(mask):
    """Bounding boxes of masks. mask: [height, width, N]. Returns int32 [N, (y1, x1, y2, x2)],
    pixels, y2/x2 exclusive; all zeros for an empty mask."""
    mask = np.asarray(mask)
    boxes = np.zeros([mask.shape[-1], 4], dtype=np.int32)
    for i in range(mask.shape[-1]):
        m = mask[:, :, i]
        rows = np.where(np.any(m, axis=1))[0]
        cols = np.where(np.any(m, axis=0))[0]
        if rows.size:
            boxes[i] = [rows[0], cols[0], rows[-1] + 1, cols[-1] + 1]
    return boxes


def compute_overlaps_masks(masks1, masks2):
    """IoU between two sets of masks [height, width, N] (thresholded at 0.5). Returns [N1, N2];
    zeros when either set is empty. The masks must have the same height and width."""
    masks1 = np.asarray(masks1)
    masks2 = np.asarray(masks2)
    if masks1.shape[-1] == 0 or masks2.shape[-1] == 0:
        return np.zeros((masks1.shape[-1], masks2.shape[-1]))
    if masks1.shape[:2] != masks2.shape[:2]:
        raise ValueError(f"mask sizes differ: {masks1.shape[:2]} vs {masks2.shape[:2]}")
    m1 = np.reshape(masks1 > 0.5, (-1, masks1.shape[-1])).astype(np.float32)
    m2 = np.reshape(masks2 > 0.5, (-1, masks2.shape[-1])).astype(np.float32)
    area1 = np.sum(m1, axis=0)
    area2 = np.sum(m2, axis=0)
    intersections = np.dot(m1.T, m2)
    union = area1[:, None] + area2[None, :] - intersections
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, intersections / np.where(union > 0, union, 1), 0.0)


def resize_mask(mask, scale, padding, crop=None):
    """Resizes a mask the way resize_image resized its image (nearest neighbour), then pads or
    crops it. mask: [height, width, N]; scale, padding, crop: as returned by resize_image.
    The output has exactly the image's output height and width."""
    mask = np.asarray(mask)
    h, w = mask.shape[:2]
    if scale != 1:
        out_h, out_w = int(round(h * scale)), int(round(w * scale))
        # Nearest-neighbour sampling at the centres of the output pixels.
        ys = np.minimum(((np.arange(out_h) + 0.5) * h / out_h).astype(np.int64), h - 1)
        xs = np.minimum(((np.arange(out_w) + 0.5) * w / out_w).astype(np.int64), w - 1)
        mask = mask[ys][:, xs]
    if crop is not None:
        y, x, ch, cw = crop
        mask = mask[y:y + ch, x:x + cw]
    else:
        mask = np.pad(mask, padding, mode="constant", constant_values=0)
    return mask


def minimize_mask(bbox, mask, mini_shape):
    """Crops each instance mask to its box and resizes it to mini_shape (bool), saving memory.

    bbox: [N, (y1, x1, y2, x2)] pixels; mask: [height, width, N]. Returns [mh, mw, N] bool.
    Raises ValueError naming the instance when a box has zero area.
    """
    mini_mask = np.zeros(tuple(mini_shape) + (mask.shape[-1],), dtype=bool)
    for i in range(mask.shape[-1]):
        m = mask[:, :, i].astype(bool)
        y1, x1, y2, x2 = bbox[i][:4]
        m = m[y1:y2, x1:x2]
        if m.size == 0:
            raise ValueError(f"Invalid bounding box with area of zero (instance {i}: {bbox[i]})")
        m = resize(m.astype(np.float32), mini_shape)
        mini_mask[:, :, i] = np.around(m).astype(bool)
    return mini_mask


def expand_mask(bbox, mini_mask, image_shape):
    """Inverse of minimize_mask: pastes mini masks back into full-size masks.

    bbox: [N, (y1, x1, y2, x2)] pixels; mini_mask: [mh, mw, N]; image_shape: (height, width, ...).
    Returns [height, width, N] bool.
    """
    mask = np.zeros(tuple(image_shape[:2]) + (mini_mask.shape[-1],), dtype=bool)
    for i in range(mask.shape[-1]):
        m = mini_mask[:, :, i].astype(np.float32)
        y1, x1, y2, x2 = bbox[i][:4]
        h, w = y2 - y1, x2 - x1
        if h <= 0 or w <= 0:
            continue
        m = resize(m, (h, w))
        mask[y1:y2, x1:x2, i] = np.around(m).astype(bool)
    return mask


def _paste(out, mask, bbox, threshold=0.5):
    """Resizes soft mask [mh, mw] to pixel box bbox, thresholds it and writes the part inside
    out [height, width] (a view)."""
    y1, x1, y2, x2 = (int(v) for v in bbox[:4])
    if y2 <= y1 or x2 <= x1:
        return
    # The box may extend past the image edge after rounding; paste the part that is inside.
    h, w = out.shape
    yy1, xx1, yy2, xx2 = max(y1, 0), max(x1, 0), min(y2, h), min(x2, w)
    if yy2 > yy1 and xx2 > xx1:
        m = resize(np.asarray(mask, dtype=np.float32), (y2 - y1, x2 - x1)) >= threshold
        out[yy1:yy2, xx1:xx2] = m[yy1 - y1:yy2 - y1, xx1 - x1:xx2 - x1]


def unmold_mask(mask, bbox, image_shape):
    """Pastes a predicted soft mask into an image-size bool mask.

    mask: [mh, mw] float in [0, 1] (e.g. 28x28); bbox: (y1, x1, y2, x2) pixels; image_shape:
    (height, width, ...). The mask is resized to the box and thresholded at 0.5.
    """
    full_mask = np.zeros(tuple(image_shape[:2]), dtype=bool)
    _paste(full_mask, mask, bbox)
    return full_mask


def unmold_masks(masks, boxes, image_shape):
    """unmold_mask for N masks at once: masks [N, mh, mw], boxes [N, (y1, x1, y2, x2)] pixels.
    Returns [height, width, N] bool, written in place (no per-mask image-size arrays)."""
    full = np.zeros(tuple(image_shape[:2]) + (len(masks),), dtype=bool)
    for i in range(len(masks)):
        _paste(full[:, :, i], masks[i], boxes[i])
    return full
