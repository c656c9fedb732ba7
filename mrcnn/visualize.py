"""Drawing detections and masks (matplotlib imported lazily; works under the Agg backend).

Functions return the matplotlib Figure (and draw into `ax` when given); pass save_path to also
write a PNG. Unlike matterport's, importing this module changes no sys.path and needs no IPython.
"""

import colorsys
import random

import numpy as np

__all__ = ["random_colors", "apply_mask", "display_instances", "display_images",
           "display_top_masks"]


def random_colors(N, bright=True, seed=None):
    """N distinct RGB colors in [0, 1] (evenly spaced hues, shuffled)."""
    brightness = 1.0 if bright else 0.7
    colors = [colorsys.hsv_to_rgb(i / max(N, 1), 1, brightness) for i in range(N)]
    random.Random(seed).shuffle(colors)
    return colors


def apply_mask(image, mask, color, alpha=0.5):
    """Blends color (RGB in [0, 1]) into image [H, W, 3] where mask is set; returns a copy."""
    image = np.array(image, copy=True)
    mask = np.asarray(mask).astype(bool)
    for c in range(3):
        image[:, :, c] = np.where(mask, image[:, :, c] * (1 - alpha) + alpha * color[c] * 255,
                                  image[:, :, c])
    return image


def _figure(ax, figsize):
    import matplotlib

    if ax is not None:
        return ax.figure, ax
    from matplotlib.figure import Figure

    del matplotlib
    fig = Figure(figsize=figsize)
    return fig, fig.add_subplot(1, 1, 1)


def _finish(fig, save_path):
    if save_path:
        fig.savefig(save_path, bbox_inches="tight")
    return fig


def display_instances(image, boxes, masks, class_ids, class_names, scores=None, title="",
                      figsize=(16, 16), ax=None, show_mask=True, show_bbox=True, colors=None,
                      captions=None, save_path=None):
    """Draws instances over an image.

    boxes: [N, (y1, x1, y2, x2)] pixels; masks: [H, W, N] bool; class_ids: [N] int; class_names:
    list indexed by class id; scores: optional [N] (a score of 0.0 is shown); colors: optional
    list or array of N RGB colors in [0, 1]; captions: optional N strings.
    Returns the Figure; save_path writes it as an image file.
    """
    from matplotlib import patches
    from matplotlib.patches import Polygon
    from skimage.measure import find_contours

    n = 0 if boxes is None else len(boxes)
    if n and masks is not None and np.asarray(masks).shape[-1] != n:
        raise ValueError(f"{n} boxes but {np.asarray(masks).shape[-1]} masks")
    if n and len(class_ids) != n:
        raise ValueError(f"{n} boxes but {len(class_ids)} class ids")
    fig, ax = _figure(ax, figsize)
    colors = random_colors(n) if colors is None or len(colors) == 0 else list(colors)
    height, width = image.shape[:2]
    ax.set_ylim(height + 10, -10)
    ax.set_xlim(-10, width + 10)
    ax.axis("off")
    ax.set_title(title)
    masked_image = np.asarray(image).astype(np.float64).copy()
    for i in range(n):
        color = colors[i]
        if not np.any(boxes[i]):
            continue  # skipped instance (e.g. lost by cropping)
        y1, x1, y2, x2 = boxes[i]
        if show_bbox:
            ax.add_patch(patches.Rectangle((x1, y1), x2 - x1, y2 - y1, linewidth=2, alpha=0.7,
                                           linestyle="dashed", edgecolor=color,
                                           facecolor="none"))
        if captions is None:
            label = class_names[int(class_ids[i])]
            caption = label if scores is None else f"{label} {float(scores[i]):.3f}"
        else:
            caption = captions[i]
        ax.text(x1, y1 + 8, caption, color="w", size=11, backgroundcolor="none")
        if masks is None:
            continue
        mask = np.asarray(masks)[:, :, i]
        if show_mask:
            masked_image = apply_mask(masked_image, mask, color)
        padded = np.zeros((mask.shape[0] + 2, mask.shape[1] + 2), dtype=np.uint8)
        padded[1:-1, 1:-1] = mask
        for verts in find_contours(padded, 0.5):
            verts = np.fliplr(verts) - 1  # (row, col) -> (x, y)
            ax.add_patch(Polygon(verts, facecolor="none", edgecolor=color))
    ax.imshow(masked_image.astype(np.uint8))
    return _finish(fig, save_path)


def display_images(images, titles=None, cols=4, cmap=None, norm=None, interpolation=None,
                   save_path=None):
    """Shows images in a grid, with optional titles. Returns the Figure."""
    from matplotlib.figure import Figure

    titles = titles if titles is not None else [""] * len(images)
    rows = len(images) // cols + 1
    fig = Figure(figsize=(14, 14 * rows // cols))
    for i, (image, title) in enumerate(zip(images, titles)):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
        ax.imshow(np.asarray(image).astype(np.uint8), cmap=cmap, norm=norm,
                  interpolation=interpolation)
    return _finish(fig, save_path)


def display_top_masks(image, mask, class_ids, class_names, limit=4, save_path=None):
    """The image and the union mask of each of its most frequent classes. Returns the Figure."""
    to_display = [image]
    titles = [f"H x W={image.shape[0]}x{image.shape[1]}"]
    class_ids = np.asarray(class_ids)
    unique_class_ids = np.unique(class_ids)
    mask_area = [np.sum(mask[:, :, np.where(class_ids == i)[0]]) for i in unique_class_ids]
    top_ids = [v[0] for v in sorted(zip(unique_class_ids, mask_area), key=lambda r: r[1],
                                    reverse=True) if v[1] > 0]
    for i in range(limit):
        class_id = top_ids[i] if i < len(top_ids) else -1
        m = mask[:, :, np.where(class_ids == class_id)[0]]
        m = np.sum(m * np.arange(1, m.shape[-1] + 1), -1)
        to_display.append(m)
        titles.append(class_names[class_id] if class_id != -1 else "-")
    return display_images(to_display, titles=titles, cols=limit + 1, cmap="Blues_r",
                          save_path=save_path)
