"""Synthetic stick figures with named keypoints, for the keypoint head on a CPU (no download).

Each figure is a person-like skeleton of 9 keypoints drawn with thick limbs, facing the viewer:
its left arm and leg are on the image's right of its neck and pelvis, as for a person seen from
the front. So left and right are told apart by geometry, and a horizontal flip turns a figure
into one whose sides trade places (KEYPOINT_FLIP_MAP). A figure has one colour (its head
another), so colour gives no side away. A random rectangle may hide part of a figure; keypoints
it covers are labelled but occluded (COCO visibility 1), visible ones have visibility 2.

    from samples.pose.pose import PoseConfig, PoseDataset
    dataset = PoseDataset(); dataset.load_pose(300, 128, 128, seed=0); dataset.prepare()
    keypoints = dataset.load_keypoints(image_id)      # [instances, 9, (x, y, v)] pixels
"""

import numpy as np

from mrcnn import utils
from mrcnn.config import Config

KEYPOINT_NAMES = ("head", "neck", "left_elbow", "left_hand", "right_elbow", "right_hand",
                  "pelvis", "left_foot", "right_foot")
KEYPOINT_FLIP_MAP = ((2, 4), (3, 5), (7, 8))
KEYPOINT_SKELETON = ((0, 1), (1, 2), (2, 3), (1, 4), (4, 5), (1, 6), (6, 7), (6, 8))
# COCO-style per-keypoint OKS sigmas for these joints (head like COCO's nose, hands like wrists).
KEYPOINT_SIGMAS = (0.026, 0.079, 0.072, 0.062, 0.072, 0.062, 0.107, 0.089, 0.089)


class PoseConfig(Config):
    """Configuration for the stick-figure set: one class (figure) and 9 keypoints."""

    NAME = "pose"
    IMAGES_PER_GPU = 4
    NUM_CLASSES = 1 + 1
    IMAGE_MIN_DIM = 128
    IMAGE_MAX_DIM = 128
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
    TRAIN_ROIS_PER_IMAGE = 32
    STEPS_PER_EPOCH = 100
    VALIDATION_STEPS = 5


