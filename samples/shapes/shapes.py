"""The shapes toy dataset of matterport's train_shapes notebook: squares, circles and triangles
on a random background, generated on the fly (no download).

    from samples.shapes.shapes import ShapesConfig, ShapesDataset
    dataset = ShapesDataset(); dataset.load_shapes(500, 128, 128, seed=0); dataset.prepare()
"""

import numpy as np

from mrcnn import utils
from mrcnn.config import Config

SHAPES = ("square", "circle", "triangle")


class ShapesConfig(Config):
    """matterport's configuration for the shapes dataset."""

    NAME = "shapes"
    GPU_COUNT = 1
    IMAGES_PER_GPU = 8
    NUM_CLASSES = 1 + 3  # background + 3 shapes
    IMAGE_MIN_DIM = 128
    IMAGE_MAX_DIM = 128
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)  # anchor side in pixels
    TRAIN_ROIS_PER_IMAGE = 32
    STEPS_PER_EPOCH = 100
    VALIDATION_STEPS = 5


class ShapesDataset(utils.Dataset):
    """Images of 1-4 random shapes; each image is drawn from its stored specification."""

    def load_shapes(self, count, height, width, seed=None, backgrounds=None):
        """Adds `count` random image specifications of size height x width.

        seed: the specifications are a pure function of (seed, image index).
        backgrounds: optional list of photos [h, w, 3] uint8, each at least height x width;
        each image then draws its shapes on a random height x width crop of one of them
        instead of a flat colour.
        """
        for i, name in enumerate(SHAPES):
            self.add_class("shapes", i + 1, name)
        if backgrounds is not None:
            small = [k for k, b in enumerate(backgrounds)
                     if b.ndim != 3 or b.shape[0] < height or b.shape[1] < width]
            if small or not len(backgrounds):
                raise ValueError(f"backgrounds must be non-empty [h, w, 3] photos of at least "
                                 f"{height}x{width}; these are not: {small}")
            self.backgrounds = backgrounds
        for i in range(count):
            rng = np.random.default_rng(None if seed is None else [seed, i])
            bg_color, shapes = self.random_image(height, width, rng)
            crop = None
            if backgrounds is not None:
                k = int(rng.integers(0, len(backgrounds)))
                crop = (k, int(rng.integers(0, backgrounds[k].shape[0] - height + 1)),
                        int(rng.integers(0, backgrounds[k].shape[1] - width + 1)))
            self.add_image("shapes", image_id=i, path=None, width=width, height=height,
                           bg_color=bg_color, shapes=shapes, background=crop)

    def load_image(self, image_id):
        """Draws the image [height, width, 3] uint8 from its specification."""
        info = self.image_info[image_id]
        image = np.empty((info["height"], info["width"], 3), dtype=np.uint8)
        if info.get("background") is None:
            image[:] = info["bg_color"]
        else:
            k, y, x = info["background"]
            image[:] = self.backgrounds[k][y:y + info["height"], x:x + info["width"]]
        for shape, color, dims in info["shapes"]:
            rr, cc = self.shape_pixels(shape, dims, image.shape[:2])
            image[rr, cc] = color
        return image

    def image_reference(self, image_id):
        info = self.image_info[image_id]
        return f"shapes image {image_id}: {[s[0] for s in info['shapes']]}"

    def load_mask(self, image_id):
        """Instance masks; a shape drawn later hides what it covers of earlier ones."""
        info = self.image_info[image_id]
        shapes = info["shapes"]
        mask = np.zeros([info["height"], info["width"], len(shapes)], dtype=bool)
        for i, (shape, _, dims) in enumerate(shapes):
            rr, cc = self.shape_pixels(shape, dims, mask.shape[:2])
            mask[rr, cc, i] = True
        occlusion = np.logical_not(mask[:, :, -1])
        for i in range(len(shapes) - 2, -1, -1):
            mask[:, :, i] = mask[:, :, i] & occlusion
            occlusion = np.logical_and(occlusion, np.logical_not(mask[:, :, i]))
        class_ids = np.array([self.class_names.index(s[0]) for s in shapes], dtype=np.int32)
        return mask, class_ids

    @staticmethod
    def shape_pixels(shape, dims, image_shape):
        """Row and column indices of a shape's pixels. dims: (center x, center y, size)."""
        import skimage.draw

        x, y, s = dims
        if shape == "square":
            return skimage.draw.rectangle((y - s, x - s), (y + s, x + s), shape=image_shape)
        if shape == "circle":
            return skimage.draw.disk((y, x), s, shape=image_shape)
        if shape == "triangle":
            half = s / np.sin(np.radians(60))
            return skimage.draw.polygon([y - s, y + s, y + s], [x, x - half, x + half],
                                        shape=image_shape)
        raise ValueError(f"unknown shape {shape!r}")

    @staticmethod
    def random_shape(height, width, rng):
        """(shape name, RGB color, (x, y, size)) inside the image with a 20 px margin."""
        shape = SHAPES[int(rng.integers(0, 3))]
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        buffer = 20
        y = int(rng.integers(buffer, height - buffer))
        x = int(rng.integers(buffer, width - buffer))
        s = int(rng.integers(buffer, height // 4))
        return shape, color, (x, y, s)

    def random_image(self, height, width, rng):
        """Background color and 1-4 shapes, overlapping shapes thinned out by NMS at 0.3."""
        bg_color = np.array([int(c) for c in rng.integers(0, 256, 3)])
        shapes, boxes = [], []
        for _ in range(int(rng.integers(1, 5))):
            shape, color, dims = self.random_shape(height, width, rng)
            shapes.append((shape, color, dims))
            x, y, s = dims
            boxes.append([y - s, x - s, y + s, x + s])
        keep = utils.non_max_suppression(np.array(boxes), np.arange(len(shapes)), 0.3)
        shapes = [s for i, s in enumerate(shapes) if i in keep]
        return bg_color, shapes
