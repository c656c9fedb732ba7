"""Train Mask R-CNN on the synthetic shapes dataset, evaluate it, and draw its detections.

    python samples/shapes/train.py                 # the README's main job (CPU, from scratch)
    python samples/shapes/train.py --weights last  # continue the newest run in --logs
    python samples/shapes/train.py --epochs 2 --steps-per-epoch 20 --val-images 10  # a quick look

Prints the metrics (VOC mask mAP@0.5 over the whole validation set, COCO mask AP via pycocotools,
wall-clock seconds, steps), writes them to <out>/metrics.json and a picture of detections to
<out>/detections.png; the last line printed is the JSON file's path.
"""

import argparse
import json
import os
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from samples.shapes.shapes import ShapesConfig, ShapesDataset  # noqa: E402


class ShapesTrainConfig(ShapesConfig):
    """ShapesConfig sized for training from scratch on a CPU in minutes."""

    BACKBONE = "resnet50"
    TOP_DOWN_PYRAMID_SIZE = 128  # half-width FPN, RPN input and heads: cheaper steps
    FPN_CLASSIF_FC_LAYERS_SIZE = 512
    IMAGES_PER_GPU = 4
    TRAIN_BN = True  # from scratch, BatchNorm must learn (batches of 4 images)
    LEARNING_RATE = 0.01
    STEPS_PER_EPOCH = 200
    VALIDATION_STEPS = 5
    RPN_TRAIN_ANCHORS_PER_IMAGE = 64
    POST_NMS_ROIS_TRAINING = 300
    POST_NMS_ROIS_INFERENCE = 200
    PRE_NMS_LIMIT = 2000
    MAX_GT_INSTANCES = 10
    DETECTION_MAX_INSTANCES = 20


def mini_backbone(input_image, stage5=True, train_bn=True):
    """A small ResNet (one bottleneck block per stage, 1/8 of ResNet-50's widths) with
    matterport's layer names and strides 4..32; a callable BACKBONE for quick CPU runs."""
    from keras import layers as KL

    from mrcnn.backbone.resnet import _bn, conv_block

    x = KL.ZeroPadding2D((3, 3))(input_image)
    x = KL.Conv2D(32, (7, 7), strides=(2, 2), name="conv1")(x)
    x = _bn("bn_conv1", train_bn)(x)
    x = KL.Activation("relu")(x)
    c1 = x = KL.MaxPooling2D((3, 3), strides=(2, 2), padding="same")(x)
    c2 = conv_block(x, 3, [16, 16, 64], stage=2, block="a", strides=(1, 1), train_bn=train_bn)
    c3 = conv_block(c2, 3, [32, 32, 128], stage=3, block="a", train_bn=train_bn)
    c4 = conv_block(c3, 3, [64, 64, 256], stage=4, block="a", train_bn=train_bn)
    c5 = conv_block(c4, 3, [128, 128, 512], stage=5, block="a", train_bn=train_bn)
    return [c1, c2, c3, c4, c5]


def mini_backbone_shapes(image_shape):
    from mrcnn.ops.anchors import backbone_shapes_from_strides

    return backbone_shapes_from_strides(image_shape, ShapesTrainConfig.BACKBONE_STRIDES)


# name -> Config overrides. "mini" also halves the mask head's resolution (7x7 pooled
# features, 14x14 masks): the mask head is most of a training step's work on a CPU.
BACKBONES = {
    "resnet50": {"BACKBONE": "resnet50"},
    "resnet101": {"BACKBONE": "resnet101"},
    "mini": {"BACKBONE": mini_backbone, "COMPUTE_BACKBONE_SHAPE": mini_backbone_shapes,
             "MASK_POOL_SIZE": 7, "MASK_SHAPE": [14, 14]},
}


