"""CopyPasteDataset: a training set grown by copy-paste augmentation (Ghiasi et al., "Simple
Copy-Paste is a Strong Data Augmentation Method for Instance Segmentation", CVPR 2021).

    train = CopyPasteDataset(DownscaledDataset(balloon_train, 320), count=183, seed=0)

The wrapper keeps every image of the base dataset (same ids, first) and adds `count` composite
images after them. Composite i is a base photo (the background, with its own instances) onto
which 1 to `max_pastes` instances cut from other base photos are pasted, each rescaled by a
random factor (log-uniform in `scale_range`, relative to its size in its own photo), flipped
left-right at random and placed at a random position (its centre inside the background), or,
with probability `near_prob`, beside an instance already in the image (touching it or
overlapping its edge, in a random direction), which makes bunches of touching instances. A
pasted instance occludes what lies under it: earlier masks lose those pixels, and an instance
left with fewer than `min_pixels` pixels is dropped. Everything about composite i is drawn
from numpy.random.default_rng([seed, i]), so load_image(i) and load_mask(i) agree, and the
same composite comes back on every call, in any thread or process (the data order and resume
machinery of DataGenerator rely on a dataset being a function of the image id).

Small scale factors make many small instances, which a few dozen photos rarely show; the
README's balloon section measures what that buys. Compose after downscaling (wrap a
DownscaledDataset): pasting at training resolution costs a few milliseconds per composite.
"""

import threading
from collections import OrderedDict

import numpy as np

from mrcnn.dataset import Dataset
from mrcnn.ops.image import resize
from mrcnn.ops.masks import extract_bboxes

__all__ = ["CopyPasteDataset", "paste_instance"]


def paste_instance(image, masks, class_ids, patch, patch_mask, class_id, y, x, min_pixels=1):
    """Pastes one instance into an image, in place of what lies under it.

    image: [H, W, C] uint8. masks: [H, W, N] bool. class_ids: [N] int32.
    patch: [h, w, C] uint8, the instance's pixels; patch_mask: [h, w] bool, its mask.
    y, x: the patch's top-left corner in image pixels; the patch may reach over the border
        (the part outside is cut off).
    Returns image [H, W, C], masks [H, W, M], class_ids [M] (new arrays): the pasted instance
    is the last one; earlier instances lose the pixels it covers. Every instance left with
    fewer than min_pixels visible pixels, the pasted one included, is dropped (the image keeps
    the pasted pixels either way).
    """
    H, W = image.shape[:2]
    h, w = patch_mask.shape
    y1, x1, y2, x2 = max(y, 0), max(x, 0), min(y + h, H), min(x + w, W)
    image, masks = image.copy(), np.asarray(masks, bool)
    class_ids = np.asarray(class_ids, np.int32)
    new = np.zeros((H, W), bool)
    if y1 < y2 and x1 < x2:
        new[y1:y2, x1:x2] = patch_mask[y1 - y:y2 - y, x1 - x:x2 - x]
        image[new] = patch[y1 - y:y2 - y, x1 - x:x2 - x][new[y1:y2, x1:x2]]
    masks = np.concatenate([masks & ~new[:, :, None], new[:, :, None]], axis=2)
    class_ids = np.concatenate([class_ids, np.int32([class_id])])
    keep = masks.sum(axis=(0, 1)) >= max(min_pixels, 1)
    return image, masks[:, :, keep], class_ids[keep]


def _beside(mask, h, w, rng):
    """A centre (y, x) for an [h, w] patch beside the instance of mask [H, W]: in a random
    direction from the instance's box centre, at 0.7 to 1.0 times the distance at which the
    two boxes' inscribed ellipses would just touch; clipped to the image."""
    y1, x1, y2, x2 = extract_bboxes(mask[:, :, None])[0]
    angle = rng.uniform(0, 2 * np.pi)
    dy, dx = np.sin(angle), np.cos(angle)
    # Radius of an axis-aligned ellipse with semi-axes (a, b) in direction (dy, dx).
    def radius(a, b):
        return a * b / max(np.hypot(b * dy, a * dx), 1e-6)

    distance = (radius((y2 - y1) / 2, (x2 - x1) / 2) + radius(h / 2, w / 2)) * \
        rng.uniform(0.7, 1.0)
    H, W = mask.shape
    cy = int(np.clip(round((y1 + y2) / 2 + distance * dy), 0, H - 1))
    cx = int(np.clip(round((x1 + x2) / 2 + distance * dx), 0, W - 1))
    return cy, cx


