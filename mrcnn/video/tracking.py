"""Linking per-frame detections into tracks (pure NumPy + scipy; no TensorFlow, no cv2).

    tracker = Tracker(iou_threshold=0.3, max_age=3, min_hits=3)
    for r in detections_per_frame:          # detect() results, frame by frame
        ids = tracker.update(r["rois"], r["class_ids"], r["masks"])  # [N] track ids
        shown = [tracker.is_confirmed(t) for t in ids]

Rules:
- Cost of pairing a track with a detection: 1 - IoU of the track's last mask, moved by its
  velocity to the current frame, with the detection's mask. When either mask is absent or empty
  the boxes' IoU is used instead. Pairs of different classes, and pairs with IoU below
  `iou_threshold`, are never matched. The pairing minimises the total cost (Hungarian algorithm,
  scipy.optimize.linear_sum_assignment).
- Re-association: tracks and detections left unmatched by IoU are then paired (again
  by the Hungarian algorithm, same class only) by the distance between the track's predicted
  box centre and the detection's box centre, when it is under `reid_distance` times the larger
  side of the two boxes. This recovers an object that reappears from behind an occluder, where
  the masks seen just before and after (slivers on either side of it) do not overlap, and a
  small fast object in its second frame, before its velocity is known.
- An unmatched detection starts a new, tentative track. A tentative track is confirmed when it
  has been matched in `min_hits` consecutive frames (counting the frame it started in); one miss
  before that deletes it. So a track that is ever confirmed was born exactly `min_hits - 1`
  frames before its confirmation, which lets a caller holding back `min_hits - 1` frames report
  a track from its first frame (mrcnn.video's pipeline does: see its docs).
- A confirmed track that finds no detection is kept (and can be matched again) for `max_age`
  frames in a row; after `max_age + 1` misses it is deleted. Track ids are 1, 2, 3, ... in
  order of birth and are never reused.

Masks are [height, width, N] bool, boxes [N, (y1, x1, y2, x2)] pixels, y2/x2 exclusive.
"""

import numpy as np

__all__ = ["Tracker", "Track", "box_iou", "mask_boxes"]

_INFEASIBLE = 1e6


def box_iou(boxes1, boxes2):
    """IoU of every pair of boxes. boxes1: [N1, (y1, x1, y2, x2)], boxes2: [N2, ...] pixels.
    Returns [N1, N2] float64 (0 where the union is empty).

    The same definition as mrcnn.ops.boxes.compute_overlaps, vectorized and free of the
    TensorFlow import that module carries."""
    a = np.asarray(boxes1, dtype=np.float64).reshape(-1, 1, 4)
    b = np.asarray(boxes2, dtype=np.float64).reshape(1, -1, 4)
    h = np.maximum(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0)
    w = np.maximum(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0)
    inter = h * w

    def area(x):
        return np.maximum(x[..., 2] - x[..., 0], 0) * np.maximum(x[..., 3] - x[..., 1], 0)

    union = area(a) + area(b) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def mask_boxes(masks):
    """Tight boxes of masks [H, W, N] -> int64 [N, (y1, x1, y2, x2)] pixels (y2/x2 exclusive),
    and [N] bool "not empty". Empty masks get a zero box."""
    masks = np.asarray(masks, dtype=bool)
    rows = masks.any(axis=1)  # [H, N]
    cols = masks.any(axis=0)  # [W, N]
    nonempty = rows.any(axis=0)
    h, w = masks.shape[:2]
    y1 = np.argmax(rows, axis=0)
    y2 = h - np.argmax(rows[::-1], axis=0)
    x1 = np.argmax(cols, axis=0)
    x2 = w - np.argmax(cols[::-1], axis=0)
    boxes = np.stack([y1, x1, y2, x2], axis=1).astype(np.int64)
    boxes[~nonempty] = 0
    return boxes, nonempty


class Track:
    """One tracked instance: its id, class, state at its last match and its velocity.

    box: (y1, x1, y2, x2) pixels at the last match; crop: the mask inside `box` ([h, w] bool,
    None without a mask); velocity: (dy, dx) pixels per frame of the box centre.
    """

    __slots__ = ("track_id", "class_id", "box", "crop", "velocity", "hits", "last_frame",
                 "confirmed")

    def __init__(self, track_id, class_id, box, crop, frame):
        self.track_id = track_id
        self.class_id = int(class_id)
        self.box = np.asarray(box, dtype=np.float64)
        self.crop = crop
        self.velocity = None
        self.hits = 1
        self.last_frame = frame
        self.confirmed = False

    def predicted_offset(self, frame):
        """Integer (dy, dx) by which the last box/mask is moved to predict `frame`."""
        if self.velocity is None:
            return 0, 0
        dy, dx = self.velocity * (frame - self.last_frame)
        return int(round(dy)), int(round(dx))

    def update(self, box, crop, frame):
        box = np.asarray(box, dtype=np.float64)
        centre = (box[:2] + box[2:]) / 2
        old = (self.box[:2] + self.box[2:]) / 2
        v = (centre - old) / max(frame - self.last_frame, 1)
        self.velocity = v if self.velocity is None else 0.5 * self.velocity + 0.5 * v
        self.box, self.crop, self.last_frame = box, crop, frame
        self.hits += 1


