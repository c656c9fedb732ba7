"""Molding images into network inputs and unmolding detections back to image pixels."""

import numpy as np

from mrcnn.dataset import to_rgb_uint8
from mrcnn.ops.boxes import unmold_boxes
from mrcnn.ops.image import mold_image, pad_to_multiple, resize_image
from mrcnn.ops.image_meta import compose_image_meta
from mrcnn.ops.keypoints import heatmaps_to_keypoints
from mrcnn.ops.masks import unmold_masks

__all__ = ["mold_inputs", "unmold_detections", "unmold_detections_dict", "unmold_detections_with"]


def mold_inputs(images, config):
    """Images (any sizes; uint8 RGB, grayscale, RGBA or 16-bit) -> network inputs.

    Each image is resized per config, zero-padded (before mean subtraction, as in training) to
    a common size that is a multiple of 64, and molded. Returns molded_images [N, H, W, C]
    float32, image_metas [N, IMAGE_META_SIZE] and windows [N, (y1, x1, y2, x2)] pixels of the
    molded images.
    """
    resized, metas, windows = [], [], []
    for i, image in enumerate(images):
        if config.IMAGE_CHANNEL_COUNT == 3:
            image = to_rgb_uint8(image, 3, where=f"images[{i}]")
        m, window, scale, _, _ = resize_image(
            image, min_dim=config.IMAGE_MIN_DIM, min_scale=config.IMAGE_MIN_SCALE,
            max_dim=config.IMAGE_MAX_DIM, mode=config.IMAGE_RESIZE_MODE)
        metas.append(compose_image_meta(0, image.shape, m.shape, window, scale,
                                        np.zeros([config.NUM_CLASSES], dtype=np.int32)))
        resized.append(m)
        windows.append(window)
    batch = pad_to_multiple(resized)
    metas = np.stack(metas).astype(np.float32)
    metas[:, 4:7] = batch.shape[1:]
    return mold_image(batch, config), metas, np.array(windows)


def unmold_detections(detections, mrcnn_mask, original_image_shape, image_shape, window,
                      keypoint_maps=None):
    """One image's detections in the format of the network -> image pixels.

    detections: [N, (y1, x1, y2, x2, class_id, score)] normalized, zero-padded;
    mrcnn_mask: [N, mh, mw, num_classes]; original_image_shape: [H, W, C] before resizing;
    image_shape: [h, w, C] of the molded image; window: [(y1, x1, y2, x2)] pixels of the molded
    image that hold the real image.
    keypoint_maps: optional [N, S, S, K] keypoint heatmap logits of the detections.
    Returns boxes [N, (y1, x1, y2, x2)] int32 original pixels, class_ids [N] int32, scores [N]
    float32, masks [H, W, N] bool; with keypoint_maps also keypoints [N, K, (x, y, score)]
    float32 original pixels (ops.keypoints.heatmaps_to_keypoints on the unrounded boxes).
    """
    r = unmold_detections_dict(detections, mrcnn_mask, original_image_shape, image_shape,
                               window, keypoint_maps)
    out = (r["rois"], r["class_ids"], r["scores"], r["masks"])
    return out if keypoint_maps is None else out + (r["keypoints"],)


def unmold_detections_dict(detections, mrcnn_mask, original_image_shape, image_shape, window,
                           keypoint_maps=None, mask_scores=None):
    """unmold_detections as detect()'s dict: rois, class_ids, scores, masks; "keypoints" with
    keypoint_maps; "mask_scores" [N] float32 with mask_scores ([N] per padded detection, the
    MaskIoU head's class score x predicted MaskIoU), kept for the same detections."""
    valid = detections[:, 4] > 0
    n = int(np.sum(valid))
    rows = np.nonzero(valid)[0]
    detections = detections[valid]
    boxes = detections[:, :4]
    class_ids = detections[:, 4].astype(np.int32)
    scores = detections[:, 5].astype(np.float32)
    masks = mrcnn_mask[rows, :, :, class_ids] if n else \
        np.zeros((0,) + mrcnn_mask.shape[1:3])
    float_boxes = unmold_boxes(boxes, window, image_shape, original_image_shape)
    boxes = np.around(float_boxes).astype(np.int32)
    # Drop boxes that became empty.
    keep = np.where((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) > 0)[0]
    boxes, class_ids, scores, masks = boxes[keep], class_ids[keep], scores[keep], masks[keep]
    result = {"rois": boxes, "class_ids": class_ids, "scores": scores,
              "masks": unmold_masks(masks, boxes, original_image_shape)}
    if keypoint_maps is not None:
        result["keypoints"] = heatmaps_to_keypoints(keypoint_maps[rows][keep], float_boxes[keep])
    if mask_scores is not None:
        result["mask_scores"] = np.asarray(mask_scores)[rows][keep].astype(np.float32)
    return result


def unmold_detections_with(unmold, detections, mrcnn_mask, original_shapes, image_shape,
                           windows, keypoint_maps=None):
    """detect()'s dicts from a matterport-style unmold function (a subclass's override of
    MaskRCNN.unmold_detections), called once per image as matterport's detect() called it:
    unmold(detections[i], mrcnn_mask[i], original_shapes[i], image_shape, windows[i]
    [, keypoint_maps[i]]) -> (rois, class_ids, scores, masks[, keypoints]). No mask_scores:
    the function may drop or reorder detections."""
    results = []
    for i, (shape, window) in enumerate(zip(original_shapes, windows)):
        extra = () if keypoint_maps is None else (keypoint_maps[i],)
        out = unmold(detections[i], mrcnn_mask[i], shape, image_shape, window, *extra)
        keys = ("rois", "class_ids", "scores", "masks", "keypoints")[:len(out)]
        results.append(dict(zip(keys, out)))
    return results
