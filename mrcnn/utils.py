"""matterport's mrcnn.utils: Dataset and the NumPy helpers, under their original names.

The implementations live in mrcnn.dataset, mrcnn.ops.* and mrcnn.evaluation.
"""

import logging
import warnings

from mrcnn.dataset import Dataset, ImageLoadError
from mrcnn.evaluation import compute_ap, compute_ap_range, compute_matches, compute_recall
from mrcnn.ops.anchors import generate_anchors, generate_pyramid_anchors
from mrcnn.ops.batching import batch_slice, trim_zeros
from mrcnn.ops.boxes import (
    apply_box_deltas,
    box_refinement,
    box_refinement_graph,
    compute_iou,
    compute_overlaps,
    denorm_boxes,
    non_max_suppression,
    norm_boxes,
)
from mrcnn.ops.image import mold_image, resize, resize_image, unmold_image
from mrcnn.ops.masks import (
    compute_overlaps_masks,
    expand_mask,
    extract_bboxes,
    minimize_mask,
    resize_mask,
    unmold_mask,
)

# URL of matterport's COCO weights, kept for reference: mrcnn never downloads.
COCO_MODEL_URL = "https://github.com/matterport/Mask_RCNN/releases/download/v2.0/mask_rcnn_coco.h5"

logger = logging.getLogger(__name__)


def download_trained_weights(coco_model_path, verbose=1):
    """matterport downloaded mask_rcnn_coco.h5 here. mrcnn never downloads: this raises with
    where to get the file from and where to put it."""
    raise RuntimeError(
        f"mrcnn does not download weights. Fetch {COCO_MODEL_URL} yourself and save it as "
        f"{coco_model_path}.")


def mold_mask(mask, config):
    """matterport left this as an unimplemented stub; there is nothing to mold."""
    warnings.warn("mold_mask was never implemented upstream; it returns the mask unchanged",
                  stacklevel=2)
    return mask
