"""Export an inference MaskRCNN as a TensorFlow SavedModel for tf.saved_model.load and TF
Serving, with molding and unmolding inside the graph.

    from mrcnn.export import export_saved_model
    export_saved_model(model, "exported/1")
    served = tf.saved_model.load("exported/1")
    out = served.serve(tf.constant(images_uint8))   # [batch, height, width, 3], any size

Outputs of `serve` (N = DETECTION_MAX_INSTANCES, padded; num_detections says how many are real):
    boxes [batch, N, (y1, x1, y2, x2)] int32 pixels of the input image, class_ids [batch, N]
    int32, scores [batch, N] float32, masks [batch, N, height, width] bool, num_detections
    [batch] int32; with a keypoint head also keypoints [batch, N, K, (x, y, score)] float32
    pixels of the input image (keypoints_from_heatmaps_graph); with Config.MASK_SCORING also
    mask_scores [batch, N] float32 (class score x predicted MaskIoU, as detect()'s).
Images in one call share a size; different calls may use different sizes.
"""

import numpy as np
import tensorflow as tf

from mrcnn.builder import inference_output_names
from mrcnn.layers.graph_utils import pyramid_anchors_graph
from mrcnn.ops.boxes import unmold_boxes_graph

__all__ = ["export_saved_model", "mold_images_graph", "unmold_detections_graph",
           "keypoints_from_heatmaps_graph", "convert_to_tflite"]


def _resize_scale(h, w, min_dim, max_dim, min_scale, mode):
    """resize_image's scale, in the graph (h, w float32 scalars)."""
    if mode == "none":
        return tf.constant(1.0)
    scale = tf.constant(1.0)
    if min_dim:
        scale = tf.maximum(1.0, min_dim / tf.minimum(h, w))
    if min_scale:
        scale = tf.maximum(scale, float(min_scale))
    if max_dim and mode in ("square", "pad64"):
        image_max = tf.maximum(h, w)
        scale = tf.where(tf.round(image_max * scale) > max_dim, max_dim / image_max, scale)
    return scale


def mold_images_graph(images, config):
    """uint8 images [batch, H, W, 3] -> (molded [batch, h, w, 3] float32, image_metas, windows)
    as inference.mold_inputs computes them (square, pad64 or none resize modes)."""
    mode = config.IMAGE_RESIZE_MODE
    if mode == "crop":
        raise ValueError("crop mode is for training; export with square, pad64 or none")
    shape = tf.shape(images)
    h, w = tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)
    scale = _resize_scale(h, w, config.IMAGE_MIN_DIM, config.IMAGE_MAX_DIM,
                          config.IMAGE_MIN_SCALE, mode)
    nh = tf.cast(tf.round(h * scale), tf.int32)
    nw = tf.cast(tf.round(w * scale), tf.int32)
    x = tf.cast(images, tf.float32)
    x = tf.cond(tf.equal(scale, 1.0), lambda: x,
                lambda: tf.clip_by_value(tf.round(tf.image.resize(x, [nh, nw],
                                                                  antialias=False)), 0, 255))
    if mode == "square":
        out_h = out_w = tf.constant(config.IMAGE_MAX_DIM, tf.int32)
    else:  # pad64 and none: to multiples of 64, as pad_to_multiple
        out_h = (nh + 63) // 64 * 64
        out_w = (nw + 63) // 64 * 64
    if mode == "square":
        top, left = (out_h - nh) // 2, (out_w - nw) // 2
    elif mode == "pad64":
        top, left = ((64 - nh % 64) % 64) // 2, ((64 - nw % 64) % 64) // 2
    else:
        top, left = tf.constant(0), tf.constant(0)
    x = tf.pad(x, [[0, 0], [top, out_h - nh - top], [left, out_w - nw - left], [0, 0]])
    x = x - tf.constant(np.asarray(config.MEAN_PIXEL, np.float32))
    batch = shape[0]
    window = tf.cast(tf.stack([top, left, top + nh, left + nw]), tf.float32)
    meta = tf.concat([
        tf.zeros([1]), tf.cast(tf.stack([shape[1], shape[2], 3]), tf.float32),
        tf.cast(tf.stack([out_h, out_w, 3]), tf.float32), window, tf.reshape(scale, [1]),
        tf.zeros([config.NUM_CLASSES])], axis=0)
    metas = tf.tile(meta[None], [batch, 1])
    return x, metas, tf.tile(window[None], [batch, 1])


