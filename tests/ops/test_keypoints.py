"""Keypoint targets, decoding, flips and the keypoint loss, against hand cases and direct
NumPy implementations of the paper's definitions."""

import numpy as np
import pytest

from mrcnn import losses as L
from mrcnn.ops import keypoints as K


def _cell(x, y, roi, size):
    """Direct definition: the cell of the S x S grid over roi (y1, x1, y2, x2) containing
    (x, y); a point on the far edge belongs to the last cell; None outside or for an empty
    roi."""
    y1, x1, y2, x2 = roi
    if x2 <= x1 or y2 <= y1 or not (x1 <= x <= x2 and y1 <= y <= y2):
        return None
    col = min(int((x - x1) / (x2 - x1) * size), size - 1)
    row = min(int((y - y1) / (y2 - y1) * size), size - 1)
    return row * size + col


def test_heatmap_targets_hand_cases():
    roi = [10.0, 20.0, 66.0, 76.0]   # 56 x 56 pixels: one pixel per cell at S = 56
    kps = np.array([[[20.0, 10.0, 2],     # top-left corner -> cell 0
                     [20.5, 10.5, 2],     # inside the first cell
                     [21.0, 10.0, 2],     # on the border between columns 0 and 1 -> column 1
                     [76.0, 66.0, 2],     # on the far corner -> last cell
                     [19.9, 30.0, 2],     # just left of the ROI -> ignored
                     [40.0, 30.0, 0],     # not labelled -> ignored
                     [40.0, 30.0, 1]]])   # labelled, occluded -> used
    idx, valid = K.keypoints_to_heatmap_indices(kps, np.array([roi]), 56)
    assert valid.tolist() == [[True, True, True, True, False, False, True]]
    assert idx[0, :4].tolist() == [0, 0, 1, 56 * 56 - 1]
    assert idx[0, 6] == 20 * 56 + 20


@pytest.mark.parametrize("size", [7, 56])
def test_heatmap_targets_match_definition_and_tf_twin(size):
    rng = np.random.default_rng(0)
    rois = np.sort(rng.uniform(0, 100, (30, 2, 2)), axis=1)      # [N, (lo, hi), (y, x)]
    rois = np.stack([rois[:, 0, 0], rois[:, 0, 1], rois[:, 1, 0], rois[:, 1, 1]], axis=1)
    rois[3] = [5, 5, 5, 9]                                        # empty ROI
    kps = np.concatenate([rng.uniform(-10, 110, (30, 9, 2)),
                          rng.integers(0, 3, (30, 9, 1))], axis=-1).astype(np.float32)
    kps[4, 0, :2] = rois[4, 3], rois[4, 2]                        # exactly on the far corner
    kps[4, 0, 2] = 2
    rois = rois.astype(np.float32)
    idx, valid = K.keypoints_to_heatmap_indices(kps, rois, size)
    for n in range(30):
        for k in range(9):
            x, y, v = kps[n, k]
            want = _cell(x, y, rois[n], size) if v > 0 else None
            assert valid[n, k] == (want is not None), (n, k)
            if want is not None:
                assert idx[n, k] == want, (n, k)
    tf_idx, tf_valid = K.keypoints_to_heatmap_indices_graph(kps[None], rois[None], size)
    np.testing.assert_array_equal(np.asarray(tf_valid)[0], valid)
    np.testing.assert_array_equal(np.where(valid, np.asarray(tf_idx)[0], 0), idx)


@pytest.mark.parametrize("roi", [[10, 20, 66, 76], [0, 0, 37.5, 81.25], [5.2, 3.7, 120.9, 60.1]])
def test_decoding_a_single_peak_round_trips_within_a_pixel(roi):
    size, k = 56, 3
    roi = np.array(roi, dtype=np.float32)
    rng = np.random.default_rng(1)
    y1, x1, y2, x2 = roi
    pts = np.stack([rng.uniform(x1, x2, k), rng.uniform(y1, y2, k), np.full(k, 2.0)], axis=1)
    idx, valid = K.keypoints_to_heatmap_indices(pts[None], roi[None], size)
    assert valid.all()
    maps = np.full((1, size, size, k), -5.0, dtype=np.float32)
    rows, cols = np.divmod(idx[0], size)
    maps[0, rows, cols, np.arange(k)] = 10.0
    out = K.heatmaps_to_keypoints(maps, roi[None])
    cell_w, cell_h = (x2 - x1) / size, (y2 - y1) / size
    # The decoded point lies in the peak cell: within one cell (and one pixel) of the truth.
    tol_x, tol_y = max(cell_w, 1.0), max(cell_h, 1.0)
    assert np.all(np.abs(out[0, :, 0] - pts[:, 0]) <= tol_x)
    assert np.all(np.abs(out[0, :, 1] - pts[:, 1]) <= tol_y)
    assert np.all(out[0, :, 2] > 0)  # well above the background logit of -5