def _pair_mask_iou(track, offset, det_mask, det_box, det_area, shape):
    """IoU of a track's mask moved by `offset` with one detection's full mask [H, W]."""
    dy, dx = offset
    ty1, tx1 = int(track.box[0]) + dy, int(track.box[1]) + dx
    th, tw = track.crop.shape
    y1, x1 = max(ty1, int(det_box[0]), 0), max(tx1, int(det_box[1]), 0)
    y2 = min(ty1 + th, int(det_box[2]), shape[0])
    x2 = min(tx1 + tw, int(det_box[3]), shape[1])
    # The track's area inside the frame (a mask moved partly out of view loses that part).
    vy1, vx1 = max(ty1, 0), max(tx1, 0)
    vy2, vx2 = min(ty1 + th, shape[0]), min(tx1 + tw, shape[1])
    if vy2 <= vy1 or vx2 <= vx1:
        return 0.0
    track_area = int(track.crop[vy1 - ty1:vy2 - ty1, vx1 - tx1:vx2 - tx1].sum())
    inter = 0
    if y2 > y1 and x2 > x1:
        inter = int(np.count_nonzero(track.crop[y1 - ty1:y2 - ty1, x1 - tx1:x2 - tx1]
                                     & det_mask[y1:y2, x1:x2]))
    union = track_area + det_area - inter
    return inter / union if union > 0 else 0.0


def _assign(cost):
    """Hungarian pairs (row, col) of a cost matrix, infeasible pairs dropped."""
    from scipy.optimize import linear_sum_assignment

    if not cost.size:
        return []
    rows, cols = linear_sum_assignment(cost)
    return [(int(i), int(k)) for i, k in zip(rows, cols) if cost[i, k] < _INFEASIBLE]


