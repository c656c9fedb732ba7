"""PyramidROIAlign: RoIAlign over the feature pyramid, level chosen per ROI by its size."""

import keras
import tensorflow as tf

from mrcnn.layers.graph_utils import Float32Layer, normalized_to_pixels_graph
from mrcnn.ops.image_meta import parse_image_meta_graph

__all__ = ["PyramidROIAlign", "roi_levels_graph", "roi_levels_torchvision_graph",
           "roi_align_level_graph", "roi_align_torchvision_graph"]

MODES = ("paper", "matterport", "torchvision")
LEVEL_MAPPERS = ("matterport", "torchvision")


def roi_levels_graph(boxes, image_shape):
    """FPN level (2..5) of each ROI, equation 1 of the FPN paper with k0 = 4 and 224 px canonical.

    boxes: [batch, N, (y1, x1, y2, x2)] normalized; image_shape: [batch, (height, width)] pixels
    of each molded image (each image uses its own area). Returns int32 [batch, N].
    """
    y1, x1, y2, x2 = tf.split(boxes, 4, axis=-1)
    h = (y2 - y1)[..., 0]
    w = (x2 - x1)[..., 0]
    image_shape = tf.cast(image_shape, tf.float32)
    image_area = (image_shape[:, 0] * image_shape[:, 1])[:, None]
    level = tf.math.log(tf.sqrt(h * w) / (224.0 / tf.sqrt(image_area))) / tf.math.log(2.0)
    level = tf.clip_by_value(4.0 + tf.round(level), 2.0, 5.0)  # -inf (empty box) -> 2
    return tf.cast(level, tf.int32)


def roi_levels_torchvision_graph(pixel_boxes):
    """FPN level (2..5) of each ROI as torchvision's LevelMapper: floor(4 + log2(sqrt(area) /
    224) + 1e-6), clamped to [2, 5], with the area in pixels (not relative to the image size).

    pixel_boxes: [batch, N, (y1, x1, y2, x2)] pixels. Returns int32 [batch, N].
    """
    area = (pixel_boxes[..., 2] - pixel_boxes[..., 0]) * (pixel_boxes[..., 3] - pixel_boxes[..., 1])
    level = tf.floor(4.0 + tf.math.log(tf.sqrt(area) / 224.0) / tf.math.log(2.0) + 1e-6)
    level = tf.clip_by_value(level, 2.0, 5.0)  # -inf (empty box) -> 2, NaN never (area >= 0)
    return tf.cast(level, tf.int32)


def roi_align_torchvision_graph(feature_map, pixel_boxes, box_indices, pool_shape, stride,
                                sampling_ratio=2):
    """torchvision's roi_align with aligned=False on one feature map.

    feature_map: [batch, height, width, channels]; pixel_boxes: [K, (y1, x1, y2, x2)] image
    pixels; box_indices: [K] int32; stride: the map's stride in pixels (spatial scale 1/stride).
    A box maps to feature coordinates box / stride (feature cell i centred at i), is at least
    1 cell high and wide, and is split into pool_h x pool_w bins, each the mean of
    sampling_ratio^2 bilinear samples at the centres of a regular sub-grid. A sample within the
    last cell's span past its centre takes the last cell's value and one further out is 0, as
    in torchvision (the map is edge-padded by one cell at the bottom/right so that
    crop_and_resize does the same). Returns [K, pool_h, pool_w, channels].
    """
    ph, pw = pool_shape
    r = int(sampling_ratio)
    ch, cw = ph * r, pw * r
    padded = tf.concat([feature_map, feature_map[:, -1:]], axis=1)
    padded = tf.concat([padded, padded[:, :, -1:]], axis=2)
    fh = tf.cast(tf.shape(feature_map)[1], tf.float32)
    fw = tf.cast(tf.shape(feature_map)[2], tf.float32)
    boxes = pixel_boxes / float(stride)
    y1, x1 = boxes[:, 0], boxes[:, 1]
    roi_h = tf.maximum(boxes[:, 2] - y1, 1.0)
    roi_w = tf.maximum(boxes[:, 3] - x1, 1.0)
    dy = roi_h / (2.0 * ch)
    dx = roi_w / (2.0 * cw)
    # crop_and_resize on the padded map ((fh + 1) rows) puts normalized y at y * fh cells.
    inner = tf.stack([(y1 + dy) / fh, (x1 + dx) / fw, (y1 + roi_h - dy) / fh,
                      (x1 + roi_w - dx) / fw], axis=-1)
    samples = tf.image.crop_and_resize(padded, inner, box_indices, (ch, cw), method="bilinear")
    if r == 1:
        return samples
    return tf.nn.avg_pool2d(samples, ksize=r, strides=r, padding="VALID")


