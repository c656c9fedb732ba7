"""Evaluation: matterport's per-image matching/AP helpers (bugs fixed), dataset-level VOC mAP,
and COCO metrics (pycocotools) for any utils.Dataset.

Boxes are pixel boxes (y1, x1, y2, x2); masks are [height, width, N] bool.
"""

import contextlib
import io
import time

import numpy as np

from mrcnn.ops.batching import trim_zeros
from mrcnn.ops.boxes import compute_overlaps
from mrcnn.ops.masks import compute_overlaps_masks, extract_bboxes

__all__ = ["compute_matches", "compute_ap", "compute_ap_range", "compute_recall", "voc_ap",
           "voc_map", "coco_metrics", "evaluate_dataset", "build_coco_gt", "detections_to_coco",
           "build_coco_results", "rank_by_mask_scores", "evaluate_keypoints",
           "KEYPOINT_STAT_NAMES"]


def compute_matches(gt_boxes, gt_class_ids, gt_masks, pred_boxes, pred_class_ids, pred_scores,
                    pred_masks, iou_threshold=0.5, score_threshold=0.0):
    """Greedy matching of one image's predictions to its ground truth by mask IoU.

    Predictions scoring below score_threshold are ignored (matterport compared this threshold
    to IoUs instead). In descending score order, each prediction takes the unmatched GT of its
    class with the highest IoU >= iou_threshold.
    Returns gt_match [num_gt] (index of the matched prediction or -1), pred_match [num_pred]
    (index of the matched GT or -1), and overlaps [num_pred, num_gt]; predictions are sorted by
    descending score (with those below score_threshold removed).
    """
    gt_boxes = trim_zeros(np.asarray(gt_boxes).reshape(-1, 4))
    gt_masks = np.asarray(gt_masks)[..., :gt_boxes.shape[0]]
    pred_boxes = trim_zeros(np.asarray(pred_boxes).reshape(-1, 4))
    pred_scores = np.asarray(pred_scores)[:pred_boxes.shape[0]]
    keep = np.where(pred_scores >= score_threshold)[0]
    indices = keep[np.argsort(-pred_scores[keep], kind="stable")]
    pred_boxes = pred_boxes[indices]
    pred_class_ids = np.asarray(pred_class_ids)[indices]
    pred_scores = pred_scores[indices]
    pred_masks = np.asarray(pred_masks)[..., indices]
    overlaps = compute_overlaps_masks(pred_masks, gt_masks)
    pred_match = -1 * np.ones([pred_boxes.shape[0]])
    gt_match = -1 * np.ones([gt_boxes.shape[0]])
    for i in range(len(pred_boxes)):
        for j in np.argsort(-overlaps[i], kind="stable"):
            if gt_match[j] > -1:
                continue
            if overlaps[i, j] < iou_threshold:
                break
            if pred_class_ids[i] == gt_class_ids[j]:
                gt_match[j] = i
                pred_match[i] = j
                break
    return gt_match, pred_match, overlaps


def voc_ap(recalls, precisions):
    """All-point interpolated AP (VOC 2010+) of a precision/recall curve in score order."""
    precisions = np.concatenate([[0], np.asarray(precisions, dtype=np.float64), [0]])
    recalls = np.concatenate([[0], np.asarray(recalls, dtype=np.float64), [1]])
    for i in range(len(precisions) - 2, -1, -1):
        precisions[i] = max(precisions[i], precisions[i + 1])
    indices = np.where(recalls[:-1] != recalls[1:])[0] + 1
    ap = np.sum((recalls[indices] - recalls[indices - 1]) * precisions[indices])
    return float(ap), precisions, recalls


def compute_ap(gt_boxes, gt_class_ids, gt_masks, pred_boxes, pred_class_ids, pred_scores,
               pred_masks, iou_threshold=0.5):
    """AP of ONE image at an IoU threshold (all-point interpolation), as matterport.

    For dataset-level mAP use voc_map / evaluate_dataset: the mean of per-image APs is not
    the VOC or COCO metric. An image without GT scores 1.0 when it has no predictions either and
    0.0 otherwise. Returns mAP, precisions, recalls, overlaps.
    """
    gt_match, pred_match, overlaps = compute_matches(
        gt_boxes, gt_class_ids, gt_masks, pred_boxes, pred_class_ids, pred_scores, pred_masks,
        iou_threshold)
    if len(gt_match) == 0:
        ap = 1.0 if len(pred_match) == 0 else 0.0
        return ap, np.array([0.0, ap, 0.0]), np.array([0.0, 1.0, 1.0]), overlaps
    tp = np.cumsum(pred_match > -1)
    precisions = tp / (np.arange(len(pred_match)) + 1)
    recalls = tp.astype(np.float64) / len(gt_match)
    ap, precisions, recalls = voc_ap(recalls, precisions)
    return ap, precisions, recalls, overlaps


