"""Training data: load_image_gt (one image and its targets) and DataGenerator (batches).

DataGenerator is a keras.utils.PyDataset: batch `idx` of epoch `e` is a pure function of
(seed, e, idx), so workers and processes never duplicate or drop batches. MaskRCNN.train feeds
Keras one endless stream of them (DataGenerator.iter_batches through
distributed.distribute_batches) instead of the PyDataset itself: Keras makes a new tf.data
iterator for a PyDataset every epoch, and destroying the old one (tf.data's root iterator
waiting for one of its threads) stalled the next epoch's first step by up to ~20 s.
"""

import collections
import concurrent.futures
import logging
import multiprocessing

import keras
import numpy as np

from mrcnn.ops.anchors import compute_backbone_shapes, generate_pyramid_anchors
from mrcnn.ops.image import mold_image, pad_to_multiple, resize_image
from mrcnn.ops.image_meta import compose_image_meta
from mrcnn.ops.keypoints import flip_keypoints, scale_keypoints
from mrcnn.ops.masks import extract_bboxes, minimize_mask, resize_mask
from mrcnn.targets import build_detection_targets, build_rpn_targets, generate_random_rois

__all__ = ["load_image_gt", "DataGenerator", "data_generator", "MASK_AUGMENTERS",
           "batch_anchors", "split_batch"]

logger = logging.getLogger(__name__)

# imgaug augmenters that are applied to masks too (the geometric ones), as in matterport.
MASK_AUGMENTERS = ["Sequential", "SomeOf", "OneOf", "Sometimes", "Fliplr", "Flipud",
                   "CropAndPad", "Affine", "PiecewiseAffine"]


_WORKER_GENERATOR = None  # the DataGenerator of a loader process (iter_batches)


def _set_worker_generator(generator):
    global _WORKER_GENERATOR
    _WORKER_GENERATOR = generator


def _worker_batch(batch_number):
    return _WORKER_GENERATOR.batch(batch_number)


def _describe(dataset, image_id):
    try:
        ref = dataset.image_reference(image_id)
    except Exception:  # a user's image_reference must not hide the real error
        ref = ""
    info = dataset.image_info[image_id] if 0 <= image_id < len(dataset.image_info) else {}
    return f"image_id {image_id} (source {info.get('source')!r}, id {info.get('id')!r}" + \
        (f", {ref}" if ref else "") + ")"


def _checked_mask(dataset, image_id, image_shape):
    mask, class_ids = dataset.load_mask(image_id)
    mask = np.asarray(mask)
    class_ids = np.asarray(class_ids, dtype=np.int32).reshape(-1)
    if mask.size == 0 or mask.ndim != 3 or mask.shape[-1] == 0:
        if class_ids.size and mask.size:
            raise ValueError(f"load_mask returned mask shape {mask.shape} with "
                             f"{class_ids.size} class ids for {_describe(dataset, image_id)}")
        return np.zeros(tuple(image_shape[:2]) + (0,), dtype=bool), np.zeros([0], np.int32)
    if mask.shape[:2] != tuple(image_shape[:2]):
        raise ValueError(f"mask size {mask.shape[:2]} differs from image size "
                         f"{tuple(image_shape[:2])} for {_describe(dataset, image_id)}")
    if mask.shape[-1] != class_ids.shape[0]:
        raise ValueError(f"{mask.shape[-1]} masks but {class_ids.shape[0]} class ids for "
                         f"{_describe(dataset, image_id)}")
    return mask.astype(bool), class_ids


