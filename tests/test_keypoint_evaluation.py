"""OKS AP via pycocotools against a direct NumPy implementation of COCO's definitions (OKS,
greedy matching by score, 101-point interpolated precision averaged over OKS 0.50:0.95)."""

import numpy as np
import pytest

from mrcnn.evaluation import coco_metrics
from mrcnn.keypoint_evaluation import COCO_PERSON_SIGMAS, build_keypoint_gt, keypoint_results

SIGMAS = np.array([0.05, 0.08, 0.1, 0.07])


def _oks(pred, gt, area, sigmas):
    vis = gt[:, 2] > 0
    d2 = ((pred[:, :2] - gt[:, :2]) ** 2).sum(axis=1)
    e = d2 / (2 * area * (2 * sigmas) ** 2)
    return float(np.exp(-e)[vis].mean())


def _ap_at(oks, scores, t):
    """One GT and one detection per image, at OKS threshold t: detections ranked by score,
    precision made monotone, sampled at 101 recall points (COCO's interpolation)."""
    order = np.argsort(-scores, kind="mergesort")
    tp = (oks[order] >= t).astype(float)
    rec = np.cumsum(tp) / len(oks)
    prec = np.cumsum(tp) / np.arange(1, len(tp) + 1)
    prec = np.maximum.accumulate(prec[::-1])[::-1]
    idx = np.searchsorted(rec, np.linspace(0, 1, 101), side="left")
    return float(np.mean([prec[i] if i < len(prec) else 0.0 for i in idx]))


def _scene(n=12, seed=0):
    rng = np.random.default_rng(seed)
    gts, dets, oks, scores = [], [], [], []
    for i in range(n):
        h, w = 120, 160
        masks = np.zeros((h, w, 1), bool)
        y1, x1 = rng.integers(10, 40, 2)
        masks[y1:y1 + 60, x1:x1 + 70] = True
        kps = np.stack([rng.uniform(x1, x1 + 70, 4), rng.uniform(y1, y1 + 60, 4),
                        rng.choice([1, 2], 4)], axis=1)
        kps[0, 2] = 0 if i % 3 == 0 else 2     # an unlabelled keypoint is not scored
        gts.append({"masks": masks, "class_ids": np.array([1]), "keypoints": kps[None]})
        pred = kps.copy()
        pred[:, :2] += rng.normal(0, 1.5 + i * 0.6, (4, 2))
        score = float(rng.uniform(0.3, 1.0))
        dets.append({"rois": np.array([[y1, x1, y1 + 60, x1 + 70]]), "class_ids": np.array([1]),
                     "scores": np.array([score]), "keypoints": pred[None]})
        oks.append(_oks(pred, kps, masks.sum(), SIGMAS))
        scores.append(score)
    return gts, dets, np.array(oks), np.array(scores)


def _evaluate(gts, dets):
    ids = list(range(len(gts)))
    coco = build_keypoint_gt(ids, gts, lambda c: c, ["a", "b", "c", "d"])
    results = []
    for i, d in zip(ids, dets):
        results += keypoint_results(i, d, lambda c: c)
    return coco_metrics(coco, results, "keypoints", sigmas=SIGMAS)


def test_perfect_keypoints_give_ap_one():
    gts, dets, _, _ = _scene()
    for g, d in zip(gts, dets):
        d["keypoints"] = g["keypoints"].copy()
    assert _evaluate(gts, dets)["AP"] == pytest.approx(1.0)


def test_perturbed_keypoints_match_numpy_oks_ap():
    gts, dets, oks, scores = _scene()
    assert 0.2 < oks.min() < 0.9 < oks.max()   # a spread across the thresholds
    got = _evaluate(gts, dets)
    want = [_ap_at(oks, scores, t) for t in np.linspace(0.5, 0.95, 10)]
    assert got["AP"] == pytest.approx(np.mean(want), abs=1e-6)
    assert got["AP50"] == pytest.approx(want[0], abs=1e-6)
    assert got["AP75"] == pytest.approx(want[5], abs=1e-6)
    assert 0 < got["AP"] < got["AP50"] < 1


def test_coco_person_sigmas_are_pycocotools():
    from pycocotools.cocoeval import Params

    np.testing.assert_allclose(COCO_PERSON_SIGMAS, Params(iouType="keypoints").kpt_oks_sigmas)
