import numpy as np

from mrcnn.ops import masks as M
from mrcnn.ops.image import resize_image


def test_extract_bboxes_hand_case():
    m = np.zeros((10, 10, 2), bool)
    m[2:5, 3:8, 0] = True
    assert M.extract_bboxes(m).tolist() == [[2, 3, 5, 8], [0, 0, 0, 0]]


def test_mini_mask_round_trip_keeps_full_box_masks():
    # matterport's old resize turned masks filling their whole box into zeros (#80).
    m = np.zeros((64, 64, 3), bool)
    m[10:30, 5:45, 0] = True          # a filled rectangle
    m[40:41, 40:60, 1] = True         # one pixel high
    yy, xx = np.mgrid[:64, :64]
    m[:, :, 2] = (yy - 32) ** 2 + (xx - 20) ** 2 < 100  # a disk
    boxes = M.extract_bboxes(m)
    mini = M.minimize_mask(boxes, m, (56, 56))
    assert mini[:, :, 0].all() and mini[:, :, 1].all()
    back = M.expand_mask(boxes, mini, m.shape)
    np.testing.assert_array_equal(back[:, :, :2], m[:, :, :2])
    overlap = M.compute_overlaps_masks(back[:, :, 2:], m[:, :, 2:])[0, 0]
    assert overlap > 0.95


def test_compute_overlaps_masks_hand_case():
    a = np.zeros((4, 4, 1), bool)
    a[:2, :2] = True
    b = np.zeros((4, 4, 2), bool)
    b[:2, :1, 0] = True
    b[2:, 2:, 1] = True
    np.testing.assert_allclose(M.compute_overlaps_masks(a, b), [[0.5, 0.0]])
    assert M.compute_overlaps_masks(a, np.zeros((4, 4, 0))).shape == (1, 0)


def test_resize_mask_matches_resized_image_shape():
    image = np.zeros((33, 47, 3), np.uint8)
    mask = np.zeros((33, 47, 2), bool)
    mask[5:20, 10:30, 0] = True
    for mode in ("square", "pad64"):
        out, window, scale, padding, crop = resize_image(image, min_dim=40, max_dim=128,
                                                         mode=mode)
        rmask = M.resize_mask(mask, scale, padding, crop)
        assert rmask.shape[:2] == out.shape[:2] and rmask.dtype == bool
        box = M.extract_bboxes(rmask)[0]
        y1, x1, _, _ = window
        assert abs(box[0] - (y1 + 5 * scale)) <= 1 and abs(box[1] - (x1 + 10 * scale)) <= 1


def test_unmold_mask_pastes_in_box():
    soft = np.zeros((28, 28), np.float32)
    soft[:, 14:] = 1.0
    full = M.unmold_mask(soft, (10, 20, 20, 40), (50, 60, 3))
    assert full.shape == (50, 60) and full.dtype == bool
    assert full[10:20, 30:40].all() and not full[10:20, 20:29].any() and full.sum() == 100


def test_unmold_masks_equals_unmold_mask_per_instance():
    rng = np.random.default_rng(3)
    soft = rng.random((6, 28, 28)).astype(np.float32)
    boxes = np.array([[10, 20, 20, 40], [-5, -5, 30, 12], [40, 50, 70, 80], [0, 0, 50, 60],
                      [5, 5, 5, 9], [45, 2, 49, 3]])  # inside, crossing edges, empty, thin
    full = M.unmold_masks(soft, boxes, (50, 60, 3))
    expected = np.stack([M.unmold_mask(soft[i], boxes[i], (50, 60)) for i in range(6)], -1)
    assert full.shape == (50, 60, 6) and full.dtype == bool
    np.testing.assert_array_equal(full, expected)
    assert full[:, :, 0].any() and not full[:, :, 4].any()
    assert M.unmold_masks(soft[:0], boxes[:0], (50, 60)).shape == (50, 60, 0)