class PoseDataset(utils.Dataset):
    """Images of 1-3 stick figures; each image is drawn from its stored specification."""

    def load_pose(self, count, height, width, seed=None, occlusion=0.3):
        """Adds `count` random image specifications of size height x width.

        seed: the specifications are a pure function of (seed, image index).
        occlusion: probability that an image gets an occluding rectangle.
        """
        self.add_class("pose", 1, "figure")
        for i in range(count):
            rng = np.random.default_rng(None if seed is None else [seed, i])
            spec = self.random_image(height, width, rng, occlusion)
            self.add_image("pose", image_id=i, path=None, width=width, height=height, **spec)

    # ------------------------------------------------------------------ drawing
    @staticmethod
    def _limbs(points, thickness, shape):
        """Pixels of each limb as a list of (rows, cols), drawn as thick line segments."""
        import skimage.draw

        out = []
        for a, b in KEYPOINT_SKELETON:
            (xa, ya), (xb, yb) = points[a], points[b]
            direction = np.array([xb - xa, yb - ya], dtype=np.float64)
            norm = np.hypot(*direction) or 1.0
            nx, ny = -direction[1] / norm * thickness / 2, direction[0] / norm * thickness / 2
            xs = [xa + nx, xb + nx, xb - nx, xa - nx]
            ys = [ya + ny, yb + ny, yb - ny, ya - ny]
            rr, cc = skimage.draw.polygon(ys, xs, shape=shape)
            out.append((rr, cc))
        return out

    def _figure_masks(self, info):
        """Per-figure masks [h, w, n] before occlusion, and per figure the pixels (rows, cols)
        of its limbs (KEYPOINT_SKELETON order) and joints (KEYPOINT_NAMES order)."""
        shape = (info["height"], info["width"])
        import skimage.draw

        masks = np.zeros(shape + (len(info["figures"]),), dtype=bool)
        limbs = []
        for i, fig in enumerate(info["figures"]):
            pts = np.asarray(fig["points"])
            parts = self._limbs(pts, fig["thickness"], shape)
            # Round joints: a disk on every keypoint (the head's is larger).
            joints = [skimage.draw.disk((y, x), fig["head_radius"] if k == 0
                                        else fig["thickness"] / 2 + 0.5, shape=shape)
                      for k, (x, y) in enumerate(pts)]
            for rr, cc in parts + joints:
                masks[rr, cc, i] = True
            limbs.append((parts, joints))
        return masks, limbs

    def load_image(self, image_id):
        """Draws the image [height, width, 3] uint8 from its specification."""
        info = self.image_info[image_id]
        image = np.empty((info["height"], info["width"], 3), dtype=np.uint8)
        image[:] = info["bg_color"]
        _, limbs = self._figure_masks(info)
        for fig, (parts, joints) in zip(info["figures"], limbs):
            for rr, cc in parts + joints[1:]:
                image[rr, cc] = fig["colors"][0]
            image[joints[0][0], joints[0][1]] = fig["colors"][1]  # the head
        if info["occluder"] is not None:
            y1, x1, y2, x2 = info["occluder"]
            image[y1:y2, x1:x2] = info["occluder_color"]
        return image

    def load_mask(self, image_id):
        """Visible pixels of each figure; a later figure and the occluder hide earlier ones."""
        info = self.image_info[image_id]
        masks, _ = self._figure_masks(info)
        hidden = np.zeros(masks.shape[:2], dtype=bool)
        if info["occluder"] is not None:
            y1, x1, y2, x2 = info["occluder"]
            hidden[y1:y2, x1:x2] = True
        for i in range(masks.shape[-1] - 1, -1, -1):
            masks[:, :, i] &= ~hidden
            hidden |= masks[:, :, i]
        return masks, np.ones([masks.shape[-1]], dtype=np.int32)

    def load_keypoints(self, image_id):
        """[instances, 9, (x, y, v)] float32, continuous pixel coordinates; v = 2 visible,
        1 hidden by the occluder or a later figure, 0 outside the image."""
        info = self.image_info[image_id]
        masks, _ = self._figure_masks(info)
        h, w = info["height"], info["width"]
        out = np.zeros((len(info["figures"]), len(KEYPOINT_NAMES), 3), dtype=np.float32)
        for i, fig in enumerate(info["figures"]):
            for k, (x, y) in enumerate(fig["points"]):
                inside = 0 <= x < w and 0 <= y < h
                v = 0
                if inside:
                    r, c = int(y), int(x)
                    covered = masks[r, c, i + 1:].any()
                    if info["occluder"] is not None:
                        y1, x1, y2, x2 = info["occluder"]
                        covered |= y1 <= r < y2 and x1 <= c < x2
                    v = 1 if covered else 2
                out[i, k] = (x, y, v)
        return out

    def image_reference(self, image_id):
        info = self.image_info[image_id]
        return f"pose image {image_id}: {len(info['figures'])} figure(s)"

    # ------------------------------------------------------------------ random specifications
    @staticmethod
    def random_figure(height, width, rng):
        """A figure: 9 joint positions (pixels), limb thickness, head radius, body and head
        colours. Left elbow and foot lie right of the neck and pelvis in the image, right ones
        left of them; hands may cross."""
        size = float(rng.uniform(0.3, 0.6) * min(height, width))   # head to feet
        cx = float(rng.uniform(0.2, 0.8) * width)
        top = float(rng.uniform(0.05, 0.95 - size / height) * height)
        lean = float(rng.uniform(-0.15, 0.15))
        neck = np.array([cx, top + 0.18 * size])
        head = neck + [lean * 0.1 * size, -0.12 * size]
        pelvis = neck + [lean * 0.5 * size, 0.42 * size]
        arm, leg = 0.22 * size, 0.40 * size

        def limb(origin, length, angle):
            return origin + length * np.array([np.sin(angle), np.cos(angle)])

        # Left limbs go to the figure's left (the image's right, as for a person facing us).
        la = float(rng.uniform(0.3, 2.6))
        ra = -float(rng.uniform(0.3, 2.6))
        l_elbow = limb(neck, arm, la)
        r_elbow = limb(neck, arm, ra)
        l_hand = limb(l_elbow, arm, la + float(rng.uniform(-0.8, 0.8)))
        r_hand = limb(r_elbow, arm, ra + float(rng.uniform(-0.8, 0.8)))
        l_foot = limb(pelvis, leg, float(rng.uniform(0.1, 0.6)))
        r_foot = limb(pelvis, leg, -float(rng.uniform(0.1, 0.6)))
        points = [head, neck, l_elbow, l_hand, r_elbow, r_hand, pelvis, l_foot, r_foot]
        colors = [tuple(int(c) for c in rng.integers(100, 256, 3)),
                  tuple(int(c) for c in rng.integers(100, 256, 3))]
        return {"points": [(float(x), float(y)) for x, y in points],
                "thickness": max(3.0, 0.08 * size), "head_radius": max(2.5, 0.08 * size),
                "colors": colors}

    def random_image(self, height, width, rng, occlusion=0.3):
        """Background colour, 1-3 figures whose boxes overlap little, an optional occluder."""
        bg = tuple(int(c) for c in rng.integers(0, 100, 3))
        figures, boxes = [], []
        for _ in range(int(rng.integers(1, 4))):
            fig = self.random_figure(height, width, rng)
            pts = np.asarray(fig["points"])
            figures.append(fig)
            boxes.append([pts[:, 1].min(), pts[:, 0].min(), pts[:, 1].max(), pts[:, 0].max()])
        keep = utils.non_max_suppression(np.array(boxes), np.arange(len(figures)), 0.2)
        figures = [f for i, f in enumerate(figures) if i in keep]
        occluder = color = None
        if rng.random() < occlusion:
            h = int(rng.integers(height // 8, height // 4))
            w = int(rng.integers(width // 8, width // 4))
            y, x = int(rng.integers(0, height - h)), int(rng.integers(0, width - w))
            occluder, color = (y, x, y + h, x + w), tuple(int(c) for c in rng.integers(0, 256, 3))
        return {"bg_color": bg, "figures": figures, "occluder": occluder,
                "occluder_color": color}
