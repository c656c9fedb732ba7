"""Mask R-CNN on MS COCO: dataset loading, training and bbox/segm evaluation (pycocotools);
with --task keypoints, person keypoints (person_keypoints_*.json) and OKS AP.

    python samples/coco/coco.py train --dataset=/path/to/coco --model=coco
    python samples/coco/coco.py evaluate --dataset=/path/to/coco --model=last --eval-type=both
    python samples/coco/coco.py evaluate --dataset=/path/to/coco --model=last --task=keypoints

--model: "coco" (mask_rcnn_coco.h5 in the repository root or ../shared/data), "last" (newest
checkpoint in --logs), "imagenet" (ResNet ImageNet weights, a local file) or a path.
Nothing is downloaded: --download fails with what to fetch and where to put it.
"""

import argparse
import os
import sys
import time

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from mrcnn import coco_format, utils  # noqa: E402
from mrcnn.config import Config  # noqa: E402
from mrcnn.evaluation import build_coco_results  # noqa: E402, F401  (matterport's name)
from mrcnn.presets import (  # noqa: E402
    COCO_PERSON_FLIP_MAP,
    COCO_PERSON_KEYPOINT_NAMES,
    COCO_PERSON_SKELETON,
)

DEFAULT_DATASET_YEAR = "2014"
COCO_WEIGHTS_NAME = "mask_rcnn_coco.h5"
SUBSETS = ("train", "val", "minival", "valminusminival")
TASKS = ("instances", "person_keypoints")
EVAL_TYPES = ("bbox", "segm", "both", "keypoints")


class CocoConfig(Config):
    """Configuration for training on MS COCO."""

    NAME = "coco"
    IMAGES_PER_GPU = 2
    NUM_CLASSES = 1 + 80


class CocoKeypointConfig(CocoConfig):
    """COCO person keypoints (person_keypoints_*.json, --task keypoints): the person class
    with the paper's keypoint head beside the box and mask heads (its Table 4)."""

    NAME = "coco_keypoints"
    NUM_CLASSES = 1 + 1
    NUM_KEYPOINTS = len(COCO_PERSON_KEYPOINT_NAMES)
    KEYPOINT_NAMES = COCO_PERSON_KEYPOINT_NAMES
    KEYPOINT_FLIP_MAP = COCO_PERSON_FLIP_MAP
    KEYPOINT_SKELETON = COCO_PERSON_SKELETON


