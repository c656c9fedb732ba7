"""Image resizing and molding (NumPy): what turns a user's image into the network's input.

Windows and crops are pixel boxes (y1, x1, y2, x2), y2/x2 exclusive.
"""

import numpy as np

__all__ = ["resize", "resize_image", "mold_image", "unmold_image", "pad_to_multiple"]

RESIZE_MODES = ("none", "square", "pad64", "crop")


def resize(image, output_shape, order=1, mode="constant", cval=0, clip=True,
           preserve_range=False, anti_aliasing=False, anti_aliasing_sigma=None):
    """skimage.transform.resize with matterport's defaults (no anti-aliasing)."""
    import skimage.transform

    return skimage.transform.resize(
        image, output_shape, order=order, mode=mode, cval=cval, clip=clip,
        preserve_range=preserve_range, anti_aliasing=anti_aliasing,
        anti_aliasing_sigma=anti_aliasing_sigma)


def resize_image(image, min_dim=None, max_dim=None, min_scale=None, mode="square", rng=None):
    """Resizes an image keeping its aspect ratio.

    image: [height, width, channels].
    mode:
        none: returned unchanged.
        square: scaled so the short side is at least min_dim (upscaling only) and the long side
            at most max_dim, then zero-padded to [max_dim, max_dim].
        pad64: scaled as square (also capped by max_dim when given), then each side zero-padded
            to a multiple of 64.
        crop: scaled as square, then a random [min_dim, min_dim] crop (training only).
    min_scale: the image is scaled up at least this much.
    rng: np.random.Generator for the crop position (default: numpy's global state).

    Returns image (same dtype), window (y1, x1, y2, x2) of the image inside the output, scale,
    padding [(top, bottom), (left, right), (0, 0)], and crop (y, x, h, w) or None.
    """
    if mode not in RESIZE_MODES:
        raise ValueError(f"Mode {mode} not supported; use one of {RESIZE_MODES}")
    image_dtype = image.dtype
    h, w = image.shape[:2]
    window = (0, 0, h, w)
    scale = 1
    padding = [(0, 0), (0, 0), (0, 0)]
    crop = None
    if mode == "none":
        return image, window, scale, padding, crop

    if min_dim:
        scale = max(1, min_dim / min(h, w))
    if min_scale and scale < min_scale:
        scale = min_scale
    if max_dim and mode in ("square", "pad64"):
        image_max = max(h, w)
        if round(image_max * scale) > max_dim:
            scale = max_dim / image_max

    if scale != 1:
        out_shape = (int(round(h * scale)), int(round(w * scale)))
        image = resize(image, out_shape, preserve_range=True)
    h, w = image.shape[:2]

    if mode == "square":
        top = (max_dim - h) // 2
        left = (max_dim - w) // 2
        padding = [(top, max_dim - h - top), (left, max_dim - w - left), (0, 0)]
        image = np.pad(image, padding, mode="constant", constant_values=0)
        window = (top, left, h + top, w + left)
    elif mode == "pad64":
        pad_h = (64 - h % 64) % 64
        pad_w = (64 - w % 64) % 64
        top, left = pad_h // 2, pad_w // 2
        padding = [(top, pad_h - top), (left, pad_w - left), (0, 0)]
        image = np.pad(image, padding, mode="constant", constant_values=0)
        window = (top, left, h + top, w + left)
    elif mode == "crop":
        rng = rng if rng is not None else np.random
        if h < min_dim or w < min_dim:
            raise ValueError(f"crop mode needs an image of at least {min_dim}x{min_dim} after "
                             f"scaling, got {h}x{w}; set IMAGE_MIN_DIM or IMAGE_MIN_SCALE")
        y = int(rng.integers(0, h - min_dim + 1)) if hasattr(rng, "integers") \
            else int(rng.randint(0, h - min_dim + 1))
        x = int(rng.integers(0, w - min_dim + 1)) if hasattr(rng, "integers") \
            else int(rng.randint(0, w - min_dim + 1))
        crop = (y, x, min_dim, min_dim)
        image = image[y:y + min_dim, x:x + min_dim]
        window = (0, 0, min_dim, min_dim)
    if image_dtype.kind in "ui":
        image = np.clip(np.round(image), np.iinfo(image_dtype).min, np.iinfo(image_dtype).max)
    return image.astype(image_dtype), window, scale, padding, crop


def _std_pixel(config):
    std = getattr(config, "STD_PIXEL", None)
    return None if std is None else np.asarray(std, dtype=np.float32)


def mold_image(images, config):
    """RGB images [..., H, W, C] (uint8 or float) -> float32 network input: subtracts
    config.MEAN_PIXEL and, when config.STD_PIXEL is set, divides by it (a float64 MEAN_PIXEL
    no longer promotes the result to float64)."""
    out = np.asarray(images).astype(np.float32) - np.asarray(config.MEAN_PIXEL)
    std = _std_pixel(config)
    return (out / std if std is not None else out).astype(np.float32)


def unmold_image(normalized_images, config):
    """Inverse of mold_image: multiplies by STD_PIXEL (when set), adds config.MEAN_PIXEL back
    and returns uint8, rounded (a plain cast truncated float noise, turning 200 into 199)."""
    image = np.asarray(normalized_images, dtype=np.float64)
    std = _std_pixel(config)
    if std is not None:
        image = image * std
    image = image + np.asarray(config.MEAN_PIXEL)
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def pad_to_multiple(images, multiple=64):
    """Zero-pads a list of [h, w, C] images (bottom/right) to one size, a multiple of `multiple`
    (the backbone halves the image 6 times). Returns [N, H, W, C] of the input dtype."""
    h = max(im.shape[0] for im in images)
    w = max(im.shape[1] for im in images)
    h, w = -(-h // multiple) * multiple, -(-w // multiple) * multiple
    out = np.zeros((len(images), h, w, images[0].shape[2]), dtype=images[0].dtype)
    for i, im in enumerate(images):
        out[i, :im.shape[0], :im.shape[1]] = im
    return out