def _checked_keypoints(dataset, config, image_id, instances):
    """dataset.load_keypoints(image_id) as float32 [instances, NUM_KEYPOINTS, 3], checked."""
    missing = (f"Config.NUM_KEYPOINTS = {config.NUM_KEYPOINTS} but {type(dataset).__name__} "
               "has no load_keypoints(image_id)")
    load = getattr(dataset, "load_keypoints", None)
    if load is None:  # not a utils.Dataset
        raise ValueError(missing)
    try:
        keypoints = np.asarray(load(image_id), dtype=np.float32)
    except NotImplementedError as e:  # utils.Dataset's default: no keypoints
        raise ValueError(f"{missing}: {e}") from e
    want = (instances, config.NUM_KEYPOINTS, 3)
    if keypoints.size == 0 and instances == 0:
        return np.zeros(want, np.float32)
    if keypoints.shape != want:
        raise ValueError(f"load_keypoints returned shape {keypoints.shape}, expected {want} "
                         f"(instances, NUM_KEYPOINTS, (x, y, v)) for "
                         f"{_describe(dataset, image_id)}")
    return keypoints


def _augment_keypoints(det, keypoints, image_shape, flip_map):
    """Moves keypoints [N, K, 3] with a deterministic imgaug augmenter. Two probe points tell
    whether the image was mirrored left-right; then the flip_map pairs are swapped. Keypoints
    pushed out of the image become unlabelled (v = 0)."""
    from imgaug.augmentables.kps import Keypoint, KeypointsOnImage

    h, w = image_shape[:2]
    flat = keypoints.reshape(-1, 3)
    points = [Keypoint(x=float(x), y=float(y)) for x, y, _ in flat]
    points += [Keypoint(x=0.25 * w, y=0.5 * h), Keypoint(x=0.75 * w, y=0.5 * h)]
    moved = det.augment_keypoints(KeypointsOnImage(points, shape=tuple(image_shape)))
    xy = np.array([[p.x, p.y] for p in moved.keypoints], dtype=np.float32)
    out = flat.copy()
    out[:, :2] = xy[:-2]
    outside = (out[:, 0] < 0) | (out[:, 1] < 0) | (out[:, 0] > w) | (out[:, 1] > h)
    out[:, 2] = np.where(outside, 0, out[:, 2])
    out = out.reshape(keypoints.shape)
    if xy[-2, 0] > xy[-1, 0]:  # mirrored: left and right keypoints trade places
        order = np.arange(keypoints.shape[1])
        for i, j in flip_map:
            order[i], order[j] = j, i
        out = out[:, order]
    return out


def _check_class_ids(dataset, image_id, class_ids, num_classes):
    """Every mask's class id must be a class (1..NUM_CLASSES-1) or a crowd marker: the negated
    id of a class, -(NUM_CLASSES-1)..-1, as CocoDataset writes for iscrowd regions. 0 is the
    background and never an instance."""
    bad = class_ids[(class_ids == 0) | (np.abs(class_ids) >= num_classes)]
    if bad.size:
        path = dataset.image_info[image_id].get("path")
        raise ValueError(
            f"load_mask returned class id {int(bad[0])} for {_describe(dataset, image_id)}"
            + (f" [{path}]" if path else "") + ": "
            f"with NUM_CLASSES = {num_classes} a mask's class id must be 1..{num_classes - 1} "
            f"(or -1..-{num_classes - 1} for a crowd region); 0 is the background")


