import numpy as np
import pytest

from mrcnn import evaluation as E
from mrcnn.utils import Dataset


def _mask(h, w, box):
    m = np.zeros((h, w), bool)
    m[box[0]:box[2], box[1]:box[3]] = True
    return m


def _instances(boxes, h=20, w=20):
    masks = np.stack([_mask(h, w, b) for b in boxes], -1) if boxes else np.zeros((h, w, 0), bool)
    return np.array(boxes, np.int32).reshape(-1, 4), masks


def test_compute_ap_hand_case():
    gt_boxes, gt_masks = _instances([[0, 0, 10, 10], [10, 10, 20, 20]])
    p_boxes, p_masks = _instances([[0, 0, 10, 10], [0, 10, 10, 20], [10, 10, 20, 20]])
    # Scores rank: TP (0.9), FP (0.8), TP (0.7) -> precisions 1, 1/2, 2/3 at recalls .5, .5, 1
    # All-point interpolated AP = 0.5 * 1 + 0.5 * 2/3.
    ap, precisions, recalls, _ = E.compute_ap(gt_boxes, np.array([1, 1]), gt_masks, p_boxes,
                                              np.array([1, 1, 1]), np.array([0.9, 0.8, 0.7]),
                                              p_masks)
    assert ap == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_score_threshold_filters_scores_not_ious():
    gt_boxes, gt_masks = _instances([[0, 0, 10, 10]])
    p_boxes, p_masks = _instances([[0, 0, 10, 10], [0, 0, 10, 10]])
    gt_match, pred_match, _ = E.compute_matches(gt_boxes, [1], gt_masks, p_boxes, [1, 1],
                                                np.array([0.3, 0.9]), p_masks,
                                                score_threshold=0.5)
    assert len(pred_match) == 1 and gt_match.tolist() == [0]


def test_compute_ap_range_accepts_arrays_and_empty_gt():
    gt_boxes, gt_masks = _instances([[0, 0, 10, 10]])
    ap = E.compute_ap_range(gt_boxes, [1], gt_masks, gt_boxes, [1], [0.9], gt_masks,
                            iou_thresholds=np.array([0.5, 0.75]), verbose=0)
    assert ap == 1.0
    eb, em = _instances([])
    assert E.compute_ap(eb, [], em, eb, [], [], em)[0] == 1.0
    assert E.compute_ap(eb, [], em, gt_boxes, [1], [0.5], gt_masks)[0] == 0.0
    assert E.compute_recall(gt_boxes, eb, 0.5)[0] == 1.0
    assert E.compute_recall(eb, gt_boxes, 0.5)[0] == 0.0


def test_voc_map_is_dataset_level_per_class():
    # Image 1: one class-1 object found (score .9); image 2: one class-1 object missed, a
    # false positive at .95. Ranked: FP(.95), TP(.9) -> precision 0, 1/2 at recall 0, 1/2.
    # AP(class 1) = 0.5 * 0.5 = 0.25. Class 2: its only object found -> 1.0. mAP = 0.625.
    b1, m1 = _instances([[0, 0, 10, 10], [10, 10, 20, 20]])
    b2, m2 = _instances([[0, 0, 5, 5]])
    gts = [{"class_ids": np.array([1, 2]), "masks": m1, "rois": b1},
           {"class_ids": np.array([1]), "masks": m2, "rois": b2}]
    fb, fm = _instances([[12, 12, 18, 18]])
    preds = [{"class_ids": np.array([1, 2]), "scores": np.array([0.9, 0.6]), "masks": m1,
              "rois": b1},
             {"class_ids": np.array([1]), "scores": np.array([0.95]), "masks": fm, "rois": fb}]
    mean, per_class = E.voc_map(gts, preds, 0.5)
    assert per_class == {1: pytest.approx(0.25), 2: pytest.approx(1.0)}
    assert mean == pytest.approx(0.625)
    # The mean of per-image APs, matterport's "mAP", would differ.
    assert mean != pytest.approx(np.mean([1.0, 0.0]))


def test_coco_metrics_ground_truth_as_predictions_is_perfect():
    ds = Dataset()
    ds.add_class("toy", 7, "thing")
    ds.add_class("toy", 9, "other")
    ds.prepare()
    b1, m1 = _instances([[0, 0, 10, 10], [12, 12, 19, 19]])
    gts = [{"class_ids": np.array([1, 2]), "masks": m1, "rois": b1}]
    coco = E.build_coco_gt(ds, [0], gts)
    assert sorted(coco.getCatIds()) == [7, 9]
    result = {"rois": b1, "class_ids": np.array([1, 2]), "scores": np.array([0.9, 0.8]),
              "masks": m1}
    dets = E.detections_to_coco(ds, 0, result)
    assert [d["category_id"] for d in dets] == [7, 9]
    for kind in ("segm", "bbox"):
        stats = E.coco_metrics(coco, dets, kind)
        assert stats["AP"] == pytest.approx(1.0) and stats["AP50"] == pytest.approx(1.0)
    assert E.coco_metrics(coco, [], "segm")["AP"] == 0.0
