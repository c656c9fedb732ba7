import numpy as np
import pytest
import tensorflow as tf

from mrcnn.ops import boxes as B
from tests.conftest import random_boxes
from tests.reference.numpy_ref import greedy_nms, iou


def test_iou_hand_computed():
    # Two 2x2 boxes sharing a 1x2 strip: IoU = 2 / (4 + 4 - 2) = 1/3.
    a = np.array([[0, 0, 2, 2]], np.float32)
    b = np.array([[1, 0, 3, 2], [5, 5, 6, 6], [0, 0, 2, 2]], np.float32)
    expected = [[1 / 3, 0.0, 1.0]]
    np.testing.assert_allclose(B.compute_overlaps(a, b), expected, atol=1e-7)
    np.testing.assert_allclose(B.overlaps_graph(a, b), expected, atol=1e-7)


def test_overlaps_twins_and_batching():
    rng = np.random.default_rng(0)
    a, b = random_boxes(rng, 30), random_boxes(rng, 20)
    ref = np.array([[iou(x, y) for y in b] for x in a])
    np.testing.assert_allclose(B.compute_overlaps(a, b), ref, atol=1e-6)
    batched = np.asarray(B.overlaps_graph(np.stack([a, a]), np.stack([b, b])))
    np.testing.assert_allclose(batched[1], ref, atol=1e-6)


def test_degenerate_boxes_give_zero_iou():
    z = np.zeros((1, 4), np.float32)
    assert B.compute_overlaps(z, z)[0, 0] == 0
    assert float(B.overlaps_graph(z, z)[0, 0]) == 0


def test_non_max_suppression_hand_case():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 9]])
    scores = np.array([0.9, 0.8, 0.7, 0.95])
    # IoU(3, 0) = 0.9 -> 0 suppressed; IoU(3, 1) = 72/(90+100-72) = 0.61 -> suppressed.
    assert B.non_max_suppression(boxes, scores, 0.5).tolist() == [3, 2]
    assert B.non_max_suppression(np.zeros((0, 4)), np.zeros(0), 0.5).size == 0


@pytest.mark.parametrize("per_class", [False, True])
def test_batched_nms_equals_greedy_reference(per_class):
    rng = np.random.default_rng(1)
    boxes = np.stack([random_boxes(rng, 200, max_size=0.3) for _ in range(2)])
    scores = rng.uniform(size=(2, 200)).astype(np.float32)
    classes = rng.integers(0, 3, (2, 200)) if per_class else None
    idx, valid = B.batched_nms_graph(boxes, scores, 50, 0.5, 0.2, classes=classes)
    for b in range(2):
        keep = []
        for c in (range(3) if per_class else [None]):
            sel = [i for i in range(200) if scores[b, i] >= 0.2
                   and (c is None or classes[b, i] == c)]
            keep += [sel[k] for k in greedy_nms(boxes[b][sel], scores[b][sel], 0.5, 50)]
        keep = sorted(keep, key=lambda i: -scores[b, i])[:50]
        assert np.asarray(idx[b])[np.asarray(valid[b])].tolist() == keep


def test_box_deltas_round_trip():
    rng = np.random.default_rng(2)
    a, b = random_boxes(rng, 50), random_boxes(rng, 50)
    d = B.box_refinement(a, b)
    np.testing.assert_allclose(B.apply_box_deltas(a, d), b, atol=1e-5)
    d_tf = np.asarray(B.box_refinement_graph(a, b))
    np.testing.assert_allclose(d_tf, d, atol=1e-5)
    np.testing.assert_allclose(B.apply_box_deltas_graph(tf.constant(a), d_tf), b, atol=1e-5)


def test_box_refinement_hand_case():
    # Box (0,0,10,10) -> gt (5,0,15,20): dy = 5/10, dx = 5/10, log(10/10), log(20/10).
    d = B.box_refinement(np.array([[0, 0, 10, 10.]]), np.array([[5, 0, 15, 20.]]))
    np.testing.assert_allclose(d, [[0.5, 0.5, 0.0, np.log(2)]], atol=1e-6)


