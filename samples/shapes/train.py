"""Train Mask R-CNN on the synthetic shapes dataset, evaluate it, and draw its detections.

    python samples/shapes/train.py                 # the README's main job (CPU, from scratch)
    python samples/shapes/train.py --weights last  # continue the newest run in --logs
    python samples/shapes/train.py --epochs 2 --steps-per-epoch 20 --val-images 10  # a quick look
    python samples/shapes/train.py --mask-scoring  # with the Mask Scoring R-CNN head

Prints the metrics (VOC mask mAP@0.5 over the whole validation set, COCO mask AP via pycocotools,
wall-clock seconds, steps), writes them to <out>/metrics.json, a picture of detections to
<out>/detections.png and the learning curve to <out>/curve.png; the last line printed is the
JSON file's path. Options shared by all samples/*/train.py are described in mrcnn/cli.py.
"""

import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from samples.shapes.shapes import ShapesConfig, ShapesDataset  # noqa: E402


class ShapesTrainConfig(ShapesConfig):
    """ShapesConfig sized for training from scratch on a CPU in minutes."""

    BACKBONE = "resnet50"
    # A quarter of matterport's widths (FPN, RPN conv, box and mask heads): a training step
    # takes about half the time of the half-width model's, and 28 epochs reach mask mAP@0.5
    # 0.92 (36 epochs: 0.96; README, Results).
    TOP_DOWN_PYRAMID_SIZE = 64
    RPN_CONV_CHANNELS = 64
    FPN_CLASSIF_FC_LAYERS_SIZE = 256
    MASK_HEAD_CHANNELS = 64
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
    # With --mask-scoring: a MaskIoU head at half the paper's width (the README's Mask Scoring
    # figures were measured with it).
    MASKIOU_CONV_CHANNELS = 128
    MASKIOU_FC_SIZE = 512


def _small_resnet(input_image, train_bn, width, blocks):
    """A ResNet-50-shaped trunk with `width` times its channels and `blocks` bottleneck blocks
    in stages 2..5, matterport's layer names (conv1, res2a_branch2a, ..., res5?) and strides
    4..32. Returns [C1, C2, C3, C4, C5]."""
    from keras import layers as KL

    from mrcnn.backbone.resnet import _bn, conv_block, identity_block

    x = KL.ZeroPadding2D((3, 3))(input_image)
    x = KL.Conv2D(int(128 * width), (7, 7), strides=(2, 2), name="conv1")(x)
    x = _bn("bn_conv1", train_bn)(x)
    x = KL.Activation("relu")(x)
    outputs = [KL.MaxPooling2D((3, 3), strides=(2, 2), padding="same")(x)]
    x = outputs[0]
    for stage, count in zip((2, 3, 4, 5), blocks):
        f = int(64 * width * 2 ** (stage - 2))
        filters = [f, f, 4 * f]
        x = conv_block(x, 3, filters, stage=stage, block="a",
                       strides=(1, 1) if stage == 2 else (2, 2), train_bn=train_bn)
        for b in range(1, count):
            x = identity_block(x, 3, filters, stage=stage, block=chr(ord("a") + b),
                               train_bn=train_bn)
        outputs.append(x)
    return outputs


def mini_backbone(input_image, stage5=True, train_bn=True):
    """A small ResNet (one bottleneck block per stage, a quarter of ResNet-50's widths) with
    matterport's layer names and strides 4..32; a callable BACKBONE for quick CPU runs."""
    return _small_resnet(input_image, train_bn, 0.25, (1, 1, 1, 1))


def small_backbone(input_image, stage5=True, train_bn=True):
    """Twice the mini backbone's depth in stages 3 and 4 (1, 2, 2, 1 blocks) at half of
    ResNet-50's widths."""
    return _small_resnet(input_image, train_bn, 0.5, (1, 2, 2, 1))


def mini_backbone_shapes(image_shape):
    from mrcnn.ops.anchors import backbone_shapes_from_strides

    return backbone_shapes_from_strides(image_shape, ShapesTrainConfig.BACKBONE_STRIDES)


# name -> Config overrides. "mini" also halves the mask head's resolution (7x7 pooled
# features, 14x14 masks): the mask head is most of a training step's work on a CPU.
# The ResNeXts take torchvision's padding, BatchNorm epsilon and input normalisation, so that
# --weights imagenet (torchvision's ImageNet .pth) fits them.
_TORCHVISION_TRUNK = {"RESNET_SYMMETRIC_PADDING": True, "BN_EPSILON": 1e-5,
                      "MEAN_PIXEL": (123.675, 116.28, 103.53),   # 255 * ImageNet mean
                      "STD_PIXEL": (58.395, 57.12, 57.375)}      # 255 * ImageNet std
