"""torchvision's image transform and detection post-processing, in NumPy.

For a model built from mrcnn.presets.TorchvisionMaskRCNNConfig:
mold_inputs_torchvision reproduces GeneralizedRCNNTransform (normalize, resize so that the
short side is IMAGE_MIN_DIM unless the long side would exceed IMAGE_MAX_DIM, bilinear without
anti-aliasing, zero-pad to a multiple of 32 after normalization), and unmold_detections_torchvision
reproduces transform.postprocess (boxes scaled back per axis, masks pasted with
paste_masks_in_image: the 28x28 mask padded by one pixel, its box expanded to match, resized
bilinearly into the integer box and thresholded). For Keypoint R-CNN, keypoints_torchvision
reproduces keypointrcnn_inference and resize_keypoints: heatmaps decoded on the boxes in the
resized image's pixels, then scaled to the original image per axis.
"""

import numpy as np

from mrcnn.builder import inference_output_names
from mrcnn.ops.boxes import unmold_boxes
from mrcnn.ops.image_meta import compose_image_meta
from mrcnn.ops.keypoints import heatmaps_to_keypoints

__all__ = ["resize_bilinear", "torchvision_resized_shape", "mold_inputs_torchvision",
           "paste_masks_torchvision", "unmold_detections_torchvision", "keypoints_torchvision",
           "detect_torchvision"]


