"""The best mask a perfect mask head could give: GT mask -> mask target -> detect()'s paste.

    python benchmarks/mask_targets.py                  # balloon photos, as the sample trains
    python benchmarks/mask_targets.py --image-size 1024 --subsets val

For every instance of matterport's balloon photos (--dataset, default ../shared/data/balloon),
molded as samples/balloon/train.py trains on them (BalloonTrainConfig; --image-size overrides
IMAGE_MIN_DIM and IMAGE_MAX_DIM), the mask target of a ROI is sampled as DetectionTargetLayer
samples it (layers.detection_target.mask_targets_graph) from the mini mask (USE_MINI_MASK, the
default) or the image-size mask, rounded, and pasted back into the image by unmold_mask, as
detect() pastes a predicted mask. Its IoU with the GT mask, inside the ROI, is what a mask head
that learned its targets exactly would reach. ROIs: each GT box, and the box with each edge
moved by up to --jitter of its size (seeded). Prints the mean IoU per sampling mode ("paper":
mrcnn's default; "matterport") and box height, and writes --out (JSON).
"""

import argparse
import json
import os
import sys

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MODES = ("paper", "matterport")
SIZES = ((0, 16), (16, 40), (40, 100000))


def pasted_ious(full_masks, masks, rois, gt_boxes, mode, use_mini_mask):
    """IoU of each GT mask (full_masks [h, w, N] bool) with the paste of its ROI's target.
    masks: the masks targets are sampled from (mini masks [mh, mw, N] with use_mini_mask);
    rois, gt_boxes: [N, (y1, x1, y2, x2)] pixels."""
    from mrcnn.layers.detection_target import mask_targets_graph
    from mrcnn.ops.boxes import norm_boxes
    from mrcnn.ops.masks import unmold_mask

    shape = full_masks.shape[:2]
    src = np.transpose(masks.astype(np.float32), [2, 0, 1])[..., None]
    targets = mask_targets_graph(
        src, np.arange(len(rois), dtype=np.int32), norm_boxes(rois, shape).astype(np.float32),
        norm_boxes(gt_boxes, shape).astype(np.float32), (28, 28), use_mini_mask, shape, mode)
    targets = np.round(np.asarray(targets)[..., 0])
    ious = []
    for i, roi in enumerate(rois):
        pasted = unmold_mask(targets[i], roi, full_masks.shape)
        y1, x1, y2, x2 = (int(v) for v in roi)
        gt = np.zeros(shape, bool)
        gt[max(y1, 0):y2, max(x1, 0):x2] = full_masks[max(y1, 0):y2, max(x1, 0):x2, i]
        ious.append(np.sum(pasted & gt) / max(np.sum(pasted | gt), 1))
    return np.array(ious)


def jittered(boxes, jitter, rng, shape):
    sizes = np.concatenate([boxes[:, 2:] - boxes[:, :2]] * 2, axis=1)
    out = np.round(boxes + jitter * sizes * rng.uniform(-1, 1, boxes.shape)).astype(np.int64)
    out[:, :2] = np.clip(out[:, :2], 0, np.array(shape) - 2)
    out[:, 2:] = np.clip(np.maximum(out[:, 2:], out[:, :2] + 2), 0, np.array(shape))
    return out


def main(argv=None):
    from mrcnn.data_generator import load_image_gt
    from mrcnn.ops.masks import minimize_mask
    from samples.balloon.balloon import BalloonDataset
    from samples.balloon.train import BalloonTrainConfig

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default=os.path.join(ROOT, "..", "shared", "data", "balloon"))
    p.add_argument("--subsets", nargs="+", default=["train", "val"])
    p.add_argument("--image-size", type=int, default=None)
    p.add_argument("--jitter", type=float, default=0.1)
    p.add_argument("--out", default=os.path.join(ROOT, "results", "mask_targets.json"))
    args = p.parse_args(argv)

    class Cfg(BalloonTrainConfig):
        if args.image_size:
            IMAGE_MIN_DIM = IMAGE_MAX_DIM = args.image_size

    config = Cfg()
    rng = np.random.default_rng(0)
    rows = []  # (box height, roi kind, mode, masks, iou)
    instances = 0
    for subset in args.subsets:
        dataset = BalloonDataset()
        dataset.load_balloon(args.dataset, subset)
        dataset.prepare()
        for image_id in dataset.image_ids:
            _, _, _, boxes, full = load_image_gt(dataset, config, image_id)
            if not len(boxes):
                continue
            instances += len(boxes)
            mini = minimize_mask(boxes, full, config.MINI_MASK_SHAPE)
            rois = {"GT box": boxes, f"jitter {args.jitter}": jittered(boxes, args.jitter, rng,
                                                                      full.shape[:2])}
            for kind, roi in rois.items():
                for mode in MODES:
                    for use_mini, src in (("mini", mini), ("full", full)):
                        ious = pasted_ious(full, src, roi, boxes, mode, use_mini == "mini")
                        rows += [(int(b[2] - b[0]), kind, mode, use_mini, float(v))
                                 for b, v in zip(boxes, ious)]
    heights = np.array([r[0] for r in rows])
    values = np.array([r[4] for r in rows])
    result = {"image_size": int(config.IMAGE_MAX_DIM), "subsets": args.subsets,
              "instances": instances, "mean_iou": {}}
    print(f"mean IoU of the pasted target with the GT mask ({result['instances']} instances, "
          f"images at {config.IMAGE_MAX_DIM} px)")
    print(f"{'ROI':12s} {'mode':10s} {'masks':5s} {'all':>6s} " +
          " ".join(f"{f'h {lo}-{hi}' if hi < 100000 else f'h >= {lo}':>9s}" for lo, hi in SIZES))
    for kind in dict.fromkeys(r[1] for r in rows):
        for mode in MODES:
            for masks in ("mini", "full"):
                sel = np.array([r[1] == kind and r[2] == mode and r[3] == masks for r in rows])
                v = values[sel]
                h = heights[sel]
                by_size = [float(v[(h >= lo) & (h < hi)].mean()) if np.any((h >= lo) & (h < hi))
                           else float("nan") for lo, hi in SIZES]
                result["mean_iou"][f"{kind} / {mode} / {masks}"] = [float(v.mean())] + by_size
                print(f"{kind:12s} {mode:10s} {masks:5s} {v.mean():6.4f} " +
                      " ".join(f"{x:9.4f}" for x in by_size))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(args.out)


if __name__ == "__main__":
    main()