class CocoDataset(utils.Dataset):
    def load_coco(self, dataset_dir, subset, year=DEFAULT_DATASET_YEAR, class_ids=None,
                  class_map=None, return_coco=False, auto_download=False, task="instances"):
        """Loads a subset of a COCO-format dataset.

        dataset_dir: holds annotations/<task>_<subset><year>.json and the image folder
            <subset><year>/ (val<year>/ for minival and valminusminival).
        task: "instances" (instances_*.json) or "person_keypoints" (person_keypoints_*.json:
            the person category with its 17 keypoints; load_keypoints then returns them).
        subset: train, val, minival or valminusminival (any other name is used as given).
        class_ids: load only these COCO category ids (and only images that contain them);
            default: every category and every image, including images without annotations.
        return_coco: also return the pycocotools COCO object.
        auto_download: not supported offline; raises with what to fetch.
        """
        from pycocotools.coco import COCO

        year = str(year)
        if auto_download:
            self.auto_download(dataset_dir, subset, year)
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        ann_file = os.path.join(dataset_dir, "annotations", f"{task}_{subset}{year}.json")
        if not os.path.isfile(ann_file):
            raise FileNotFoundError(f"COCO annotation file not found: {ann_file}")
        image_subset = "val" if subset in ("minival", "valminusminival") else subset
        image_dir = os.path.join(dataset_dir, f"{image_subset}{year}")
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):
            coco = COCO(ann_file)
        if class_ids:
            image_ids = sorted({i for c in class_ids for i in coco.getImgIds(catIds=[c])})
        else:
            class_ids = sorted(coco.getCatIds())
            image_ids = sorted(coco.imgs.keys())
        for i in class_ids:
            self.add_class("coco", i, coco.loadCats(i)[0]["name"])
        names, skeleton = coco_format.keypoint_categories(coco.loadCats(class_ids))
        if names:
            self.keypoint_names, self.keypoint_skeleton = names, skeleton
        for i in image_ids:
            info = coco.imgs[i]
            self.add_image(
                "coco", image_id=i, path=os.path.join(image_dir, info["file_name"]),
                width=info["width"], height=info["height"],
                annotations=coco.loadAnns(coco.getAnnIds(imgIds=[i], catIds=class_ids,
                                                         iscrowd=None)))
        if return_coco:
            return coco
        return None

    def auto_download(self, dataDir, dataType, dataYear):
        """matterport downloaded COCO here. mrcnn runs offline: this raises with the steps."""
        raise RuntimeError(
            f"mrcnn does not download data. Fetch the {dataType}{dataYear} images and "
            f"annotations_trainval{dataYear} from cocodataset.org yourself and extract them to "
            f"{os.path.join(dataDir, f'{dataType}{dataYear}')} and "
            f"{os.path.join(dataDir, 'annotations')}.")

    def load_mask(self, image_id):
        """Instance masks from polygons, RLE or uncompressed RLE (mrcnn.coco_format). Crowd
        regions get negative class ids (so training never uses them as positives); masks
        smaller than one pixel are skipped. Returns bool [height, width, N] and int32 [N]."""
        if self.image_info[image_id]["source"] != "coco":
            return super().load_mask(image_id)
        return coco_format.instance_masks(self, image_id, source="coco")

    def load_keypoints(self, image_id):
        """[instances, 17, (x, y, v)] float32 of a person_keypoints file, in load_mask's order:
        COCO's integer pixel indices + 0.5 (mrcnn's continuous coordinates), v as in the file
        (0 unlabelled, 1 occluded, 2 visible); crowds have no labelled keypoint."""
        if self.image_info[image_id]["source"] != "coco" or not self.keypoint_names:
            return super().load_keypoints(image_id)
        return coco_format.instance_keypoints(self, image_id, len(self.keypoint_names),
                                              source="coco")

    def image_reference(self, image_id):
        info = self.image_info[image_id]
        if info["source"] == "coco":
            return f"http://cocodataset.org/#explore?id={info['id']}"
        return super().image_reference(image_id)

    def annToRLE(self, ann, height, width):
        """An annotation's segmentation (polygons, uncompressed or compressed RLE) as RLE."""
        return coco_format.ann_to_rle(ann, height, width)

    def annToMask(self, ann, height, width):
        """An annotation's segmentation as a uint8 [height, width] mask."""
        return coco_format.ann_to_mask(ann, height, width)


def evaluate_coco(model, dataset, coco, eval_type="bbox", limit=0, image_ids=None, verbose=1):
    """Runs detection on the dataset's images and evaluates with COCOeval, as matterport did:
    one image at a time, build_coco_results with the image's COCO id, then COCOeval.

    image_ids: dataset image ids (default: all). eval_type: "bbox", "segm", "both" or
    "keypoints" (OKS AP of a keypoint model against a person_keypoints file: the keypoints
    are written as COCO stores them, integer pixel indices).
    Returns {eval_type: {AP, AP50, ...}} ("bbox" and "segm" for "both").
    """
    import keras

    from mrcnn.evaluation import coco_metrics
    from mrcnn.keypoint_evaluation import keypoint_results

    if eval_type not in EVAL_TYPES:
        raise ValueError(f"eval_type must be one of {EVAL_TYPES}, got {eval_type!r}")

    image_ids = list(image_ids if image_ids is not None else dataset.image_ids)
    if limit:
        image_ids = image_ids[:limit]
    coco_image_ids = [dataset.image_info[i]["id"] for i in image_ids]
    start = time.time()
    results = []
    bar = keras.utils.Progbar(len(image_ids), unit_name="image") if verbose else None
    for i, image_id in enumerate(image_ids):
        r = model.detect([dataset.load_image(image_id)], verbose=0)[0]
        if eval_type == "keypoints":
            results += keypoint_results(coco_image_ids[i], r,
                                        lambda c: dataset.get_source_class_id(c, "coco"),
                                        pixel_indices=True)
        else:
            # mask_scores (Config.MASK_SCORING): segm evaluation ranks masks by them.
            results += build_coco_results(dataset, coco_image_ids[i:i + 1], r["rois"],
                                          r["class_ids"], r["scores"],
                                          r["masks"].astype(np.uint8),
                                          mask_scores=r.get("mask_scores"))
        if bar:
            bar.update(i + 1)
    kinds = ["bbox", "segm"] if eval_type == "both" else [eval_type]
    out = {kind: coco_metrics(coco, results, kind, coco_image_ids, verbose=verbose)
           for kind in kinds}
    if verbose:
        print(f"Prediction and evaluation: {time.time() - start:.1f} s for "
              f"{len(image_ids)} images")
    return out