def _axis_weights(n_in, n_out):
    """Source indices and weights of torch's bilinear interpolation (align_corners=False)
    along one axis: src = (dst + 0.5) * n_in / n_out - 0.5, clamped at 0."""
    src = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    src = np.maximum(src, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, src - i0


def resize_bilinear(array, out_h, out_w):
    """[h, w, ...] -> [out_h, out_w, ...] float32, as torch.nn.functional.interpolate(mode=
    "bilinear", align_corners=False, antialias=False)."""
    a = np.asarray(array, dtype=np.float32)
    y0, y1, ly = _axis_weights(a.shape[0], out_h)
    x0, x1, lx = _axis_weights(a.shape[1], out_w)
    extra = (None,) * (a.ndim - 2)
    ly = ly.astype(np.float32)[(slice(None), None) + extra]
    lx = lx.astype(np.float32)[(None, slice(None)) + extra]
    top = a[y0][:, x0] * (1 - lx) + a[y0][:, x1] * lx
    bottom = a[y1][:, x0] * (1 - lx) + a[y1][:, x1] * lx
    return top * (1 - ly) + bottom * ly


def torchvision_resized_shape(h, w, min_dim, max_dim):
    """(height, width) after GeneralizedRCNNTransform's resize: scale = min(min_dim / short,
    max_dim / long), output floor(size * scale) (interpolate's recompute_scale_factor)."""
    scale = min(min_dim / min(h, w), max_dim / max(h, w))
    return int(np.floor(h * scale)), int(np.floor(w * scale))


def mold_inputs_torchvision(images, config, size_divisible=32):
    """uint8 RGB images [h, w, 3] -> (molded [N, H, W, 3] float32, image_metas, windows), as
    torchvision's transform builds its batch: normalized by MEAN_PIXEL / STD_PIXEL, resized
    (torchvision_resized_shape), zero-padded at the bottom/right to a common size that is a
    multiple of size_divisible. Windows are (0, 0, h, w) pixels of the molded images."""
    resized, windows, scales = [], [], []
    std = np.asarray(config.STD_PIXEL if config.STD_PIXEL is not None else 1.0, np.float32)
    for image in images:
        normalized = (np.asarray(image, np.float32) - np.asarray(config.MEAN_PIXEL, np.float32))
        normalized = normalized / std
        h, w = torchvision_resized_shape(image.shape[0], image.shape[1], config.IMAGE_MIN_DIM,
                                         config.IMAGE_MAX_DIM)
        resized.append(resize_bilinear(normalized, h, w))
        windows.append((0, 0, h, w))
        scales.append(h / image.shape[0])
    H = max(r.shape[0] for r in resized)
    W = max(r.shape[1] for r in resized)
    H, W = -(-H // size_divisible) * size_divisible, -(-W // size_divisible) * size_divisible
    batch = np.zeros((len(images), H, W, 3), np.float32)
    metas = []
    for i, r in enumerate(resized):
        batch[i, :r.shape[0], :r.shape[1]] = r
        metas.append(compose_image_meta(0, images[i].shape, batch.shape[1:], windows[i],
                                        scales[i], np.zeros([config.NUM_CLASSES], np.int32)))
    return batch, np.stack(metas).astype(np.float32), np.array(windows)


def paste_masks_torchvision(masks, boxes, image_shape, padding=1):
    """torchvision's paste_masks_in_image.

    masks: [N, M, M] probabilities; boxes: [N, (y1, x1, y2, x2)] float pixels of the target
    image; image_shape: (height, width, ...). Each mask is padded by `padding` zeros, its box
    expanded by (M + 2 * padding) / M about its centre and truncated to integers, the mask
    resized bilinearly to (y2 - y1 + 1, x2 - x1 + 1) and written where it is inside the image.
    Returns [height, width, N] float32 probabilities (threshold at 0.5 for binary masks).
    """
    im_h, im_w = int(image_shape[0]), int(image_shape[1])
    masks = np.asarray(masks, np.float32)
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    out = np.zeros((im_h, im_w, len(masks)), np.float32)
    if not len(masks):
        return out
    m = masks.shape[-1]
    scale = float(m + 2 * padding) / m
    padded = np.pad(masks, ((0, 0), (padding, padding), (padding, padding)))
    center = (boxes[:, :2] + boxes[:, 2:]) * np.float32(0.5)
    half = (boxes[:, 2:] - boxes[:, :2]) * np.float32(0.5) * np.float32(scale)
    expanded = np.concatenate([center - half, center + half], axis=1)
    expanded = np.trunc(expanded).astype(np.int64)  # torch's .to(int64) truncates
    for i, (y1, x1, y2, x2) in enumerate(expanded):
        h, w = max(int(y2 - y1 + 1), 1), max(int(x2 - x1 + 1), 1)
        resized = resize_bilinear(padded[i], h, w)
        ya, yb = max(y1, 0), min(y2 + 1, im_h)
        xa, xb = max(x1, 0), min(x2 + 1, im_w)
        if yb > ya and xb > xa:
            out[ya:yb, xa:xb, i] = resized[ya - y1:yb - y1, xa - x1:xb - x1]
    return out


def unmold_detections_torchvision(detections, mrcnn_mask, original_image_shape, image_shape,
                                  window):
    """One image's detections -> torchvision's output frame.

    detections: [N, (y1, x1, y2, x2, class_id, score)] normalized (ops.boxes convention),
    zero-padded; mrcnn_mask: [N, mh, mw, num_classes]; original_image_shape: [H, W, C];
    image_shape: molded [h, w, C]; window: (y1, x1, y2, x2) pixels of the resized image.
    Returns boxes [N, (y1, x1, y2, x2)] float32 original pixels (not rounded), class_ids [N],
    scores [N] and masks [H, W, N] bool (pasted probabilities > 0.5).
    """
    valid = detections[:, 5] > 0
    det = detections[valid]
    class_ids = det[:, 4].astype(np.int32)
    boxes = unmold_boxes(det[:, :4], window, image_shape, original_image_shape)
    masks = mrcnn_mask[np.nonzero(valid)[0], :, :, class_ids]
    pasted = paste_masks_torchvision(masks, boxes, original_image_shape)
    return boxes.astype(np.float32), class_ids, det[:, 5].astype(np.float32), pasted > 0.5


def keypoints_torchvision(detections, keypoint_maps, original_image_shape, image_shape, window):
    """One image's keypoints, as torchvision's keypointrcnn_inference + transform.postprocess.

    detections: [N, (y1, x1, y2, x2, class_id, score)] normalized, zero-padded; keypoint_maps:
    [N, S, S, K] heatmap logits; original_image_shape: [H, W, C]; image_shape: molded [h, w, C];
    window: (y1, x1, y2, x2) pixels of the resized image in the molded one.
    torchvision's heatmaps_to_keypoints runs on the boxes in the resized image's pixels (torch's
    bicubic resize there agrees with cv2's INTER_CUBIC used by ops.keypoints.
    heatmaps_to_keypoints to ~1e-4 of the logits; same ceil(box size), arg-max and pixel-centre
    placement), then resize_keypoints scales x and y by original / resized size.
    Returns [N_valid, K, (x, y, score)] float32 original pixels; score is torchvision's
    keypoints_scores (the resized logit at the arg-max; torchvision's own third column is 1).
    """
    valid = detections[:, 5] > 0
    h, w = image_shape[:2]
    boxes = detections[valid, :4] * np.array([h - 1, w - 1, h - 1, w - 1]) + np.array(
        [0, 0, 1, 1])
    wy1, wx1, wy2, wx2 = window
    boxes = boxes - np.array([wy1, wx1, wy1, wx1])
    keypoints = heatmaps_to_keypoints(keypoint_maps[np.nonzero(valid)[0]], boxes)
    keypoints[..., 0] *= np.float32(original_image_shape[1] / (wx2 - wx1))
    keypoints[..., 1] *= np.float32(original_image_shape[0] / (wy2 - wy1))
    return keypoints


def detect_torchvision(keras_model, config, images):
    """Runs an inference model built from a torchvision preset config the way torchvision
    runs maskrcnn_resnet50_fpn: mold_inputs_torchvision, the network,
    unmold_detections_torchvision.

    keras_model: MaskRCNN(...).keras_model in inference mode; images: uint8 RGB [h, w, 3].
    Returns one dict per image with matterport's keys: rois [N, (y1, x1, y2, x2)] float32
    original-image pixels (unrounded, as torchvision's boxes), class_ids [N], scores [N],
    masks [H, W, N] bool (all False for a model without the mask head); with a keypoint head
    (NUM_KEYPOINTS > 0, e.g. TorchvisionKeypointRCNNConfig) also keypoints [N, K, (x, y,
    score)] float32 original pixels (keypoints_torchvision); with Config.MASK_SCORING also
    mask_scores [N] float32 (class score x predicted MaskIoU), as MaskRCNN.detect.
    """
    if config.RPN_ANCHOR_LAYOUT != "torchvision":
        raise ValueError("detect_torchvision needs RPN_ANCHOR_LAYOUT = 'torchvision' (anchors "
                         "computed in the graph); use MaskRCNN.detect for other configs")
    molded, metas, windows = mold_inputs_torchvision(images, config)
    anchors = np.zeros((len(images), 1, 4), np.float32)  # unused by the torchvision layout
    outputs = keras_model.predict([molded, metas, anchors], verbose=0)
    detections, masks = outputs[0], outputs[3]
    names = inference_output_names(config)
    keypoint_index = names.index("mrcnn_keypoint") if config.NUM_KEYPOINTS else None
    mask_scores = outputs[names.index("mrcnn_mask_scores")] if config.MASK_SCORING else None
    results = []
    for i, image in enumerate(images):
        rois, class_ids, scores, full = unmold_detections_torchvision(
            detections[i], masks[i], image.shape, molded.shape[1:], windows[i])
        result = {"rois": rois, "class_ids": class_ids, "scores": scores, "masks": full}
        if mask_scores is not None:  # the rows unmold_detections_torchvision keeps
            result["mask_scores"] = mask_scores[i][detections[i][:, 5] > 0].astype(np.float32)
        if config.NUM_KEYPOINTS:
            result["keypoints"] = keypoints_torchvision(detections[i], outputs[keypoint_index][i],
                                                        image.shape, molded.shape[1:], windows[i])
        results.append(result)
    return results
