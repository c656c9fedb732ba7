"""Anchor generation, NumPy and TensorFlow twins.

Anchors are pixel boxes (y1, x1, y2, x2) centred at i * feature_stride (no half-stride offset:
matterport's layout, which its released weights were trained with, and torchvision's too).
Ratios are width / height.

layout "torchvision" (Config.RPN_ANCHOR_LAYOUT) reproduces torchvision's AnchorGenerator: the
half sides are rounded to integers, and the centre spacing of a level is image_size // grid_size
per axis (equal to the nominal stride except where the grid was rounded up, e.g. P6 of an image
whose side is an odd multiple of 32).
"""

import math

import numpy as np
import tensorflow as tf

from mrcnn.config import BACKBONE_NAMES

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
    if config.BACKBONE not in BACKBONE_NAMES:
        raise ValueError(f"unknown BACKBONE {config.BACKBONE!r} (known: "
                         f"{', '.join(BACKBONE_NAMES)})")
    return backbone_shapes_from_strides(image_shape, config.BACKBONE_STRIDES)


LAYOUTS = ("matterport", "torchvision")


def _check_layout(layout):
    if layout not in LAYOUTS:
        raise ValueError(f"anchor layout must be one of {LAYOUTS}, got {layout!r}")


def generate_anchors(scales, ratios, shape, feature_stride, anchor_stride, layout="matterport"):
    """Anchors of one pyramid level.

    scales: anchor side lengths in pixels; ratios: width/height ratios; shape: (height, width) of
    the feature map; feature_stride: its stride in pixels; anchor_stride: anchors every
    anchor_stride cells; feature_stride may be (stride_y, stride_x). layout: see the module
    docstring ("torchvision" rounds the half sides).
    Returns [cells * len(scales) * len(ratios), (y1, x1, y2, x2)] pixels, ordered by cell
    (row-major), then scale, then ratio.
    """
    _check_layout(layout)
    stride_y, stride_x = np.broadcast_to(np.asarray(feature_stride), (2,))
    scales, ratios = np.meshgrid(np.array(scales, dtype=np.float64),
                                 np.array(ratios, dtype=np.float64))
    scales = scales.flatten()
    ratios = ratios.flatten()
    heights = scales / np.sqrt(ratios)
    widths = scales * np.sqrt(ratios)
    if layout == "torchvision":
        heights = 2 * np.round(heights.astype(np.float32) / 2)
        widths = 2 * np.round(widths.astype(np.float32) / 2)
    shifts_y = np.arange(0, shape[0], anchor_stride) * stride_y
    shifts_x = np.arange(0, shape[1], anchor_stride) * stride_x
    shifts_x, shifts_y = np.meshgrid(shifts_x, shifts_y)
    box_widths, box_centers_x = np.meshgrid(widths, shifts_x)
    box_heights, box_centers_y = np.meshgrid(heights, shifts_y)
    box_centers = np.stack([box_centers_y, box_centers_x], axis=2).reshape([-1, 2])
    box_sizes = np.stack([box_heights, box_widths], axis=2).reshape([-1, 2])
    return np.concatenate([box_centers - 0.5 * box_sizes, box_centers + 0.5 * box_sizes], axis=1)


def generate_pyramid_anchors(scales, ratios, feature_shapes, feature_strides, anchor_stride,
                             layout="matterport", image_shape=None):
    """Anchors of every pyramid level, concatenated level by level (one scale per level).

    layout "torchvision" needs image_shape (height, width) of the molded image: the centre
    spacing is image_shape // feature_shape.
    Returns [anchor_count, (y1, x1, y2, x2)] pixels. At 1024x1024 with the default config there
    are 3 * (256^2 + 128^2 + 64^2 + 32^2 + 16^2) = 261,888 anchors.
    """
    _check_layout(layout)
    if layout == "torchvision":
        if image_shape is None:
            raise ValueError("layout 'torchvision' needs image_shape")
        feature_strides = [(int(image_shape[0]) // int(fs[0]), int(image_shape[1]) // int(fs[1]))
                           for fs in feature_shapes]
    anchors = [generate_anchors(scales[i], ratios, feature_shapes[i], feature_strides[i],
                                anchor_stride, layout) for i in range(len(scales))]
    return np.concatenate(anchors, axis=0)


def generate_pyramid_anchors_graph(image_shape, scales, ratios, feature_strides, anchor_stride,
                                   layout="matterport", return_levels=False):
    """TensorFlow twin of generate_pyramid_anchors for a dynamic image shape.

    image_shape: int tensor (height, width). Feature shapes are ceil(image / stride), as in
    compute_backbone_shapes for the ResNet backbones. Returns [anchor_count, 4] float32 pixels,
    in the same order as the NumPy version, and with return_levels also [anchor_count] int32,
    the pyramid level index (0 for the first level) of each anchor.
    """
    _check_layout(layout)
    image_shape = tf.cast(image_shape, tf.int32)
    ratios = tf.constant(np.asarray(ratios, dtype=np.float32))
    levels, level_ids = [], []
    for i, (scale, stride) in enumerate(zip(scales, feature_strides)):
        fh = (image_shape[0] + stride - 1) // stride
        fw = (image_shape[1] + stride - 1) // stride
        heights = float(scale) / tf.sqrt(ratios)  # [R]
        widths = float(scale) * tf.sqrt(ratios)
        stride_y = stride_x = stride
        if layout == "torchvision":
            heights = 2.0 * tf.round(heights / 2.0)
            widths = 2.0 * tf.round(widths / 2.0)
            stride_y, stride_x = image_shape[0] // fh, image_shape[1] // fw
        ys = tf.cast(tf.range(0, fh, anchor_stride) * stride_y, tf.float32)
        xs = tf.cast(tf.range(0, fw, anchor_stride) * stride_x, tf.float32)
        cy, cx = tf.meshgrid(ys, xs, indexing="ij")  # [H, W]
        cy = tf.reshape(cy, [-1, 1])
        cx = tf.reshape(cx, [-1, 1])
        boxes = tf.stack([cy - 0.5 * heights, cx - 0.5 * widths,
                          cy + 0.5 * heights, cx + 0.5 * widths], axis=-1)  # [cells, R, 4]
        levels.append(tf.reshape(boxes, [-1, 4]))
        level_ids.append(tf.fill([tf.shape(levels[-1])[0]], i))
    if return_levels:
        return tf.concat(levels, axis=0), tf.concat(level_ids, axis=0)
    return tf.concat(levels, axis=0)