def resolve_weights(model, name, logs):
    """Path of the weights named on the command line (clear error when absent)."""
    if name == "last":
        return model.find_last()
    if name == "imagenet":  # the file of the config's backbone
        return model.get_imagenet_weights()
    if name == "coco":
        from mrcnn.weights import SHARED_DATA_DIR, find_weights_file

        return find_weights_file(COCO_WEIGHTS_NAME, [ROOT, SHARED_DATA_DIR])
    return name


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Train or evaluate Mask R-CNN on MS COCO.")
    p.add_argument("command", choices=["train", "evaluate"])
    p.add_argument("--dataset", required=True, help="directory of the COCO dataset")
    p.add_argument("--year", default=DEFAULT_DATASET_YEAR, choices=["2014", "2017"])
    p.add_argument("--model", required=True, help="coco, last, imagenet or a weights file")
    p.add_argument("--logs", default=os.path.join(ROOT, "logs"))
    p.add_argument("--limit", type=int, default=500, help="images to evaluate (0: all)")
    p.add_argument("--task", default="instances", choices=["instances", "keypoints"],
                   help="instances: instances_*.json, 80 classes; keypoints: "
                        "person_keypoints_*.json, person boxes, masks and 17 keypoints")
    p.add_argument("--eval-type", default=None, choices=list(EVAL_TYPES),
                   help="default: both (bbox and segm), keypoints with --task keypoints")
    p.add_argument("--download", action="store_true",
                   help="not available offline: prints what to fetch")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from mrcnn import model as modellib

    base = CocoKeypointConfig if args.task == "keypoints" else CocoConfig
    ann_task = "person_keypoints" if args.task == "keypoints" else "instances"
    eval_type = args.eval_type or ("keypoints" if args.task == "keypoints" else "both")
    if args.command == "train":
        config = base()
    else:
        config = type("InferenceConfig", (base,), {
            "GPU_COUNT": 1, "IMAGES_PER_GPU": 1, "DETECTION_MIN_CONFIDENCE": 0})()
    config.display()
    mode = "training" if args.command == "train" else "inference"
    model = modellib.MaskRCNN(mode=mode, config=config, model_dir=args.logs)
    weights = resolve_weights(model, args.model, args.logs)
    if args.model == "imagenet":
        model.load_imagenet_weights(weights)
    else:
        model.load_weights(weights, by_name=True)

    if args.command == "train":
        import imgaug.augmenters as iaa

        train = CocoDataset()
        train.load_coco(args.dataset, "train", year=args.year, auto_download=args.download,
                        task=ann_task)
        if args.year == "2014":
            train.load_coco(args.dataset, "valminusminival", year=args.year, task=ann_task)
        train.prepare()
        val = CocoDataset()
        val.load_coco(args.dataset, "minival" if args.year == "2014" else "val",
                      year=args.year, auto_download=args.download, task=ann_task)
        val.prepare()
        augmentation = iaa.Fliplr(0.5)
        lr = config.LEARNING_RATE
        model.train(train, val, lr, epochs=40, layers="heads", augmentation=augmentation)
        model.train(train, val, lr, epochs=120, layers="4+", augmentation=augmentation)
        model.train(train, val, lr / 10, epochs=160, layers="all", augmentation=augmentation)
    else:
        val = CocoDataset()
        subset = "minival" if args.year == "2014" else "val"
        coco = val.load_coco(args.dataset, subset, year=args.year, return_coco=True,
                             auto_download=args.download, task=ann_task)
        val.prepare()
        print(f"Running COCO evaluation on {args.limit or 'all'} images.")
        return evaluate_coco(model, val, coco, eval_type, limit=args.limit)
    return None


if __name__ == "__main__":
    main()
