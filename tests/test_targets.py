import numpy as np

from mrcnn.targets import rpn_targets


def test_rpn_targets_hand_case():
    anchors = np.array([
        [0, 0, 10, 10],     # IoU 1.0 with gt 0 -> positive
        [0, 0, 10, 12],     # IoU 0.833 -> positive
        [0, 5, 10, 15],     # IoU 1/3 with gt 0 -> neutral
        [50, 50, 60, 60],   # no overlap -> negative
        [30, 30, 40, 41],   # IoU 100/110 with gt 1 -> positive
        [30, 30, 50, 50],   # IoU 100/400 = 0.25 with gt 1 -> negative
    ], np.float64)
    gt = np.array([[0, 0, 10, 10], [30, 30, 40, 40]], np.float64)
    match, bbox = rpn_targets(anchors, [1, 2], gt, 8, [1, 1, 1, 1], rng=np.random.default_rng(0))
    assert match.tolist() == [1, 1, 0, -1, 1, -1]
    # Row k = target of the k-th positive anchor (0, 1, 4).
    np.testing.assert_allclose(bbox[0], [0, 0, 0, 0], atol=1e-6)
    np.testing.assert_allclose(bbox[1], [0, -1 / 12, 0, np.log(10 / 12)], atol=1e-6)
    np.testing.assert_allclose(bbox[2], [0, -0.5 / 11, 0, np.log(10 / 11)], atol=1e-6)
    assert not bbox[3:].any()


def test_forced_anchor_regresses_to_the_gt_that_selected_it():
    # Anchor X is gt A's best anchor (IoU 0.5) but overlaps gt B more (IoU 0.6 < 0.7). It is
    # positive only on A's account, so it regresses to A (matterport used B, issue #2014).
    anchors = np.array([[0, 0, 10, 20], [0, 5, 10, 25], [100, 100, 110, 110]], np.float64)
    gt = np.array([[0, 0, 10, 10], [0, 5, 10, 25]], np.float64)
    match, bbox = rpn_targets(anchors, [1, 1], gt, 6, [1, 1, 1, 1])
    assert match.tolist() == [1, 1, -1]
    np.testing.assert_allclose(bbox[0], [0, -0.25, 0, np.log(0.5)], atol=1e-6)
    np.testing.assert_allclose(bbox[1], [0, 0, 0, 0], atol=1e-6)


def test_degenerate_gt_and_empty_images_give_no_nan():
    anchors = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float64)
    match, bbox = rpn_targets(anchors, [1], np.array([[5, 5, 5, 9]]), 4, [1, 1, 1, 1])
    assert match.tolist() == [-1, -1] and np.isfinite(bbox).all()
    match, bbox = rpn_targets(anchors, np.zeros([0]), np.zeros((0, 4)), 4, [1, 1, 1, 1])
    assert match.tolist() == [-1, -1]


def test_crowd_overlapping_anchors_are_not_negative():
    anchors = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float64)
    match, _ = rpn_targets(anchors, [-1], np.array([[0, 0, 10, 10]]), 4, [1, 1, 1, 1])
    assert match.tolist() == [0, -1]


def test_positive_and_negative_caps():
    rng = np.random.default_rng(1)
    anchors = np.array([[0, 0, 10, 10]] * 20 + [[50, 50, 60, 60]] * 30, np.float64)
    match, bbox = rpn_targets(anchors, [1], np.array([[0, 0, 10, 10]]), 16, [1, 1, 1, 1],
                              rng=rng)
    assert np.sum(match == 1) == 8 and np.sum(match == -1) == 8
