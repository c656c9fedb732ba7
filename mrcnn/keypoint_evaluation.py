"""Keypoint evaluation: COCO ground truth and results for OKS AP (pycocotools COCOeval,
iouType "keypoints", run by evaluation.coco_metrics; evaluation.evaluate_dataset and
evaluation.evaluate_keypoints use these).

OKS (object keypoint similarity) of a detection with a GT instance is the mean over the GT's
labelled keypoints of exp(-d^2 / (2 s^2 k^2)), with d the distance in pixels, s^2 the GT's
area and k = 2 * sigma per keypoint (COCO's definition). AP averages over OKS thresholds
0.50:0.95 like box AP over IoU thresholds.
"""

import contextlib
import io

import numpy as np

__all__ = ["COCO_PERSON_SIGMAS", "oks_sigmas", "build_keypoint_gt", "keypoint_results"]

# COCO's 17 person keypoints (nose, eyes, ears, shoulders, elbows, wrists, hips, knees,
# ankles): the sigmas of pycocotools' COCOeval.
COCO_PERSON_SIGMAS = (.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87,
                      .87, .89, .89)
COCO_PERSON_SIGMAS = tuple(s / 10.0 for s in COCO_PERSON_SIGMAS)


def oks_sigmas(config):
    """Config.KEYPOINT_OKS_SIGMAS, or COCO's person sigmas for 17 keypoints."""
    if config.KEYPOINT_OKS_SIGMAS is not None:
        return np.asarray(config.KEYPOINT_OKS_SIGMAS, dtype=np.float64)
    if config.NUM_KEYPOINTS == len(COCO_PERSON_SIGMAS):
        return np.asarray(COCO_PERSON_SIGMAS)
    raise ValueError(f"no OKS sigmas for NUM_KEYPOINTS = {config.NUM_KEYPOINTS}: set "
                     "Config.KEYPOINT_OKS_SIGMAS")


def build_keypoint_gt(image_ids, gts, category_ids, keypoint_names=()):
    """An in-memory pycocotools COCO of keypoint ground truth.

    gts: per image a dict with "masks" [H, W, N] (areas), "class_ids" [N] (negative: crowd)
    and "keypoints" [N, K, (x, y, v)] pixels. category_ids: class id -> category id.
    """
    from pycocotools.coco import COCO

    images, annotations, categories = [], [], {}
    for image_id, g in zip(image_ids, gts):
        masks = np.asarray(g["masks"])
        images.append({"id": int(image_id), "height": int(masks.shape[0]),
                       "width": int(masks.shape[1])})
        for k, cid in enumerate(np.asarray(g["class_ids"])):
            kps = np.asarray(g["keypoints"][k], dtype=np.float64)
            area = float(masks[:, :, k].sum())
            ys, xs = np.nonzero(masks[:, :, k])
            bbox = [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1),
                    float(ys.max() - ys.min() + 1)] if area else [0.0, 0.0, 0.0, 0.0]
            cat = int(category_ids(abs(int(cid))))
            categories[cat] = {"id": cat, "name": str(cat), "keypoints": list(keypoint_names)}
            annotations.append({
                "id": len(annotations) + 1, "image_id": int(image_id), "category_id": cat,
                "area": area, "bbox": bbox, "iscrowd": int(cid < 0),
                "keypoints": [float(v) for v in kps.reshape(-1)],
                "num_keypoints": int((kps[:, 2] > 0).sum())})
    coco = COCO()
    coco.dataset = {"images": images, "annotations": annotations,
                    "categories": list(categories.values())}
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def keypoint_results(image_id, result, category_ids, pixel_indices=False):
    """COCO keypoint result dicts of one detect() result (needs result["keypoints"]); the
    detection's class score ranks it.

    pixel_indices: write COCO's integer-pixel-index convention (x - 0.5, y - 0.5), to compare
    with keypoints as a COCO file stores them; False keeps mrcnn's continuous coordinates
    (what Dataset.load_keypoints returns, so build_keypoint_gt's ground truth)."""
    out = []
    for i in range(len(result["class_ids"])):
        kps = np.asarray(result["keypoints"][i], dtype=np.float64).copy()
        if pixel_indices:
            kps[:, :2] -= 0.5
        kps[:, 2] = 1.0  # COCO results carry a visibility slot; COCOeval ignores it
        y1, x1, y2, x2 = (float(v) for v in result["rois"][i])
        out.append({"image_id": int(image_id),
                    "category_id": int(category_ids(result["class_ids"][i])),
                    "keypoints": [round(float(v), 2) for v in kps.reshape(-1)],
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "score": float(result["scores"][i])})
    return out