def load_image_gt(dataset, config, image_id, augment=False, augmentation=None,
                  use_mini_mask=False, rng=None, return_keypoints=False):
    """Loads an image with its ground truth, resized (and optionally augmented) for training.

    augment: deprecated left-right flip with probability 0.5 (use augmentation instead).
    augmentation: an imgaug augmenter; geometric augmenters (MASK_AUGMENTERS) also move the
        masks. Boxes are recomputed from the augmented masks; instances that vanish are dropped.
    use_mini_mask: masks are returned as MINI_MASK_SHAPE mini masks inside their boxes.

    Returns image [H, W, C] (uint8 as loaded, resized), image_meta [IMAGE_META_SIZE],
    class_ids [N] int32, bbox [N, (y1, x1, y2, x2)] int32 pixels, mask [H, W, N] bool (or
    [mh, mw, N]). N may be 0. With return_keypoints (Config.NUM_KEYPOINTS > 0), also
    keypoints [N, NUM_KEYPOINTS, (x, y, v)] float32 pixels of the returned image, from
    dataset.load_keypoints; flips swap Config.KEYPOINT_FLIP_MAP's pairs.
    """
    rng = rng if rng is not None else np.random.default_rng()
    image = dataset.load_image(image_id)
    mask, class_ids = _checked_mask(dataset, image_id, image.shape)
    _check_class_ids(dataset, image_id, class_ids, config.NUM_CLASSES)
    keypoints = None
    if return_keypoints:
        keypoints = _checked_keypoints(dataset, config, image_id, class_ids.shape[0])
    original_shape = image.shape
    image, window, scale, padding, crop = resize_image(
        image, min_dim=config.IMAGE_MIN_DIM, min_scale=config.IMAGE_MIN_SCALE,
        max_dim=config.IMAGE_MAX_DIM, mode=config.IMAGE_RESIZE_MODE, rng=rng)
    mask = resize_mask(mask, scale, padding, crop)
    if keypoints is not None:
        keypoints = scale_keypoints(keypoints, scale, padding, crop)

    if augment:
        logger.warning("'augment' is deprecated; use 'augmentation' instead.")
        if rng.random() < 0.5:
            image = np.fliplr(image)
            mask = np.fliplr(mask)
            if keypoints is not None:
                keypoints = flip_keypoints(keypoints, image.shape[1], config.KEYPOINT_FLIP_MAP)
    if augmentation is not None:
        import imgaug

        def hook(images, augmenter, parents, default):
            return augmenter.__class__.__name__ in MASK_AUGMENTERS

        image_shape, mask_shape = image.shape, mask.shape
        det = augmentation.to_deterministic()
        image = det.augment_image(image)
        mask = det.augment_image(mask.astype(np.uint8),
                                 hooks=imgaug.HooksImages(activator=hook))
        if keypoints is not None:
            keypoints = _augment_keypoints(det, keypoints, image_shape,
                                           config.KEYPOINT_FLIP_MAP)
        if image.shape != image_shape or mask.shape != mask_shape:
            raise ValueError("augmentation changed the image or mask shape "
                             f"({image_shape} -> {image.shape}); use size-preserving augmenters")
        mask = mask.astype(bool)

    # Instances whose masks were cropped or augmented away are dropped.
    keep = np.where(np.sum(mask, axis=(0, 1)) > 0)[0]
    mask = mask[:, :, keep]
    class_ids = class_ids[keep]
    if keypoints is not None:
        keypoints = keypoints[keep]
    bbox = extract_bboxes(mask)
    active_class_ids = np.zeros([dataset.num_classes], dtype=np.int32)
    source = dataset.image_info[image_id]["source"]
    active_class_ids[dataset.source_class_ids[source]] = 1
    if use_mini_mask:
        mask = minimize_mask(bbox, mask, config.MINI_MASK_SHAPE)
    image_meta = compose_image_meta(image_id, original_shape, image.shape, window, scale,
                                    active_class_ids)
    if return_keypoints:
        return image, image_meta, class_ids, bbox, mask, keypoints
    return image, image_meta, class_ids, bbox, mask


_ANCHOR_CACHE = {}


def batch_anchors(config, image_shape):
    """Pyramid anchors [A, 4] in pixels for a molded image shape (cached)."""
    layout = config.RPN_ANCHOR_LAYOUT
    key = (tuple(image_shape[:2]), tuple(config.RPN_ANCHOR_SCALES),
           tuple(config.RPN_ANCHOR_RATIOS), tuple(config.BACKBONE_STRIDES),
           config.RPN_ANCHOR_STRIDE, layout)
    if key not in _ANCHOR_CACHE:
        shapes = compute_backbone_shapes(config, image_shape)
        _ANCHOR_CACHE[key] = generate_pyramid_anchors(
            config.RPN_ANCHOR_SCALES, config.RPN_ANCHOR_RATIOS, shapes, config.BACKBONE_STRIDES,
            config.RPN_ANCHOR_STRIDE, layout=layout, image_shape=image_shape[:2])
    return _ANCHOR_CACHE[key]


