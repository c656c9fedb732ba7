"""The training command line shared by samples/*/train.py.

Every sample's train.py takes the same options::

    --dataset DIR           the sample's data folder (its own format)
    --dataset-format coco --train-json A --val-json B --images DIR [--val-images DIR]
                            COCO JSON from any annotation tool instead (Dataset.load_coco_json)
    --weights coco|imagenet|last|none|PATH
    --logs DIR --epochs N --layers heads|3+|4+|5+|all --limit N --seed N
    --set ATTR=VALUE ...    Config overrides (e.g. --set RPN_CONV_CHANNELS=256)
    --strategy default|mirrored|multiworker
    --mask-scoring          the Mask Scoring R-CNN head (Config.MASK_SCORING)

and runs the same steps (run_training): load the data, build the model, print where the
checkpoints go, initialise the weights, train (the last --lr-drop-epochs at a tenth of the
learning rate), record a learning curve (losses and val mAP@0.5 per epoch), evaluate the last
checkpoint with mrcnn.evaluation.evaluate_dataset (dataset-level mask/box mAP@0.5, COCO AP,
per-image figures) and write results/<name>/metrics.json, whose path is the last line printed.

Weights: see mrcnn.initial_weights (resolve_weights / load_initial_weights).
"""

import argparse
import json
import os
import time

import numpy as np

from mrcnn.initial_weights import (
    COCO_WEIGHTS_NAME,
    HEAD_LAYERS,
    REPO_ROOT,
    TORCHVISION_MODES,
    WEIGHT_MODES,
    load_initial_weights,
    resolve_weights,
)
from mrcnn.precision import PRECISION_CHOICES, resolve_precision

__all__ = ["WEIGHT_MODES", "LAYER_CHOICES", "COCO_WEIGHTS_NAME", "HEAD_LAYERS", "TrainingTask",
           "add_training_arguments", "training_parser", "check_args", "resolve_weights",
           "load_initial_weights", "limit_images", "generated_data_parser",
           "check_generated_args", "generated_datasets", "config_override",
           "load_coco_json_datasets", "run_training", "per_image_figures"]

LAYER_CHOICES = ("heads", "3+", "4+", "5+", "all")


class TrainingTask:
    """What a sample contributes to run_training.

    name: results go to <--out, default results/<name>>.
    train_config, inference_config: Config classes (overrides from the command line are
        applied on top).
    load_datasets(args) -> (train, val): the sample's own format (--dataset); prepared.
    augmentation(args) -> an imgaug augmenter or None.
    after_evaluation(inference_model, val, out_dir, args) -> dict of extra summary entries
        (pictures); optional.
    config_overrides(args) -> dict of Config attributes from sample-specific options; optional.
    inference_overrides(args) -> dict of Config attributes for the inference model only (e.g.
        a larger image than the training crops), on top of config_overrides; optional.
    wrap_train(dataset, args) -> the dataset to train on (e.g. a DownscaledDataset), applied to
        both data formats; also gives the validation copy used for Keras' validation loss and
        the learning curve's per-epoch mAP. The final evaluation uses the unwrapped validation
        set. Optional.
    expand_train(dataset, args) -> the training set alone grown further, after wrap_train
        (e.g. a CopyPasteDataset of composites); the validation sets are not. Optional.
    """

    def __init__(self, name, train_config, inference_config, load_datasets, augmentation=None,
                 after_evaluation=None, config_overrides=None, wrap_train=None,
                 inference_overrides=None, expand_train=None):
        self.name = name
        self.train_config = train_config
        self.inference_config = inference_config
        self.load_datasets = load_datasets
        self.augmentation = augmentation or (lambda args: None)
        self.after_evaluation = after_evaluation
        self.config_overrides = config_overrides or (lambda args: {})
        self.inference_overrides = inference_overrides or (lambda args: {})
        self.wrap_train = wrap_train or (lambda train, args: train)
        self.expand_train = expand_train or (lambda train, args: train)


def _weights_arg(value):
    if value in WEIGHT_MODES:
        return value
    if not value:
        raise argparse.ArgumentTypeError("--weights needs coco, imagenet, last, none or a path")
    return value  # a path; checked when resolved, with the file named


