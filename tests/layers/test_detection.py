import numpy as np

from mrcnn.layers import DetectionLayer
from mrcnn.ops.boxes import norm_boxes
from mrcnn.ops.image_meta import compose_image_meta
from tests.conftest import random_boxes
from tests.helpers import assert_config_round_trip
from tests.reference.numpy_ref import apply_delta, greedy_nms


def _reference(rois, probs, deltas, window, max_inst, min_conf, thr, std):
    cls = probs.argmax(-1)
    score = probs[np.arange(len(rois)), cls]
    cand = {}
    for i in range(len(rois)):
        if cls[i] == 0 or score[i] < min_conf or not rois[i].any():
            continue
        box = apply_delta(rois[i], deltas[i, cls[i]] * std)
        box = [min(max(box[0], window[0]), window[2]), min(max(box[1], window[1]), window[3]),
               min(max(box[2], window[0]), window[2]), min(max(box[3], window[1]), window[3])]
        cand.setdefault(cls[i], []).append((box, score[i]))
    dets = []
    for c, items in cand.items():
        keep = greedy_nms([b for b, _ in items], [s for _, s in items], thr, max_inst)
        dets += [items[k][0] + [c, items[k][1]] for k in keep]
    dets.sort(key=lambda d: -d[5])
    out = np.zeros((max_inst, 6))
    if dets:
        out[:len(dets[:max_inst])] = dets[:max_inst]
    return out


def test_matches_numpy_reference():
    rng = np.random.default_rng(3)
    batch, n, classes = 2, 300, 5
    std = np.array([0.1, 0.1, 0.2, 0.2])
    rois = np.stack([random_boxes(rng, n) for _ in range(batch)])
    rois[1, -20:] = 0
    logits = rng.normal(scale=2.0, size=(batch, n, classes))
    probs = (np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)).astype(np.float32)
    deltas = rng.normal(scale=0.5, size=(batch, n, classes, 4)).astype(np.float32)
    shape = (128, 128, 3)
    windows = [(10, 0, 118, 128), (0, 20, 128, 100)]
    meta = np.stack([compose_image_meta(0, shape, shape, w, 1.0, np.ones(classes))
                     for w in windows]).astype(np.float32)
    layer = DetectionLayer(max_instances=40, min_confidence=0.3, nms_threshold=0.4,
                           bbox_std_dev=std)
    out = np.asarray(layer(rois, probs, deltas, meta))
    assert out.shape == (batch, 40, 6)
    for b in range(batch):
        window = norm_boxes(np.array(windows[b]), shape[:2])
        ref = _reference(rois[b], probs[b], deltas[b], window, 40, 0.3, 0.4, std)
        np.testing.assert_allclose(out[b], ref, atol=1e-5)


def test_dynamic_batch_sizes():
    layer = DetectionLayer(max_instances=5, min_confidence=0.0)
    for batch in (1, 2, 3):
        rng = np.random.default_rng(batch)
        rois = np.stack([random_boxes(rng, 20) for _ in range(batch)])
        probs = rng.dirichlet(np.ones(3), (batch, 20)).astype(np.float32)
        meta = np.tile(compose_image_meta(0, (64, 64, 3), (64, 64, 3), (0, 0, 64, 64), 1,
                                          np.ones(3)), (batch, 1)).astype(np.float32)
        out = layer(rois, probs, np.zeros((batch, 20, 3, 4), np.float32), meta)
        assert tuple(out.shape) == (batch, 5, 6)


def test_config_round_trip():
    assert_config_round_trip(DetectionLayer(100, 0.7, 0.3, [0.1, 0.1, 0.2, 0.2],
                                            name="mrcnn_detection"))