def compute_ap_range(gt_box, gt_class_id, gt_mask, pred_box, pred_class_id, pred_score,
                     pred_mask, iou_thresholds=None, verbose=1):
    """Mean of compute_ap over IoU thresholds (default 0.5:0.05:0.95) for one image."""
    if iou_thresholds is None:
        iou_thresholds = np.arange(0.5, 1.0, 0.05)
    iou_thresholds = np.asarray(iou_thresholds, dtype=np.float64).reshape(-1)
    aps = []
    for t in iou_thresholds:
        ap, _, _, _ = compute_ap(gt_box, gt_class_id, gt_mask, pred_box, pred_class_id,
                                 pred_score, pred_mask, iou_threshold=t)
        if verbose:
            print(f"AP @{t:.2f}:\t {ap:.3f}")
        aps.append(ap)
    ap = float(np.mean(aps))
    if verbose:
        print(f"AP @{iou_thresholds[0]:.2f}-{iou_thresholds[-1]:.2f}:\t {ap:.3f}")
    return ap


def compute_recall(pred_boxes, gt_boxes, iou):
    """Fraction of GT boxes matched by some prediction with box IoU >= iou.

    Returns recall (1.0 when there is no GT) and the indices of predictions that match a GT.
    """
    gt_boxes = np.asarray(gt_boxes).reshape(-1, 4)
    pred_boxes = np.asarray(pred_boxes).reshape(-1, 4)
    if gt_boxes.shape[0] == 0:
        return 1.0, np.zeros([0], np.int64)
    if pred_boxes.shape[0] == 0:
        return 0.0, np.zeros([0], np.int64)
    overlaps = compute_overlaps(pred_boxes, gt_boxes)
    iou_max = np.max(overlaps, axis=1)
    iou_argmax = np.argmax(overlaps, axis=1)
    positive_ids = np.where(iou_max >= iou)[0]
    matched_gt_boxes = iou_argmax[positive_ids]
    return len(set(matched_gt_boxes)) / gt_boxes.shape[0], positive_ids


def voc_map(gts, preds, iou_threshold=0.5, use_masks=True):
    """Dataset-level VOC mean AP: per class, all predictions of all images ranked by score.

    gts: list per image of dicts with class_ids [N], and masks [H, W, N] or rois [N, 4];
    negative class ids are crowd regions (a prediction matching one counts as neither TP nor
    FP). preds: list per image of dicts with class_ids, scores, and masks or rois.
    A prediction is a TP when its best-IoU GT of the same class (in its image) has IoU >=
    iou_threshold and is not yet taken by a higher-scoring prediction (VOC devkit rule).
    Returns (mAP over classes that have GT, {class_id: AP}).
    """
    classes = sorted({int(c) for g in gts for c in np.asarray(g["class_ids"]) if c > 0})
    per_class = {}
    for c in classes:
        records = []  # (score, image index, pred index)
        n_gt = 0
        ious, taken = [], []
        for i, (g, p) in enumerate(zip(gts, preds)):
            g_ids = np.asarray(g["class_ids"])
            p_ids = np.asarray(p["class_ids"])
            gsel = np.where(np.abs(g_ids) == c)[0]
            psel = np.where(p_ids == c)[0]
            n_gt += int(np.sum(g_ids[gsel] > 0))
            if use_masks:
                ov = compute_overlaps_masks(np.asarray(p["masks"])[..., psel],
                                            np.asarray(g["masks"])[..., gsel])
            else:
                ov = compute_overlaps(np.asarray(p["rois"])[psel], np.asarray(g["rois"])[gsel])
            ious.append((ov, g_ids[gsel] < 0))
            taken.append(np.zeros(len(gsel), dtype=bool))
            scores = np.asarray(p["scores"])
            records += [(float(scores[k]), i, j) for j, k in enumerate(psel)]
        if n_gt == 0:
            continue
        records.sort(key=lambda r: -r[0])
        tp, fp = [], []
        for _, i, j in records:
            ov, is_crowd = ious[i]
            if ov.shape[1] == 0:
                tp.append(0)
                fp.append(1)
                continue
            best = int(np.argmax(np.where(is_crowd, -1.0, ov[j]))) if (~is_crowd).any() else -1
            if best >= 0 and ov[j, best] >= iou_threshold:
                if not taken[i][best]:
                    taken[i][best] = True
                    tp.append(1)
                    fp.append(0)
                else:
                    tp.append(0)
                    fp.append(1)
            elif is_crowd.any() and np.max(ov[j][is_crowd]) >= iou_threshold:
                continue  # matched a crowd region: ignored
            else:
                tp.append(0)
                fp.append(1)
        tp = np.cumsum(tp)
        fp = np.cumsum(fp)
        recalls = tp / n_gt
        precisions = tp / np.maximum(tp + fp, 1e-12)
        per_class[c] = voc_ap(recalls, precisions)[0] if len(tp) else 0.0
    mean = float(np.mean(list(per_class.values()))) if per_class else 0.0
    return mean, per_class


