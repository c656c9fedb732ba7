"""The image meta vector: the single definition of its layout.

[image_id(1), original_image_shape(3), image_shape(3), window(4: y1, x1, y2, x2 in pixels of the
molded image), scale(1), active_class_ids(NUM_CLASSES)] -> length 12 + NUM_CLASSES.
"""

import numpy as np

__all__ = ["compose_image_meta", "parse_image_meta", "parse_image_meta_graph", "META_FIELDS",
           "active_class_ids_graph"]

# name -> (start, stop); active_class_ids runs to the end.
META_FIELDS = {
    "image_id": (0, 1),
    "original_image_shape": (1, 4),
    "image_shape": (4, 7),
    "window": (7, 11),
    "scale": (11, 12),
    "active_class_ids": (12, None),
}


def compose_image_meta(image_id, original_image_shape, image_shape, window, scale,
                       active_class_ids):
    """Packs an image's attributes into a 1-D float array (see module docstring)."""
    return np.array([image_id] + list(original_image_shape) + list(image_shape) + list(window)
                    + [scale] + list(active_class_ids))


def _split(meta):
    out = {}
    for name, (start, stop) in META_FIELDS.items():
        out[name] = meta[:, start:stop]
    out["image_id"] = out["image_id"][:, 0]
    out["scale"] = out["scale"][:, 0]
    return out


def parse_image_meta(meta):
    """NumPy: meta [batch, meta_size] -> dict of arrays (shapes and window int32, rest float32)."""
    parts = _split(np.asarray(meta))
    return {
        "image_id": parts["image_id"].astype(np.int32),
        "original_image_shape": parts["original_image_shape"].astype(np.int32),
        "image_shape": parts["image_shape"].astype(np.int32),
        "window": parts["window"].astype(np.int32),
        "scale": parts["scale"].astype(np.float32),
        "active_class_ids": parts["active_class_ids"].astype(np.int32),
    }


def parse_image_meta_graph(meta):
    """TensorFlow: meta [batch, meta_size] -> dict of float32 tensors with the same keys."""
    return _split(meta)


def active_class_ids_graph(meta):
    """[batch, NUM_CLASSES] active-class flags of metas [batch, meta_size] (a tensor slice)."""
    return meta[:, META_FIELDS["active_class_ids"][0]:]
