"""CLEAR MOT figures (Bernardin & Stiefelhagen, 2008) written from the definition, as a test
oracle for mrcnn.video's tracker: a loop over frames, independent of the tracker's code.

Per frame t, with ground-truth objects o and hypotheses h (reported track ids), both with
masks:
1. Correspondences of frame t-1 that are still valid (same o and h present, IoU >= threshold)
   are kept.
2. The remaining objects and hypotheses are paired to maximise the total IoU (exhaustive
   search over the small sets here), pairs below the threshold rejected.
3. A mismatch (ID switch) is counted when o is paired with an h different from the last h it
   was paired with, in any earlier frame.
MOTA = 1 - (misses + false positives + mismatches) / number of ground-truth objects over all
frames.
"""

import itertools

import numpy as np


def mask_iou(a, b):
    a = np.asarray(a, dtype=bool)
    b = np.asarray(b, dtype=bool)
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def _best_pairs(objects, hyps, iou):
    """Exhaustive maximum-IoU one-to-one pairing (sets are tiny in the tests)."""
    best, best_score = [], -1.0
    if len(objects) <= len(hyps):
        for perm in itertools.permutations(hyps, len(objects)):
            pairs = [(o, h) for o, h in zip(objects, perm) if iou[(o, h)] > 0]
            score = sum(iou[p] for p in pairs)
            if score > best_score:
                best, best_score = pairs, score
    else:
        for perm in itertools.permutations(objects, len(hyps)):
            pairs = [(o, h) for o, h in zip(perm, hyps) if iou[(o, h)] > 0]
            score = sum(iou[p] for p in pairs)
            if score > best_score:
                best, best_score = pairs, score
    return best


def clear_mot(gt_frames, hyp_frames, threshold=0.5):
    """gt_frames / hyp_frames: per frame a dict id -> [H, W] bool mask.

    Returns dict: mota, id_switches, misses, false_positives, gt (object-frames), matches,
    switches (list of (frame, object, old hyp, new hyp)), assignment (object -> set of hyps it
    was ever paired with).
    """
    last = {}  # object -> last paired hypothesis
    previous = {}  # object -> hypothesis paired in the previous frame
    misses = fps = gt_total = matches = 0
    switches = []
    assignment = {}
    for t, (gt, hyp) in enumerate(zip(gt_frames, hyp_frames)):
        gt_total += len(gt)
        iou = {(o, h): mask_iou(gt[o], hyp[h]) for o in gt for h in hyp}
        current = {}
        for o, h in previous.items():
            if o in gt and h in hyp and iou[(o, h)] >= threshold:
                current[o] = h
        free_o = [o for o in gt if o not in current]
        free_h = [h for h in hyp if h not in current.values()]
        for o, h in _best_pairs(free_o, free_h, iou):
            if iou[(o, h)] >= threshold:
                current[o] = h
        for o, h in current.items():
            if o in last and last[o] != h:
                switches.append((t, o, last[o], h))
            last[o] = h
            assignment.setdefault(o, set()).add(h)
        matches += len(current)
        misses += len(gt) - len(current)
        fps += len(hyp) - len(current)
        previous = current
    mota = 1.0 - (misses + fps + len(switches)) / gt_total if gt_total else float("nan")
    return {"mota": mota, "id_switches": len(switches), "misses": misses,
            "false_positives": fps, "gt": gt_total, "matches": matches,
            "switches": switches, "assignment": assignment}
