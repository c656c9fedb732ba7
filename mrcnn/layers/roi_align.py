"""PyramidROIAlign: RoIAlign over the feature pyramid, level chosen per ROI by its size."""

import keras
import tensorflow as tf

from mrcnn.layers.graph_utils import Float32Layer
from mrcnn.ops.boxes import normalized_to_pixels_graph
from mrcnn.ops.crop import SAMPLERS, multilevel_crop_and_resize
from mrcnn.ops.image_meta import parse_image_meta_graph

__all__ = ["PyramidROIAlign", "roi_levels_graph", "roi_levels_torchvision_graph",
           "roi_align_level_graph", "roi_align_torchvision_graph"]

MODES = ("paper", "matterport", "torchvision")
LEVEL_MAPPERS = ("matterport", "torchvision")


def _clamp_levels(level):
    """Float levels -> int32 in 2..5. An empty box's -inf goes to 2; so does NaN (an inverted
    box's negative area): cast to int32 it would be no level at all, and its ROI would drop
    out of the pooled output (a shape error)."""
    level = tf.where(tf.math.is_nan(level), 2.0, level)
    return tf.cast(tf.clip_by_value(level, 2.0, 5.0), tf.int32)


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
    return _clamp_levels(4.0 + tf.round(level))


def roi_levels_torchvision_graph(pixel_boxes):
    """FPN level (2..5) of each ROI as torchvision's LevelMapper: floor(4 + log2(sqrt(area) /
    224) + 1e-6), clamped to [2, 5], with the area in pixels (not relative to the image size).

    pixel_boxes: [batch, N, (y1, x1, y2, x2)] pixels. Returns int32 [batch, N].
    """
    area = (pixel_boxes[..., 2] - pixel_boxes[..., 0]) * (pixel_boxes[..., 3] - pixel_boxes[..., 1])
    level = tf.floor(4.0 + tf.math.log(tf.sqrt(area) / 224.0) / tf.math.log(2.0) + 1e-6)
    return _clamp_levels(level)


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
    fh = tf.cast(tf.shape(feature_map)[1], tf.float32)
    fw = tf.cast(tf.shape(feature_map)[2], tf.float32)
    inner = _torchvision_sample_boxes(pixel_boxes, float(stride), fh, fw, ch, cw)
    samples = tf.image.crop_and_resize(_pad_edge(feature_map), inner, box_indices, (ch, cw),
                                       method="bilinear")
    return _average_bins(samples, r)


def _pad_edge(feature_map):
    """The map with its last row and column repeated once (torchvision's edge samples)."""
    padded = tf.concat([feature_map, feature_map[:, -1:]], axis=1)
    return tf.concat([padded, padded[:, :, -1:]], axis=2)


def _torchvision_sample_boxes(pixel_boxes, stride, fh, fw, ch, cw):
    """The crop_and_resize boxes (on the edge-padded map) whose ch x cw samples are
    torchvision's sub-bin centres. stride, fh, fw (the unpadded map's size): scalars or [K]."""
    boxes = pixel_boxes / tf.reshape(tf.cast(stride, tf.float32), [-1, 1])
    y1, x1 = boxes[:, 0], boxes[:, 1]
    roi_h = tf.maximum(boxes[:, 2] - y1, 1.0)
    roi_w = tf.maximum(boxes[:, 3] - x1, 1.0)
    dy = roi_h / (2.0 * ch)
    dx = roi_w / (2.0 * cw)
    # crop_and_resize on the padded map ((fh + 1) rows) puts normalized y at y * fh cells.
    return tf.stack([(y1 + dy) / fh, (x1 + dx) / fw, (y1 + roi_h - dy) / fh,
                     (x1 + roi_w - dx) / fw], axis=-1)


def _paper_sample_boxes(boxes, ch, cw):
    """The crop_and_resize boxes whose ch x cw samples are the centres of a regular grid of
    sub-bins of each box (crop_and_resize samples from edge to edge; moving each edge in by
    half a sub-bin puts the samples at y1 + (k + 0.5) * (y2 - y1) / c)."""
    # Slices, not tf.unstack: a level may get no boxes, and TFLite cannot unpack empty tensors.
    y1, x1, y2, x2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    dy = (y2 - y1) / (2.0 * ch)
    dx = (x2 - x1) / (2.0 * cw)
    return tf.stack([y1 + dy, x1 + dx, y2 - dy, x2 - dx], axis=-1)


