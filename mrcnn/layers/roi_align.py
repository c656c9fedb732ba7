"""PyramidROIAlign: RoIAlign over the feature pyramid, level chosen per ROI by its size."""

import keras
import tensorflow as tf

from mrcnn.layers.graph_utils import Float32Layer
from mrcnn.ops.image_meta import parse_image_meta_graph

__all__ = ["PyramidROIAlign", "roi_levels_graph", "roi_align_level_graph"]


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
        mode: "paper" (default; see roi_align_level_graph) or "matterport".
        sampling_ratio: bilinear samples per bin side in "paper" mode (2 -> 4 samples per bin).

    Call arguments:
        boxes: [batch, num_boxes, (y1, x1, y2, x2)] normalized; zero rows are padding.
        image_meta: [batch, meta_size] (ops.image_meta layout).
        feature_maps: list of 4 maps P2..P5, each [batch, height, width, channels].

    Returns:
        [batch, num_boxes, pool_height, pool_width, channels].
    """

    def __init__(self, pool_shape, mode="paper", sampling_ratio=2, **kwargs):
        super().__init__(**kwargs)
        self.pool_shape = tuple(int(v) for v in pool_shape)
        if mode not in ("paper", "matterport"):
            raise ValueError(f"mode must be 'paper' or 'matterport', got {mode!r}")
        self.mode = mode
        self.sampling_ratio = int(sampling_ratio)

    def call(self, boxes, image_meta, feature_maps):
        boxes = tf.stop_gradient(tf.cast(boxes, tf.float32))
        image_shape = parse_image_meta_graph(image_meta)["image_shape"][:, :2]
        levels = roi_levels_graph(boxes, image_shape)
        batch = tf.shape(boxes)[0]
        n = tf.shape(boxes)[1]
        flat_boxes = tf.reshape(boxes, [-1, 4])
        flat_levels = tf.reshape(levels, [-1])
        flat_batch = tf.reshape(tf.tile(tf.range(batch)[:, None], [1, n]), [-1])
        pooled, order = [], []
        for i, feature_map in enumerate(feature_maps):
            ix = tf.cast(tf.where(tf.equal(flat_levels, i + 2))[:, 0], tf.int32)
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
                       "sampling_ratio": self.sampling_ratio})
        return config
