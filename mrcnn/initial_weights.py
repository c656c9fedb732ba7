"""The weights a training run starts from: the --weights values of mrcnn.cli.

- coco: mask_rcnn_coco.h5 in the repository root (or --weights-dir), fetched with
  utils.download_trained_weights when missing; loaded by name, without the class-specific
  heads when the config's NUM_CLASSES is not COCO's 81.
- imagenet: model.get_imagenet_weights(), then model.load_imagenet_weights(path).
- last: the newest checkpoint of the config's NAME in --logs; training continues its epochs.
- none: random initialisation.  PATH: any weights file, loaded by name; without the
  class-specific heads when it was saved with another NUM_CLASSES (transfer between datasets).
- torchvision: torchvision's COCO checkpoint (maskrcnn_resnet50_fpn, or keypointrcnn_resnet50_fpn
  for a keypoint config) from the download cache or downloaded there
  (torchvision_weights.download_torchvision_checkpoint), loaded with
  MaskRCNN.load_torchvision_weights; the config must be a torchvision preset
  (mrcnn.presets), and the class-specific layers are left out when NUM_CLASSES differs.
- torchvision_v2: the same with maskrcnn_resnet50_fpn_v2's checkpoint
  (presets.TorchvisionMaskRCNNV2Config).
"""

import os

__all__ = ["WEIGHT_MODES", "TORCHVISION_MODES", "COCO_WEIGHTS_NAME", "COCO_NUM_CLASSES",
           "HEAD_LAYERS", "resolve_weights", "load_initial_weights"]

WEIGHT_MODES = ("coco", "imagenet", "last", "none", "torchvision", "torchvision_v2")
TORCHVISION_MODES = ("torchvision", "torchvision_v2")
COCO_WEIGHTS_NAME = "mask_rcnn_coco.h5"
COCO_NUM_CLASSES = 81
# The class-specific layers of mask_rcnn_coco.h5, left out when the class count differs.
HEAD_LAYERS = ["mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_bbox", "mrcnn_mask"]
REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def resolve_weights(model, weights, weights_dir=None):
    """The weights file a --weights value names, or None for 'none'.

    coco: <weights_dir>/mask_rcnn_coco.h5, downloaded with utils.download_trained_weights when
    missing (which raises a clear error when it cannot). imagenet: model.get_imagenet_weights().
    last: model.find_last(). Anything else is a path that must exist.
    """
    if weights == "none":
        return None
    if weights == "last":
        return model.find_last()
    if weights == "imagenet":
        return model.get_imagenet_weights()
    if weights in TORCHVISION_MODES:
        from mrcnn.torchvision_weights import download_torchvision_checkpoint

        return download_torchvision_checkpoint(_torchvision_checkpoint(model.config, weights))
    if weights == "coco":
        from mrcnn import utils

        path = os.path.join(weights_dir or REPO_ROOT, COCO_WEIGHTS_NAME)
        if not os.path.isfile(path):
            utils.download_trained_weights(path)
        return path
    if not os.path.isfile(weights):
        raise FileNotFoundError(f"--weights {weights}: no such file (expected coco, imagenet, "
                                "last, none or a weights file)")
    return weights


def _torchvision_checkpoint(config, weights="torchvision"):
    if weights == "torchvision_v2":
        if config.NUM_KEYPOINTS:
            raise ValueError("--weights torchvision_v2: torchvision has no v2 Keypoint R-CNN "
                             "checkpoint (use --weights torchvision)")
        return "maskrcnn_resnet50_fpn_v2_coco"
    return "keypointrcnn_resnet50_fpn_coco" if config.NUM_KEYPOINTS else \
        "maskrcnn_resnet50_fpn_coco"


def load_initial_weights(model, weights, weights_dir=None, verbose=1):
    """Resolves --weights and loads it into model (matterport's flow). Returns the path loaded,
    or None for random initialisation."""
    path = resolve_weights(model, weights, weights_dir)
    if path is None:
        if verbose:
            print("Weights: random initialisation")
        return None
    if verbose:
        print(f"Loading weights {path}")
    if weights == "imagenet":
        model.load_imagenet_weights(path, verbose=verbose)
    elif weights in TORCHVISION_MODES:
        from mrcnn.torchvision_weights import CLASS_SPECIFIC_LAYERS

        classes = 2 if model.config.NUM_KEYPOINTS else 91  # the checkpoints' label spaces
        model.load_torchvision_weights(
            path, exclude=CLASS_SPECIFIC_LAYERS if model.config.NUM_CLASSES != classes else None,
            verbose=verbose)
    elif (weights == "coco" and model.config.NUM_CLASSES != COCO_NUM_CLASSES) or \
            _other_class_count(path, model.config.NUM_CLASSES, verbose):
        model.load_weights(path, by_name=True, exclude=HEAD_LAYERS, verbose=verbose)
    else:
        model.load_weights(path, by_name=True, verbose=verbose)
    return path


def _other_class_count(path, num_classes, verbose):
    """True when the weights file was saved by a model with another NUM_CLASSES (transfer from
    another dataset, e.g. a shapes checkpoint to balloon): its class-specific layers are then
    left out."""
    from mrcnn.weights import file_num_classes

    saved = file_num_classes(path)
    if saved is None or saved == num_classes:
        return False
    if verbose:
        print(f"{path} was saved with NUM_CLASSES={saved}, this model has {num_classes}: "
              f"loading all but the class-specific layers ({', '.join(HEAD_LAYERS)})")
    return True