def _average_bins(samples, r):
    """Mean of each r x r block of samples: one value per bin."""
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
    samples = tf.image.crop_and_resize(feature_map, _paper_sample_boxes(boxes, ch, cw),
                                       box_indices, (ch, cw), method="bilinear")
    return _average_bins(samples, r)


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
        sampler: "crop_and_resize" (default: tf.image.crop_and_resize, per level) or "gather"
            (ops.crop.multilevel_crop_and_resize: the same samples from one gather over all
            levels, with static shapes; XLA compiles it, Config.XLA).

    Call arguments:
        boxes: [batch, num_boxes, (y1, x1, y2, x2)] normalized; zero rows are padding.
        image_meta: [batch, meta_size] (ops.image_meta layout).
        feature_maps: list of 4 maps P2..P5, each [batch, height, width, channels].

    Returns:
        [batch, num_boxes, pool_height, pool_width, channels].
    """

    def __init__(self, pool_shape, mode="paper", sampling_ratio=2, level_mapper="matterport",
                 sampler="crop_and_resize", **kwargs):
        super().__init__(**kwargs)
        self.pool_shape = tuple(int(v) for v in pool_shape)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if level_mapper not in LEVEL_MAPPERS:
            raise ValueError(f"level_mapper must be one of {LEVEL_MAPPERS}, got "
                             f"{level_mapper!r}")
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        self.mode = mode
        self.sampling_ratio = int(sampling_ratio)
        self.level_mapper = level_mapper
        self.sampler = sampler

    def call(self, boxes, image_meta, feature_maps):
        boxes = tf.stop_gradient(tf.cast(boxes, tf.float32))
        # A box with a non-finite coordinate (a step on a non-finite batch, which the training
        # guard skips) pools as a zero box: CropAndResize rejects it on CPUs.
        finite = tf.reduce_all(tf.math.is_finite(boxes), axis=-1, keepdims=True)
        boxes = tf.where(finite, boxes, 0.0)
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
        channels = feature_maps[0].shape[-1]
        if self.sampler == "gather":
            pooled = self._gather_pool(feature_maps, flat_boxes, flat_batch, flat_levels - 2)
            return tf.reshape(pooled, [batch, n, self.pool_shape[0], self.pool_shape[1],
                                       channels])
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
        return tf.reshape(pooled, [batch, n, self.pool_shape[0], self.pool_shape[1], channels])

    def _gather_pool(self, feature_maps, boxes, box_indices, levels):
        """All boxes at once, each on its own level ([K] int32, 0 = P2); boxes [K, 4] as in
        call (pixels in torchvision mode). Same samples as the per-level path."""
        ph, pw = self.pool_shape
        if self.mode == "matterport":
            return multilevel_crop_and_resize(feature_maps, boxes, box_indices, levels, (ph, pw))
        r = self.sampling_ratio
        ch, cw = ph * r, pw * r
        if self.mode == "torchvision":
            sizes = tf.cast(tf.stack([tf.shape(m)[1:3] for m in feature_maps]), tf.float32)
            size = tf.gather(sizes, levels)
            stride = tf.gather(tf.constant([2.0 ** (i + 2) for i in range(len(feature_maps))]),
                               levels)
            crop = _torchvision_sample_boxes(boxes, stride, size[:, 0], size[:, 1], ch, cw)
            feature_maps = [_pad_edge(m) for m in feature_maps]
        else:
            crop = _paper_sample_boxes(boxes, ch, cw)
        samples = multilevel_crop_and_resize(feature_maps, crop, box_indices, levels, (ch, cw))
        return _average_bins(samples, r)

    def compute_output_shape(self, boxes_shape, image_meta_shape, feature_maps_shape):
        return (boxes_shape[0], boxes_shape[1]) + self.pool_shape + (feature_maps_shape[0][-1],)

    def get_config(self):
        config = super().get_config()
        config.update({"pool_shape": list(self.pool_shape), "mode": self.mode,
                       "sampling_ratio": self.sampling_ratio,
                       "level_mapper": self.level_mapper, "sampler": self.sampler})
        return config
