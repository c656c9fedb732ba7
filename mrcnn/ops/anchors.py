"""Anchor generation, NumPy and TensorFlow twins.

Anchors are pixel boxes (y1, x1, y2, x2) centred at i * feature_stride (no half-stride offset:
matterport's layout, which its released weights were trained with). Ratios are width / height.
"""

import math

import numpy as np
import tensorflow as tf

__all__ = ["generate_anchors", "generate_pyramid_anchors", "compute_backbone_shapes",
           "generate_pyramid_anchors_graph", "backbone_shapes_from_strides"]


def backbone_shapes_from_strides(image_shape, strides):
    """[[ceil(h / s), ceil(w / s)] for s in strides] as an int array [levels, 2]."""
    return np.array([[int(math.ceil(image_shape[0] / s)), int(math.ceil(image_shape[1] / s))]
                     for s in strides])


def compute_backbone_shapes(config, image_shape):
    """Feature-map sizes of the pyramid levels for an image shape, [levels, (height, width)]."""
    if callable(config.BACKBONE):
        return config.COMPUTE_BACKBONE_SHAPE(image_shape)
    if config.BACKBONE not in ("resnet50", "resnet101"):
        raise ValueError(f"unknown BACKBONE {config.BACKBONE!r}")
    return backbone_shapes_from_strides(image_shape, config.BACKBONE_STRIDES)


def generate_anchors(scales, ratios, shape, feature_stride, anchor_stride):
    """Anchors of one pyramid level.

    scales: anchor side lengths in pixels; ratios: width/height ratios; shape: (height, width) of
    the feature map; feature_stride: its stride in pixels; anchor_stride: anchors every
    anchor_stride cells. Returns [cells * len(scales) * len(ratios), (y1, x1, y2, x2)] pixels,
    ordered by cell (row-major), then scale, then ratio.
    """
    scales, ratios = np.meshgrid(np.array(scales, dtype=np.float64),
                                 np.array(ratios, dtype=np.float64))
    scales = scales.flatten()
    ratios = ratios.flatten()
    heights = scales / np.sqrt(ratios)
    widths = scales * np.sqrt(ratios)
    shifts_y = np.arange(0, shape[0], anchor_stride) * feature_stride
    shifts_x = np.arange(0, shape[1], anchor_stride) * feature_stride
    shifts_x, shifts_y = np.meshgrid(shifts_x, shifts_y)
    box_widths, box_centers_x = np.meshgrid(widths, shifts_x)
    box_heights, box_centers_y = np.meshgrid(heights, shifts_y)
    box_centers = np.stack([box_centers_y, box_centers_x], axis=2).reshape([-1, 2])
    box_sizes = np.stack([box_heights, box_widths], axis=2).reshape([-1, 2])
    return np.concatenate([box_centers - 0.5 * box_sizes, box_centers + 0.5 * box_sizes], axis=1)


def generate_pyramid_anchors(scales, ratios, feature_shapes, feature_strides, anchor_stride):
    """Anchors of every pyramid level, concatenated level by level (one scale per level).

    Returns [anchor_count, (y1, x1, y2, x2)] pixels. At 1024x1024 with the default config there
    are 3 * (256^2 + 128^2 + 64^2 + 32^2 + 16^2) = 261,888 anchors.
    """
    anchors = [generate_anchors(scales[i], ratios, feature_shapes[i], feature_strides[i],
                                anchor_stride) for i in range(len(scales))]
    return np.concatenate(anchors, axis=0)


def generate_pyramid_anchors_graph(image_shape, scales, ratios, feature_strides, anchor_stride):
    """TensorFlow twin of generate_pyramid_anchors for a dynamic image shape.

    image_shape: int tensor (height, width). Feature shapes are ceil(image / stride), as in
    compute_backbone_shapes for the ResNet backbones. Returns [anchor_count, 4] float32 pixels,
    in the same order as the NumPy version.
    """
    image_shape = tf.cast(image_shape, tf.int32)
    ratios = tf.constant(np.asarray(ratios, dtype=np.float32))
    levels = []
    for scale, stride in zip(scales, feature_strides):
        fh = (image_shape[0] + stride - 1) // stride
        fw = (image_shape[1] + stride - 1) // stride
        heights = float(scale) / tf.sqrt(ratios)  # [R]
        widths = float(scale) * tf.sqrt(ratios)
        ys = tf.cast(tf.range(0, fh, anchor_stride) * stride, tf.float32)
        xs = tf.cast(tf.range(0, fw, anchor_stride) * stride, tf.float32)
        cy, cx = tf.meshgrid(ys, xs, indexing="ij")  # [H, W]
        cy = tf.reshape(cy, [-1, 1])
        cx = tf.reshape(cx, [-1, 1])
        boxes = tf.stack([cy - 0.5 * heights, cx - 0.5 * widths,
                          cy + 0.5 * heights, cx + 0.5 * widths], axis=-1)  # [cells, R, 4]
        levels.append(tf.reshape(boxes, [-1, 4]))
    return tf.concat(levels, axis=0)