def _category_id(dataset, class_id):
    """The dataset's source category id of an internal class id (internal id if several
    sources)."""
    if len(getattr(dataset, "sources", [])) <= 2:  # "" (BG) plus one source
        return int(dataset.class_info[int(class_id)]["id"])
    return int(class_id)


def build_coco_gt(dataset, image_ids, gts):
    """An in-memory pycocotools COCO of ground truth (masks as RLE; crowds iscrowd=1)."""
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO

    images, annotations = [], []
    for image_id, g in zip(image_ids, gts):
        masks = np.asarray(g["masks"])
        h, w = masks.shape[:2]
        images.append({"id": int(image_id), "height": int(h), "width": int(w)})
        boxes = extract_bboxes(masks)
        for k, cid in enumerate(np.asarray(g["class_ids"])):
            rle = mask_utils.encode(np.asfortranarray(masks[:, :, k].astype(np.uint8)))
            rle["counts"] = rle["counts"].decode("ascii")
            y1, x1, y2, x2 = (float(v) for v in boxes[k])
            annotations.append({
                "id": len(annotations) + 1, "image_id": int(image_id),
                "category_id": _category_id(dataset, abs(int(cid))), "segmentation": rle,
                "area": float(masks[:, :, k].sum()), "bbox": [x1, y1, x2 - x1, y2 - y1],
                "iscrowd": int(cid < 0)})
    categories = [{"id": _category_id(dataset, c), "name": dataset.class_names[c]}
                  for c in range(1, dataset.num_classes)]
    coco = COCO()
    coco.dataset = {"images": images, "annotations": annotations, "categories": categories}
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _results_of_image(image_id, rois, class_ids, scores, masks, category_of, mask_scores=None):
    """COCO result dicts of one image's detections (the single implementation); with
    mask_scores each dict also has "mask_score"."""
    from pycocotools import mask as mask_utils

    if rois is None:
        return []
    rois = np.asarray(rois).reshape(-1, 4)
    masks = np.asarray(masks)
    if masks.ndim != 3 or masks.shape[-1] != rois.shape[0] or len(class_ids) != len(rois) \
            or len(scores) != len(rois) or (mask_scores is not None and
                                            len(mask_scores) != len(rois)):
        raise ValueError(f"image {image_id}: {len(rois)} rois, {len(class_ids)} class_ids, "
                         f"{len(scores)} scores"
                         + ("" if mask_scores is None else f", {len(mask_scores)} mask_scores")
                         + f" and masks of shape {masks.shape}: expected one image's "
                         "detections (masks [height, width, N])")
    out = []
    for i in range(rois.shape[0]):
        y1, x1, y2, x2 = (round(float(v), 1) for v in rois[i])
        rle = mask_utils.encode(np.asfortranarray(masks[:, :, i].astype(np.uint8)))
        rle["counts"] = rle["counts"].decode("ascii")
        out.append({"image_id": int(image_id), "category_id": int(category_of(class_ids[i])),
                    "bbox": [x1, y1, round(x2 - x1, 1), round(y2 - y1, 1)],
                    "score": float(scores[i]), "segmentation": rle})
        if mask_scores is not None:
            out[-1]["mask_score"] = float(mask_scores[i])
    return out