BACKBONES = {
    "resnet50": {"BACKBONE": "resnet50"},
    "resnet101": {"BACKBONE": "resnet101"},
    "resnext50_32x4d": {"BACKBONE": "resnext50_32x4d", **_TORCHVISION_TRUNK},
    "resnext101_32x8d": {"BACKBONE": "resnext101_32x8d", **_TORCHVISION_TRUNK},
    "mini": {"BACKBONE": mini_backbone, "COMPUTE_BACKBONE_SHAPE": mini_backbone_shapes,
             "MASK_POOL_SIZE": 7, "MASK_SHAPE": [14, 14]},
    "small": {"BACKBONE": small_backbone, "COMPUTE_BACKBONE_SHAPE": mini_backbone_shapes,
              "MASK_POOL_SIZE": 7, "MASK_SHAPE": [14, 14]},
}


class ShapesInferenceConfig(ShapesTrainConfig):
    GPU_COUNT = 1
    IMAGES_PER_GPU = 1
    # Keep low-score detections: they can only add recall to AP. The picture filters them.
    DETECTION_MIN_CONFIDENCE = 0.05


def parse_args(argv=None):
    from mrcnn import cli

    p = cli.generated_data_parser(__doc__.split("\n\n")[0], "shapes", epochs=28,
                                  lr_drop_epochs=6, precision="auto")
    p.add_argument("--backbone", choices=sorted(BACKBONES), default="mini",
                   help="mini (default): a small ResNet-FPN that trains in minutes on a CPU; "
                        "small: twice its width, 6 blocks instead of 4; resnet50/resnet101: "
                        "the full model")
    p.add_argument("--backgrounds", metavar="DIR",
                   help="draw the shapes on random 128x128 crops of the photos in DIR (each at "
                        "least 128x128) instead of flat colours")
    p.set_defaults(curve_every=5)
    args = cli.check_generated_args(p.parse_args(argv), p)
    if args.backgrounds and not os.path.isdir(args.backgrounds):
        p.error(f"--backgrounds: not a folder: {args.backgrounds}")
    return args


def read_backgrounds(folder, size=128):
    """The photos of `folder` (sorted by name) as [h, w, 3] uint8 RGB; ValueError naming any
    file that cannot be read or is smaller than size x size, or an empty folder."""
    import skimage.io

    from mrcnn.dataset import to_rgb_uint8

    names = sorted(n for n in os.listdir(folder)
                   if n.lower().endswith((".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")))
    if not names:
        raise ValueError(f"--backgrounds: no image files in {folder}")
    photos = []
    for name in names:
        path = os.path.join(folder, name)
        try:
            photo = to_rgb_uint8(skimage.io.imread(path), 3, path)
        except Exception as e:
            raise ValueError(f"--backgrounds: cannot read {path}: {e}") from e
        if photo.shape[0] < size or photo.shape[1] < size:
            raise ValueError(f"--backgrounds: {path} is {photo.shape[1]}x{photo.shape[0]}, "
                             f"smaller than {size}x{size}")
        photos.append(photo)
    return photos


def save_detections_picture(model, dataset, image_ids, path, min_score=0.7):
    """A row of detections (score >= min_score) on some images (visualize.save_detections_grid)."""
    from mrcnn import visualize

    return visualize.save_detections_grid(model, dataset, image_ids, path, min_score)


def load_datasets(args):
    """Generated training and validation shapes (seeded; --limit caps both counts)."""
    from mrcnn import cli

    backgrounds = read_backgrounds(args.backgrounds) if args.backgrounds else None

    def make(count, seed):
        ds = ShapesDataset()
        ds.load_shapes(count, 128, 128, seed=seed, backgrounds=backgrounds)
        return ds

    return cli.generated_datasets(args, make)


def after_evaluation(model, val, out_dir, args):
    picture = os.path.join(out_dir, "detections.png")
    save_detections_picture(model, val, list(val.image_ids[:4]), picture)
    return {"picture": picture, "backbone": args.backbone}


def main(argv=None):
    from mrcnn import cli

    args = parse_args(argv)
    task = cli.TrainingTask("shapes", ShapesTrainConfig, ShapesInferenceConfig, load_datasets,
                            after_evaluation=after_evaluation,
                            config_overrides=lambda a: dict(BACKBONES[a.backbone]))
    return cli.run_training(task, args)


if __name__ == "__main__":
    main()
