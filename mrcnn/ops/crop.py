"""Bilinear crops of boxes out of feature maps: tf.image.crop_and_resize and its gather twin.

TensorFlow has no XLA kernel for CropAndResize, so a graph that uses it cannot be compiled
with jit_compile=True. `multilevel_crop_and_resize` computes exactly what crop_and_resize
computes (bilinear, extrapolation value 0) from plain gathers, which XLA compiles on CPUs and
GPUs, and it samples every box from its own pyramid level in one gather: no per-level split,
no dynamic shapes. `crop_and_resize` picks one of the two (SAMPLERS).

Boxes are normalized (y1, x1, y2, x2) in crop_and_resize's frame: 0 and 1 are the centres of
the first and last rows/columns of the map the box is cropped from.
"""

import tensorflow as tf

__all__ = ["SAMPLERS", "crop_and_resize", "multilevel_crop_and_resize"]

SAMPLERS = ("crop_and_resize", "gather")


def crop_and_resize(image, boxes, box_indices, crop_size, sampler="crop_and_resize"):
    """tf.image.crop_and_resize(image, boxes, box_indices, crop_size) (bilinear), computed by
    TensorFlow's kernel (sampler "crop_and_resize") or by gathers that XLA compiles ("gather").

    image: [batch, height, width, channels]; boxes: [K, (y1, x1, y2, x2)] normalized;
    box_indices: [K] int32. Returns [K, crop_height, crop_width, channels] float32.
    """
    if sampler == "crop_and_resize":
        return tf.image.crop_and_resize(image, boxes, box_indices, tuple(crop_size),
                                        method="bilinear")
    if sampler != "gather":
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    return multilevel_crop_and_resize([image], boxes, box_indices,
                                      tf.zeros_like(box_indices), crop_size)


def _sample_coords(a1, a2, n, size):
    """crop_and_resize's sample positions along one axis: [K, n] low/high indices (clipped
    into the map), interpolation weights and in-map flags, for boxes [a1, a2] on maps of
    `size` cells ([K] float)."""
    if n > 1:
        scale = (a2 - a1) * (size - 1.0) / float(n - 1)
        pos = (a1 * (size - 1.0))[:, None] + tf.range(n, dtype=tf.float32)[None, :] * scale[:, None]
    else:
        pos = (0.5 * (a1 + a2) * (size - 1.0))[:, None]
    inside = (pos >= 0.0) & (pos <= (size - 1.0)[:, None])
    low = tf.floor(pos)
    lerp = pos - low
    top = tf.cast(size, tf.int32)[:, None] - 1
    low_i = tf.clip_by_value(tf.cast(low, tf.int32), 0, top)
    high_i = tf.clip_by_value(tf.cast(tf.math.ceil(pos), tf.int32), 0, top)
    return low_i, high_i, lerp, inside


def multilevel_crop_and_resize(feature_maps, boxes, box_indices, levels, crop_size):
    """Bilinear crops of each box out of its own map, as tf.image.crop_and_resize would give.

    feature_maps: list of L maps [batch, height_l, width_l, channels] (same batch and channels).
    boxes: [K, (y1, x1, y2, x2)] normalized in the frame of the box's map.
    box_indices: [K] int32 batch index; levels: [K] int32 in [0, L), the map of each box.
    Returns [K, crop_height, crop_width, channels] float32. A sample outside its map is 0
    (crop_and_resize's extrapolation value) and gets no gradient.
    """
    ch, cw = int(crop_size[0]), int(crop_size[1])
    channels = feature_maps[0].shape[-1]
    tables, sizes, offsets = [], [], []
    offset = tf.constant(0, tf.int32)
    for m in feature_maps:
        shape = tf.shape(m)
        tables.append(tf.reshape(tf.cast(m, tf.float32), [-1, channels]))
        sizes.append(shape[1:3])
        offsets.append(offset)
        offset = offset + shape[0] * shape[1] * shape[2]
    table = tf.concat(tables, axis=0) if len(tables) > 1 else tables[0]
    levels = tf.cast(levels, tf.int32)
    size = tf.gather(tf.stack(sizes), levels)  # [K, 2] int32
    base = tf.gather(tf.stack(offsets), levels)  # [K]
    height, width = tf.cast(size[:, 0], tf.float32), tf.cast(size[:, 1], tf.float32)
    boxes = tf.cast(boxes, tf.float32)
    y_lo, y_hi, y_lerp, y_in = _sample_coords(boxes[:, 0], boxes[:, 2], ch, height)
    x_lo, x_hi, x_lerp, x_in = _sample_coords(boxes[:, 1], boxes[:, 3], cw, width)
    # Flat row index of (box image, y) at the box's level, then + x.
    row0 = base + tf.cast(box_indices, tf.int32) * size[:, 0] * size[:, 1]

    def rows(y):  # [K, ch] -> [K, ch, 1]
        return (row0[:, None] + y * size[:, 1:2])[:, :, None]

    def gather(y, x):  # [K, ch, cw, channels]
        return tf.gather(table, rows(y) + x[:, None, :])

    y_lerp = y_lerp[:, :, None, None]
    x_lerp = x_lerp[:, None, :, None]
    top_left, bottom_left = gather(y_lo, x_lo), gather(y_hi, x_lo)
    top = top_left + (gather(y_lo, x_hi) - top_left) * x_lerp
    bottom = bottom_left + (gather(y_hi, x_hi) - bottom_left) * x_lerp
    out = top + (bottom - top) * y_lerp
    inside = (y_in[:, :, None] & x_in[:, None, :])[..., None]
    return tf.where(inside, out, tf.zeros_like(out))