def unmold_detections_graph(detections, mrcnn_mask, window, molded_hw, original_hw):
    """Detections [B, N, 6] normalized and masks [B, N, mh, mw, C] -> boxes in original pixels,
    class ids, scores and full-size bool masks [B, N, H, W] (see inference.unmold_detections:
    masks are resized into their box with bilinear sampling and thresholded at 0.5)."""
    class_ids = tf.cast(detections[..., 4], tf.int32)
    scores = detections[..., 5]
    valid = class_ids > 0
    H = tf.cast(original_hw[0], tf.float32)
    W = tf.cast(original_hw[1], tf.float32)
    px = tf.round(unmold_boxes_graph(detections[..., :4], window, molded_hw, original_hw))
    nonempty = (px[..., 2] > px[..., 0]) & (px[..., 3] > px[..., 1])
    valid = valid & nonempty
    px = px * tf.cast(valid, tf.float32)[..., None]
    # Each detection's mask of its class, pasted into the image by sampling the mask at the
    # (half-pixel centred) positions of the image pixels inside the box.
    masks = tf.gather(tf.transpose(mrcnn_mask, [0, 1, 4, 2, 3]), tf.maximum(class_ids, 0),
                      batch_dims=2)  # [B, N, mh, mw]
    b, n = tf.shape(masks)[0], tf.shape(masks)[1]
    mh, mw = mrcnn_mask.shape[2], mrcnn_mask.shape[3]
    flat = tf.reshape(masks, [-1, mh, mw, 1])
    flat_px = tf.reshape(px, [-1, 4])
    y1, x1, y2, x2 = flat_px[:, 0], flat_px[:, 1], flat_px[:, 2], flat_px[:, 3]
    bh = tf.maximum(y2 - y1, 1.0)
    bw = tf.maximum(x2 - x1, 1.0)
    # Image row y samples mask row (y - y1 + 0.5) * mh / bh - 0.5; crop_and_resize samples
    # row c1 * (mh - 1) + y * (c2 - c1) * (mh - 1) / (H - 1).
    c_y1 = ((-y1 + 0.5) * mh / bh - 0.5) / (mh - 1)
    c_x1 = ((-x1 + 0.5) * mw / bw - 0.5) / (mw - 1)
    c_y2 = c_y1 + (H - 1) * mh / bh / (mh - 1)
    c_x2 = c_x1 + (W - 1) * mw / bw / (mw - 1)
    crops = tf.image.crop_and_resize(
        flat, tf.stack([c_y1, c_x1, c_y2, c_x2], -1), tf.range(b * n),
        tf.stack([tf.cast(H, tf.int32), tf.cast(W, tf.int32)]), extrapolation_value=0.0)
    crops = tf.reshape(crops[..., 0], tf.stack([b, n, tf.cast(H, tf.int32),
                                                tf.cast(W, tf.int32)]))
    rows = tf.range(H)[None, None, :]
    cols = tf.range(W)[None, None, :]
    inside_y = (rows >= px[..., 0:1]) & (rows < px[..., 2:3])  # [B, N, H]
    inside_x = (cols >= px[..., 1:2]) & (cols < px[..., 3:4])  # [B, N, W]
    inside = inside_y[..., :, None] & inside_x[..., None, :]
    full = (crops >= 0.5) & inside & valid[..., None, None]
    return (tf.cast(px, tf.int32), tf.where(valid, class_ids, 0),
            tf.where(valid, scores, 0.0), full, tf.reduce_sum(tf.cast(valid, tf.int32), -1))


