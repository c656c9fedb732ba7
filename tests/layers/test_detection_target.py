import numpy as np
import pytest

from mrcnn.layers import DetectionTargetLayer
from mrcnn.ops.boxes import box_refinement
from tests.helpers import assert_config_round_trip
from tests.reference.numpy_ref import crop_sample, iou

STD = np.array([0.1, 0.1, 0.2, 0.2])


def _case():
    """Two images with 64x64 masks; counts stay under the caps so nothing is subsampled."""
    gt_boxes = np.zeros((2, 3, 4), np.float32)
    gt_ids = np.zeros((2, 3), np.int32)
    masks = np.zeros((2, 64, 64, 3), bool)
    gt_boxes[0, :2] = [[0.1, 0.1, 0.5, 0.5], [0.5, 0.5, 0.9, 0.8]]
    gt_ids[0, :2] = [1, 2]
    gt_boxes[0, 2] = [0.0, 0.6, 0.3, 0.95]
    gt_ids[0, 2] = -1  # a crowd
    masks[0, 8:30, 8:28, 0] = True
    masks[0, 35:55, 35:50, 1] = True
    # Image 1 has no instances at all: it must still give negatives.
    proposals = np.zeros((2, 10, 4), np.float32)
    proposals[0, :7] = [[0.12, 0.1, 0.5, 0.52],   # positive for gt 0
                        [0.5, 0.48, 0.88, 0.8],   # positive for gt 1
                        [0.1, 0.1, 0.3, 0.3],     # IoU 0.25 -> negative
                        [0.02, 0.62, 0.3, 0.9],   # overlaps the crowd -> neither
                        [0.7, 0.0, 0.9, 0.2],     # negative
                        [0.15, 0.15, 0.5, 0.5],   # positive for gt 0
                        [0.0, 0.0, 0.05, 0.05]]   # negative
    proposals[1, :3] = [[0.1, 0.1, 0.4, 0.4], [0.5, 0.5, 0.6, 0.7], [0.2, 0.3, 0.9, 0.9]]
    return proposals, gt_ids, gt_boxes, masks


def _reference(proposals, gt_ids, gt_boxes, masks, t):
    rows = []
    for p in proposals:
        if not p.any():
            continue
        ious = [iou(p, g) if c > 0 else -1 for g, c in zip(gt_boxes, gt_ids)]
        crowd = max([iou(p, g) for g, c in zip(gt_boxes, gt_ids) if c < 0], default=0)
        best = int(np.argmax(ious))
        if ious[best] >= 0.5:
            delta = box_refinement(p[None], gt_boxes[best][None])[0] / STD
            m = crop_sample(masks[:, :, best:best + 1].astype(np.float64), p, 28)[..., 0]
            rows.append((0, tuple(p), gt_ids[best], delta, np.round(m)))
        elif crowd < 0.001:
            rows.append((1, tuple(p), 0, np.zeros(4), np.zeros((28, 28))))
    return sorted(rows, key=lambda r: (r[0], r[1]))[:t]


@pytest.mark.parametrize("sampler", ["crop_and_resize", "gather"])
def test_matches_reference_without_subsampling(sampler):
    proposals, gt_ids, gt_boxes, masks = _case()
    t = 12
    layer = DetectionTargetLayer(train_rois_per_image=t, roi_positive_ratio=0.5,
                                 bbox_std_dev=STD, mask_shape=(28, 28), use_mini_mask=False,
                                 sampler=sampler)
    rois, ids, deltas, tmasks = (np.asarray(x) for x in layer(proposals, gt_ids, gt_boxes,
                                                              masks))
    assert rois.shape == (2, t, 4) and ids.shape == (2, t) and tmasks.shape == (2, t, 28, 28)
    for b in range(2):
        ref = _reference(proposals[b], gt_ids[b], gt_boxes[b], masks[b], t)
        n = len(ref)
        got = sorted(range(n), key=lambda k: (int(ids[b, k] == 0), tuple(rois[b, k])))
        assert not rois[b, n:].any() and not ids[b, n:].any()
        for k, r in zip(got, ref):
            np.testing.assert_allclose(rois[b, k], r[1], atol=1e-6)
            assert ids[b, k] == r[2]
            np.testing.assert_allclose(deltas[b, k], r[3], atol=1e-4)
            assert np.mean(tmasks[b, k] != r[4]) <= 0.01  # ties at exactly 0.5 may round apart
    assert int(np.sum(ids[0] > 0)) == 3 and int(np.sum(ids[1] > 0)) == 0
    assert int(np.sum(rois[1].any(-1))) == 3  # the empty image still gives background ROIs


def test_positive_cap_and_fill():
    rng = np.random.default_rng(0)
    proposals = np.tile(np.array([[0.1, 0.1, 0.5, 0.5]], np.float32), (1, 40, 1))
    proposals[0, 20:] = [0.6, 0.6, 0.9, 0.9]
    proposals += rng.uniform(0, 0.01, proposals.shape).astype(np.float32)
    gt_boxes = np.array([[[0.1, 0.1, 0.5, 0.5]]], np.float32)
    layer = DetectionTargetLayer(16, 0.25, STD, (28, 28), use_mini_mask=True, seed=3)
    rois, ids, _, _ = layer(proposals, np.array([[1]]), gt_boxes, np.ones((1, 56, 56, 1), bool))
    ids = np.asarray(ids)[0]
    assert np.sum(ids == 1) == 4  # int(16 * 0.25)
    assert np.sum(np.asarray(rois)[0].any(-1)) == 16  # negatives fill the remaining 12


def test_mini_mask_targets_are_full_inside_a_full_mini_mask():
    proposals = np.array([[[0.12, 0.12, 0.48, 0.48]]], np.float32)  # IoU 0.81
    gt_boxes = np.array([[[0.1, 0.1, 0.5, 0.5]]], np.float32)
    layer = DetectionTargetLayer(4, 0.5, STD, (28, 28), use_mini_mask=True)
    _, ids, _, tmasks = layer(proposals, np.array([[3]]), gt_boxes, np.ones((1, 56, 56, 1), bool))
    assert np.asarray(ids)[0, 0] == 3 and np.asarray(tmasks)[0, 0].all()


def test_config_round_trip():
    assert_config_round_trip(DetectionTargetLayer(200, 0.33, STD, (28, 28), True, 0.5, 0.001,
                                                  seed=1, name="proposal_targets"))
    assert_config_round_trip(DetectionTargetLayer(8, 0.33, STD, (28, 28), True, sampler="gather"))


@pytest.mark.parametrize("batch", [1, 3])
def test_dynamic_batch(batch):
    layer = DetectionTargetLayer(8, 0.33, STD, (28, 28), use_mini_mask=True)
    out = layer(np.zeros((batch, 20, 4), np.float32), np.zeros((batch, 5), np.int32),
                np.zeros((batch, 5, 4), np.float32), np.zeros((batch, 56, 56, 5), bool))
    assert tuple(out[0].shape) == (batch, 8, 4)