class CopyPasteDataset(Dataset):
    """Wraps a prepared Dataset; see the module docstring.

    base: a prepared Dataset (images as the model trains on them, e.g. a DownscaledDataset).
    count: composite images added after the base images (0: none).
    seed: composites are a function of (seed, composite index).
    max_pastes: at most this many instances pasted per composite (at least 1).
    scale_range: (low, high) of the log-uniform factor applied to a pasted instance's size.
    min_pixels: an instance with fewer visible pixels than this is dropped (pasted or occluded).
    near_prob: the probability that a paste goes beside an instance already in the image
        (0: always at a uniformly random position, as in the paper).
    """

    def __init__(self, base, count, seed=0, max_pastes=4, scale_range=(0.25, 1.25),
                 min_pixels=9, cache_size=64, near_prob=0.0):
        super().__init__()
        low, high = (float(v) for v in scale_range)
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        if max_pastes < 1:
            raise ValueError(f"max_pastes must be >= 1, got {max_pastes}")
        if not 0 < low <= high:
            raise ValueError(f"scale_range must be (low, high) with 0 < low <= high, got "
                             f"{scale_range}")
        if not 0 <= near_prob <= 1:
            raise ValueError(f"near_prob must be in [0, 1], got {near_prob}")
        self.base, self.near_prob = base, float(near_prob)
        self.count, self.seed, self.max_pastes = int(count), int(seed), int(max_pastes)
        self.scale_range, self.min_pixels = (low, high), int(min_pixels)
        self.class_info = base.class_info
        self.num_base = len(base.image_info)
        self.image_info = list(base.image_info)
        for i in range(self.count):
            background = int(np.random.default_rng([self.seed, i]).integers(self.num_base))
            info = base.image_info[background]
            self.image_info.append({"id": f"copy_paste_{i}", "source": info["source"],
                                    "path": None, "background": background, "composite": i})
        self.prepare()
        self._donors = None
        self._cache, self._cache_size = OrderedDict(), int(cache_size)
        self._lock = threading.Lock()

    def image_reference(self, image_id):
        info = self.image_info[image_id]
        if "composite" not in info:
            return self.base.image_reference(image_id)
        return (f"copy-paste composite {info['composite']} on "
                f"{self.base.image_reference(info['background']) or info['background']}")

    def donors(self):
        """Base image ids that have at least one instance (computed once)."""
        if self._donors is None:
            ids = [i for i in range(self.num_base)
                   if np.asarray(self.base.load_mask(i)[1]).size]
            if not ids:
                raise ValueError("copy-paste needs at least one base image with an instance")
            self._donors = np.array(ids)
        return self._donors

    def _cut(self, donor, rng):
        """One instance of a donor photo, rescaled and maybe flipped: (patch, mask, class)."""
        image = self.base.load_image(donor)
        masks, class_ids = self.base.load_mask(donor)
        masks = np.asarray(masks, bool)
        k = int(rng.integers(masks.shape[-1]))
        y1, x1, y2, x2 = extract_bboxes(masks[:, :, k:k + 1])[0]
        patch, mask = image[y1:y2, x1:x2], masks[y1:y2, x1:x2, k]
        low, high = np.log(self.scale_range)
        scale = float(np.exp(rng.uniform(low, high)))
        size = (max(1, round((y2 - y1) * scale)), max(1, round((x2 - x1) * scale)))
        if size != mask.shape:
            patch = np.clip(np.round(resize(patch, size, preserve_range=True)), 0, 255)
            patch = patch.astype(np.uint8)
            mask = resize(mask.astype(np.float32), size, preserve_range=True) >= 0.5
        if rng.random() < 0.5:
            patch, mask = patch[:, ::-1], mask[:, ::-1]
        return patch, mask, int(np.asarray(class_ids)[k])

    def _compose(self, image_id):
        info = self.image_info[image_id]
        rng = np.random.default_rng([self.seed, info["composite"]])
        rng.integers(self.num_base)  # the background, drawn in __init__ from the same stream
        image = self.base.load_image(info["background"])
        masks, class_ids = self.base.load_mask(info["background"])
        masks = np.asarray(masks, bool).reshape(image.shape[:2] + (-1,))
        H, W = image.shape[:2]
        donors = self.donors()
        for _ in range(int(rng.integers(1, self.max_pastes + 1))):
            patch, mask, class_id = self._cut(int(rng.choice(donors)), rng)
            h, w = mask.shape
            if self.near_prob and masks.shape[-1] and rng.random() < self.near_prob:
                cy, cx = _beside(masks[:, :, int(rng.integers(masks.shape[-1]))], h, w, rng)
            else:
                cy, cx = rng.integers(H), rng.integers(W)
            image, masks, class_ids = paste_instance(
                image, masks, class_ids, patch, mask, class_id, int(cy - h // 2),
                int(cx - w // 2), self.min_pixels)
        return image, masks, class_ids

    def _load(self, image_id):
        image_id = int(image_id)
        with self._lock:
            hit = self._cache.get(image_id)
            if hit is not None:
                self._cache.move_to_end(image_id)
                return hit
        out = self._compose(image_id)
        with self._lock:
            self._cache[image_id] = out
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return out

    def load_image(self, image_id):
        """A base image as the base gives it, or composite [H, W, 3] uint8."""
        if image_id < self.num_base:
            return self.base.load_image(image_id)
        return self._load(image_id)[0]

    def load_mask(self, image_id):
        """A base image's masks, or a composite's: bool [H, W, N], class ids int32 [N]."""
        if image_id < self.num_base:
            return self.base.load_mask(image_id)
        _, masks, class_ids = self._load(image_id)
        return masks, class_ids