def split_batch(batch, index, count):
    """Part `index` of `count` equal parts of a batch dict: the images
    [index * B / count, (index + 1) * B / count) of every array. Under a multi-worker strategy
    every worker computes the whole global batch and each replica keeps its part, so the parts
    together are exactly the batch one process trains on, each image once."""
    size = len(next(iter(batch.values())))
    if size % count or not 0 <= index < count:
        raise ValueError(f"cannot take part {index} of {count} of a batch of {size} images")
    size //= count
    return {k: v[index * size:(index + 1) * size] for k, v in batch.items()}


class DataGenerator(keras.utils.PyDataset):
    """Batches of training inputs for MaskRCNN's training model.

    Args:
        dataset: a prepared utils.Dataset.
        config: the model's Config.
        shuffle: visit images in a new random order every pass.
        augmentation: optional imgaug augmenter (see load_image_gt).
        random_rois: if > 0, also yield this many random ROIs per image (input_roi) for
            configs with USE_RPN_ROIS = False.
        detection_targets: also yield NumPy detection targets (for inspection).
        no_augmentation_sources: dataset sources whose images are never augmented.
        batch_size: images per batch (default config.BATCH_SIZE).
        steps: batches per epoch (default config.STEPS_PER_EPOCH).
        seed: base seed; batch contents depend only on (seed, epoch, index).
        first_step: as a PyDataset, the generator yields batches first_step..steps-1 of each
            epoch (len() is steps - first_step).
        workers, use_multiprocessing, max_queue_size: as keras.utils.PyDataset; workers and
            use_multiprocessing also for iter_batches.

    As a PyDataset, batch idx of epoch e is the global batch e * steps + first_step + idx (see
    batch()); set `epoch` before an epoch's batches are requested. MaskRCNN.train uses
    iter_batches instead: global batches from e * steps + step on, for a run resumed at
    (epoch e, step) as for a fresh one, so a resumed run sees the batches the interrupted run
    would have seen.

    A batch is a 1-tuple holding a dict keyed by the training model's input names:
    input_image [B, H, W, C] float32 (molded), input_image_meta, input_rpn_match [B, A, 1],
    input_rpn_bbox [B, RPN_TRAIN_ANCHORS_PER_IMAGE, 4], input_gt_class_ids [B, MAX_GT_INSTANCES],
    input_gt_boxes [B, MAX_GT_INSTANCES, 4] pixels, input_gt_masks [B, h, w, MAX_GT_INSTANCES].
    """

    def __init__(self, dataset, config, shuffle=True, augmentation=None, random_rois=0,
                 detection_targets=False, no_augmentation_sources=None, batch_size=None,
                 steps=None, seed=None, workers=1, use_multiprocessing=False,
                 max_queue_size=10, first_step=0):
        super().__init__(workers=workers, use_multiprocessing=use_multiprocessing,
                         max_queue_size=max_queue_size)
        if len(dataset.image_ids) == 0:
            raise ValueError("the dataset has no images (did you call prepare()?)")
        if dataset.num_classes != config.NUM_CLASSES:
            raise ValueError(f"the dataset has {dataset.num_classes} classes (background "
                             f"included) but {type(config).__name__}.NUM_CLASSES is "
                             f"{config.NUM_CLASSES}")
        self.dataset = dataset
        self.config = config
        self.shuffle = shuffle
        self.augmentation = augmentation
        self.random_rois = int(random_rois)
        self.detection_targets = detection_targets
        self.no_augmentation_sources = set(no_augmentation_sources or [])
        self.batch_size = int(batch_size or config.BATCH_SIZE)
        self.steps = int(steps or config.STEPS_PER_EPOCH)
        self.seed = int(seed) if seed is not None else int(np.random.SeedSequence().entropy % 2**31)
        self.first_step = int(first_step)
        if not 0 <= self.first_step < self.steps:
            raise ValueError(f"first_step must be in [0, steps={self.steps}), got {first_step}")
        self.epoch = 0

    def __len__(self):
        return self.steps - self.first_step

    def describe_image(self, image_id):
        """'image_id 7 (source 'shapes', id 7, ...)': an image of the dataset, for messages."""
        return _describe(self.dataset, int(image_id))

    def on_epoch_end(self):
        self.epoch += 1

    def _image_at(self, position):
        ids = self.dataset.image_ids
        n = len(ids)
        rnd_pass, k = divmod(position, n)
        if not self.shuffle:
            return int(ids[k])
        perm = np.random.default_rng([self.seed, rnd_pass]).permutation(n)
        return int(ids[perm[k]])

    def load(self, image_id, rng):
        source = self.dataset.image_info[image_id]["source"]
        aug = None if source in self.no_augmentation_sources else self.augmentation
        try:
            return load_image_gt(self.dataset, self.config, image_id, augmentation=aug,
                                 use_mini_mask=self.config.USE_MINI_MASK, rng=rng,
                                 return_keypoints=bool(self.config.NUM_KEYPOINTS))
        except Exception as e:
            raise type(e)(f"{e} [while loading {_describe(self.dataset, image_id)}]") from e

    def __getitem__(self, idx):
        return (self.batch(self.epoch * self.steps + self.first_step + int(idx)),)

    def iter_batches(self, first_batch=0):
        """The batches first_batch, first_batch + 1, ... (see batch()), in that order and
        without end. With workers > 1 (threads) or use_multiprocessing (processes, forked
        where the platform can), `workers` loaders compute up to 2 * workers batches ahead;
        otherwise each batch is computed when it is asked for. An error in a batch is raised
        here, at that batch, with the image that caused it named."""
        workers = max(1, int(self.workers or 0))
        if workers == 1 and not self.use_multiprocessing:
            number = first_batch
            while True:
                yield self.batch(number)
                number += 1
        if self.use_multiprocessing:
            methods = multiprocessing.get_all_start_methods()
            context = multiprocessing.get_context("fork" if "fork" in methods else None)
            pool = concurrent.futures.ProcessPoolExecutor(
                workers, mp_context=context, initializer=_set_worker_generator,
                initargs=(self,))
            compute = _worker_batch
        else:
            pool = concurrent.futures.ThreadPoolExecutor(workers,
                                                         thread_name_prefix="mrcnn_loader")
            compute = self.batch
        pending = collections.deque()
        number = first_batch
        try:
            while True:
                while len(pending) < 2 * workers:
                    pending.append(pool.submit(compute, number))
                    number += 1
                yield pending.popleft().result()
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def batch(self, batch_number):
        """The batch at a global batch number (a pure function of seed and batch_number)."""
        config = self.config
        rng = np.random.default_rng([self.seed, 1, batch_number])
        items = []
        position = batch_number * self.batch_size
        skipped = 0
        while len(items) < self.batch_size:
            image_id = self._image_at(position)
            position += 1
            item = self.load(image_id, rng)
            if config.SKIP_EMPTY_IMAGES and not np.any(item[2] > 0):
                skipped += 1
                if skipped > 10 * len(self.dataset.image_ids):
                    raise ValueError("SKIP_EMPTY_IMAGES is set but no image has instances")
                continue
            items.append(item)

        images = pad_to_multiple([it[0] for it in items])
        anchors = batch_anchors(config, images.shape[1:3])
        b, max_gt = self.batch_size, config.MAX_GT_INSTANCES
        mask_hw = tuple(config.MINI_MASK_SHAPE) if config.USE_MINI_MASK else images.shape[1:3]
        out = {
            "input_image": np.zeros(images.shape, np.float32),
            "input_image_meta": np.zeros((b, config.IMAGE_META_SIZE), np.float32),
            "input_rpn_match": np.zeros((b, anchors.shape[0], 1), np.int32),
            "input_rpn_bbox": np.zeros((b, config.RPN_TRAIN_ANCHORS_PER_IMAGE, 4), np.float32),
            "input_gt_class_ids": np.zeros((b, max_gt), np.int32),
            "input_gt_boxes": np.zeros((b, max_gt, 4), np.float32),
            "input_gt_masks": np.zeros((b,) + mask_hw + (max_gt,), bool),
        }
        if self.random_rois:
            out["input_roi"] = np.zeros((b, self.random_rois, 4), np.int32)
        if config.NUM_KEYPOINTS:
            out["input_gt_keypoints"] = np.zeros((b, max_gt, config.NUM_KEYPOINTS, 3),
                                                 np.float32)
        for i, (_, meta, class_ids, boxes, masks, *keypoints) in enumerate(items):
            keypoints = keypoints[0] if keypoints else None
            if len(class_ids) > max_gt:
                keep = rng.choice(len(class_ids), max_gt, replace=False)
                class_ids, boxes, masks = class_ids[keep], boxes[keep], masks[:, :, keep]
                keypoints = None if keypoints is None else keypoints[keep]
            meta = meta.copy()
            meta[4:7] = images.shape[1:]
            rpn_match, rpn_bbox = build_rpn_targets(images.shape[1:], anchors, class_ids, boxes,
                                                    config, rng=rng)
            n = len(class_ids)
            out["input_image"][i] = mold_image(images[i], config)
            out["input_image_meta"][i] = meta
            out["input_rpn_match"][i, :, 0] = rpn_match
            out["input_rpn_bbox"][i] = rpn_bbox
            out["input_gt_class_ids"][i, :n] = class_ids
            out["input_gt_boxes"][i, :n] = boxes
            out["input_gt_masks"][i, :masks.shape[0], :masks.shape[1], :n] = masks
            if keypoints is not None:
                out["input_gt_keypoints"][i, :n] = keypoints
            if self.random_rois:
                out["input_roi"][i] = generate_random_rois(images.shape[1:], self.random_rois,
                                                           class_ids, boxes, rng=rng)
                if self.detection_targets:
                    targets = build_detection_targets(out["input_roi"][i], class_ids, boxes,
                                                      masks, config, rng=rng)
                    for name, value in zip(("rois", "mrcnn_class_ids", "mrcnn_bbox",
                                            "mrcnn_mask"), targets):
                        out.setdefault(name, np.zeros((b,) + value.shape, value.dtype))[i] = value
        return out


