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

# matterport's release of its COCO weights; download_trained_weights fetches it.
COCO_MODEL_URL = "https://github.com/matterport/Mask_RCNN/releases/download/v2.0/mask_rcnn_coco.h5"

logger = logging.getLogger(__name__)


def download_trained_weights(coco_model_path, verbose=1, url=COCO_MODEL_URL):
    """Downloads matterport's COCO weights (mask_rcnn_coco.h5) to coco_model_path, as
    matterport did, and returns the path.

    An existing readable weights file at coco_model_path is reused without any network access.
    The download shows a progress bar on stderr (verbose > 0), is written to a temporary file
    beside coco_model_path and renamed only once it is complete and is a readable HDF5 file with
    layer names (matterport publishes no hash for it). url= points at a mirror.
    Raises mrcnn.download.DownloadError (an OSError) naming the URL and coco_model_path, where a
    file downloaded by hand is picked up.
    """
    from mrcnn.download import download_file
    from mrcnn.weights import check_weights_file

    if verbose > 0:
        print(f"Downloading pretrained model to {coco_model_path} ...")
    path = download_file(url, coco_model_path, validate=check_weights_file,
                         progress=verbose > 0)
    if verbose > 0:
        print("... done downloading pretrained model!")
    return path


def mold_mask(mask, config):
    """matterport left this as an unimplemented stub; there is nothing to mold."""
    warnings.warn("mold_mask was never implemented upstream; it returns the mask unchanged",
                  stacklevel=2)
    return mask
