"""Train Mask R-CNN on matterport's balloon photos, evaluate it, draw detections and a splash.

    python samples/balloon/train.py --dataset ../shared/data/balloon           # the README figure
    python samples/balloon/train.py --dataset ../shared/data/balloon --weights coco --layers heads
    python samples/balloon/train.py --dataset-format coco --train-json A.json --val-json B.json \\
        --images DIR                                                             # COCO JSON data
    python samples/balloon/train.py --dataset ../shared/data/balloon --weights last  # resume
    python samples/balloon/train.py --dataset ../shared/data/balloon \\
        --weights logs/shapes<run>/mask_rcnn_shapes_0010.h5     # start from a shapes model

Defaults train from random initialisation (--weights none) on the 61 training photos plus
1,000 copy-paste composites of them (--copy-paste; mrcnn.copy_paste) and evaluate on the 13
validation photos at full resolution: dataset-level mask and box mAP@0.5, COCO mask/box AP and
per-image figures go to results/balloon/metrics.json (the last line printed), with
detections.png, splash.png and the learning curve curve.png beside it.
A checkpoint of another dataset (--weights PATH, e.g. a model of samples/shapes/train.py) loads
by name without its class-specific layers; benchmarks/balloon.py trains such a shapes model from
random weights first and then the balloon model from it (the README's figure).
Options shared by all samples/*/train.py are described in mrcnn/cli.py.
"""

import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from samples.balloon.balloon import BalloonConfig, BalloonDataset  # noqa: E402

DEFAULT_EPOCHS = 60
DEFAULT_LR_DROP_EPOCHS = 10
DEFAULT_COPY_PASTE = 1000
DEFAULT_PASTE_SCALE = (0.2, 1.5)
DEFAULT_MAX_PASTES = 6
DEFAULT_PASTE_NEAR = 0.0


class BalloonTrainConfig(BalloonConfig):
    """Sized for training from scratch on 61 photos on a 2-core CPU (see the README)."""

    IMAGE_RESIZE_MODE = "square"
    IMAGE_MIN_DIM = 320
    IMAGE_MAX_DIM = 320
    IMAGES_PER_GPU = 4
    TRAIN_BN = True  # from scratch, BatchNorm must learn
    LEARNING_RATE = 0.01
    STEPS_PER_EPOCH = 25
    VALIDATION_STEPS = 3
    # Half of matterport's widths (FPN, RPN conv, box and mask heads): cheaper steps. A shapes
    # model trained at these widths (benchmarks/balloon.py) loads into this one by name.
    TOP_DOWN_PYRAMID_SIZE = 128
    RPN_CONV_CHANNELS = 128
    FPN_CLASSIF_FC_LAYERS_SIZE = 512
    MASK_HEAD_CHANNELS = 128
    # Normalisation in every layer, as for detectors trained from random initialisation (He,
    # Girshick and Dollar 2019): BatchNorm after the FPN convs, and a box head of four 3x3
    # convs with BatchNorm and one FC layer (torchvision's v2 switches; the mask head has
    # BatchNorm already).
    FPN_BATCH_NORM = True
    BOX_HEAD = "4conv1fc"
    # Balloons at 320 px span 4 to 300 pixels (train: median 50, val: median 37, 14 of 50
    # under 16); copy-paste composites add smaller ones still.
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
    RPN_TRAIN_ANCHORS_PER_IMAGE = 128
    PRE_NMS_LIMIT = 3000
    POST_NMS_ROIS_TRAINING = 500
    POST_NMS_ROIS_INFERENCE = 300
    TRAIN_ROIS_PER_IMAGE = 64
    MAX_GT_INSTANCES = 30
    DETECTION_MAX_INSTANCES = 30
    DETECTION_MIN_CONFIDENCE = 0.7
    # Balloons come in bunches whose boxes overlap: matterport's 0.3 suppresses some of them;
    # 0.5 is torchvision's and detectron2's default.
    DETECTION_NMS_THRESHOLD = 0.5


