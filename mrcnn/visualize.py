"""Drawing detections and masks (matplotlib imported lazily; works under the Agg backend).

Functions return the matplotlib Figure (and draw into `ax` when given); pass save_path to also
write a PNG. Inside a Jupyter kernel a figure a function made itself is shown at once and the
function returns None, as matterport's (which called plt.show()) did. Unlike matterport's,
importing this module changes no sys.path and needs no IPython.
"""

import colorsys
import random
import sys

import numpy as np

__all__ = ["random_colors", "apply_mask", "display_instances", "display_images",
           "display_top_masks", "display_differences", "draw_rois", "draw_box",
           "plot_precision_recall", "plot_overlaps", "draw_boxes", "display_table",
           "display_weight_stats", "draw_keypoints", "display_keypoints", "save_detections_grid"]


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


def _new_figure(figsize):
    """A new Figure. When pyplot is loaded (keras loads it), the figure is made through pyplot,
    as matterport's were, so that matterport-style scripts' plt.savefig() / plt.show() right
    after a drawing call see it; otherwise a standalone Figure (no GUI, no global state)."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        return pyplot.figure(figsize=figsize)
    from matplotlib.figure import Figure

    return Figure(figsize=figsize)


def _figure(ax, figsize):
    if ax is not None:
        return ax.figure, ax
    fig = _new_figure(figsize)
    return fig, fig.add_subplot(1, 1, 1)


def _in_notebook():
    """True inside a Jupyter kernel (never imports IPython itself)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and hasattr(shell, "kernel")


def _display(fig):
    from IPython.display import display

    display(fig)