def config_override(item):
    """argparse type of --set: 'ATTR=VALUE' -> (ATTR, VALUE), ATTR a Config attribute and VALUE a
    Python literal (1e-3, 128, (16, 32), "square", True). The Config checks the value when it is
    built."""
    import ast

    from mrcnn.config import Config

    name, sep, value = item.partition("=")
    if not sep or not name.isupper():
        raise argparse.ArgumentTypeError(f"expected ATTR=VALUE with an upper-case Config "
                                         f"attribute, got {item!r}")
    if not hasattr(Config, name):
        raise argparse.ArgumentTypeError(f"{name} is not a Config attribute")
    try:
        return name, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        raise argparse.ArgumentTypeError(f"{name}: {value!r} is not a Python literal "
                                         "(quote strings: NAME='\"text\"')") from None


def add_training_arguments(parser, name, epochs, lr_drop_epochs=0, weights="none",
                           dataset_help="the sample's dataset folder", coco_format=True,
                           steps_per_epoch=None, learning_rate=None, precision="float32"):
    """Adds the shared options to an argparse parser. The defaults given here are the
    sample's; --layers defaults to heads for --weights coco and all otherwise."""
    p = parser
    p.add_argument("--dataset", help=dataset_help)
    if coco_format:
        p.add_argument("--dataset-format", choices=["native", "coco"], default="native",
                       help="native: the sample's own format in --dataset; coco: COCO JSON "
                            "(--train-json, --val-json, --images)")
        p.add_argument("--train-json", help="COCO annotation JSON of the training images")
        p.add_argument("--val-json", help="COCO annotation JSON of the validation images")
        p.add_argument("--images", help="folder of the training images (and the validation "
                                        "images unless --val-images is given)")
        p.add_argument("--val-images", help="folder of the validation images")
    p.add_argument("--weights", type=_weights_arg, default=weights,
                   help="coco, imagenet, last, none, torchvision, torchvision_v2 or a "
                        "weights file "
                        f"(default {weights})")
    p.add_argument("--weights-dir", default=REPO_ROOT,
                   help=f"where --weights coco looks for / downloads {COCO_WEIGHTS_NAME} "
                        "(default: the repository root)")
    p.add_argument("--logs", default=os.path.join(REPO_ROOT, "logs"),
                   help="directory for run directories and checkpoints")
    p.add_argument("--out", default=os.path.join(REPO_ROOT, "results", name),
                   help=f"where metrics.json and the pictures go (default results/{name})")
    p.add_argument("--epochs", type=int, default=epochs,
                   help=f"total epochs, counting those of a resumed run (default {epochs})")
    p.add_argument("--lr-drop-epochs", type=int, default=lr_drop_epochs,
                   help="the last N epochs train at a tenth of the learning rate "
                        f"(default {lr_drop_epochs})")
    p.add_argument("--steps-per-epoch", type=int, default=steps_per_epoch,
                   help="training steps per epoch (default: the config's)")
    p.add_argument("--lr", type=float, default=learning_rate,
                   help="learning rate (default: the config's)")
    p.add_argument("--layers", choices=LAYER_CHOICES, default=None,
                   help="layers to train (default: heads with --weights coco, else all)")
    p.add_argument("--limit", type=int, default=0,
                   help="use only the first N training and N validation images (0: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--precision", choices=PRECISION_CHOICES, default=precision,
                   help="Config.MIXED_PRECISION: float32, mixed_bfloat16, mixed_float16, or "
                        "auto (mixed_bfloat16 on a CPU with native bfloat16, float32 "
                        f"elsewhere; mrcnn.precision). Default {precision}")
    p.add_argument("--set", type=config_override, nargs="+", action="extend", default=[],
                   metavar="ATTR=VALUE",
                   help="Config overrides on top of the sample's, VALUE a Python literal "
                        "(e.g. --set RPN_CONV_CHANNELS=256 LEARNING_RATE=0.02)")
    p.add_argument("--strategy", choices=["default", "mirrored", "multiworker"],
                   default="default",
                   help="tf.distribute strategy (mrcnn.distributed.make_strategy): mirrored "
                        "over this machine's GPUs, or multiworker across the processes in "
                        "TF_CONFIG (python -m mrcnn.distributed launch ... starts them on one "
                        "machine). The config's global batch is split over the replicas; "
                        "only the chief writes checkpoints and results")
    p.add_argument("--workers", type=int, default=None,
                   help="data loader threads (default: one per core but one, at most 4)")
    p.add_argument("--curve-every", type=int, default=1,
                   help="evaluate val mAP for the learning curve every N epochs (0: never)")
    p.add_argument("--mask-scoring", action="store_true",
                   help="add the Mask Scoring R-CNN MaskIoU head (Config.MASK_SCORING): mask "
                        "metrics then rank detections by class score x predicted mask IoU")
    return p