def data_generator(dataset, config, shuffle=True, augment=False, augmentation=None,
                   random_rois=0, batch_size=1, detection_targets=False,
                   no_augmentation_sources=None):
    """matterport's infinite generator of (inputs, outputs): inputs is the list
    [images, image_meta, rpn_match, rpn_bbox, gt_class_ids, gt_boxes, gt_masks] (+ input_roi
    when random_rois), outputs is [] (or the detection targets)."""
    if augment:
        logger.warning("'augment' is deprecated; use 'augmentation' instead.")
    gen = DataGenerator(dataset, config, shuffle=shuffle, augmentation=augmentation,
                        random_rois=random_rois, detection_targets=detection_targets,
                        no_augmentation_sources=no_augmentation_sources,
                        batch_size=batch_size, steps=1)
    names = ["input_image", "input_image_meta", "input_rpn_match", "input_rpn_bbox",
             "input_gt_class_ids", "input_gt_boxes", "input_gt_masks"]
    number = 0
    while True:
        out = gen.batch(number)
        number += 1
        inputs = [out[n] for n in names] + ([out["input_roi"]] if random_rois else [])
        outputs = []
        if detection_targets and random_rois:
            outputs = [out["mrcnn_class_ids"][..., None], out["mrcnn_bbox"], out["mrcnn_mask"]]
            inputs.append(out["rois"])
        yield inputs, outputs
