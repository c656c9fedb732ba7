"""Mask R-CNN on your own polygons (VGG Image Annotator JSON) and the color-splash demo.

    python samples/balloon/balloon.py train --dataset=/path/to/balloon --weights=coco
    python samples/balloon/balloon.py splash --weights=last --image=photo.jpg
    python samples/balloon/balloon.py splash --weights=last --video=clip.mp4

The dataset folder holds train/ and val/, each with its images and via_region_data.json
(VIA 1.x: regions as a dict; VIA 2.x: regions as a list; a VIA 2.x project file with
_via_img_metadata works too). Regions with a `name` region attribute define several classes;
without one every region is a "balloon".
"""

import argparse
import datetime
import json
import logging
import os
import sys

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from mrcnn import utils  # noqa: E402
from mrcnn.config import Config  # noqa: E402
from mrcnn.video import color_splash  # noqa: E402  (matterport's balloon.color_splash)

logger = logging.getLogger(__name__)
DEFAULT_CLASS = "balloon"


class BalloonConfig(Config):
    NAME = "balloon"
    IMAGES_PER_GPU = 2
    NUM_CLASSES = 1 + 1  # background + balloon
    STEPS_PER_EPOCH = 100
    DETECTION_MIN_CONFIDENCE = 0.9


def read_via_json(path):
    """VIA annotations as a list of {filename, regions: [{shape_attributes,
    region_attributes}]}, whichever VIA version wrote the file."""
    with open(path) as f:
        data = json.load(f)
    if "_via_img_metadata" in data:  # a VIA 2.x project file
        data = data["_via_img_metadata"]
    entries = []
    for key, entry in data.items():
        if not isinstance(entry, dict) or "filename" not in entry:
            raise ValueError(f"{path}: entry {key!r} is not a VIA image record")
        regions = entry.get("regions") or []
        if isinstance(regions, dict):  # VIA 1.x
            regions = [regions[k] for k in sorted(regions, key=lambda k: int(k)
                                                  if str(k).isdigit() else str(k))]
        entries.append({"filename": entry["filename"], "regions": list(regions)})
    return entries


def region_polygon(region):
    """(rows, cols) of a VIA region's outline, or None for an unsupported shape."""
    s = region.get("shape_attributes", {})
    name = s.get("name")
    if name in ("polygon", "polyline"):
        return np.asarray(s["all_points_y"], float), np.asarray(s["all_points_x"], float)
    if name == "rect":
        x, y, w, h = s["x"], s["y"], s["width"], s["height"]
        return np.array([y, y, y + h, y + h], float), np.array([x, x + w, x + w, x], float)
    return None


class BalloonDataset(utils.Dataset):
    def load_balloon(self, dataset_dir, subset, class_attribute="name"):
        """Loads <dataset_dir>/<subset>/via_region_data.json.

        class_attribute: the region attribute naming each region's class; when no region has it,
        every region is a balloon. Images whose file is missing, and images without regions,
        are skipped with a warning naming the file.
        """
        subset_dir = os.path.join(dataset_dir, subset)
        path = os.path.join(subset_dir, "via_region_data.json")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"VIA annotations not found: {path}")
        entries = read_via_json(path)
        names = sorted({str(r.get("region_attributes", {}).get(class_attribute))
                        for e in entries for r in e["regions"]
                        if r.get("region_attributes", {}).get(class_attribute)})
        names = names or [DEFAULT_CLASS]
        for i, name in enumerate(names):
            self.add_class("balloon", i + 1, name)
        self.class_attribute = class_attribute
        import PIL.Image

        for entry in entries:
            image_path = os.path.join(subset_dir, entry["filename"])
            if not entry["regions"]:
                logger.warning("%s: no regions for %s; image skipped", path, entry["filename"])
                continue
            if not os.path.isfile(image_path):
                logger.warning("%s: image file %s is missing; image skipped", path, image_path)
                continue
            with PIL.Image.open(image_path) as im:
                width, height = im.size
            self.add_image("balloon", image_id=entry["filename"], path=image_path,
                           width=width, height=height, polygons=entry["regions"],
                           annotation_file=path)

    def load_mask(self, image_id):
        """Rasterized regions: bool [height, width, N] and class ids [N]. Parts of polygons
        outside the image are clipped (with a warning naming file and region)."""
        import skimage.draw

        info = self.image_info[image_id]
        if info["source"] != "balloon":
            return super().load_mask(image_id)
        h, w = info["height"], info["width"]
        masks, class_ids = [], []
        for k, region in enumerate(info["polygons"]):
            poly = region_polygon(region)
            where = f"{info['annotation_file']}: {info['id']} region {k}"
            if poly is None:
                logger.warning("%s: unsupported shape %r skipped", where,
                               region.get("shape_attributes", {}).get("name"))
                continue
            rows, cols = poly
            if rows.min() < 0 or cols.min() < 0 or rows.max() > h or cols.max() > w:
                logger.warning("%s: polygon extends outside the %dx%d image; clipped",
                               where, w, h)
            rr, cc = skimage.draw.polygon(rows, cols, shape=(h, w))
            if rr.size == 0:
                logger.warning("%s: polygon covers no pixel; skipped", where)
                continue
            m = np.zeros((h, w), bool)
            m[rr, cc] = True
            masks.append(m)
            name = region.get("region_attributes", {}).get(self.class_attribute)
            class_ids.append(self.class_names.index(str(name)) if name else 1)
        if not masks:
            return np.zeros((h, w, 0), bool), np.zeros([0], np.int32)
        return np.stack(masks, -1), np.array(class_ids, np.int32)

    def image_reference(self, image_id):
        info = self.image_info[image_id]
        return info["path"] if info["source"] == "balloon" else super().image_reference(image_id)