class BalloonInferenceConfig(BalloonTrainConfig):
    GPU_COUNT = 1
    IMAGES_PER_GPU = 1
    # Keep low-score detections: they can only add recall to AP. Pictures filter them.
    DETECTION_MIN_CONFIDENCE = 0.05


def backbones():
    from samples.shapes.train import BACKBONES

    return BACKBONES


def parse_args(argv=None):
    from mrcnn import cli

    p = cli.training_parser(__doc__.split("\n\n")[0], "balloon", epochs=DEFAULT_EPOCHS,
                            lr_drop_epochs=DEFAULT_LR_DROP_EPOCHS, weights="none",
                            precision="auto",
                            dataset_help="folder with train/ and val/ VIA annotations "
                                         "(e.g. ../shared/data/balloon)")
    p.add_argument("--backbone", choices=sorted(backbones()), default="mini",
                   help="mini (default): the small ResNet-FPN of samples/shapes/train.py; "
                        "small: twice its width, 6 blocks instead of 4; resnet50/resnet101: "
                        "the full model (use these with --weights coco or imagenet)")
    p.add_argument("--image-size", type=int, default=None,
                   help=f"photos are scaled to this longest side (and padded square) for "
                        f"inference, and for training unless --crop-size is given (default "
                        f"{BalloonTrainConfig.IMAGE_MAX_DIM})")
    p.add_argument("--crop-size", type=int, default=None,
                   help="train on random square crops of this size (a multiple of 64) of the "
                        "photos scaled to --image-size (IMAGE_RESIZE_MODE crop): small "
                        "balloons keep the inference scale at the cost of a smaller image")
    p.set_defaults(curve_every=2)
    p.add_argument("--no-augmentation", action="store_true",
                   help="train without imgaug augmentation")
    p.add_argument("--copy-paste", type=int, default=DEFAULT_COPY_PASTE, metavar="N",
                   help="add N copy-paste composites to the training photos: balloons cut "
                        "from other photos, rescaled and pasted (mrcnn.copy_paste; default "
                        f"{DEFAULT_COPY_PASTE}, 0: none)")
    p.add_argument("--paste-scale", type=float, nargs=2, default=DEFAULT_PASTE_SCALE,
                   metavar=("LOW", "HIGH"),
                   help="range of the log-uniform size factor of a pasted balloon "
                        f"(default {DEFAULT_PASTE_SCALE[0]} {DEFAULT_PASTE_SCALE[1]})")
    p.add_argument("--max-pastes", type=int, default=DEFAULT_MAX_PASTES,
                   help=f"at most this many balloons pasted per composite (default "
                        f"{DEFAULT_MAX_PASTES})")
    p.add_argument("--hue-shift", type=int, default=0, metavar="H",
                   help="also turn the hue of half the training images by up to H (imgaug's "
                        "AddToHue units, 255 = a full turn; default 0: off), so that colour "
                        "alone does not make a balloon")
    p.add_argument("--paste-near", type=float, default=DEFAULT_PASTE_NEAR, metavar="P",
                   help="probability that a pasted balloon goes beside one already in the "
                        "photo, making bunches of touching balloons (default "
                        f"{DEFAULT_PASTE_NEAR})")
    args = p.parse_args(argv)
    if args.weights in ("coco", "imagenet") and "--backbone" not in " ".join(argv or sys.argv):
        args.backbone = "resnet101" if args.weights == "coco" else "resnet50"
    if args.crop_size and args.crop_size > _image_size(args):
        p.error(f"--crop-size {args.crop_size} is larger than the image size "
                f"{_image_size(args)}")
    if getattr(args, "dataset_format", "native") == "native" and not args.dataset:
        p.error("--dataset is required (or --dataset-format coco with --train-json, "
                "--val-json and --images)")
    return cli.check_args(args, p)


def _image_size(args):
    return args.image_size or BalloonTrainConfig.IMAGE_MAX_DIM


