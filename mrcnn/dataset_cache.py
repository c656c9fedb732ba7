"""DownscaledDataset: a Dataset whose images and masks are loaded once, downscaled and kept in
memory, for training on a few large photos (balloon: 61 JPEGs of up to 2048 px that the model
sees at 512 px; decoding and rasterising them at full size every step would cost more than the
step itself on a CPU).

    train = DownscaledDataset(balloon_train, max_side=640)   # same image ids and classes

The wrapper shares the base dataset's class and image records, so ids, class names and sources
are the same; only load_image/load_mask differ: the image is resized (bilinear, anti-aliased)
so that its longer side is at most max_side, the way MaskRCNN.detect resizes (bilinear, no
anti-aliasing: with max_side equal to IMAGE_MAX_DIM training sees the pixels detect() sees), its
masks alike (nearest neighbour), and both
are cached. Instances that vanish at the smaller size are dropped with their class ids.
"""

import threading

import numpy as np

from mrcnn.dataset import Dataset

__all__ = ["DownscaledDataset"]


class DownscaledDataset(Dataset):
    """Wraps a prepared Dataset; see the module docstring.

    base: a prepared Dataset. max_side: the longest side in pixels of the cached images
    (smaller images are kept as they are).
    """

    def __init__(self, base, max_side):
        super().__init__()
        if max_side < 16:
            raise ValueError(f"max_side must be at least 16 pixels, got {max_side}")
        self.base = base
        self.max_side = int(max_side)
        self.class_info = base.class_info
        self.image_info = base.image_info
        self.prepare()
        self._cache = {}
        self._lock = threading.Lock()

    def image_reference(self, image_id):
        return self.base.image_reference(image_id)

    def _load(self, image_id):
        image_id = int(image_id)
        with self._lock:
            hit = self._cache.get(image_id)
        if hit is not None:
            return hit
        from mrcnn.ops.image import resize

        image = self.base.load_image(image_id)
        masks, class_ids = self.base.load_mask(image_id)
        masks = np.asarray(masks, bool)
        class_ids = np.asarray(class_ids, np.int32)
        h, w = image.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        if scale < 1.0:
            size = (max(1, round(h * scale)), max(1, round(w * scale)))
            image = resize(image, size, preserve_range=True)
            image = np.clip(np.round(image), 0, 255).astype(np.uint8)
            if masks.shape[-1]:
                masks = resize(masks.astype(np.uint8), size, order=0, preserve_range=True,
                               anti_aliasing=False).astype(bool)
                keep = masks.any(axis=(0, 1))
                masks, class_ids = masks[:, :, keep], class_ids[keep]
            else:
                masks = np.zeros(size + (0,), bool)
        with self._lock:
            self._cache[image_id] = (image, masks, class_ids)
        return image, masks, class_ids

    def load_image(self, image_id):
        """The downscaled image, [h, w, 3] uint8 (cached)."""
        return self._load(image_id)[0]

    def load_mask(self, image_id):
        """The downscaled masks, bool [h, w, N], and class ids int32 [N] (cached)."""
        _, masks, class_ids = self._load(image_id)
        return masks, class_ids