def train(model, dataset_dir, epochs=30, layers="heads", augmentation=None):
    """Fine-tunes the model on <dataset_dir>/train, validating on <dataset_dir>/val."""
    train_set = BalloonDataset()
    train_set.load_balloon(dataset_dir, "train")
    train_set.prepare()
    val_set = BalloonDataset()
    val_set.load_balloon(dataset_dir, "val")
    val_set.prepare()
    print("Training network heads")
    return model.train(train_set, val_set, learning_rate=model.config.LEARNING_RATE,
                       epochs=epochs, layers=layers, augmentation=augmentation)


def detect_and_color_splash(model, image_path=None, video_path=None, out_dir="."):
    """Color splash of an image file or a video file; returns the path written.

    Images are written as splash_<timestamp>.png; videos, frame by frame with a progress bar,
    as splash_<timestamp>.avi (MJPG) with the input's frame size and rate.
    """
    if bool(image_path) == bool(video_path):
        raise ValueError("give exactly one of image_path and video_path")
    stamp = f"{datetime.datetime.now():%Y%m%dT%H%M%S}"
    os.makedirs(out_dir, exist_ok=True)
    if image_path:
        import skimage.io

        from mrcnn.dataset import to_rgb_uint8

        image = to_rgb_uint8(skimage.io.imread(image_path), 3, image_path)
        r = model.detect([image], verbose=0)[0]
        out = os.path.join(out_dir, f"splash_{stamp}.png")
        skimage.io.imsave(out, color_splash(image, r["masks"]), check_contrast=False)
        return out
    # Videos go through mrcnn.video (frames streamed, batched detect(), resumable); every
    # detection is splashed at once (min_hits=1), as matterport's frame-by-frame splash did.
    from mrcnn.video import segment_video

    out = os.path.join(out_dir, f"splash_{stamp}.avi")
    segment_video(model, video_path, output=out, style="splash", fourcc="MJPG", min_hits=1)
    return out


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Train Mask R-CNN to detect balloons, or splash.")
    p.add_argument("command", choices=["train", "splash"])
    p.add_argument("--dataset", help="directory with train/ and val/ (train)")
    p.add_argument("--weights", required=True, help="coco, last, imagenet or a weights file")
    p.add_argument("--logs", default=os.path.join(ROOT, "logs"))
    p.add_argument("--image", help="image to splash")
    p.add_argument("--video", help="video to splash")
    p.add_argument("--epochs", type=int, default=30)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from mrcnn import model as modellib
    from samples.coco.coco import resolve_weights

    if args.command == "train":
        if not args.dataset:
            raise SystemExit("train needs --dataset")
        config = BalloonConfig()
        mode = "training"
    else:
        if bool(args.image) == bool(args.video):
            raise SystemExit("splash needs exactly one of --image and --video")
        config = type("InferenceConfig", (BalloonConfig,),
                      {"GPU_COUNT": 1, "IMAGES_PER_GPU": 1})()
        mode = "inference"
    model = modellib.MaskRCNN(mode=mode, config=config, model_dir=args.logs)
    weights = resolve_weights(model, args.weights, args.logs)
    exclude = ["mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_bbox", "mrcnn_mask"] \
        if args.weights == "coco" else None
    if args.weights == "imagenet":
        model.load_imagenet_weights(weights)
    else:
        model.load_weights(weights, by_name=True, exclude=exclude)
    if args.command == "train":
        train(model, args.dataset, epochs=args.epochs)
    else:
        print("Saved to", detect_and_color_splash(model, image_path=args.image,
                                                  video_path=args.video))


if __name__ == "__main__":
    main()
