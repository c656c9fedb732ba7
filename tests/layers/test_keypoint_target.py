"""KeypointTargetLayer against a direct NumPy construction: each positive ROI's GT (largest
IoU among non-crowd GT boxes), its pixel ROI, and the one-hot cell of every labelled keypoint
inside it."""

import numpy as np

from mrcnn.layers import KeypointTargetLayer
from mrcnn.ops.boxes import compute_overlaps
from tests.helpers import assert_config_round_trip

H, W, S, K = 96, 128, 8, 4


def _reference(rois, class_ids, gt_ids, gt_boxes, gt_kps):
    scale = np.array([H - 1, W - 1, H - 1, W - 1], np.float64)
    shift = np.array([0, 0, 1, 1], np.float64)
    idx = np.zeros(class_ids.shape + (K,), np.int32)
    valid = np.zeros(class_ids.shape + (K,), bool)
    for b in range(rois.shape[0]):
        usable = (gt_ids[b] > 0) & (np.prod(gt_boxes[b, :, 2:] - gt_boxes[b, :, :2], 1) > 0)
        ov = compute_overlaps(rois[b].astype(np.float64), gt_boxes[b].astype(np.float64))
        ov[:, ~usable] = -1
        for t in range(rois.shape[1]):
            if class_ids[b, t] <= 0:
                continue
            g = int(np.argmax(ov[t]))
            y1, x1, y2, x2 = rois[b, t] * scale + shift
            for k in range(K):
                x, y, v = gt_kps[b, g, k]
                if v <= 0 or not (x1 <= x <= x2 and y1 <= y <= y2):
                    continue
                col = min(int(np.floor((x - x1) * S / (x2 - x1))), S - 1)
                row = min(int(np.floor((y - y1) * S / (y2 - y1))), S - 1)
                idx[b, t, k] = row * S + col
                valid[b, t, k] = True
    return idx, valid


def test_keypoint_targets_match_numpy_reference():
    rng = np.random.default_rng(7)
    b, t, g = 2, 12, 3
    gt_px = np.array([[[10, 10, 60, 50], [40, 60, 90, 120], [0, 0, 0, 0]],
                      [[5, 5, 40, 100], [20, 30, 80, 70], [30, 30, 60, 60]]], np.float64)
    gt_ids = np.array([[1, 2, 0], [1, 1, -1]], np.int32)   # padding; a crowd
    norm = (gt_px - [0, 0, 1, 1]) / [H - 1, W - 1, H - 1, W - 1]
    norm[0, 2] = 0
    # ROIs: jittered GT boxes (positives) and random boxes.
    rois = []
    for bi in range(b):
        src = gt_px[bi][rng.integers(0, 2, t)] + rng.normal(0, 4, (t, 4))
        src[:, 2:] = np.maximum(src[:, 2:], src[:, :2] + 4)
        rois.append((src - [0, 0, 1, 1]) / [H - 1, W - 1, H - 1, W - 1])
    rois = np.clip(np.array(rois), 0, 1).astype(np.float32)
    class_ids = rng.integers(-0, 3, (b, t)).astype(np.int32)
    class_ids[:, -2:] = 0
    kps = np.zeros((b, g, K, 3), np.float32)
    for bi in range(b):
        for gi in range(g):
            y1, x1, y2, x2 = gt_px[bi, gi]
            kps[bi, gi, :, 0] = rng.uniform(x1 - 5, x2 + 5, K)
            kps[bi, gi, :, 1] = rng.uniform(y1 - 5, y2 + 5, K)
            kps[bi, gi, :, 2] = rng.integers(0, 3, K)
    image = np.zeros((b, H, W, 3), np.float32)
    layer = KeypointTargetLayer(S)
    idx, valid = layer(rois, class_ids, gt_ids, norm.astype(np.float32), kps, image)
    want_idx, want_valid = _reference(rois, class_ids, gt_ids, norm, kps)
    np.testing.assert_array_equal(np.asarray(valid), want_valid)
    np.testing.assert_array_equal(np.asarray(idx), want_idx)
    assert want_valid.sum() > 10 and (~want_valid[class_ids > 0]).sum() > 0
    assert_config_round_trip(layer)