def _release(fig):
    """Drops pyplot's reference to a figure it manages (the Figure object stays usable)."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    manager = getattr(fig.canvas, "manager", None)
    if pyplot is not None and manager is not None and pyplot.fignum_exists(manager.num):
        pyplot.close(fig)


def _finish(fig, save_path, own_figure=False):
    """Saves the figure when asked. A figure the function made itself (no `ax` given) is
    shown at once inside a Jupyter kernel, as matterport's plt.show() did (so calls in a loop
    each show their figure), and None is returned there, so the figure is not shown twice;
    elsewhere the Figure is returned (and stays pyplot's current figure unless it was saved
    to save_path)."""
    if save_path:
        fig.savefig(save_path, bbox_inches="tight")
    if own_figure and _in_notebook():
        _display(fig)
        _release(fig)
        return None
    if own_figure and save_path:
        _release(fig)
    return fig


def display_instances(image, boxes, masks, class_ids, class_names, scores=None, title="",
                      figsize=(16, 16), ax=None, show_mask=True, show_bbox=True, colors=None,
                      captions=None, save_path=None, keypoints=None, skeleton=None):
    """Draws instances over an image.

    boxes: [N, (y1, x1, y2, x2)] pixels; masks: [H, W, N] bool; class_ids: [N] int; class_names:
    list indexed by class id; scores: optional [N] (a score of 0.0 is shown); colors: optional
    list or array of N RGB colors in [0, 1]; captions: optional N strings.
    keypoints: optional [N, K, (x, y, v or score)] pixels (detect()'s r["keypoints"]), drawn
    with draw_keypoints and skeleton (pairs of keypoint indices, Config.KEYPOINT_SKELETON).
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
    own_figure = ax is None
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
    if keypoints is not None:
        draw_keypoints(ax, keypoints, skeleton, colors)
    return _finish(fig, save_path, own_figure)


def draw_keypoints(ax, keypoints, skeleton=None, colors=None, min_score=None):
    """Draws keypoints [N, K, (x, y, v or score)] pixels on a matplotlib Axes: a dot per
    keypoint and a line per skeleton pair. Ground truth (v in 0, 1, 2): v = 0 is not drawn,
    v = 1 (occluded) hollow. Predictions (third value a score): points below min_score are not
    drawn (default: all drawn)."""
    keypoints = np.asarray(keypoints, dtype=np.float64)
    colors = random_colors(len(keypoints)) if colors is None or len(colors) == 0 else colors
    is_gt = np.all(np.isin(keypoints[..., 2], (0, 1, 2)))
    for i, kps in enumerate(keypoints):
        color = colors[i % len(colors)]
        shown = kps[:, 2] > 0 if is_gt else (
            np.ones(len(kps), bool) if min_score is None else kps[:, 2] >= min_score)
        for a, b in skeleton or []:
            if shown[a] and shown[b]:
                ax.plot([kps[a, 0], kps[b, 0]], [kps[a, 1], kps[b, 1]], color=color,
                        linewidth=2, alpha=0.8)
        for x, y, v in kps[shown]:
            hollow = is_gt and v == 1
            ax.scatter([x], [y], s=25, edgecolors=[color], linewidths=1.5,
                       facecolors="none" if hollow else [color], zorder=3)


def display_keypoints(image, boxes, keypoints, class_ids, class_names, skeleton=None,
                      scores=None, title="", figsize=(12, 12), ax=None, min_score=None,
                      save_path=None):
    """The image with each instance's box, keypoints and skeleton (no masks).

    boxes: [N, (y1, x1, y2, x2)] pixels; keypoints: [N, K, (x, y, v or score)] pixels;
    skeleton: pairs of keypoint indices (Config.KEYPOINT_SKELETON). Returns the Figure.
    """
    own_figure = ax is None
    fig, ax = _figure(ax, figsize)
    display_instances(image, boxes, None, class_ids, class_names, scores=scores, title=title,
                      figsize=figsize, ax=ax, show_mask=False)
    draw_keypoints(ax, keypoints, skeleton, min_score=min_score)
    return _finish(fig, save_path, own_figure)


def save_detections_grid(model, dataset, image_ids, path, min_score=0.7, skeleton=None):
    """Runs model.detect on some images of a dataset and saves one row of pictures: the
    detections with score >= min_score, drawn by display_instances (with their keypoints and
    skeleton when the model returns keypoints). Returns path."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4 * len(image_ids), 4.4))
    for k, image_id in enumerate(image_ids):
        image = dataset.load_image(image_id)
        r = model.detect([image])[0]
        keep = r["scores"] >= min_score
        ax = fig.add_subplot(1, len(image_ids), k + 1)
        display_instances(image, r["rois"][keep], r["masks"][:, :, keep], r["class_ids"][keep],
                          dataset.class_names, r["scores"][keep], ax=ax,
                          title=f"val image {image_id}",
                          keypoints=r["keypoints"][keep] if "keypoints" in r else None,
                          skeleton=skeleton)
    fig.savefig(path, bbox_inches="tight")
    return path


def display_images(images, titles=None, cols=4, cmap=None, norm=None, interpolation=None,
                   save_path=None):
    """Shows images in a grid, with optional titles. Returns the Figure.

    images: RGB images [H, W, 3] (shown as uint8) or 2-D maps [H, W] (masks, activations),
    shown through cmap over their own value range. matterport cast everything to uint8, which
    turned float activation maps (inspect_model's res4w_out, ...) into noise.
    """
    titles = titles if titles is not None else [""] * len(images)
    rows = len(images) // cols + 1
    fig = _new_figure((14, 14 * rows // cols))
    for i, (image, title) in enumerate(zip(images, titles)):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
        image = np.asarray(image)
        if image.ndim == 3:
            image = np.clip(image, 0, 255).astype(np.uint8)
        elif image.dtype == bool:
            image = image.astype(np.uint8)
        ax.imshow(image, cmap=cmap, norm=norm, interpolation=interpolation)
    return _finish(fig, save_path, own_figure=True)


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


def display_differences(image, gt_box, gt_class_id, gt_mask, pred_box, pred_class_id,
                        pred_score, pred_mask, class_names, title="", ax=None, show_mask=True,
                        show_box=True, iou_threshold=0.5, score_threshold=0.5, save_path=None):
    """Ground truth (green) and predictions (red) over one image, captioned with each
    prediction's score and IoU with its match. Predictions below score_threshold are left out.
    Returns the Figure."""
    from mrcnn.evaluation import compute_matches

    gt_match, pred_match, overlaps = compute_matches(
        gt_box, gt_class_id, gt_mask, pred_box, pred_class_id, pred_score, pred_mask,
        iou_threshold=iou_threshold, score_threshold=score_threshold)
    keep = np.where(np.asarray(pred_score) >= score_threshold)[0]
    order = keep[np.argsort(-np.asarray(pred_score)[keep], kind="stable")]
    pred_box, pred_class_id = np.asarray(pred_box)[order], np.asarray(pred_class_id)[order]
    pred_score, pred_mask = np.asarray(pred_score)[order], np.asarray(pred_mask)[..., order]
    colors = [(0, 1, 0, 0.8)] * len(gt_match) + [(1, 0, 0, 1)] * len(pred_match)
    class_ids = np.concatenate([gt_class_id, pred_class_id])
    scores = np.concatenate([np.zeros([len(gt_match)]), pred_score])
    boxes = np.concatenate([gt_box, pred_box])
    masks = np.concatenate([gt_mask, pred_mask], axis=-1)
    captions = ["" for _ in gt_match] + [
        "{} {:.2f} / {:.2f}".format(class_names[int(pred_class_id[i])], pred_score[i],
                                    overlaps[i, int(pred_match[i])] if pred_match[i] > -1
                                    else (overlaps[i].max() if overlaps.shape[1] else 0.0))
        for i in range(len(pred_match))]
    title = title or "Ground Truth and Detections\n GT=green, pred=red, captions: score/IoU"
    return display_instances(image, boxes, masks, class_ids, class_names, scores, ax=ax,
                             show_bbox=show_box, show_mask=show_mask, colors=colors,
                             captions=captions, title=title, save_path=save_path)


def draw_rois(image, rois, refined_rois, mask, class_ids, class_names, limit=10, save_path=None):
    """Up to `limit` ROIs (dashed) with their refined boxes (solid) and masks; background ROIs
    in gray. rois, refined_rois: [N, (y1, x1, y2, x2)] pixels. Returns the Figure."""
    from matplotlib import lines, patches

    fig, ax = _figure(None, (12, 12))
    masked_image = np.asarray(image).astype(np.float64).copy()
    ids = np.arange(rois.shape[0], dtype=np.int32)
    ids = np.random.default_rng(0).choice(ids, limit, replace=False) if len(ids) > limit else ids
    ax.set_title(f"Showing {len(ids)} random ROIs out of {rois.shape[0]}")
    ax.set_ylim(image.shape[0] + 20, -20)
    ax.set_xlim(-50, image.shape[1] + 20)
    ax.axis("off")
    colors = random_colors(len(ids))
    for i, roi_id in enumerate(ids):
        color = colors[i]
        class_id = int(class_ids[roi_id])
        y1, x1, y2, x2 = rois[roi_id]
        ax.add_patch(patches.Rectangle((x1, y1), x2 - x1, y2 - y1, linewidth=2,
                                       edgecolor=color if class_id else "gray",
                                       facecolor="none", linestyle="dashed"))
        if class_id:
            ry1, rx1, ry2, rx2 = refined_rois[roi_id]
            ax.add_patch(patches.Rectangle((rx1, ry1), rx2 - rx1, ry2 - ry1, linewidth=2,
                                           edgecolor=color, facecolor="none"))
            ax.add_line(lines.Line2D([x1, rx1], [y1, ry1], color=color))
            ax.text(rx1, ry1 + 8, class_names[class_id], color="w", size=11)
            if mask is not None:
                from mrcnn.ops.masks import unmold_mask

                m = unmold_mask(mask[roi_id], rois[roi_id][:4].astype(np.int32), image.shape)
                masked_image = apply_mask(masked_image, m, color)
    ax.imshow(masked_image.astype(np.uint8))
    return _finish(fig, save_path, own_figure=True)


def draw_box(image, box, color):
    """Draws a 1-pixel box outline into image [H, W, 3] in place. box: (y1, x1, y2, x2),
    y2/x2 exclusive; color: 3 values in the image's range. Returns the image."""
    y1, x1, y2, x2 = (int(v) for v in box)
    image[y1, x1:x2] = color
    image[max(y2 - 1, y1), x1:x2] = color
    image[y1:y2, x1] = color
    image[y1:y2, max(x2 - 1, x1)] = color
    return image


def plot_precision_recall(AP, precisions, recalls, save_path=None):
    """The precision-recall curve of compute_ap's outputs. Returns the Figure."""
    fig, ax = _figure(None, (6, 5))
    ax.set_title(f"Precision-Recall Curve. AP@50 = {AP:.3f}")
    ax.set_ylim(0, 1.1)
    ax.set_xlim(0, 1.1)
    ax.plot(recalls, precisions)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    return _finish(fig, save_path, own_figure=True)


def plot_overlaps(gt_class_ids, pred_class_ids, pred_scores, overlaps, class_names,
                  threshold=0.5, save_path=None):
    """Grid of IoUs between predictions (rows) and ground truth (columns); matches with the
    same class and IoU >= threshold are marked. Returns the Figure."""
    gt_class_ids = np.asarray(gt_class_ids)
    pred_class_ids = np.asarray(pred_class_ids)
    overlaps = np.asarray(overlaps)
    gt_class_ids = gt_class_ids[gt_class_ids != 0]
    pred_class_ids = pred_class_ids[pred_class_ids != 0]
    fig, ax = _figure(None, (12, 10))
    ax.imshow(overlaps, cmap="Blues") if overlaps.size else None
    ax.set_yticks(np.arange(len(pred_class_ids)))
    ax.set_yticklabels([f"{class_names[int(i)]} ({pred_scores[k]:.2f})"
                        for k, i in enumerate(pred_class_ids)])
    ax.set_xticks(np.arange(len(gt_class_ids)))
    ax.set_xticklabels([class_names[int(i)] for i in gt_class_ids], rotation=90)
    thresh = overlaps.max() / 2.0 if overlaps.size else 0
    for i in range(overlaps.shape[0]):
        for j in range(overlaps.shape[1]):
            text = ""
            if overlaps[i, j] > threshold:
                text = "match" if gt_class_ids[j] == pred_class_ids[i] else "wrong"
            color = "white" if overlaps[i, j] > thresh else ("grey" if overlaps[i, j] > 0
                                                             else "black")
            ax.text(j, i, f"{overlaps[i, j]:.3f}\n{text}", ha="center", va="center",
                    fontsize=9, color=color)
    ax.set_xlabel("Ground Truth")
    ax.set_ylabel("Predictions")
    return _finish(fig, save_path, own_figure=True)


def draw_boxes(image, boxes=None, refined_boxes=None, masks=None, captions=None,
               visibilities=None, title="", ax=None, save_path=None):
    """Boxes (dashed), refined boxes (solid), masks and captions over an image.

    visibilities: per box 0 (skip), 1 (faint) or 2 (clear). Returns the Figure.
    """
    from matplotlib import lines, patches

    n = boxes.shape[0] if boxes is not None else refined_boxes.shape[0]
    own_figure = ax is None
    fig, ax = _figure(ax, (12, 12))
    colors = random_colors(n)
    margin = image.shape[0] // 10
    ax.set_ylim(image.shape[0] + margin, -margin)
    ax.set_xlim(-margin, image.shape[1] + margin)
    ax.axis("off")
    ax.set_title(title)
    masked_image = np.asarray(image).astype(np.float64).copy()
    for i in range(n):
        visibility = visibilities[i] if visibilities is not None else 1
        if visibility == 0:
            continue
        color = colors[i] if visibility == 2 else "gray"
        alpha = {1: 0.3, 2: 1}.get(visibility, 0.5)
        style = "dotted" if visibility == 1 else "solid"
        if boxes is not None and np.any(boxes[i]):
            y1, x1, y2, x2 = boxes[i]
            ax.add_patch(patches.Rectangle((x1, y1), x2 - x1, y2 - y1, linewidth=2,
                                           alpha=alpha, linestyle=style, edgecolor=color,
                                           facecolor="none"))
        if refined_boxes is not None and visibility > 0:
            ry1, rx1, ry2, rx2 = refined_boxes[i].astype(np.int32)
            ax.add_patch(patches.Rectangle((rx1, ry1), rx2 - rx1, ry2 - ry1, linewidth=2,
                                           edgecolor=color, facecolor="none"))
            if boxes is not None:
                ax.add_line(lines.Line2D([boxes[i][1], rx1], [boxes[i][0], ry1],
                                         color=color))
        if captions is not None:
            y1, x1 = (refined_boxes[i] if refined_boxes is not None else boxes[i])[:2]
            ax.text(x1, y1, captions[i], size=11, verticalalignment="top", color="w",
                    bbox={"facecolor": "none", "alpha": 0.5, "pad": 2, "edgecolor": "none"})
        if masks is not None:
            masked_image = apply_mask(masked_image, masks[:, :, i], color
                                      if not isinstance(color, str) else (0.5, 0.5, 0.5))
    ax.imshow(masked_image.astype(np.uint8))
    return _finish(fig, save_path, own_figure)


def display_table(table):
    """Renders rows as an HTML table in Jupyter (plain text elsewhere). Returns the HTML."""
    html = "<table>" + "".join(
        "<tr>" + "".join(f"<td>{col}</td>" for col in row) + "</tr>" for row in table
    ) + "</table>"
    try:
        from IPython.display import HTML, display

        display(HTML(html))
    except ImportError:
        for row in table:
            print("\t".join(str(c) for c in row))
    return html


def display_weight_stats(model):
    """A table of each weight's shape, min, max and std; flags weights that look dead (std
    near 0) or overflowing (> 1000). model: a MaskRCNN. Returns the rows."""
    layers = model.get_trainable_layers()
    table = [["WEIGHT NAME", "SHAPE", "MIN", "MAX", "STD"]]
    for layer in layers:
        for w in layer.weights:
            values = np.asarray(w)
            name = getattr(w, "path", w.name)
            alert = ""
            if values.min() == values.max() and not (layer.__class__.__name__ == "Conv2D"
                                                     and "bias" in name):
                alert += "<span style='color:red'>*** dead?</span>"
            if np.abs(values.min()) > 1000 or np.abs(values.max()) > 1000:
                alert += "<span style='color:red'>*** Overflow?</span>"
            table.append([name + alert, str(values.shape), f"{values.min():+9.4f}",
                          f"{values.max():+10.4f}", f"{values.std():+9.4f}"])
    display_table(table)
    return table