def training_parser(description, name, **defaults):
    """An ArgumentParser with the shared options (see add_training_arguments)."""
    p = argparse.ArgumentParser(description=description)
    return add_training_arguments(p, name, **defaults)


def generated_data_parser(description, name, **defaults):
    """training_parser for samples that generate their images (shapes, pose): random
    initialisation by default, --train-images and --val-images instead of --dataset."""
    p = training_parser(description, name, weights="none", coco_format=False,
                        dataset_help=f"not used: {name} generates its images", **defaults)
    p.add_argument("--train-images", type=int, default=2000)
    p.add_argument("--val-images", type=int, default=50)
    return p


def check_generated_args(args, parser):
    """check_args for generated_data_parser's options (--dataset is refused)."""
    if args.dataset:
        parser.error("--dataset: this sample generates its own images; use --train-images/"
                     "--val-images")
    return check_args(args, parser)


def generated_datasets(args, make):
    """(train, val) prepared datasets from make(count, seed) -> unprepared Dataset, with
    --train-images and --val-images images (--limit caps both) and seeds --seed and
    --seed + 10000."""
    counts = [args.train_images, args.val_images]
    if args.limit:
        counts = [min(c, args.limit) for c in counts]
    sets = []
    for count, seed in zip(counts, (args.seed, args.seed + 10_000)):
        ds = make(count, seed)
        ds.prepare()
        sets.append(ds)
    return tuple(sets)


def check_args(args, parser):
    """Errors (through parser.error) for options that do not fit together."""
    fmt = getattr(args, "dataset_format", "native")
    if fmt == "coco":
        missing = [o for o, v in (("--train-json", args.train_json),
                                  ("--val-json", args.val_json),
                                  ("--images", args.images)) if not v]
        if missing:
            parser.error(f"--dataset-format coco needs {', '.join(missing)}")
        for o, v in (("--train-json", args.train_json), ("--val-json", args.val_json)):
            if not os.path.isfile(v):
                parser.error(f"{o}: file not found: {v}")
        for o, v in (("--images", args.images), ("--val-images", args.val_images)):
            if v and not os.path.isdir(v):
                parser.error(f"{o}: folder not found: {v}")
    if args.epochs < 0 or args.lr_drop_epochs < 0 or args.limit < 0:
        parser.error("--epochs, --lr-drop-epochs and --limit must be >= 0")
    if args.layers is None:
        args.layers = "heads" if args.weights in ("coco",) + TORCHVISION_MODES else "all"
    return args


def limit_images(dataset, limit):
    """Keeps the first `limit` images of an unprepared Dataset (0: all); call before prepare()."""
    if limit:
        del dataset.image_info[limit:]
    return dataset


def load_coco_json_datasets(args, limit=0):
    """(train, val) prepared Datasets from --train-json/--val-json and --images/--val-images."""
    from mrcnn.dataset import Dataset

    out = []
    for ann, images in ((args.train_json, args.images),
                        (args.val_json, args.val_images or args.images)):
        ds = Dataset()
        ds.load_coco_json(ann, images)
        limit_images(ds, limit)
        ds.prepare()
        out.append(ds)
    return tuple(out)


class _RecordingModel:
    """Passes detect() through to an inference MaskRCNN and keeps each image's result, so that
    per-image figures need no second detection pass."""

    def __init__(self, model):
        self.model = model
        self.config = model.config
        self.results = []

    def detect(self, images, verbose=0):
        r = self.model.detect(images, verbose=verbose)
        self.results.extend(r)
        return r


def per_image_figures(dataset, image_ids, results, iou_threshold=0.5):
    """One dict per image: its reference, GT and detection counts and mask/box AP@0.5 of the
    image alone (NaN when it has no GT)."""
    from mrcnn import evaluation
    from mrcnn.ops.masks import extract_bboxes

    rows = []
    for image_id, r in zip(image_ids, results):
        masks, class_ids = dataset.load_mask(image_id)
        masks = np.asarray(masks, bool)
        gt_boxes = extract_bboxes(masks)
        row = {"image_id": int(image_id), "reference": str(dataset.image_reference(image_id)),
               "gt": int(len(class_ids)), "detections": int(len(r["class_ids"]))}
        for key, use_masks in (("mask_AP50", True), ("bbox_AP50", False)):
            if len(class_ids) == 0:
                row[key] = float("nan")
                continue
            gts = [{"class_ids": np.asarray(class_ids), "masks": masks, "rois": gt_boxes}]
            row[key] = float(evaluation.voc_map(gts, [r], iou_threshold, use_masks)[0])
        rows.append(row)
    return rows