def build_coco_results(dataset, image_ids, rois, class_ids, scores, masks, mask_scores=None):
    """matterport's contract: ONE image's detections -> COCO result dicts.

    dataset: the prepared Dataset (internal class ids -> its source category ids, i.e.
    dataset.get_source_class_id(class_id, source) of each class's own source, "coco" for
    CocoDataset); image_ids: the COCO image ids to file them under, as matterport's loop
    passes them (`coco_image_ids[i:i + 1]`); rois [N, (y1, x1, y2, x2)] pixels, class_ids [N],
    scores [N], masks [height, width, N] (uint8 or bool): one detect() result; mask_scores
    [N] (optional, detect()'s with Config.MASK_SCORING).
    Returns dicts {image_id, category_id, bbox [x, y, w, h] (rounded to 0.1 px), score,
    segmentation (compressed RLE, counts as str)}, and mask_score with mask_scores (segm
    evaluation by coco_metrics ranks by it); [] when rois is None or N is 0.
    """
    def category_of(class_id):
        info = dataset.class_info[int(class_id)]
        return dataset.get_source_class_id(int(class_id), info["source"])

    results = []
    for image_id in image_ids:
        results += _results_of_image(image_id, rois, class_ids, scores, masks, category_of,
                                     mask_scores)
    return results


def detections_to_coco(dataset, image_id, result, category_of=None):
    """One image's detect() result dict -> COCO result dicts (as build_coco_results).

    Categories are those of the ground truth build_coco_gt writes for the dataset (source ids
    for a single-source dataset), or category_of(class_id) when given. A result with
    "mask_scores" (Config.MASK_SCORING) gives dicts with "mask_score".
    """
    if category_of is None:
        def category_of(class_id):
            return _category_id(dataset, class_id)
    return _results_of_image(image_id, result["rois"], result["class_ids"], result["scores"],
                             result["masks"], category_of, result.get("mask_scores"))


def rank_by_mask_scores(results):
    """COCO result dicts whose "score" is their "mask_score" where they have one (Mask Scoring
    R-CNN ranks masks by it); others unchanged. Returns new dicts."""
    return [dict(r, score=r["mask_score"]) if "mask_score" in r else r for r in results]


COCO_STAT_NAMES = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs",
                   "ARm", "ARl"]


KEYPOINT_STAT_NAMES = ["AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"]


def coco_metrics(coco_gt, results, eval_type="segm", image_ids=None, verbose=0, sigmas=None,
                 use_mask_scores=True):
    """COCOeval summary stats as a dict (AP, AP50, ...; KEYPOINT_STAT_NAMES for eval_type
    "keypoints", OKS AP with per-keypoint `sigmas`). No detections give zeros.

    For eval_type "segm", results with a "mask_score" (Config.MASK_SCORING) are ranked by it
    instead of "score" unless use_mask_scores is False; boxes always rank by "score"."""
    from pycocotools.cocoeval import COCOeval

    names = KEYPOINT_STAT_NAMES if eval_type == "keypoints" else COCO_STAT_NAMES
    if not results:
        return {name: 0.0 for name in names}
    if eval_type == "segm" and use_mask_scores:
        results = rank_by_mask_scores(results)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        coco_dt = coco_gt.loadRes(results)
        ev = COCOeval(coco_gt, coco_dt, eval_type)
        if sigmas is not None:
            ev.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)
        if image_ids is not None:
            ev.params.imgIds = [int(i) for i in image_ids]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    if verbose:
        print(out.getvalue())
    return {name: float(v) for name, v in zip(names, ev.stats)}


