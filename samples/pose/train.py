"""Train the keypoint branch of Mask R-CNN on synthetic stick figures, evaluate OKS AP, and draw
the predicted skeletons.

    python samples/pose/train.py                  # from random initialisation, on a CPU
    python samples/pose/train.py --weights last   # continue the newest run in --logs
    python samples/pose/train.py --epochs 2 --steps-per-epoch 20 --val-images 10  # a quick look

The model is the paper's keypoint head (eight 3x3 convolutions, a deconvolution and a 2x
upsampling to 56x56 heatmaps, one per keypoint) beside the box and mask heads, on the small
ResNet-FPN of samples/shapes/train.py. Prints keypoint AP (COCO's OKS AP, pycocotools) and the
mask and box figures, writes <out>/metrics.json and the skeletons to <out>/skeletons.png; the
last line printed is the JSON file's path. Options shared by all samples/*/train.py are
described in mrcnn/cli.py.
"""

import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from samples.pose.pose import (  # noqa: E402
    KEYPOINT_FLIP_MAP,
    KEYPOINT_NAMES,
    KEYPOINT_SIGMAS,
    KEYPOINT_SKELETON,
    PoseConfig,
    PoseDataset,
)
from samples.shapes.train import mini_backbone, mini_backbone_shapes  # noqa: E402

IMAGE_SIZE = 128


class PoseTrainConfig(PoseConfig):
    """Keypoints on the small ResNet-FPN, sized for a CPU."""

    BACKBONE = staticmethod(mini_backbone)
    COMPUTE_BACKBONE_SHAPE = staticmethod(mini_backbone_shapes)
    TOP_DOWN_PYRAMID_SIZE = 128
    FPN_CLASSIF_FC_LAYERS_SIZE = 512
    MASK_POOL_SIZE = 7
    MASK_SHAPE = [14, 14]
    NUM_KEYPOINTS = len(KEYPOINT_NAMES)
    KEYPOINT_NAMES = KEYPOINT_NAMES
    KEYPOINT_FLIP_MAP = KEYPOINT_FLIP_MAP
    KEYPOINT_SKELETON = KEYPOINT_SKELETON
    KEYPOINT_OKS_SIGMAS = KEYPOINT_SIGMAS
    KEYPOINT_HEAD_CONV_CHANNELS = 128   # the paper's 512 is for COCO on GPUs
    IMAGES_PER_GPU = 4
    TRAIN_BN = True
    LEARNING_RATE = 0.01
    STEPS_PER_EPOCH = 200
    VALIDATION_STEPS = 5
    RPN_TRAIN_ANCHORS_PER_IMAGE = 64
    POST_NMS_ROIS_TRAINING = 300
    POST_NMS_ROIS_INFERENCE = 200
    PRE_NMS_LIMIT = 2000
    MAX_GT_INSTANCES = 6
    DETECTION_MAX_INSTANCES = 10


class PoseInferenceConfig(PoseTrainConfig):
    GPU_COUNT = 1
    IMAGES_PER_GPU = 1
    DETECTION_MIN_CONFIDENCE = 0.05


def parse_args(argv=None):
    from mrcnn import cli

    p = cli.generated_data_parser(__doc__.split("\n\n")[0], "pose", epochs=8,
                                  lr_drop_epochs=2)
    p.add_argument("--no-flip", action="store_true",
                   help="train without horizontal-flip augmentation (which swaps the left "
                        "and right keypoints by KEYPOINT_FLIP_MAP)")
    p.set_defaults(curve_every=0)
    return cli.check_generated_args(p.parse_args(argv), p)


def load_datasets(args):
    """Generated training and validation figures (seeded; --limit caps both counts)."""
    from mrcnn import cli

    def make(count, seed):
        ds = PoseDataset()
        ds.load_pose(count, IMAGE_SIZE, IMAGE_SIZE, seed=seed)
        return ds

    return cli.generated_datasets(args, make)


def augmentation(args):
    if args.no_flip:
        return None
    import imgaug.augmenters as iaa

    return iaa.Fliplr(0.5)


def after_evaluation(model, val_set, out_dir, args):
    """The skeletons picture (keypoint AP is in the shared evaluation's metrics)."""
    from mrcnn import visualize

    picture = os.path.join(out_dir, "skeletons.png")
    visualize.save_detections_grid(model, val_set, list(val_set.image_ids[:4]), picture,
                                   skeleton=KEYPOINT_SKELETON)
    return {"picture": picture}


def main(argv=None):
    from mrcnn import cli

    args = parse_args(argv)
    task = cli.TrainingTask("pose", PoseTrainConfig, PoseInferenceConfig, load_datasets,
                            augmentation=augmentation, after_evaluation=after_evaluation)
    return cli.run_training(task, args)


if __name__ == "__main__":
    main()