def roi_align_level_graph(feature_map, boxes, box_indices, pool_shape, mode="paper",
                          sampling_ratio=2):
    """RoIAlign of boxes on one feature map.

    feature_map: [batch, height, width, channels]; boxes: [K, (y1, x1, y2, x2)] normalized, in
    crop_and_resize's frame (0 and 1 are the centres of the first and last feature cells);
    box_indices: [K] int32 batch index of each box. Returns [K, pool_h, pool_w, channels].

    mode "paper": the box is divided into pool_h x pool_w bins with no quantization; each output
    is the mean of sampling_ratio^2 bilinear samples at the centres of a regular sub-grid of its
    bin (He et al. 2017, section 3). mode "matterport": one bilinear sample per output, on a
    grid that includes the box edges (crop_and_resize with the pool shape), as matterport.
    """
    ph, pw = pool_shape
    if mode == "matterport":
        return tf.image.crop_and_resize(feature_map, boxes, box_indices, (ph, pw),
                                        method="bilinear")
    r = int(sampling_ratio)
    ch, cw = ph * r, pw * r
    # Slices, not tf.unstack: a level may get no boxes, and TFLite cannot unpack empty tensors.
    y1, x1, y2, x2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    dy = (y2 - y1) / (2.0 * ch)
    dx = (x2 - x1) / (2.0 * cw)
    # crop_and_resize samples c points from edge to edge; moving each edge in by half a
    # sub-bin puts the samples at the sub-bin centres: y1 + (k + 0.5) * (y2 - y1) / c.
    inner = tf.stack([y1 + dy, x1 + dx, y2 - dy, x2 - dx], axis=-1)
    samples = tf.image.crop_and_resize(feature_map, inner, box_indices, (ch, cw),
                                       method="bilinear")
    if r == 1:
        return samples
    return tf.nn.avg_pool2d(samples, ksize=r, strides=r, padding="VALID")


@keras.saving.register_keras_serializable(package="mrcnn")
class PyramidROIAlign(Float32Layer):
    """RoIAlign on the pyramid level that fits each ROI (vectorized over the batch).

    Args:
        pool_shape: (pool_height, pool_width), e.g. (7, 7) or (14, 14).
        mode: "paper" (default; see roi_align_level_graph), "matterport" or "torchvision"
            (roi_align_torchvision_graph).
        sampling_ratio: bilinear samples per bin side in "paper" and "torchvision" modes (2 ->
            4 samples per bin).
        level_mapper: "matterport" (roi_levels_graph) or "torchvision"
            (roi_levels_torchvision_graph).

    Call arguments:
        boxes: [batch, num_boxes, (y1, x1, y2, x2)] normalized; zero rows are padding.
        image_meta: [batch, meta_size] (ops.image_meta layout).
        feature_maps: list of 4 maps P2..P5, each [batch, height, width, channels].

    Returns:
        [batch, num_boxes, pool_height, pool_width, channels].
    """

    def __init__(self, pool_shape, mode="paper", sampling_ratio=2, level_mapper="matterport",
                 **kwargs):
        super().__init__(**kwargs)
        self.pool_shape = tuple(int(v) for v in pool_shape)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if level_mapper not in LEVEL_MAPPERS:
            raise ValueError(f"level_mapper must be one of {LEVEL_MAPPERS}, got "
                             f"{level_mapper!r}")
        self.mode = mode
        self.sampling_ratio = int(sampling_ratio)
        self.level_mapper = level_mapper

    def call(self, boxes, image_meta, feature_maps):
        boxes = tf.stop_gradient(tf.cast(boxes, tf.float32))
        image_shape = parse_image_meta_graph(image_meta)["image_shape"][:, :2]
        pixel_boxes = normalized_to_pixels_graph(boxes, image_shape)
        if self.level_mapper == "torchvision":
            levels = roi_levels_torchvision_graph(pixel_boxes)
        else:
            levels = roi_levels_graph(boxes, image_shape)
        if self.mode == "torchvision":
            boxes = pixel_boxes
        batch = tf.shape(boxes)[0]
        n = tf.shape(boxes)[1]
        flat_boxes = tf.reshape(boxes, [-1, 4])
        flat_levels = tf.reshape(levels, [-1])
        flat_batch = tf.reshape(tf.tile(tf.range(batch)[:, None], [1, n]), [-1])
        pooled, order = [], []
        for i, feature_map in enumerate(feature_maps):
            ix = tf.cast(tf.where(tf.equal(flat_levels, i + 2))[:, 0], tf.int32)
            if self.mode == "torchvision":
                pooled.append(roi_align_torchvision_graph(
                    feature_map, tf.gather(flat_boxes, ix), tf.gather(flat_batch, ix),
                    self.pool_shape, 2 ** (i + 2), self.sampling_ratio))
                order.append(ix)
                continue
            pooled.append(roi_align_level_graph(
                feature_map, tf.gather(flat_boxes, ix), tf.gather(flat_batch, ix),
                self.pool_shape, self.mode, self.sampling_ratio))
            order.append(ix)
        pooled = tf.concat(pooled, axis=0)
        order = tf.concat(order, axis=0)
        # Back to the input order of the boxes.
        pooled = tf.gather(pooled, tf.argsort(order))
        channels = feature_maps[0].shape[-1]
        return tf.reshape(pooled, [batch, n, self.pool_shape[0], self.pool_shape[1], channels])

    def compute_output_shape(self, boxes_shape, image_meta_shape, feature_maps_shape):
        return (boxes_shape[0], boxes_shape[1]) + self.pool_shape + (feature_maps_shape[0][-1],)

    def get_config(self):
        config = super().get_config()
        config.update({"pool_shape": list(self.pool_shape), "mode": self.mode,
                       "sampling_ratio": self.sampling_ratio,
                       "level_mapper": self.level_mapper})
        return config
