"""The balloon benchmark: train on matterport's 61 balloon photos with no pretrained weights,
evaluate on the 13 validation photos, and check issue 16's target.

    python benchmarks/balloon.py                        # the README's run: shapes, then balloon
    python benchmarks/balloon.py --shapes-epochs 0      # balloon alone, --weights none
    python benchmarks/balloon.py -- --epochs 10         # pass options to balloon's train.py

By default it first trains the shapes model from random initialisation on generated images
(samples/shapes/train.py --epochs --shapes-epochs, its last --shapes-lr-drop-epochs at a tenth
of the learning rate, --set to the balloon model's widths and switches), its shapes drawn on
128x128 crops of the training photos that hold no balloon (--backgrounds; --flat-shapes: flat
colours), then trains samples/balloon/train.py from that checkpoint (--weights PATH: every
layer but the class-specific ones). No pretrained or downloaded weights are used: both stages
start from random numbers, and the wall clock counts both. With --shapes-epochs 0 the balloon
model starts from random weights itself (--weights none).

Both run in this process (--dataset ../shared/data/balloon unless given). It samples the
machine's load average every 10 s while it runs and writes <out>/benchmark.json (default
results/balloon): the figures of metrics.json, wall clock (and that of each stage), seconds per
training step, steps, CPU count and the load (mean and max of the 1-minute load average), so
that a run on a shared machine can be read as an upper bound. Target: mask mAP@0.5 >= 0.70 on
the 13 val photos within 45 minutes of wall clock on the 2-core CI machine.
"""

import argparse
import json
import os
import platform
import sys
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

TARGET_MASK_MAP50 = 0.70
TARGET_SECONDS = 45 * 60
SHAPES_EPOCHS = 30
SHAPES_LR_DROP_EPOCHS = 5
# The balloon model's widths and architecture switches, which the shapes model takes.
ARCHITECTURE = ("TOP_DOWN_PYRAMID_SIZE", "RPN_CONV_CHANNELS", "FPN_CLASSIF_FC_LAYERS_SIZE",
                "MASK_HEAD_CHANNELS", "FPN_BATCH_NORM", "BOX_HEAD")


class LoadSampler(threading.Thread):
    """Samples os.getloadavg()[0] every `period` seconds until stop()."""

    def __init__(self, period=10.0):
        super().__init__(daemon=True)
        self.period = period
        self.samples = []
        self._stop_event = threading.Event()

    def run(self):
        while not self._stop_event.is_set():
            self.samples.append(os.getloadavg()[0])
            self._stop_event.wait(self.period)

    def stop(self):
        self._stop_event.set()
        self.join()
        return self.samples


