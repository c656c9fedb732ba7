"""COCO-format annotations: reading a COCO JSON file into a Dataset, and turning annotations
(polygons, compressed RLE, uncompressed RLE) into instance masks.

This is what CVAT, Label Studio, Roboflow, labelme (labelme2coco) and most other annotation
tools export. Usage, on any utils.Dataset::

    ds = utils.Dataset()
    ds.load_coco_json("export/annotations.json", "export/images")
    ds.prepare()
    masks, class_ids = ds.load_mask(0)   # bool [height, width, N], int32 [N]

Category ids may be any integers (1, 5, 90, ...): they are the source ids of the dataset's
classes, and prepare() maps them to contiguous internal ids (1..K, 0 is background) in the
order of the file's categories; names are kept. Crowd annotations (iscrowd=1) get the negative
internal class id, as in matterport's CocoDataset (training ignores them as positives).
samples/coco/coco.py's CocoDataset decodes its annotations with the same functions.
pycocotools is imported inside the functions that need it.
"""

import json
import os

import numpy as np

__all__ = ["ann_to_rle", "ann_to_mask", "instance_masks", "instance_keypoints",
           "keypoint_categories", "load_coco_json", "COCO_FORMAT"]

# image_info["annotation_format"] of images whose masks come from COCO annotations.
COCO_FORMAT = "coco"


def _where(ann, context):
    return f"annotation {ann.get('id')!r} (image {ann.get('image_id')!r}{context})"