def test_decoding_peak_pixel_centre_exactly():
    # ROI of 56 x 56 pixels: the resize is the identity and the peak cell is the pixel.
    roi = np.array([[100.0, 200.0, 156.0, 256.0]], dtype=np.float32)
    maps = np.zeros((1, 56, 56, 2), dtype=np.float32)
    maps[0, 3, 40, 0] = 1.0
    maps[0, 55, 0, 1] = 1.0
    out = K.heatmaps_to_keypoints(maps, roi)
    np.testing.assert_allclose(out[0, :, :2], [[240.5, 103.5], [200.5, 155.5]], atol=1e-4)
    np.testing.assert_allclose(out[0, :, 2], [1.0, 1.0], atol=1e-4)


def test_flip_swaps_pairs_and_mirrors_x():
    kps = np.array([[[10.5, 5.0, 2], [30.0, 6.0, 1], [50.0, 7.0, 2]]], dtype=np.float32)
    out = K.flip_keypoints(kps, 100, [(0, 2)])
    np.testing.assert_allclose(out[0], [[50.0, 7.0, 2], [70.0, 6.0, 1], [89.5, 5.0, 2]])
    # Flipping twice is the identity.
    np.testing.assert_allclose(K.flip_keypoints(out, 100, [(0, 2)]), kps)


def test_scale_keypoints_follows_resize_and_crop():
    kps = np.array([[[10.0, 20.0, 2], [90.0, 5.0, 2]]], dtype=np.float32)
    out = K.scale_keypoints(kps, 2.0, [(3, 3), (7, 7), (0, 0)])
    np.testing.assert_allclose(out[0, :, :2], [[27.0, 43.0], [187.0, 13.0]])
    out = K.scale_keypoints(kps, 1.0, [(0, 0), (0, 0), (0, 0)], crop=(0, 0, 50, 50))
    assert out[0, :, 2].tolist() == [2, 0]


def test_keypoint_boxes():
    kps = np.array([[[1, 2, 2], [5, 9, 1], [100, 100, 0]],
                    [[0, 0, 0], [0, 0, 0], [0, 0, 0]]], dtype=np.float32)
    np.testing.assert_allclose(K.keypoint_boxes(kps), [[2, 1, 9, 5], [0, 0, 0, 0]])


def test_keypoint_loss_matches_numpy_definition():
    rng = np.random.default_rng(3)
    b, r, s, k = 2, 5, 6, 3
    logits = rng.normal(size=(b, r, s, s, k)).astype(np.float32)
    idx = rng.integers(0, s * s, (b, r, k))
    valid = rng.random((b, r, k)) > 0.3
    class_ids = np.array([[1, 2, 0, 1, -1], [0, 0, 3, 1, 0]])
    terms = []
    for i in range(b):
        for j in range(r):
            if class_ids[i, j] <= 0:
                continue
            for kk in range(k):
                if valid[i, j, kk]:
                    z = logits[i, j, :, :, kk].reshape(-1)
                    z = z - z.max()
                    terms.append(-(z[idx[i, j, kk]] - np.log(np.exp(z).sum())))
    got = float(L.mrcnn_keypoint_loss_graph(idx, valid, class_ids, logits))
    assert got == pytest.approx(np.mean(terms), rel=1e-5)


def test_keypoint_loss_is_zero_without_labelled_keypoints():
    logits = np.random.default_rng(0).normal(size=(1, 2, 4, 4, 2)).astype(np.float32)
    got = L.mrcnn_keypoint_loss_graph(np.zeros((1, 2, 2), int), np.zeros((1, 2, 2), bool),
                                      np.array([[1, 1]]), logits)
    assert float(got) == 0.0