def keypoints_from_heatmaps_graph(heatmaps, boxes, upsample=4):
    """Keypoints from heatmap logits, vectorized for the graph.

    heatmaps: [B, N, S, S, K] logits; boxes: [B, N, (y1, x1, y2, x2)] float pixels.
    ops.keypoints.heatmaps_to_keypoints resizes each map to its box's own size, which cannot
    be batched; here every map is upsampled `upsample` times (bicubic), the arg-max cell found
    and its centre placed in the box. The two agree within about S * upsample-th of the box.
    Returns [B, N, K, (x, y, score)] float32.
    """
    shape = tf.shape(heatmaps)
    b, n, s, k = shape[0], shape[1], heatmaps.shape[2], shape[4]
    size = s * upsample
    maps = tf.reshape(heatmaps, [-1, s, s, k])
    maps = tf.image.resize(maps, [size, size], method="bicubic")
    flat = tf.reshape(tf.transpose(maps, [0, 3, 1, 2]), [b, n, k, size * size])
    pos = tf.argmax(flat, axis=-1, output_type=tf.int32)
    score = tf.reduce_max(flat, axis=-1)
    row = tf.cast(pos // size, tf.float32)
    col = tf.cast(pos % size, tf.float32)
    y1, x1, y2, x2 = (boxes[..., i:i + 1] for i in range(4))
    x = x1 + (col + 0.5) * tf.maximum(x2 - x1, 1.0) / size
    y = y1 + (row + 0.5) * tf.maximum(y2 - y1, 1.0) / size
    return tf.stack([x, y, score], axis=-1)


def export_saved_model(model, export_dir, verbose=False):
    """Writes model (an inference-mode MaskRCNN) as a SavedModel with a `serve` endpoint
    (also the serving_default signature). Returns export_dir."""
    import keras

    if model.mode != "inference":
        raise ValueError("export an inference-mode MaskRCNN")
    config = model.config
    km = model.keras_model

    def serve(images):
        molded, metas, windows = mold_images_graph(images, config)
        hw = tf.shape(molded)[1:3]
        anchors = pyramid_anchors_graph(molded, config.RPN_ANCHOR_SCALES,
                                        config.RPN_ANCHOR_RATIOS, config.BACKBONE_STRIDES,
                                        config.RPN_ANCHOR_STRIDE)
        outputs = dict(zip(inference_output_names(config),
                           km([molded, metas, anchors], training=False)))
        detections, mrcnn_mask = outputs["mrcnn_detection"], outputs["mrcnn_mask"]
        boxes, class_ids, scores, masks, count = unmold_detections_graph(
            detections, mrcnn_mask, windows, hw, tf.shape(images)[1:3])
        out = {"boxes": boxes, "class_ids": class_ids, "scores": scores, "masks": masks,
               "num_detections": count}
        if config.NUM_KEYPOINTS:
            # Unrounded boxes in input pixels, as detect() decodes keypoints with.
            float_boxes = unmold_boxes_graph(detections[..., :4], windows, hw,
                                             tf.shape(images)[1:3])
            kps = keypoints_from_heatmaps_graph(outputs["mrcnn_keypoint"], float_boxes)
            out["keypoints"] = kps * tf.cast(class_ids > 0, tf.float32)[..., None, None]
        if config.MASK_SCORING:
            out["mask_scores"] = tf.where(class_ids > 0, outputs["mrcnn_mask_scores"], 0.0)
        return out

    archive = keras.export.ExportArchive()
    archive.track(km)
    archive.add_endpoint("serve", serve, input_signature=[
        tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
    archive.write_out(export_dir, verbose=verbose)
    return export_dir


def convert_to_tflite(saved_model_dir, tflite_path, select_tf_ops=True):
    """Converts an exported SavedModel's `serve` endpoint to TensorFlow Lite.

    TFLite's builtin ops do not cover this graph (CropAndResize, the padded NMS, dynamic image
    sizes), so select_tf_ops=True (the default) adds TensorFlow ops (the Flex delegate): the
    .tflite file then needs the select-TF-ops runtime. Returns the path written.
    """
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir,
                                                         signature_keys=["serve"])
    ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if select_tf_ops:
        ops.append(tf.lite.OpsSet.SELECT_TF_OPS)
    converter.target_spec.supported_ops = ops
    model = converter.convert()
    with open(tflite_path, "wb") as f:
        f.write(model)
    return tflite_path
