import numpy as np

from mrcnn.layers import ProposalLayer
from tests.conftest import random_boxes
from tests.helpers import assert_config_round_trip
from tests.reference.numpy_ref import apply_delta, greedy_nms


def _reference(probs, deltas, anchors, count, thr, pre, std):
    out = np.zeros((count, 4))
    scores = probs[:, 1]
    order = np.argsort(-scores, kind="stable")[:pre]
    boxes = [np.clip(apply_delta(anchors[i], deltas[i] * std), 0, 1) for i in order]
    keep = greedy_nms(boxes, scores[order], thr, count)
    for k, i in enumerate(keep):
        out[k] = boxes[i]
    return out


def test_matches_numpy_reference():
    rng = np.random.default_rng(1)
    batch, n, count, pre, thr = 3, 400, 50, 300, 0.6
    std = np.array([0.1, 0.1, 0.2, 0.2])
    anchors = np.stack([random_boxes(rng, n) for _ in range(batch)])
    logits = rng.normal(size=(batch, n, 2))
    probs = (np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)).astype(np.float32)
    deltas = rng.normal(scale=1.0, size=(batch, n, 4)).astype(np.float32)
    layer = ProposalLayer(count, thr, pre_nms_limit=pre, rpn_bbox_std_dev=std)
    out = np.asarray(layer(probs, deltas, anchors))
    assert out.shape == (batch, count, 4)
    for b in range(batch):
        ref = _reference(probs[b], deltas[b], anchors[b], count, thr, pre, std)
        np.testing.assert_allclose(out[b], ref, atol=1e-5)


def test_pads_with_zeros_when_few_boxes():
    rng = np.random.default_rng(2)
    anchors = random_boxes(rng, 5)[None]
    probs = np.tile([[0.2, 0.8]], (1, 5, 1)).astype(np.float32)
    out = np.asarray(ProposalLayer(10, 0.99)(probs, np.zeros((1, 5, 4), np.float32), anchors))
    assert out.shape == (1, 10, 4)
    assert np.all(out[0, 5:] == 0) and np.all(out[0, :5].sum(-1) > 0)


def test_config_round_trip():
    assert_config_round_trip(ProposalLayer(100, 0.7, 500, [0.1, 0.1, 0.2, 0.2], name="ROI"))
