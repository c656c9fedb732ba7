"""What a video run produces as data: per-track results in the YouTube-VIS results format, and
the first-frame masks of the semi-supervised mode.

YouTube-VIS results (the format of its evaluation server and of pycocotools-style `ytvos`):
a JSON list with one entry per reported track,

    {"video_id": 1, "category_id": 2, "score": 0.93, "track_id": 7,
     "segmentations": [null, {"size": [H, W], "counts": "..."}, ...]}

`segmentations` has one item per frame of the video: the track's mask as a COCO RLE
(pycocotools, counts as an ASCII string), or null in frames where it has no detection.
`score` is the mean detection score over the frames with a mask. `track_id` (and, in the
semi-supervised mode, `object_id`, the label value of the given object) are extra keys that
evaluators ignore.
"""

import json
import os
import warnings

import numpy as np

__all__ = ["encode_mask", "encode_masks", "decode_mask", "TrackResults", "load_first_frame_masks",
           "select_tracks"]


def encode_mask(mask):
    """[H, W] bool -> COCO RLE dict {"size": [H, W], "counts": str}."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def encode_masks(masks, crops=None):
    """[H, W, N] bool -> N COCO RLE dicts, encoded in one pycocotools call.

    crops: drawing.mask_crops(masks), if already computed. Only each mask's box is copied into
    the column-major buffer pycocotools wants (converting the whole [H, W, N] array is a slow
    strided transpose)."""
    from pycocotools import mask as mask_utils

    masks = np.asarray(masks)
    if masks.shape[-1] == 0:
        return []
    if crops is None:
        from mrcnn.video.drawing import mask_crops

        crops = mask_crops(masks)
    h, w, n = masks.shape
    buffer = np.zeros((n, w, h), dtype=np.uint8)  # C order [N, W, H] = Fortran [H, W, N]
    for k, ((y1, x1, y2, x2), m) in enumerate(crops):
        if m is not None:
            buffer[k, x1:x2, y1:y2] = m.T
    rles = mask_utils.encode(buffer.transpose(2, 1, 0))
    for rle in rles:
        rle["counts"] = rle["counts"].decode("ascii")
    return rles


def decode_mask(rle):
    """COCO RLE dict (counts str or bytes) -> [H, W] bool."""
    from pycocotools import mask as mask_utils

    rle = dict(rle)
    if isinstance(rle["counts"], str):
        rle["counts"] = rle["counts"].encode("ascii")
    return mask_utils.decode(rle).astype(bool)


class TrackResults:
    """Collects the reported masks of every track, frame by frame, into YouTube-VIS entries.

    category_of: maps a model class id to the result's category_id (default: the class id).
    """

    def __init__(self, video_id=1, category_of=None):
        self.video_id = video_id
        self.category_of = category_of or int
        self.frames = 0
        self._tracks = {}  # track id -> {"class_id", "scores": [], "segs": {frame: rle}}
        self.object_of_track = {}  # semi-supervised: track id -> object id

    def add(self, frame_index, track_ids, class_ids, scores, rles):
        """The instances reported in one frame. rles: N COCO RLE dicts (encode_masks)."""
        self.frames = max(self.frames, frame_index + 1)
        for k, track_id in enumerate(track_ids):
            entry = self._tracks.setdefault(int(track_id), {
                "class_id": int(class_ids[k]), "scores": [], "segs": {}})
            entry["scores"].append(float(scores[k]))
            entry["segs"][frame_index] = rles[k]

    def set_frame_count(self, count):
        self.frames = max(self.frames, int(count))

    def entries(self):
        """The YouTube-VIS result list (see the module docstring), by track id, or in
        semi-supervised mode by object id (objects without a track get no entry)."""
        out = []
        for track_id in sorted(self._tracks):
            t = self._tracks[track_id]
            entry = {"video_id": self.video_id,
                     "category_id": int(self.category_of(t["class_id"])),
                     "segmentations": [t["segs"].get(f) for f in range(self.frames)],
                     "score": float(np.mean(t["scores"])),
                     "track_id": track_id}
            if track_id in self.object_of_track:
                entry["object_id"] = self.object_of_track[track_id]
            out.append(entry)
        if self.object_of_track:
            out.sort(key=lambda e: e["object_id"])
        return out

    def save(self, path):
        """Writes entries() to path atomically (a .tmp file renamed into place)."""
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.entries(), f)
        os.replace(tmp, path)
        return path


def load_first_frame_masks(source):
    """First-frame object masks for the semi-supervised mode.

    source: a label PNG path (single channel or palette PNG as in DAVIS: 0 background, value k
    is object k), a [H, W] integer label array of the same meaning, or [H, W, K] bool masks
    (objects 1..K). Returns (masks [H, W, K] bool, object_ids [K] ints).
    """
    if isinstance(source, (str, os.PathLike)):
        from PIL import Image

        if not os.path.isfile(source):
            raise FileNotFoundError(f"first-frame mask file not found: {source}")
        with Image.open(source) as im:
            if im.mode not in ("P", "L", "I", "I;16", "1"):
                raise ValueError(f"{source}: expected a single-channel or palette label PNG "
                                 f"(0 background, k = object k), got mode {im.mode}")
            labels = np.array(im)
        name = str(source)
    else:
        labels = np.asarray(source)
        name = "first_frame_masks"
        if labels.ndim == 3:
            masks = labels.astype(bool)
            return masks, list(range(1, masks.shape[-1] + 1))
    if labels.ndim != 2:
        raise ValueError(f"{name}: expected a [H, W] label image, got shape {labels.shape}")
    object_ids = [int(v) for v in np.unique(labels) if v != 0]
    if not object_ids:
        raise ValueError(f"{name}: no object in the label image (every pixel is 0)")
    masks = np.stack([labels == v for v in object_ids], axis=-1)
    return masks, object_ids


def select_tracks(given_masks, object_ids, track_ids, masks):
    """The track each given object is: the Hungarian pairing of given masks [H, W, K] with the
    first frame's reported instances (masks [H, W, N], track_ids [N]) by mask IoU, pairs with
    IoU 0 excluded. Returns {track_id: object_id}; an object overlapping no instance is left
    out, with a warning."""
    from scipy.optimize import linear_sum_assignment

    from mrcnn.ops.masks import compute_overlaps_masks

    if given_masks.shape[:2] != masks.shape[:2]:
        raise ValueError(f"first-frame masks are {given_masks.shape[1]}x{given_masks.shape[0]}"
                         f", the video is {masks.shape[1]}x{masks.shape[0]}")
    ious = compute_overlaps_masks(given_masks, masks)
    chosen = {}
    if ious.size:
        rows, cols = linear_sum_assignment(-ious)
        chosen = {int(track_ids[c]): object_ids[r] for r, c in zip(rows, cols) if ious[r, c] > 0}
    for obj in object_ids:
        if obj not in chosen.values():
            warnings.warn(f"first-frame object {obj} overlaps no detection in the first frame;"
                          " it is not followed", stacklevel=3)
    return chosen