def ann_to_rle(ann, height, width, context=""):
    """An annotation's segmentation as a compressed RLE dict (pycocotools).

    segmentation: polygons [[x1, y1, x2, y2, ...], ...] in pixels (several parts are merged),
    uncompressed RLE {"size": [h, w], "counts": [int, ...]} (column-major runs) or compressed
    RLE {"size": [h, w], "counts": str or bytes}. Polygons with fewer than 3 points are
    ignored (they have no area). Raises ValueError naming the annotation when the
    segmentation is missing or malformed; `context` is added to that name (e.g. the file).
    """
    from pycocotools import mask as mask_utils

    segm = ann.get("segmentation")
    if isinstance(segm, list):
        polygons = []
        for poly in segm:
            if not isinstance(poly, (list, tuple)) or len(poly) % 2:
                raise ValueError(f"{_where(ann, context)}: a polygon must be a flat list "
                                 f"[x1, y1, x2, y2, ...] of even length, got {poly!r:.80}")
            if len(poly) >= 6:
                polygons.append([float(v) for v in poly])
        if not polygons:  # nothing with area: an empty mask
            return mask_utils.encode(np.zeros((height, width), np.uint8, order="F"))
        return mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
    if isinstance(segm, dict) and "counts" in segm and "size" in segm:
        if isinstance(segm["counts"], list):
            return mask_utils.frPyObjects(segm, *segm["size"])
        counts = segm["counts"]
        return {"size": list(segm["size"]),
                "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    raise ValueError(f"{_where(ann, context)}: no usable segmentation (expected polygons or "
                     f"RLE with 'size' and 'counts'), got {segm!r:.80}")


def ann_to_mask(ann, height, width, context=""):
    """An annotation's segmentation as a uint8 [height, width] mask (see ann_to_rle).

    An RLE's own size may differ from (height, width) (matterport's crowd case); the caller
    decides what to do with such a mask."""
    from pycocotools import mask as mask_utils

    return mask_utils.decode(ann_to_rle(ann, height, width, context))


def _instances(dataset, image_id, source=None, decode=True):
    """(height, width, [(annotation, bool mask, class id), ...]) of the annotations that
    instance_masks keeps, in file order (instance_keypoints follows the same order).
    decode=False only selects them (by the RLE's area, without decoding it): masks are None."""
    info = dataset.image_info[image_id]
    source = source or info["source"]
    height, width = info.get("height"), info.get("width")
    if not height or not width:  # the JSON gave no size: read it from the file
        height, width = dataset.load_image(image_id).shape[:2]
    context = f", file {info.get('path')}"
    kept = []
    for ann in info.get("annotations") or []:
        key = f"{source}.{ann['category_id']}"
        if key not in dataset.class_from_source_map:
            raise ValueError(f"{_where(ann, context)}: category {ann['category_id']!r} is not "
                             f"a class of source {source!r} (did you call prepare()?)")
        class_id = dataset.map_source_class_id(key)
        if not decode:
            from pycocotools import mask as mask_utils

            if mask_utils.area(ann_to_rle(ann, height, width, context)) >= 1:
                kept.append((ann, None, -class_id if ann.get("iscrowd") else class_id))
            continue
        m = ann_to_mask(ann, height, width, context)
        if m.max() < 1:
            continue
        if ann.get("iscrowd"):
            class_id *= -1
            if m.shape != (height, width):
                m = np.ones([height, width], dtype=bool)
        elif m.shape != (height, width):
            raise ValueError(f"{_where(ann, context)}: RLE size {list(m.shape)} differs from "
                             f"the image size {[height, width]}")
        kept.append((ann, m.astype(bool), class_id))
    return height, width, kept


def instance_masks(dataset, image_id, source=None):
    """Masks of an image whose image_info has COCO `annotations`, `height` and `width`.

    Class ids are dataset.map_source_class_id(f"{source}.{category_id}") (source: the image's
    source by default), negated for crowds. Masks under one pixel are skipped; a crowd mask
    whose RLE has another size than the image becomes the whole image (as matterport did). A
    non-crowd mask of another size raises ValueError naming the annotation and image.
    Returns bool [height, width, N] and int32 [N]; N may be 0.
    """
    height, width, kept = _instances(dataset, image_id, source)
    if not kept:
        return np.zeros((height, width, 0), bool), np.zeros([0], np.int32)
    return (np.stack([m for _, m, _ in kept], axis=2),
            np.array([c for _, _, c in kept], dtype=np.int32))


def instance_keypoints(dataset, image_id, num_keypoints, source=None):
    """Keypoints of the instances instance_masks returns, in the same order.

    COCO's `keypoints` field is [x1, y1, v1, ...] with x, y integer pixel indices; mrcnn keeps
    continuous coordinates (mrcnn.ops.keypoints), so labelled points (v > 0) get + 0.5 and
    unlabelled ones are (0, 0, 0). Annotations without the field (crowds, objects of other
    categories) have every keypoint unlabelled. A field of another length than
    3 * num_keypoints raises ValueError naming the annotation and image.
    Returns float32 [N, num_keypoints, (x, y, v)] in pixels.
    """
    _, _, kept = _instances(dataset, image_id, source, decode=False)
    out = np.zeros((len(kept), num_keypoints, 3), np.float32)
    context = f", file {dataset.image_info[image_id].get('path')}"
    for i, (ann, _, _) in enumerate(kept):
        kps = ann.get("keypoints")
        if not kps:
            continue
        if len(kps) != 3 * num_keypoints:
            raise ValueError(f"{_where(ann, context)}: 'keypoints' has {len(kps)} values, "
                             f"expected 3 * {num_keypoints}")
        kps = np.asarray(kps, np.float32).reshape(num_keypoints, 3)
        labelled = kps[:, 2] > 0
        out[i, labelled, :2] = kps[labelled, :2] + 0.5
        out[i, labelled, 2] = kps[labelled, 2]
    return out


def keypoint_categories(categories):
    """(names, skeleton) of the first category that lists `keypoints` (COCO's person), the
    skeleton's 1-based pairs made 0-based; (None, None) when no category has keypoints."""
    for cat in categories:
        if cat.get("keypoints"):
            skeleton = tuple((int(a) - 1, int(b) - 1) for a, b in cat.get("skeleton") or ())
            return tuple(cat["keypoints"]), skeleton
    return None, None


def _read_json(annotation_json):
    if isinstance(annotation_json, dict):
        return annotation_json, "<dict>"
    path = os.fspath(annotation_json)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"COCO annotation file not found: {path}")
    with open(path) as f:
        try:
            return json.load(f), path
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not valid JSON: {e}") from e