def evaluate_dataset(model, dataset, image_ids=None, limit=0, iou_threshold=0.5, verbose=1):
    """Evaluates an inference MaskRCNN on a prepared Dataset, one image at a time.

    Returns a dict: mask_mAP50 (dataset-level VOC mAP at iou_threshold with mask IoU),
    bbox_mAP50 (box IoU), per_class_AP50 {class name: AP}, coco_segm and coco_bbox (COCOeval
    stats dicts), images, seconds; for a model with a keypoint head (Config.NUM_KEYPOINTS > 0)
    and a dataset with load_keypoints, also coco_keypoints (OKS AP, COCOeval "keypoints" with
    the config's sigmas; see mrcnn.keypoint_evaluation).

    When detect() returns mask_scores (Config.MASK_SCORING), the mask metrics (mask_mAP50,
    per_class_AP50, coco_segm) rank detections by them, and mask_mAP50_class_scores and
    coco_segm_class_scores give the same metrics ranked by the class scores; box metrics
    rank by the class scores.
    """
    import keras

    from mrcnn import keypoint_evaluation as kpe

    image_ids = list(dataset.image_ids if image_ids is None else image_ids)
    if limit:
        image_ids = image_ids[:limit]
    start = time.time()
    gts, preds, coco_results, keypoint_results = [], [], [], []
    # Anything with detect() can be evaluated; keypoints need a keypoint model's config.
    with_keypoints = bool(getattr(getattr(model, "config", None), "NUM_KEYPOINTS", 0)) and \
        hasattr(dataset, "load_keypoints")
    bar = keras.utils.Progbar(len(image_ids), unit_name="image") if verbose else None
    for n, image_id in enumerate(image_ids):
        image = dataset.load_image(image_id)
        masks, class_ids = dataset.load_mask(image_id)
        masks = np.asarray(masks, dtype=bool)
        if masks.size == 0 or masks.ndim != 3:
            masks = np.zeros(image.shape[:2] + (0,), dtype=bool)
            class_ids = np.zeros([0], np.int32)
        gts.append({"class_ids": np.asarray(class_ids), "masks": masks,
                    "rois": extract_bboxes(masks)})
        r = model.detect([image])[0]
        preds.append(r)
        coco_results += detections_to_coco(dataset, image_id, r)
        if with_keypoints:
            gts[-1]["keypoints"] = np.asarray(dataset.load_keypoints(image_id))
            keypoint_results += kpe.keypoint_results(image_id, r, int)
        if bar:
            bar.update(n + 1)
    with_mask_scores = any("mask_scores" in p for p in preds)
    mask_preds = [dict(p, scores=p["mask_scores"]) if "mask_scores" in p else p for p in preds]
    mask_map, per_class = voc_map(gts, mask_preds, iou_threshold, use_masks=True)
    bbox_map, _ = voc_map(gts, preds, iou_threshold, use_masks=False)
    coco_gt = build_coco_gt(dataset, image_ids, gts)
    metrics = {
        "mask_mAP50": mask_map,
        "bbox_mAP50": bbox_map,
        "per_class_AP50": {dataset.class_names[c]: ap for c, ap in per_class.items()},
        "coco_segm": coco_metrics(coco_gt, coco_results, "segm", image_ids),
        "coco_bbox": coco_metrics(coco_gt, coco_results, "bbox", image_ids),
        "images": len(image_ids),
    }
    if with_mask_scores:
        metrics["mask_mAP50_class_scores"] = voc_map(gts, preds, iou_threshold, True)[0]
        metrics["coco_segm_class_scores"] = coco_metrics(coco_gt, coco_results, "segm",
                                                         image_ids, use_mask_scores=False)
    if with_keypoints:
        keypoint_gt = kpe.build_keypoint_gt(image_ids, gts, int, model.config.KEYPOINT_NAMES)
        metrics["coco_keypoints"] = coco_metrics(keypoint_gt, keypoint_results, "keypoints",
                                                 image_ids, sigmas=kpe.oks_sigmas(model.config))
    metrics["seconds"] = time.time() - start
    return metrics


def evaluate_keypoints(model, dataset, image_ids=None, limit=0, verbose=1):
    """OKS AP of an inference MaskRCNN with a keypoint head on a prepared Dataset that has
    load_keypoints(image_id): evaluate_dataset's "coco_keypoints" (categories are the
    dataset's internal class ids), with "images"."""
    if not (model.config.NUM_KEYPOINTS and hasattr(dataset, "load_keypoints")):
        raise ValueError("evaluate_keypoints needs a model with NUM_KEYPOINTS > 0 and a dataset "
                         "with load_keypoints(image_id)")
    metrics = evaluate_dataset(model, dataset, image_ids, limit, verbose=verbose)
    return dict(metrics["coco_keypoints"], images=metrics["images"])