class Tracker:
    """Hungarian IoU tracker over detect() results (see the module docstring for the rules).

    iou_threshold: minimum IoU for a match; max_age: frames a confirmed track survives without
    a match; min_hits: consecutive matches before a track is confirmed (1: at once);
    use_masks: False matches on boxes only; predict_motion: move a track by its velocity
    before matching (helps across occlusions and for fast objects); reid_distance: gate of the
    re-association by centre distance, in units of the larger box side (0 turns it off).
    """

    def __init__(self, iou_threshold=0.3, max_age=3, min_hits=3, use_masks=True,
                 predict_motion=True, reid_distance=1.0):
        if not 0.0 <= iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in [0, 1], got {iou_threshold}")
        if int(max_age) != max_age or max_age < 0:
            raise ValueError(f"max_age must be an integer >= 0, got {max_age}")
        if int(min_hits) != min_hits or min_hits < 1:
            raise ValueError(f"min_hits must be an integer >= 1, got {min_hits}")
        self.iou_threshold = float(iou_threshold)
        self.max_age = int(max_age)
        self.min_hits = int(min_hits)
        self.use_masks = use_masks
        self.predict_motion = predict_motion
        if reid_distance < 0:
            raise ValueError(f"reid_distance must be >= 0, got {reid_distance}")
        self.reid_distance = float(reid_distance)
        self.tracks = []  # live tracks
        self.frame = -1  # index of the last frame passed to update()
        self._next_id = 1
        self._confirmed_ids = set()

    def is_confirmed(self, track_id):
        """Whether the track was confirmed at some frame so far (it stays so after it dies)."""
        return track_id in self._confirmed_ids

    def cost_matrix(self, boxes, class_ids, masks=None, tight=None):
        """[tracks, detections] IoU of the live tracks (as predicted for the next frame) with
        the detections; -1 where the classes differ. tight: mask_boxes(masks), if known."""
        frame = self.frame + 1
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        class_ids = np.asarray(class_ids).reshape(-1)
        n = len(boxes)
        ious = np.zeros((len(self.tracks), n))
        if not self.tracks or n == 0:
            return ious
        use_masks = self.use_masks and masks is not None and np.asarray(masks).shape[-1] == n
        if use_masks:
            masks = np.asarray(masks, dtype=bool)
            det_boxes, nonempty = mask_boxes(masks) if tight is None else tight
            det_areas = [int(masks[b[0]:b[2], b[1]:b[3], k].sum()) if nonempty[k] else 0
                         for k, b in enumerate(det_boxes)]
        offsets = [t.predicted_offset(frame) if self.predict_motion else (0, 0)
                   for t in self.tracks]
        track_boxes = np.array([t.box + np.array(o * 2) for t, o in zip(self.tracks, offsets)])
        box_ious = box_iou(track_boxes, boxes)
        for i, track in enumerate(self.tracks):
            for k in range(n):
                if class_ids[k] != track.class_id:
                    ious[i, k] = -1.0
                elif use_masks and nonempty[k] and track.crop is not None:
                    if box_ious[i, k] > 0:  # disjoint boxes: disjoint masks
                        ious[i, k] = _pair_mask_iou(track, offsets[i], masks[..., k],
                                                    det_boxes[k], det_areas[k], masks.shape)
                else:
                    ious[i, k] = box_ious[i, k]
        return ious

    def update(self, boxes, class_ids, masks=None, tight=None):
        """Advances one frame. boxes: [N, (y1, x1, y2, x2)] pixels; class_ids: [N]; masks:
        optional [H, W, N] bool; tight: mask_boxes(masks) when already computed. Returns [N]
        int64 track ids, one per detection (new detections get new, tentative ids)."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        class_ids = np.asarray(class_ids).reshape(-1)
        n = len(boxes)
        if len(class_ids) != n:
            raise ValueError(f"{n} boxes but {len(class_ids)} class ids")
        if masks is not None:
            masks = np.asarray(masks, dtype=bool)
            if masks.ndim != 3 or masks.shape[-1] != n:
                raise ValueError(f"masks must be [height, width, {n}], got {masks.shape}")
        if masks is not None and self.use_masks and tight is None:
            tight = mask_boxes(masks)
        ious = self.cost_matrix(boxes, class_ids, masks, tight)
        self.frame += 1
        frame = self.frame
        cost = np.where(ious >= max(self.iou_threshold, 1e-9), 1.0 - ious, _INFEASIBLE)
        ids = np.full(n, -1, dtype=np.int64)
        pairs = _assign(cost)
        if self.reid_distance > 0:
            left_t = [i for i in range(len(self.tracks)) if i not in {p[0] for p in pairs}]
            left_d = [k for k in range(n) if k not in {p[1] for p in pairs}]
            if left_t and left_d:
                reid = self._centre_cost(left_t, left_d, boxes, class_ids, frame)
                pairs += [(left_t[i], left_d[k]) for i, k in _assign(reid)]
        matched_tracks = set()
        for i, k in pairs:
            track = self.tracks[i]
            track.update(*self._state(boxes[k], masks, tight, k), frame)
            if track.hits >= self.min_hits and not track.confirmed:
                track.confirmed = True
                self._confirmed_ids.add(track.track_id)
            ids[k] = track.track_id
            matched_tracks.add(i)
        survivors = []
        for i, track in enumerate(self.tracks):
            if i in matched_tracks or (track.confirmed
                                       and frame - track.last_frame <= self.max_age):
                survivors.append(track)
        for k in np.flatnonzero(ids < 0):
            track = Track(self._next_id, class_ids[k], *self._state(boxes[k], masks, tight, k),
                          frame)
            self._next_id += 1
            if self.min_hits <= 1:
                track.confirmed = True
                self._confirmed_ids.add(track.track_id)
            survivors.append(track)
            ids[k] = track.track_id
        self.tracks = survivors
        return ids

    def _centre_cost(self, track_index, det_index, boxes, class_ids, frame):
        """[len(track_index), len(det_index)] centre distance / larger box side; infeasible
        across classes and beyond reid_distance."""
        cost = np.full((len(track_index), len(det_index)), _INFEASIBLE)
        for a, i in enumerate(track_index):
            track = self.tracks[i]
            offset = np.array(track.predicted_offset(frame) if self.predict_motion else (0, 0))
            centre = (track.box[:2] + track.box[2:]) / 2 + offset
            side = np.max(track.box[2:] - track.box[:2])
            for b, k in enumerate(det_index):
                if class_ids[k] != track.class_id:
                    continue
                box = boxes[k]
                d = np.hypot(*((box[:2] + box[2:]) / 2 - centre))
                scale = max(side, np.max(box[2:] - box[:2]), 1.0)
                if d < self.reid_distance * scale:
                    cost[a, b] = d / scale
        return cost

    def _state(self, box, masks, tight, k):
        """(box, crop) kept for a matched detection: the mask's tight box and the mask inside
        it, or the detection box and no crop when there is no (non-empty) mask."""
        if tight is None or not tight[1][k]:
            return box, None
        y1, x1, y2, x2 = tight[0][k]
        return tight[0][k].astype(np.float64), masks[y1:y2, x1:x2, k].copy()