class ShapesInferenceConfig(ShapesTrainConfig):
    GPU_COUNT = 1
    IMAGES_PER_GPU = 1
    # Keep low-score detections: they can only add recall to AP. The picture filters them.
    DETECTION_MIN_CONFIDENCE = 0.05


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=30, help="training epochs (default 30)")
    p.add_argument("--steps-per-epoch", type=int, default=None,
                   help=f"default {ShapesTrainConfig.STEPS_PER_EPOCH}")
    p.add_argument("--lr-drop-epochs", type=int, default=8,
                   help="the last N epochs train at a tenth of the learning rate (default 8)")
    p.add_argument("--train-images", type=int, default=2000)
    p.add_argument("--val-images", type=int, default=50)
    p.add_argument("--weights", default=None,
                   help="'last' (newest checkpoint in --logs) or a weights file; default: "
                        "random initialisation")
    p.add_argument("--logs", default=os.path.join(ROOT, "logs"),
                   help="directory for run directories and checkpoints")
    p.add_argument("--out", default=os.path.join(ROOT, "results", "shapes"),
                   help="where metrics.json and detections.png go")
    p.add_argument("--backbone", choices=sorted(BACKBONES), default="mini",
                   help="mini (default): a small ResNet-FPN that trains in minutes on a CPU; "
                        "resnet50/resnet101: the full model")
    p.add_argument("--lr", type=float, default=None,
                   help=f"learning rate (default {ShapesTrainConfig.LEARNING_RATE})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2, help="data loader threads")
    return p.parse_args(argv)


def save_detections_picture(model, dataset, image_ids, path, min_score=0.7):
    """A grid of detections (score >= min_score) on some images, drawn by display_instances."""
    from matplotlib.figure import Figure

    from mrcnn import visualize

    fig = Figure(figsize=(4 * len(image_ids), 4.4))
    for k, image_id in enumerate(image_ids):
        image = dataset.load_image(image_id)
        r = model.detect([image])[0]
        keep = r["scores"] >= min_score
        ax = fig.add_subplot(1, len(image_ids), k + 1)
        visualize.display_instances(image, r["rois"][keep], r["masks"][:, :, keep],
                                    r["class_ids"][keep], dataset.class_names,
                                    r["scores"][keep], ax=ax, title=f"val image {image_id}")
    fig.savefig(path, bbox_inches="tight")


def main(argv=None):
    args = parse_args(argv)
    start = time.time()
    import keras

    from mrcnn import evaluation
    from mrcnn import model as modellib

    keras.utils.set_random_seed(args.seed)
    overrides = dict(BACKBONES[args.backbone])
    if args.lr:
        overrides["LEARNING_RATE"] = args.lr
    if args.steps_per_epoch:
        overrides["STEPS_PER_EPOCH"] = args.steps_per_epoch
    train_config = type("ShapesTrainConfig", (ShapesTrainConfig,), overrides)
    infer_config = type("ShapesInferenceConfig", (ShapesInferenceConfig,), overrides)
    config = train_config()
    train = ShapesDataset()
    train.load_shapes(args.train_images, 128, 128, seed=args.seed)
    train.prepare()
    val = ShapesDataset()
    val.load_shapes(args.val_images, 128, 128, seed=args.seed + 10_000)
    val.prepare()

    model = modellib.MaskRCNN("training", config, args.logs)
    if args.weights:
        path = model.find_last() if args.weights == "last" else args.weights
        model.load_weights(path, by_name=True)
    first = model.epoch
    high = max(args.epochs - args.lr_drop_epochs, 0)
    if high > model.epoch:
        model.train(train, val, config.LEARNING_RATE, epochs=high, layers="all",
                    seed=args.seed, workers=args.workers)
    if args.epochs > model.epoch:
        model.train(train, val, config.LEARNING_RATE / 10, epochs=args.epochs, layers="all",
                    seed=args.seed + 1, workers=args.workers)
    steps = (model.epoch - first) * config.STEPS_PER_EPOCH
    train_seconds = time.time() - start

    inference = modellib.MaskRCNN("inference", infer_config(), args.logs)
    checkpoint = inference.find_last()
    inference.load_weights(checkpoint, by_name=True, verbose=0)
    print(f"\nEvaluating {checkpoint} on {len(val.image_ids)} held-out images")
    metrics = evaluation.evaluate_dataset(inference, val)
    os.makedirs(args.out, exist_ok=True)
    picture = os.path.join(args.out, "detections.png")
    save_detections_picture(inference, val, list(val.image_ids[:4]), picture)
    summary = {
        "mask_mAP50": metrics["mask_mAP50"],
        "bbox_mAP50": metrics["bbox_mAP50"],
        "coco_mask_AP": metrics["coco_segm"]["AP"],
        "coco_mask_AP50": metrics["coco_segm"]["AP50"],
        "coco_bbox_AP": metrics["coco_bbox"]["AP"],
        "per_class_AP50": metrics["per_class_AP50"],
        "steps": steps,
        "images_per_step": config.BATCH_SIZE,
        "train_seconds": round(train_seconds, 1),
        "wall_clock_seconds": round(time.time() - start, 1),
        "val_images": metrics["images"],
        "checkpoint": checkpoint,
        "picture": picture,
        "seed": args.seed,
        "backbone": args.backbone,
    }
    path = os.path.join(args.out, "metrics.json")
    with open(path, "w") as f:
        json.dump(summary, f, indent=2)
    print(f"mask mAP@0.5 (VOC, {metrics['images']} images): {summary['mask_mAP50']:.4f}")
    print(f"COCO mask AP: {summary['coco_mask_AP']:.4f}  (AP50 {summary['coco_mask_AP50']:.4f})")
    print(f"steps: {steps}  wall clock: {summary['wall_clock_seconds']:.0f} s")
    print(f"detections picture: {picture}")
    print(path)
    return summary


if __name__ == "__main__":
    main()
