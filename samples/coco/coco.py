"""Mask R-CNN on MS COCO: dataset loading, training and bbox/segm evaluation (pycocotools).

    python samples/coco/coco.py train --dataset=/path/to/coco --model=coco
    python samples/coco/coco.py evaluate --dataset=/path/to/coco --model=last --eval-type=both

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

DEFAULT_DATASET_YEAR = "2014"
COCO_WEIGHTS_NAME = "mask_rcnn_coco.h5"
SUBSETS = ("train", "val", "minival", "valminusminival")


class CocoConfig(Config):
    """Configuration for training on MS COCO."""

    NAME = "coco"
    IMAGES_PER_GPU = 2
    NUM_CLASSES = 1 + 80


class CocoDataset(utils.Dataset):
    def load_coco(self, dataset_dir, subset, year=DEFAULT_DATASET_YEAR, class_ids=None,
                  class_map=None, return_coco=False, auto_download=False):
        """Loads a subset of a COCO-format dataset.

        dataset_dir: holds annotations/instances_<subset><year>.json and the image folder
            <subset><year>/ (val<year>/ for minival and valminusminival).
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
        ann_file = os.path.join(dataset_dir, "annotations", f"instances_{subset}{year}.json")
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

    image_ids: dataset image ids (default: all). eval_type: "bbox", "segm" or "both".
    Returns {eval_type: {AP, AP50, ...}}.
    """
    import keras

    from mrcnn.evaluation import coco_metrics

    image_ids = list(image_ids if image_ids is not None else dataset.image_ids)
    if limit:
        image_ids = image_ids[:limit]
    coco_image_ids = [dataset.image_info[i]["id"] for i in image_ids]
    start = time.time()
    results = []
    bar = keras.utils.Progbar(len(image_ids), unit_name="image") if verbose else None
    for i, image_id in enumerate(image_ids):
        r = model.detect([dataset.load_image(image_id)], verbose=0)[0]
        results += build_coco_results(dataset, coco_image_ids[i:i + 1], r["rois"],
                                      r["class_ids"], r["scores"], r["masks"].astype(np.uint8))
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
    p.add_argument("--eval-type", default="both", choices=["bbox", "segm", "both"])
    p.add_argument("--download", action="store_true",
                   help="not available offline: prints what to fetch")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from mrcnn import model as modellib

    if args.command == "train":
        config = CocoConfig()
    else:
        config = type("InferenceConfig", (CocoConfig,), {
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
        train.load_coco(args.dataset, "train", year=args.year, auto_download=args.download)
        if args.year == "2014":
            train.load_coco(args.dataset, "valminusminival", year=args.year)
        train.prepare()
        val = CocoDataset()
        val.load_coco(args.dataset, "minival" if args.year == "2014" else "val",
                      year=args.year, auto_download=args.download)
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
                             auto_download=args.download)
        val.prepare()
        print(f"Running COCO evaluation on {args.limit or 'all'} images.")
        return evaluate_coco(model, val, coco, args.eval_type, limit=args.limit)
    return None


if __name__ == "__main__":
    main()
