"""Drawing tracked instances onto frames: the annotated style and the colour splash.

Frames are [H, W, 3] uint8 RGB; masks [H, W, N] bool; boxes [N, (y1, x1, y2, x2)] pixels.
cv2 is imported inside the functions that need it.
"""

import colorsys

import numpy as np

__all__ = ["track_color", "color_splash", "annotate_frame", "mask_crops", "render", "STYLES"]

STYLES = ("annotate", "splash")
_GOLDEN = 0.618033988749895


def track_color(track_id):
    """The RGB uint8 colour of a track: a deterministic function of its id (hues spread by the
    golden ratio, so consecutive ids get far-apart colours)."""
    hue = (int(track_id) * _GOLDEN) % 1.0
    saturation = 0.95 - 0.25 * ((int(track_id) // 7) % 2)
    r, g, b = colorsys.hsv_to_rgb(hue, saturation, 1.0)
    return np.array([round(r * 255), round(g * 255), round(b * 255)], dtype=np.uint8)


def color_splash(image, mask):
    """Grayscale image with the original colours kept where any instance mask is set
    (matterport's balloon splash).

    image: [H, W, 3] RGB uint8; mask: [H, W, N] bool (N may be 0). Returns [H, W, 3] uint8.
    The gray is skimage.color.rgb2gray's luminance (0.2125 R + 0.7154 G + 0.0721 B), truncated
    to uint8 as balloon.py's splash did.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"image must be [H, W, 3] RGB, got shape {image.shape}")
    gray = (image.astype(np.float64) / 255.0) @ np.array([0.2125, 0.7154, 0.0721])
    gray = (gray * 255).astype(np.uint8)[..., None]
    mask = np.asarray(mask)
    if mask.ndim == 3 and mask.shape[-1] > 0:
        keep = np.any(mask, axis=-1, keepdims=True)
        return np.where(keep, image, gray).astype(np.uint8)
    return np.repeat(gray, 3, axis=-1)


def mask_crops(masks):
    """[H, W, N] bool -> N (tight box (y1, x1, y2, x2) pixels, mask inside it) pairs, the
    crop None for an empty mask. The crops are views, not copies."""
    from mrcnn.video.tracking import mask_boxes

    tight, nonempty = mask_boxes(masks)
    return [((y1, x1, y2, x2), masks[y1:y2, x1:x2, k] if ok else None)
            for k, ((y1, x1, y2, x2), ok) in enumerate(zip(tight.tolist(), nonempty))]


def annotate_frame(image, boxes, masks, track_ids, labels=None, alpha=0.5):
    """Masks blended in their track's colour, a 1-pixel outline and an "id label" caption.

    image: [H, W, 3] RGB uint8; boxes: [N, (y1, x1, y2, x2)] pixels; masks: [H, W, N] bool or
    None; track_ids: [N] ints; labels: optional [N] strings (class names). Returns a new
    [H, W, 3] uint8 image. Pixels outside every mask, outline and caption are unchanged.
    """
    crops = mask_crops(masks) if masks is not None else [(None, None)] * len(track_ids)
    return _annotate(image, boxes, crops, track_ids, labels, alpha)


def _annotate(image, boxes, crops, track_ids, labels=None, alpha=0.5):
    import cv2

    out = np.array(image, dtype=np.uint8, copy=True)
    colors = [track_color(t) for t in track_ids]
    for k, ((tight, m), color) in enumerate(zip(crops, colors)):
        bgr = tuple(int(c) for c in color)
        if m is not None:
            y1, x1, y2, x2 = tight
            region = out[y1:y2, x1:x2]
            region[m] = (region[m] * (1 - alpha) + color * alpha).astype(np.uint8)
            contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL,
                                           cv2.CHAIN_APPROX_SIMPLE, offset=(int(x1), int(y1)))
            cv2.drawContours(out, contours, -1, bgr, 1)
        else:
            y1, x1, y2, x2 = (int(v) for v in boxes[k])
            cv2.rectangle(out, (x1, y1), (x2 - 1, y2 - 1), bgr, 1)
    scale = max(0.35, min(out.shape[:2]) / 900)
    for k, color in enumerate(colors):
        y1, x1 = int(boxes[k][0]), int(boxes[k][1])
        text = f"{track_ids[k]}" + (f" {labels[k]}" if labels is not None else "")
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        ty = max(y1, th + base)
        cv2.rectangle(out, (x1, ty - th - base), (x1 + tw, ty), tuple(int(c) for c in color),
                      -1)
        cv2.putText(out, text, (x1, ty - base), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1,
                    cv2.LINE_AA)
    return out


def render(style, image, boxes, crops, track_ids, labels=None):
    """One output frame in `style` ("annotate" or "splash"). crops: mask_crops() of the
    instances' masks (one (box, crop) pair per instance)."""
    if style == "annotate":
        return _annotate(image, boxes, crops, track_ids, labels)
    if style == "splash":
        image = np.asarray(image)
        keep = np.zeros(image.shape[:2] + (1,), dtype=bool)
        for (y1, x1, y2, x2), m in crops:
            if m is not None:
                keep[y1:y2, x1:x2, 0] |= m
        return color_splash(image, keep)
    raise ValueError(f"unknown style {style!r}; expected one of {STYLES}")
