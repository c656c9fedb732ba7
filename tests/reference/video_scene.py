"""Synthetic video scenes with ground-truth instance ids for the video tests.

Objects (square = class 1, circle = 2, triangle = 3, as in samples/shapes) move on straight
lines over a flat background; later objects are drawn over earlier ones, and static gray
occluders over everything. Ground truth per frame is each object's *visible* mask.
`detections` turns ground truth into detect()-style results with noise: jittered masks,
objects less than half visible not detected, chosen detections dropped, false positives added.
"""

import numpy as np

BACKGROUND = (40, 40, 40)
OCCLUDER = (128, 128, 128)


class Obj:
    def __init__(self, gid, class_id, color, size, start, velocity):
        self.gid, self.class_id, self.color, self.size = gid, class_id, color, size
        self.start = np.asarray(start, dtype=float)  # (y, x) centre at frame 0
        self.velocity = np.asarray(velocity, dtype=float)  # (vy, vx) pixels per frame

    def mask(self, t, shape):
        cy, cx = self.start + t * self.velocity
        r = self.size / 2
        yy, xx = np.mgrid[:shape[0], :shape[1]]
        if self.class_id == 1:
            return (np.abs(yy - cy) <= r) & (np.abs(xx - cx) <= r)
        if self.class_id == 2:
            return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        # Triangle pointing up: below the two slanted sides and above the base.
        return (yy <= cy + r) & (yy - (cy - r) >= 2 * np.abs(xx - cx))


def render(objects, t, shape, occluders=()):
    """(frame [H, W, 3] uint8 RGB, {gid: visible mask}, {gid: full mask})."""
    frame = np.empty(shape + (3,), dtype=np.uint8)
    frame[:] = BACKGROUND
    full = {o.gid: o.mask(t, shape) for o in objects}
    visible = {}
    cover = np.zeros(shape, dtype=bool)
    for y1, x1, y2, x2 in occluders:
        cover[y1:y2, x1:x2] = True
    for k, o in enumerate(objects):
        m = full[o.gid].copy()
        for above in objects[k + 1:]:
            m &= ~full[above.gid]
        visible[o.gid] = m & ~cover
        frame[full[o.gid]] = o.color
    frame[cover] = OCCLUDER
    return frame, visible, full


def scene(objects, frames, shape, occluders=()):
    """Lists of frames, visible GT masks ({gid: mask}, objects with no visible pixel left
    out) and full masks, over `frames` frames."""
    images, gts, fulls = [], [], []
    for t in range(frames):
        image, visible, full = render(objects, t, shape, occluders)
        images.append(image)
        gts.append({g: m for g, m in visible.items() if m.any()})
        fulls.append(full)
    return images, gts, fulls


def _boxes(masks):
    out = []
    for m in masks:
        rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
        out.append([rows[0], cols[0], rows[-1] + 1, cols[-1] + 1])
    return np.array(out, dtype=np.int32).reshape(-1, 4)


def detections(objects, gts, fulls, seed=0, min_visible=0.5, drop=(), false_positives=(),
               jitter=True):
    """detect()-style results per frame from ground truth, and the gid of each detection.

    drop: (frame, gid) pairs not detected; false_positives: (frame, class_id, (y1, x1, y2, x2))
    boxes added as detections; jitter: each mask randomly grown or shrunk by one pixel
    and shifted by up to one pixel. Returns (results, gids) with gids[t][k] the object of
    detection k in frame t (None for a false positive).
    """
    import cv2

    rng = np.random.default_rng(seed)
    classes = {o.gid: o.class_id for o in objects}
    results, gids = [], []
    for t, (gt, full) in enumerate(zip(gts, fulls)):
        masks, cls, ids = [], [], []
        for g, m in gt.items():
            if m.sum() < min_visible * full[g].sum() or (t, g) in drop:
                continue
            m = m.astype(np.uint8)
            if jitter:
                op = rng.integers(3)
                kernel = np.ones((3, 3), np.uint8)
                if op == 1:
                    m = cv2.dilate(m, kernel)
                elif op == 2 and cv2.erode(m, kernel).any():
                    m = cv2.erode(m, kernel)
                dy, dx = rng.integers(-1, 2, 2)
                m = np.roll(m, (dy, dx), axis=(0, 1))
            masks.append(m.astype(bool))
            cls.append(classes[g])
            ids.append(g)
        for ft, class_id, (y1, x1, y2, x2) in false_positives:
            if ft == t:
                m = np.zeros(next(iter(full.values())).shape, dtype=bool)
                m[y1:y2, x1:x2] = True
                masks.append(m)
                cls.append(class_id)
                ids.append(None)
        shape = next(iter(full.values())).shape
        stack = np.stack(masks, -1) if masks else np.zeros(shape + (0,), dtype=bool)
        results.append({"rois": _boxes(masks), "class_ids": np.array(cls, dtype=np.int32),
                        "scores": rng.uniform(0.7, 1.0, len(masks)).astype(np.float32),
                        "masks": stack})
        gids.append(ids)
    return results, gids