def _image_path(image_dir, file_name):
    """image_dir/file_name; when that file does not exist, the first that does of: the name
    with Windows separators turned to '/', then its base name in image_dir (tools write
    'images\\a.jpg', or upload paths like '/data/upload/1/a.jpg'). Else the plain join, which
    load_image then reports as missing."""
    image_dir = os.fspath(image_dir)
    path = os.path.join(image_dir, file_name)
    if os.path.isfile(path):
        return path
    posix = file_name.replace("\\", "/")
    for candidate in (os.path.join(image_dir, posix),
                      os.path.join(image_dir, os.path.basename(posix))):
        if os.path.isfile(candidate):
            return candidate
    return path


def _placeholder_categories(categories, annotations):
    """Ids of categories without annotations that only name the supercategory of other
    categories (Roboflow exports one, with id 0): they are not classes."""
    used = {ann.get("category_id") for ann in annotations}
    return {c["id"] for c in categories
            if c["id"] not in used
            and any(o.get("supercategory") == c.get("name") and o["id"] != c["id"]
                    for o in categories)}


def load_coco_json(dataset, annotation_json, image_dir, source="coco_json", class_ids=None):
    """Adds the classes and images of a COCO JSON file to a Dataset (see the module docstring).

    annotation_json: path of the JSON file (or the parsed dict). image_dir: folder the images'
    `file_name`s are relative to (see _image_path for Windows separators and upload paths).
    source: the dataset source name for these classes and images. class_ids: keep only these
    category ids (default: all); images are kept even when they have no annotation
    (background examples). A category without annotations that only names the supercategory
    of others (Roboflow writes one, id 0) is not a class.
    Image files are not opened here: a missing file raises ImageLoadError naming it when the
    image is loaded. Returns the number of images added.
    """
    data, where = _read_json(annotation_json)
    for field in ("images", "categories"):
        if not isinstance(data.get(field), list):
            raise ValueError(f"{where}: no '{field}' list: not a COCO instances file")
    annotations = data.get("annotations") or []
    categories = {}
    for cat in data["categories"]:
        if "id" not in cat:
            raise ValueError(f"{where}: category without an 'id': {cat!r:.80}")
        categories[cat["id"]] = cat.get("name") or str(cat["id"])
    for cat_id in _placeholder_categories(data["categories"], annotations):
        del categories[cat_id]
    keep = set(categories) if class_ids is None else set(class_ids)
    unknown = keep - set(categories)
    if unknown:
        raise ValueError(f"{where}: class_ids {sorted(unknown)} are not categories of the file "
                         f"(it has {sorted(categories)})")
    for cat_id, name in categories.items():
        if cat_id in keep:
            dataset.add_class(source, cat_id, name)
    images = {}
    for img in data["images"]:
        if "id" not in img or "file_name" not in img:
            raise ValueError(f"{where}: image entry needs 'id' and 'file_name': {img!r:.80}")
        images[img["id"]] = img
    per_image = {i: [] for i in images}
    for ann in annotations:
        context = f", {where}"
        if ann.get("image_id") not in images:
            raise ValueError(f"{_where(ann, context)}: image id not in 'images'")
        if ann.get("category_id") not in categories:
            raise ValueError(f"{_where(ann, context)}: category_id {ann.get('category_id')!r} "
                             f"not in 'categories' {sorted(categories)}")
        if "segmentation" not in ann:
            raise ValueError(f"{_where(ann, context)}: no 'segmentation' (a box-only "
                             "export cannot train masks)")
        if ann["category_id"] in keep:
            per_image[ann["image_id"]].append(ann)
    names, skeleton = keypoint_categories(
        [c for c in data["categories"] if c.get("id") in keep])
    if names:  # a keypoint file (COCO person_keypoints, CVAT/Label Studio skeletons)
        dataset.keypoint_names, dataset.keypoint_skeleton = names, skeleton
    for image_id, img in images.items():
        dataset.add_image(source, image_id=image_id,
                          path=_image_path(image_dir, img["file_name"]),
                          width=img.get("width"), height=img.get("height"),
                          annotations=per_image[image_id], annotation_format=COCO_FORMAT)
    return len(images)