def test_norm_denorm_round_trip_and_convention():
    boxes = np.array([[0, 0, 128, 128], [10, 20, 30, 64]])
    n = B.norm_boxes(boxes, (128, 128))
    np.testing.assert_allclose(n[0], [0, 0, 1, 1])
    np.testing.assert_array_equal(B.denorm_boxes(n, (128, 128)), boxes)
    np.testing.assert_allclose(B.norm_boxes_graph(boxes, [128, 128]), n, atol=1e-7)
    np.testing.assert_array_equal(B.denorm_boxes_graph(n, [128, 128]), boxes)


def test_clip_boxes_per_image_window():
    boxes = np.array([[[-1, 0.5, 2, 0.7]], [[0.1, 0.1, 0.2, 0.2]]], np.float32)
    window = np.array([[0, 0, 1, 1], [0.15, 0, 1, 1]], np.float32)
    out = np.asarray(B.clip_boxes_graph(boxes, window))
    np.testing.assert_allclose(out, [[[0, 0.5, 1, 0.7]], [[0.15, 0.1, 0.2, 0.2]]])


def test_unmold_boxes_hand_case_downscaled():
    # A 640x640 image molded at 128x128 (s = 0.2): molded pixel edges (40, 16, 72, 80) are
    # original edges (200, 80, 360, 400). matterport's window renormalization + denorm_boxes
    # gave (201, 81, 358, 398): every edge moved inward, the box 3 pixels shorter and narrower.
    boxes = B.norm_boxes(np.array([[40, 16, 72, 80]]), (128, 128))
    out = B.unmold_boxes(boxes, (0, 0, 128, 128), (128, 128, 3), (640, 640, 3))
    np.testing.assert_allclose(out, [[200, 80, 360, 400]], atol=1e-4)
    # Not resized, only padded: the window's corner is subtracted and nothing else changes.
    out = B.unmold_boxes(boxes, (32, 0, 96, 128), (128, 128, 3), (64, 128, 3))
    np.testing.assert_allclose(out, [[8, 16, 40, 80]], atol=1e-4)


@pytest.mark.parametrize("original", [(640, 480), (2048, 1323), (75, 300)])
def test_unmold_boxes_inverts_resize_image(original):
    """A rectangle drawn in the original, molded by resize_image and its mask resized as
    training resizes masks, comes back to its original edges (to the molded pixel's size)."""
    from mrcnn.ops.image import resize, resize_image
    from mrcnn.ops.masks import extract_bboxes

    H, W = original
    image = np.zeros((H, W, 3), np.uint8)
    molded, window, scale, padding, _ = resize_image(image, min_dim=128, max_dim=128,
                                                     mode="square")
    y1, x1, y2, x2 = H // 5, W // 3, H // 5 + H // 2, W // 3 + W // 2
    mask = np.zeros((H, W, 1), bool)
    mask[y1:y2, x1:x2] = True
    small = resize(mask.astype(np.uint8), (window[2] - window[0], window[3] - window[1]),
                   order=0, preserve_range=True).astype(bool)
    small = np.pad(small, padding)
    molded_box = extract_bboxes(small)
    out = B.unmold_boxes(B.norm_boxes(molded_box, molded.shape), window, molded.shape,
                         image.shape)
    # Each edge within half a molded pixel (the mask's resize rounds to molded pixels);
    # matterport's map made the box up to 1/s - 1 original pixels shorter and narrower.
    assert np.abs(out[0] - [y1, x1, y2, x2]).max() <= 0.5 / scale + 1e-6


def test_unmold_boxes_graph_twin():
    rng = np.random.default_rng(3)
    boxes = rng.uniform(0, 1, (2, 7, 4)).astype(np.float32)
    windows = np.array([[0, 16, 128, 112], [32, 0, 96, 128]], np.float32)
    got = B.unmold_boxes_graph(tf.constant(boxes), tf.constant(windows), tf.constant([128, 128]),
                               tf.constant([600, 800])).numpy()
    for i in range(2):
        want = B.unmold_boxes(boxes[i], windows[i], (128, 128), (600, 800))
        np.testing.assert_allclose(got[i], want, rtol=1e-5, atol=1e-3)
