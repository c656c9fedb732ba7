"""Train Mask R-CNN on MS COCO (or any COCO JSON), evaluate it and write metrics.json.

    python samples/coco/train.py --dataset /path/to/coco --year 2017 --weights imagenet
    python samples/coco/train.py --dataset /path/to/coco --weights coco --layers heads
    python samples/coco/train.py --dataset-format coco --train-json A.json --val-json B.json \\
        --images DIR
    python samples/coco/train.py --dataset /path/to/coco --weights last     # resume
    python samples/coco/train.py --dataset /path/to/coco --weights torchvision --layers heads
    python samples/coco/train.py --dataset /path/to/coco --weights torchvision_v2
    python samples/coco/train.py --dataset /path/to/coco --task keypoints   # person keypoints

--dataset holds annotations/instances_<subset><year>.json and the image folders, as read by
samples/coco/coco.py's CocoDataset (2014: train + valminusminival for training, minival for
validation; 2017: train and val); with --task keypoints, person_keypoints_<subset><year>.json
(the person class, its masks and 17 keypoints; OKS AP is added to the metrics). Evaluation
(dataset-level mask/box mAP@0.5 and COCO AP over --eval-limit validation images) goes to
results/coco/metrics.json, the last line printed.
Options shared by all samples/*/train.py are described in mrcnn/cli.py.
"""

import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from samples.coco.coco import (  # noqa: E402
    DEFAULT_DATASET_YEAR,
    CocoConfig,
    CocoDataset,
    CocoKeypointConfig,
)


class CocoInferenceConfig(CocoConfig):
    GPU_COUNT = 1
    IMAGES_PER_GPU = 1
    DETECTION_MIN_CONFIDENCE = 0.05


def parse_args(argv=None):
    from mrcnn import cli
    from samples.shapes.train import BACKBONES

    p = cli.training_parser(__doc__.split("\n\n")[0], "coco", epochs=160, lr_drop_epochs=40,
                            weights="imagenet",
                            dataset_help="COCO folder (annotations/ and image folders)")
    p.add_argument("--year", default=DEFAULT_DATASET_YEAR, choices=["2014", "2017"])
    p.add_argument("--task", default="instances", choices=["instances", "keypoints"],
                   help="keypoints: person_keypoints_*.json and the keypoint head "
                        "(coco.CocoKeypointConfig)")
    p.add_argument("--backbone", choices=sorted(BACKBONES), default=None,
                   help=f"default: the config's ({CocoConfig.BACKBONE})")
    p.add_argument("--image-size", type=int, default=None,
                   help="square image size (default: the config's 1024)")
    p.add_argument("--images-per-step", type=int, default=None,
                   help=f"images per step (default {CocoConfig.IMAGES_PER_GPU})")
    args = p.parse_args(argv)
    if getattr(args, "dataset_format", "native") == "native" and not args.dataset:
        p.error("--dataset is required (or --dataset-format coco with --train-json, "
                "--val-json and --images)")
    return cli.check_args(args, p)


def torchvision_overrides(v2=False):
    """The architecture attributes of mrcnn.presets.TorchvisionMaskRCNNConfig (what
    --weights torchvision needs; v2: TorchvisionMaskRCNNV2Config, for --weights
    torchvision_v2), without its name, class count and batch size."""
    from mrcnn.config import Config
    from mrcnn.presets import TorchvisionMaskRCNNConfig, TorchvisionMaskRCNNV2Config

    preset = TorchvisionMaskRCNNV2Config if v2 else TorchvisionMaskRCNNConfig
    overrides = {}
    for cls in reversed(preset.__mro__[:preset.__mro__.index(Config)]):
        overrides.update({k: v for k, v in vars(cls).items()
                          if k.isupper() and k not in ("NAME", "NUM_CLASSES", "IMAGES_PER_GPU")})
    return overrides


def config_overrides(args):
    from mrcnn.cli import TORCHVISION_MODES
    from samples.shapes.train import BACKBONES

    overrides = torchvision_overrides(args.weights == "torchvision_v2") \
        if args.weights in TORCHVISION_MODES else {}
    if args.task == "keypoints":
        if args.weights == "torchvision_v2":
            raise SystemExit("--task keypoints: torchvision has no v2 Keypoint R-CNN "
                             "checkpoint (use --weights torchvision)")
        overrides.update({k: v for k, v in vars(CocoKeypointConfig).items() if k.isupper()})
    if args.backbone and args.weights in TORCHVISION_MODES:
        raise SystemExit(f"--backbone: --weights {args.weights} needs torchvision's ResNet-50")
    overrides.update(BACKBONES[args.backbone] if args.backbone else {})
    if args.image_size:
        overrides.update(IMAGE_MIN_DIM=args.image_size, IMAGE_MAX_DIM=args.image_size)
    if args.images_per_step:
        overrides["IMAGES_PER_GPU"] = args.images_per_step
    return overrides


def load_datasets(args):
    """COCO train/val as coco.py's `train` command loads them."""
    from mrcnn.cli import limit_images

    task = "person_keypoints" if args.task == "keypoints" else "instances"
    train = CocoDataset()
    train.load_coco(args.dataset, "train", year=args.year, task=task)
    if args.year == "2014":
        train.load_coco(args.dataset, "valminusminival", year=args.year, task=task)
    val = CocoDataset()
    val.load_coco(args.dataset, "minival" if args.year == "2014" else "val", year=args.year,
                  task=task)
    for ds in (train, val):
        limit_images(ds, args.limit)
        ds.prepare()
    return train, val


def augmentation(args):
    import imgaug.augmenters as iaa

    return iaa.Fliplr(0.5)


def main(argv=None):
    from mrcnn import cli

    args = parse_args(argv)
    task = cli.TrainingTask("coco", CocoConfig, CocoInferenceConfig, load_datasets,
                            augmentation=augmentation, config_overrides=config_overrides)
    return cli.run_training(task, args)


if __name__ == "__main__":
    main()