def config_overrides(args):
    overrides = dict(backbones()[args.backbone])
    size = _image_size(args)
    if args.crop_size:
        overrides.update(IMAGE_RESIZE_MODE="crop", IMAGE_MIN_DIM=args.crop_size,
                         IMAGE_MAX_DIM=size)
    elif args.image_size:
        overrides.update(IMAGE_RESIZE_MODE="square", IMAGE_MIN_DIM=size, IMAGE_MAX_DIM=size)
    return overrides


def inference_overrides(args):
    """Inference sees the whole photo, padded square, at --image-size."""
    size = _image_size(args)
    return dict(IMAGE_RESIZE_MODE="square", IMAGE_MIN_DIM=size, IMAGE_MAX_DIM=size)


def augmentation(args):
    """Flips, scale/shift/rotation, and brightness/colour changes (imgaug); with --hue-shift H,
    half the images also have their hue turned by up to H (imgaug's units: 255 = a full
    turn)."""
    if args.no_augmentation:
        return None
    import imgaug.augmenters as iaa

    return iaa.Sequential([
        iaa.Fliplr(0.5),
        iaa.Sometimes(0.7, iaa.Affine(scale=(0.7, 1.3), translate_percent=(-0.1, 0.1),
                                      rotate=(-10, 10))),
        iaa.Sometimes(0.5, iaa.Multiply((0.7, 1.3))),
        iaa.Sometimes(0.3, iaa.AddToHueAndSaturation((-20, 20))),
    ] + ([iaa.Sometimes(0.5, iaa.AddToHue((-args.hue_shift, args.hue_shift)))]
         if args.hue_shift else []))


def load_datasets(args):
    """The VIA train/ and val/ sets of --dataset."""
    from mrcnn.cli import limit_images

    sets = []
    for subset in ("train", "val"):
        ds = BalloonDataset()
        ds.load_balloon(args.dataset, subset)
        limit_images(ds, args.limit)
        ds.prepare()
        sets.append(ds)
    return tuple(sets)


def wrap_train(dataset, args):
    """Photos (up to 2048 px) are decoded, downscaled to the training size and cached in memory
    once (DownscaledDataset) for training, the validation loss and the per-epoch mAP; the final
    evaluation reads the validation photos at full resolution."""
    from mrcnn.dataset_cache import DownscaledDataset

    return DownscaledDataset(dataset, _image_size(args))


def expand_train(dataset, args):
    """--copy-paste N composites after the training photos (CopyPasteDataset)."""
    if not args.copy_paste:
        return dataset
    from mrcnn.copy_paste import CopyPasteDataset

    return CopyPasteDataset(dataset, args.copy_paste, seed=args.seed,
                            max_pastes=args.max_pastes, scale_range=args.paste_scale,
                            near_prob=args.paste_near)


def after_evaluation(model, val, out_dir, args):
    """detections.png (four val photos) and splash.png (the first val photo)."""
    import skimage.io

    from samples.balloon.balloon import color_splash
    from samples.shapes.train import save_detections_picture

    picture = os.path.join(out_dir, "detections.png")
    save_detections_picture(model, val, list(val.image_ids[:4]), picture)
    image = val.load_image(val.image_ids[0])
    r = model.detect([image], verbose=0)[0]
    keep = r["scores"] >= 0.7
    splash = os.path.join(out_dir, "splash.png")
    skimage.io.imsave(splash, color_splash(image, r["masks"][:, :, keep]), check_contrast=False)
    return {"picture": picture, "splash": splash, "backbone": args.backbone}


def main(argv=None):
    from mrcnn import cli

    args = parse_args(argv)
    task = cli.TrainingTask("balloon", BalloonTrainConfig, BalloonInferenceConfig,
                            load_datasets, augmentation=augmentation,
                            after_evaluation=after_evaluation,
                            config_overrides=config_overrides, wrap_train=wrap_train,
                            inference_overrides=inference_overrides,
                            expand_train=expand_train)
    return cli.run_training(task, args)


if __name__ == "__main__":
    main()