def write_background_crops(dataset_dir, out_dir, size=128, long_side=320, per_photo=4,
                           tries=200, seed=0):
    """Writes size x size crops of the balloon training photos that hold no balloon pixel to
    out_dir (PNG, emptied first), the photos scaled to `long_side` as the balloon model sees
    them; up to per_photo crops of each photo, from `tries` random positions. Validation photos
    are not used. Returns the crops as (image_id, y, x, scale): the crop covers rows
    y..y+size and columns x..x+size of the photo scaled by `scale`."""
    import numpy as np
    import skimage.io
    import skimage.transform

    from samples.balloon.balloon import BalloonDataset

    dataset = BalloonDataset()
    dataset.load_balloon(dataset_dir, "train")
    dataset.prepare()
    os.makedirs(out_dir, exist_ok=True)
    for name in os.listdir(out_dir):
        if name.endswith(".png"):
            os.remove(os.path.join(out_dir, name))
    rng = np.random.default_rng(seed)
    crops = []
    for image_id in dataset.image_ids:
        image = dataset.load_image(image_id)
        masks, _ = dataset.load_mask(image_id)
        scale = long_side / max(image.shape[:2])
        shape = (round(image.shape[0] * scale), round(image.shape[1] * scale))
        if min(shape) < size:
            continue
        small = skimage.transform.resize(image, shape, preserve_range=True,
                                         anti_aliasing=True).astype(np.uint8)
        # Any balloon pixel of the full-size photo marks its scaled pixel.
        balloon = skimage.transform.resize(masks.any(axis=-1).astype(np.float32), shape) > 0
        kept = 0
        for _ in range(tries):
            y = int(rng.integers(0, shape[0] - size + 1))
            x = int(rng.integers(0, shape[1] - size + 1))
            if balloon[y:y + size, x:x + size].any():
                continue
            skimage.io.imsave(os.path.join(out_dir, f"{image_id:03d}_{kept}.png"),
                              small[y:y + size, x:x + size], check_contrast=False)
            crops.append((int(image_id), y, x, scale))
            kept += 1
            if kept == per_photo:
                break
    if not crops:
        raise ValueError(f"no {size}x{size} crop without balloons in {dataset_dir}/train")
    print(f"{len(crops)} balloon-free {size}x{size} crops of {len(dataset.image_ids)} training "
          f"photos in {out_dir}")
    return crops


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("train_args", nargs="*", help="options passed to samples/balloon/train.py "
                                                 "(after --)")
    p.add_argument("--shapes-epochs", type=int, default=SHAPES_EPOCHS,
                   help="epochs of shapes pretraining from random initialisation before the "
                        f"balloon training (default {SHAPES_EPOCHS}; 0: none, the balloon model "
                        "starts from random weights)")
    p.add_argument("--shapes-lr-drop-epochs", type=int, default=SHAPES_LR_DROP_EPOCHS)
    p.add_argument("--flat-shapes", action="store_true",
                   help="draw the shapes stage's shapes on flat colours, as samples/shapes does "
                        "by default (default here: on crops of the training photos that hold "
                        "no balloon, write_background_crops)")
    p.add_argument("--architecture", nargs="+", default=[], metavar="ATTR=VALUE",
                   help="Config overrides for both stages (the shapes model must have the "
                        "balloon model's layers), e.g. FPN_BATCH_NORM=False "
                        "BOX_HEAD=\"'2fc'\" (matterport's FPN and box head instead of "
                        "BalloonTrainConfig's normalised ones)")
    args = p.parse_args(argv)
    from mrcnn.weights import SHARED_DATA_DIR
    from samples.balloon import train

    train_args = list(args.train_args)
    if "--dataset" not in train_args and "--dataset-format" not in train_args:
        train_args = ["--dataset", os.path.join(SHARED_DATA_DIR, "balloon")] + train_args
    if "--weights" in train_args and args.shapes_epochs:
        p.error("--weights is given to train.py: pass --shapes-epochs 0 as well")
    if args.architecture:
        train_args += ["--set", *args.architecture]
    sampler = LoadSampler()
    sampler.start()
    start = time.time()
    commands, shapes_summary = [], None
    if args.shapes_epochs:
        from samples.shapes import train as shapes_train

        # The shapes model at the balloon model's widths and switches, so that all its layers
        # but the class-specific ones load into the balloon model.
        shared = [f"{name}={getattr(train.BalloonTrainConfig, name)!r}" for name in ARCHITECTURE]
        shapes_args = ["--epochs", str(args.shapes_epochs), "--lr-drop-epochs",
                       str(args.shapes_lr_drop_epochs), "--curve-every", "0", "--set", *shared,
                       *args.architecture,
                       "--out", os.path.join(ROOT, "results", "balloon_shapes_pretraining")]
        if not args.flat_shapes:
            if "--dataset" not in train_args:
                p.error("the shapes stage's backgrounds are crops of the photos of --dataset; "
                        "with --dataset-format coco, pass --flat-shapes")
            folder = os.path.join(ROOT, "results", "balloon_shapes_backgrounds")
            write_background_crops(train_args[train_args.index("--dataset") + 1], folder,
                                   long_side=train.BalloonTrainConfig.IMAGE_MAX_DIM)
            shapes_args += ["--backgrounds", folder]
        if "--backbone" in train_args:  # the same trunk, so that it loads by name
            shapes_args += train_args[train_args.index("--backbone"):][:2]
        commands.append("python samples/shapes/train.py " + " ".join(shapes_args))
        shapes_summary = shapes_train.main(shapes_args)
        train_args += ["--weights", shapes_summary["checkpoint"]]
    elif "--weights" not in train_args:
        train_args += ["--weights", "none"]
    shapes_seconds = time.time() - start
    commands.append("python samples/balloon/train.py " + " ".join(train_args))
    summary = train.main(train_args)
    seconds = time.time() - start
    load = sampler.stop()
    result = {
        "command": " && ".join(commands),
        "shapes_pretraining": None if shapes_summary is None else {
            "epochs": args.shapes_epochs, "steps": shapes_summary["steps"],
            "wall_clock_seconds": round(shapes_seconds, 1),
            "mask_mAP50": shapes_summary["mask_mAP50"]},
        "balloon_wall_clock_seconds": round(seconds - shapes_seconds, 1),
        "mask_mAP50": summary["mask_mAP50"],
        "bbox_mAP50": summary["bbox_mAP50"],
        "coco_mask_AP": summary["coco_mask_AP"],
        "coco_bbox_AP": summary["coco_bbox_AP"],
        "wall_clock_seconds": round(seconds, 1),
        "train_seconds": summary["train_seconds"],
        "steps": summary["steps"],
        "seconds_per_step": round(summary["train_seconds"] / max(summary["steps"], 1), 3),
        "images_per_step": summary["images_per_step"],
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "load_average_1min_mean": round(sum(load) / max(len(load), 1), 2),
        "load_average_1min_max": round(max(load, default=0.0), 2),
        "target": {"mask_mAP50": TARGET_MASK_MAP50, "seconds": TARGET_SECONDS},
        "target_met": bool(summary["mask_mAP50"] >= TARGET_MASK_MAP50
                           and seconds <= TARGET_SECONDS),
        "metrics": os.path.join(os.path.dirname(summary["curve"]), "metrics.json")
        if "curve" in summary else None,
    }
    out_dir = os.path.dirname(result["metrics"]) if result["metrics"] else \
        os.path.join(ROOT, "results", "balloon")
    path = os.path.join(out_dir, "benchmark.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
    print(f"balloon benchmark: mask mAP@0.5 {result['mask_mAP50']:.3f} (target "
          f">= {TARGET_MASK_MAP50}), {seconds / 60:.1f} min (target <= {TARGET_SECONDS // 60}), "
          f"{result['seconds_per_step']} s/step x {result['steps']} steps, load average "
          f"{result['load_average_1min_mean']} (mean) / {result['load_average_1min_max']} (max) "
          f"on {os.cpu_count()} CPUs: target {'met' if result['target_met'] else 'NOT met'}")
    print(path)
    return result


if __name__ == "__main__":
    main()