def _config_classes(task, args, train_set, replicas=1):
    overrides = dict(task.config_overrides(args))
    if replicas > 1:
        # The sample's global batch (IMAGES_PER_GPU * GPU_COUNT), split over the replicas.
        batch = task.train_config.IMAGES_PER_GPU * task.train_config.GPU_COUNT
        if batch % replicas:
            raise ValueError(f"the batch of {batch} images does not split over {replicas} "
                             "replicas")
        overrides.update(GPU_COUNT=replicas, IMAGES_PER_GPU=batch // replicas)
    if args.steps_per_epoch:
        overrides["STEPS_PER_EPOCH"] = args.steps_per_epoch
    if args.lr:
        overrides["LEARNING_RATE"] = args.lr
    if getattr(args, "mask_scoring", False):
        overrides["MASK_SCORING"] = True
    if getattr(args, "precision", None):
        overrides["MIXED_PRECISION"] = resolve_precision(args.precision)
    if train_set.num_classes != task.train_config.NUM_CLASSES:
        overrides["NUM_CLASSES"] = train_set.num_classes  # COCO JSON: its own categories
    user = dict(getattr(args, "set", None) or [])
    train_cls = type(task.train_config.__name__, (task.train_config,), {**overrides, **user})
    infer_cls = type(task.inference_config.__name__, (task.inference_config,),
                     {**overrides, **task.inference_overrides(args), **user})
    return train_cls, infer_cls


def run_training(task, args):
    """Trains, evaluates and writes <out>/metrics.json for a parsed command line; returns the
    summary dict. See the module docstring for the steps."""
    start = time.time()
    import keras

    from mrcnn import evaluation
    from mrcnn import model as modellib
    from mrcnn.learning_curve import LearningCurve

    os.makedirs(args.out, exist_ok=True)
    keras.utils.set_random_seed(args.seed)
    if getattr(args, "dataset_format", "native") == "coco":
        train_set, val_set = load_coco_json_datasets(args, args.limit)
    else:
        train_set, val_set = task.load_datasets(args)
    train_images = len(train_set.image_ids)
    train_set = task.wrap_train(train_set, args)
    val_during_training = task.wrap_train(val_set, args)
    train_set = task.expand_train(train_set, args)
    strategy, chief = None, True
    if getattr(args, "strategy", "default") != "default":
        from mrcnn import distributed

        strategy = distributed.make_strategy(args.strategy)
        chief = distributed.is_chief(strategy)
    replicas = strategy.num_replicas_in_sync if strategy is not None else 1
    train_cls, infer_cls = _config_classes(task, args, train_set, replicas)
    # The inference model (learning curve, evaluation) runs on one device.
    infer_cls = type(infer_cls.__name__, (infer_cls,), {"GPU_COUNT": 1})
    config = train_cls()
    added = len(train_set.image_ids) - train_images
    print(f"Training images: {train_images}" + (f" (+{added} generated)" if added else "") +
          f", validation images: "
          f"{len(val_set.image_ids)}, classes: {train_set.class_names[1:]}")

    model = modellib.MaskRCNN("training", config, args.logs, strategy=strategy)
    loaded = load_initial_weights(model, args.weights, args.weights_dir)
    first = model.epoch
    print(f"Checkpoints: {model.checkpoint_path.format(epoch=first + 1)} and on "
          f"(run directory {model.log_dir}, starting after epoch {first})", flush=True)

    inference = modellib.MaskRCNN("inference", infer_cls(), args.logs)
    curve = None
    if args.curve_every and chief:  # the curve reads the checkpoints only the chief writes
        from mrcnn.learning_curve import read_curve

        stem = os.path.join(args.out, "curve")
        curve = LearningCurve(
            inference, val_during_training, model.checkpoint_path, every=args.curve_every,
            stem=stem, initial=read_curve(stem + ".json", first) if first else None,
            title=f"{task.name}: {train_images} training images, "
                  f"weights {os.path.basename(args.weights)}")
    augmentation = task.augmentation(args)
    high = max(args.epochs - args.lr_drop_epochs, 0)
    common = dict(layers=args.layers, augmentation=augmentation, workers=args.workers,
                  custom_callbacks=[curve] if curve else None)
    if high > model.epoch:
        model.train(train_set, val_during_training, config.LEARNING_RATE, epochs=high,
                    seed=args.seed, **common)
    if args.epochs > model.epoch:
        model.train(train_set, val_during_training, config.LEARNING_RATE / 10,
                    epochs=args.epochs, seed=args.seed + 1, **common)
    steps = (model.epoch - first) * config.STEPS_PER_EPOCH
    train_seconds = time.time() - start
    if not chief:
        print(f"worker done after {steps} steps; the chief evaluates and writes the results")
        return {"steps": steps, "chief": False}

    checkpoint = model.checkpoint_path.format(epoch=model.epoch) if model.epoch > first \
        else loaded
    if checkpoint:
        inference.load_weights(checkpoint, by_name=True, verbose=0)
    print(f"\nEvaluating {checkpoint or 'random weights'} on {len(val_set.image_ids)} "
          "validation images")
    recorder = _RecordingModel(inference)
    metrics = evaluation.evaluate_dataset(recorder, val_set)
    os.makedirs(args.out, exist_ok=True)
    summary = {
        "mask_mAP50": metrics["mask_mAP50"],
        "bbox_mAP50": metrics["bbox_mAP50"],
        "coco_mask_AP": metrics["coco_segm"]["AP"],
        "coco_mask_AP50": metrics["coco_segm"]["AP50"],
        "coco_bbox_AP": metrics["coco_bbox"]["AP"],
        "coco_bbox_AP50": metrics["coco_bbox"]["AP50"],
        "per_class_AP50": metrics["per_class_AP50"],
        "per_image": per_image_figures(val_set, list(val_set.image_ids), recorder.results),
        "steps": steps,
        "images_per_step": config.BATCH_SIZE,
        "epochs": model.epoch,
        "train_seconds": round(train_seconds, 1),
        "val_images": metrics["images"],
        "train_images": train_images,
        "generated_train_images": added,
        "checkpoint": checkpoint,
        "weights": args.weights,
        "layers": args.layers,
        "seed": args.seed,
    }
    if "coco_keypoints" in metrics:  # a keypoint model: OKS AP (pycocotools)
        kp = metrics["coco_keypoints"]
        summary.update(keypoint_AP=kp["AP"], keypoint_AP50=kp["AP50"],
                       keypoint_AP75=kp["AP75"], coco_keypoints=kp)
    if "coco_segm_class_scores" in metrics:  # MASK_SCORING: the mask metrics without it
        summary["mask_mAP50_class_scores"] = metrics["mask_mAP50_class_scores"]
        summary["coco_mask_AP_class_scores"] = metrics["coco_segm_class_scores"]["AP"]
        summary["coco_mask_AP50_class_scores"] = metrics["coco_segm_class_scores"]["AP50"]
    if curve is not None and curve.epochs:
        summary["curve_json"], summary["curve"] = curve.save(os.path.join(args.out, "curve"))
    if task.after_evaluation:
        summary.update(task.after_evaluation(inference, val_set, args.out, args) or {})
    summary["wall_clock_seconds"] = round(time.time() - start, 1)
    path = os.path.join(args.out, "metrics.json")
    with open(path, "w") as f:
        json.dump(summary, f, indent=2)
    print(f"mask mAP@0.5 (VOC, {metrics['images']} images): {summary['mask_mAP50']:.4f}  "
          f"box mAP@0.5: {summary['bbox_mAP50']:.4f}")
    print(f"COCO mask AP: {summary['coco_mask_AP']:.4f}  (AP50 {summary['coco_mask_AP50']:.4f})"
          f"  COCO box AP: {summary['coco_bbox_AP']:.4f}")
    if "keypoint_AP" in summary:
        print(f"keypoint AP (OKS, {metrics['images']} images): {summary['keypoint_AP']:.4f}  "
              f"AP50 {summary['keypoint_AP50']:.4f}  AP75 {summary['keypoint_AP75']:.4f}")
    if "coco_mask_AP_class_scores" in summary:
        print(f"ranked by class scores instead of mask scores: COCO mask AP "
              f"{summary['coco_mask_AP_class_scores']:.4f}  mask mAP@0.5 "
              f"{summary['mask_mAP50_class_scores']:.4f}")
    print(f"steps: {steps}  wall clock: {summary['wall_clock_seconds']:.0f} s")
    for key in ("picture", "splash", "curve"):
        if key in summary:
            print(f"{key}: {summary[key]}")
    print(path)
    return summary
